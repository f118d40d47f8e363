#include "tap/bpf_tap.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "tap.skel.h"

namespace mat::tap {

const char* CounterName(int index) {
  static const char* const kNames[TAP_CNT_MAX] = {
      "data_calls",      "data_bytes",         "truncated_calls",  "truncated_bytes",
      "ringbuf_drops",   "ringbuf_drop_bytes", "user_read_faults", "conn_map_full",
      "untracked_calls", "cipher_calls",       "cipher_bytes",     "cipher_uncovered_calls",
      "secrets",         "secret_read_faults", "local_calls",      "local_bytes",
  };
  return index >= 0 && index < TAP_CNT_MAX ? kNames[index] : "?";
}

namespace {

bpf_program* ProgramFor(tap_bpf* skel, ProbeProgram program, bool* retprobe) {
  *retprobe = false;
  switch (program) {
    case ProbeProgram::kReadEnterPtr4:
      return skel->progs.read_enter_ptr4;
    case ProbeProgram::kReadEnterRet:
      return skel->progs.read_enter_ret;
    case ProbeProgram::kReadExit:
      *retprobe = true;
      return skel->progs.read_exit;
    case ProbeProgram::kWriteEnterPtr4:
      return skel->progs.write_enter_ptr4;
    case ProbeProgram::kWriteEnterRet:
      return skel->progs.write_enter_ret;
    case ProbeProgram::kWriteExit:
      *retprobe = true;
      return skel->progs.write_exit;
    case ProbeProgram::kConnEnd:
      return skel->progs.conn_end;
    case ProbeProgram::kHandshake:
      return skel->progs.ssl_handshake;
    case ProbeProgram::kHandshakeExit:
      *retprobe = true;
      return skel->progs.ssl_handshake_exit;
    case ProbeProgram::kCertParse:
      return skel->progs.ssl_cert_parse;
    case ProbeProgram::kCertSend:
      return skel->progs.ssl_cert_send;
  }
  return nullptr;
}

int LibbpfLog(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  // Verifier logs are long: size the buffer to the message.
  va_list copy;
  va_copy(copy, args);
  int n = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (n <= 0) return 0;
  std::string text(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, args);
  text.resize(static_cast<size_t>(n));
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (level == LIBBPF_WARN)
    spdlog::warn("libbpf: {}", text);
  else
    spdlog::debug("libbpf: {}", text);
  return 0;
}

// Syscall tracepoints are found through tracefs; a fresh host or container may not have it
// mounted. Mount it where libbpf looks first, as `mount -t tracefs` would.
void EnsureTracefs() {
  struct stat st {};
  if (::stat("/sys/kernel/tracing/events", &st) == 0 ||
      ::stat("/sys/kernel/debug/tracing/events", &st) == 0)
    return;
  if (::mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nullptr) == 0)
    spdlog::info("mounted tracefs on /sys/kernel/tracing");
  else
    spdlog::warn("tracefs is not mounted and mounting it failed: {}", std::strerror(errno));
}

}  // namespace

Status SocketTracepoints() {
  const char* test = std::getenv("MKE_AUDIT_TAP_TEST_NO_SOCK_TRACEPOINTS");
  if (test != nullptr && std::string_view(test) == "1")
    return Error{"sock_send_length/sock_recv_length tracepoints hidden for a test"};
  btf* vmlinux = btf__load_vmlinux_btf();
  if (vmlinux == nullptr) return Error{"the kernel's BTF cannot be read"};
  std::string missing;
  for (const char* name : {"btf_trace_sock_send_length", "btf_trace_sock_recv_length"}) {
    if (btf__find_by_name_kind(vmlinux, name, BTF_KIND_TYPEDEF) < 0) {
      missing += (missing.empty() ? "" : ", ") + std::string(name + std::strlen("btf_trace_"));
    }
  }
  btf__free(vmlinux);
  if (missing.empty()) return {};
  utsname u{};
  ::uname(&u);
  return Error{"kernel " + std::string(u.release) + " has no " + missing +
               " tracepoint (Linux 6.3 or later has them)"};
}

