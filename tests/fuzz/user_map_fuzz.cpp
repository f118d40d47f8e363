// libFuzzer target: ParseUserMap (identity/user_map.h), the JSON user map file. Checks that a
// refused map says why, that an accepted one maps what it says (every entry has an id), and
// that the error names a place; ASan/UBSan check the rest.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "identity/user_map.h"

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mat::identity;
  auto table = ParseUserMap(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!table) {
    Check(!table.error().empty());
    return 0;
  }
  for (const auto* m : {&table->by_common_name, &table->by_login})
    for (const auto& [name, user] : *m) {
      Check(!user.id.empty());
      Check(!user.name.empty() || name.empty());
    }
  return 0;
}
