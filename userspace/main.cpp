// mke-audit-tap: wires the stages together. Live mode: kernel tap -> pipeline -> stdout, driven
// by one Boost.Asio event loop (ring buffer readiness, target rescans, signals). Replay mode:
// recording -> pipeline -> stdout.
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "capture/recorder.h"
#include "conn/proc_net.h"
#include "options.h"
#include "output/line_sink.h"
#include "pipeline/pipeline.h"
#include "tap/bpf_tap.h"
#include "tap/targets.h"

namespace {

using mat::pipeline::WallNowNs;

void SetUpLogging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("mke-audit-tap");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_default_logger(logger);
  // `level` is one of NormalizeLogLevel's names; spdlog's from_str would make anything else
  // "off", silencing even errors, so nothing else gets there.
  spdlog::level::level_enum value = spdlog::level::info;
  if (level == "trace") value = spdlog::level::trace;
  if (level == "debug") value = spdlog::level::debug;
  if (level == "warn") value = spdlog::level::warn;
  if (level == "error") value = spdlog::level::err;
  spdlog::set_level(value);
  spdlog::flush_on(spdlog::level::info);
}

// Tells systemd we are ready, when run as a Type=notify service. libsystemd's sd_notify, which
// gets NOTIFY_SOCKET's forms right (a path, or "@name" in the abstract namespace, whose address
// length must count only the name's bytes).
void NotifySystemd() {
  int r = sd_notify(0, "READY=1");
  if (r < 0) spdlog::warn("cannot notify systemd (NOTIFY_SOCKET): {}", std::strerror(-r));
}

// SIGINT and SIGTERM, read from a signalfd. The signals are blocked from the start of main, so
// there is no moment (start-up, shutdown, destructors) at which one could kill the process
// before every pending line is written.
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

void BlockStopSignals() {
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

class StopSignalWatcher {
 public:
  explicit StopSignalWatcher(boost::asio::io_context& io) : fd_(io) {
    sigset_t set = StopSignals();
    int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
    fd_.assign(fd);
  }
  // Calls on_signal(signo) once, at the first SIGINT or SIGTERM.
  void Wait(std::function<void(int)> on_signal) {
    fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                   [this, on_signal](const boost::system::error_code& ec) {
                     if (ec) return;
                     signalfd_siginfo info{};
                     if (::read(fd_.native_handle(), &info, sizeof(info)) != sizeof(info)) {
                       Wait(on_signal);
                       return;
                     }
                     on_signal(static_cast<int>(info.ssi_signo));
                   });
  }

 private:
  boost::asio::posix::stream_descriptor fd_;
};

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

mat::pipeline::PipelineConfig MakeConfig(const mat::Options& o) {
  mat::pipeline::PipelineConfig config;
  config.policy.level = o.level;
  if (o.no_default_ignore) config.policy.ignore.clear();
  config.policy.audit_grpc = o.audit_grpc;
  config.policy.ignore.insert(config.policy.ignore.end(), o.ignore.begin(), o.ignore.end());
  if (o.no_default_redact) config.policy.redaction.redacted_calls.clear();
  for (const std::string& call : o.redact) {
    if (auto parsed = mat::ParseRedactedCall(call))  // checked when the options were read
      config.policy.redaction.redacted_calls.push_back({parsed->first, parsed->second});
  }
  config.tracker.http.max_body_bytes = o.max_body_bytes;
  config.license_key = o.license_key;
  config.format =
      o.format == "k8s" ? mat::pipeline::OutputFormat::kK8s : mat::pipeline::OutputFormat::kMke;
  config.every_request_received = o.every_request_received;
  config.line.max_line_bytes = o.max_line_bytes;
  config.response_timeout_ns = uint64_t{o.response_timeout_s} * 1000000000ull;
  config.identity.user_map_path = o.user_map;
  config.identity.client_ca_path = o.client_ca;
  config.identity.tokens.ttl_ns = uint64_t{o.token_ttl_s} * 1000000000ull;
  config.identity.tokens.max_entries = o.token_cache_size;
  return config;
}

