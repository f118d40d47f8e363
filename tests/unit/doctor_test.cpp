#include "doctor/doctor.h"

#include <gtest/gtest.h>

#include <string>

#include "doctor/capabilities.h"

namespace mat::doctor {
namespace {

TEST(DoctorLine, FormatsStatusItemAndText) {
  EXPECT_EQ(FormatLine({Status::kOk, "kernel BTF", "/sys/kernel/btf/vmlinux"}),
            "ok   kernel BTF: /sys/kernel/btf/vmlinux");
  EXPECT_EQ(FormatLine({Status::kWarn, "targets", "none given"}), "warn targets: none given");
  EXPECT_EQ(FormatLine({Status::kFail, "capability CAP_BPF", "missing"}),
            "FAIL capability CAP_BPF: missing");
  // One line per item, whatever an error text holds.
  EXPECT_EQ(FormatLine({Status::kFail, "x", "a\nb\r"}), "FAIL x: a b ");
}

TEST(DoctorLine, ExitCodeIsOneOnlyWithAFailure) {
  EXPECT_EQ(ExitCode({}), 0);
  EXPECT_EQ(ExitCode({{Status::kOk, "a", ""}, {Status::kWarn, "b", ""}}), 0);
  EXPECT_EQ(ExitCode({{Status::kOk, "a", ""}, {Status::kFail, "b", ""}}), 1);
}

TEST(DoctorOpenSsl, FindsTheVersionText) {
  using namespace std::string_literals;
  std::string bytes =
      "\x7f"
      "ELF\0junk OpenSSL 9\0OpenSSL %s\0"s
      "\0OpenSSL 3.0.19 27 Jan 2026\0more\0"s;
  EXPECT_EQ(FindOpenSslVersion(bytes), "OpenSSL 3.0.19 27 Jan 2026");
  EXPECT_EQ(FindOpenSslVersion("\0OpenSSL 1.1.1w  11 Sep 2023\0"s), "OpenSSL 1.1.1w  11 Sep 2023");
  EXPECT_EQ(FindOpenSslVersion("no version here"), "");
  EXPECT_EQ(FindOpenSslVersion("\0OpenSSL 3.0.1 unterminated"s), "");
  EXPECT_EQ(FindOpenSslVersion("\0OpenSSL 3.\x01\0"s), "");
}

const CapabilityCheck* Find(const std::vector<CapabilityCheck>& checks, const std::string& name) {
  for (const auto& c : checks)
    if (c.name == name) return &c;
  return nullptr;
}

TEST(DoctorCapabilities, AllPresentAsRoot) {
  auto checks = CheckCapabilities(~uint64_t{0});
  ASSERT_EQ(checks.size(), 4u);
  for (const auto& c : checks) EXPECT_TRUE(c.ok) << c.name;
}

TEST(DoctorCapabilities, NoneGivesAClearLineForEach) {
  auto checks = CheckCapabilities(0);
  for (const auto& c : checks) EXPECT_FALSE(c.ok) << c.name;
  ASSERT_NE(Find(checks, "CAP_BPF"), nullptr);
  EXPECT_NE(Find(checks, "CAP_BPF")->text.find("loading BPF programs will fail"),
            std::string::npos);
  EXPECT_TRUE(Find(checks, "CAP_BPF")->required);
  EXPECT_FALSE(Find(checks, "CAP_SYS_PTRACE")->required);
}

TEST(DoctorCapabilities, SysAdminStandsInForBpfAndPerfmon) {
  const uint64_t sys_admin = uint64_t{1} << 21;
  auto checks = CheckCapabilities(sys_admin);
  EXPECT_TRUE(Find(checks, "CAP_BPF")->ok);
  EXPECT_TRUE(Find(checks, "CAP_PERFMON")->ok);
  EXPECT_TRUE(Find(checks, "CAP_SYS_ADMIN")->ok);
  EXPECT_FALSE(Find(checks, "CAP_SYS_PTRACE")->ok);
  // CAP_BPF + CAP_PERFMON without CAP_SYS_ADMIN: the programs load, map_files do not open.
  checks = CheckCapabilities((uint64_t{1} << 39) | (uint64_t{1} << 38));
  EXPECT_TRUE(Find(checks, "CAP_BPF")->ok);
  EXPECT_TRUE(Find(checks, "CAP_PERFMON")->ok);
  EXPECT_FALSE(Find(checks, "CAP_SYS_ADMIN")->ok);
  // CAP_CHECKPOINT_RESTORE opens map_files too.
  EXPECT_TRUE(Find(CheckCapabilities(uint64_t{1} << 40), "CAP_SYS_ADMIN")->ok);
}

}  // namespace
}  // namespace mat::doctor
