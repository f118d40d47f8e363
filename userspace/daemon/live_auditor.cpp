// The live auditor: wires the kernel tap, the TLS stage, the pipeline, the admin API and the
// configuration reloads together on one Boost.Asio event loop.
#include "daemon/live_auditor.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>

#include "capture/recorder.h"
#include "config/config_writer.h"
#include "conn/proc_net.h"
#include "control/admin_server.h"
#include "daemon/make_config.h"
#include "daemon/replay.h"
#include "daemon/runtime.h"
#include "pipeline/pipeline.h"
#include "tap/bpf_tap.h"
#include "tap/file_cache.h"
#include "tap/ssl_layout.h"
#include "tap/targets.h"
#include "tls/decrypt_stage.h"
#include "util/result.h"

namespace mat::daemon {
namespace {

using mat::pipeline::WallNowNs;

// Socket facts from /proc for connections that predate the auditor.
std::optional<tap_sock> ResolveFromProc(uint32_t tgid, int32_t fd) {
  tap_sock sock{};
  sock.hdr.type = TAP_EV_SOCK;
  sock.hdr.tgid = tgid;
  sock.hdr.tid = 0;  // marks a record made from /proc
  sock.hdr.fd = fd;
  sock.role = TAP_ROLE_UNKNOWN;
  if (auto facts = mat::conn::LookupSocket(static_cast<int>(tgid), fd)) {
    sock.role = facts->local_port_listening ? TAP_ROLE_SERVER : TAP_ROLE_CLIENT;
    sock.family = static_cast<uint16_t>(facts->remote.family);
    sock.port = facts->remote.port;
    std::memcpy(sock.addr, facts->remote.addr, sizeof(sock.addr));
  }
  return sock;  // an unknown socket is remembered too, so it is looked up only once
}

// Prometheus text format: a label value with \, " and line ends escaped.
std::string PromLabel(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// CLOCK_MONOTONIC in ns, the kernel's bpf_ktime_get_ns clock.
uint64_t MonoNowNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}

class LiveAuditor {
 public:
  LiveAuditor(const mat::Options& o, mat::output::AsyncLineWriter* out, int argc, char** argv)
      : options_(o),
        argc_(argc),
        argv_(argv),
        out_(out),
        clock_(mat::capture::ClockMap::Now()),
        listening_(1000000000ull),
        pipeline_(MakeConfig(o), clock_, out, &recorder_,
                  {ResolveFromProc,
                   [this](uint32_t tgid, uint16_t port) {
                     return listening_.IsListening(static_cast<int>(tgid), port, WallNowNs());
                   },
                   [this](mat::identity::LocalPeer* peer) {
                     local_lookup_.Complete(peer, MonoNowNs());
                   }}),
        ring_(io_),
        proc_ring_(io_),
        pending_timer_(io_),
        poll_timer_(io_),
        rescan_timer_(io_),
        sweep_timer_(io_),
        config_timer_(io_),
        signals_(io_),
        reload_signals_(io_, ReloadSignals()) {
    spec_.comms = o.comms;
    spec_.pids = o.pids;
  }

  int Run() {
    if (!pipeline_.started()) {
      spdlog::error("{}", pipeline_.started().error());
      return 1;
    }
    if (!options_.record_file.empty()) {
      if (Status opened = recorder_.Open(options_.record_file, clock_); !opened) {
        spdlog::error("{}", opened.error());
        return 1;
      }
      spdlog::warn("recording raw TLS plaintext to {} (mode 0600)", options_.record_file);
    }
    if (!options_.admin_listen.empty()) {
      if (Status started = StartAdmin(); !started) {
        spdlog::error("{}", started.error());
        return 1;
      }
    }
    if (options_.level != mat::audit::Level::kNone) {
      if (Status attached = Attach(); !attached) {
        spdlog::error("{}", attached.error());
        return 1;
      }
      spdlog::info("ready: auditing {} process(es) at level {}", tap_->TargetPids().size(),
                   mat::audit::LevelName(options_.level));
    } else {
      spdlog::info("ready: audit level none, nothing is captured");
    }
    NotifySystemd();

    SchedulePoll();
    ScheduleRescan();
    ScheduleSweep();
    ScheduleLossCheck();
    signals_.Wait([this](int signo) {
      spdlog::info("signal {}: flushing and exiting", signo);
      stop_at_ = std::chrono::steady_clock::now();
      Drain();
      io_.stop();
    });
    WaitReloadSignal();
    if (!options_.config_file.empty()) {
      config_stamp_ = StampOf(options_.config_file);
      ScheduleConfigCheck();
    }
    io_.run();
    admin_.reset();
    pipeline_.Finish(WallNowNs());
    recorder_.Close();
    if (tap_) LogCounters();
    out_->SetLossTotals(LossTotals());  // the last loss notice counts everything
    out_->Flush();
    LogPipelineSummary(pipeline_);
    // The probes go while the writer thread writes what is left: the kernel takes a while to
    // detach each uprobe (an RCU grace period, 0.1 s or more on a busy machine).
    if (tap_) {
      boost::system::error_code ec;
      ring_.close(ec);
      tap_.reset();
      stage_.reset();
    }
    return CloseOutput() && exit_code_ == 0 ? 0 : 1;
  }

 private:
  // ---- capture on and off (level none attaches nothing) ----------------------------------
  Status Attach() {
    mat::tap::TapOptions tap_options;
    tap_options.cap_bytes = options_.cap_bytes;
    tap_options.ringbuf_bytes = options_.ringbuf_bytes;
    tap_options.wakeup_bytes = options_.ringbuf_bytes / 8;
    if (options_.capture != "plaintext") {
      // Ciphertext and secrets become plaintext records here; nothing else changes downstream.
      mat::tls::StageOptions stage_options;
      stage_options.max_connections = options_.max_connections;
      stage_ = std::make_unique<mat::tls::DecryptStage>(
          [this](const void* data, size_t size) { pipeline_.OnRecord(data, size); }, stage_options);
    }
    auto tap = mat::tap::BpfTap::Create(tap_options, [this](const void* data, size_t size) {
      if (stage_)
        stage_->OnRecord(data, size);
      else
        pipeline_.OnRecord(data, size);
    });
    if (!tap) {
      stage_.reset();
      return Error{tap.error()};
    }
    tap_ = std::move(*tap);
    failed_.clear();
    // Targets are found at their exec or fork; the rescan stays as a safety net.
    if (mat::Status watching =
            tap_->WatchProcesses(spec_.comms, tap_->KernelModeFor(options_.capture), spec_.pids)) {
      proc_ring_.assign(::dup(tap_->proc_epoll_fd()));
      WaitProc();
    } else {
      spdlog::warn("targets are found by the rescan only (every {} ms): {}", options_.rescan_ms,
                   watching.error());
    }
    WarmLayouts();
    Rescan();
    ring_.assign(::dup(tap_->epoll_fd()));
    WaitRing();
    return {};
  }