Result<std::unique_ptr<BpfTap>> BpfTap::Create(const TapOptions& options, RecordHandler handler) {
  libbpf_set_print(LibbpfLog);
  std::unique_ptr<BpfTap> tap(new BpfTap());
  tap->handler_ = std::move(handler);
  tap->skel_ = tap_bpf__open();
  if (tap->skel_ == nullptr)
    return Error{std::string("cannot open the BPF object: ") + std::strerror(errno)};
  tap->skel_->rodata->cap_bytes = options.cap_bytes;
  tap->skel_->rodata->cipher_cap_bytes =
      std::min<uint32_t>(options.cipher_cap_bytes, TAP_MAX_CHUNKS * TAP_CHUNK_BYTES);
  tap->skel_->rodata->wakeup_bytes = options.wakeup_bytes;
  if (int err = bpf_map__set_max_entries(tap->skel_->maps.events, options.ringbuf_bytes))
    return Error{"bad ring buffer size: " + std::string(std::strerror(-err))};
  // Two record buffers per CPU (uprobes, socket tracepoints), indexed by CPU * 2 + which.
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0 ||
      bpf_map__set_max_entries(tap->skel_->maps.chunk_scratch, 2 * static_cast<uint32_t>(ncpu)))
    return Error{"cannot size the record buffers to the possible CPUs"};
  // Without the socket tracepoints (before Linux 6.3) the BPF object still loads: the keys
  // capture is off, and every target is captured per call.
  tap->keys_unavailable_ = SocketTracepoints().error();
  if (!tap->keys_unavailable_.empty()) {
    spdlog::warn("{}: no process can have the keys capture; per-call probes for every target",
                 tap->keys_unavailable_);
    bpf_program__set_autoload(tap->skel_->progs.sock_send, false);
    bpf_program__set_autoload(tap->skel_->progs.sock_recv, false);
  }
  if (int err = tap_bpf__load(tap->skel_))
    return Error{
        std::string("cannot load the BPF programs (root or CAP_BPF+CAP_PERFMON needed): ") +
        std::strerror(-err)};
  // The socket BTF tracepoints: attached once, they filter on the targets map and cost other
  // processes a map lookup per socket call (the syscall tracepoints wait for a plaintext target).
  for (bpf_program* prog :
       {tap->skel_->progs.sock_send, tap->skel_->progs.sock_recv, tap->skel_->progs.sock_state}) {
    if (!bpf_program__autoload(prog)) continue;
    bpf_link* link = bpf_program__attach(prog);
    if (link == nullptr)
      return Error{std::string("cannot attach BTF tracepoint ") + bpf_program__name(prog) + ": " +
                   std::strerror(errno)};
    tap->sock_links_.push_back(link);
  }
  tap->ring_ =
      ring_buffer__new(bpf_map__fd(tap->skel_->maps.events), &BpfTap::OnRecord, tap.get(), nullptr);
  if (tap->ring_ == nullptr)
    return Error{std::string("cannot open the ring buffer: ") + std::strerror(errno)};
  return tap;
}

BpfTap::~BpfTap() {
  if (reaper_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(reap_mutex_);
      reaper_stop_ = true;
    }
    reap_cv_.notify_one();
    reaper_.join();
  }
  for (auto& [pid, target] : targets_) {
    for (bpf_link* link : target.links) bpf_link__destroy(link);
    for (bpf_link* link : target.per_call_links) bpf_link__destroy(link);
  }
  for (auto& [key, file] : shared_) {
    for (bpf_link* link : file.links) bpf_link__destroy(link);
    for (bpf_link* link : file.per_call_links) bpf_link__destroy(link);
  }
  for (bpf_link* link : syscall_links_) bpf_link__destroy(link);
  for (bpf_link* link : sock_links_) bpf_link__destroy(link);
  if (local_close_link_) bpf_link__destroy(local_close_link_);
  for (bpf_link* link : proc_links_) bpf_link__destroy(link);
  if (ring_) ring_buffer__free(ring_);
  if (proc_ring_) ring_buffer__free(proc_ring_);
  if (skel_) tap_bpf__destroy(skel_);
}

namespace {
uint64_t MonoNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}
}  // namespace

int BpfTap::OnRecord(void* ctx, void* data, size_t size) {
  auto* tap = static_cast<BpfTap*>(ctx);
  tap->handler_(data, size);
  // This record is consumed either way; a negative return stops the consume here.
  if (tap->consume_deadline_ns_ != 0 && ++tap->consumed_ % 32 == 0 &&
      MonoNs() >= tap->consume_deadline_ns_)
    return -EAGAIN;
  return 0;
}

int BpfTap::OnProcRecord(void* ctx, void* data, size_t size) {
  if (size < sizeof(tap_proc)) return 0;
  tap_proc ev{};
  std::memcpy(&ev, data, sizeof(ev));
  if (ev.hdr.type == TAP_EV_PROC) static_cast<BpfTap*>(ctx)->proc_events_.push_back(ev);
  return 0;
}

uint8_t BpfTap::KernelModeFor(const std::string& capture) const {
  return capture == "plaintext" || !keys_unavailable_.empty() ? TAP_TARGET_PLAIN
                                                              : TAP_TARGET_CIPHER;
}

