// Who made a request, as far as a passive observer can tell, in the terms MKE writes it:
// user.uid and user.username = the MKE account id, user.extra.username = [the login name].
//
// Precedence (MKE's clients: the UI and API scripts send a session token from /auth/login,
// client bundles (docker, kubectl) authenticate with their certificate and send no
// Authorization header):
//  1. An Authorization header that resolves to a user:
//     - a Bearer or SessionToken token learned at a login (TokenCache): "session-token";
//     - else a Bearer JWT with a "sub" or name claim, decoded unverified: "jwt-unverified";
//     - Basic: its user name (the password is not checked here): "basic".
//  2. Else the TLS client certificate of the connection, when the capture supplied one (its
//     subject CN): "client-certificate".
//  3. Else, when an Authorization header was there but names nobody (an opaque token issued
//     before the auditor started, another scheme, a malformed value): "unresolved"; the user
//     fields say "unresolved" with a fingerprint of the token (first 12 hex digits of its
//     SHA-256, so one token's requests can be told apart; Basic and unknown schemes get none).
//  4. Else, when the capture reported that the handshake had no client certificate:
//     "anonymous" (system:anonymous, group system:unauthenticated, as Kubernetes says it).
//  5. Else nothing was seen and the capture cannot say more: "no-credential-seen", written as
//     "unidentified" (the capture does not supply client certificates yet, so a client bundle's
//     request lands here).
// Calls on dockerd's local (Unix) socket are not resolved here: the kernel's peer credentials
// name the caller (identity/local_peer.h, pipeline's SetLocalUser): "unix-peer-credentials".
// The name found is looked up in the user map ("cn:" for certificates, "login:" for the rest):
// with an entry, uid = username = its account id and extra.username = [its name]; without one,
// an account id the login response gave (eNZi) or a JWT's "sub" fills uid and username, and
// otherwise the name found fills all three.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/exchange.h"
#include "identity/client_cert.h"
#include "identity/token_cache.h"
#include "identity/user_map.h"
#include "util/defaults.h"
#include "util/result.h"

namespace mat::identity {

enum class Method {
  kSessionToken,                 // a token learned at a login
  kJwtUnverified,                // a JWT's claims, signature not verified
  kBasic,                        // Basic user name
  kClientCertificate,            // the TLS client certificate's CN, verified against --client-ca
  kClientCertificateUnverified,  // its CN, with no CA to verify it against
  kUnresolved,                   // a credential that names nobody known
  kAnonymous,                    // no credential at all, known for sure
  kNoCredentialSeen,             // no credential seen, and certificates not known
  kUnixPeerCredentials,          // a local socket's peer: the uid the kernel recorded at connect
};
// "session-token", "jwt-unverified", "basic", "client-certificate",
// "client-certificate-unverified", "unresolved", "anonymous", "no-credential-seen",
// "unix-peer-credentials".
std::string_view MethodName(Method method);

// The Kubernetes impersonation headers, as the client sent them (whether the server allowed
// the impersonation is in the response code): Impersonate-User, Impersonate-Uid,
// Impersonate-Group (each header one group), Impersonate-Extra-<key> (the key lower-cased and
// percent-decoded, as the apiserver does; each header one value). Bounded: at most kMaxGroups
// groups and kMaxImpersonationExtras extra values in all; values over kMaxNameBytes are dropped.
struct ImpersonatedUser {
  std::string username;
  std::string uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;
};
inline constexpr size_t kMaxImpersonationExtras = 64;
// nullopt when the request has none of those headers.
std::optional<ImpersonatedUser> ParseImpersonation(const http::Headers& headers);

struct Identity {
  Method method = Method::kNoCredentialSeen;
  std::string uid;
  std::string username;
  std::vector<std::string> extra_username;  // [login name]
  std::vector<std::string> groups;          // from the user map or a JWT's "groups"
  std::string fingerprint;  // kUnresolved: the token's fingerprint (empty for Basic, others)
  bool mapped = false;      // a user map entry supplied uid and username
  std::optional<ImpersonatedUser> impersonated;
};

// What the capture knows about the TLS client certificate of a connection.
struct ClientCertState {
  enum class Kind {
    kUnknown,  // the handshake was not seen (the capture reports no certificates yet)
    kNone,     // the handshake was seen: no client certificate
    kPresent,  // a certificate was presented: `cert` when it parsed
  };
  Kind kind = Kind::kUnknown;
  // The auditor sees the certificate as the server parses it, before the server verifies it; a
  // client may present any self-signed certificate. With a CA (--client-ca) the chain is
  // checked here: a certificate it rejects names nobody.
  enum class Trust { kNotChecked, kVerified, kRejected };
  Trust trust = Trust::kNotChecked;
  std::optional<ClientCertIdentity> cert;
  std::string der_fingerprint;  // kPresent: the fingerprint of the bytes, also when unparsable
};

// Decides who made the request with `headers` on a connection whose certificate state is
// `cert`. `tokens` (may be null) is consulted (and its LRU order updated) for bearer tokens;
// `users` (may be null) maps names to accounts. `now_ns` is the request's time.
Identity Identify(const http::Headers& headers, const ClientCertState& cert, TokenCache* tokens,
                  const UserMap* users, uint64_t now_ns);

// The identity layer of the pipeline: the token cache, the user map and the client certificates
// of the live connections, which the capture reports per connection, keyed like its records
// (tgid, the SSL object's address).
struct IdentityOptions {
  TokenCacheOptions tokens;
  std::string user_map_path;   // empty: no map
  std::string client_ca_path;  // PEM CA bundle client certificates must chain to; empty: none
  uint64_t user_map_check_ns = 5ull * 1'000'000'000;   // how often the map file is looked at
  size_t max_connections = defaults::kMaxConnections;  // certificates kept (TAP_MAX_CONNS)
};

class IdentityResolver {
 public:
  using ConnKey = std::pair<uint32_t, uint64_t>;  // (tgid, SSL*)

