// The capabilities the auditor needs, read with capget(2): what `mke-audit-tap doctor` reports.
// (A start-time check of the daemon may share this; kept apart from the doctor's output code.)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mat::doctor {

// One capability requirement: ok when any of its capabilities is effective.
struct CapabilityCheck {
  std::string name;  // e.g. "CAP_BPF"
  bool ok = false;
  bool required = true;  // false: only some setups need it (a missing one is a warning)
  std::string text;      // what it is for, or what will fail without it
};

// The effective capability set of this process (bit N = capability N); nullopt-like: false and
// *error when capget fails.
bool EffectiveCapabilities(uint64_t* effective, std::string* error);

// What the effective set allows, one entry per requirement (pure: tests give any set).
std::vector<CapabilityCheck> CheckCapabilities(uint64_t effective);

}  // namespace mat::doctor
