#include "doctor/doctor.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>

#include "control/capabilities.h"
#include "options.h"
#include "tap.skel.h"
#include "tap/bpf_tap.h"
#include "tap/elf_file.h"
#include "tap/go_binary.h"
#include "tap/ssl_layout.h"
#include "tap/ssl_probes.h"
#include "tap/targets.h"

// The doctor's own uprobe site: a uprobe and a uretprobe are attached here, in this process
// only, to prove the kernel attaches them.
extern "C" __attribute__((noinline, used)) void mat_doctor_uprobe_site() { asm volatile(""); }

namespace mat::doctor {

std::string FormatLine(const Line& line) {
  const char* status = line.status == Status::kOk     ? "ok   "
                       : line.status == Status::kWarn ? "warn "
                                                      : "FAIL ";
  std::string text = status + line.item + ": " + line.text;
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

int ExitCode(const std::vector<Line>& lines) {
  for (const Line& line : lines)
    if (line.status == Status::kFail) return 1;
  return 0;
}

std::string FindOpenSslVersion(std::string_view bytes) {
  const std::string_view prefix = "OpenSSL ";
  for (size_t at = bytes.find(prefix); at != std::string_view::npos;
       at = bytes.find(prefix, at + 1)) {
    // The text must start a string ("OpenSSL 3.0.19 27 Jan 2026\0"), be printable and short.
    if (at > 0 && bytes[at - 1] != '\0') continue;
    size_t end = bytes.find('\0', at);
    if (end == std::string_view::npos || end - at > 64) continue;
    std::string_view text = bytes.substr(at, end - at);
    std::string_view rest = text.substr(prefix.size());
    if (rest.size() < 3 || rest[0] < '0' || rest[0] > '9' || rest[1] != '.') continue;
    bool printable = true;
    for (char c : text) printable &= c >= 0x20 && c < 0x7f;
    if (printable) return std::string(text);
  }
  return "";
}

namespace {

const char* kUsage =
    "Usage: mke-audit-tap doctor [--comm NAME]... [--pid PID]... [--config FILE]\n"
    "                            [--capture auto|keys|plaintext] [--verbose]\n"
    "Checks, one line per item, what the auditor needs: the kernel (BTF, uprobes, the BPF ring\n"
    "buffer, the BPF programs and tracepoints, loaded and attached then detached at once), the\n"
    "capabilities, and for each target its TLS library, where its probes would sit, which capture\n"
    "mode it gets and whether its probes attach (attached and detached at once). Nothing stays\n"
    "attached and nothing in a target changes. Exit 0 when nothing failed, 1 otherwise.\n"
    "--verbose also shows the auditor's own log lines (stderr).\n";

// The lines found so far; printed as they come when asked (the command shows progress, as
// a calibration or an attach can take a moment).
class Report {
 public:
  explicit Report(bool print) : print_(print) {}
  void Add(Status status, std::string item, std::string text) {
    Line line{status, std::move(item), std::move(text)};
    if (print_) {
      std::printf("%s\n", FormatLine(line).c_str());
      std::fflush(stdout);
    }
    lines_.push_back(std::move(line));
  }
  const std::vector<Line>& lines() const { return lines_; }
  std::vector<Line> take() { return std::move(lines_); }

 private:
  bool print_;
  std::vector<Line> lines_;
};

// libbpf's warnings during the doctor's own load: the failing program is named there.
std::vector<std::string>* g_libbpf_lines = nullptr;

int CollectLibbpf(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG || g_libbpf_lines == nullptr) return 0;
  char text[512];
  std::vsnprintf(text, sizeof(text), format, args);
  std::string line = text;
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (!line.empty() && g_libbpf_lines->size() < 200) g_libbpf_lines->push_back(line);
  spdlog::debug("libbpf: {}", line);
  return 0;
}

std::string ReadFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::string data;
  data.resize(max_bytes);
  in.read(data.data(), static_cast<std::streamsize>(max_bytes));
  data.resize(static_cast<size_t>(in.gcount()));
  return data;
}

std::string Errno(int err) { return std::strerror(err < 0 ? -err : err); }

// ---- kernel ---------------------------------------------------------------------------------

// bpf_allowed: the capabilities allow creating BPF maps (else a probe's "no" means "not
// permitted", not "not supported").
void CheckKernelFiles(bool bpf_allowed, Report* r) {
  struct utsname u {};
  if (::uname(&u) == 0)
    r->Add(Status::kOk, "kernel", std::string(u.sysname) + " " + u.release + " " + u.machine);
  struct stat st {};
  if (::stat("/sys/kernel/btf/vmlinux", &st) == 0)
    r->Add(Status::kOk, "kernel BTF",
           "/sys/kernel/btf/vmlinux (" + std::to_string(st.st_size / 1024) + " KiB)");
  else
    r->Add(Status::kFail, "kernel BTF",
           "/sys/kernel/btf/vmlinux: " + Errno(errno) +
               "; the BPF programs cannot be relocated to this kernel (CONFIG_DEBUG_INFO_BTF "
               "needed)");
  if (::stat("/sys/bus/event_source/devices/uprobe/type", &st) == 0)
    r->Add(Status::kOk, "kernel uprobes", "/sys/bus/event_source/devices/uprobe");
  else
    r->Add(Status::kFail, "kernel uprobes",
           "/sys/bus/event_source/devices/uprobe: " + Errno(errno) +
               "; no TLS library can be probed (CONFIG_UPROBE_EVENTS needed)");
  int ringbuf = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr);
  if (ringbuf == 1)
    r->Add(Status::kOk, "kernel BPF ring buffer", "supported");
  else if (ringbuf == 0 && !bpf_allowed)
    r->Add(Status::kFail, "kernel BPF ring buffer",
           "cannot be checked: creating BPF maps is not permitted (CAP_BPF missing)");
  else if (ringbuf == 0)
    r->Add(Status::kFail, "kernel BPF ring buffer",
           "not supported (Linux 5.8 or later needed); no record can reach the auditor");
  else
    r->Add(Status::kFail, "kernel BPF ring buffer",
           "cannot create one: " + Errno(ringbuf) + " (CAP_BPF missing?)");
  if (::stat("/sys/kernel/tracing/events/syscalls", &st) == 0 ||
      ::stat("/sys/kernel/debug/tracing/events/syscalls", &st) == 0)
    r->Add(Status::kOk, "kernel tracefs", "syscall tracepoints listed");
  else
    r->Add(Status::kWarn, "kernel tracefs",
           "not mounted (or no syscall tracepoints); the auditor mounts it on "
           "/sys/kernel/tracing when a target needs plaintext capture");
}

