// The OpenSSL layout calibration (userspace/tap/ssl_layout, helper mke-audit-tap-sslcal): the
// helper calibrates the system's libssl, then the test PROVES the offsets with that same library
// linked into this process: after real handshakes, the SSL object's memory at the calibrated
// offsets holds exactly what the key log callback logged. Secrets stay in this process's memory.
#include "tap/ssl_layout.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace mat::tap {
namespace {

using Bytes = std::vector<uint8_t>;

// ---- where this process's libssl and libcrypto are mapped ----

struct Mapped {
  std::string path;   // the file
  std::string range;  // its first mapping (offset 0), as named in /proc/PID/map_files
};

Mapped FindMapped(const std::string& prefix) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode >> path;
    std::string base = path.substr(path.rfind('/') + 1);
    if (base.rfind(prefix, 0) == 0 && std::stoull(offset, nullptr, 16) == 0) return {path, range};
  }
  return {};
}

std::string MapFile(const Mapped& m) {
  return "/proc/" + std::to_string(::getpid()) + "/map_files/" + m.range;
}

// The layout of the system libssl linked into this test, calibrated once.
const tap_ssl_layout& Layout() {
  static const tap_ssl_layout layout = [] {
    Mapped ssl = FindMapped("libssl.so"), crypto = FindMapped("libcrypto.so");
    EXPECT_FALSE(ssl.path.empty());
    EXPECT_FALSE(crypto.path.empty());
    auto l = CalibrateSslLayout(ssl.path, crypto.path, MAT_SSLCAL);
    EXPECT_TRUE(l) << l.error();
    return l ? *l : tap_ssl_layout{};
  }();
  return layout;
}

// ---- the key log: label -> secret, per SSL object (memory only) ----

std::map<const SSL*, std::map<std::string, Bytes>> g_log;