  // Detaches every probe and tracepoint (the BPF objects go with the tap); the requests still
  // waiting are written first, at the level they were captured at.
  void Detach() {
    if (!tap_) return;
    Drain();
    boost::system::error_code ec;
    ring_.cancel(ec);
    ring_.close(ec);
    if (proc_ring_.is_open()) {
      proc_ring_.cancel(ec);
      proc_ring_.close(ec);
    }
    pending_.clear();
    pending_timer_.cancel();
    signatures_.clear();
    auto counters = tap_->ReadCounters();
    for (int i = 0; i < TAP_CNT_MAX; ++i) counters_before_[i] += counters[i];
    uint64_t now = WallNowNs();
    for (pid_t pid : tap_->TargetPids()) {
      pipeline_.OnProcessExit(static_cast<uint32_t>(pid), now);
      listening_.Forget(pid);
    }
    out_->Flush();
    tap_.reset();
    stage_.reset();            // wipes every secret and key it held
    suites_reported_.clear();  // the next stage counts from 0
    stage_losses_reported_ = 0;
    comms_.clear();
    failed_.clear();
    bridges_.clear();
  }

  // Level, ignore list and redaction at once; attaches or detaches the probes as the level
  // needs. An error says why capture could not start (then nothing changed).
  Status SetPolicy(mat::audit::PolicyConfig policy) {
    bool capture = policy.level != mat::audit::Level::kNone;
    if (tap_) Drain();  // what was captured before the change is written at the old level
    if (capture && !tap_) {
      if (Status attached = Attach(); !attached)
        return Error{"cannot attach the probes: " + attached.error()};
      spdlog::info("capture on: auditing {} process(es)", tap_->TargetPids().size());
    }
    if (!capture && tap_) {
      Detach();
      spdlog::info("capture off: every probe detached");
    }
    pipeline_.SetPolicy(std::move(policy));
    return {};
  }

  // ---- the admin API ------------------------------------------------------------------------
  Status StartAdmin() {
    mat::control::AdminServerOptions admin;
    admin.listen = options_.admin_listen;
    admin.cert_file = options_.admin_cert;
    admin.key_file = options_.admin_key;
    admin.ca_file = options_.admin_ca;
    backend_.settings = [this] { return Settings(); };
    backend_.apply = [this](const mat::control::LoggingSettings& s) { return ApplyFromApi(s); };
    backend_.metrics = [this] { return Metrics(); };
    auto started = mat::control::AdminServer::Start(
        io_, admin, [this](const mat::control::AdminRequest& request) {
          return mat::control::HandleAdminRequest(request, backend_, options_.admin_subjects);
        });
    if (!started) return Error{started.error()};
    admin_ = std::move(*started);
    spdlog::info("admin API on https://{} (client certificates of {}; {} admin subject(s))",
                 admin_->local_endpoint(), options_.admin_ca, options_.admin_subjects.size());
    if (options_.admin_subjects.empty())
      spdlog::warn("admin API: no --admin-subject, so no client may change settings");
    return {};
  }

  mat::control::LoggingSettings Settings() const {
    mat::control::LoggingSettings s;
    s.log_level = options_.log_level;
    s.audit_level = pipeline_.level();
    s.support_dump_include_audit_logs = options_.support_dump_include_audit_logs;
    return s;
  }

  // A PUT: applied at once, then written back to the configuration file when there is one.
  Status ApplyFromApi(const mat::control::LoggingSettings& next) {
    mat::control::LoggingSettings before = Settings();
    if (next.audit_level != before.audit_level) {
      mat::audit::PolicyConfig policy = pipeline_.policy();
      policy.level = next.audit_level;
      if (Status set = SetPolicy(std::move(policy)); !set) return set;
      options_.level = next.audit_level;
    }
    if (next.log_level != before.log_level) {
      SetLogLevel(next.log_level);
      options_.log_level = next.log_level;
    }
    options_.support_dump_include_audit_logs = next.support_dump_include_audit_logs;
    spdlog::info("admin API: audit level {}, log level {}, support dump with audit logs {}",
                 LevelText(next.audit_level), next.log_level, next.support_dump_include_audit_logs);
    if (options_.config_file.empty() || next == before) return {};
    std::vector<std::pair<std::string, std::string>> audit_keys, our_keys;
    if (next.audit_level != before.audit_level)
      audit_keys.emplace_back("level",
                              mat::config::TomlString(mat::audit::LevelName(next.audit_level)));
    if (next.support_dump_include_audit_logs != before.support_dump_include_audit_logs)
      audit_keys.emplace_back("support_dump_include_audit_logs",
                              next.support_dump_include_audit_logs ? "true" : "false");
    if (next.log_level != before.log_level)
      our_keys.emplace_back("log_level", mat::config::TomlString(next.log_level));
    mat::Status saved;
    if (!audit_keys.empty())
      saved =
          mat::config::WriteTomlKeys(options_.config_file, "audit_log_configuration", audit_keys);
    if (saved && !our_keys.empty())
      saved = mat::config::WriteTomlKeys(options_.config_file, "mke_audit_tap", our_keys);
    config_stamp_ = StampOf(options_.config_file);  // our own write is no change to reload
    if (!saved)
      spdlog::warn("admin API: applied but not saved (a restart will not keep it): {}",
                   saved.error());
    else if (options_.level_flag && next.audit_level != before.audit_level)
      spdlog::warn(
          "admin API: saved to {}, but the --level flag wins over it at a reload or "
          "restart",
          options_.config_file);
    return {};
  }

  static std::string LevelText(mat::audit::Level level) {
    return level == mat::audit::Level::kNone ? "none" : std::string(mat::audit::LevelName(level));
  }

