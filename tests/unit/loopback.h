// A TCP listener on 127.0.0.1 at a port the kernel picks, and connections to it: real sockets
// for the tests that read /proc or the kernel's view of them.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

namespace mat::testing {

class LoopbackListener {
 public:
  explicit LoopbackListener(int backlog = 4) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    addr_.sin_family = AF_INET;
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr_);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr_), sizeof(addr_)) != 0 ||
        ::listen(fd_, backlog) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr_), &len) != 0)
      Close();
  }
  ~LoopbackListener() { Close(); }
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;

  bool ok() const { return fd_ >= 0; }  // listening
  int fd() const { return fd_; }
  uint16_t port() const { return ntohs(addr_.sin_port); }
  // A client socket connected to it, -1 on failure.
  int Connect() const {
    int client = ::socket(AF_INET, SOCK_STREAM, 0);
    if (client >= 0 &&
        ::connect(client, reinterpret_cast<const sockaddr*>(&addr_), sizeof(addr_)) != 0) {
      ::close(client);
      client = -1;
    }
    return client;
  }
  int Accept() const { return ::accept(fd_, nullptr, nullptr); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  sockaddr_in addr_{};
};

}  // namespace mat::testing
