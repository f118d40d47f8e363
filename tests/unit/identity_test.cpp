// The identity layer: client certificates (made here with OpenSSL; no key is ever written
// anywhere), Authorization headers, the token cache, login learning, the user map and its
// reloading, Identify's precedence, and the pipeline's use of it all. Every test that handles a
// secret also checks that it reaches no output: not the lines, not the log.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "identity/client_cert.h"
#include "identity/credentials.h"
#include "identity/digest.h"
#include "identity/identify.h"
#include "identity/login.h"
#include "identity/token_cache.h"
#include "identity/user_map.h"
#include "output/k8s_event.h"
#include "pipeline/pipeline.h"
#include "tap_records.h"

namespace mat::identity {
namespace {

constexpr uint64_t kSecond = 1'000'000'000ull;

// ---- Test material. ----

std::string Base64(std::string_view data, bool url_safe) {
  const char* alphabet = url_safe
                             ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                             : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(data[i])) << 16) | (uint32_t(uint8_t(data[i + 1])) << 8) |
                       uint8_t(data[i + 2]);
    for (int shift : {18, 12, 6, 0}) out.push_back(alphabet[(v >> shift) & 63]);
  }
  if (i < data.size()) {
    uint32_t v = uint32_t(uint8_t(data[i])) << 16;
    if (i + 1 < data.size()) v |= uint32_t(uint8_t(data[i + 1])) << 8;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (i + 1 < data.size()) out.push_back(alphabet[(v >> 6) & 63]);
    if (!url_safe) out.append(i + 1 < data.size() ? "=" : "==");
  }
  return out;
}

std::string Jwt(const nlohmann::json& payload,
                const nlohmann::json& header = {{"alg", "RS256"}, {"typ", "JWT"}}) {
  return Base64(header.dump(), true) + "." + Base64(payload.dump(), true) + ".c2lnbmF0dXJl";
}

std::string BasicHeader(std::string_view user, std::string_view password) {
  return "Basic " + Base64(std::string(user) + ":" + std::string(password), false);
}

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

// A self-signed certificate with the subject entries given in order (e.g. {"O","Acme"},
// {"CN","alice"}), freshly made with a throw-away P-256 key; its DER.
std::string MakeCertificate(const std::vector<std::pair<std::string, std::string>>& subject,
                            int serial = 1) {
  std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_EC_gen("P-256"));
  EXPECT_TRUE(key);
  std::unique_ptr<X509, X509Free> cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& [field, value] : subject) {
    EXPECT_EQ(X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_UTF8,
                                         reinterpret_cast<const unsigned char*>(value.c_str()), -1,
                                         -1, 0),
              1);
  }
  X509_NAME* issuer = X509_NAME_new();
  X509_NAME_add_entry_by_txt(issuer, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("Test CA"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer);
  X509_NAME_free(issuer);
  EXPECT_GT(X509_sign(cert.get(), key.get(), EVP_sha256()), 0);
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert.get(), &der);
  EXPECT_GT(length, 0);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

// Captures what spdlog writes while alive (every level), and restores the logger after.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() const { return stream_.str(); }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::logger> previous_;
};

size_t Count(const std::string& text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// ---- Digests. ----

TEST(DigestTest, Sha256AndPrefixes) {
  const Sha256Digest d = Sha256("abc");
  EXPECT_EQ(HexPrefix(d, 64), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexPrefix(d, 12), "ba7816bf8f01");
  EXPECT_EQ(HexPrefix(d, 3), "ba7");
  EXPECT_EQ(HexPrefix(d, 100).size(), 64u);
}

// ---- Client certificates. ----

TEST(ClientCertTest, NamesAndFingerprint) {
  const std::string der =
      MakeCertificate({{"O", "Acme"}, {"OU", "dev"}, {"OU", "ops"}, {"CN", "alice"}});
  auto id = ParseClientCertificate(der);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->common_name, "alice");
  EXPECT_EQ(id->subject, "CN=alice,OU=ops,OU=dev,O=Acme");
  EXPECT_EQ(id->issuer, "CN=Test CA");
  EXPECT_EQ(id->organizations, std::vector<std::string>{"Acme"});
  EXPECT_EQ(id->organizational_units, (std::vector<std::string>{"dev", "ops"}));
  // What `openssl x509 -fingerprint -sha256` says, in lower case, first 16 digits.
  EXPECT_EQ(id->fingerprint, HexPrefix(Sha256(der), 16));
  EXPECT_EQ(id->fingerprint.size(), 16u);
}

TEST(ClientCertTest, ChainTakesTheFirstCertificate) {
  const std::string leaf = MakeCertificate({{"CN", "bob"}}, 2);
  const std::string ca = MakeCertificate({{"CN", "Intermediate"}}, 3);
  auto id = ParseClientCertificate(leaf + ca);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->common_name, "bob");
  EXPECT_EQ(id->fingerprint, HexPrefix(Sha256(leaf), 16));
}

TEST(ClientCertTest, Utf8LastCommonNameAndNoCommonName) {
  auto id = ParseClientCertificate(MakeCertificate({{"CN", "first"}, {"CN", "Zo\xc3\xab"}}));
  ASSERT_TRUE(id);
  EXPECT_EQ(id->common_name, "Zo\xc3\xab");  // the last CN, as Go reads it; UTF-8 kept
  EXPECT_NE(id->subject.find("CN=Zo\xc3\xab"), std::string::npos) << id->subject;
  id = ParseClientCertificate(MakeCertificate({{"O", "Only Org"}}));
  ASSERT_TRUE(id);
  EXPECT_EQ(id->common_name, "");
  EXPECT_EQ(id->subject, "O=Only Org");
}

TEST(ClientCertTest, GarbageIsRefusedNeverACrash) {
  const std::string der = MakeCertificate({{"CN", "carol"}});
  EXPECT_FALSE(ParseClientCertificate(""));
  EXPECT_FALSE(ParseClientCertificate("-----BEGIN CERTIFICATE-----\nMIIB...\n"));
  EXPECT_FALSE(ParseClientCertificate(std::string(kMaxCertificateBytes + 1, '\x30')));
  for (size_t n = 1; n < der.size(); ++n) {
    EXPECT_FALSE(ParseClientCertificate(std::string_view(der).substr(0, n))) << n;
  }
  std::mt19937 rng(6);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes = der;
    for (int flips = 0; flips < 3; ++flips) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    (void)ParseClientCertificate(bytes);  // parses or not; must not crash or leak
    std::string random(rng() % 600, '\0');
    for (char& c : random) c = static_cast<char>(rng());
    (void)ParseClientCertificate(random);
  }
}

// ---- Authorization headers. ----

TEST(CredentialsTest, Base64Vectors) {
  // RFC 4648 section 10.
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"Zg==", "f"},
                                                         {"Zm8=", "fo"},
                                                         {"Zm9v", "foo"},
                                                         {"Zm9vYg==", "foob"},
                                                         {"Zm9vYmE=", "fooba"},
                                                         {"Zm9vYmFy", "foobar"}};
  for (const auto& [encoded, decoded] : vectors) {
    EXPECT_EQ(DecodeBase64(encoded, false), std::string(decoded)) << encoded;
  }
  EXPECT_EQ(DecodeBase64("Zm9vYg", false), "foob");  // padding optional
  EXPECT_EQ(DecodeBase64("-_8", true), "\xfb\xff");
  EXPECT_FALSE(DecodeBase64("-_8", false));
  EXPECT_FALSE(DecodeBase64("Zm9v!", false));
  EXPECT_FALSE(DecodeBase64("Z", false));
  EXPECT_FALSE(DecodeBase64("Zm 9v", false));
}