// What libbpf said about the failure: the first line naming a program ("prog 'x': ..."), else
// the first naming a map, else the last line.
std::string LibbpfReason(const std::vector<std::string>& lines) {
  for (const char* what : {"prog '", "map '"})
    for (const std::string& line : lines)
      if (line.find(what) != std::string::npos) return line;
  return lines.empty() ? "" : lines.back();
}

// The real BPF object: opened, sized and loaded as BpfTap::Create does; then every tracepoint
// program attached and detached, the ring buffer opened, and a uprobe and a uretprobe attached
// to this process's own function. True when the programs loaded.
bool CheckBpfObject(const Options& o, Report* r) {
  std::vector<std::string> libbpf_lines;
  g_libbpf_lines = &libbpf_lines;
  libbpf_set_print(CollectLibbpf);
  struct Done {
    tap_bpf* skel = nullptr;
    ~Done() {
      if (skel) tap_bpf__destroy(skel);
      g_libbpf_lines = nullptr;
    }
  } done;
  tap_bpf* skel = done.skel = tap_bpf__open();
  if (skel == nullptr) {
    r->Add(Status::kFail, "kernel BPF programs", "cannot open the BPF object: " + Errno(errno));
    return false;
  }
  tap::TapOptions defaults;
  skel->rodata->cap_bytes = o.cap_bytes;
  skel->rodata->cipher_cap_bytes =
      std::min<uint32_t>(defaults.cipher_cap_bytes, TAP_MAX_CHUNKS * TAP_CHUNK_BYTES);
  skel->rodata->wakeup_bytes = o.ringbuf_bytes / 8;
  int ncpu = libbpf_num_possible_cpus();
  if (bpf_map__set_max_entries(skel->maps.events, o.ringbuf_bytes) != 0 || ncpu <= 0 ||
      bpf_map__set_max_entries(skel->maps.chunk_scratch, 2 * static_cast<uint32_t>(ncpu)) != 0) {
    r->Add(Status::kFail, "kernel BPF programs", "cannot size the BPF maps");
    return false;
  }
  if (const mat::Status tracepoints = tap::SocketTracepoints(); !tracepoints) {
    bpf_program__set_autoload(skel->progs.sock_send, false);
    bpf_program__set_autoload(skel->progs.sock_recv, false);
    r->Add(Status::kWarn, "kernel socket tracepoints",
           tracepoints.error() +
               ": the keys capture is off, every target is captured per call (a probe on "
               "every TLS read and write)");
  }
  int programs = 0;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel->obj) { programs += bpf_program__autoload(prog); }
  if (int err = tap_bpf__load(skel)) {
    std::string why = LibbpfReason(libbpf_lines);
    r->Add(Status::kFail, "kernel BPF programs",
           "cannot load (" + Errno(err) + ")" + (why.empty() ? "" : ": " + why) +
               (err == -EPERM ? " (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, needed)" : "") +
               "; the auditor cannot start");
    return false;
  }
  r->Add(Status::kOk, "kernel BPF programs",
         std::to_string(programs) + " programs loaded (the verifier accepted each)");

  // Tracepoints, by kind: the socket BTF tracepoints (always attached) and the syscall
  // tracepoints (attached while a target is in plaintext capture).
  struct Kind {
    const char* prefix;
    const char* item;
    const char* needed_for;
    std::vector<std::string> ok, failed;
  };
  Kind kinds[] = {
      {"tp_btf/", "kernel BTF tracepoints", "the auditor cannot start", {}, {}},
      {"tracepoint/", "kernel syscall tracepoints", "plaintext capture will not work", {}, {}},
  };
  bpf_object__for_each_program(prog, skel->obj) {
    if (!bpf_program__autoload(prog)) continue;
    std::string section = bpf_program__section_name(prog);
    for (Kind& kind : kinds) {
      if (section.rfind(kind.prefix, 0) != 0) continue;
      std::string name = section.substr(section.rfind('/') + 1);
      bpf_link* link = bpf_program__attach(prog);
      if (link == nullptr) {
        kind.failed.push_back(name + " (" + bpf_program__name(prog) + "): " + Errno(errno));
      } else {
        bpf_link__destroy(link);
        kind.ok.push_back(name);
      }
    }
  }
  for (const Kind& kind : kinds) {
    if (kind.failed.empty()) {
      std::string names;
      for (const std::string& n : kind.ok) names += (names.empty() ? "" : ", ") + n;
      r->Add(Status::kOk, kind.item,
             std::to_string(kind.ok.size()) + " attached and detached (" + names + ")");
    } else {
      std::string text = "cannot attach";
      for (const std::string& f : kind.failed) text += " " + f + ";";
      r->Add(Status::kFail, kind.item, text + " " + kind.needed_for);
    }
  }

  auto noop = [](void*, void*, size_t) { return 0; };
  ring_buffer* ring = ring_buffer__new(bpf_map__fd(skel->maps.events), noop, nullptr, nullptr);
  if (ring != nullptr) {
    r->Add(Status::kOk, "kernel BPF ring buffer map",
           std::to_string(o.ringbuf_bytes >> 10) + " KiB, mapped");
    ring_buffer__free(ring);
  } else {
    r->Add(Status::kFail, "kernel BPF ring buffer map",
           "cannot map it: " + Errno(errno) + "; no record can reach the auditor");
  }

  // A uprobe and a uretprobe on this process's own function (nothing else sees them).
  auto elf = tap::ElfFile::Load("/proc/self/exe");
  auto site = elf ? elf->FindFunction("mat_doctor_uprobe_site") : std::nullopt;
  if (!site) {
    r->Add(Status::kWarn, "kernel uprobe attach",
           "not checked here (no symbol mat_doctor_uprobe_site in this program" +
               (elf ? "" : ": " + elf.error()) + "); each target's attach is checked below");
    return true;
  }
  std::string failed;
  int attached = 0;
  bpf_object__for_each_program(prog, skel->obj) {
    std::string section = bpf_program__section_name(prog);
    bool ret = section == "uretprobe";
    if (section != "uprobe" && !ret) continue;
    if ((ret && attached & 2) || (!ret && attached & 1)) continue;
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = ret);
    bpf_link* link = bpf_program__attach_uprobe_opts(prog, ::getpid(), "/proc/self/exe",
                                                     site->file_offset, &opts);
    if (link == nullptr) {
      failed += std::string(" ") + (ret ? "uretprobe " : "uprobe ") + bpf_program__name(prog) +
                ": " + Errno(errno) + ";";
      attached |= ret ? 2 : 1;  // one failure of each kind is enough
      continue;
    }
    mat_doctor_uprobe_site();  // runs the program once; it ignores this process
    bpf_link__destroy(link);
    attached |= ret ? 2 : 1;
  }
  if (failed.empty())
    r->Add(Status::kOk, "kernel uprobe attach",
           "a uprobe and a uretprobe attached to this process and detached");
  else
    r->Add(Status::kFail, "kernel uprobe attach",
           "cannot attach" + failed + " no TLS library can be probed");
  return true;
}

