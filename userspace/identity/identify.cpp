#include "identity/identify.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "identity/credentials.h"
#include "identity/digest.h"
#include "identity/login.h"
#include "util/ascii.h"
#include "util/read_file.h"
#include "util/url.h"

namespace mat::identity {

namespace {

constexpr std::string_view kUnidentified = "unidentified";
constexpr std::string_view kAnonymousUser = "system:anonymous";
constexpr std::string_view kUnauthenticatedGroup = "system:unauthenticated";
constexpr std::string_view kImpersonateExtraPrefix = "impersonate-extra-";

// Fills uid, username and extra.username from a name found, the user map and a known account
// id (or JWT subject).
void Name(Identity& identity, const MappedUser* mapped, const std::string& login,
          const std::string& account_id) {
  if (mapped != nullptr) {
    identity.mapped = true;
    identity.uid = mapped->id;
    identity.username = mapped->id;
    identity.extra_username = {mapped->name};
    identity.groups = mapped->groups;
    return;
  }
  const std::string& id = account_id.empty() ? login : account_id;
  identity.uid = id;
  identity.username = id;
  identity.extra_username = {login.empty() ? id : login};
}

void Placeholder(Identity& identity, std::string_view name) {
  identity.uid = std::string(name);
  identity.username = std::string(name);
  identity.extra_username = {std::string(name)};
}

}  // namespace

std::string_view MethodName(Method method) {
  switch (method) {
    case Method::kSessionToken:
      return "session-token";
    case Method::kJwtUnverified:
      return "jwt-unverified";
    case Method::kBasic:
      return "basic";
    case Method::kClientCertificate:
      return "client-certificate";
    case Method::kClientCertificateUnverified:
      return "client-certificate-unverified";
    case Method::kUnresolved:
      return "unresolved";
    case Method::kAnonymous:
      return "anonymous";
    case Method::kNoCredentialSeen:
      return "no-credential-seen";
    case Method::kUnixPeerCredentials:
      return "unix-peer-credentials";
  }
  return "no-credential-seen";
}

std::optional<ImpersonatedUser> ParseImpersonation(const http::Headers& headers) {
  std::optional<ImpersonatedUser> user;
  size_t values = 0;
  for (const auto& [name, value] : headers) {
    if (!StartsWithIgnoreCase(name, "impersonate-")) continue;
    if (!user) user.emplace();
    if (value.size() > kMaxNameBytes) continue;
    if (EqualsIgnoreCase(name, "impersonate-user")) {
      if (user->username.empty()) user->username = value;
    } else if (EqualsIgnoreCase(name, "impersonate-uid")) {
      if (user->uid.empty()) user->uid = value;
    } else if (EqualsIgnoreCase(name, "impersonate-group")) {
      if (user->groups.size() < kMaxGroups) user->groups.push_back(value);
    } else if (StartsWithIgnoreCase(name, kImpersonateExtraPrefix) &&
               name.size() > kImpersonateExtraPrefix.size() && values < kMaxImpersonationExtras) {
      std::string key(name.substr(kImpersonateExtraPrefix.size()));
      for (char& c : key) c = AsciiLower(c);
      user->extra[GoPathUnescape(key).value_or(std::string(key))].push_back(value);
      ++values;
    }
  }
  return user;
}

Identity Identify(const http::Headers& headers, const ClientCertState& cert, TokenCache* tokens,
                  const UserMap* users, uint64_t now_ns) {
  Identity identity;
  identity.impersonated = ParseImpersonation(headers);
  auto find_login = [&](const std::string& login) {
    return users != nullptr && !login.empty() ? users->FindByLogin(login) : nullptr;
  };

  // 1. The Authorization header, when it names somebody.
  const std::string* authorization = http::FindHeader(headers, "authorization");
  Credential credential;
  if (authorization != nullptr) credential = ParseAuthorization(*authorization);
  if (credential.token_digest && tokens != nullptr) {
    if (const TokenUser* user = tokens->Find(*credential.token_digest, now_ns)) {
      identity.method = Method::kSessionToken;
      Name(identity, find_login(user->login), user->login, user->account_id);
      return identity;
    }
  }
  if (credential.kind == CredentialKind::kJwt &&
      (!credential.jwt.subject.empty() || !credential.jwt.name.empty())) {
    const JwtClaims& jwt = credential.jwt;
    const std::string& login = jwt.name.empty() ? jwt.subject : jwt.name;
    identity.method = Method::kJwtUnverified;
    Name(identity, find_login(login), login, jwt.subject);
    if (!identity.mapped) identity.groups = jwt.groups;
    return identity;
  }
  if (credential.kind == CredentialKind::kBasic) {
    identity.method = Method::kBasic;
    Name(identity, find_login(credential.basic_user), credential.basic_user, {});
    return identity;
  }

  // 2. The client certificate.
  if (cert.kind == ClientCertState::Kind::kPresent && cert.cert &&
      cert.trust != ClientCertState::Trust::kRejected) {
    const ClientCertIdentity& c = *cert.cert;
    const std::string& name = c.common_name.empty() ? c.subject : c.common_name;
    if (!name.empty()) {
      identity.method = cert.trust == ClientCertState::Trust::kVerified
                            ? Method::kClientCertificate
                            : Method::kClientCertificateUnverified;
      const MappedUser* mapped = users != nullptr && !c.common_name.empty()
                                     ? users->FindByCommonName(c.common_name)
                                     : nullptr;
      Name(identity, mapped, name, {});
      return identity;
    }
  }

  // 3. A credential that names nobody known (or a certificate that could not be read).
  const bool presented_cert = cert.kind == ClientCertState::Kind::kPresent;
  if (credential.kind != CredentialKind::kNone || presented_cert) {
    identity.method = Method::kUnresolved;
    if (credential.token_digest) {
      identity.fingerprint = HexPrefix(*credential.token_digest, kCredentialFingerprintDigits);
    } else if (credential.kind == CredentialKind::kNone) {
      identity.fingerprint = cert.der_fingerprint;
    }
    Placeholder(identity, identity.fingerprint.empty() ? std::string("unresolved")
                                                       : "unresolved:" + identity.fingerprint);
    return identity;
  }

  // 4, 5. No credential.
  if (cert.kind == ClientCertState::Kind::kNone) {
    identity.method = Method::kAnonymous;
    Placeholder(identity, kAnonymousUser);
    identity.groups = {std::string(kUnauthenticatedGroup)};
    return identity;
  }
  identity.method = Method::kNoCredentialSeen;
  Placeholder(identity, kUnidentified);
  return identity;
}

IdentityResolver::IdentityResolver(IdentityOptions options)
    : options_(std::move(options)), tokens_(options_.tokens) {}

Status IdentityResolver::Start(uint64_t now_ns) {
  if (!options_.client_ca_path.empty()) {
    // A regular file of a sane size (not a FIFO, not /dev/zero) first.
    if (auto text = ReadSmallFile(options_.client_ca_path, 16u << 20); !text)
      return Error{"--client-ca " + options_.client_ca_path + ": " + text.error()};
    X509_STORE* store = X509_STORE_new();
    if (store == nullptr || X509_STORE_load_file(store, options_.client_ca_path.c_str()) != 1) {
      X509_STORE_free(store);
      ERR_clear_error();
      return Error{"--client-ca " + options_.client_ca_path +
                   ": no PEM certificate could be loaded"};
    }
    ca_store_.reset(store, [](void* p) { X509_STORE_free(static_cast<X509_STORE*>(p)); });
  }
  if (options_.user_map_path.empty()) return {};
  Status opened = users_.Open(options_.user_map_path, options_.user_map_check_ns, now_ns);
  if (!opened) return Error{"user map " + options_.user_map_path + ": " + opened.error()};
  spdlog::info("user map {}: {} entr{}", options_.user_map_path, users_.size(),
               users_.size() == 1 ? "y" : "ies");
  return {};
}

void IdentityResolver::Tick(uint64_t now_ns) {
  users_.MaybeReload(now_ns);
  ++generation_;  // the map may have changed
}

void IdentityResolver::Store(const ConnKey& key, ClientCertState state) {
  OnConnectionEnd(key);
  ++generation_;
  if (options_.max_connections == 0) return;
  while (certs_.size() >= options_.max_connections && !arrival_.empty()) {
    certs_.erase(arrival_.begin()->second);
    arrival_.erase(arrival_.begin());
  }
  const uint64_t sequence = next_sequence_++;
  certs_[key] = Stored{sequence, std::move(state)};
  arrival_[sequence] = key;
}

void IdentityResolver::OnClientCertificate(const ConnKey& key, std::string_view der) {
  ClientCertState state;
  state.kind = ClientCertState::Kind::kPresent;
  state.cert = ParseClientCertificate(der);
  if (ca_store_ != nullptr) state.trust = Verify(der);
  state.der_fingerprint =
      state.cert ? state.cert->fingerprint
                 : HexPrefix(Sha256(der.substr(0, std::min(der.size(), kMaxCertificateBytes))),
                             kCertificateFingerprintDigits);
  Store(key, std::move(state));
}

ClientCertState::Trust IdentityResolver::Verify(std::string_view der) const {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  bool ok = x != nullptr && ctx != nullptr &&
            X509_STORE_CTX_init(ctx, static_cast<X509_STORE*>(ca_store_.get()), x, nullptr) == 1 &&
            X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) == 1 &&
            X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  X509_free(x);
  ERR_clear_error();
  return ok ? ClientCertState::Trust::kVerified : ClientCertState::Trust::kRejected;
}

