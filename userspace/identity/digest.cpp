#include "identity/digest.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace mat::identity {

Sha256Digest Sha256(std::string_view data) {
  Sha256Digest digest{};
  // OpenSSL 3's one-shot SHA256() looks the algorithm up (EVP_MD_fetch) on every call, which
  // cost more than hashing a token; the implementation is fetched once (it is thread-safe and
  // lives as long as the process).
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned int size = 0;
  if (md == nullptr ||
      EVP_Digest(data.data(), data.size(), digest.data(), &size, md, nullptr) != 1 ||
      size != digest.size()) {
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  }
  return digest;
}

std::string HexPrefix(const Sha256Digest& digest, size_t hex_digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  if (hex_digits > 2 * digest.size()) hex_digits = 2 * digest.size();
  std::string out;
  out.reserve(hex_digits);
  for (size_t i = 0; i < hex_digits; ++i) {
    const uint8_t byte = digest[i / 2];
    out.push_back(kHex[i % 2 == 0 ? byte >> 4 : byte & 0xF]);
  }
  return out;
}

}  // namespace mat::identity
