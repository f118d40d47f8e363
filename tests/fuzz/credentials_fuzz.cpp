// libFuzzer target: the credential parsers of identity/credentials.h and identity/login.h.
// Byte 0 picks the parser, the rest is its input:
//   0: ParseAuthorization (an Authorization header value)
//   1: DecodeJwtUnverified (a compact JWS)
//   2: DecodeBase64, standard; 3: URL-safe
//   4: ParseLogin: the rest split at the first "\n--\n" into the request body and the response
//      body of POST /auth/login (2xx); 5: the same for eNZi's /enzi/v0/id/login
// Checks the bounds the headers promise; ASan/UBSan check the rest.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "identity/credentials.h"
#include "identity/login.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckClaims(const mat::identity::JwtClaims& c) {
  Check(c.subject.size() <= mat::identity::kMaxNameBytes);
  Check(c.name.size() <= mat::identity::kMaxNameBytes);
  Check(c.groups.size() <= mat::identity::kMaxGroups);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace mat::identity;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {
      const Credential c = ParseAuthorization(in);
      if (c.kind == CredentialKind::kBasic) Check(c.basic_user.size() <= in.size());
      if (c.kind == CredentialKind::kJwt) CheckClaims(c.jwt);
      if (c.kind == CredentialKind::kJwt || c.kind == CredentialKind::kBearer ||
          c.kind == CredentialKind::kSessionToken)
        Check(c.token_digest.has_value());
      if (in.size() > kMaxAuthorizationBytes) Check(!c.token_digest.has_value());
      break;
    }
    case 1:
      if (auto claims = DecodeJwtUnverified(in)) CheckClaims(*claims);
      break;
    case 2:
    case 3: {
      const bool url = data[0] % 6 == 3;
      if (auto out = DecodeBase64(in, url)) {
        Check(out->size() <= in.size() * 3 / 4 + 2);
      }
      break;
    }
    default: {
      mat::http::HttpExchange ex;
      const size_t cut = in.find("\n--\n");
      ex.request.method = "POST";
      ex.request.target = data[0] % 6 == 4 ? "/auth/login" : "/enzi/v0/id/login";
      ex.request.body = std::string(in.substr(0, cut));
      ex.request.body_size = ex.request.body.size();
      ex.response.emplace();
      ex.response->status = 200;
      if (cut != std::string_view::npos) ex.response->body = std::string(in.substr(cut + 4));
      ex.response->body_size = ex.response->body.size();
      if (auto facts = ParseLogin(ex)) {
        Check(!facts->user.login.empty());
        Check(facts->user.login.size() <= kMaxNameBytes);
      }
      break;
    }
  }
  return 0;
}