TEST(CredentialsTest, BasicKeepsTheUserNameOnly) {
  Credential c = ParseAuthorization(BasicHeader("alice", "pa:ss w0rd"));
  EXPECT_EQ(c.kind, CredentialKind::kBasic);
  EXPECT_EQ(c.basic_user, "alice");
  EXPECT_FALSE(c.token_digest);  // no hash of a password, however short
  c = ParseAuthorization("  bAsIc   " + Base64("bob:x", false) + "  ");
  EXPECT_EQ(c.kind, CredentialKind::kBasic);
  EXPECT_EQ(c.basic_user, "bob");
  for (const std::string& bad :
       std::vector<std::string>{"Basic", "Basic !!!", "Basic " + Base64("nocolon", false),
                                "Basic " + Base64(":emptyuser", false),
                                "Basic " + Base64(std::string(300, 'u') + ":p", false)}) {
    c = ParseAuthorization(bad);
    EXPECT_EQ(c.kind, CredentialKind::kMalformed) << bad;
    EXPECT_EQ(c.basic_user, "");
    EXPECT_FALSE(c.token_digest);
  }
}

TEST(CredentialsTest, BearerOpaqueJwtAndSessionToken) {
  Credential c = ParseAuthorization("Bearer 3f6a9c1e-opaque-token");
  EXPECT_EQ(c.kind, CredentialKind::kBearer);
  ASSERT_TRUE(c.token_digest);
  EXPECT_EQ(*c.token_digest, Sha256("3f6a9c1e-opaque-token"));

  c = ParseAuthorization("SessionToken enzi-session-1");
  EXPECT_EQ(c.kind, CredentialKind::kSessionToken);
  EXPECT_EQ(*c.token_digest, Sha256("enzi-session-1"));

  const std::string jwt = Jwt({{"sub", "4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a"},
                               {"preferred_username", "alice"},
                               {"name", "Alice Smith"},
                               {"iss", "https://mke.example/enzi"},
                               {"exp", 1700000000.5},
                               {"groups", {"devs", 7, "ops"}}});
  c = ParseAuthorization("bearer " + jwt);
  EXPECT_EQ(c.kind, CredentialKind::kJwt);
  EXPECT_EQ(*c.token_digest, Sha256(jwt));
  EXPECT_EQ(c.jwt.subject, "4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a");
  EXPECT_EQ(c.jwt.name, "alice");
  EXPECT_EQ(c.jwt.issuer, "https://mke.example/enzi");
  EXPECT_EQ(c.jwt.expires_s, 1700000000);
  EXPECT_EQ(c.jwt.groups, (std::vector<std::string>{"devs", "ops"}));

  // name falls back to "username", then "name".
  EXPECT_EQ(DecodeJwtUnverified(Jwt({{"username", "u1"}, {"name", "N"}}))->name, "u1");
  EXPECT_EQ(DecodeJwtUnverified(Jwt({{"name", "N"}}))->name, "N");
  // Kubernetes service account token shape.
  auto sa = DecodeJwtUnverified(Jwt({{"iss", "kubernetes/serviceaccount"},
                                     {"sub", "system:serviceaccount:kube-system:default"}}));
  ASSERT_TRUE(sa);
  EXPECT_EQ(sa->subject, "system:serviceaccount:kube-system:default");
  EXPECT_EQ(sa->name, "");
}

TEST(CredentialsTest, NotQuiteJwtsAreOpaque) {
  const std::string payload = Base64(R"({"sub":"x"})", true);
  const std::string header = Base64(R"({"alg":"none"})", true);
  for (const std::string& token : std::vector<std::string>{
           header + "." + payload,                                   // two parts
           header + "." + payload + ".s.x.y",                        // five parts: JWE
           Base64(R"({"typ":"JWT"})", true) + "." + payload + ".s",  // no alg
           header + "." + Base64("not json", true) + ".s",           // payload not JSON
           header + "." + Base64("[1,2]", true) + ".s",              // payload not an object
           header + ".%%%.s"}) {
    Credential c = ParseAuthorization("Bearer " + token);
    EXPECT_EQ(c.kind, CredentialKind::kBearer) << token;
    EXPECT_TRUE(c.token_digest);
  }
  // Claims of the wrong type or size are ignored, not trusted.
  auto claims = DecodeJwtUnverified(Jwt({{"sub", 42},
                                         {"preferred_username", std::string(300, 'x')},
                                         {"exp", "soon"},
                                         {"groups", "admins"}}));
  ASSERT_TRUE(claims);
  EXPECT_EQ(claims->subject, "");
  EXPECT_EQ(claims->name, "");
  EXPECT_FALSE(claims->expires_s);
  EXPECT_TRUE(claims->groups.empty());
  EXPECT_FALSE(DecodeJwtUnverified(Jwt({{"sub", "x"}}, {{"typ", "JWT"}})));
}

TEST(CredentialsTest, OtherSchemesMalformedAndHugeValues) {
  EXPECT_EQ(ParseAuthorization("").kind, CredentialKind::kMalformed);
  EXPECT_EQ(ParseAuthorization("Bearer").kind, CredentialKind::kMalformed);
  EXPECT_EQ(ParseAuthorization("Bearer   ").kind, CredentialKind::kMalformed);
  EXPECT_EQ(ParseAuthorization("Bearer a b").kind, CredentialKind::kMalformed);
  Credential c = ParseAuthorization("Digest username=\"alice\", response=\"abc\"");
  EXPECT_EQ(c.kind, CredentialKind::kOther);
  EXPECT_FALSE(c.token_digest);
  c = ParseAuthorization("Bearer " + std::string(kMaxAuthorizationBytes, 'a'));
  EXPECT_EQ(c.kind, CredentialKind::kMalformed);
  EXPECT_FALSE(c.token_digest);
  // Just under the limit is still a token.
  c = ParseAuthorization("Bearer " + std::string(kMaxAuthorizationBytes - 7, 'a'));
  EXPECT_EQ(c.kind, CredentialKind::kBearer);
  // Random bytes: any kind, never a crash.
  std::mt19937 rng(7);
  for (int i = 0; i < 5000; ++i) {
    std::string value = i % 3 == 0 ? "Bearer " : i % 3 == 1 ? "Basic " : "";
    const size_t n = rng() % 200;
    for (size_t j = 0; j < n; ++j) value.push_back(static_cast<char>(rng()));
    (void)ParseAuthorization(value);
    (void)DecodeJwtUnverified(value);
  }
}

// ---- The token cache. ----

TEST(TokenCacheTest, LearnFindAndSlidingTtl) {
  TokenCache cache({/*ttl_ns=*/60 * kSecond, /*max_entries=*/10});
  const Sha256Digest a = Sha256("token-a");
  cache.Learn(a, {"alice", ""}, 1000 * kSecond);
  const TokenUser* user = cache.Find(a, 1030 * kSecond);
  ASSERT_NE(user, nullptr);
  EXPECT_EQ(user->login, "alice");
  // Each use renews the TTL: 1030 + 60 > 1080.
  EXPECT_NE(cache.Find(a, 1080 * kSecond), nullptr);
  EXPECT_NE(cache.Find(a, 1139 * kSecond), nullptr);
  EXPECT_EQ(cache.Find(a, 1199 * kSecond), nullptr);  // 60 s without use
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.stats().expired, 1u);
  EXPECT_EQ(cache.Find(Sha256("never learned"), 0), nullptr);
}