Status BpfTap::WatchProcesses(const std::vector<std::string>& comms, uint8_t exec_bits,
                              const std::vector<pid_t>& pids) {
  if (proc_ring_ != nullptr) return {};
  if (comms.size() > TAP_MAX_WATCH_COMMS)
    return Error{"more than " + std::to_string(TAP_MAX_WATCH_COMMS) + " --comm names"};
  for (const std::string& comm : comms) {
    char key[TAP_COMM_LEN] = {};
    // The kernel keeps the first 15 bytes of a program's name.
    std::memcpy(key, comm.data(), std::min<size_t>(comm.size(), TAP_COMM_LEN - 1));
    if (bpf_map__update_elem(skel_->maps.target_comms, key, sizeof(key), &exec_bits,
                             sizeof(exec_bits), BPF_ANY))
      return Error{std::string("target_comms map: ") + std::strerror(errno)};
  }
  // A --pid's tree: its descendants are added at their fork, in the kernel.
  for (pid_t pid : pids) {
    uint32_t tgid = static_cast<uint32_t>(pid);
    if (bpf_map__update_elem(skel_->maps.pid_trees, &tgid, sizeof(tgid), &exec_bits,
                             sizeof(exec_bits), BPF_ANY))
      return Error{std::string("pid_trees map: ") + std::strerror(errno)};
  }
  proc_ring_ =
      ring_buffer__new(bpf_map__fd(skel_->maps.proc_events), &BpfTap::OnProcRecord, this, nullptr);
  if (proc_ring_ == nullptr)
    return Error{std::string("cannot open the process event ring buffer: ") + std::strerror(errno)};
  for (bpf_program* prog : {skel_->progs.proc_fork, skel_->progs.proc_exec}) {
    bpf_link* link = bpf_program__attach(prog);
    if (link == nullptr)
      return Error{std::string("cannot attach BTF tracepoint ") + bpf_program__name(prog) + ": " +
                   std::strerror(errno)};
    proc_links_.push_back(link);
  }
  return {};
}

void BpfTap::WarmPlans(const std::string& libssl, const std::string& libcrypto, bool per_call) {
  if (auto plan = PlanFor({libssl, libssl})) {
    if (auto f = UseShared({libssl, libssl}, (*plan)->sites, per_call, 0, nullptr)) {
      (*f)->pinned = true;
      (*f)->per_call_pinned |= per_call;
      if (per_call)
        if (Status attached = UpdateSyscallTracepoints(); !attached)
          spdlog::warn("{}: per-call capture ahead of the targets: {}", libssl, attached.error());
    } else {
      spdlog::warn("{}: not probed ahead of the targets: {}", libssl, f.error());
    }
  }
  if (auto sites = CertPlanFor({libcrypto, libcrypto})) {
    if (auto f = UseShared({libcrypto, libcrypto}, **sites, false, 0, nullptr))
      (*f)->pinned = true;
    else
      spdlog::warn("{}: not probed ahead of the targets: {}", libcrypto, f.error());
  }
}

void BpfTap::Watch(pid_t pid) {
  uint32_t tgid = static_cast<uint32_t>(pid);
  uint8_t one = 1;
  bpf_map__update_elem(skel_->maps.watched, &tgid, sizeof(tgid), &one, sizeof(one), BPF_ANY);
}

void BpfTap::Unwatch(pid_t pid) {
  uint32_t tgid = static_cast<uint32_t>(pid);
  bpf_map__delete_elem(skel_->maps.watched, &tgid, sizeof(tgid), 0);
}

int BpfTap::proc_epoll_fd() const { return proc_ring_ ? ring_buffer__epoll_fd(proc_ring_) : -1; }

std::vector<tap_proc> BpfTap::TakeProcEvents() {
  if (proc_ring_) ring_buffer__consume(proc_ring_);
  std::vector<tap_proc> out;
  out.swap(proc_events_);
  return out;
}

void BpfTap::ForgetKernelTarget(pid_t pid) {
  if (targets_.count(pid)) return;
  uint32_t tgid = static_cast<uint32_t>(pid);
  bpf_map__delete_elem(skel_->maps.targets, &tgid, sizeof(tgid), 0);
  bpf_map__delete_elem(skel_->maps.ssl_layouts, &tgid, sizeof(tgid), 0);
}

void BpfTap::PruneKernelTargets() {
  std::vector<pid_t> gone;
  uint32_t key = 0, next = 0;
  const uint32_t* prev = nullptr;
  while (bpf_map__get_next_key(skel_->maps.targets, prev, &next, sizeof(next)) == 0) {
    key = next;
    prev = &key;
    pid_t pid = static_cast<pid_t>(key);
    struct stat st {};
    if (!targets_.count(pid) && ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) != 0)
      gone.push_back(pid);
  }
  for (pid_t pid : gone) ForgetKernelTarget(pid);
}

namespace {

// The (device, inode) of path: what identifies a file across processes and mount namespaces.
Result<FileKey> FileKeyOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return Error{"cannot stat " + path + ": " + std::strerror(errno)};
  return FileKey{uint64_t{st.st_dev}, uint64_t{st.st_ino}};
}

}  // namespace

Result<const SslProbePlan*> BpfTap::PlanFor(const SslLibrary& library) {
  const std::string& path = library.path;
  auto key = FileKeyOf(path);
  if (!key) return Error{key.error()};
  if (const SslProbePlan* known = plans_.Find(*key)) return known;
  auto plan = PlanSslProbes(path);
  if (!plan) return Error{plan.error()};
  spdlog::info("probe plan for {} ({}):{}", library.name, path, plan->Describe());
  return &plans_.Insert(*key, std::move(*plan));
}

Result<const std::vector<ProbeSite>*> BpfTap::CertPlanFor(const SslLibrary& library) {
  auto key = FileKeyOf(library.path);
  if (!key) return Error{key.error()};
  auto* planned = cert_plans_.Find(*key);
  if (planned == nullptr) planned = &cert_plans_.Insert(*key, PlanCertProbes(library.path));
  if (!*planned) return Error{planned->error()};
  return &**planned;
}

