// Readiness reaches systemd: the binary is run with NOTIFY_SOCKET naming a socket this test
// listens on, in the abstract namespace ("@name", as systemd's own) and as a path, and must
// send READY=1 there once it is ready.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

namespace {

// A datagram socket bound to `name` (a leading '@' means the abstract namespace); -1 on error.
int Listen(const std::string& name) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, name.data(), name.size());
  if (name[0] == '@') addr.sun_path[0] = '\0';
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Runs the binary at --level none (nothing is captured, no privileges needed) with
// NOTIFY_SOCKET=notify_socket and returns what arrives on fd within 10 s.
std::string RunAndReceive(int fd, const std::string& notify_socket) {
  pid_t child = ::fork();
  if (child == 0) {
    ::setenv("NOTIFY_SOCKET", notify_socket.c_str(), 1);
    ::execl(MAT_BINARY, MAT_BINARY, "--level", "none", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string got;
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 10000) == 1) {
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) got.assign(buf, static_cast<size_t>(n));
  }
  ::kill(child, SIGTERM);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  return got;
}

TEST(Notify, ReadyReachesAnAbstractNotifySocket) {
  const std::string name = "@mat-notify-test-" + std::to_string(::getpid());
  int fd = Listen(name);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_NE(RunAndReceive(fd, name).find("READY=1"), std::string::npos);
  ::close(fd);
}

TEST(Notify, ReadyReachesANotifySocketPath) {
  const std::string path = "/tmp/mat-notify-test-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  int fd = Listen(path);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_NE(RunAndReceive(fd, path).find("READY=1"), std::string::npos);
  ::close(fd);
  ::unlink(path.c_str());
}

}  // namespace
