// The support dump's parts: the audit-line filter both ways, secret masking, the tar header.
#include "support/support_dump.h"

#include <gtest/gtest.h>

namespace mat::support {
namespace {

const char* kLogs =
    "2026-12-06T08:00:00.000000Z info ready: auditing 2 process(es) at level metadata\n"
    "{\"audit\":{\"auditID\":\"0b5f...\",\"level\":\"Metadata\"}}\n"
    "2026-12-06T08:00:01.000000Z info admin API: audit level request\n"
    "{\"audit\":{\"auditID\":\"9c1e...\",\"level\":\"Request\"}}";  // no final line end

TEST(SupportDump, AuditLinesRemovedUnlessIncluded) {
  size_t removed = 99;
  std::string out = FilterAuditLines(kLogs, /*include_audit_lines=*/false, &removed);
  EXPECT_EQ(removed, 2u);
  EXPECT_EQ(out,
            "2026-12-06T08:00:00.000000Z info ready: auditing 2 process(es) at level metadata\n"
            "2026-12-06T08:00:01.000000Z info admin API: audit level request\n");
  EXPECT_EQ(out.find("auditID"), std::string::npos);
  out = FilterAuditLines(kLogs, /*include_audit_lines=*/true, &removed);
  EXPECT_EQ(removed, 0u);
  EXPECT_EQ(out, kLogs);
}

TEST(SupportDump, SecretsMaskedEverywhere) {
  EXPECT_EQ(MaskSecrets("k=KEY1 and KEY1KEY1", {"KEY1", ""}), "k=<masked> and <masked><masked>");
  EXPECT_EQ(MaskSecrets("nothing", {""}), "nothing");
  // A secret that the mask itself contains does not loop.
  EXPECT_EQ(MaskSecrets("a masked b", {"masked"}), "a <masked> b");
}

TEST(SupportDump, TarHeaderIsUstarWithItsChecksum) {
  std::string h = TarHeader("dir/version.txt", 1234, 1700000000);
  ASSERT_EQ(h.size(), 512u);
  EXPECT_EQ(h.substr(0, 15), "dir/version.txt");
  EXPECT_EQ(h.substr(124, 11), "00000002322");  // 1234 in octal
  EXPECT_EQ(h.substr(257, 5), "ustar");
  unsigned sum = 0;
  for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : (unsigned char)h[i];
  EXPECT_EQ(std::stoul(h.substr(148, 6), nullptr, 8), sum);
}

}  // namespace
}  // namespace mat::support