Result<const GoBinaryInfo*> BpfTap::GoPlanFor(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/exe";
  auto key = FileKeyOf(path);
  if (!key) return Error{key.error()};
  auto* cached = go_plans_.Find(*key);
  if (cached == nullptr) {
    Result<GoBinaryInfo> planned = InspectGoBinary(path);
    // Name the program by what the process runs, not by the /proc path used to open it.
    char target[4096];
    ssize_t n = ::readlink(path.c_str(), target, sizeof(target) - 1);
    std::string name = n > 0 ? std::string(target, static_cast<size_t>(n)) : path;
    if (planned) {
      planned->path = name;
      spdlog::info("probe plan for Go program {}", planned->Describe());
    } else if (planned.error().rfind(path, 0) == 0) {
      planned = Error{name + planned.error().substr(path.size())};
    }
    cached = &go_plans_.Insert(*key, std::move(planned));
  }
  if (!*cached) return Error{cached->error()};
  return &**cached;
}

std::vector<BpfTap::AttachSpec> BpfTap::SpecsOf(const std::vector<ProbeSite>& sites, bool per_call,
                                                bool secrets_here) const {
  std::vector<AttachSpec> specs;
  for (const ProbeSite& site : sites) {
    if (IsPerCallProbe(site.program) != per_call) continue;
    AttachSpec spec;
    spec.program = ProgramFor(skel_, site.program, &spec.retprobe);
    spec.offset = site.file_offset;
    spec.function = site.function;
    if (secrets_here && site.program == ProbeProgram::kHandshakeExit) spec.cookie = 1;
    // SSL_shutdown/SSL_free read the secrets of a handshake SSL_do_handshake did not run (bit
    // 1); bit 2 marks SSL_free, the end of the object.
    if (secrets_here && site.program == ProbeProgram::kConnEnd)
      spec.cookie = 1 | (site.function == "SSL_free" ? 2 : 0);
    specs.push_back(spec);
  }
  return specs;
}

Status BpfTap::AttachSites(const std::vector<AttachSpec>& sites, pid_t pid, const std::string& path,
                           const std::string& what, std::vector<bpf_link*>* links) {
  std::vector<bpf_link*> made;
  for (const AttachSpec& site : sites) {
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = site.cookie, .retprobe = site.retprobe);
    last_attach_ns_ = MonoNs();
    bpf_link* link =
        bpf_program__attach_uprobe_opts(site.program, pid, path.c_str(), site.offset, &opts);
    if (link == nullptr) {
      Error error{"cannot attach to " + site.function + " in " + what + ": " +
                  std::strerror(errno)};
      Reap(std::move(made));  // a process gone meanwhile: nothing waits for these
      return error;
    }
    made.push_back(link);
  }
  links->insert(links->end(), made.begin(), made.end());
  return {};
}

Result<BpfTap::SharedFile*> BpfTap::UseShared(const SslLibrary& library,
                                              const std::vector<ProbeSite>& sites, bool per_call,
                                              pid_t pid, FileKey* key_out) {
  auto key = FileKeyOf(library.path);
  if (!key) return Error{key.error()};
  auto it = shared_.find(*key);
  if (it == shared_.end()) {
    if (shared_.size() >= TAP_MAX_SHARED_FILES)
      return Error{"more than " + std::to_string(TAP_MAX_SHARED_FILES) +
                   " TLS library files probed"};
    SharedFile fresh;
    fresh.number = next_file_number_++;
    fresh.name = library.name;
    // Cookie bit 1 (the secrets are read there) on every file: the kernel reads them only with
    // a layout calibrated on this file (file_layouts), which AddTarget or SetLibraryLayout puts.
    std::vector<AttachSpec> specs = SpecsOf(sites, false, /*secrets_here=*/true);
    for (AttachSpec& spec : specs) spec.cookie |= uint64_t{fresh.number} << TAP_COOKIE_FILE_SHIFT;
    if (Status attached = AttachSites(specs, -1, library.path, library.name, &fresh.links);
        !attached)
      return Error{attached.error()};
    spdlog::debug("{}: {} probes attached for every process that maps it", library.name,
                  fresh.links.size());
    it = shared_.emplace(*key, std::move(fresh)).first;
  }
  SharedFile& f = it->second;
  if (per_call && f.per_call_links.empty()) {
    if (Status attached =
            AttachSites(SpecsOf(sites, true), -1, library.path, library.name, &f.per_call_links);
        !attached)
      return Error{attached.error()};
    spdlog::debug("{}: {} per-call probes attached for every process that maps it", library.name,
                  f.per_call_links.size());
  }
  if (pid > 0) {
    if (std::find(f.users.begin(), f.users.end(), pid) == f.users.end()) f.users.push_back(pid);
    if (per_call &&
        std::find(f.per_call_users.begin(), f.per_call_users.end(), pid) == f.per_call_users.end())
      f.per_call_users.push_back(pid);
  }
  f.idle_since_ns = 0;
  if (key_out) *key_out = *key;
  return &f;
}