Bytes FromHex(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

void OnKeylog(const SSL* ssl, const char* line) {
  std::istringstream in(line);
  std::string label, random, secret;
  in >> label >> random >> secret;
  g_log[ssl][label] = FromHex(secret);
}

void WipeLog() {
  for (auto& [ssl, labels] : g_log)
    for (auto& [label, secret] : labels) OPENSSL_cleanse(secret.data(), secret.size());
  g_log.clear();
}

// ---- in-memory handshakes with the system OpenSSL ----

struct Ctx {
  SSL_CTX* server = nullptr;
  SSL_CTX* client = nullptr;
};

Ctx NewCtx(int min_version, int max_version) {
  static EVP_PKEY* key = EVP_EC_gen("P-256");
  static X509* cert = mat::testing::SelfSignedCertificate(key, "ssl-layout-test");
  Ctx c{SSL_CTX_new(TLS_server_method()), SSL_CTX_new(TLS_client_method())};
  for (SSL_CTX* ctx : {c.server, c.client}) {
    SSL_CTX_set_min_proto_version(ctx, min_version);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL_CTX_set_keylog_callback(ctx, &OnKeylog);
  }
  EXPECT_EQ(SSL_CTX_use_certificate(c.server, cert), 1);
  EXPECT_EQ(SSL_CTX_use_PrivateKey(c.server, key), 1);
  return c;
}

struct Conn {
  SSL* server = nullptr;
  SSL* client = nullptr;
  ~Conn() {
    // As after a clean close: SSL_free otherwise marks the session not resumable.
    for (SSL* s : {server, client})
      if (s != nullptr) SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(server);
    SSL_free(client);
  }
};

bool Retry(SSL* s, int rc) {
  int err = SSL_get_error(s, rc);
  return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

// Connects a client and a server over a BIO pair. implicit: the server never calls
// SSL_do_handshake (nor SSL_accept): its first SSL_read runs the handshake.
void Handshake(const Ctx& ctx, Conn* c, SSL_SESSION* resume = nullptr, bool implicit = false) {
  c->server = SSL_new(ctx.server);
  c->client = SSL_new(ctx.client);
  BIO *sb = nullptr, *cb = nullptr;
  ASSERT_EQ(BIO_new_bio_pair(&sb, 0, &cb, 0), 1);
  SSL_set_bio(c->server, sb, sb);
  SSL_set_bio(c->client, cb, cb);
  SSL_set_accept_state(c->server);
  SSL_set_connect_state(c->client);
  if (resume != nullptr) {
    ASSERT_EQ(SSL_set_session(c->client, resume), 1);
  }
  bool server_done = false, client_done = false, sent = false;
  for (int round = 0; round < 100 && !(server_done && client_done); ++round) {
    if (!client_done) {
      int rc = SSL_do_handshake(c->client);
      client_done = rc == 1;
      ASSERT_TRUE(client_done || Retry(c->client, rc));
    }
    if (implicit && client_done && !sent) {
      ASSERT_EQ(SSL_write(c->client, "ping", 4), 4);
      sent = true;
    }
    if (!server_done) {
      if (implicit) {
        char buf[16];
        int rc = SSL_read(c->server, buf, sizeof(buf));
        server_done = rc == 4;
        ASSERT_TRUE(server_done || Retry(c->server, rc));
      } else {
        int rc = SSL_do_handshake(c->server);
        server_done = rc == 1;
        ASSERT_TRUE(server_done || Retry(c->server, rc));
      }
    }
  }
  ASSERT_TRUE(server_done && client_done);
  // Let the client take the TLS 1.3 session tickets the server sent after its handshake.
  char buf[16];
  int rc = SSL_read(c->client, buf, sizeof(buf));
  ASSERT_TRUE(Retry(c->client, rc));
}

// Sends text from one side and reads it on the other.
void Send(SSL* from, SSL* to, const std::string& text) {
  ASSERT_EQ(SSL_write(from, text.data(), static_cast<int>(text.size())),
            static_cast<int>(text.size()));
  char buf[256];
  ASSERT_EQ(SSL_read(to, buf, sizeof(buf)), static_cast<int>(text.size()));
}

// ---- reading an object at the calibrated offsets ----

// Equal bytes; on failure says so without printing them (they are secrets).
::testing::AssertionResult Same(const Bytes& got, const Bytes& want) {
  if (got == want) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the " << got.size() << " bytes read differ from the "
                                       << want.size() << " bytes expected (not shown: secret)";
}

Bytes At(const void* obj, uint32_t off, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(obj) + off;
  return Bytes(p, p + n);
}

int VersionAt(const SSL* s) {
  int v;
  std::memcpy(&v, static_cast<const uint8_t*>(static_cast<const void*>(s)) + Layout().version,
              sizeof(v));
  return v;
}

const void* SessionAt(const SSL* s) {
  const void* p;
  std::memcpy(&p, static_cast<const uint8_t*>(static_cast<const void*>(s)) + Layout().session,
              sizeof(p));
  return p;
}

Bytes ClientRandom(const SSL* s) {
  Bytes r(32);
  EXPECT_EQ(SSL_get_client_random(s, r.data(), r.size()), 32u);
  return r;
}

// TLS 1.3: the application traffic secrets, version and client random of one SSL object.
void ExpectTls13(const SSL* s, const SSL* logged_by) {
  const Bytes& client = g_log[logged_by]["CLIENT_TRAFFIC_SECRET_0"];
  const Bytes& server = g_log[logged_by]["SERVER_TRAFFIC_SECRET_0"];
  ASSERT_GE(client.size(), 32u);
  ASSERT_GE(server.size(), 32u);
  EXPECT_TRUE(Same(At(s, Layout().client_app_secret, client.size()), client));
  EXPECT_TRUE(Same(At(s, Layout().server_app_secret, server.size()), server));
  EXPECT_EQ(VersionAt(s), TLS1_3_VERSION);
  EXPECT_TRUE(Same(At(s, Layout().client_random, 32), ClientRandom(s)));
}

// TLS 1.2: the master secret through the session pointer, version and client random.
void ExpectTls12(const SSL* s, const Bytes& master) {
  ASSERT_EQ(master.size(), 48u);
  EXPECT_EQ(VersionAt(s), TLS1_2_VERSION);
  EXPECT_TRUE(Same(At(s, Layout().client_random, 32), ClientRandom(s)));
  const void* session = SessionAt(s);
  ASSERT_EQ(session, static_cast<const void*>(SSL_get_session(s)));
  EXPECT_TRUE(Same(At(session, Layout().master_key, 48), master));
}

class SslLayoutTest : public ::testing::Test {
 protected:
  void TearDown() override { WipeLog(); }
};

TEST_F(SslLayoutTest, CalibratesTheSystemLibsslAlsoThroughMapFiles) {
  const tap_ssl_layout& l = Layout();
  EXPECT_NE(l.client_app_secret, l.server_app_secret);
  Mapped ssl = FindMapped("libssl.so"), crypto = FindMapped("libcrypto.so");
  auto via_map_files = CalibrateSslLayout(MapFile(ssl), MapFile(crypto), MAT_SSLCAL);
  ASSERT_TRUE(via_map_files) << via_map_files.error();
  EXPECT_EQ(std::memcmp(&*via_map_files, &l, sizeof(l)), 0);
}

TEST_F(SslLayoutTest, CalibratesFromSeveralThreadsAtOnce) {
  const tap_ssl_layout want = Layout();
  Mapped ssl = FindMapped("libssl.so"), crypto = FindMapped("libcrypto.so");
  std::vector<std::thread> threads;
  std::vector<Result<tap_ssl_layout>> got(4, Error{"not run"});
  for (size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&, i] {
      got[i] = CalibrateSslLayout(i % 2 ? MapFile(ssl) : ssl.path,
                                  i % 2 ? MapFile(crypto) : crypto.path, MAT_SSLCAL);
    });
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(got[i]) << got[i].error();
    EXPECT_EQ(std::memcmp(&*got[i], &want, sizeof(want)), 0);
  }
}