TEST(TokenCacheTest, TheTokensOwnExpiryIsAHardLimit) {
  TokenCache cache({3600 * kSecond, 10});
  const Sha256Digest a = Sha256("a");
  cache.Learn(a, {"alice", ""}, 100 * kSecond, /*expires_ns=*/150 * kSecond);
  EXPECT_NE(cache.Find(a, 149 * kSecond), nullptr);
  EXPECT_EQ(cache.Find(a, 150 * kSecond), nullptr);
  cache.Learn(a, {"alice", ""}, 200 * kSecond, 150 * kSecond);  // already expired
  EXPECT_EQ(cache.size(), 0u);
}

TEST(TokenCacheTest, LeastRecentlyUsedIsEvicted) {
  TokenCache cache({3600 * kSecond, 3});
  for (const char* t : {"t1", "t2", "t3"}) cache.Learn(Sha256(t), {t, ""}, kSecond);
  EXPECT_NE(cache.Find(Sha256("t1"), 2 * kSecond), nullptr);  // t2 is now the oldest
  cache.Learn(Sha256("t4"), {"t4", ""}, 3 * kSecond);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.Find(Sha256("t2"), 4 * kSecond), nullptr);
  for (const char* t : {"t1", "t3", "t4"}) EXPECT_NE(cache.Find(Sha256(t), 4 * kSecond), nullptr);
  EXPECT_EQ(cache.stats().evicted, 1u);
  // Learning a token again replaces its user, without growing.
  cache.Learn(Sha256("t1"), {"someone-else", "id-1"}, 5 * kSecond);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.Find(Sha256("t1"), 5 * kSecond)->account_id, "id-1");
  // Size 0 learns nothing.
  TokenCache none({3600 * kSecond, 0});
  none.Learn(Sha256("x"), {"x", ""}, 0);
  EXPECT_EQ(none.Find(Sha256("x"), 0), nullptr);
}

// ---- Login exchanges. ----

http::HttpExchange LoginExchange(const std::string& target, const std::string& request_body,
                                 int status, const std::string& response_body) {
  http::HttpExchange e;
  e.request.method = "POST";
  e.request.target = target;
  e.request.body = request_body;
  e.request.body_size = request_body.size();
  e.response.emplace();
  e.response->status = status;
  e.response->body = response_body;
  e.response->body_size = response_body.size();
  return e;
}

TEST(LoginTest, MkeAuthLogin) {
  auto facts = ParseLogin(LoginExchange("/auth/login", R"({"username":"alice","password":"pw1"})",
                                        200, R"({"auth_token":"0123-secret-token"})"));
  ASSERT_TRUE(facts);
  EXPECT_EQ(facts->user.login, "alice");
  EXPECT_EQ(facts->user.account_id, "");
  EXPECT_EQ(facts->token_digest, Sha256("0123-secret-token"));
  EXPECT_EQ(facts->expires_ns, 0u);
  EXPECT_TRUE(ParseLogin(
      LoginExchange("/auth/login?x=1", R"({"username":"a"})", 200, R"({"auth_token":"t"})")));
}

TEST(LoginTest, EnziLoginWithAccountIdAndJwtExpiry) {
  const std::string token = Jwt({{"sub", "acc-1"}, {"exp", 2000000000}});
  for (const char* path : {"/enzi/v0/id/login", "/id/login", "/id/login/"}) {
    auto facts = ParseLogin(LoginExchange(path, R"({"username":"bob","password":"pw"})", 200,
                                          R"({"accountID":"acc-1","username":"bob",)"
                                          R"("sessionToken":")" +
                                              token + "\"}"));
    ASSERT_TRUE(facts) << path;
    EXPECT_EQ(facts->user.login, "bob");
    EXPECT_EQ(facts->user.account_id, "acc-1");
    EXPECT_EQ(facts->token_digest, Sha256(token));
    EXPECT_EQ(facts->expires_ns, 2000000000ull * kSecond);
  }
}

TEST(LoginTest, OnlySuccessfulCompleteLoginsTeach) {
  const std::string req = R"({"username":"alice","password":"pw"})";
  const std::string resp = R"({"auth_token":"t"})";
  EXPECT_FALSE(ParseLogin(LoginExchange("/auth/login", req, 401, resp)));
  EXPECT_FALSE(ParseLogin(LoginExchange("/auth/logins", req, 200, resp)));
  EXPECT_FALSE(ParseLogin(LoginExchange("/v1.41/auth/login", req, 200, resp)));
  auto get = LoginExchange("/auth/login", req, 200, resp);
  get.request.method = "GET";
  EXPECT_FALSE(ParseLogin(get));
  auto no_response = LoginExchange("/auth/login", req, 200, resp);
  no_response.response.reset();
  EXPECT_FALSE(ParseLogin(no_response));
  auto truncated = LoginExchange("/auth/login", req, 200, resp);
  truncated.response->body_truncated = true;
  EXPECT_FALSE(ParseLogin(truncated));
  EXPECT_FALSE(ParseLogin(LoginExchange("/auth/login", "username=alice", 200, resp)));
  EXPECT_FALSE(ParseLogin(LoginExchange("/auth/login", R"({"username":""})", 200, resp)));
  EXPECT_FALSE(ParseLogin(LoginExchange("/auth/login", R"({"username":7})", 200, resp)));
  EXPECT_FALSE(ParseLogin(LoginExchange("/auth/login", req, 200, "{}")));
  EXPECT_FALSE(ParseLogin(LoginExchange("/auth/login", req, 200, R"({"auth_token":""})")));
  EXPECT_FALSE(ParseLogin(LoginExchange("/auth/login", req, 200, "not json")));
  EXPECT_TRUE(IsLoginCall("POST", "/auth/login"));
  EXPECT_FALSE(IsLoginCall("PUT", "/auth/login"));
}

// ---- The user map. ----

TEST(UserMapTest, ParsesTheDocumentedFormat) {
  auto table = ParseUserMap(R"({"users":[
      {"match":"cn:alice","id":"4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a","name":"alice"},
      {"match":"login:bob","id":"id-bob","groups":["devs"]},
      {"match":"cn:bob","id":"id-bob"}]})");
  ASSERT_TRUE(table) << table.error();
  EXPECT_EQ(table->size(), 3u);
  EXPECT_EQ(table->by_common_name.at("alice").id, "4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a");
  EXPECT_EQ(table->by_login.at("bob").name, "bob");  // name defaults to the matched value
  EXPECT_EQ(table->by_login.at("bob").groups, std::vector<std::string>{"devs"});
  EXPECT_EQ(table->by_common_name.at("bob").id, "id-bob");
  EXPECT_TRUE(ParseUserMap(R"({"users":[]})"));
}