void BpfTap::ReleaseShared(pid_t pid, const std::vector<FileKey>& files, bool per_call_only) {
  for (const FileKey& key : files) {
    auto it = shared_.find(key);
    if (it == shared_.end()) continue;
    SharedFile& f = it->second;
    std::erase(f.per_call_users, pid);
    if (!per_call_only) std::erase(f.users, pid);
  }
}

void BpfTap::SettleShared() {
  const uint64_t now = MonoNs();
  for (auto it = shared_.begin(); it != shared_.end();) {
    SharedFile& f = it->second;
    const bool idle = f.users.empty() && !f.pinned;
    const bool per_call_idle =
        f.per_call_users.empty() && !f.per_call_pinned && !f.per_call_links.empty();
    if (!idle && !per_call_idle) {
      f.idle_since_ns = 0;
      ++it;
      continue;
    }
    if (f.idle_since_ns == 0) f.idle_since_ns = now;
    if (now < f.idle_since_ns + kLingerNs) {
      ++it;
      continue;
    }
    spdlog::info("{}: no target has used its {}probes for {} s: detached", f.name,
                 idle ? "" : "per-call ", kLingerNs / 1000000000ull);
    Reap(std::move(f.per_call_links));
    f.per_call_links.clear();
    f.idle_since_ns = 0;
    if (!idle) {
      ++it;
      continue;
    }
    Reap(std::move(f.links));
    bpf_map__delete_elem(skel_->maps.file_layouts, &f.number, sizeof(f.number), 0);
    it = shared_.erase(it);
  }
}

void BpfTap::SetLibraryLayout(const std::string& libssl, const tap_ssl_layout& layout) {
  auto key = FileKeyOf(libssl);
  auto it = key ? shared_.find(*key) : shared_.end();
  if (it == shared_.end()) return;  // not probed: AddTarget puts the layout
  if (bpf_map__update_elem(skel_->maps.file_layouts, &it->second.number, sizeof(uint32_t), &layout,
                           sizeof(layout), BPF_ANY))
    spdlog::warn("{}: file_layouts map: {}", libssl, std::strerror(errno));
}

size_t BpfTap::SharedProbeCount() const {
  size_t n = 0;
  for (const auto& [key, f] : shared_) n += f.links.size() + f.per_call_links.size();
  return n;
}

size_t BpfTap::SharedPerCallProbeCount() const {
  size_t n = 0;
  for (const auto& [key, f] : shared_) n += f.per_call_links.size();
  return n;
}

const char* CaptureModeName(CaptureMode mode) {
  switch (mode) {
    case CaptureMode::kPlaintext:
      return "plaintext";
    case CaptureMode::kKeys:
      return "keys";
    case CaptureMode::kBoth:
      return "keys+plaintext";
  }
  return "?";
}

Result<int> BpfTap::AddTarget(const TargetProcess& target) {
  return AddTarget(target, TargetOptions{});
}

