#include "tap/ssl_layout.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <sstream>
#include <vector>

namespace mat::tap {
namespace {

constexpr int kTimeoutMs = 10000;  // the helper's own alarm is 10 s too: this is the backstop
constexpr size_t kMaxOutput = 4096;
constexpr uint32_t kMaxOffset = 65536;

int64_t NowMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string FirstLine(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.size() > 300) line.resize(300);
  return line;
}

bool Overlap(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen) {
  return a < b + blen && b < a + alen;
}

}  // namespace

std::string DefaultSslcalPath() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "mke-audit-tap-sslcal";
  std::string exe(buf, static_cast<size_t>(n));
  size_t slash = exe.rfind('/');
  return (slash == std::string::npos ? std::string(".") : exe.substr(0, slash)) +
         "/mke-audit-tap-sslcal";
}

Result<tap_ssl_layout> ParseSslLayout(const std::string& line) {
  static const char* const kKeys[] = {"version",           "client_random", "client_app_secret",
                                      "server_app_secret", "session",       "master_key"};
  uint32_t values[6];
  bool seen[6] = {};
  std::istringstream in(line);
  std::string word;
  while (in >> word) {
    size_t eq = word.find('=');
    if (eq == std::string::npos) return Error{"calibration answer is malformed"};
    std::string key = word.substr(0, eq), num = word.substr(eq + 1);
    int index = -1;
    for (int i = 0; i < 6; ++i)
      if (key == kKeys[i]) index = i;
    uint32_t v = 0;
    auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
    if (index < 0 || seen[index] || num.empty() || ec != std::errc() ||
        end != num.data() + num.size())
      return Error{"calibration answer is malformed"};
    if (v >= kMaxOffset)
      return Error{"calibration answer has an offset beyond 64 KiB (" + key + ")"};
    values[index] = v;
    seen[index] = true;
  }
  for (int i = 0; i < 6; ++i)
    if (!seen[i]) return Error{std::string("calibration answer lacks ") + kKeys[i]};
  tap_ssl_layout layout{};
  layout.version = values[0];
  layout.client_random = values[1];
  layout.client_app_secret = values[2];
  layout.server_app_secret = values[3];
  layout.session = values[4];
  layout.master_key = values[5];
  // The SSL object's fields must be distinct (the secrets' arrays are EVP_MAX_MD_SIZE bytes).
  const struct {
    const char* name;
    uint32_t off, len;
  } fields[] = {{"version", layout.version, 4},
                {"client_random", layout.client_random, 32},
                {"client_app_secret", layout.client_app_secret, TAP_SECRET_MAX},
                {"server_app_secret", layout.server_app_secret, TAP_SECRET_MAX},
                {"session", layout.session, 8}};
  for (size_t i = 0; i < std::size(fields); ++i)
    for (size_t j = i + 1; j < std::size(fields); ++j)
      if (Overlap(fields[i].off, fields[i].len, fields[j].off, fields[j].len))
        return Error{std::string("calibration answer has overlapping fields (") + fields[i].name +
                     ", " + fields[j].name + ")"};
  return layout;
}

Result<tap_ssl_layout> CalibrateSslLayout(const std::string& libssl_path,
                                          const std::string& libcrypto_path,
                                          const std::string& helper) {
  const std::string exe = helper.empty() ? DefaultSslcalPath() : helper;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Error{std::string("pipe: ") + std::strerror(errno)};
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    Error error{std::string("pipe: ") + std::strerror(errno)};
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return error;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  // The helper starts with no signal blocked and default dispositions, whatever this thread
  // has: its alarm() must be able to end it.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> args = {exe, "--libcrypto", libcrypto_path, "--libssl", libssl_path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char env_path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char* envp[] = {env_path, nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, exe.c_str(), &actions, &attr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return Error{"cannot run " + exe + ": " + std::strerror(rc)};
  }

  std::string out, err;
  bool timed_out = false;
  const int64_t deadline = NowMs() + kTimeoutMs + 1000;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&out, &err};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    int n = ::poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[1024];
      ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        continue;
      }
      if (sinks[i]->size() < kMaxOutput)
        sinks[i]->append(buf, std::min(static_cast<size_t>(got), kMaxOutput - sinks[i]->size()));
    }
  }
  for (pollfd& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  // Both pipes are closed, or the time is up: the helper still gets until the deadline to exit.
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, timed_out ? 0 : WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Error{std::string("waitpid: ") + std::strerror(errno)};
    if (NowMs() >= deadline) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      continue;
    }
    ::usleep(5000);
  }
  if (timed_out)
    return Error{"calibration helper killed after " + std::to_string(kTimeoutMs / 1000) + " s"};
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string reason = FirstLine(err);
    if (reason.empty())
      reason = WIFSIGNALED(status)
                   ? "calibration helper died of signal " + std::to_string(WTERMSIG(status))
                   : "calibration helper failed with status " + std::to_string(WEXITSTATUS(status));
    return Error{reason};
  }
  return ParseSslLayout(FirstLine(out));
}

}  // namespace mat::tap