TEST(UserMapTest, ErrorsSayWhat) {
  const std::pair<const char*, const char*> cases[] = {
      {"{", "not JSON"},
      {"[]", "expected an object"},
      {R"({"user":[]})", "unknown key \"user\""},
      {R"({"users":{}})", "\"users\" must be an array"},
      {R"({"users":[1]})", "users[0]: expected an object"},
      {R"({"users":[{"match":"uid:x","id":"i"}]})", "users[0]: \"match\" must be"},
      {R"({"users":[{"match":"cn:","id":"i"}]})", "users[0]: \"match\" must be"},
      {R"({"users":[{"match":"cn:a"}]})", "users[0]: \"id\" must be"},
      {R"({"users":[{"match":"cn:a","id":"i","nmae":"x"}]})", "users[0]: unknown key \"nmae\""},
      {R"({"users":[{"match":"cn:a","id":"i","groups":"g"}]})", "\"groups\" must be"},
      {R"({"users":[{"match":"cn:a","id":"i"},{"match":"cn:a","id":"j"}]})",
       "users[1]: \"cn:a\" is mapped twice"},
  };
  for (const auto& [text, expected] : cases) {
    auto table = ParseUserMap(text);
    ASSERT_FALSE(table) << text;
    EXPECT_NE(table.error().find(expected), std::string::npos) << text << " -> " << table.error();
  }
}