void IdentityResolver::OnNoClientCertificate(const ConnKey& key) {
  ClientCertState state;
  state.kind = ClientCertState::Kind::kNone;
  Store(key, std::move(state));
}

void IdentityResolver::OnConnectionEnd(const ConnKey& key) {
  ++generation_;
  auto it = certs_.find(key);
  if (it == certs_.end()) return;
  arrival_.erase(it->second.sequence);
  certs_.erase(it);
}

void IdentityResolver::OnConnectionRestart(const ConnKey& key) {
  auto it = certs_.find(key);
  if (it != certs_.end() && it->second.used) OnConnectionEnd(key);
  ++generation_;
}

void IdentityResolver::OnProcessExit(uint32_t tgid) {
  ++generation_;
  auto it = certs_.lower_bound(ConnKey{tgid, 0});
  while (it != certs_.end() && it->first.first == tgid) {
    arrival_.erase(it->second.sequence);
    it = certs_.erase(it);
  }
}

bool IdentityResolver::Learn(const http::HttpExchange& exchange, uint64_t now_ns) {
  auto facts = ParseLogin(exchange);
  if (!facts) return false;
  tokens_.Learn(facts->token_digest, facts->user, now_ns, facts->expires_ns);
  spdlog::debug("learned a session token of login {} (token {})", facts->user.login,
                HexPrefix(facts->token_digest, kCredentialFingerprintDigits));
  return true;
}

Identity IdentityResolver::Resolve(const http::HttpRequest& request, const ConnKey& key,
                                   uint64_t now_ns) {
  static const ClientCertState kUnknown;
  auto it = certs_.find(key);
  if (it != certs_.end()) it->second.used = true;
  return Identify(request.headers, it == certs_.end() ? kUnknown : it->second.state, &tokens_,
                  &users_, now_ns);
}

const Identity& IdentityResolver::ResolveShared(const http::HttpRequest& request,
                                                const ConnKey& key, uint64_t now_ns) {
  bool own_credential = false;
  for (const auto& [name, value] : request.headers) {
    if ((name.size() == 13 && EqualsIgnoreCase(name, "authorization")) ||
        StartsWithIgnoreCase(name, "impersonate-")) {
      own_credential = true;
      break;
    }
  }
  if (!own_credential && shared_valid_ && shared_key_ == key && shared_generation_ == generation_)
    return shared_;
  shared_ = Resolve(request, key, now_ns);
  shared_valid_ = !own_credential;
  shared_key_ = key;
  shared_generation_ = generation_;
  return shared_;
}

}  // namespace mat::identity
