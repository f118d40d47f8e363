// The daemon's process plumbing: logging, systemd readiness, the stop and reload signals (read
// from a signalfd), the capability check at start and the idle loop of level none.
#pragma once

// clang-format off
#include <utility>  // before Boost.Asio: its awaitable.hpp uses std::exchange without it
// clang-format on
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cerrno>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>

namespace mat::daemon {

// Also at run time (the admin API's logLevel, a configuration reload).
void SetLogLevel(const std::string& level);
void SetUpLogging(const std::string& level);

// Tells systemd we are ready, when run as a Type=notify service.
void NotifySystemd();

// SIGINT and SIGTERM, read from a signalfd. The signals are blocked from the start of main, so
// there is no moment (start-up, shutdown, destructors) at which one could kill the process
// before every pending line is written.
sigset_t StopSignals();
void BlockStopSignals();
// SIGHUP: reload the configuration file (live mode), read from a signalfd as well.
sigset_t ReloadSignals();

class StopSignalWatcher {
 public:
  explicit StopSignalWatcher(boost::asio::io_context& io, sigset_t set = StopSignals()) : fd_(io) {
    int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
    fd_.assign(fd);
  }
  // Calls on_signal(signo) once, at the first of the signals (SIGINT or SIGTERM).
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

// Least privilege: one message for each capability missing, with what fails without it (README
// "Privileges"). The auditor still starts: what it can do, it does.
void CheckCapabilities();

// Level none with nothing that could change it: no pipeline, no probe; waits for a stop signal.
int RunIdle();

}  // namespace mat::daemon