class TempFile {
 public:
  explicit TempFile(const std::string& name)
      : path_((std::filesystem::temp_directory_path() /
               (name + "-" + std::to_string(::getpid()) + ".json"))
                  .string()) {}
  ~TempFile() { std::filesystem::remove(path_); }
  void Write(const std::string& text) {
    // Replaced atomically, as editors and config management do: a new inode each time.
    const std::string tmp = path_ + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(UserMapTest, ReloadsOnChangeKeepsThePreviousMapWhenBroken) {
  TempFile file("user-map");
  file.Write(R"({"users":[{"match":"cn:alice","id":"id-1"}]})");
  UserMap map;
  ASSERT_TRUE(map.Open(file.path(), 5 * kSecond, 100 * kSecond));
  ASSERT_NE(map.FindByCommonName("alice"), nullptr);
  EXPECT_EQ(map.FindByCommonName("alice")->id, "id-1");
  EXPECT_EQ(map.FindByLogin("alice"), nullptr);

  file.Write(R"({"users":[{"match":"cn:alice","id":"id-2"},{"match":"login:bob","id":"id-b"}]})");
  map.MaybeReload(104 * kSecond);  // not yet looked at
  EXPECT_EQ(map.FindByCommonName("alice")->id, "id-1");
  map.MaybeReload(105 * kSecond);
  EXPECT_EQ(map.FindByCommonName("alice")->id, "id-2");
  EXPECT_EQ(map.FindByLogin("bob")->id, "id-b");
  EXPECT_EQ(map.loads(), 2u);

  LogCapture log;
  file.Write(R"({"users":[{"match":"cn:alice","id":"id-3"},)");  // broken
  for (uint64_t t = 110; t < 200; t += 5) map.MaybeReload(t * kSecond);
  EXPECT_EQ(map.FindByCommonName("alice")->id, "id-2");  // the previous map stays
  EXPECT_EQ(map.size(), 2u);
  EXPECT_EQ(map.errors(), 1u);
  EXPECT_EQ(Count(log.text(), "[error]"), 1u) << log.text();  // one error, not one per check
  EXPECT_NE(log.text().find(file.path()), std::string::npos);
  EXPECT_NE(log.text().find("keeping the previous map (2 entries)"), std::string::npos);

  std::filesystem::remove(file.path());  // gone: still the previous map, one more error
  for (uint64_t t = 200; t < 300; t += 5) map.MaybeReload(t * kSecond);
  EXPECT_EQ(map.FindByCommonName("alice")->id, "id-2");
  EXPECT_EQ(map.errors(), 2u);

  file.Write(R"({"users":[{"match":"cn:alice","id":"id-4"}]})");  // fixed
  map.MaybeReload(300 * kSecond);
  EXPECT_EQ(map.FindByCommonName("alice")->id, "id-4");
  EXPECT_EQ(map.FindByLogin("bob"), nullptr);
  EXPECT_EQ(Count(log.text(), "[error]"), 2u) << log.text();
}

TEST(UserMapTest, AMissingFileAtOpenIsAnError) {
  UserMap map;
  EXPECT_FALSE(map.Open("/nonexistent/user-map.json", kSecond, 0));
  EXPECT_EQ(map.size(), 0u);
  EXPECT_EQ(map.FindByLogin("x"), nullptr);
}

// A device or a FIFO named as the map is refused at once with a clear error: /dev/zero would
// fill the auditor's memory, a FIFO block it.
TEST(UserMapTest, OnlyARegularFileIsRead) {
  const std::string fifo =
      ::testing::TempDir() + "/mat-user-map-fifo-" + std::to_string(::getpid());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {std::string("/dev/zero"), fifo}) {
    UserMap map;
    EXPECT_EQ(map.Open(path, kSecond, 0).error(), "not a regular file") << path;
    EXPECT_EQ(map.size(), 0u);
  }
  ::unlink(fifo.c_str());
}

TEST(IdentityResolverTest, AClientCaThatIsNotARegularFileIsAClearError) {
  IdentityOptions o;
  o.client_ca_path = "/dev/zero";
  IdentityResolver resolver(o);
  EXPECT_EQ(resolver.Start(0).error(), "--client-ca /dev/zero: not a regular file");
}

// ---- Identify. ----

http::Headers Auth(const std::string& value) { return {{"Authorization", value}}; }

ClientCertState CertOf(const std::string& cn) {
  ClientCertState state;
  state.kind = ClientCertState::Kind::kPresent;
  state.cert = ParseClientCertificate(MakeCertificate({{"CN", cn}}));
  state.der_fingerprint = state.cert->fingerprint;
  state.trust = ClientCertState::Trust::kVerified;
  return state;
}

UserMap MapOf(const std::string& text, const TempFile& file) {
  std::ofstream(file.path()) << text;
  UserMap map;
  EXPECT_TRUE(map.Open(file.path(), kSecond, 0));
  return map;
}

TEST(IdentifyTest, NothingSeen) {
  Identity id = Identify({{"Host", "x"}}, {}, nullptr, nullptr, 0);
  EXPECT_EQ(id.method, Method::kNoCredentialSeen);
  EXPECT_EQ(MethodName(id.method), "no-credential-seen");
  EXPECT_EQ(id.uid, "unidentified");
  EXPECT_EQ(id.username, "unidentified");
  EXPECT_EQ(id.extra_username, std::vector<std::string>{"unidentified"});
  EXPECT_FALSE(id.impersonated);
}

TEST(IdentifyTest, AnonymousWhenTheHandshakeHadNoCertificate) {
  ClientCertState none;
  none.kind = ClientCertState::Kind::kNone;
  Identity id = Identify({}, none, nullptr, nullptr, 0);
  EXPECT_EQ(id.method, Method::kAnonymous);
  EXPECT_EQ(id.username, "system:anonymous");
  EXPECT_EQ(id.groups, std::vector<std::string>{"system:unauthenticated"});
}

TEST(IdentifyTest, BasicWithAndWithoutTheMap) {
  TempFile file("identify-basic");
  UserMap map = MapOf(R"({"users":[{"match":"login:alice","id":"acc-a","name":"Alice"}]})", file);
  Identity id = Identify(Auth(BasicHeader("alice", "secret-pw")), {}, nullptr, &map, 0);
  EXPECT_EQ(id.method, Method::kBasic);
  EXPECT_TRUE(id.mapped);
  EXPECT_EQ(id.uid, "acc-a");
  EXPECT_EQ(id.username, "acc-a");
  EXPECT_EQ(id.extra_username, std::vector<std::string>{"Alice"});
  id = Identify(Auth(BasicHeader("zed", "secret-pw")), {}, nullptr, &map, 0);
  EXPECT_FALSE(id.mapped);
  EXPECT_EQ(id.uid, "zed");
  EXPECT_EQ(id.username, "zed");
  EXPECT_EQ(id.extra_username, std::vector<std::string>{"zed"});
  EXPECT_EQ(id.fingerprint, "");
}

TEST(IdentifyTest, LearnedTokensBearerAndSessionToken) {
  TokenCache cache;
  cache.Learn(Sha256("tok-alice"), {"alice", ""}, 0);
  cache.Learn(Sha256("tok-bob"), {"bob", "acc-bob"}, 0);
  Identity id = Identify(Auth("Bearer tok-alice"), {}, &cache, nullptr, kSecond);
  EXPECT_EQ(id.method, Method::kSessionToken);
  EXPECT_EQ(id.uid, "alice");
  EXPECT_EQ(id.extra_username, std::vector<std::string>{"alice"});
  // eNZi said the account id at login: MKE's shape without any map.
  id = Identify(Auth("SessionToken tok-bob"), {}, &cache, nullptr, kSecond);
  EXPECT_EQ(id.method, Method::kSessionToken);
  EXPECT_EQ(id.uid, "acc-bob");
  EXPECT_EQ(id.username, "acc-bob");
  EXPECT_EQ(id.extra_username, std::vector<std::string>{"bob"});
  // A learned JWT is a session token, not an unverified claim.
  const std::string jwt = Jwt({{"sub", "claimed"}});
  cache.Learn(Sha256(jwt), {"carol", ""}, 0);
  id = Identify(Auth("Bearer " + jwt), {}, &cache, nullptr, kSecond);
  EXPECT_EQ(id.method, Method::kSessionToken);
  EXPECT_EQ(id.extra_username, std::vector<std::string>{"carol"});
}

TEST(IdentifyTest, UnverifiedJwt) {
  TempFile file("identify-jwt");
  UserMap map = MapOf(R"({"users":[{"match":"login:dave","id":"acc-d"}]})", file);
  const std::string jwt =
      Jwt({{"sub", "sub-1"}, {"preferred_username", "erin"}, {"groups", {"g1"}}});
  Identity id = Identify(Auth("Bearer " + jwt), {}, nullptr, &map, 0);
  EXPECT_EQ(id.method, Method::kJwtUnverified);
  EXPECT_EQ(MethodName(id.method), "jwt-unverified");
  EXPECT_EQ(id.uid, "sub-1");
  EXPECT_EQ(id.username, "sub-1");
  EXPECT_EQ(id.extra_username, std::vector<std::string>{"erin"});
  EXPECT_EQ(id.groups, std::vector<std::string>{"g1"});
  id = Identify(Auth("Bearer " + Jwt({{"sub", "sub-2"}, {"username", "dave"}})), {}, nullptr, &map,
                0);
  EXPECT_TRUE(id.mapped);
  EXPECT_EQ(id.uid, "acc-d");
  EXPECT_EQ(id.extra_username, std::vector<std::string>{"dave"});
  // A JWT naming nobody is an unresolved token.
  id = Identify(Auth("Bearer " + Jwt({{"iss", "x"}})), {}, nullptr, &map, 0);
  EXPECT_EQ(id.method, Method::kUnresolved);
}

TEST(IdentifyTest, UnresolvedTokenShowsOnlyAFingerprint) {
  TokenCache cache;
  const std::string token = "d5b2c6e0-1f8e-4c55-a1c3-6f0d7c1b2a99";
  Identity id = Identify(Auth("Bearer " + token), {}, &cache, nullptr, 0);
  EXPECT_EQ(id.method, Method::kUnresolved);
  EXPECT_EQ(id.fingerprint, HexPrefix(Sha256(token), 12));
  EXPECT_EQ(id.username, "unresolved:" + id.fingerprint);
  EXPECT_EQ(id.uid, id.username);
  for (const std::string* field : {&id.uid, &id.username, &id.extra_username[0]}) {
    EXPECT_EQ(field->find(token), std::string::npos);
  }
  // Basic that does not decode and other schemes: unresolved, no fingerprint at all.
  for (const char* value : {"Basic ###", "Negotiate abc"}) {
    id = Identify(Auth(value), {}, &cache, nullptr, 0);
    EXPECT_EQ(id.method, Method::kUnresolved) << value;
    EXPECT_EQ(id.fingerprint, "") << value;
    EXPECT_EQ(id.username, "unresolved");
  }
}

TEST(IdentifyTest, ClientCertificateAndPrecedence) {
  TempFile file("identify-cert");
  UserMap map = MapOf(R"({"users":[{"match":"cn:frank","id":"acc-f","name":"frank"},
                                   {"match":"login:gina","id":"acc-g"}]})",
                      file);
  const ClientCertState frank = CertOf("frank");
  Identity id = Identify({}, frank, nullptr, &map, 0);
  EXPECT_EQ(id.method, Method::kClientCertificate);
  EXPECT_EQ(id.uid, "acc-f");
  EXPECT_EQ(id.extra_username, std::vector<std::string>{"frank"});
  id = Identify({}, CertOf("henry"), nullptr, &map, 0);
  EXPECT_EQ(id.method, Method::kClientCertificate);
  EXPECT_EQ(id.uid, "henry");  // not mapped: the CN fills all three
  EXPECT_EQ(id.extra_username, std::vector<std::string>{"henry"});

  // A resolved Authorization header wins over the certificate...
  id = Identify(Auth(BasicHeader("gina", "pw")), frank, nullptr, &map, 0);
  EXPECT_EQ(id.method, Method::kBasic);
  EXPECT_EQ(id.uid, "acc-g");
  // ...an unresolved one does not.
  TokenCache cache;
  id = Identify(Auth("Bearer unknown-token"), frank, &cache, &map, 0);
  EXPECT_EQ(id.method, Method::kClientCertificate);
  EXPECT_EQ(id.uid, "acc-f");

  // Not verified (no CA): still named, and said so. Rejected by the CA: names nobody.
  ClientCertState unchecked = CertOf("ivan");
  unchecked.trust = ClientCertState::Trust::kNotChecked;
  id = Identify({}, unchecked, nullptr, &map, 0);
  EXPECT_EQ(id.method, Method::kClientCertificateUnverified);
  EXPECT_EQ(MethodName(id.method), "client-certificate-unverified");
  EXPECT_EQ(id.username, "ivan");
  ClientCertState rejected = CertOf("admin");
  rejected.trust = ClientCertState::Trust::kRejected;
  id = Identify({}, rejected, nullptr, &map, 0);
  EXPECT_EQ(id.method, Method::kUnresolved);
  EXPECT_EQ(id.username, "unresolved:" + rejected.der_fingerprint);
  EXPECT_EQ(id.username.find("admin"), std::string::npos);

  // A certificate that did not parse: unresolved, with the fingerprint of its bytes.
  ClientCertState broken;
  broken.kind = ClientCertState::Kind::kPresent;
  broken.der_fingerprint = "0123456789abcdef";
  id = Identify({}, broken, nullptr, &map, 0);
  EXPECT_EQ(id.method, Method::kUnresolved);
  EXPECT_EQ(id.username, "unresolved:0123456789abcdef");
}