Result<int> BpfTap::AddTarget(const TargetProcess& target, const TargetOptions& options) {
  if (options.mode != CaptureMode::kPlaintext && !keys_unavailable_.empty())
    return Error{keys_unavailable_};
  DropTarget(target.pid, /*kernel=*/false);  // an exec: the kernel's entry stays meanwhile
  const bool plain = options.mode != CaptureMode::kKeys;
  const bool keys = options.mode != CaptureMode::kPlaintext;
  Target entry;
  entry.start_time = target.start_time;
  entry.mode = options.mode;
  int probed = 0;
  std::string ssl_error;
  std::optional<FileKey> layout_file;
  if (keys && options.ssl_layout && !options.ssl_layout_library.empty()) {
    auto key = FileKeyOf(options.ssl_layout_library);
    if (key)
      layout_file = *key;
    else
      ssl_error = "the calibrated libssl: " + key.error();
  }
  // OpenSSL: the probes of each library file, attached once for every process that maps it.
  std::vector<SslLibrary> libraries = FindSslLibraries(target.pid);
  for (const SslLibrary& library : libraries) {
    auto plan = PlanFor(library);
    if (!plan) {
      ssl_error = plan.error();
      continue;
    }
    // Keys capture reads the secrets with the layout calibrated on this very file.
    bool secrets_here = false;
    if (keys && options.ssl_layout) {
      secrets_here = options.ssl_layout_library.empty();
      if (!secrets_here && layout_file) {
        auto here = FileKeyOf(library.path);
        secrets_here = here && *here == *layout_file;
      }
    }
    if (!plain && !secrets_here) {
      ssl_error = library.name + (options.ssl_layout ? ": not the libssl the layout was found on"
                                                     : ": no libssl layout for keys capture");
      continue;
    }
    FileKey key;
    auto used = UseShared(library, (*plan)->sites, plain, target.pid, &key);
    if (!used) {
      ssl_error = used.error();
      continue;
    }
    SharedFile* file = *used;
    entry.files.push_back(key);
    if (plain) entry.per_call_files.push_back(key);
    if (secrets_here &&
        bpf_map__update_elem(skel_->maps.file_layouts, &file->number, sizeof(file->number),
                             &*options.ssl_layout, sizeof(tap_ssl_layout), BPF_ANY))
      spdlog::warn("{}: file_layouts map: {}", library.name, std::strerror(errno));
    ++probed;
  }
  // Client certificates: d2i_X509 and i2d_X509 in the libcrypto next to each probed libssl.
  // Without them lines still come, with the user from the request's credentials only.
  if (probed > 0) {
    for (const SslLibrary& library : FindCryptoLibraries(target.pid)) {
      FileKey key;
      auto sites = CertPlanFor(library);
      Result<SharedFile*> used =
          sites ? UseShared(library, **sites, false, target.pid, &key) : Error{sites.error()};
      if (used)
        entry.files.push_back(key);
      else
        spdlog::warn("pid {}: no client certificates: {}", target.pid, used.error());
    }
  }
  // Go programs carry their own TLS stack (crypto/tls), whatever libraries they map.
  std::string go_error;
  auto go_plan = GoPlanFor(target.pid);
  if (!go_plan) go_error = go_plan.error();
  if (go_plan) {
    const GoBinaryInfo* go = *go_plan;
    const GoTlsProbePlan& plan = go->tls;
    std::vector<AttachSpec> sites, per_call_sites;
    auto at_entry = [](std::vector<AttachSpec>* to, bpf_program* prog, const GoFunc& fn) {
      to->push_back({prog, false, fn.entry.file_offset, fn.name + " entry"});
    };
    // The cookie tells the program where n is on each return path (see go_read_return).
    auto at_returns = [](std::vector<AttachSpec>* to, bpf_program* prog, const GoFunc& fn) {
      for (const GoProbeSite& ret : fn.returns)
        to->push_back({prog, false, ret.file_offset, fn.name + " return path",
                       ret.result_rsp_offset >= 0 ? uint64_t(ret.result_rsp_offset) + 1 : 0});
    };
    if (plain) {
      at_entry(&per_call_sites, skel_->progs.go_read_enter, plan.read);
      at_returns(&per_call_sites, skel_->progs.go_read_return, plan.read);
      at_entry(&per_call_sites, skel_->progs.go_write_enter, plan.write);
      at_returns(&per_call_sites, skel_->progs.go_write_return, plan.write);
    }
    bool go_keys = keys && plan.HasKeyLog();
    if (go_keys) {
      at_entry(&sites, skel_->progs.go_keylog_enter, plan.key_log);
      for (const GoFunc* fn : {&plan.server_handshake, &plan.client_handshake})
        if (fn->address) at_entry(&sites, skel_->progs.go_handshake_enter, *fn);
    } else if (keys) {
      go_error = go->path + " has no " + plan.key_log.name + " (needed for keys capture)";
    }
    if (plan.close.address) at_entry(&sites, skel_->progs.go_close_enter, plan.close);
    if (plan.certs_from_client.address && plan.parse_certificate.address &&
        plan.full_handshake_tls13.address && plan.full_handshake_tls12.address) {
      at_entry(&sites, skel_->progs.go_full_handshake_enter, plan.full_handshake_tls13);
      at_entry(&sites, skel_->progs.go_full_handshake_enter, plan.full_handshake_tls12);
      at_entry(&sites, skel_->progs.go_certs_enter, plan.certs_from_client);
      at_returns(&sites, skel_->progs.go_certs_return, plan.certs_from_client);
      at_entry(&sites, skel_->progs.go_cert_parse_enter, plan.parse_certificate);
    }
    const std::string exe = "/proc/" + std::to_string(target.pid) + "/exe";
    if (plain || go_keys) {
      std::vector<bpf_link*> per_call;
      Status attached = AttachSites(per_call_sites, target.pid, exe, go->path, &per_call);
      if (attached) {
        attached = AttachSites(sites, target.pid, exe, go->path, &entry.links);
        if (attached) {
          entry.per_call_links.insert(entry.per_call_links.end(), per_call.begin(), per_call.end());
          ++probed;
        } else {
          Reap(std::move(per_call));
        }
      }
      if (!attached) go_error = attached.error();
    }
  }
  auto undo = [this, &entry, &target] {
    Reap(std::move(entry.links));
    Reap(std::move(entry.per_call_links));
    ReleaseShared(target.pid, entry.files, false);
  };
  if (probed == 0) {
    undo();
    if (!ssl_error.empty()) return Error{ssl_error};
    if (libraries.empty()) return Error{"no OpenSSL library mapped, and " + go_error};
    return Error{go_error};
  }
  uint32_t tgid = static_cast<uint32_t>(target.pid);
  if (keys && options.ssl_layout &&
      bpf_map__update_elem(skel_->maps.ssl_layouts, &tgid, sizeof(tgid), &*options.ssl_layout,
                           sizeof(tap_ssl_layout), BPF_ANY)) {
    Error error{std::string("ssl_layouts map full: ") + std::strerror(errno)};
    undo();
    return error;
  }
  entry.local = options.local_socket;
  targets_[target.pid] = std::move(entry);
  const uint8_t bits = (plain ? TAP_TARGET_PLAIN : 0) | (keys ? TAP_TARGET_CIPHER : 0);
  // The syscall tracepoints first: a plaintext target's accept must be seen from its start.
  Status ready = UpdateSyscallTracepoints();
  if (ready) ready = SetTargetMode(target.pid, bits);
  if (!ready) {
    RemoveTarget(target.pid);
    return Error{ready.error()};
  }
  return probed;
}