void LogSummary(const mat::pipeline::Pipeline& pipeline, const mat::output::FileLineSink& out) {
  const auto& p = pipeline.stats();
  const auto& t = pipeline.tracker().stats();
  mat::http::Http1Stats h;
  mat::http::Http2Stats h2;
  pipeline.tracker().AddHttpStats(&h, &h2);
  const auto& k = pipeline.identity().tokens().stats();
  spdlog::info(
      "summary: {} records ({} bad), {} audit lines, {} not audited; connections {} opened, "
      "{} client-side skipped, {} gaps ({} bytes, {} inside bodies kept in sync); http {} "
      "requests, {} responses, {} parse errors, {} orphan responses; http/2 {} requests, {} "
      "responses, {} hpack errors, {} fatal; session tokens {} learned, {} hits, {} misses",
      p.records, p.bad_records, p.lines, p.not_audited, t.connections_opened, t.client_side_skipped,
      t.gaps, t.gap_bytes, h.gaps_skipped_in_body, h.requests, h.responses, h.parse_errors,
      h.orphan_responses, h2.requests, h2.responses, h2.hpack_errors, h2.fatal_errors, k.learned,
      k.hits, k.misses);
  if (out.lines_lost() != 0)
    spdlog::error("output: {} lines written, {} lost: {}", out.lines_written(), out.lines_lost(),
                  std::strerror(out.last_error()));
  else
    spdlog::info("output: {} lines written", out.lines_written());
}

int RunReplay(const mat::Options& o, mat::output::FileLineSink& out) {
  mat::pipeline::PipelineConfig config = MakeConfig(o);
  // The recording's clock comes with its header, so the pipeline is made at the first record;
  // records are streamed through it, never held: a recording may be larger than memory.
  std::optional<mat::pipeline::Pipeline> pipeline;
  mat::capture::ClockMap clock;
  std::string start_error;
  uint64_t last_ts = 0;
  mat::capture::ReplayStats stats;
  auto make = [&] {
    pipeline.emplace(std::move(config), clock, &out, nullptr, mat::pipeline::Resolvers{});
    start_error = pipeline->start_error();
  };
  std::string error = mat::capture::ReadRecording(
      o.replay_file, &clock,
      [&](const void* data, uint32_t size) {
        if (!pipeline) make();
        if (!start_error.empty()) return;
        pipeline->OnRecord(data, size);
        if (size >= sizeof(tap_hdr))
          last_ts = std::max<uint64_t>(last_ts, static_cast<const tap_hdr*>(data)->ts_ns);
      },
      &stats);
  if (!error.empty()) {
    spdlog::error("{}", error);
    return 1;
  }
  if (!pipeline) make();
  if (!start_error.empty()) {
    spdlog::error("{}", start_error);
    return 1;
  }
  if (stats.bad_records) spdlog::warn("{}: truncated or corrupt tail ignored", o.replay_file);
  pipeline->Finish(clock.ToWall(last_ts));
  LogSummary(*pipeline, out);
  return 0;
}

class LiveAuditor {
 public:
  LiveAuditor(const mat::Options& o, mat::output::FileLineSink* out)
      : options_(o),
        out_(out),
        clock_(mat::capture::ClockMap::Now()),
        listening_(1000000000ull),
        pipeline_(MakeConfig(o), clock_, out, &recorder_,
                  {ResolveFromProc,
                   [this](uint32_t tgid, uint16_t port) {
                     return listening_.IsListening(static_cast<int>(tgid), port, WallNowNs());
                   }}),
        ring_(io_),
        poll_timer_(io_),
        rescan_timer_(io_),
        sweep_timer_(io_),
        signals_(io_) {
    spec_.comms = o.comms;
    spec_.pids = o.pids;
  }

  int Run() {
    if (!pipeline_.start_error().empty()) {
      spdlog::error("{}", pipeline_.start_error());
      return 1;
    }
    if (!options_.record_file.empty()) {
      std::string error = recorder_.Open(options_.record_file, clock_);
      if (!error.empty()) {
        spdlog::error("{}", error);
        return 1;
      }
      spdlog::warn("recording raw TLS plaintext to {} (mode 0600)", options_.record_file);
    }
    std::string error;
    mat::tap::TapOptions tap_options;
    tap_options.cap_bytes = options_.cap_bytes;
    tap_options.ringbuf_bytes = options_.ringbuf_bytes;
    tap_options.wakeup_bytes = options_.ringbuf_bytes / 8;
    tap_ = mat::tap::BpfTap::Create(
        tap_options, [this](const void* data, size_t size) { pipeline_.OnRecord(data, size); },
        &error);
    if (!tap_) {
      spdlog::error("{}", error);
      return 1;
    }
    Rescan();
    spdlog::info("ready: auditing {} process(es) at level {}", tap_->TargetPids().size(),
                 mat::audit::LevelName(options_.level));
    NotifySystemd();

    ring_.assign(::dup(tap_->epoll_fd()));
    WaitRing();
    SchedulePoll();
    ScheduleRescan();
    ScheduleSweep();
    signals_.Wait([this](int signo) {
      spdlog::info("signal {}: flushing and exiting", signo);
      Drain();
      io_.stop();
    });
    io_.run();
    pipeline_.Finish(WallNowNs());
    recorder_.Close();
    LogCounters();
    LogSummary(pipeline_, *out_);
    return 0;
  }