TEST_F(SslLayoutTest, Tls13SecretsLieAtTheOffsets) {
  Ctx ctx = NewCtx(TLS1_3_VERSION, TLS1_3_VERSION);
  Conn c;
  Handshake(ctx, &c);
  ExpectTls13(c.server, c.server);
  ExpectTls13(c.client, c.client);
  // Both sides logged the same secrets.
  EXPECT_TRUE(
      Same(g_log[c.server]["CLIENT_TRAFFIC_SECRET_0"], g_log[c.client]["CLIENT_TRAFFIC_SECRET_0"]));
  SSL_CTX_free(ctx.server);
  SSL_CTX_free(ctx.client);
}

TEST_F(SslLayoutTest, Tls12MasterSecretLiesThroughTheSession) {
  Ctx ctx = NewCtx(TLS1_2_VERSION, TLS1_2_VERSION);
  Conn c;
  Handshake(ctx, &c);
  ExpectTls12(c.server, g_log[c.server]["CLIENT_RANDOM"]);
  ExpectTls12(c.client, g_log[c.client]["CLIENT_RANDOM"]);
  SSL_CTX_free(ctx.server);
  SSL_CTX_free(ctx.client);
}

TEST_F(SslLayoutTest, Tls12ResumptionKeepsTheMasterSecretFoundTheSameWay) {
  Ctx ctx = NewCtx(TLS1_2_VERSION, TLS1_2_VERSION);
  Bytes master;
  SSL_SESSION* session = nullptr;
  {
    Conn first;
    Handshake(ctx, &first);
    master = g_log[first.server]["CLIENT_RANDOM"];
    session = SSL_get1_session(first.client);
  }
  Conn again;
  Handshake(ctx, &again, session);
  ASSERT_EQ(SSL_session_reused(again.server), 1);
  ExpectTls12(again.server, master);
  ExpectTls12(again.client, master);
  OPENSSL_cleanse(master.data(), master.size());
  SSL_SESSION_free(session);
  SSL_CTX_free(ctx.server);
  SSL_CTX_free(ctx.client);
}

