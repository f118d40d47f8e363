#include "doctor/capabilities.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mat::doctor {

namespace {

// Newer than some headers: the numbers are the kernel's ABI.
constexpr int kCapSysPtrace = 19;
constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;
constexpr int kCapCheckpointRestore = 40;

bool Has(uint64_t set, int cap) { return (set >> cap) & 1u; }

}  // namespace

bool EffectiveCapabilities(uint64_t* effective, std::string* error) {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) {
    *error = std::string("capget: ") + std::strerror(errno);
    return false;
  }
  *effective = uint64_t{data[0].effective} | (uint64_t{data[1].effective} << 32);
  return true;
}

std::vector<CapabilityCheck> CheckCapabilities(uint64_t e) {
  std::vector<CapabilityCheck> out;
  bool admin = Has(e, kCapSysAdmin);
  auto add = [&](const char* name, bool ok, bool required, const char* has, const char* missing) {
    out.push_back({name, ok, required, ok ? has : missing});
  };
  add("CAP_BPF", Has(e, kCapBpf) || admin, true,
      Has(e, kCapBpf) ? "present: BPF programs and maps can be loaded"
                      : "CAP_SYS_ADMIN stands in for it: BPF programs and maps can be loaded",
      "missing (and no CAP_SYS_ADMIN); loading BPF programs will fail");
  add("CAP_PERFMON", Has(e, kCapPerfmon) || admin, true,
      Has(e, kCapPerfmon)
          ? "present: uprobes and tracepoints can be attached"
          : "CAP_SYS_ADMIN stands in for it: uprobes and tracepoints can be attached",
      "missing (and no CAP_SYS_ADMIN); the programs reading process memory will not load and "
      "uprobes and tracepoints cannot be attached");
  add("CAP_SYS_ADMIN", admin || Has(e, kCapCheckpointRestore), true,
      admin ? "present: /proc/PID/map_files (each target's TLS library) can be opened"
            : "CAP_CHECKPOINT_RESTORE stands in for it: /proc/PID/map_files can be opened",
      "missing (and no CAP_CHECKPOINT_RESTORE); /proc/PID/map_files cannot be opened, so no "
      "target's TLS library can be probed");
  add("CAP_SYS_PTRACE", Has(e, kCapSysPtrace), false,
      "present: processes of other users (e.g. nginx workers) can be inspected",
      "missing; processes running as another user (e.g. nginx workers) cannot be inspected or "
      "probed");
  return out;
}

}  // namespace mat::doctor