 private:
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
      Drain();
      SchedulePoll();
    });
  }

  // Hands every record in the ring to the pipeline, then writes the lines they completed.
  void Drain() {
    int n = tap_->Consume();
    if (n < 0) spdlog::warn("ring buffer: {}", std::strerror(-n));
    out_->Flush();
  }

  void Rescan() {
    std::map<pid_t, uint64_t> present;
    for (const auto& target : mat::tap::ScanTargets(spec_)) {
      present[target.pid] = target.start_time;
      if (tap_->HasTarget(target.pid, target.start_time)) continue;
      auto key = std::make_pair(target.pid, target.start_time);
      if (failed_.count(key)) continue;
      std::string error;
      int libraries = tap_->AddTarget(target, &error);
      if (libraries > 0) {
        spdlog::info("auditing pid {} ({}): {} TLS librar{} probed", target.pid, target.comm,
                     libraries, libraries == 1 ? "y" : "ies");
      } else {
        failed_.insert(key);
        spdlog::info("pid {} ({}) not audited: {}", target.pid, target.comm, error);
      }
    }
    for (pid_t pid : tap_->TargetPids()) {
      auto it = present.find(pid);
      if (it == present.end() || !tap_->HasTarget(pid, it->second)) {
        Drain();  // records of the process before its connections are ended
        tap_->RemoveTarget(pid);
        pipeline_.OnProcessExit(static_cast<uint32_t>(pid), WallNowNs());
        listening_.Forget(pid);
        spdlog::info("pid {} is gone", pid);
      }
    }
    for (auto it = failed_.begin(); it != failed_.end();) {
      auto p = present.find(it->first);
      it = (p == present.end() || p->second != it->second) ? failed_.erase(it) : std::next(it);
    }
  }

  void ScheduleRescan() {
    rescan_timer_.expires_after(std::chrono::milliseconds(options_.rescan_ms));
    rescan_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      Rescan();
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
      LogCounters(/*only_losses=*/true);
      ScheduleSweep();
    });
  }

  // Losses are reported whenever they grow; everything at exit.
  void LogCounters(bool only_losses = false) {
    auto counters = tap_->ReadCounters();
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
  }

  const mat::Options& options_;
  mat::output::FileLineSink* out_;
  mat::capture::ClockMap clock_;
  mat::capture::Recorder recorder_;
  mat::conn::ListeningPortCache listening_;
  mat::pipeline::Pipeline pipeline_;
  mat::tap::TargetSpec spec_;
  std::unique_ptr<mat::tap::BpfTap> tap_;
  std::set<std::pair<pid_t, uint64_t>> failed_;
  uint64_t reported_losses_ = 0;
  boost::asio::io_context io_;
  boost::asio::posix::stream_descriptor ring_;
  boost::asio::steady_timer poll_timer_;
  boost::asio::steady_timer rescan_timer_;
  boost::asio::steady_timer sweep_timer_;
  StopSignalWatcher signals_;
};

int RunIdle() {
  // Level none: nothing is captured and no probe is attached.
  spdlog::info("ready: audit level none, nothing is captured");
  NotifySystemd();
  boost::asio::io_context io;
  StopSignalWatcher signals(io);
  signals.Wait([&](int) { io.stop(); });
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string error;
  auto options = mat::ParseOptions(argc, argv, &error);
  if (!options) {
    std::fprintf(stderr, "mke-audit-tap: %s\n", error.c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(mat::UsageText().c_str(), stdout);
    return 0;
  }
  if (options->version) {
    std::puts("mke-audit-tap 0.1.0");
    return 0;
  }
  SetUpLogging(options->log_level);
  mat::output::FileLineSink out(stdout);
  if (!options->replay_file.empty()) return RunReplay(*options, out);
  BlockStopSignals();
  if (options->level == mat::audit::Level::kNone) return RunIdle();
  LiveAuditor auditor(*options, &out);
  return auditor.Run();
}
