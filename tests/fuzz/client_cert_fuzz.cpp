// libFuzzer target: ParseClientCertificate (identity/client_cert.h), the DER certificate (or
// chain) a server parsed during a handshake, as the tap hands it over. Checks the bounds the
// header promises and that OpenSSL's error queue is left empty; ASan/UBSan check the rest.

#include <openssl/err.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "identity/client_cert.h"

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mat::identity;
  auto id = ParseClientCertificate(std::string_view(reinterpret_cast<const char*>(data), size));
  Check(ERR_peek_error() == 0);
  if (id) {
    Check(size <= kMaxCertificateBytes);
    Check(id->common_name.size() <= kMaxNameValueBytes);
    Check(id->organizations.size() <= kMaxNameValues);
    Check(id->organizational_units.size() <= kMaxNameValues);
    for (const auto& o : id->organizations) Check(o.size() <= kMaxNameValueBytes);
    for (const auto& o : id->organizational_units) Check(o.size() <= kMaxNameValueBytes);
  }
  return 0;
}
