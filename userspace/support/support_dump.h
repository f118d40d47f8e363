// The support dump: `mke-audit-tap support-dump` writes one tar.gz for a support case, as MKE's
// own support dump does for MKE: version, effective configuration (license key masked),
// counters, targets and what would be probed, kernel facts and the auditor's recent logs, from
// which every line containing "auditID" (an audit line) is removed unless
// support_dump_include_audit_logs is true.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace mat::support {

// The logs as included: without the lines containing "auditID" unless include_audit_lines;
// *removed counts the lines dropped.
std::string FilterAuditLines(std::string_view logs, bool include_audit_lines, size_t* removed);

// text with every occurrence of each non-empty secret replaced by "<masked>".
std::string MaskSecrets(std::string text, const std::vector<std::string>& secrets);

// A tar archive (ustar, regular files only) compressed with gzip, written to a file.
class TarGzWriter {
 public:
  ~TarGzWriter();
  Status Open(const std::string& path);
  Status Add(const std::string& name, std::string_view content, uint64_t mtime);
  Status Close();  // writes the end of the archive

 private:
  Status Write(const void* data, size_t size);
  void* gz_ = nullptr;  // gzFile
  std::string path_;
};

// One ustar header block of a regular file (exposed for tests); name at most 99 bytes.
std::string TarHeader(const std::string& name, uint64_t size, uint64_t mtime);

// `mke-audit-tap support-dump ...`: argv[1] is "support-dump". Returns the exit code.
int RunSupportDump(int argc, char** argv);

}  // namespace mat::support