Status BpfTap::AddSocketOnlyTarget(const TargetProcess& target) {
  RemoveTarget(target.pid);
  Target entry;
  entry.start_time = target.start_time;
  entry.mode = CaptureMode::kKeys;
  targets_[target.pid] = std::move(entry);
  Status set = SetTargetMode(target.pid, TAP_TARGET_CIPHER);
  if (!set) RemoveTarget(target.pid);
  return set;
}

Status BpfTap::AddLocalOnlyTarget(const TargetProcess& target) {
  RemoveTarget(target.pid);
  Target entry;
  entry.start_time = target.start_time;
  entry.mode = CaptureMode::kKeys;  // no per-call probe, no syscall tracepoint
  entry.local = true;
  targets_[target.pid] = std::move(entry);
  Status set = SetTargetMode(target.pid, 0);
  if (!set) RemoveTarget(target.pid);
  return set;
}

Status BpfTap::SetTargetMode(pid_t pid, uint8_t bits) {
  uint32_t tgid = static_cast<uint32_t>(pid);
  if (auto it = targets_.find(pid); it != targets_.end() && it->second.local) {
    bits |= TAP_TARGET_LOCAL;
    // The close of a local connection's fd ends it: attached with the first such target.
    if (local_close_link_ == nullptr) {
      EnsureTracefs();
      local_close_link_ = bpf_program__attach(skel_->progs.tp_local_close);
      if (local_close_link_ == nullptr)
        return Error{std::string("cannot attach tracepoint tp_local_close: ") +
                     std::strerror(errno)};
    }
  }
  if (bpf_map__update_elem(skel_->maps.targets, &tgid, sizeof(tgid), &bits, sizeof(bits), BPF_ANY))
    return Error{std::string("targets map full: ") + std::strerror(errno)};
  return {};
}

Status BpfTap::UpdateSyscallTracepoints() {
  bool wanted = false;
  for (const auto& [pid, target] : targets_) wanted |= target.mode != CaptureMode::kKeys;
  // Per-call probes attached ahead of the targets (WarmPlans): a process the kernel makes a
  // plaintext target at its exec or fork needs the tracepoints from its first call too.
  for (const auto& [key, file] : shared_) wanted |= file.per_call_pinned;
  if (!wanted) {
    if (!syscall_links_.empty())
      spdlog::info("no target in plaintext capture: syscall tracepoints detached");
    for (bpf_link* link : syscall_links_) bpf_link__destroy(link);
    syscall_links_.clear();
    return {};
  }
  if (!syscall_links_.empty()) return {};
  EnsureTracefs();
  bpf_program* tracepoints[] = {
      skel_->progs.tp_enter_read,    skel_->progs.tp_enter_write,   skel_->progs.tp_enter_recvfrom,
      skel_->progs.tp_enter_sendto,  skel_->progs.tp_enter_readv,   skel_->progs.tp_enter_writev,
      skel_->progs.tp_enter_recvmsg, skel_->progs.tp_enter_sendmsg, skel_->progs.tp_enter_accept4,
      skel_->progs.tp_exit_accept4,  skel_->progs.tp_enter_accept,  skel_->progs.tp_exit_accept,
      skel_->progs.tp_enter_connect, skel_->progs.tp_enter_close,
  };
  for (bpf_program* prog : tracepoints) {
    bpf_link* link = bpf_program__attach(prog);
    if (link == nullptr) {
      Error error{std::string("cannot attach tracepoint ") + bpf_program__name(prog) + ": " +
                  std::strerror(errno)};
      for (bpf_link* l : syscall_links_) bpf_link__destroy(l);
      syscall_links_.clear();
      return error;
    }
    syscall_links_.push_back(link);
  }
  return {};
}

void BpfTap::DropPlaintextProbes(pid_t pid) {
  auto it = targets_.find(pid);
  if (it == targets_.end() || it->second.mode != CaptureMode::kBoth) return;
  Target& target = it->second;
  // The kernel stops taking per-call records first, then the probes go.
  if (Status set = SetTargetMode(pid, TAP_TARGET_CIPHER); !set)
    spdlog::warn("pid {}: {}", pid, set.error());
  for (bpf_link* link : target.per_call_links) bpf_link__destroy(link);
  target.per_call_links.clear();
  // The per-call probes of its library files go once no target has used them for a while.
  ReleaseShared(pid, target.per_call_files, /*per_call_only=*/true);
  target.per_call_files.clear();
  target.mode = CaptureMode::kKeys;
  if (Status updated = UpdateSyscallTracepoints(); !updated) spdlog::warn("{}", updated.error());
}