// ---- capabilities ---------------------------------------------------------------------------

// The capabilities the auditor checks at start (control/capabilities.h, measured), one line
// each. Returns whether BPF maps and programs may be created (CAP_BPF or CAP_SYS_ADMIN).
bool CheckCaps(Report* r) {
  bool ok = false;
  const uint64_t effective = control::EffectiveCapabilities(&ok);
  if (!ok) {
    r->Add(Status::kFail, "capabilities", "capget failed: " + Errno(errno));
    return true;  // unknown: the kernel checks will tell
  }
  auto has = [&](int cap) { return cap >= 0 && cap < 64 && (effective >> cap & 1) != 0; };
  bool bpf_allowed = true;
  for (const control::CapabilityNeed& need : control::NeededCapabilities()) {
    const bool present = has(need.cap) || has(need.alternative);
    if (present) {
      r->Add(Status::kOk, std::string("capability ") + need.name,
             std::string("present: ") + need.used_for);
    } else {
      r->Add(need.essential ? Status::kFail : Status::kWarn, std::string("capability ") + need.name,
             std::string("missing: without it ") + need.without);
    }
    if (std::string_view(need.name) == "CAP_BPF") bpf_allowed = present;
  }
  return bpf_allowed;
}

// ---- targets --------------------------------------------------------------------------------

