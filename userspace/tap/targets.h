// Which processes are audited: by command name (--comm) or by pid with its descendants (--pid),
// found by scanning /proc; and which TLS libraries each one has mapped.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace mat::tap {

struct TargetSpec {
  std::vector<std::string> comms;
  std::vector<pid_t> pids;  // each with its descendants
  bool empty() const { return comms.empty() && pids.empty(); }
};

struct TargetProcess {
  pid_t pid = 0;
  std::string comm;
  uint64_t start_time = 0;  // /proc/PID/stat field 22: tells a reused pid apart
  // TLS libraries as paths this process can be probed through: /proc/PID/root/<mapped path>,
  // which also reaches a library inside a container's root filesystem.
  std::vector<std::string> ssl_libraries;
};

// Scans proc_root for the processes matching spec (ssl_libraries left empty: see below).
std::vector<TargetProcess> ScanTargets(const TargetSpec& spec, const std::string& proc_root = "/proc");

// Paths of mapped files of pid whose name starts with "libssl.so", plus the main executable when
// it exports SSL_read itself (statically linked OpenSSL). Deduplicated.
std::vector<std::string> FindSslLibraries(pid_t pid, const std::string& proc_root = "/proc");

}  // namespace mat::tap
