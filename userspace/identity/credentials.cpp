#include "identity/credentials.h"

#include <openssl/crypto.h>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "util/ascii.h"

namespace mat::identity {

namespace {

constexpr std::array<int8_t, 256> MakeTable(bool url_safe) {
  std::array<int8_t, 256> table{};
  for (auto& v : table) v = -1;
  const char* alphabet = url_safe
                             ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                             : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i)
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr std::array<int8_t, 256> kStandard = MakeTable(false);
constexpr std::array<int8_t, 256> kUrlSafe = MakeTable(true);

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// A string claim, when it is one of acceptable size.
std::string StringClaim(const nlohmann::json& payload, const char* key) {
  auto it = payload.find(key);
  if (it == payload.end() || !it->is_string()) return {};
  const auto& value = it->get_ref<const std::string&>();
  if (value.size() > kMaxNameBytes) return {};
  return value;
}

}  // namespace

std::optional<std::string> DecodeBase64(std::string_view text, bool url_safe) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  const auto& table = url_safe ? kUrlSafe : kStandard;
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    const int8_t v = table[static_cast<unsigned char>(c)];
    if (v < 0) {
      OPENSSL_cleanse(out.data(), out.size());
      return std::nullopt;
    }
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  OPENSSL_cleanse(&buffer, sizeof buffer);
  return out;
}

std::optional<JwtClaims> DecodeJwtUnverified(std::string_view token) {
  const size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return std::nullopt;
  const size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return std::nullopt;  // a JWS has three parts (a five-part JWE is encrypted: opaque)
  }
  const auto header_text = DecodeBase64(token.substr(0, dot1), /*url_safe=*/true);
  const auto payload_text = DecodeBase64(token.substr(dot1 + 1, dot2 - dot1 - 1), true);
  if (!header_text || !payload_text) return std::nullopt;
  const auto header = nlohmann::json::parse(*header_text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object() || !header.contains("alg")) return std::nullopt;
  const auto payload = nlohmann::json::parse(*payload_text, nullptr, false);
  if (!payload.is_object()) return std::nullopt;
  JwtClaims claims;
  claims.subject = StringClaim(payload, "sub");
  for (const char* key : {"preferred_username", "username", "name"}) {
    claims.name = StringClaim(payload, key);
    if (!claims.name.empty()) break;
  }
  claims.issuer = StringClaim(payload, "iss");
  if (auto exp = payload.find("exp"); exp != payload.end() && exp->is_number()) {
    const double seconds = exp->get<double>();
    if (std::isfinite(seconds) && seconds >= 0 && seconds < 1e15) {
      claims.expires_s = static_cast<int64_t>(seconds);
    }
  }
  if (auto groups = payload.find("groups"); groups != payload.end() && groups->is_array()) {
    for (const auto& group : *groups) {
      if (claims.groups.size() == kMaxGroups) break;
      if (group.is_string() && group.get_ref<const std::string&>().size() <= kMaxNameBytes) {
        claims.groups.push_back(group.get<std::string>());
      }
    }
  }
  return claims;
}

Credential ParseAuthorization(std::string_view value) {
  Credential credential;
  if (value.size() > kMaxAuthorizationBytes) {
    credential.kind = CredentialKind::kMalformed;
    return credential;
  }
  value = Trim(value);
  const size_t space = value.find_first_of(" \t");
  const std::string_view scheme = value.substr(0, space);
  const std::string_view rest =
      space == std::string_view::npos ? std::string_view() : Trim(value.substr(space));
  if (EqualsIgnoreCase(scheme, "basic")) {
    credential.kind = CredentialKind::kMalformed;
    auto decoded = DecodeBase64(rest, /*url_safe=*/false);
    if (!decoded) return credential;
    const size_t colon = decoded->find(':');
    if (colon != std::string::npos && colon > 0 && colon <= kMaxNameBytes) {
      credential.kind = CredentialKind::kBasic;
      credential.basic_user = decoded->substr(0, colon);
    }
    OPENSSL_cleanse(decoded->data(), decoded->size());  // the password
    return credential;
  }
  const bool bearer = EqualsIgnoreCase(scheme, "bearer");
  const bool session = EqualsIgnoreCase(scheme, "sessiontoken");
  if (!bearer && !session) {
    credential.kind = scheme.empty() ? CredentialKind::kMalformed : CredentialKind::kOther;
    return credential;
  }
  if (rest.empty() || rest.find_first_of(" \t") != std::string_view::npos) {
    credential.kind = CredentialKind::kMalformed;
    return credential;
  }
  credential.token_digest = Sha256(rest);
  credential.kind = session ? CredentialKind::kSessionToken : CredentialKind::kBearer;
  if (bearer) {
    // A client sends the same token on every request (kubectl: a service account's JWT), and
    // decoding it (base64, two JSON documents) cost ten times its hash: the claims of recent
    // tokens are kept by digest (per thread, bounded; the claims are the token's, whenever it
    // is used; nothing of the token itself is kept).
    struct Decoded {
      std::optional<JwtClaims> claims;
    };
    struct DigestHash {
      size_t operator()(const Sha256Digest& d) const {
        size_t h;
        std::memcpy(&h, d.data(), sizeof h);
        return h;
      }
    };
    static constexpr size_t kMaxDecoded = 1024;
    static thread_local std::unordered_map<Sha256Digest, Decoded, DigestHash> decoded;
    auto it = decoded.find(*credential.token_digest);
    if (it == decoded.end()) {
      if (decoded.size() >= kMaxDecoded) decoded.clear();
      it = decoded.emplace(*credential.token_digest, Decoded{DecodeJwtUnverified(rest)}).first;
    }
    if (it->second.claims) {
      credential.kind = CredentialKind::kJwt;
      credential.jwt = *it->second.claims;
    }
  }
  return credential;
}

}  // namespace mat::identity