struct Stack {
  std::string what;  // "OpenSSL libssl.so.3" or "Go crypto/tls"
  bool keys = false;
  std::string why_not_keys;
};

// One target: its TLS stacks, probe plans, capture mode, and a real attach (then detach).
// A libssl file's calibration, done once per file (device, inode).
struct LayoutResult {
  std::optional<tap_ssl_layout> layout;
  std::string text;  // how it was found, or why not
};
using Layouts = std::map<std::string, LayoutResult>;

void CheckTarget(const Options& o, const tap::TargetProcess& t, tap::BpfTap* tap, Layouts* layouts,
                 Report* r) {
  const std::string item = "target pid " + std::to_string(t.pid) + " (" + t.comm + ")";
  const std::string pid_dir = "/proc/" + std::to_string(t.pid);
  const bool want_keys = o.capture != "plaintext";
  std::vector<Stack> stacks;
  std::string fail_reason;  // a stack was found but cannot be used

  auto ssl = tap::FindSslLibraries(t.pid);
  auto crypto = tap::FindCryptoLibraries(t.pid);
  std::string ssl_first_path;
  std::optional<tap_ssl_layout> ssl_layout;  // the first libssl's, when calibrated
  for (size_t i = 0; i < ssl.size(); ++i) {
    const tap::SslLibrary& lib = ssl[i];
    if (::access(lib.path.c_str(), R_OK) != 0) {
      r->Add(Status::kFail, item,
             "OpenSSL " + lib.name + " is mapped, but " + lib.path + " cannot be opened: " +
                 Errno(errno) + " (CAP_SYS_ADMIN, and CAP_SYS_PTRACE for another user's process)");
      fail_reason = "unreadable";
      continue;
    }
    std::string version = FindOpenSslVersion(ReadFile(lib.path, 64u << 20));
    for (size_t k = 0; version.empty() && k < crypto.size(); ++k)
      version = FindOpenSslVersion(ReadFile(crypto[k].path, 64u << 20));
    r->Add(Status::kOk, item,
           "TLS library OpenSSL " + lib.name + " (" +
               (version.empty() ? "version text not found" : version) + ")");
    auto plan = tap::PlanSslProbes(lib.path);
    if (!plan) {
      r->Add(Status::kFail, item, "no probe plan for " + lib.name + ": " + plan.error());
      fail_reason = plan.error();
      continue;
    }
    r->Add(Status::kOk, item,
           std::string("probes on ") + lib.name + ":" + plan->Describe() +
               (plan->internal_read && plan->internal_write
                    ? " (internal functions: cheap emulated probes)"
                    : " (public functions)"));
    Stack stack{"OpenSSL " + lib.name};
    if (want_keys && i == 0) {
      ssl_first_path = lib.path;
      struct stat st {};
      std::string key = ::stat(lib.path.c_str(), &st) == 0
                            ? std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)
                            : lib.path;
      auto found = layouts->find(key);
      if (found == layouts->end()) {
        LayoutResult result;
        if (crypto.empty()) {
          result.text = "no libcrypto mapped beside it";
        } else {
          auto t0 = std::chrono::steady_clock::now();
          auto calibrated = tap::CalibrateSslLayout(lib.path, crypto.front().path);
          auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - t0)
                        .count();
          if (calibrated) result.layout = *calibrated;
          result.text = calibrated ? "OpenSSL layout calibrated by mke-audit-tap-sslcal in " +
                                         std::to_string(ms) + " ms"
                                   : "OpenSSL layout calibration failed: " + calibrated.error();
        }
        found = layouts->emplace(key, std::move(result)).first;
      }
      stack.keys = found->second.layout.has_value();
      if (stack.keys) {
        stack.what += " (" + found->second.text + ")";
        ssl_layout = found->second.layout;
      } else {
        stack.why_not_keys = lib.name + ": " + found->second.text;
      }
    } else if (want_keys) {
      stack.why_not_keys = lib.name + ": keys capture reads only the first libssl a process maps";
    }
    stacks.push_back(stack);
  }
  if (!ssl.empty() && !crypto.empty() && fail_reason.empty()) {
    if (auto sites = tap::PlanCertProbes(crypto.front().path))
      r->Add(Status::kOk, item, "client certificates: d2i_X509/i2d_X509 in " + crypto.front().name);
    else
      r->Add(Status::kWarn, item,
             "no client certificates (" + sites.error() +
                 "); users come from request credentials only");
  }

  auto go = tap::InspectGoBinary(pid_dir + "/exe");
  if (go) {
    r->Add(Status::kOk, item,
           "TLS library Go crypto/tls in the executable (" + go->go_version + ")");
    r->Add(Status::kOk, item, "probes: " + go->tls.Describe());
    Stack stack{"Go crypto/tls"};
    if (want_keys) {
      stack.keys = go->tls.HasKeyLog();
      if (stack.keys)
        stack.what += " (crypto/tls.(*Config).writeKeyLog found)";
      else
        stack.why_not_keys = "Go: no crypto/tls.(*Config).writeKeyLog in the executable";
    }
    stacks.push_back(stack);
  }
  if (stacks.empty()) {
    if (fail_reason.empty())
      r->Add(Status::kFail, item,
             "no supported TLS library: no OpenSSL libssl mapped, and not a Go crypto/tls "
             "program (" +
                 go.error() + "); it will not be audited");
    return;
  }

  // The capture mode it gets, as the auditor decides it (main.cpp AddOne).
  bool all_keys = want_keys;
  std::string why_not, keys_what;
  for (const Stack& s : stacks) {
    all_keys &= s.keys;
    if (!s.keys && why_not.empty()) why_not = s.why_not_keys;
    if (s.keys) keys_what += (keys_what.empty() ? "" : "; ") + s.what;
  }
  if (want_keys && tap != nullptr && !tap->keys_unavailable().empty()) {
    all_keys = false;
    why_not = tap->keys_unavailable();
  }
  tap::TargetOptions target_options;
  if (o.capture == "plaintext") {
    r->Add(Status::kOk, item,
           "capture plaintext (--capture plaintext: a probe on every TLS read and write)");
  } else if (all_keys) {
    // auto keeps the per-call probes too for connections opened before the auditor (the
    // bridge window): the attach check covers both sets.
    target_options.mode = o.capture == "auto" && o.bridge_window_s > 0 ? tap::CaptureMode::kBoth
                                                                       : tap::CaptureMode::kKeys;
    r->Add(Status::kOk, item,
           "capture keys (secrets once per handshake, socket bytes decrypted by the auditor): " +
               keys_what);
  } else if (o.capture == "keys") {
    r->Add(Status::kFail, item,
           "keys capture not possible (" + why_not +
               "); with --capture keys it will not be audited (auto would fall back to "
               "plaintext)");
    return;
  } else {
    r->Add(Status::kWarn, item,
           "capture plaintext fallback (a probe on every TLS read and write): keys capture not "
           "possible: " +
               why_not);
  }
  if (target_options.mode != tap::CaptureMode::kPlaintext && ssl_layout) {
    target_options.ssl_layout = ssl_layout;  // the attach reads the secrets with it
    target_options.ssl_layout_library = ssl_first_path;
  }

  if (tap == nullptr) {
    r->Add(Status::kFail, item, "probes not attached: the BPF programs did not load (see above)");
    return;
  }
  auto n = tap->AddTarget(t, target_options);
  if (n) {
    size_t probes = tap->ProbeCount(t.pid);
    tap->RemoveTarget(t.pid);
    r->Add(Status::kOk, item,
           "probes attach: " + std::to_string(probes) + " uprobes on " + std::to_string(*n) +
               " TLS stack(s) attached and detached");
  } else {
    r->Add(Status::kFail, item, "probes do not attach: " + n.error() + "; it will not be audited");
  }
}

}  // namespace

