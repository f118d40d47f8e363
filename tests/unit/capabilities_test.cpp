// Least privilege: each capability missing gets one message naming it and what fails without it.
#include "control/capabilities.h"

#include <gtest/gtest.h>
#include <linux/capability.h>
#include <unistd.h>

#include <string>

namespace mat::control {
namespace {

uint64_t Bit(int cap) { return uint64_t{1} << cap; }

bool Names(const std::vector<std::string>& texts, const std::string& cap) {
  for (const auto& t : texts)
    if (t.rfind(cap + " is missing", 0) == 0) return true;
  return false;
}

TEST(CapabilitiesTest, AllPresentNoMessage) {
  auto check = CheckCapabilities(~uint64_t{0});
  EXPECT_TRUE(check.errors.empty());
  EXPECT_TRUE(check.warnings.empty());
}

TEST(CapabilitiesTest, EachMissingOneIsNamedWithWhatFails) {
  auto check = CheckCapabilities(0);
  EXPECT_TRUE(Names(check.errors, "CAP_SYS_ADMIN"));
  EXPECT_TRUE(Names(check.errors, "CAP_SYS_PTRACE"));
  for (const char* cap :
       {"CAP_DAC_READ_SEARCH", "CAP_SETUID", "CAP_SETGID", "CAP_BPF", "CAP_PERFMON"})
    EXPECT_TRUE(Names(check.warnings, cap)) << cap;
  for (const auto& t : check.errors) EXPECT_NE(t.find("without it"), std::string::npos) << t;
  for (const auto& t : check.warnings) EXPECT_NE(t.find("without it"), std::string::npos) << t;
  EXPECT_EQ(check.errors.size() + check.warnings.size(), NeededCapabilities().size());
}

TEST(CapabilitiesTest, OneMissing) {
  uint64_t all = 0;
  for (const auto& need : NeededCapabilities()) all |= Bit(need.cap);
  auto check = CheckCapabilities(all & ~Bit(CAP_SETUID));
  EXPECT_TRUE(check.errors.empty());
  ASSERT_EQ(check.warnings.size(), 1u);
  EXPECT_TRUE(Names(check.warnings, "CAP_SETUID"));
}

// CAP_SYS_ADMIN does for CAP_BPF and CAP_PERFMON; CAP_DAC_OVERRIDE for CAP_DAC_READ_SEARCH.
TEST(CapabilitiesTest, Alternatives) {
  uint64_t set = Bit(CAP_SYS_ADMIN) | Bit(CAP_SYS_PTRACE) | Bit(CAP_DAC_OVERRIDE) |
                 Bit(CAP_SETUID) | Bit(CAP_SETGID);
  auto check = CheckCapabilities(set);
  EXPECT_TRUE(check.errors.empty());
  EXPECT_TRUE(check.warnings.empty()) << check.warnings.front();
}

TEST(CapabilitiesTest, ReadsOwnSet) {
  bool ok = false;
  uint64_t effective = EffectiveCapabilities(&ok);
  ASSERT_TRUE(ok);
  if (::geteuid() == 0) {
    EXPECT_TRUE(effective & Bit(CAP_SYS_ADMIN));
  }
}

}  // namespace
}  // namespace mat::control
