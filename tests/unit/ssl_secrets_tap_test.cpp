// OpenSSL handshake secrets from the kernel (needs root): the test process is a keys target of
// its own libssl, finds the layout of its SSL objects by a simple search (a handshake with a
// keylog callback, then the logged values looked up in the objects' memory; the real
// calibration is userspace/tap/ssl_layout), and checks that the TAP_EV_SECRET records of later
// handshakes equal what the keylog callback was given. Secrets stay in memory: no check prints
// them.
#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tap/bpf_tap.h"
#include "tap/ssl_layout.h"
#include "tap/targets.h"
#include "test_support.h"

namespace {

using mat::testing::ErrorOf;

using Bytes = std::vector<uint8_t>;

// What the keylog callback was given, per SSL* and label.
std::map<const SSL*, std::map<std::string, std::pair<Bytes, Bytes>>>* g_keylog;

Bytes FromHex(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

void KeyLog(const SSL* ssl, const char* line) {
  std::string s(line);
  size_t a = s.find(' '), b = s.find(' ', a + 1);
  if (a == std::string::npos || b == std::string::npos) return;
  (*g_keylog)[ssl][s.substr(0, a)] = {FromHex(s.substr(a + 1, b - a - 1)),
                                      FromHex(s.substr(b + 1))};
  OPENSSL_cleanse(s.data(), s.size());
}

// Up to n bytes of this process's memory at p, without faulting past the end of a mapping.
Bytes ReadSelf(const void* p, size_t n) {
  Bytes out(n);
  iovec local{out.data(), n}, remote{const_cast<void*>(p), n};
  ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  out.resize(got > 0 ? size_t(got) : 0);
  return out;
}

std::optional<uint32_t> Find(const Bytes& hay, const Bytes& needle) {
  if (needle.empty()) return std::nullopt;
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end());
  if (it == hay.end()) return std::nullopt;
  return static_cast<uint32_t>(it - hay.begin());
}

struct Tls {
  SSL_CTX* server_ctx = nullptr;
  SSL_CTX* client_ctx = nullptr;
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;