TEST_F(SslLayoutTest, Tls13ResumptionSecretsLieAtTheOffsets) {
  Ctx ctx = NewCtx(TLS1_3_VERSION, TLS1_3_VERSION);
  SSL_SESSION* session = nullptr;
  {
    Conn first;
    Handshake(ctx, &first);
    session = SSL_get1_session(first.client);
  }
  Conn again;
  Handshake(ctx, &again, session);
  ASSERT_EQ(SSL_session_reused(again.server), 1);
  ExpectTls13(again.server, again.server);
  ExpectTls13(again.client, again.client);
  SSL_SESSION_free(session);
  SSL_CTX_free(ctx.server);
  SSL_CTX_free(ctx.client);
}

TEST_F(SslLayoutTest, ImplicitHandshakeInSslReadFillsTheSameFields) {
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    Ctx ctx = NewCtx(version, version);
    Conn c;
    Handshake(ctx, &c, nullptr, /*implicit=*/true);
    if (version == TLS1_3_VERSION)
      ExpectTls13(c.server, c.server);
    else
      ExpectTls12(c.server, g_log[c.server]["CLIENT_RANDOM"]);
    SSL_CTX_free(ctx.server);
    SSL_CTX_free(ctx.client);
  }
}

// HKDF-Expand-Label(secret, "traffic upd", "", Hash.length): the next traffic secret (RFC 8446
// 7.2).
Bytes NextTrafficSecret(const Bytes& secret, const EVP_MD* md) {
  Bytes info = {static_cast<uint8_t>(secret.size() >> 8), static_cast<uint8_t>(secret.size())};
  const std::string label = "tls13 traffic upd";
  info.push_back(static_cast<uint8_t>(label.size()));
  info.insert(info.end(), label.begin(), label.end());
  info.push_back(0);
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* kctx = EVP_KDF_CTX_new(kdf);
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  Bytes key = secret;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                       const_cast<char*>(EVP_MD_get0_name(md)), 0),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, key.data(), key.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  Bytes out(secret.size());
  EXPECT_EQ(EVP_KDF_derive(kctx, out.data(), out.size(), params), 1);
  EVP_KDF_CTX_free(kctx);
  EVP_KDF_free(kdf);
  OPENSSL_cleanse(key.data(), key.size());
  return out;
}

TEST_F(SslLayoutTest, KeyUpdateReplacesTheTrafficSecretsInPlace) {
  Ctx ctx = NewCtx(TLS1_3_VERSION, TLS1_3_VERSION);
  Conn c;
  Handshake(ctx, &c);
  const EVP_MD* md = SSL_CIPHER_get_handshake_digest(SSL_get_current_cipher(c.server));
  ASSERT_NE(md, nullptr);
  Bytes client0 = g_log[c.server]["CLIENT_TRAFFIC_SECRET_0"];
  Bytes server0 = g_log[c.server]["SERVER_TRAFFIC_SECRET_0"];
  Bytes client1 = NextTrafficSecret(client0, md), server1 = NextTrafficSecret(server0, md);
  ASSERT_FALSE(Same(client1, client0));
  // The client updates its sending key and asks the server to update its own.
  ASSERT_EQ(SSL_key_update(c.client, SSL_KEY_UPDATE_REQUESTED), 1);
  Send(c.client, c.server, "after the client's update");
  EXPECT_TRUE(Same(At(c.client, Layout().client_app_secret, client1.size()), client1));
  EXPECT_TRUE(Same(At(c.server, Layout().client_app_secret, client1.size()), client1));
  EXPECT_TRUE(Same(At(c.server, Layout().server_app_secret, server0.size()), server0));
  Send(c.server, c.client, "after the server's update");
  EXPECT_TRUE(Same(At(c.server, Layout().server_app_secret, server1.size()), server1));
  EXPECT_TRUE(Same(At(c.client, Layout().server_app_secret, server1.size()), server1));
  for (Bytes* b : {&client0, &server0, &client1, &server1}) OPENSSL_cleanse(b->data(), b->size());
  SSL_CTX_free(ctx.server);
  SSL_CTX_free(ctx.client);
}

