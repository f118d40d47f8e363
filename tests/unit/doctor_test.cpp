#include "doctor/doctor.h"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace mat::doctor
