#include "identity/login.h"

#include <nlohmann/json.hpp>

#include "identity/credentials.h"

namespace mat::identity {

namespace {

// Keys of the token in a login response: MKE's /auth/login, eNZi's login session.
constexpr const char* kTokenKeys[] = {"auth_token", "sessionToken", "session_token"};
// Keys of the account id in a login response (eNZi's login session).
constexpr const char* kAccountIdKeys[] = {"accountID", "accountId", "account_id"};

std::string_view PathOf(std::string_view target) {
  return target.substr(0, target.find_first_of("?#"));
}

const std::string* StringMember(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return nullptr;
  return &it->get_ref<const std::string&>();
}

}  // namespace

bool IsLoginCall(std::string_view method, std::string_view path) {
  if (method != "POST") return false;
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  return path == "/auth/login" || path == "/enzi/v0/id/login" || path == "/id/login";
}

std::optional<LoginFacts> ParseLogin(const http::HttpExchange& exchange) {
  const http::HttpRequest& request = exchange.request;
  // The method first: most exchanges are not POSTs, and the path costs a scan of the target.
  if (request.method != "POST" || !IsLoginCall(request.method, PathOf(request.target)))
    return std::nullopt;
  if (!exchange.response || exchange.response->status < 200 || exchange.response->status > 299)
    return std::nullopt;
  const http::HttpResponse& response = *exchange.response;
  if (request.body_truncated || response.body_truncated) return std::nullopt;
  const auto sent = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (!sent.is_object()) return std::nullopt;
  const std::string* username = StringMember(sent, "username");
  if (username == nullptr || username->empty() || username->size() > kMaxNameBytes)
    return std::nullopt;
  const auto answer = nlohmann::json::parse(response.body, nullptr, false);
  if (!answer.is_object()) return std::nullopt;
  const std::string* token = nullptr;
  for (const char* key : kTokenKeys) {
    token = StringMember(answer, key);
    if (token != nullptr) break;
  }
  if (token == nullptr || token->empty() || token->size() > kMaxAuthorizationBytes)
    return std::nullopt;
  LoginFacts facts;
  facts.token_digest = Sha256(*token);
  facts.user.login = *username;
  for (const char* key : kAccountIdKeys) {
    const std::string* id = StringMember(answer, key);
    if (id != nullptr && !id->empty() && id->size() <= kMaxNameBytes) {
      facts.user.account_id = *id;
      break;
    }
  }
  // Expiries past what a uint64_t of nanoseconds holds (the year 2554) count as unknown.
  if (auto claims = DecodeJwtUnverified(*token);
      claims && claims->expires_s && *claims->expires_s < 18'000'000'000) {
    facts.expires_ns = static_cast<uint64_t>(*claims->expires_s) * 1'000'000'000ull;
  }
  return facts;
}

}  // namespace mat::identity