TEST(IdentifyTest, ImpersonationHeaders) {
  http::Headers headers = {{"Authorization", BasicHeader("admin", "pw")},
                           {"Impersonate-User", "jane"},
                           {"impersonate-group", "developers"},
                           {"Impersonate-Group", "system:authenticated"},
                           {"Impersonate-Uid", "uid-9"},
                           {"Impersonate-Extra-Scopes", "view"},
                           {"impersonate-extra-scopes", "development"},
                           {"Impersonate-Extra-example.com%2Fteam", "red"},
                           {"Impersonate-Extra-bad%zz", "v"}};
  Identity id = Identify(headers, {}, nullptr, nullptr, 0);
  EXPECT_EQ(id.method, Method::kBasic);
  EXPECT_EQ(id.username, "admin");
  ASSERT_TRUE(id.impersonated);
  EXPECT_EQ(id.impersonated->username, "jane");
  EXPECT_EQ(id.impersonated->uid, "uid-9");
  EXPECT_EQ(id.impersonated->groups,
            (std::vector<std::string>{"developers", "system:authenticated"}));
  const std::map<std::string, std::vector<std::string>> extra = {
      {"scopes", {"view", "development"}}, {"example.com/team", {"red"}}, {"bad%zz", {"v"}}};
  EXPECT_EQ(id.impersonated->extra, extra);
  EXPECT_FALSE(ParseImpersonation({{"Host", "x"}}));
  // Bounded.
  http::Headers many;
  for (int i = 0; i < 1000; ++i) {
    many.emplace_back("Impersonate-Group", "g" + std::to_string(i));
    many.emplace_back("Impersonate-Extra-k" + std::to_string(i), "v");
  }
  many.emplace_back("Impersonate-User", std::string(kMaxNameBytes + 1, 'x'));
  auto as = ParseImpersonation(many);
  ASSERT_TRUE(as);
  EXPECT_EQ(as->groups.size(), kMaxGroups);
  EXPECT_EQ(as->extra.size(), kMaxImpersonationExtras);
  EXPECT_EQ(as->username, "");
}

// ---- The resolver: certificates per connection. ----

TEST(IdentityResolverTest, CertificatesPerConnection) {
  IdentityOptions options;
  options.max_connections = 2;
  IdentityResolver resolver(options);
  ASSERT_TRUE(resolver.Start(0));
  http::HttpRequest request;
  resolver.OnClientCertificate({1, 0xA}, MakeCertificate({{"CN", "ivan"}}));
  resolver.OnNoClientCertificate({1, 0xB});
  EXPECT_EQ(resolver.Resolve(request, {1, 0xA}, 0).username, "ivan");
  EXPECT_EQ(resolver.Resolve(request, {1, 0xB}, 0).method, Method::kAnonymous);
  EXPECT_EQ(resolver.Resolve(request, {2, 0xA}, 0).method, Method::kNoCredentialSeen);
  resolver.OnConnectionEnd({1, 0xA});
  EXPECT_EQ(resolver.Resolve(request, {1, 0xA}, 0).method, Method::kNoCredentialSeen);
  // Bounded: the oldest goes first.
  resolver.OnClientCertificate({2, 0xC}, MakeCertificate({{"CN", "judy"}}));
  resolver.OnClientCertificate({3, 0xD}, "garbage");
  EXPECT_EQ(resolver.connections(), 2u);
  EXPECT_EQ(resolver.Resolve(request, {1, 0xB}, 0).method, Method::kNoCredentialSeen);
  EXPECT_EQ(resolver.Resolve(request, {2, 0xC}, 0).username, "judy");
  Identity garbage = resolver.Resolve(request, {3, 0xD}, 0);
  EXPECT_EQ(garbage.method, Method::kUnresolved);
  EXPECT_EQ(garbage.fingerprint, HexPrefix(Sha256("garbage"), 16));
  resolver.OnProcessExit(2);
  EXPECT_EQ(resolver.connections(), 1u);
}

// ResolveShared answers what Resolve answers, whatever happened in between: certificates
// arriving after a connection's first request, connections ending and their (tgid, SSL*) reused,
// processes exiting, the user map reloaded, requests with their own Authorization or
// Impersonate-* headers in between.
TEST(IdentityResolverTest, ResolveSharedAnswersAsResolveDoes) {
  TempFile file("shared-map");
  file.Write(R"({"users":[{"match":"cn:ivan","id":"id-ivan-1","name":"ivan"}]})");
  IdentityOptions options;
  options.user_map_path = file.path();
  options.user_map_check_ns = 0;
  IdentityResolver resolver(options);
  ASSERT_TRUE(resolver.Start(0));
  const std::string certs[] = {MakeCertificate({{"CN", "ivan"}}), MakeCertificate({{"CN", "judy"}}),
                               "garbage"};
  const std::vector<std::pair<std::string, std::string>> headers[] = {
      {},
      {{"Host", "x"}},
      {{"Authorization", "Basic " + Base64("bob:pw", false)}},
      {{"authorization", "Bearer opaque"}},
      {{"Impersonate-User", "jane"}},
      {{"IMPERSONATE-GROUP", "devs"}, {"Host", "x"}},
  };
  std::mt19937 random(7);
  auto pick = [&](size_t n) { return static_cast<size_t>(random() % n); };
  for (int step = 0; step < 4000; ++step) {
    const IdentityResolver::ConnKey key{1 + static_cast<uint32_t>(pick(2)), 0xA + pick(3)};
    switch (pick(8)) {
      case 0:
        resolver.OnClientCertificate(key, certs[pick(3)]);
        break;
      case 1:
        resolver.OnNoClientCertificate(key);
        break;
      case 2:
        resolver.OnConnectionEnd(key);
        break;
      case 3:
        if (pick(8) == 0) resolver.OnProcessExit(key.first);
        break;
      case 4:
        if (pick(16) == 0) {
          file.Write(R"({"users":[{"match":"cn:ivan","id":"id-ivan-)" + std::to_string(step) +
                     R"(","name":"ivan"},{"match":"login:bob","id":"id-bob"}]})");
          resolver.Tick(static_cast<uint64_t>(step + 1) * kSecond);
        }
        break;
      default: {
        http::HttpRequest request;
        for (const auto& header : headers[pick(std::size(headers))])
          request.headers.push_back(header);
        const Identity& shared = resolver.ResolveShared(request, key, 0);
        const Identity fresh = resolver.Resolve(request, key, 0);
        ASSERT_EQ(shared.method, fresh.method) << step;
        ASSERT_EQ(shared.uid, fresh.uid) << step;
        ASSERT_EQ(shared.username, fresh.username) << step;
        ASSERT_EQ(shared.extra_username, fresh.extra_username) << step;
        ASSERT_EQ(shared.groups, fresh.groups) << step;
        ASSERT_EQ(shared.fingerprint, fresh.fingerprint) << step;
        ASSERT_EQ(shared.impersonated.has_value(), fresh.impersonated.has_value()) << step;
        if (shared.impersonated) {
          ASSERT_EQ(shared.impersonated->username, fresh.impersonated->username) << step;
          ASSERT_EQ(shared.impersonated->groups, fresh.impersonated->groups) << step;
        }
      }
    }
  }
  EXPECT_GT(resolver.users().loads(), 10u);  // the map did change under it
}