std::vector<Line> Diagnose(const Options& options, bool print) {
  Report r(print);
  bool bpf_allowed = CheckCaps(&r);
  CheckKernelFiles(bpf_allowed, &r);
  if (options.capture != "plaintext") {
    std::string helper = tap::DefaultSslcalPath();
    if (::access(helper.c_str(), X_OK) == 0)
      r.Add(Status::kOk, "OpenSSL calibration helper", helper);
    else
      r.Add(Status::kWarn, "OpenSSL calibration helper",
            helper + ": " + Errno(errno) +
                "; OpenSSL targets cannot get keys capture (plaintext fallback)");
  }
  bool loaded = CheckBpfObject(options, &r);

  tap::TargetSpec spec;
  spec.comms = options.comms;
  spec.pids = options.pids;
  if (spec.empty()) {
    r.Add(Status::kWarn, "targets",
          "none given (--comm NAME, --pid PID or --config FILE): only the kernel and "
          "capabilities were checked");
  } else {
    std::unique_ptr<tap::BpfTap> tap;
    if (loaded) {
      tap::TapOptions tap_options;
      tap_options.cap_bytes = options.cap_bytes;
      tap_options.ringbuf_bytes = options.ringbuf_bytes;
      tap_options.wakeup_bytes = options.ringbuf_bytes / 8;
      auto created = tap::BpfTap::Create(tap_options, [](const void*, size_t) {});
      if (created)
        tap = std::move(*created);
      else
        r.Add(Status::kFail, "kernel BPF tap", created.error());
    }
    auto targets = tap::ScanTargets(spec);
    std::string asked;
    for (const auto& c : spec.comms) asked += " --comm " + c;
    for (pid_t p : spec.pids) asked += " --pid " + std::to_string(p);
    if (targets.empty())
      r.Add(Status::kWarn, "targets",
            "no running process matches" + asked +
                "; the auditor would probe them when they start (run doctor again then)");
    else
      r.Add(Status::kOk, "targets", std::to_string(targets.size()) + " process(es) match" + asked);
    Layouts layouts;
    for (const auto& t : targets) CheckTarget(options, t, tap.get(), &layouts, &r);
  }
  return r.take();
}