std::optional<CaptureMode> BpfTap::ModeOf(pid_t pid) const {
  auto it = targets_.find(pid);
  if (it == targets_.end()) return std::nullopt;
  return it->second.mode;
}

void BpfTap::Reap(std::vector<bpf_link*> links) {
  if (links.empty()) return;
  {
    std::lock_guard<std::mutex> lock(reap_mutex_);
    doomed_.insert(doomed_.end(), links.begin(), links.end());
  }
  if (!reaper_.joinable()) {
    reaper_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(reap_mutex_);
      for (;;) {
        reap_cv_.wait(lock, [this] { return reaper_stop_ || !doomed_.empty(); });
        if (doomed_.empty()) return;  // stopping, nothing left
        // Detaching a uprobe holds the kernel's trace event lock through a grace period (tens
        // of ms), which attaching one needs too: one link at a time, each once attaching has
        // been quiet for a while, so a restarted server's probes wait for one detach at most.
        uint64_t quiet_since = last_attach_ns_.load();
        uint64_t now = MonoNs();
        if (!reaper_stop_ && now < quiet_since + kReapQuietNs) {
          reap_cv_.wait_for(lock, std::chrono::nanoseconds(quiet_since + kReapQuietNs - now));
          continue;
        }
        bpf_link* link = doomed_.back();
        doomed_.pop_back();
        lock.unlock();
        bpf_link__destroy(link);
        lock.lock();
      }
    });
  }
  reap_cv_.notify_one();
}

void BpfTap::DropTarget(pid_t pid, bool kernel, bool reap) {
  auto it = targets_.find(pid);
  if (it == targets_.end()) return;
  if (kernel) {
    // The kernel stops capturing the process first, then its probes go.
    uint32_t tgid = static_cast<uint32_t>(pid);
    bpf_map__delete_elem(skel_->maps.targets, &tgid, sizeof(tgid), 0);
    bpf_map__delete_elem(skel_->maps.ssl_layouts, &tgid, sizeof(tgid), 0);
  }
  Target& target = it->second;
  std::vector<bpf_link*> links = std::move(target.links);
  links.insert(links.end(), target.per_call_links.begin(), target.per_call_links.end());
  ReleaseShared(pid, target.files, false);
  targets_.erase(it);
  if (reap) {
    Reap(std::move(links));
  } else {
    for (bpf_link* link : links) bpf_link__destroy(link);
  }
}

void BpfTap::RetireTarget(pid_t pid) {
  // Its own probes (Go) go on the reaper thread; those of its library files stay for the others.
  DropTarget(pid, /*kernel=*/true, /*reap=*/true);
  // The syscall tracepoints, if no plaintext target is left, go later (SettleTracepoints): a
  // restarted server's processes would need them again at once.
}

void BpfTap::SettleTracepoints() {
  SettleShared();
  if (MonoNs() < last_attach_ns_.load() + kReapQuietNs) return;
  (void)UpdateSyscallTracepoints();  // detaching cannot fail
}

void BpfTap::RemoveTarget(pid_t pid) {
  if (!targets_.count(pid)) return;
  DropTarget(pid, /*kernel=*/true, /*reap=*/false);
  (void)UpdateSyscallTracepoints();  // detaching cannot fail
}

bool BpfTap::HasTarget(pid_t pid, uint64_t start_time) const {
  auto it = targets_.find(pid);
  return it != targets_.end() && it->second.start_time == start_time;
}

std::vector<pid_t> BpfTap::TargetPids() const {
  std::vector<pid_t> pids;
  for (const auto& [pid, target] : targets_) pids.push_back(pid);
  return pids;
}

size_t BpfTap::ProbeCount(pid_t pid) const {
  auto it = targets_.find(pid);
  if (it == targets_.end()) return 0;
  const Target& t = it->second;
  size_t n = t.links.size() + t.per_call_links.size();
  for (const FileKey& key : t.files)
    if (auto f = shared_.find(key); f != shared_.end()) n += f->second.links.size();
  for (const FileKey& key : t.per_call_files)
    if (auto f = shared_.find(key); f != shared_.end()) n += f->second.per_call_links.size();
  return n;
}

int BpfTap::epoll_fd() const { return ring_buffer__epoll_fd(ring_); }

int BpfTap::Consume(uint64_t budget_ns) {
  consume_deadline_ns_ = budget_ns ? MonoNs() + budget_ns : 0;
  int n = ring_buffer__consume(ring_);
  consume_deadline_ns_ = 0;
  return n;
}

Counters BpfTap::ReadCounters() const {
  Counters totals{};
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return totals;
  std::vector<uint64_t> per_cpu(ncpu);
  for (uint32_t i = 0; i < TAP_CNT_MAX; ++i) {
    if (bpf_map__lookup_elem(skel_->maps.counters, &i, sizeof(i), per_cpu.data(),
                             per_cpu.size() * sizeof(uint64_t), 0) == 0)
      for (uint64_t v : per_cpu) totals[i] += v;
  }
  return totals;
}

}  // namespace mat::tap