  std::string Metrics() const {
    std::string m;
    auto metric = [&](const char* name, const char* type, const char* help) {
      m += fmt::format("# HELP mke_audit_tap_{} {}\n# TYPE mke_audit_tap_{} {}\n", name, help, name,
                       type);
    };
    const auto& p = pipeline_.stats();
    metric("audit_lines_total", "counter", "Audit lines written to stdout.");
    m += fmt::format("mke_audit_tap_audit_lines_total {}\n", out_->lines_written());
    metric("audit_lines_lost_total", "counter", "Audit lines that could not be written.");
    m += fmt::format("mke_audit_tap_audit_lines_lost_total {}\n", out_->lines_lost());
    metric("output_queued_bytes", "gauge",
           "Audit lines decided and not yet taken by stdout, bytes (at most --output-buffer).");
    m += fmt::format("mke_audit_tap_output_queued_bytes {}\n", out_->queued_bytes());
    metric("loss_notices_total", "counter", "Loss notice lines written to stdout.");
    m += fmt::format("mke_audit_tap_loss_notices_total {}\n", out_->notices_written());
    metric("lost_total", "counter",
           "Every loss announced (or to be) by the loss notices on stdout, by reason.");
    {
      auto lost = out_->losses();
      for (const auto& [reason, n] : LossTotals()) lost.try_emplace(reason, 0);
      for (const auto& [reason, n] : lost)
        m += fmt::format("mke_audit_tap_lost_total{{reason=\"{}\"}} {}\n", PromLabel(reason), n);
    }
    metric("not_audited_total", "counter", "Exchanges the policy skipped (ignored paths).");
    m += fmt::format("mke_audit_tap_not_audited_total {}\n", p.not_audited);
    metric("local_socket_enabled", "gauge",
           "1 when the local (Unix socket) API of dockerd targets is audited (--local-socket).");
    m += fmt::format("mke_audit_tap_local_socket_enabled {}\n", options_.local_socket ? 1 : 0);
    metric("local_socket_connections_total", "counter",
           "Local socket connections seen (accepted by a dockerd target on a Unix socket).");
    m += fmt::format("mke_audit_tap_local_socket_connections_total {}\n", p.local_connections);
    metric("local_socket_ignored_calls_total", "counter",
           "Calls on the local socket not written: their peer matched --local-socket-ignore.");
    m += fmt::format("mke_audit_tap_local_socket_ignored_calls_total {}\n", p.local_ignored_calls);
    metric("records_total", "counter", "Tap records received from the kernel.");
    m += fmt::format("mke_audit_tap_records_total {}\n", p.records);
    metric("bad_records_total", "counter", "Tap records that could not be decoded.");
    m += fmt::format("mke_audit_tap_bad_records_total {}\n", p.bad_records);
    metric("audit_lines_by_kind_total", "counter",
           "Audit lines written, by the level they were written at and their kind.");
    for (auto level : {mat::audit::Level::kMetadata, mat::audit::Level::kRequest})
      for (int kind : {0, 1})
        m += fmt::format("mke_audit_tap_audit_lines_by_kind_total{{level=\"{}\",kind=\"{}\"}} {}\n",
                         LevelText(level), kind ? "kubernetes" : "docker-swarm",
                         p.lines_by[static_cast<int>(level)][kind]);
    metric("connections_opened_total", "counter", "Connections tracked since the start.");
    m += fmt::format("mke_audit_tap_connections_opened_total {}\n",
                     pipeline_.tracker().stats().connections_opened);
    metric("connections_tracked", "gauge", "Connections tracked now.");
    m += fmt::format("mke_audit_tap_connections_tracked {}\n",
                     pipeline_.tracker().open_connections());
    mat::tap::Counters counters = counters_before_;
    if (tap_) {
      auto now = tap_->ReadCounters();
      for (int i = 0; i < TAP_CNT_MAX; ++i) counters[i] += now[i];
    }
    metric("losses_total", "counter", "What the kernel side lost, by reason.");
    for (int i : {TAP_CNT_RINGBUF_DROPS, TAP_CNT_TRUNC_CALLS, TAP_CNT_READ_FAULTS,
                  TAP_CNT_CONN_MAP_FULL, TAP_CNT_UNTRACKED_CALLS})
      m += fmt::format("mke_audit_tap_losses_total{{reason=\"{}\"}} {}\n", mat::tap::CounterName(i),
                       counters[i]);
    metric("caps_hit_total", "counter",
           "Memory caps hit in userspace, by cap: requests audited early or incomplete, header "
           "lists or bodies cut, connections ended early, session tokens forgotten.");
    for (const auto& [reason, value] : pipeline_.CapsHit())
      m += fmt::format("mke_audit_tap_caps_hit_total{{reason=\"{}\"}} {}\n", reason, value);
    if (stage_) {
      metric("tls_stage_total", "counter",
             "The TLS stage (keys capture): what it decrypted and what it could not.");
      for (const auto& [name, value] : StageCounters(stage_->stats()))
        m += fmt::format("mke_audit_tap_tls_stage_total{{counter=\"{}\"}} {}\n", name, value);
    }
    metric("kernel_counter_total", "counter", "Every kernel counter of the tap.");
    for (int i = 0; i < TAP_CNT_MAX; ++i)
      m += fmt::format("mke_audit_tap_kernel_counter_total{{counter=\"{}\"}} {}\n",
                       mat::tap::CounterName(i), counters[i]);
    metric("audit_level", "gauge", "The audit level in force (1 for the current one).");
    for (auto level :
         {mat::audit::Level::kNone, mat::audit::Level::kMetadata, mat::audit::Level::kRequest})
      m += fmt::format("mke_audit_tap_audit_level{{level=\"{}\"}} {}\n", LevelText(level),
                       pipeline_.level() == level ? 1 : 0);
    metric("capture_attached", "gauge", "1 when the probes are attached.");
    m += fmt::format("mke_audit_tap_capture_attached {}\n", tap_ ? 1 : 0);
    metric("targets", "gauge", "Target processes probed.");
    std::vector<pid_t> pids = tap_ ? tap_->TargetPids() : std::vector<pid_t>{};
    m += fmt::format("mke_audit_tap_targets {}\n", pids.size());
    metric(
        "target_info", "gauge",
        "One per target process probed, with its capture mode (keys: secrets per handshake, "
        "socket bytes decrypted; plaintext: uprobes on every TLS call; keys+plaintext: keys, plus "
        "per-call probes for connections older than the auditor).");
    for (pid_t pid : pids) {
      auto it = comms_.find(pid);
      auto mode = tap_->ModeOf(pid);
      m +=
          fmt::format("mke_audit_tap_target_info{{pid=\"{}\",comm=\"{}\",capture_mode=\"{}\"}} 1\n",
                      pid, PromLabel(it == comms_.end() ? "" : it->second),
                      mode ? mat::tap::CaptureModeName(*mode) : "none");
    }
    metric("probes_attached", "gauge",
           "Probes attached: uprobes per target process, tracepoints once for all.");
    for (pid_t pid : pids)
      m += fmt::format("mke_audit_tap_probes_attached{{kind=\"uprobe\",pid=\"{}\"}} {}\n", pid,
                       tap_->ProbeCount(pid));
    m += fmt::format("mke_audit_tap_probes_attached{{kind=\"tracepoint\",pid=\"\"}} {}\n",
                     tap_ ? tap_->TracepointCount() : 0);
    return m;
  }

