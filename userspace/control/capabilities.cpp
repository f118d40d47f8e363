#include "control/capabilities.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mat::control {
namespace {

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

bool Has(uint64_t set, int cap) { return cap >= 0 && cap < 64 && (set >> cap & 1) != 0; }

}  // namespace

// Found by running the auditor against nginx (workers as root, then as www-data) with its
// bounding set cut down by `setpriv --bounding-set=-all,+...` (README "Privileges").
const std::vector<CapabilityNeed>& NeededCapabilities() {
  static const std::vector<CapabilityNeed> needs = {
      {CAP_SYS_ADMIN, "CAP_SYS_ADMIN",
       "creating the uprobes (perf events) on the targets' TLS libraries; it also covers "
       "CAP_BPF, CAP_PERFMON and /proc/PID/map_files",
       "every uprobe is refused (Permission denied: measured on kernel 6.18 even with "
       "CAP_BPF and CAP_PERFMON), so no process is audited",
       true, -1},
      {CAP_SYS_PTRACE, "CAP_SYS_PTRACE",
       "reading /proc/PID/maps, map_files, fd and exe of targets that have capabilities the "
       "auditor lacks (any root process with the full set, such as dockerd) or another user",
       "such targets cannot be read (Operation not permitted) and are not audited", true, -1},
      {CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH",
       "reading /proc/PID/map_files and fd of targets running as another user (nginx workers "
       "as www-data)",
       "those targets are not audited (Permission denied)", false, CAP_DAC_OVERRIDE},
      {CAP_SETUID, "CAP_SETUID",
       "the OpenSSL calibration helper, which drops to user nobody before it runs the target's "
       "libssl",
       "calibration fails: OpenSSL targets get the costly per-call probes instead of the keys "
       "capture (--capture keys: not audited)",
       false, -1},
      {CAP_SETGID, "CAP_SETGID", "the same helper, which drops its groups to nobody's",
       "the same as without CAP_SETUID", false, -1},
      {CAP_BPF, "CAP_BPF", "loading the BPF programs and maps (CAP_SYS_ADMIN covers it)",
       "the BPF programs cannot be loaded without CAP_SYS_ADMIN", false, CAP_SYS_ADMIN},
      {CAP_PERFMON, "CAP_PERFMON",
       "attaching tracing programs and reading user memory from them (CAP_SYS_ADMIN covers "
       "it)",
       "the probes cannot be attached without CAP_SYS_ADMIN", false, CAP_SYS_ADMIN},
  };
  return needs;
}

uint64_t EffectiveCapabilities(bool* ok) {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  *ok = ::syscall(SYS_capget, &header, data) == 0;
  if (!*ok) return 0;
  return uint64_t{data[0].effective} | uint64_t{data[1].effective} << 32;
}

CapabilityCheck CheckCapabilities(uint64_t effective) {
  CapabilityCheck check;
  for (const CapabilityNeed& need : NeededCapabilities()) {
    if (Has(effective, need.cap) || Has(effective, need.alternative)) continue;
    std::string text = std::string(need.name) + " is missing (used for " + need.used_for +
                       "): without it " + need.without;
    (need.essential ? check.errors : check.warnings).push_back(std::move(text));
  }
  return check;
}

}  // namespace mat::control
