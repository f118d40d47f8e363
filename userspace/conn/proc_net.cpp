#include "conn/proc_net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string_view>

namespace mat::conn {
namespace {

// Parses "0100007F:1F90" (IPv4) or a 32-hex-digit IPv6 address with port, as /proc/net/tcp
// writes them: each 32-bit word in host byte order.
bool ParseHexEndpoint(std::string_view text, int family, Endpoint* out) {
  size_t colon = text.find(':');
  size_t addr_hex = family == AF_INET ? 8 : 32;
  if (colon != addr_hex) return false;
  for (size_t word = 0; word < addr_hex / 8; ++word) {
    std::string hex(text.substr(word * 8, 8));
    char* end = nullptr;
    uint32_t value = static_cast<uint32_t>(std::strtoul(hex.c_str(), &end, 16));
    if (end != hex.c_str() + 8) return false;
    std::memcpy(out->addr + word * 4, &value, 4);
  }
  std::string port(text.substr(colon + 1));
  char* end = nullptr;
  unsigned long p = std::strtoul(port.c_str(), &end, 16);
  if (end == port.c_str() || p > 0xffff) return false;
  out->family = family;
  out->port = static_cast<uint16_t>(p);
  return true;
}

struct TcpRow {
  Endpoint local, remote;
  int state = 0;
  unsigned long inode = 0;
};

template <typename Fn>
void ForEachTcpRow(const std::string& path, int family, Fn&& fn) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    char local[64], remote[64];
    unsigned state = 0;
    unsigned long inode = 0;
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    if (std::sscanf(line.c_str(), " %*d: %63s %63s %x %*s %*s %*s %*u %*u %lu", local, remote,
                    &state, &inode) != 4)
      continue;
    TcpRow row;
    if (!ParseHexEndpoint(local, family, &row.local) ||
        !ParseHexEndpoint(remote, family, &row.remote))
      continue;
    row.state = static_cast<int>(state);
    row.inode = inode;
    fn(row);
  }
}

constexpr int kTcpListen = 10;
constexpr int kTcpClose = 7;

}  // namespace

std::string FormatEndpoint(const Endpoint& e) {
  char buf[INET6_ADDRSTRLEN] = "";
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (e.family == AF_INET) {
    inet_ntop(AF_INET, e.addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(e.port);
  }
  if (e.family == AF_INET6) {
    if (std::memcmp(e.addr, kMapped, sizeof(kMapped)) == 0) {
      inet_ntop(AF_INET, e.addr + 12, buf, sizeof(buf));
      return std::string(buf) + ":" + std::to_string(e.port);
    }
    inet_ntop(AF_INET6, e.addr, buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(e.port);
  }
  return {};
}

std::set<uint16_t> ListeningPorts(int pid, const std::string& proc_root) {
  std::set<uint16_t> ports;
  std::string base = proc_root + "/" + std::to_string(pid);
  for (auto [file, family] : {std::pair{"/net/tcp", AF_INET}, std::pair{"/net/tcp6", AF_INET6}}) {
    ForEachTcpRow(base + file, family, [&](const TcpRow& row) {
      if (row.state == kTcpListen) ports.insert(row.local.port);
    });
  }
  return ports;
}

std::set<unsigned long> OpenTcpConnections(int pid, const std::string& proc_root) {
  std::string base = proc_root + "/" + std::to_string(pid);
  std::set<unsigned long> held;
  if (DIR* dir = ::opendir((base + "/fd").c_str())) {
    while (dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] == '.') continue;
      char target[128] = "";
      ssize_t n = ::readlinkat(::dirfd(dir), entry->d_name, target, sizeof(target) - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      unsigned long inode = 0;
      if (std::sscanf(target, "socket:[%lu]", &inode) == 1) held.insert(inode);
    }
    ::closedir(dir);
  }
  std::set<unsigned long> connected;
  if (held.empty()) return connected;
  for (auto [file, family] : {std::pair{"/net/tcp", AF_INET}, std::pair{"/net/tcp6", AF_INET6}}) {
    ForEachTcpRow(base + file, family, [&](const TcpRow& row) {
      if (row.state != kTcpListen && row.state != kTcpClose && row.inode != 0 &&
          held.count(row.inode))
        connected.insert(row.inode);
    });
  }
  return connected;
}

bool ListeningPortCache::IsListening(int pid, uint16_t port, uint64_t now_ns) {
  Entry& entry = cache_[pid];
  bool fresh = entry.read_ns != 0 && now_ns - entry.read_ns < max_age_ns_;
  if (!fresh || !entry.ports.count(port)) {
    // A miss may be a listener opened since the last read: look again before answering no.
    if (!fresh || now_ns - entry.read_ns > max_age_ns_ / 16) {
      entry.ports = ListeningPorts(pid, proc_root_);
      entry.read_ns = now_ns;
      for (uint16_t p : entry.ports) recent_[p] = now_ns;
    }
  }
  if (entry.ports.count(port) > 0) return true;
  // The question comes when the connection's first record is read, which can be after the
  // server closed its listener: a worker that exits (nginx -s quit closes the listeners, then
  // serves what it accepted) or is gone, a server between its stop and its restart. A port seen
  // listening a moment ago still says the connection was accepted.
  auto recent = recent_.find(port);
  return recent != recent_.end() && now_ns - recent->second < kRecentNs;
}

std::optional<SocketFacts> LookupSocket(int pid, int fd, const std::string& proc_root) {
  std::string base = proc_root + "/" + std::to_string(pid);
  char target[128] = "";
  ssize_t n = ::readlink((base + "/fd/" + std::to_string(fd)).c_str(), target, sizeof(target) - 1);
  if (n <= 0) return std::nullopt;
  target[n] = '\0';
  unsigned long inode = 0;
  if (std::sscanf(target, "socket:[%lu]", &inode) != 1) return std::nullopt;

  std::optional<SocketFacts> found;
  std::set<std::pair<int, uint16_t>> listening;  // (family, port)
  for (auto [file, family] : {std::pair{"/net/tcp", AF_INET}, std::pair{"/net/tcp6", AF_INET6}}) {
    ForEachTcpRow(base + file, family, [&](const TcpRow& row) {
      if (row.state == kTcpListen) listening.insert({0, row.local.port});
      if (row.inode == inode && !found) found = SocketFacts{row.local, row.remote, false};
    });
  }
  if (found) found->local_port_listening = listening.count({0, found->local.port}) > 0;
  return found;
}

}  // namespace mat::conn