  // ---- configuration reloads: SIGHUP, and a change of the file ------------------------------
  void WaitReloadSignal() {
    reload_signals_.Wait([this](int) {
      Reload("SIGHUP");
      WaitReloadSignal();
    });
  }

  struct Stamp {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  static Stamp StampOf(const std::string& path) {
    struct stat st {};
    Stamp s;
    if (::stat(path.c_str(), &st) != 0) return s;
    s.exists = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    return s;
  }

  void ScheduleConfigCheck() {
    config_timer_.expires_after(std::chrono::seconds(1));
    config_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      Stamp now = StampOf(options_.config_file);
      if (!(now == config_stamp_)) {
        config_stamp_ = now;
        if (now.exists) Reload("change of " + options_.config_file);
      }
      ScheduleConfigCheck();
    });
  }

  // Rereads the file and the flags (flags win, as at start) and applies what can change while
  // running: level, log level, support dump flag, ignore and redaction lists, targets. A broken
  // file changes nothing; the error names the file and line.
  void Reload(const std::string& why) {
    auto next = mat::ParseOptions(argc_, argv_);
    if (!next) {
      spdlog::error("reload ({}): keeping the running configuration: {}", why, next.error());
      return;
    }
    mat::audit::PolicyConfig policy = MakeConfig(*next).policy;
    mat::tap::TargetSpec old_spec = spec_;
    spec_.comms = next->comms;  // before SetPolicy, which may attach and scan for them
    spec_.pids = next->pids;
    if (Status set = SetPolicy(std::move(policy)); !set) {
      spec_ = old_spec;
      spdlog::error("reload ({}): keeping the running configuration: {}", why, set.error());
      return;
    }
    if (next->log_level != options_.log_level) SetLogLevel(next->log_level);
    options_.level = next->level;
    options_.log_level = next->log_level;
    options_.support_dump_include_audit_logs = next->support_dump_include_audit_logs;
    options_.ignore = next->ignore;
    options_.no_default_ignore = next->no_default_ignore;
    options_.redact = next->redact;
    options_.no_default_redact = next->no_default_redact;
    options_.audit_grpc = next->audit_grpc;
    pipeline_.SetLocalSocketIgnore(next->local_socket_ignore);
    options_.local_socket_ignore = next->local_socket_ignore;
    if (next->local_socket != options_.local_socket)
      spdlog::warn("reload ({}): local_socket = {} takes effect at the next start", why,
                   next->local_socket ? "on" : "off");
    if (tap_) Rescan();
    spdlog::info(
        "reload ({}): audit level {}, log level {}, {} ignored path(s), {} redacted "
        "call(s)",
        why, LevelText(next->level), next->log_level, pipeline_.policy().ignore.size(),
        pipeline_.policy().redaction.redacted_calls.size());
  }

  void WaitRing() {
    ring_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                     [this](const boost::system::error_code& ec) {
                       if (ec) return;
                       Drain();
                       WaitRing();
                     });
  }