  explicit IdentityResolver(IdentityOptions options);
  // Reads the client CA bundle and the user map. Fails with the error, naming the file
  // ("--client-ca PATH: ...", "user map PATH: ..."); the resolver still works, mapping nobody
  // until the file is fixed.
  Status Start(uint64_t now_ns);
  // Rereads the user map when it changed (at most every user_map_check_ns).
  void Tick(uint64_t now_ns);

  // The integration point for the capture: the DER bytes of the client certificate (or chain)
  // presented on connection `key`, or the fact that its handshake presented none. Reported
  // before the connection's first request; kept until OnConnectionEnd or OnProcessExit.
  void OnClientCertificate(const ConnKey& key, std::string_view der);
  void OnNoClientCertificate(const ConnKey& key);
  // Whether der chains to the --client-ca bundle (only with one loaded).
  ClientCertState::Trust Verify(std::string_view der) const;
  void OnConnectionEnd(const ConnKey& key);
  void OnProcessExit(uint32_t tgid);
  // The connection identity `key` was reused without its end being seen (its end record was
  // lost). The certificate state kept for it is the old connection's when a request of that
  // connection already used it; it is then forgotten, so the new connection (a resumed session
  // presents no certificate) does not inherit it. A state stored since, by the new connection's
  // handshake records (which come before its data), is kept.
  void OnConnectionRestart(const ConnKey& key);

  // Learns the token of a successful login exchange (see login.h). True when it learned one.
  bool Learn(const http::HttpExchange& exchange, uint64_t now_ns);
  // The identity of `request` made on connection `key`.
  Identity Resolve(const http::HttpRequest& request, const ConnKey& key, uint64_t now_ns);
  // The same, kept until the next call: a request that carries no credential of its own (no
  // Authorization, no Impersonate-* header) on the connection of the previous one gets the
  // same answer without the work (keep-alive connections send many such requests in a row).
  const Identity& ResolveShared(const http::HttpRequest& request, const ConnKey& key,
                                uint64_t now_ns);

  const TokenCache& tokens() const { return tokens_; }
  const UserMap& users() const { return users_; }
  size_t connections() const { return certs_.size(); }

 private:
  void Store(const ConnKey& key, ClientCertState state);

  struct Stored {
    uint64_t sequence = 0;  // order of arrival: the oldest goes first when full
    ClientCertState state;
    bool used = false;  // a request was resolved with it
  };
  IdentityOptions options_;
  std::shared_ptr<void> ca_store_;  // X509_STORE*, when client_ca_path is set
  TokenCache tokens_;
  UserMap users_;
  std::map<ConnKey, Stored> certs_;
  std::map<uint64_t, ConnKey> arrival_;
  uint64_t next_sequence_ = 0;
  // ResolveShared's last answer, valid while nothing it depends on changed (generation_).
  Identity shared_;
  ConnKey shared_key_{};
  bool shared_valid_ = false;
  uint64_t shared_generation_ = 0;
  uint64_t generation_ = 1;
};

}  // namespace mat::identity