TEST(IdentityResolverTest, ABrokenUserMapAtStartIsReported) {
  TempFile file("resolver-map");
  std::ofstream(file.path()) << "{broken";
  IdentityOptions options;
  options.user_map_path = file.path();
  IdentityResolver resolver(options);
  EXPECT_NE(resolver.Start(0).error().find("not JSON"), std::string::npos);
}

// ---- The pipeline: login learning, the user field, annotations, and no secret anywhere. ----

using mat::testing::ConnEndRecord;
using mat::testing::DataRecord;
using mat::testing::Record;
using mat::testing::SockRecord;

constexpr char kPassword[] = "Corr3ct-H0rse-Battery";
constexpr char kToken[] = "9b1d2e7c-41f0-4d8e-b1a4-7f0c3e2d5a68";

// One server connection of pid 7 per call, a request and its response on each.
struct Conversation {
  std::vector<Record> records;
  uint64_t ts = 1'000'000;
  uint64_t next_ssl = 0x100;
  int32_t next_fd = 10;
  void Exchange(const std::string& request, const std::string& response) {
    const uint64_t ssl = next_ssl++;
    const int32_t fd = next_fd++;
    records.push_back(SockRecord(7, fd, TAP_ROLE_SERVER, "192.0.2.9", 40000 + fd, ts++));
    records.push_back(DataRecord(7, ssl, fd, TAP_DIR_READ, 0, request, ts += 1000));
    records.push_back(DataRecord(7, ssl, fd, TAP_DIR_WRITE, 0, response, ts += 1000));
    records.push_back(ConnEndRecord(7, ssl, fd, request.size(), response.size(), ts += 1000));
  }
};

