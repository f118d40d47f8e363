// Which processes are audited: by command name (--comm) or by pid with its descendants (--pid),
// found by scanning /proc; and which TLS libraries each one has mapped.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
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
};

// Scans proc_root for the processes matching spec.
std::vector<TargetProcess> ScanTargets(const TargetSpec& spec,
                                       const std::string& proc_root = "/proc");

// pid when spec selects it now (its comm, or a --pid among its ancestors), read from proc_root:
// the check made for a process reported at its fork or exec.
std::optional<TargetProcess> ReadTarget(pid_t pid, const TargetSpec& spec,
                                        const std::string& proc_root = "/proc");

// The TLS library files pid maps now (libssl.so*, libcrypto.so*), as "device inode" pairs: what
// tells that a process loaded one (the dynamic loader after an exec, a dlopen) or an upgrade.
std::string TlsLibrarySignature(pid_t pid, const std::string& proc_root = "/proc");

// The TLS libraries of pid, as paths that open exactly the mapped files whatever mount namespace
// or root the process has (a container): /proc/PID/map_files/RANGE for each distinct mapped
// file named libssl.so*, and /proc/PID/exe when the program exports SSL_read itself
// (OpenSSL linked in statically).
struct SslLibrary {
  std::string path;  // opens the mapped file: /proc/PID/map_files/RANGE or /proc/PID/exe
  std::string name;  // the file's name as the process maps it, for messages
};
std::vector<SslLibrary> FindSslLibraries(pid_t pid, const std::string& proc_root = "/proc");
// The libcrypto.so* files pid maps, likewise (where OpenSSL parses certificates).
std::vector<SslLibrary> FindCryptoLibraries(pid_t pid, const std::string& proc_root = "/proc");

}  // namespace mat::tap
