// libFuzzer target: the configuration file reader. The input is a --config file: read by
// ParseToml (config/toml_reader.h) on its own, every section, and then by ParseOptions with
// --config naming it (the options' checks of [mke_audit_tap] and [audit_log_configuration]).
// Checks that a refusal says why, naming the file; ASan/UBSan check the rest.

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/toml_reader.h"
#include "options.h"

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
int MemFile() {
  static int fd = [] {
    int f = memfd_create("config_fuzz", 0);
    Check(f >= 0);
    return f;
  }();
  return fd;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto doc = mat::config::ParseToml(text);
  if (!doc) Check(doc.error().rfind("line ", 0) == 0);

  const int fd = MemFile();
  Check(ftruncate(fd, 0) == 0);
  Check(pwrite(fd, data, size, 0) == static_cast<ssize_t>(size));
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  std::string config = "--config=" + path;
  char arg0[] = "mke-audit-tap";
  char* argv[] = {arg0, config.data(), nullptr};
  auto options = mat::ParseOptions(2, argv, /*require_targets=*/false);
  if (!options) Check(!options.error().empty());
  return 0;
}