std::string Summary(const std::vector<Line>& lines) {
  size_t ok = 0, warn = 0, fail = 0;
  for (const Line& line : lines)
    (line.status == Status::kOk ? ok : line.status == Status::kWarn ? warn : fail)++;
  return "doctor: " + std::to_string(ok) + " ok, " + std::to_string(warn) + " warning(s), " +
         std::to_string(fail) + " failure(s): " +
         (fail ? "the auditor will not work fully here: see the FAIL lines"
               : "the auditor can work here");
}

int RunDoctor(int argc, char** argv) {
  std::vector<char*> rest = {argv[0]};
  bool verbose = false;
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--verbose") {
      verbose = true;
      continue;
    }
    rest.push_back(argv[i]);
  }
  auto options =
      ParseOptions(static_cast<int>(rest.size()), rest.data(), /*require_targets=*/false);
  if (!options) {
    std::fprintf(stderr, "mke-audit-tap doctor: %s\n%s", options.error().c_str(), kUsage);
    return 2;
  }
  // The auditor's own log lines (probe plans, libbpf) only with --verbose: the report is the
  // output.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("mke-audit-tap-doctor"));
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::off);

  std::vector<Line> lines = Diagnose(*options, /*print=*/true);
  std::printf("%s\n", Summary(lines).c_str());
  return ExitCode(lines);
}

}  // namespace mat::doctor