// ---- failures ----

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

TEST(SslLayoutFailureTest, BogusLibrariesFailCleanlyWithAReason) {
  char text_path[] = "/tmp/ssl_layout_test_XXXXXX";
  int fd = ::mkstemp(text_path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "not a library\n", 14), 14);
  ::close(fd);
  Mapped ssl = FindMapped("libssl.so"), crypto = FindMapped("libcrypto.so");
  struct {
    std::string libssl, libcrypto, reason;
  } cases[] = {
      {ssl.path, "/nonexistent/libcrypto.so.3", "cannot open /nonexistent/libcrypto.so.3"},
      {"/nonexistent/libssl.so.3", crypto.path, "cannot open /nonexistent/libssl.so.3"},
      {ssl.path, text_path, "cannot load libcrypto"},
      {text_path, crypto.path, "cannot load libssl"},
      {crypto.path, ssl.path, "lacks TLS_server_method"},  // swapped
  };
  for (const auto& c : cases) {
    auto start = std::chrono::steady_clock::now();
    auto l = CalibrateSslLayout(c.libssl, c.libcrypto, MAT_SSLCAL);
    ASSERT_FALSE(l) << c.libssl << " " << c.libcrypto;
    EXPECT_NE(l.error().find(c.reason), std::string::npos) << l.error();
    EXPECT_LT(Seconds(start), 10.0);
  }
  ::unlink(text_path);
}

TEST(SslLayoutFailureTest, MissingHelperFails) {
  auto l = CalibrateSslLayout("a", "b", "/nonexistent/mke-audit-tap-sslcal");
  ASSERT_FALSE(l);
  EXPECT_NE(l.error().find("cannot run"), std::string::npos) << l.error();
}

TEST(SslLayoutFailureTest, HangingHelperIsKilled) {
  char script[] = "/tmp/ssl_layout_hang_XXXXXX";
  int fd = ::mkstemp(script);
  ASSERT_GE(fd, 0);
  const std::string text = "#!/bin/sh\nexec sleep 60\n";
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::fchmod(fd, 0700);
  ::close(fd);
  auto start = std::chrono::steady_clock::now();
  auto l = CalibrateSslLayout("a", "b", script);
  ASSERT_FALSE(l);
  EXPECT_NE(l.error().find("killed after"), std::string::npos) << l.error();
  EXPECT_LT(Seconds(start), 13.0);
  ::unlink(script);
}

TEST(SslLayoutParseTest, ChecksTheAnswer) {
  auto l = ParseSslLayout(
      "version=0 client_random=352 client_app_secret=1860 server_app_secret=1924 session=2328 "
      "master_key=80");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->client_app_secret, 1860u);
  EXPECT_EQ(l->server_app_secret, 1924u);
  EXPECT_EQ(l->session, 2328u);
  EXPECT_EQ(l->master_key, 80u);
  const char* bad[] = {
      "",
      "version=0 client_random=352 client_app_secret=1860 server_app_secret=1924 session=2328",
      "version=0 client_random=352 client_app_secret=1860 server_app_secret=1900 session=2328 "
      "master_key=80",  // the 64-byte secrets overlap
      "version=0 client_random=352 client_app_secret=1860 server_app_secret=1924 session=1870 "
      "master_key=80",  // the session pointer inside a secret
      "version=0 client_random=352 client_app_secret=1860 server_app_secret=1924 session=2328 "
      "master_key=65536",
      "version=0 client_random=352 client_app_secret=1860 server_app_secret=1924 session=2328 "
      "master_key=-1",
      "version=0 client_random=352 client_app_secret=1860 server_app_secret=1924 session=2328 "
      "master_key=80 master_key=80",
      "version=0 client_random=352 client_app_secret=1860 server_app_secret=1924 session=2328 "
      "master_key=8x",
  };
  for (const char* line : bad) {
    auto refused = ParseSslLayout(line);
    ASSERT_FALSE(refused) << line;
    EXPECT_FALSE(refused.error().empty()) << line;
  }
}