std::string Http(const std::string& head, const std::string& body = "") {
  return head + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::vector<std::string> RunPipeline(const Conversation& c, pipeline::OutputFormat format,
                                     audit::Level level = audit::Level::kRequest,
                                     const std::string& user_map = "") {
  pipeline::PipelineConfig config;
  config.policy.level = level;
  config.license_key = "LICENSE";
  config.format = format;
  config.identity.user_map_path = user_map;
  output::VectorLineSink sink;
  pipeline::Pipeline p(config, capture::ClockMap{}, &sink, nullptr, {});
  EXPECT_TRUE(p.started()) << p.started().error();
  for (const auto& r : c.records) p.OnRecord(r.data(), r.size());
  p.Finish(c.ts + 1000);
  return sink.lines;
}

Conversation LoginThenUse() {
  Conversation c;
  const std::string login_body =
      std::string(R"({"username":"alice","password":")") + kPassword + "\"}";
  c.Exchange(Http("POST /auth/login HTTP/1.1\r\nHost: mke\r\nContent-Type: application/json\r\n",
                  login_body),
             Http("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
                  std::string(R"({"auth_token":")") + kToken + "\"}"));
  c.Exchange(Http(std::string("GET /api/ucp/config/logging HTTP/1.1\r\nAuthorization: Bearer ") +
                  kToken + "\r\n"),
             Http("HTTP/1.1 200 OK\r\n", "{}"));
  c.Exchange(Http(std::string("POST /v1.41/secrets/create HTTP/1.1\r\nauthorization: Basic ") +
                      Base64(std::string("bob:") + kPassword, false) + "\r\n",
                  R"({"Name":"s","Data":"c2VjcmV0"})"),
             Http("HTTP/1.1 201 Created\r\n", R"({"ID":"sec1"})"));
  c.Exchange(Http("GET /api/v1/namespaces/default/pods HTTP/1.1\r\nAuthorization: Bearer "
                  "other-token-never-learned\r\nImpersonate-User: jane\r\n"
                  "Impersonate-Group: devs\r\n"),
             Http("HTTP/1.1 200 OK\r\n", "{}"));
  c.Exchange(Http("GET /info2 HTTP/1.1\r\n"), Http("HTTP/1.1 200 OK\r\n", "{}"));
  return c;
}

TEST(PipelineIdentityTest, LoginIsLearnedAndLinesSayWhoAndHow) {
  LogCapture log;
  const auto lines = RunPipeline(LoginThenUse(), pipeline::OutputFormat::kMke);
  ASSERT_EQ(lines.size(), 5u);
  std::vector<nlohmann::json> a;
  for (const auto& line : lines) a.push_back(nlohmann::json::parse(line)["audit"]);
  const char* key = pipeline::kUserIdentifiedByAnnotation;
  // The login itself carries no credential.
  EXPECT_EQ(a[0]["annotations"][key], "no-credential-seen");
  EXPECT_EQ(a[0]["user"]["username"], "unidentified");
  EXPECT_EQ(a[0]["requestObject"], "[REDACTED by mke-audit-tap]");
  // The token it issued names alice.
  EXPECT_EQ(a[1]["annotations"][key], "session-token");
  EXPECT_EQ(a[1]["user"]["username"], "alice");
  EXPECT_EQ(a[1]["user"]["uid"], "alice");
  EXPECT_EQ(a[1]["user"]["extra"]["username"], nlohmann::json::array({"alice"}));
  EXPECT_EQ(a[1]["user"]["extra"]["licenseKey"], nlohmann::json::array({"LICENSE"}));
  EXPECT_EQ(a[2]["annotations"][key], "basic");
  EXPECT_EQ(a[2]["user"]["username"], "bob");
  EXPECT_EQ(a[3]["annotations"][key], "unresolved");
  EXPECT_EQ(a[3]["user"]["username"],
            "unresolved:" + HexPrefix(Sha256("other-token-never-learned"), 12));
  EXPECT_EQ(a[3]["annotations"][pipeline::kImpersonatedUserAnnotation], "jane");
  EXPECT_EQ(a[3]["annotations"][pipeline::kImpersonatedGroupsAnnotation], "devs");
  EXPECT_FALSE(a[3].contains("impersonatedUser"));  // MKE's line has no such field
  EXPECT_EQ(a[4]["annotations"][key], "no-credential-seen");
  // No secret in any line or log message.
  const std::string basic = Base64(std::string("bob:") + kPassword, false);
  for (const std::string& text : lines) {
    EXPECT_EQ(text.find(kPassword), std::string::npos) << text;
    EXPECT_EQ(text.find(kToken), std::string::npos) << text;
    EXPECT_EQ(text.find(basic), std::string::npos) << text;
    EXPECT_EQ(text.find("other-token-never-learned"), std::string::npos) << text;
  }
  const std::string logged = log.text();
  EXPECT_NE(logged.find("learned a session token of login alice"), std::string::npos) << logged;
  EXPECT_EQ(logged.find(kPassword), std::string::npos) << logged;
  EXPECT_EQ(logged.find(kToken), std::string::npos) << logged;
  EXPECT_EQ(logged.find(basic), std::string::npos) << logged;
}

TEST(PipelineIdentityTest, K8sEventsCarryImpersonatedUserAndGroups) {
  TempFile file("pipeline-map");
  std::ofstream(file.path()) << R"({"users":[{"match":"login:alice","id":"acc-alice",)"
                                R"("groups":["admins"]}]})";
  const auto lines = RunPipeline(LoginThenUse(), pipeline::OutputFormat::kK8s,
                                 audit::Level::kMetadata, file.path());
  ASSERT_EQ(lines.size(), 5u);
  const auto alice = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(alice["user"]["username"], "acc-alice");
  EXPECT_EQ(alice["user"]["uid"], "acc-alice");
  EXPECT_EQ(alice["user"]["groups"], nlohmann::json::array({"admins"}));
  EXPECT_EQ(alice["user"]["extra"]["username"], nlohmann::json::array({"alice"}));
  EXPECT_NE(lines[1].find(R"("uid":"acc-alice","groups":["admins"],"extra":)"), std::string::npos)
      << lines[1];
  const auto impersonating = nlohmann::json::parse(lines[3]);
  EXPECT_EQ(impersonating["impersonatedUser"],
            nlohmann::json({{"username", "jane"}, {"groups", {"devs"}}}));
  EXPECT_NE(lines[3].find(R"(},"impersonatedUser":{"username":"jane","groups":["devs"]},)"
                          R"("sourceIPs":)"),
            std::string::npos)
      << lines[3];
  EXPECT_FALSE(impersonating["annotations"].contains(pipeline::kImpersonatedUserAnnotation));
  for (const std::string& text : lines) {
    EXPECT_EQ(text.find(kPassword), std::string::npos);
    EXPECT_EQ(text.find(kToken), std::string::npos);
  }
}

TEST(PipelineIdentityTest, ClientCertificateOfTheConnection) {
  Conversation c;
  c.Exchange(Http("GET /containers/json HTTP/1.1\r\n"), Http("HTTP/1.1 200 OK\r\n", "[]"));
  c.Exchange(Http("GET /containers/json HTTP/1.1\r\n"), Http("HTTP/1.1 200 OK\r\n", "[]"));
  pipeline::PipelineConfig config;
  config.policy.level = audit::Level::kMetadata;
  output::VectorLineSink sink;
  pipeline::Pipeline p(config, capture::ClockMap{}, &sink, nullptr, {});
  p.OnClientCertificate(7, 0x100, MakeCertificate({{"O", "Acme"}, {"CN", "kate"}}));
  p.OnNoClientCertificate(7, 0x101);
  EXPECT_EQ(p.identity().connections(), 2u);
  for (const auto& r : c.records) p.OnRecord(r.data(), r.size());
  p.Finish(c.ts + 1000);
  ASSERT_EQ(sink.lines.size(), 2u);
  const auto first = nlohmann::json::parse(sink.lines[0])["audit"];
  EXPECT_EQ(first["user"]["username"], "kate");
  // No --client-ca: the name is used, and the line says it was not verified.
  EXPECT_EQ(first["annotations"][pipeline::kUserIdentifiedByAnnotation],
            "client-certificate-unverified");
  const auto second = nlohmann::json::parse(sink.lines[1])["audit"];
  EXPECT_EQ(second["user"]["username"], "system:anonymous");
  EXPECT_EQ(second["annotations"][pipeline::kUserIdentifiedByAnnotation], "anonymous");
  EXPECT_EQ(p.identity().connections(), 0u);  // forgotten at each connection's end
}

// The SSL* of a connection whose end record was lost is reused by a new connection (the tracker
// sees its stream position go back and ends the old one): a resumed session sends no
// certificate, so the new connection's requests must not carry the old one's certificate.
TEST(PipelineIdentityTest, ARestartedConnectionDoesNotInheritTheCertificate) {
  const std::string request = Http("GET /containers/json HTTP/1.1\r\n");
  const std::string response = Http("HTTP/1.1 200 OK\r\n", "[]");
  pipeline::PipelineConfig config;
  config.policy.level = audit::Level::kMetadata;
  output::VectorLineSink sink;
  pipeline::Pipeline p(config, capture::ClockMap{}, &sink, nullptr, {});
  p.OnClientCertificate(7, 0x100, MakeCertificate({{"CN", "kate"}}));
  std::vector<Record> records = {SockRecord(7, 10, TAP_ROLE_SERVER, "192.0.2.9", 40010, 1)};
  for (uint64_t ts : {1000, 5000}) {  // two connections on SSL* 0x100, no end record between
    records.push_back(DataRecord(7, 0x100, 10, TAP_DIR_READ, 0, request, ts));
    records.push_back(DataRecord(7, 0x100, 10, TAP_DIR_WRITE, 0, response, ts + 1000));
  }
  for (const auto& r : records) p.OnRecord(r.data(), r.size());
  p.Finish(10000);
  ASSERT_EQ(sink.lines.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(sink.lines[0])["audit"]["user"]["username"], "kate");
  EXPECT_NE(nlohmann::json::parse(sink.lines[1])["audit"]["user"]["username"], "kate");
}

// The same, but the new connection's handshake presented a certificate of its own (reported
// before its data): the restart keeps it.
TEST(PipelineIdentityTest, ARestartedConnectionKeepsItsOwnNewCertificate) {
  const std::string request = Http("GET /containers/json HTTP/1.1\r\n");
  const std::string response = Http("HTTP/1.1 200 OK\r\n", "[]");
  pipeline::PipelineConfig config;
  config.policy.level = audit::Level::kMetadata;
  output::VectorLineSink sink;
  pipeline::Pipeline p(config, capture::ClockMap{}, &sink, nullptr, {});
  p.OnClientCertificate(7, 0x100, MakeCertificate({{"CN", "kate"}}));
  std::vector<Record> first = {SockRecord(7, 10, TAP_ROLE_SERVER, "192.0.2.9", 40010, 1),
                               DataRecord(7, 0x100, 10, TAP_DIR_READ, 0, request, 1000),
                               DataRecord(7, 0x100, 10, TAP_DIR_WRITE, 0, response, 2000)};
  for (const auto& r : first) p.OnRecord(r.data(), r.size());
  p.OnClientCertificate(7, 0x100, MakeCertificate({{"CN", "lee"}}));
  std::vector<Record> second = {DataRecord(7, 0x100, 10, TAP_DIR_READ, 0, request, 5000),
                                DataRecord(7, 0x100, 10, TAP_DIR_WRITE, 0, response, 6000)};
  for (const auto& r : second) p.OnRecord(r.data(), r.size());
  p.Finish(10000);
  ASSERT_EQ(sink.lines.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(sink.lines[0])["audit"]["user"]["username"], "kate");
  EXPECT_EQ(nlohmann::json::parse(sink.lines[1])["audit"]["user"]["username"], "lee");
}

TEST(PipelineIdentityTest, ABrokenUserMapIsAStartError) {
  TempFile file("pipeline-broken-map");
  std::ofstream(file.path()) << R"({"users":[{"match":"cn:x"}]})";
  pipeline::PipelineConfig config;
  config.identity.user_map_path = file.path();
  output::VectorLineSink sink;
  pipeline::Pipeline p(config, capture::ClockMap{}, &sink, nullptr, {});
  ASSERT_FALSE(p.started());
  EXPECT_NE(p.started().error().find("user map " + file.path() + ": users[0]: \"id\" must be"),
            std::string::npos)
      << p.started().error();
}

// A client CA that cannot be read is named as such, not as a user map (it was "user map : ...").
TEST(PipelineIdentityTest, ABrokenClientCaIsAStartErrorNamingIt) {
  pipeline::PipelineConfig config;
  config.identity.client_ca_path = "/dev/zero";
  output::VectorLineSink sink;
  pipeline::Pipeline p(config, capture::ClockMap{}, &sink, nullptr, {});
  ASSERT_FALSE(p.started());
  EXPECT_EQ(p.started().error(), "--client-ca /dev/zero: not a regular file");
}

}  // namespace
}  // namespace mat::identity
