// Login exchanges: the moments a token is issued to a named user, in plaintext on the wire.
//   POST /auth/login          MKE (UCP): {"username":..,"password":..} -> {"auth_token":..};
//                             the token is then sent as "Authorization: Bearer <token>".
//   POST /enzi/v0/id/login    eNZi, MKE's identity service (also at /id/login on its own
//   POST /id/login            port): {"username":..,"password":..} -> {"sessionToken":..,
//                             "accountID":..,..}; sent as "Authorization: SessionToken <token>".
// From such an exchange with a 2xx response only the user name (and account id, when the
// response says it) and the SHA-256 of the token are taken; the password and the token are not.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "http/exchange.h"
#include "identity/digest.h"
#include "identity/token_cache.h"

namespace mat::identity {

struct LoginFacts {
  Sha256Digest token_digest{};
  TokenUser user;
  uint64_t expires_ns = 0;  // the token's own expiry when it is a JWT with "exp"; else 0
};

// True for the login calls above. `path` is the request-target without the query.
bool IsLoginCall(std::string_view method, std::string_view path);

// The facts of a successful login exchange: a login call, a 2xx response, both bodies complete
// JSON objects, a non-empty string user name (at most kMaxNameBytes) and token. nullopt for
// anything else (a failed login teaches nothing).
std::optional<LoginFacts> ParseLogin(const http::HttpExchange& exchange);

}  // namespace mat::identity
