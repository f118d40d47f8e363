// SHA-256 digests and short fingerprints of credentials. A credential is only ever kept as its
// digest (the token cache's key) and only ever shown as a fingerprint: the first few hex digits
// of the digest, enough to tell credentials apart in the audit log, never enough to use one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mat::identity {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);

// The first `hex_digits` (at most 64) lower-case hex digits of `digest`.
std::string HexPrefix(const Sha256Digest& digest, size_t hex_digits);

// Hex digits of a credential fingerprint (48 bits: tells tokens apart, reveals nothing usable).
inline constexpr size_t kCredentialFingerprintDigits = 12;
// Hex digits of a client certificate fingerprint (a certificate is public).
inline constexpr size_t kCertificateFingerprintDigits = 16;

}  // namespace mat::identity
