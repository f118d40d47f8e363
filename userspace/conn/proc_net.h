// Socket facts from /proc, for connections the kernel tap did not see being accepted (they
// predate the auditor): the endpoints, and whether the local port is a listening one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace mat::conn {

struct Endpoint {
  int family = 0;  // AF_INET or AF_INET6; 0 unknown
  uint8_t addr[16] = {};
  uint16_t port = 0;
};

// "127.0.0.1:8443", "[::1]:8443"; an IPv4-mapped IPv6 address is written as IPv4.
std::string FormatEndpoint(const Endpoint& endpoint);

struct SocketFacts {
  Endpoint local;
  Endpoint remote;
  bool local_port_listening = false;  // some socket listens on the local port: server side
};

// Looks up fd of pid: /proc/PID/fd/FD -> socket inode -> /proc/PID/net/tcp{,6}.
std::optional<SocketFacts> LookupSocket(int pid, int fd, const std::string& proc_root = "/proc");

}  // namespace mat::conn
