// Least privilege: the Linux capabilities the live auditor needs, what fails without each, and
// the check at start (capget) that names every one missing. README "Privileges" lists the same.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mat::control {

struct CapabilityNeed {
  int cap;               // CAP_BPF, ...
  const char* name;      // "CAP_BPF"
  const char* used_for;  // what the auditor does with it
  const char* without;   // what fails without it
  bool essential;        // no capture at all without it
  int alternative;       // a capability that does instead (CAP_SYS_ADMIN on older kernels), or -1
};

// Every capability the live auditor uses, essential ones first.
const std::vector<CapabilityNeed>& NeededCapabilities();

// The effective capability set of this process (bit i: capability i); nullopt-like: *ok false
// when capget fails.
uint64_t EffectiveCapabilities(bool* ok);

struct CapabilityCheck {
  std::vector<std::string> errors;    // essential ones missing: the capture cannot start
  std::vector<std::string> warnings;  // others missing: what will not work
};

// One message per capability missing from `effective`, naming it, what it is for and what
// fails without it.
CapabilityCheck CheckCapabilities(uint64_t effective);

}  // namespace mat::control