  // The BPF side wakes us only when the ring fills up; normally we drain it on this timer.
  void SchedulePoll() {
    poll_timer_.expires_after(std::chrono::milliseconds(options_.poll_ms));
    poll_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      Drain();                       // nothing while detached
      if (tap_) HandleProcEvents();  // a wake-up that came between two waits
      if (out_->fatal_error() != 0) return OutputGone();
      SchedulePoll();
    });
  }

  // Hands every record in the ring to the pipeline, then writes the lines they completed.
  void Drain() {
    if (!tap_) return;
    // In slices of 5 ms: a process reported at its exec or fork is probed between two.
    int n;
    while ((n = tap_->Consume(5000000)) == -EAGAIN) {
      out_->Flush();
      if (!draining_) {
        draining_ = true;
        HandleProcEvents();
        draining_ = false;
      }
    }
    if (n < 0) spdlog::warn("ring buffer: {}", std::strerror(-n));
    out_->Flush();
  }

  void Rescan() {
    std::map<pid_t, uint64_t> present;
    for (const auto& target : mat::tap::ScanTargets(spec_)) {
      present[target.pid] = target.start_time;
      tap_->Watch(target.pid);                   // its forks and execs are reported at once
      if (pending_.count(target.pid)) continue;  // being probed since its exec
      auto key = std::make_pair(target.pid, target.start_time);
      if (tap_->HasTarget(target.pid, target.start_time)) {
        // A TLS library loaded since (dlopen) or replaced: probed again.
        auto sig = signatures_.find(target.pid);
        std::string now = mat::tap::TlsLibrarySignature(target.pid);
        // Nothing mapped: exiting (or a zombie); the process is not probed again for that.
        if (sig == signatures_.end() || sig->second == now || now.empty()) continue;
        spdlog::info("pid {} ({}): its TLS libraries changed, probing it again", target.pid,
                     target.comm);
      } else if (auto f = failed_.find(key); f != failed_.end()) {
        // Not audited so far: tried again once it maps other TLS libraries (dlopen).
        if (f->second == mat::tap::TlsLibrarySignature(target.pid)) continue;
      }
      auto attached = TryAttach(target);
      if (!tap_->HasTarget(target.pid, target.start_time))
        spdlog::info("pid {} ({}) not audited: {}", target.pid, target.comm,
                     attached ? std::string() : attached.error());
    }
    tap_->PruneKernelTargets();
    tap_->SettleTracepoints();
    for (pid_t pid : tap_->TargetPids()) {
      auto it = present.find(pid);
      if (it == present.end() || !tap_->HasTarget(pid, it->second)) {
        ForgetTarget(pid);
        spdlog::info("pid {} is gone", pid);
      }
    }
    for (auto it = failed_.begin(); it != failed_.end();) {
      auto p = present.find(it->first.first);
      it =
          (p == present.end() || p->second != it->first.second) ? failed_.erase(it) : std::next(it);
    }
    EndBridges();
  }

  // A target gone (exited, or running a program no longer selected): its probes retired, its
  // connections ended (their last exchanges written), what was kept about it forgotten. Its
  // records still in the ring come first.
  void ForgetTarget(pid_t pid) {
    if (!draining_) Drain();
    tap_->RetireTarget(pid);
    pipeline_.OnProcessExit(static_cast<uint32_t>(pid), WallNowNs());
    listening_.Forget(pid);
    comms_.erase(pid);
    bridges_.erase(pid);
    signatures_.erase(pid);
  }

  // ---- stdout: losses announced in-band, a reader that is gone, the exit -----------------------
  // Every loss the stages count, by reason, as cumulative totals (output/loss_notice.h). One
  // loss may show at several stages (a record the ring buffer dropped is a gap further on).
  std::vector<std::pair<std::string, uint64_t>> LossTotals() const {
    std::vector<std::pair<std::string, uint64_t>> v;
    mat::tap::Counters counters = counters_before_;
    if (tap_) {
      auto now = tap_->ReadCounters();
      for (int i = 0; i < TAP_CNT_MAX; ++i) counters[i] += now[i];
    }
    for (int i :
         {TAP_CNT_RINGBUF_DROPS, TAP_CNT_TRUNC_CALLS, TAP_CNT_READ_FAULTS, TAP_CNT_CONN_MAP_FULL,
          TAP_CNT_UNTRACKED_CALLS, TAP_CNT_CIPHER_UNCOVERED, TAP_CNT_SECRET_FAULTS})
      v.emplace_back(mat::tap::CounterName(i), counters[i]);
    if (stage_) {
      for (const auto& [name, value] :
           mat::tls::StageCounterValues(stage_->stats(), mat::tls::kStageLoss))
        v.emplace_back("tls_" + std::string(name), value);
    }
    const auto& p = pipeline_.stats();
    const auto& t = pipeline_.tracker().stats();
    mat::http::Http1Stats h;
    mat::http::Http2Stats h2;
    pipeline_.tracker().AddHttpStats(&h, &h2);
    for (const auto& [name, value] : std::initializer_list<std::pair<const char*, uint64_t>>{
             {"bad_records", p.bad_records},
             {"stream_gaps", t.gaps},
             {"http_parse_errors", h.parse_errors},
             {"http_orphan_responses", h.orphan_responses},
             {"http_dropped_requests", h.dropped_requests},
             {"http_requests_after_close", h.requests_after_close},
             {"http_bytes_after_close", h.bytes_after_close},
             {"http2_dropped_streams", h2.dropped_streams},
             {"http2_header_lists_truncated", h2.header_lists_truncated},
             {"http2_hpack_errors", h2.hpack_errors},
             {"http2_fatal_errors", h2.fatal_errors}})
      v.emplace_back(name, value);
    // Memory caps: the requests they touch are still audited (incomplete), or counted above.
    for (const auto& [reason, value] : pipeline_.CapsHit())
      v.emplace_back("cap_" + std::string(reason), value);
    return v;
  }

  // Hands the loss counts to the writer (which announces them) and logs failed writes.
  void ScheduleLossCheck() {
    loss_timer_.expires_after(std::chrono::milliseconds(500));
    loss_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      out_->SetLossTotals(LossTotals());
      uint64_t failed = out_->lines_write_failed();
      if (failed != write_failed_reported_) {
        spdlog::error("stdout: {} line(s) lost to failed writes: {}",
                      failed - write_failed_reported_, std::strerror(out_->last_error()));
        write_failed_reported_ = failed;
      }
      uint64_t full = out_->lines_dropped_full();
      if (full != dropped_full_reported_) {
        spdlog::warn(
            "stdout: {} line(s) dropped: the output buffer is full (--output-buffer {} bytes; "
            "the reader of stdout is slow or stalled)",
            full - dropped_full_reported_, options_.output_buffer_bytes);
        dropped_full_reported_ = full;
      }
      ScheduleLossCheck();
    });
  }

  // The reader of stdout is gone (EPIPE): every later line would be lost, so the auditor ends.
  void OutputGone() {
    spdlog::error(
        "stdout is closed (write: {}; the reader of the audit lines is gone): exiting; {} "
        "line(s) written, {} not written",
        std::strerror(out_->fatal_error()), out_->lines_written(), out_->lines_unwritten());
    exit_code_ = 1;
    io_.stop();
  }

  // Writes what is held for at most --exit-timeout; says what could not be written. True when
  // every line was written.
  bool CloseOutput() {
    auto t0 = std::chrono::steady_clock::now();
    // --exit-timeout counts from the signal.
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::seconds(options_.exit_timeout_s));
    if (stop_at_) timeout -= std::chrono::duration_cast<std::chrono::milliseconds>(t0 - *stop_at_);
    bool all = out_->Close(std::max(timeout, std::chrono::milliseconds(0)));
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    std::string lost;
    for (const auto& [reason, n] : out_->losses())
      if (reason.rfind("output_", 0) == 0) lost += fmt::format(", {} {}", n, reason);
    if (out_->fatal_error() != 0) {
      spdlog::error("output: {} lines written, {} not written (stdout: {}){}",
                    out_->lines_written(), out_->lines_unwritten(),
                    std::strerror(out_->fatal_error()), lost);
    } else if (out_->lines_unwritten() != 0) {
      spdlog::error(
          "output: {} lines written, {} not written: stdout did not take them within "
          "--exit-timeout {} s{}{}",
          out_->lines_written(), out_->lines_unwritten(), options_.exit_timeout_s, lost,
          out_->last_line_cut_short() ? " (the last line written is cut short)" : "");
    } else if (!all) {
      spdlog::warn("output: {} lines written in all{}", out_->lines_written(), lost);
    } else {
      spdlog::info("output: {} lines written ({} ms to write the last ones)", out_->lines_written(),
                   ms);
    }
    return out_->fatal_error() == 0 && out_->lines_unwritten() == 0;
  }

  // Probes target (AddOne), and remembers its TLS libraries, so that a change is seen; a
  // failure is remembered with them too. Returns AddOne's count, or why not.
  mat::Result<int> TryAttach(const mat::tap::TargetProcess& target, bool fresh = false) {
    auto key = std::make_pair(target.pid, target.start_time);
    std::string signature = mat::tap::TlsLibrarySignature(target.pid);
    mat::Result<int> libraries = AddOne(target, fresh);
    if (libraries) {
      comms_[target.pid] = target.comm;
      signatures_[target.pid] = std::move(signature);
      failed_.erase(key);
    } else {
      tap_->ForgetKernelTarget(target.pid);
      failed_[key] = std::move(signature);
    }
    return libraries;
  }

  // ---- attach at exec: processes reported by the kernel as they fork or exec --------------------
  void WaitProc() {
    proc_ring_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                          [this](const boost::system::error_code& ec) {
                            if (ec || !tap_) return;
                            HandleProcEvents();
                            WaitProc();
                          });
  }

  void HandleProcEvents() {
    for (const tap_proc& ev : tap_->TakeProcEvents()) {
      pid_t pid = static_cast<pid_t>(ev.hdr.tgid);
      spdlog::debug("process event: pid {} {} ({:.16s}), {:.1f} ms ago", pid,
                    ev.kind == TAP_PROC_EXEC ? "exec" : "fork",
                    reinterpret_cast<const char*>(ev.comm),
                    static_cast<double>(MonoNowNs() - ev.hdr.ts_ns) / 1e6);
      auto target = mat::tap::ReadTarget(pid, spec_);
      if (!target) {
        // Gone already, or no longer selected (a target that ran another program).
        tap_->Unwatch(pid);
        if (comms_.count(pid)) ForgetTarget(pid);
        tap_->ForgetKernelTarget(pid);
        continue;
      }
      // A fork of a probed process is probed once; an exec runs a new program: probed anew.
      if (ev.kind == TAP_PROC_FORK && tap_->HasTarget(pid, target->start_time)) continue;
      pending_[pid] = {ev.hdr.ts_ns, ev.kind, *target};
      TryPending(pid);
    }
    SchedulePending();
  }

  // A process reported at its exec may not map its TLS library yet (the dynamic loader maps it
  // right after): it is tried again every 2 ms for a while, then left to the rescan.
  void TryPending(pid_t pid) {
    auto it = pending_.find(pid);
    if (it == pending_.end()) return;
    Pending& p = it->second;
    const char* how = p.kind == TAP_PROC_EXEC ? "exec" : "fork";
    double ms = static_cast<double>(MonoNowNs() - p.since_ns) / 1e6;
    // The dynamic loader maps libssl, then libcrypto: both, or wait.
    if (ms < kPendingMs && !mat::tap::FindSslLibraries(pid).empty() &&
        mat::tap::FindCryptoLibraries(pid).empty())
      return;
    uint64_t t0 = MonoNowNs();
    auto libraries = TryAttach(p.target, /*fresh=*/true);
    if (libraries) {
      double total = static_cast<double>(MonoNowNs() - p.since_ns) / 1e6;
      spdlog::debug("pid {}: probes attached in {:.1f} ms", pid,
                    static_cast<double>(MonoNowNs() - t0) / 1e6);
      spdlog::info("attached pid {} ({}) {:.1f} ms after {}", pid, p.target.comm, total, how);
      pending_.erase(it);
      return;
    }
    if (ms >= kPendingMs || ::kill(pid, 0) != 0) {
      spdlog::info("pid {} ({}) not audited {:.0f} ms after its {}: {}", pid, p.target.comm, ms,
                   how, libraries.error());
      pending_.erase(it);
    }
  }

  void SchedulePending() {
    if (pending_.empty() || pending_armed_) return;
    pending_armed_ = true;
    pending_timer_.expires_after(std::chrono::milliseconds(2));
    pending_timer_.async_wait([this](const boost::system::error_code& ec) {
      pending_armed_ = false;
      if (ec || !tap_) return;
      std::vector<pid_t> pids;
      for (const auto& [pid, p] : pending_) pids.push_back(pid);
      for (pid_t pid : pids) TryPending(pid);
      SchedulePending();
    });
  }

  // ---- keys capture: how each target is captured ---------------------------------------------
  // Probes one target in the configured capture. auto: keys where the process allows it (its
  // libssl calibrated, or Go's writeKeyLog found), else the per-call probes, with one line why.
  // Connections the process has open now predate the auditor (no handshake to take secrets
  // from): the per-call probes stay for them, within the bridge window.
  // fresh: a process found at its fork or exec: any connection it has was inherited from a
  // probed parent or kept across exec, never bridged (and its start is not slowed by a look).
  // Returns the number of TLS libraries probed (at least 1), or why none was.
  mat::Result<int> AddOne(const mat::tap::TargetProcess& target, bool fresh = false) {
    using mat::tap::CaptureMode;
    auto libraries = [](int n) { return n == 1 ? "y" : "ies"; };
    // dockerd's local API (its Unix sockets): from the socket tracepoints, in any mode.
    const bool local_wanted = options_.local_socket && target.comm == "dockerd";
    const bool local = local_wanted && tap_->keys_unavailable().empty();
    if (local_wanted && !local)
      spdlog::warn("pid {} ({}): its local socket is not audited: {}", target.pid, target.comm,
                   tap_->keys_unavailable());
    if (local) NoteDockerd(target.pid);
    if (options_.capture == "plaintext") {
      mat::tap::TargetOptions plain;
      plain.local_socket = local;
      auto n = tap_->AddTarget(target, plain);
      if (!n && local) return AddLocalOnly(target, n.error());
      if (n)
        spdlog::info(
            "auditing pid {} ({}): per-call probes (--capture plaintext), {} TLS "
            "librar{} probed",
            target.pid, target.comm, *n, libraries(*n));
      return n;
    }
    mat::tap::TargetOptions keys;
    keys.local_socket = local;
    std::string why = tap_->keys_unavailable();  // why keys capture cannot cover the process
    auto ssl =
        why.empty() ? mat::tap::FindSslLibraries(target.pid) : std::vector<mat::tap::SslLibrary>{};
    if (!ssl.empty()) {
      const LayoutResult& layout = LayoutFor(target.pid, ssl.front());
      if (layout.layout) {
        keys.ssl_layout = layout.layout;
        keys.ssl_layout_library = ssl.front().path;
      } else {
        why = "libssl " + ssl.front().name + ": " + layout.why;
      }
    }
    std::set<unsigned long> open;
    if (options_.bridge_window_s > 0 && !fresh) open = mat::conn::OpenTcpConnections(target.pid);
    keys.mode = open.empty() ? CaptureMode::kKeys : CaptureMode::kBoth;
    mat::Result<int> n = why.empty() ? tap_->AddTarget(target, keys) : mat::Error{why};
    if (n) {
      spdlog::info(
          "auditing pid {} ({}): keys capture (TLS secrets per handshake, socket bytes "
          "decrypted here), {} TLS librar{} probed",
          target.pid, target.comm, *n, libraries(*n));
      if (!open.empty()) {
        bridges_[target.pid] = {
            std::chrono::steady_clock::now() + std::chrono::seconds(options_.bridge_window_s),
            std::move(open)};
        spdlog::info(
            "pid {} ({}): per-call probes kept for {} connection(s) opened before the "
            "auditor, until they close (at most {} s)",
            target.pid, target.comm, bridges_[target.pid].sockets.size(), options_.bridge_window_s);
      }
      return n;
    }
    if (why.empty()) why = n.error();
    if (options_.capture == "keys") {
      std::string error = "keys capture not possible: " + why;
      if (local) return AddLocalOnly(target, error);
      return mat::Error{error};
    }
    mat::tap::TargetOptions plain;
    plain.local_socket = local;
    n = tap_->AddTarget(target, plain);
    if (!n && local) return AddLocalOnly(target, n.error());
    if (n)
      spdlog::warn(
          "auditing pid {} ({}): per-call probes for pid {}, {} TLS librar{} probed "
          "(keys capture not possible: {})",
          target.pid, target.comm, target.pid, *n, libraries(*n), why);
    return n;
  }

  // A dockerd whose TLS could not be probed (or that serves none): its local API still is.
  mat::Result<int> AddLocalOnly(const mat::tap::TargetProcess& target,
                                const std::string& tls_error) {
    if (mat::Status added = tap_->AddLocalOnlyTarget(target); !added)
      return mat::Error{added.error()};
    spdlog::warn("auditing pid {} ({}): its local socket only (TLS not audited: {})", target.pid,
                 target.comm, tls_error);
    return 1;
  }

  // Where dockerd keeps its containers (their names for --local-socket-ignore).
  void NoteDockerd(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    local_lookup_.AddDataRoot(mat::identity::DataRootFromCmdline(cmdline));
  }

  // The system's libssl calibrated before any target maps it, so that a server started later is
  // probed without the calibration's delay (tens of ms) between its exec and its first handshake.
  void WarmLayouts() {
    if (spec_.empty()) return;
    for (const char* dir : {"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64",
                            "/usr/lib/aarch64-linux-gnu", "/usr/lib"}) {
      for (const char* version : {"3", "1.1"}) {
        std::string ssl = std::string(dir) + "/libssl.so." + version;
        std::string crypto = std::string(dir) + "/libcrypto.so." + version;
        struct stat st {
        }, cst{};
        if (::stat(ssl.c_str(), &st) != 0 || ::stat(crypto.c_str(), &cst) != 0) continue;
        tap_->WarmPlans(ssl, crypto, options_.capture == "plaintext");
        if (options_.capture == "plaintext" || !tap_->keys_unavailable().empty()) continue;
        const LayoutResult& result = LayoutFor({st.st_dev, st.st_ino}, ssl, crypto, ssl,
                                               ", ahead of the targets that load it");
        if (result.layout) tap_->SetLibraryLayout(ssl, *result.layout);
      }
    }
  }

  struct LayoutResult {
    std::optional<tap_ssl_layout> layout;
    std::string why;
  };

  // The calibrated layout of a libssl file, found once per file (device, inode).
  const LayoutResult& LayoutFor(pid_t pid, const mat::tap::SslLibrary& ssl) {
    struct stat st {};
    mat::tap::FileKey key{0, 0};
    if (::stat(ssl.path.c_str(), &st) == 0) key = {st.st_dev, st.st_ino};
    if (key.second != 0)
      if (auto* found = layouts_.Find(key)) return *found;
    auto crypto = mat::tap::FindCryptoLibraries(pid);
    if (crypto.empty()) {
      // Not the file's fault (a process still being loaded): not cached.
      uncached_layout_ = LayoutResult{std::nullopt, "no libcrypto mapped beside it"};
      return uncached_layout_;
    }
    return LayoutFor(key, ssl.path, crypto.front().path, ssl.name, "");
  }

  // The layout of libssl file `key` at ssl_path (with libcrypto crypto_path): calibrated once,
  // logged under `label` (with `note` after the time), and kept for the file (key {0, 0}: the
  // file is unknown, the result is not kept).
  const LayoutResult& LayoutFor(mat::tap::FileKey key, const std::string& ssl_path,
                                const std::string& crypto_path, const std::string& label,
                                const char* note) {
    if (key.second != 0)
      if (auto* found = layouts_.Find(key)) return *found;
    LayoutResult result;
    auto t0 = std::chrono::steady_clock::now();
    auto calibrated = mat::tap::CalibrateSslLayout(ssl_path, crypto_path);
    if (calibrated)
      result.layout = *calibrated;
    else
      result.why = calibrated.error();
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    if (result.layout)
      spdlog::info("{}: OpenSSL layout calibrated in {} ms{}", label, ms, note);
    else
      spdlog::warn("{}: OpenSSL layout calibration failed: {}", label, result.why);
    if (key.second == 0) {
      uncached_layout_ = std::move(result);
      return uncached_layout_;
    }
    return layouts_.Insert(key, std::move(result));
  }

  // The per-call probes of a bridged process go once the connections it had when it was
  // attached are all closed, or when the bridge window is over.
  void EndBridges() {
    auto now = std::chrono::steady_clock::now();
    for (auto it = bridges_.begin(); it != bridges_.end();) {
      pid_t pid = it->first;
      Bridge& bridge = it->second;
      auto open = mat::conn::OpenTcpConnections(pid);
      size_t left = 0;
      for (unsigned long inode : bridge.sockets) left += open.count(inode);
      if (left == 0 || now >= bridge.deadline) {
        Drain();  // what the per-call probes caught comes first
        tap_->DropPlaintextProbes(pid);
        if (left == 0)
          spdlog::info(
              "pid {}: per-call probes detached: every connection opened before the "
              "auditor is closed",
              pid);
        else
          spdlog::warn(
              "pid {}: per-call probes detached: bridge window over, {} connection(s) "
              "opened before the auditor are still open and no longer audited",
              pid, left);
        it = bridges_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void ScheduleRescan() {
    rescan_timer_.expires_after(std::chrono::milliseconds(options_.rescan_ms));
    rescan_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (tap_) Rescan();
      if (stage_) {
        stage_->Tick(MonoNowNs());
        ReportStage();
      }
      pipeline_.Tick(WallNowNs());
      out_->Flush();
      ScheduleRescan();
    });
  }

  void ScheduleSweep() {
    sweep_timer_.expires_after(std::chrono::seconds(30));
    sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      uint64_t now = WallNowNs();
      pipeline_.CloseIdle(now - uint64_t{options_.idle_timeout_s} * 1000000000ull, now);
      out_->Flush();
      if (tap_) LogCounters(/*only_losses=*/true);
      ScheduleSweep();
    });
  }

  // The TLS stage's losses, as they grow: a suite it cannot decrypt is named.
  void ReportStage() {
    const auto& s = stage_->stats();
    for (const auto& [suite, n] : s.undecryptable_by_suite) {
      uint64_t& seen = suites_reported_[suite];
      if (n == seen) continue;
      spdlog::warn("TLS: cannot decrypt {} connection(s) using {} (not supported: not audited)",
                   n - seen, suite);
      seen = n;
    }
    uint64_t losses = StageLosses(s);
    if (losses == stage_losses_reported_) return;
    stage_losses_reported_ = losses;
    spdlog::warn("TLS stage: {}", StageText(s));
  }

  // The stage's own losses (tls/decrypt_stage.h kStageCounters): their growth is a warning.
  static uint64_t StageLosses(const mat::tls::StageStats& s) {
    uint64_t sum = 0;
    for (const auto& counter : mat::tls::StageCounterValues(s, mat::tls::kStageWarns))
      sum += counter.second;
    return sum;
  }

  // What the log line and /metrics show.
  static std::vector<std::pair<const char*, uint64_t>> StageCounters(
      const mat::tls::StageStats& s) {
    return mat::tls::StageCounterValues(s, mat::tls::kStageShown);
  }

  static std::string StageText(const mat::tls::StageStats& s) {
    std::string text;
    for (const auto& [name, value] : StageCounters(s))
      text += fmt::format("{}{}={}", text.empty() ? "" : " ", name, value);
    return text;
  }

  // Losses are reported whenever they grow; everything at exit.
  void LogCounters(bool only_losses = false) {
    auto counters = tap_->ReadCounters();
    for (int i = 0; i < TAP_CNT_MAX; ++i) counters[i] += counters_before_[i];
    uint64_t losses = counters[TAP_CNT_RINGBUF_DROPS] + counters[TAP_CNT_TRUNC_CALLS] +
                      counters[TAP_CNT_READ_FAULTS] + counters[TAP_CNT_CONN_MAP_FULL] +
                      counters[TAP_CNT_UNTRACKED_CALLS];
    if (only_losses && losses == reported_losses_) return;
    reported_losses_ = losses;
    std::string text;
    for (int i = 0; i < TAP_CNT_MAX; ++i)
      text += fmt::format("{}{}={}", i ? " " : "", mat::tap::CounterName(i), counters[i]);
    if (losses)
      spdlog::warn("kernel counters: {}", text);
    else
      spdlog::info("kernel counters: {}", text);
    if (stage_ && !only_losses) spdlog::info("TLS stage: {}", StageText(stage_->stats()));
  }

  mat::Options options_;  // a copy: the admin API and reloads change it
  int argc_;
  char** argv_;  // reread at a reload
  mat::output::AsyncLineWriter* out_;
  mat::capture::ClockMap clock_;
  mat::capture::Recorder recorder_;
  mat::conn::ListeningPortCache listening_;
  mat::pipeline::Pipeline pipeline_;
  mat::tap::TargetSpec spec_;
  std::unique_ptr<mat::tap::BpfTap> tap_;
  // Processes not audited, with their TLS libraries then (tried again when these change).
  std::map<std::pair<pid_t, uint64_t>, std::string> failed_;
  std::map<pid_t, std::string> signatures_;  // TLS libraries of each target when probed
  struct Pending {
    uint64_t since_ns = 0;  // the exec or fork (CLOCK_MONOTONIC)
    uint32_t kind = 0;      // enum tap_proc_kind
    mat::tap::TargetProcess target;
  };
  static constexpr double kPendingMs = 500;
  std::map<pid_t, Pending> pending_;  // found at exec or fork, not probed yet
  bool pending_armed_ = false;
  bool draining_ = false;                          // process events handled from inside Drain
  std::map<pid_t, std::string> comms_;             // command name of each target probed
  mat::identity::LocalPeerLookup local_lookup_;    // local socket peers: /proc, names
  std::unique_ptr<mat::tls::DecryptStage> stage_;  // keys capture: decrypts the socket bytes
  std::map<std::string, uint64_t> suites_reported_;
  uint64_t stage_losses_reported_ = 0;
  struct Bridge {
    std::chrono::steady_clock::time_point deadline;
    std::set<unsigned long> sockets;  // the connections the process had when attached
  };
  std::map<pid_t, Bridge> bridges_;
  mat::tap::FileCache<LayoutResult> layouts_{64};
  LayoutResult uncached_layout_;
  mat::tap::Counters counters_before_{};  // kernel counters of taps detached earlier
  uint64_t reported_losses_ = 0;
  uint64_t write_failed_reported_ = 0;
  uint64_t dropped_full_reported_ = 0;
  int exit_code_ = 0;
  std::optional<std::chrono::steady_clock::time_point> stop_at_;  // SIGINT/SIGTERM came
  boost::asio::io_context io_;
  boost::asio::posix::stream_descriptor ring_;
  boost::asio::posix::stream_descriptor proc_ring_;  // process events (attach at exec)
  boost::asio::steady_timer pending_timer_;
  boost::asio::steady_timer poll_timer_;
  boost::asio::steady_timer rescan_timer_;
  boost::asio::steady_timer sweep_timer_;
  boost::asio::steady_timer config_timer_;
  boost::asio::steady_timer loss_timer_{io_};
  StopSignalWatcher signals_;
  StopSignalWatcher reload_signals_;  // SIGHUP
  Stamp config_stamp_;
  mat::control::AdminBackend backend_;
  std::unique_ptr<mat::control::AdminServer> admin_;  // before io_ goes
};

}  // namespace

int RunLive(const mat::Options& o, mat::output::AsyncLineWriter* out, int argc, char** argv) {
  LiveAuditor auditor(o, out, argc, argv);
  return auditor.Run();
}

}  // namespace mat::daemon