// ---- the helper never writes a secret ----

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string Hex(const Bytes& b, bool upper) {
  static const char* digits[] = {"0123456789abcdef", "0123456789ABCDEF"};
  std::string out;
  for (uint8_t x : b) {
    out += digits[upper][x >> 4];
    out += digits[upper][x & 15];
  }
  return out;
}

TEST(SslLayoutSecrecyTest, HelperOutputsHoldNoSecret) {
  Mapped ssl = FindMapped("libssl.so"), crypto = FindMapped("libcrypto.so");
  int out[2], err[2], keylog[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(err, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(keylog, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawn_file_actions_adddup2(&actions, keylog[1], 3);
  std::string preload = std::string("LD_PRELOAD=") + MAT_SSLCAL_SHIM;
  std::string fd_env = "MAT_TEST_KEYLOG_FD=3";
  char* envp[] = {preload.data(), fd_env.data(), nullptr};
  std::vector<std::string> args = {MAT_SSLCAL, "--libcrypto", crypto.path, "--libssl", ssl.path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, MAT_SSLCAL, &actions, nullptr, argv.data(), envp), 0);
  posix_spawn_file_actions_destroy(&actions);
  for (int fd : {out[1], err[1], keylog[1]}) ::close(fd);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);  // outputs are far below a pipe's capacity
  std::string stdout_text = ReadAll(out[0]), stderr_text = ReadAll(err[0]);
  std::string log_text = ReadAll(keylog[0]);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << stderr_text;
  ASSERT_NE(stdout_text.find("client_app_secret="), std::string::npos);

  // Every secret the helper's handshakes logged: none may appear in its outputs.
  std::vector<Bytes> secrets;
  std::istringstream lines(log_text);
  std::string line;
  std::string uid_line;
  while (std::getline(lines, line)) {
    if (line.rfind("#uid ", 0) == 0) {
      uid_line = line;
      continue;
    }
    std::istringstream in(line);
    std::string label, random, secret;
    in >> label >> random >> secret;
    secrets.push_back(FromHex(secret));
  }
  // The library's code ran as nobody when the test runs as root.
  if (::geteuid() == 0) {
    EXPECT_EQ(uid_line, "#uid 65534 65534");
  }
  ASSERT_GE(secrets.size(), 8u);  // two TLS 1.3 sides (5 lines each), two TLS 1.2 sides
  const std::string outputs = stdout_text + stderr_text;
  for (const Bytes& s : secrets) {
    ASSERT_GE(s.size(), 32u);
    // Any 8 bytes of it, raw or in hex.
    const std::string raw(s.begin(), s.end()), lower = Hex(s, false), upper = Hex(s, true);
    for (size_t i = 0; i + 8 <= s.size(); ++i) {
      EXPECT_EQ(outputs.find(raw.substr(i, 8)), std::string::npos);
      EXPECT_EQ(outputs.find(lower.substr(2 * i, 16)), std::string::npos);
      EXPECT_EQ(outputs.find(upper.substr(2 * i, 16)), std::string::npos);
    }
  }
  for (Bytes& s : secrets) OPENSSL_cleanse(s.data(), s.size());
  OPENSSL_cleanse(log_text.data(), log_text.size());
}

}  // namespace
}  // namespace mat::tap