  Tls() {
    key = EVP_EC_gen("P-256");
    cert = mat::testing::SelfSignedCertificate(key, "test");
    server_ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(server_ctx, cert);
    SSL_CTX_use_PrivateKey(server_ctx, key);
    client_ctx = SSL_CTX_new(TLS_client_method());
    for (SSL_CTX* ctx : {server_ctx, client_ctx}) {
      SSL_CTX_set_keylog_callback(ctx, KeyLog);
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
  }
  ~Tls() {
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

// A client and a server SSL joined by a BIO pair, handshaken with SSL_do_handshake.
struct Pair {
  SSL* client = nullptr;
  SSL* server = nullptr;
  Pair(Tls& tls, int max_version) {
    SSL_CTX_set_max_proto_version(tls.server_ctx, max_version);
    client = SSL_new(tls.client_ctx);
    server = SSL_new(tls.server_ctx);
    BIO *a = nullptr, *b = nullptr;
    BIO_new_bio_pair(&a, 0, &b, 0);
    SSL_set_bio(client, a, a);
    SSL_set_bio(server, b, b);
    SSL_set_connect_state(client);
    SSL_set_accept_state(server);
  }
  bool Handshake() {
    bool client_done = false, server_done = false;
    for (int i = 0; i < 100 && !(client_done && server_done); ++i) {
      if (!client_done) client_done = SSL_do_handshake(client) == 1;
      if (!server_done) server_done = SSL_do_handshake(server) == 1;
    }
    return client_done && server_done;
  }
  ~Pair() {
    SSL_free(client);
    SSL_free(server);
  }
};

class SslSecretsTapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (BPF)";
    g_keylog = &keylog_;
  }
  void TearDown() override {
    for (auto& [ssl, labels] : keylog_)
      for (auto& [label, v] : labels) OPENSSL_cleanse(v.second.data(), v.second.size());
    for (tap_secret& s : secrets_) OPENSSL_cleanse(&s, sizeof(s));
    g_keylog = nullptr;
  }

  // Finds the layout from one TLS 1.3 and one TLS 1.2 handshake (server side).
  std::optional<tap_ssl_layout> FindLayout() {
    constexpr size_t kSslBytes = 16384, kSessionBytes = 4096;
    tap_ssl_layout layout{};
    Pair t13(tls_, TLS1_3_VERSION), t12(tls_, TLS1_2_VERSION);
    if (!t13.Handshake() || !t12.Handshake()) return std::nullopt;
    if (SSL_version(t13.server) != TLS1_3_VERSION || SSL_version(t12.server) != TLS1_2_VERSION)
      return std::nullopt;
    Bytes m13 = ReadSelf(t13.server, kSslBytes), m12 = ReadSelf(t12.server, kSslBytes);
    auto& k13 = keylog_[t13.server];
    auto& k12 = keylog_[t12.server];
    // version: the first int that reads 0x0304 in one and 0x0303 in the other.
    std::optional<uint32_t> version;
    for (uint32_t off = 0; off + 4 <= std::min(m13.size(), m12.size()) && !version; off += 4) {
      uint32_t a, b;
      std::memcpy(&a, &m13[off], 4);
      std::memcpy(&b, &m12[off], 4);
      if (a == 0x0304 && b == 0x0303) version = off;
    }
    auto client_random = Find(m13, k13["CLIENT_TRAFFIC_SECRET_0"].first);
    auto client_app = Find(m13, k13["CLIENT_TRAFFIC_SECRET_0"].second);
    auto server_app = Find(m13, k13["SERVER_TRAFFIC_SECRET_0"].second);
    SSL_SESSION* session = SSL_get_session(t12.server);
    Bytes session_ptr(8);
    std::memcpy(session_ptr.data(), &session, 8);
    auto session_off = Find(m12, session_ptr);
    auto master = Find(ReadSelf(session, kSessionBytes), k12["CLIENT_RANDOM"].second);
    OPENSSL_cleanse(m13.data(), m13.size());
    OPENSSL_cleanse(m12.data(), m12.size());
    if (!version || !client_random || !client_app || !server_app || !session_off || !master)
      return std::nullopt;
    layout.version = *version;
    layout.client_random = *client_random;
    layout.client_app_secret = *client_app;
    layout.server_app_secret = *server_app;
    layout.session = *session_off;
    layout.master_key = *master;
    return layout;
  }

  void Drain() {
    while (tap_->Consume() > 0) {
    }
  }

  // The secret record of ssl with this label, if exactly one came.
  const tap_secret* RecordOf(const SSL* ssl, uint32_t label) const {
    const tap_secret* found = nullptr;
    for (const tap_secret& s : secrets_)
      if (s.hdr.conn == reinterpret_cast<uint64_t>(ssl) && s.label == label) {
        if (found) return nullptr;
        found = &s;
      }
    return found;
  }

  // The record equals the keylog line: client random and the secret's logged bytes.
  void ExpectLogged(const SSL* ssl, uint32_t label, const std::string& keylog_label,
                    uint16_t version, const char* what) {
    const tap_secret* rec = RecordOf(ssl, label);
    ASSERT_NE(rec, nullptr) << what << ": no single record";
    const auto& logged = keylog_[ssl][keylog_label];
    ASSERT_EQ(logged.first.size(), 32u) << what;
    ASSERT_LE(logged.second.size(), rec->len) << what;
    EXPECT_EQ(rec->source, TAP_SECRET_FROM_OPENSSL) << what;
    EXPECT_EQ(rec->version, version) << what;
    EXPECT_EQ(rec->hdr.tgid, uint32_t(getpid())) << what;
    // Compared without printing: a failure must not show key material.
    EXPECT_TRUE(std::memcmp(rec->client_random, logged.first.data(), 32) == 0)
        << what << ": client random differs";
    EXPECT_TRUE(std::memcmp(rec->secret, logged.second.data(), logged.second.size()) == 0)
        << what << ": secret differs from the keylog";
  }

  Tls tls_;
  std::map<const SSL*, std::map<std::string, std::pair<Bytes, Bytes>>> keylog_;
  // Creates the tap; secrets are kept, plaintext records counted with their bytes.
  void CreateTap() {
    auto tap =
        mat::tap::BpfTap::Create(mat::tap::TapOptions{}, [this](const void* data, size_t size) {
          tap_hdr h;
          std::memcpy(&h, data, sizeof(h));
          if (h.type == TAP_EV_SECRET && size == sizeof(tap_secret)) {
            secrets_.emplace_back();
            std::memcpy(&secrets_.back(), data, sizeof(tap_secret));
          } else if (h.type == TAP_EV_DATA && size >= TAP_DATA_HDR_BYTES) {
            const auto* d = static_cast<const tap_data*>(data);
            plaintext_[h.conn].append(reinterpret_cast<const char*>(d->data), d->len);
          }
        });
    ASSERT_TRUE(tap) << tap.error();
    tap_ = std::move(*tap);
  }

  std::vector<tap_secret> secrets_;
  std::map<uint64_t, std::string> plaintext_;  // TAP_EV_DATA bytes per SSL*
  std::unique_ptr<mat::tap::BpfTap> tap_;
};

TEST_F(SslSecretsTapTest, HandshakeSecretsEqualTheKeyLog) {
  std::optional<tap_ssl_layout> layout = FindLayout();
  ASSERT_TRUE(layout) << "the test's layout search failed on this libssl";
  keylog_.clear();
  ASSERT_NO_FATAL_FAILURE(CreateTap());
  mat::tap::TargetOptions options;
  options.mode = mat::tap::CaptureMode::kKeys;
  options.ssl_layout = layout;
  mat::tap::TargetProcess self{getpid(), "ssl_secrets_test", 0};
  ASSERT_EQ(ErrorOf(tap_->AddTarget(self, options)), "");
  EXPECT_EQ(tap_->SyscallTracepointCount(), 0u);

  Pair t13(tls_, TLS1_3_VERSION), t12(tls_, TLS1_2_VERSION);
  ASSERT_TRUE(t13.Handshake());
  ASSERT_TRUE(t12.Handshake());
  Drain();
  for (const SSL* ssl : {t13.server, t13.client}) {
    const char* side = ssl == t13.server ? "TLS 1.3 server" : "TLS 1.3 client";
    ExpectLogged(ssl, TAP_SECRET_CLIENT_TRAFFIC_0, "CLIENT_TRAFFIC_SECRET_0", 0x0304, side);
    ExpectLogged(ssl, TAP_SECRET_SERVER_TRAFFIC_0, "SERVER_TRAFFIC_SECRET_0", 0x0304, side);
  }
  for (const SSL* ssl : {t12.server, t12.client})
    ExpectLogged(ssl, TAP_SECRET_MASTER, "CLIENT_RANDOM", 0x0303,
                 ssl == t12.server ? "TLS 1.2 server" : "TLS 1.2 client");
  EXPECT_EQ(secrets_.size(), 6u);
  mat::tap::Counters counters = tap_->ReadCounters();
  EXPECT_EQ(counters[TAP_CNT_SECRETS], 6u);
  EXPECT_EQ(counters[TAP_CNT_SECRET_FAULTS], 0u);

  // Plaintext capture of the same process: no secret.
  secrets_.clear();
  ASSERT_EQ(ErrorOf(tap_->AddTarget(self)), "");
  EXPECT_GT(tap_->SyscallTracepointCount(), 0u);
  Pair again(tls_, TLS1_3_VERSION);
  ASSERT_TRUE(again.Handshake());
  Drain();
  EXPECT_TRUE(secrets_.empty());
  tap_->RemoveTarget(getpid());
  EXPECT_EQ(tap_->SyscallTracepointCount(), 0u);
}

// The bridge window: both captures at once, then the per-call probes dropped.
TEST_F(SslSecretsTapTest, BothCapturesThenKeysOnly) {
  std::optional<tap_ssl_layout> layout = FindLayout();
  ASSERT_TRUE(layout) << "the test's layout search failed on this libssl";
  keylog_.clear();
  ASSERT_NO_FATAL_FAILURE(CreateTap());
  mat::tap::TargetOptions options;
  options.mode = mat::tap::CaptureMode::kBoth;
  options.ssl_layout = layout;
  mat::tap::TargetProcess self{getpid(), "ssl_secrets_test", 0};
  ASSERT_EQ(ErrorOf(tap_->AddTarget(self, options)), "");
  const size_t both_probes = tap_->ProbeCount(getpid());
  EXPECT_GT(tap_->SyscallTracepointCount(), 0u);

  Pair p(tls_, TLS1_3_VERSION);
  ASSERT_TRUE(p.Handshake());
  const std::string message = "GET /bridge HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string got(message.size(), '\0');
  ASSERT_EQ(SSL_write(p.client, message.data(), int(message.size())), int(message.size()));
  ASSERT_EQ(SSL_read(p.server, got.data(), int(got.size())), int(got.size()));
  Drain();
  EXPECT_TRUE(RecordOf(p.server, TAP_SECRET_CLIENT_TRAFFIC_0) != nullptr);
  EXPECT_EQ(plaintext_[reinterpret_cast<uint64_t>(p.client)], message);
  EXPECT_EQ(plaintext_[reinterpret_cast<uint64_t>(p.server)], message);

  tap_->DropPlaintextProbes(getpid());
  EXPECT_EQ(tap_->ModeOf(getpid()), mat::tap::CaptureMode::kKeys);
  EXPECT_LT(tap_->ProbeCount(getpid()), both_probes);
  EXPECT_GT(tap_->ProbeCount(getpid()), 0u);
  EXPECT_EQ(tap_->SyscallTracepointCount(), 0u);
  plaintext_.clear();
  ASSERT_EQ(SSL_write(p.client, message.data(), int(message.size())), int(message.size()));
  ASSERT_EQ(SSL_read(p.server, got.data(), int(got.size())), int(got.size()));
  secrets_.clear();
  Pair later(tls_, TLS1_2_VERSION);
  ASSERT_TRUE(later.Handshake());
  Drain();
  EXPECT_TRUE(plaintext_.empty()) << "per-call records after the probes were dropped";
  ExpectLogged(later.server, TAP_SECRET_MASTER, "CLIENT_RANDOM", 0x0303, "TLS 1.2 after the drop");
}

// The real calibration (the helper mke-audit-tap-sslcal, run on this process's own libssl and
// libcrypto through /proc/PID/map_files) feeding the kernel reader, the layout bound to that
// library by name.
TEST_F(SslSecretsTapTest, CalibratedLayoutOnTheNamedLibrary) {
  std::vector<mat::tap::SslLibrary> ssl = mat::tap::FindSslLibraries(getpid());
  std::vector<mat::tap::SslLibrary> crypto = mat::tap::FindCryptoLibraries(getpid());
  ASSERT_EQ(ssl.size(), 1u);
  ASSERT_EQ(crypto.size(), 1u);
  auto calibrated = mat::tap::CalibrateSslLayout(ssl[0].path, crypto[0].path, MAT_SSLCAL);
  ASSERT_TRUE(calibrated) << calibrated.error();
  std::optional<tap_ssl_layout> layout = *calibrated;
  ASSERT_NO_FATAL_FAILURE(CreateTap());
  mat::tap::TargetOptions options;
  options.mode = mat::tap::CaptureMode::kKeys;
  options.ssl_layout = layout;
  options.ssl_layout_library = ssl[0].path;
  mat::tap::TargetProcess self{getpid(), "ssl_secrets_test", 0};
  ASSERT_EQ(ErrorOf(tap_->AddTarget(self, options)), "");

  Pair t13(tls_, TLS1_3_VERSION), t12(tls_, TLS1_2_VERSION);
  ASSERT_TRUE(t13.Handshake());
  ASSERT_TRUE(t12.Handshake());
  Drain();
  ExpectLogged(t13.server, TAP_SECRET_CLIENT_TRAFFIC_0, "CLIENT_TRAFFIC_SECRET_0", 0x0304,
               "TLS 1.3 server");
  ExpectLogged(t13.server, TAP_SECRET_SERVER_TRAFFIC_0, "SERVER_TRAFFIC_SECRET_0", 0x0304,
               "TLS 1.3 server");
  ExpectLogged(t12.client, TAP_SECRET_MASTER, "CLIENT_RANDOM", 0x0303, "TLS 1.2 client");

  // A layout bound to another file: this libssl is not probed for keys, so nothing is.
  options.ssl_layout_library = crypto[0].path;
  auto refused = tap_->AddTarget(self, options);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("not the libssl the layout was found on"), std::string::npos)
      << refused.error();
}

}  // namespace
