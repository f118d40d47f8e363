// Credentials in an Authorization header, read passively: what kind, and who it names where the
// credential itself says so. Secrets are never kept: a Basic password is dropped as soon as the
// user name is cut out of it (the decoded buffer is wiped), a token is kept only as its SHA-256
// (the token cache's key; shown, if at all, as a 12-digit fingerprint).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "identity/digest.h"

namespace mat::identity {

// Authorization values longer than this are not parsed (kMalformed, no digest).
inline constexpr size_t kMaxAuthorizationBytes = 16 * 1024;
// Claim and user name values longer than this are ignored.
inline constexpr size_t kMaxNameBytes = 256;
// At most this many groups are taken from a token.
inline constexpr size_t kMaxGroups = 64;

enum class CredentialKind {
  kNone,          // no Authorization header
  kBasic,         // "Basic base64(user:password)": basic_user set
  kJwt,           // "Bearer" with a token shaped like a JWT whose parts decode: jwt set
  kBearer,        // "Bearer" with any other (opaque) token: MKE's session tokens
  kSessionToken,  // "SessionToken <token>": eNZi's scheme for its session tokens
  kOther,         // another scheme (Digest, Negotiate, ...): not read
  kMalformed,     // Basic that does not decode to user:password, an empty token, oversized
};

// The claims of a JWT payload that say who it is for. Decoded without verification: the
// signature is not checked (a passive observer has no keys), so the claims are what the
// client sent. The audited server checks them; its response code says whether it accepted.
struct JwtClaims {
  std::string subject;               // "sub"
  std::string name;                  // "preferred_username", else "username", else "name"
  std::string issuer;                // "iss"
  std::optional<int64_t> expires_s;  // "exp", seconds since the epoch
  std::vector<std::string> groups;   // "groups", when an array of strings
};

struct Credential {
  CredentialKind kind = CredentialKind::kNone;
  std::string basic_user;  // kBasic: the user name; never the password
  JwtClaims jwt;           // kJwt
  // kJwt, kBearer, kSessionToken: SHA-256 of the token (the text after the scheme).
  std::optional<Sha256Digest> token_digest;
};

// Reads one Authorization header value. Scheme names are case-insensitive; surrounding
// whitespace is ignored. Never throws; bounded work (kMaxAuthorizationBytes).
Credential ParseAuthorization(std::string_view value);

// The claims of a compact JWS (header.payload.signature, base64url) whose header and payload
// decode to JSON objects. nullopt for anything else. The signature is not verified.
std::optional<JwtClaims> DecodeJwtUnverified(std::string_view token);

// Standard (RFC 4648 section 4) or URL-safe (section 5) base64; padding optional, whitespace not
// allowed. nullopt for any other byte or an impossible length.
std::optional<std::string> DecodeBase64(std::string_view text, bool url_safe);

}  // namespace mat::identity
