// Who called a dockerd target on its local (Unix) socket: the peer credentials the kernel
// recorded at connect (pid, uid, gid; TAP_EV_LOCAL_SOCK), the command name, the container the
// process runs in (its cgroup), and the host's name for the uid. Also the --local-socket-ignore
// matching.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

extern "C" {
#include "mke_audit_tap/tap_events.h"
}

namespace mat::identity {

struct LocalPeer {
  uint32_t pid = 0;  // host pid; 0: the kernel recorded none
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string user;            // the uid's name on the host, or the number when it has none
  std::string comm;            // command name ("" unknown)
  std::string container_id;    // 64 hex digits when the process runs in a container
  std::string container_name;  // the container's name without '/', when the runtime says
  std::string path;            // the socket's path ("@name" for an abstract one)
  bool exited = false;         // the process was gone before it could be looked up
  bool ignored = false;        // --local-socket-ignore matched
  std::string ignored_by;      // the entry that matched
};

// The socket address of a record as text: a path (up to its first NUL), or "@name" for an
// abstract address (leading NUL), "" when none.
std::string LocalSocketPath(const tap_local_sock& record);
// The peer facts the record carries (no /proc, no passwd lookup).
LocalPeer LocalPeerFromRecord(const tap_local_sock& record);
// The container id in the text of /proc/PID/cgroup: the last 64-hex-digit run in a path
// component ("docker-<id>.scope", "/docker/<id>", "cri-containerd-<id>.scope", ...); "" none.
std::string ContainerIdFromCgroup(std::string_view cgroup);
// A container's name from the text of its config.v2.json ("Name": "/web"): "web"; "" none.
std::string ContainerNameFromConfig(std::string_view config_json);
// The --local-socket-ignore entry that matches the peer: its command name, its container name
// or the name's first '.'-separated part (a swarm task "svc.1.abc" is matched by "svc"), or a
// prefix of at least 12 hex digits of its container id. nullptr when none does.
const std::string* MatchLocalIgnore(const LocalPeer& peer, const std::vector<std::string>& ignore);

// Completes peers from the live system: the uid's name (getpwuid), and from /proc/PID the
// command name (when the record had none) and container, the container's name from the
// runtime's data root(s). Results are cached per (pid, its comm) for a while and per uid.
class LocalPeerLookup {
 public:
  explicit LocalPeerLookup(std::string proc_root = "/proc") : proc_root_(std::move(proc_root)) {}
  // A docker data root to look for containers/<id>/config.v2.json in (dockerd's --data-root).
  void AddDataRoot(const std::string& root);
  void Complete(LocalPeer* peer, uint64_t now_ns);
  // The uid's name only (replays: no /proc of the time).
  std::string UserName(uint32_t uid);

 private:
  struct ProcFacts {
    std::string comm, container_id, container_name;
    bool exited = false;
    uint64_t at_ns = 0;
  };
  std::string proc_root_;
  std::vector<std::string> data_roots_{"/var/lib/docker"};
  std::map<uint32_t, std::string> users_;
  std::map<uint32_t, ProcFacts> procs_;
  std::map<std::string, std::string> names_;  // container id -> name
};

// Dockerd's data root from its command line (--data-root DIR,
// --data-root=DIR, -g DIR); "" when not given.
std::string DataRootFromCmdline(std::string_view cmdline_nul_separated);

}  // namespace mat::identity
