#include "daemon/runtime.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstring>

#include "control/capabilities.h"

namespace mat::daemon {

void SetLogLevel(const std::string& level) {
  // `level` is one of NormalizeLogLevel's names; spdlog's from_str would make anything else
  // "off", silencing even errors, so nothing else gets there.
  spdlog::level::level_enum value = spdlog::level::info;
  if (level == "trace") value = spdlog::level::trace;
  if (level == "debug") value = spdlog::level::debug;
  if (level == "warn") value = spdlog::level::warn;
  if (level == "error") value = spdlog::level::err;
  spdlog::set_level(value);
}

void SetUpLogging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("mke-audit-tap");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_default_logger(logger);
  SetLogLevel(level);
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

// SIGHUP: reload the configuration file (live mode), read from a signalfd as well.
sigset_t ReloadSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  return set;
}

void CheckCapabilities() {
  bool ok = false;
  uint64_t effective = mat::control::EffectiveCapabilities(&ok);
  if (!ok) {
    spdlog::warn("capabilities: cannot read them (capget: {})", std::strerror(errno));
    return;
  }
  auto check = mat::control::CheckCapabilities(effective);
  for (const auto& text : check.errors) spdlog::error("capabilities: {}", text);
  for (const auto& text : check.warnings) spdlog::warn("capabilities: {}", text);
}

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

}  // namespace mat::daemon
