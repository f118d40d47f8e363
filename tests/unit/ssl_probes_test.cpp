// Probe placement: which instructions the kernel emulates, and the plan for the system's own
// libssl (Debian 12's OpenSSL 3.0), read from the real file.
#include "tap/ssl_probes.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tap/elf_file.h"

namespace mat::tap {
namespace {

struct InsnCase {
  std::vector<uint8_t> bytes;
  bool emulated;
  const char* text;
};

TEST(SslProbes, EmulatedInstructions) {
  const InsnCase cases[] = {
      {{0x41, 0x55}, true, "push r13"},
      {{0x53}, true, "push rbx"},
      {{0x55}, true, "push rbp"},
      {{0x90}, true, "nop"},
      {{0xe8, 0, 0, 0, 0}, true, "call 5"},
      {{0xeb, 0x10}, true, "jmp 0x12"},
      {{0x74, 0x05}, true, "je 7"},
      {{0x0f, 0x84, 0, 1, 0, 0}, true, "je 0x106"},
      {{0x48, 0x83, 0xec, 0x18}, false, "sub rsp, 0x18"},
      {{0x48, 0x85, 0xff}, false, "test rdi, rdi"},
      {{0xf3, 0x0f, 0x1e, 0xfa}, false, "endbr64"},
      {{0xc3}, false, "ret"},
      {{0x6a, 0x01}, false, "push 1"},  // push of an immediate is not emulated
  };
  for (const auto& c : cases) {
    std::string text;
    EXPECT_EQ(IsEmulatedInstruction(c.bytes.data(), c.bytes.size(), &text), c.emulated) << c.text;
    EXPECT_EQ(text, c.text);
  }
  std::string text;
  EXPECT_FALSE(IsEmulatedInstruction(nullptr, 0, &text));
}

constexpr char kDebianLibssl[] = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

TEST(SslProbes, DebianLibsslUsesTheInternalFunctionsOnPush) {
  if (!std::filesystem::exists(kDebianLibssl)) GTEST_SKIP() << "no " << kDebianLibssl;
  auto plan = PlanSslProbes(kDebianLibssl);
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_TRUE(plan->internal_read);
  EXPECT_TRUE(plan->internal_write);
  int entries = 0, returns = 0, ends = 0, handshakes = 0;
  for (const auto& site : plan->sites) {
    switch (site.program) {
      case ProbeProgram::kReadEnterPtr4:
      case ProbeProgram::kWriteEnterPtr4:
        ++entries;
        EXPECT_TRUE(site.emulated) << site.function << " starts with " << site.instruction;
        EXPECT_EQ(site.instruction.rfind("push", 0), 0u) << site.instruction;
        break;
      case ProbeProgram::kReadExit:
      case ProbeProgram::kWriteExit:
        ++returns;
        break;
      case ProbeProgram::kHandshakeExit:
        EXPECT_EQ(site.function, "SSL_do_handshake");  // a uretprobe, once per handshake call
        break;
      case ProbeProgram::kConnEnd:
        ++ends;
        break;
      case ProbeProgram::kHandshake:
        // Where the thread's handshake (and so the client certificate) is tied to its SSL*.
        ++handshakes;
        EXPECT_EQ(site.function, "SSL_do_handshake");
        EXPECT_TRUE(site.emulated) << site.instruction;
        break;
      default:
        ADD_FAILURE() << "unexpected fallback probe on " << site.function;
    }
  }
  EXPECT_EQ(entries, 2);
  EXPECT_EQ(returns, 2);
  EXPECT_EQ(ends, 2);
  EXPECT_EQ(handshakes, 1);
  // The internal functions are not the exported ones.
  auto elf = ElfFile::Load(kDebianLibssl);
  ASSERT_TRUE(elf) << elf.error();
  auto ssl_read = elf->FindFunction("SSL_read");
  ASSERT_TRUE(ssl_read.has_value());
  for (const auto& site : plan->sites) {
    if (site.program == ProbeProgram::kReadEnterPtr4) {
      EXPECT_NE(site.file_offset, ssl_read->file_offset);
    }
  }
}

constexpr char kDebianLibcrypto[] = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3";

TEST(SslProbes, DebianLibcryptoCertificateParseIsEmulated) {
  if (!std::filesystem::exists(kDebianLibcrypto)) GTEST_SKIP() << "no " << kDebianLibcrypto;
  auto sites = PlanCertProbes(kDebianLibcrypto);
  ASSERT_TRUE(sites) << sites.error();
  ASSERT_EQ(sites->size(), 2u);
  auto elf = ElfFile::Load(kDebianLibcrypto);
  ASSERT_TRUE(elf) << elf.error();
  const ProbeSite& parse = (*sites)[0];
  EXPECT_EQ(parse.program, ProbeProgram::kCertParse);
  EXPECT_EQ(parse.function, "d2i_X509");
  EXPECT_TRUE(parse.emulated) << parse.instruction;  // push r12 on Debian 12
  EXPECT_EQ(parse.file_offset, elf->FindFunction("d2i_X509")->file_offset);
  const ProbeSite& send = (*sites)[1];
  EXPECT_EQ(send.program, ProbeProgram::kCertSend);
  EXPECT_EQ(send.function, "i2d_X509");
  EXPECT_TRUE(send.emulated) << send.instruction;  // push rbp
  EXPECT_EQ(send.file_offset, elf->FindFunction("i2d_X509")->file_offset);
  // libssl does not carry it; a file without it is refused with a reason.
  auto refused = PlanCertProbes(kDebianLibssl);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("d2i_X509"), std::string::npos) << refused.error();
}

TEST(SslProbes, AFileWithoutOpenSslIsRefused) {
  auto no_ssl = PlanSslProbes("/bin/true");
  ASSERT_FALSE(no_ssl);
  EXPECT_NE(no_ssl.error().find("SSL_read"), std::string::npos) << no_ssl.error();
  auto missing = PlanSslProbes("/nonexistent/libssl.so.3");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), "cannot open /nonexistent/libssl.so.3");
  auto not_elf = PlanSslProbes("/etc/hostname");
  ASSERT_FALSE(not_elf);
  EXPECT_NE(not_elf.error().find("not a 64-bit"), std::string::npos) << not_elf.error();
}

}  // namespace
}  // namespace mat::tap
