// Socket facts from /proc, for connections the kernel tap did not see being accepted (they
// predate the auditor): the endpoints, and whether the local port is a listening one.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
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

// The TCP ports some socket listens on, in the network namespace of pid (/proc/PID/net/tcp
// and tcp6). A connection whose local port is among them was accepted: the server side.
std::set<uint16_t> ListeningPorts(int pid, const std::string& proc_root = "/proc");

// The inodes of the TCP sockets pid holds open (its fds) that are connected (not listening, not
// closed), in its network namespace: the connections it has now.
std::set<unsigned long> OpenTcpConnections(int pid, const std::string& proc_root = "/proc");

// ListeningPorts, remembered per process for max_age_ns, so a burst of new connections costs
// one read of the tables.
class ListeningPortCache {
 public:
  explicit ListeningPortCache(uint64_t max_age_ns, std::string proc_root = "/proc")
      : max_age_ns_(max_age_ns), proc_root_(std::move(proc_root)) {}
  // Also true for a port seen listening (by any process) within the last kRecentNs: the
  // listener may be closed by the time a connection it accepted is first looked at.
  bool IsListening(int pid, uint16_t port, uint64_t now_ns);
  void Forget(int pid) { cache_.erase(pid); }
  static constexpr uint64_t kRecentNs = 60000000000ull;

 private:
  struct Entry {
    uint64_t read_ns = 0;
    std::set<uint16_t> ports;
  };
  uint64_t max_age_ns_;
  std::string proc_root_;
  std::map<int, Entry> cache_;
  std::map<uint16_t, uint64_t> recent_;  // port -> when last seen listening
};

}  // namespace mat::conn
