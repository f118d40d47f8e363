// The TLS record layer stage (userspace/tls) against real OpenSSL handshakes run in-process over
// memory BIOs: the wire bytes as the server's socket saw them become TAP_EV_CIPHER records, the
// key log becomes TAP_EV_SECRET records like the kernel's OpenSSL-sourced ones, and the stage's
// plaintext must equal what each SSL_write sent, byte for byte, at the right positions.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "capture/event_decoder.h"
#include "capture/recorder.h"
#include "tap_records.h"
#include "test_support.h"
#include "tls/decrypt_stage.h"
#include "tls/secure_pool.h"

namespace mat::tls {
namespace {

using mat::testing::ErrorOf;
using mat::testing::Record;

constexpr uint32_t kTgid = 4242;
constexpr uint64_t kSock = 0xffff888012345600ull;
constexpr int32_t kFd = 17;
constexpr uint64_t kSsl = 0x55550000a000ull;

// --- a self-signed server certificate, made once ----------------------------------------------

struct Identity {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
};

const Identity& ServerIdentity() {
  static Identity id = [] {
    Identity i;
    i.key = EVP_RSA_gen(2048);  // RSA: the ECDHE-RSA suites of TLS 1.2 too
    i.cert = mat::testing::SelfSignedCertificate(i.key, "tls-stage-test");
    return i;
  }();
  return id;
}

// --- tap records --------------------------------------------------------------------------

Record CipherRecord(int dir, uint64_t pos, const unsigned char* p, size_t n, uint64_t ts) {
  Record r = mat::testing::DataRecord(kTgid, kSock, kFd, static_cast<tap_direction>(dir), pos,
                                      std::string_view(reinterpret_cast<const char*>(p), n), ts);
  tap_hdr h;
  std::memcpy(&h, r.data(), sizeof(h));
  h.type = TAP_EV_CIPHER;
  std::memcpy(r.data(), &h, sizeof(h));
  return r;
}

Record HeaderRecord(uint32_t type, uint64_t conn, int32_t fd, uint64_t ts) {
  tap_hdr h{type, kTgid, kTgid, fd, ts, conn};
  return mat::testing::AsRecord(h);
}

// The wire as the server's socket saw it, in ring order, plus the secrets.
class Capture {
 public:
  uint64_t ts = 1'000'000;
  size_t chunk = 16384;  // bytes one socket call moved (split further at TAP_CHUNK_BYTES)
  std::vector<Record> records;
  std::string wire[2];  // every byte, dropped or not
  // Bytes [drop_from, drop_to) of TAP_DIR_READ are lost before the stage sees them.
  uint64_t drop_from = 0, drop_to = 0;
  // The target is the client: what the client sends is TAP_DIR_WRITE.
  bool client_view = false;

  void Wire(int dir, const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      size_t call = std::min(chunk, bytes.size() - off);
      for (size_t c = 0; c < call;) {
        size_t k = std::min<size_t>(TAP_CHUNK_BYTES, call - c);
        uint64_t pos = wire[dir].size();
        const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + off + c);
        wire[dir].append(reinterpret_cast<const char*>(p), k);
        Emit(dir, pos, p, k);
        c += k;
      }
      off += call;
      ts += 1000;
    }
  }

  void Emit(int wire_dir, uint64_t pos, const unsigned char* p, size_t k) {
    const int dir = client_view ? 1 - wire_dir : wire_dir;
    if (dir != TAP_DIR_READ || drop_to <= pos || drop_from >= pos + k) {
      records.push_back(CipherRecord(dir, pos, p, k, ts));
      return;
    }
    if (drop_from > pos) records.push_back(CipherRecord(dir, pos, p, drop_from - pos, ts));
    if (drop_to < pos + k)
      records.push_back(CipherRecord(dir, drop_to, p + (drop_to - pos), pos + k - drop_to, ts));
  }

  // Key log lines as the kernel would send them from OpenSSL's objects: 64 bytes for the TLS 1.3
  // secrets (the tail is whatever follows in the SSL object), 48 for the master secret, and the
  // other version's fields with whatever they held.
  void Secrets(const std::vector<std::string>& keylog, uint64_t conn = kSsl) {
    uint8_t client_random[32] = {};
    bool have_random = false;
    std::vector<tap_secret> out;
    for (const std::string& line : keylog) {
      size_t a = line.find(' '), b = line.find(' ', a + 1);
      std::string label = line.substr(0, a);
      std::string cr = line.substr(a + 1, b - a - 1), sec = line.substr(b + 1);
      tap_secret s{};
      s.hdr = {TAP_EV_SECRET, kTgid, kTgid, -1, ts, conn};
      s.source = TAP_SECRET_FROM_OPENSSL;
      if (label == "CLIENT_RANDOM") {
        s.label = TAP_SECRET_MASTER;
        s.len = 48;
      } else if (label == "CLIENT_TRAFFIC_SECRET_0") {
        s.label = TAP_SECRET_CLIENT_TRAFFIC_0;
        s.len = 64;
      } else if (label == "SERVER_TRAFFIC_SECRET_0") {
        s.label = TAP_SECRET_SERVER_TRAFFIC_0;
        s.len = 64;
      } else {
        continue;
      }
      std::memset(s.secret, 0x5A, sizeof(s.secret));
      Hex(cr, s.client_random);
      Hex(sec, s.secret);
      std::memcpy(client_random, s.client_random, 32);
      have_random = true;
      out.push_back(s);
    }
    ASSERT_TRUE(have_random);
    // The fields of the other version hold junk.
    bool tls13 = out.front().label != TAP_SECRET_MASTER;
    tap_secret junk{};
    junk.hdr = {TAP_EV_SECRET, kTgid, kTgid, -1, ts, conn};
    junk.source = TAP_SECRET_FROM_OPENSSL;
    std::memcpy(junk.client_random, client_random, 32);
    RAND_bytes(junk.secret, sizeof(junk.secret));
    if (tls13) {
      junk.label = TAP_SECRET_MASTER;
      junk.len = 48;
      out.push_back(junk);
    } else {
      junk.label = TAP_SECRET_CLIENT_TRAFFIC_0;
      junk.len = 64;
      out.push_back(junk);
      junk.label = TAP_SECRET_SERVER_TRAFFIC_0;
      out.push_back(junk);
    }
    for (const tap_secret& s : out) records.push_back(mat::testing::AsRecord(s));
  }

  // Secrets as Go's (*Config).writeKeyLog gives them: every label, each its own length.
  void GoSecrets(const std::vector<std::string>& keylog, uint64_t conn) {
    const std::map<std::string, uint32_t> labels = {
        {"CLIENT_RANDOM", TAP_SECRET_MASTER},
        {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", TAP_SECRET_CLIENT_HANDSHAKE},
        {"SERVER_HANDSHAKE_TRAFFIC_SECRET", TAP_SECRET_SERVER_HANDSHAKE},
        {"CLIENT_TRAFFIC_SECRET_0", TAP_SECRET_CLIENT_TRAFFIC_0},
        {"SERVER_TRAFFIC_SECRET_0", TAP_SECRET_SERVER_TRAFFIC_0}};
    int n = 0;
    for (const std::string& line : keylog) {
      size_t a = line.find(' '), b = line.find(' ', a + 1);
      auto label = labels.find(line.substr(0, a));
      if (label == labels.end()) continue;
      std::string sec = line.substr(b + 1);
      tap_secret s{};
      s.hdr = {TAP_EV_SECRET, kTgid, kTgid + 1, -1, ts, conn};
      s.source = TAP_SECRET_FROM_GO;
      s.label = label->second;
      s.len = static_cast<uint32_t>(sec.size() / 2);
      Hex(line.substr(a + 1, b - a - 1), s.client_random);
      Hex(sec, s.secret);
      records.push_back(mat::testing::AsRecord(s));
      ++n;
    }
    ASSERT_GT(n, 0);
  }

  void SockClose() { records.push_back(HeaderRecord(TAP_EV_SOCK_CLOSE, kSock, kFd, ts)); }

  static void Hex(const std::string& hex, uint8_t* out) {
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
      out[i / 2] = static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
};

// --- an in-process TLS connection -----------------------------------------------------------

struct Config {
  int version = TLS1_3_VERSION;
  std::string ciphers;   // TLS 1.2 cipher list
  std::string suites13;  // TLS 1.3 suites
  bool no_etm = false;
  std::string server_groups, client_groups;
};

struct Contexts {
  SSL_CTX* server = nullptr;
  SSL_CTX* client = nullptr;
  explicit Contexts(const Config& c) {
    server = SSL_CTX_new(TLS_server_method());
    client = SSL_CTX_new(TLS_client_method());
    for (SSL_CTX* ctx : {server, client}) {
      SSL_CTX_set_min_proto_version(ctx, c.version);
      SSL_CTX_set_max_proto_version(ctx, c.version);
      if (!c.ciphers.empty()) SSL_CTX_set_cipher_list(ctx, c.ciphers.c_str());
      if (!c.suites13.empty()) SSL_CTX_set_ciphersuites(ctx, c.suites13.c_str());
      if (c.no_etm) SSL_CTX_set_options(ctx, SSL_OP_NO_ENCRYPT_THEN_MAC);
    }
    if (!c.server_groups.empty()) SSL_CTX_set1_groups_list(server, c.server_groups.c_str());
    if (!c.client_groups.empty()) SSL_CTX_set1_groups_list(client, c.client_groups.c_str());
    SSL_CTX_use_certificate(server, ServerIdentity().cert);
    SSL_CTX_use_PrivateKey(server, ServerIdentity().key);
    SSL_CTX_set_session_cache_mode(client, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_set_keylog_callback(server, [](const SSL* ssl, const char* line) {
      static_cast<std::vector<std::string>*>(SSL_get_app_data(ssl))->push_back(line);
    });
  }
  ~Contexts() {
    SSL_CTX_free(server);
    SSL_CTX_free(client);
  }
};

class Conn {
 public:
  Conn(Contexts& ctx, Capture* cap, SSL_SESSION* session = nullptr) : cap_(cap) {
    s_ = SSL_new(ctx.server);
    c_ = SSL_new(ctx.client);
    SSL_set_app_data(s_, &keylog);
    SSL_set_bio(s_, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_bio(c_, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_accept_state(s_);
    SSL_set_connect_state(c_);
    if (session != nullptr) SSL_set_session(c_, session);
  }
  ~Conn() {
    SSL_free(s_);
    SSL_free(c_);
  }

  bool Handshake() {
    for (int i = 0; i < 50; ++i) {
      int rc = SSL_do_handshake(c_);
      Pump();
      int rs = SSL_do_handshake(s_);
      Pump();
      if (rc == 1 && rs == 1) return true;
    }
    ERR_print_errors_fp(stderr);
    return false;
  }

  // Moves the bytes each side wrote to the other, through the capture.
  void Pump() {
    for (bool moved = true; moved;) {
      const bool sent = Move(c_, s_, TAP_DIR_READ);  // both ways every round
      const bool answered = Move(s_, c_, TAP_DIR_WRITE);
      moved = sent || answered;
    }
  }

  // dir: TAP_DIR_READ = the client sends (the server reads), TAP_DIR_WRITE = the server sends.
  void Send(int dir, const std::string& data) {
    SSL* from = dir == TAP_DIR_READ ? c_ : s_;
    for (size_t off = 0; off < data.size();) {
      size_t k = std::min<size_t>(65536, data.size() - off);
      ASSERT_EQ(SSL_write(from, data.data() + off, static_cast<int>(k)), static_cast<int>(k));
      off += k;
      Pump();
      Drain();
    }
    sent[dir] += data;
  }

  // Reads whatever either side has pending (data, tickets, KeyUpdates).
  void Drain() {
    char buf[65536];
    for (bool any = true; any;) {
      any = false;
      for (int dir : {TAP_DIR_READ, TAP_DIR_WRITE}) {
        SSL* to = dir == TAP_DIR_READ ? s_ : c_;
        int n;
        while ((n = SSL_read(to, buf, sizeof(buf))) > 0) {
          received[dir].append(buf, n);
          any = true;
        }
      }
      Pump();
    }
  }

  void Shutdown() {
    SSL_shutdown(c_);
    Pump();
    SSL_shutdown(s_);
    Pump();
  }

  std::string CipherName() const { return SSL_CIPHER_get_name(SSL_get_current_cipher(s_)); }
  bool Reused() const { return SSL_session_reused(c_) == 1; }
  SSL* client() { return c_; }
  SSL* server() { return s_; }

  std::vector<std::string> keylog;
  std::string sent[2], received[2];

 private:
  bool Move(SSL* from, SSL* to, int dir) {
    BIO* out = SSL_get_wbio(from);
    size_t pending = BIO_ctrl_pending(out);
    if (pending == 0) return false;
    std::string bytes(pending, '\0');
    BIO_read(out, bytes.data(), static_cast<int>(pending));
    cap_->Wire(dir, bytes);
    BIO_write(SSL_get_rbio(to), bytes.data(), static_cast<int>(bytes.size()));
    return true;
  }

  Capture* cap_;
  SSL* s_ = nullptr;
  SSL* c_ = nullptr;
};

// --- the stage's output -----------------------------------------------------------------------

struct Output {
  std::vector<Record> records;

  void Add(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    records.emplace_back(b, b + n);
  }

  // The plaintext of (conn, dir) in pos order; jumps collects each pos that skipped ahead.
  std::string Plain(uint64_t conn, int dir, std::vector<uint64_t>* jumps = nullptr) const {
    std::string s;
    uint64_t expect = 0;
    for (const Record& r : records) {
      capture::Event ev;
      EXPECT_EQ(capture::DecodeEvent(r.data(), r.size(), &ev), capture::DecodeStatus::kOk);
      if (ev.type != TAP_EV_DATA || ev.hdr->conn != conn || ev.data->dir != dir) continue;
      EXPECT_EQ(ev.hdr->tgid, kTgid);
      EXPECT_EQ(ev.hdr->fd, kFd);
      EXPECT_GE(ev.data->pos, expect) << "plaintext went back";
      EXPECT_EQ(ev.data->offset % TAP_CHUNK_BYTES, 0u);
      if (ev.data->pos != expect) {
        if (jumps != nullptr)
          jumps->push_back(ev.data->pos);
        else
          ADD_FAILURE() << "unexpected jump to " << ev.data->pos << " from " << expect;
      }
      s.append(ev.payload);
      expect = ev.data->pos + ev.data->len;
    }
    return s;
  }

  int Count(uint32_t type) const {
    int n = 0;
    for (const Record& r : records) {
      if (r.size() < sizeof(tap_hdr)) continue;
      tap_hdr h;
      std::memcpy(&h, r.data(), sizeof(h));
      n += h.type == type;
    }
    return n;
  }

  const tap_conn_end* End() const {
    for (const Record& r : records)
      if (r.size() == sizeof(tap_conn_end) &&
          reinterpret_cast<const tap_hdr*>(r.data())->type == TAP_EV_CONN_END)
        return reinterpret_cast<const tap_conn_end*>(r.data());
    return nullptr;
  }
};

struct StageRun {
  Output out;
  std::unique_ptr<DecryptStage> stage;
  // close_grace_ns: a socket close ends its stream at once unless a test asks otherwise.
  explicit StageRun(StageOptions o = NoGrace()) {
    stage = std::make_unique<DecryptStage>([this](const void* p, size_t n) { out.Add(p, n); }, o);
  }
  static StageOptions NoGrace() {
    StageOptions o;
    o.close_grace_ns = 0;
    return o;
  }
  void Feed(const std::vector<Record>& records) {
    for (const Record& r : records) stage->OnRecord(r.data(), r.size());
  }
};

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 g(seed);
  for (char& c : s) c = static_cast<char>('a' + g() % 26);
  return s;
}

// A request/response exchange, then close_notify both ways.
void Exchange(Conn& c, int rounds = 3) {
  for (int i = 0; i < rounds; ++i) {
    c.Send(TAP_DIR_READ, "GET /v1.41/info?round=" + std::to_string(i) +
                             " HTTP/1.1\r\nHost: x\r\n\r\n" + Pattern(100 + i * 37, i));
    c.Send(TAP_DIR_WRITE, "HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\n" + Pattern(900, 77 + i));
  }
}

// Plaintext comparisons that say where they differ instead of printing both.
::testing::AssertionResult Same(const std::string& got, const std::string& want) {
  if (got == want) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return ::testing::AssertionFailure()
         << "got " << got.size() << " bytes, want " << want.size() << ", first difference at " << i;
}

void ExpectDecrypted(const StageRun& run, const Conn& c, uint64_t conn = kSsl) {
  EXPECT_TRUE(Same(run.out.Plain(conn, TAP_DIR_READ), c.sent[TAP_DIR_READ]));
  EXPECT_TRUE(Same(run.out.Plain(conn, TAP_DIR_WRITE), c.sent[TAP_DIR_WRITE]));
  EXPECT_EQ(run.out.Count(TAP_EV_CIPHER), 0);
  EXPECT_EQ(run.out.Count(TAP_EV_SECRET), 0);
  EXPECT_EQ(run.out.Count(TAP_EV_SOCK_CLOSE), 0);
  const tap_conn_end* end = run.out.End();
  ASSERT_NE(end, nullptr);
  EXPECT_EQ(end->hdr.conn, conn);
  EXPECT_EQ(end->read_pos, c.sent[TAP_DIR_READ].size());
  EXPECT_EQ(end->write_pos, c.sent[TAP_DIR_WRITE].size());
  const StageStats& st = run.stage->stats();
  EXPECT_EQ(st.connections_decrypted, 1u);
  EXPECT_EQ(st.decrypt_failures, 0u);
  EXPECT_EQ(st.gaps, 0u);
  EXPECT_EQ(st.conn_ends, 1u);
  EXPECT_FALSE(run.stage->Decrypts(kTgid, conn));  // over
}

// --- suites -----------------------------------------------------------------------------------

struct SuiteCase {
  const char* label;
  Config config;
  const char* expect_cipher;  // OpenSSL's name of the negotiated suite
};

class Suites : public ::testing::TestWithParam<SuiteCase> {};

TEST_P(Suites, DecryptsBothDirectionsByteForByte) {
  const SuiteCase& sc = GetParam();
  Contexts ctx(sc.config);
  Capture cap;
  cap.chunk = 777;  // records split across socket calls
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  ASSERT_EQ(c.CipherName(), sc.expect_cipher);
  cap.Secrets(c.keylog);
  Exchange(c);
  c.Shutdown();
  cap.SockClose();
  ASSERT_TRUE(Same(c.received[TAP_DIR_READ], c.sent[TAP_DIR_READ]));

  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
  EXPECT_EQ(run.stage->stats().close_notify, 2u);
  EXPECT_EQ(run.stage->stats().etm_connections,
            std::string(sc.label).find("_EtM") != std::string::npos ? 1u : 0u);
}

Config V13(const char* suite) {
  Config c;
  c.version = TLS1_3_VERSION;
  c.suites13 = suite;
  return c;
}
Config V12(const char* ciphers, bool no_etm = false) {
  Config c;
  c.version = TLS1_2_VERSION;
  c.ciphers = ciphers;
  c.no_etm = no_etm;
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    All, Suites,
    ::testing::Values(
        SuiteCase{"TLS13_AES128GCM", V13("TLS_AES_128_GCM_SHA256"), "TLS_AES_128_GCM_SHA256"},
        SuiteCase{"TLS13_AES256GCM", V13("TLS_AES_256_GCM_SHA384"), "TLS_AES_256_GCM_SHA384"},
        SuiteCase{"TLS13_CHACHA20", V13("TLS_CHACHA20_POLY1305_SHA256"),
                  "TLS_CHACHA20_POLY1305_SHA256"},
        SuiteCase{"TLS12_AES128GCM", V12("ECDHE-RSA-AES128-GCM-SHA256"),
                  "ECDHE-RSA-AES128-GCM-SHA256"},
        SuiteCase{"TLS12_AES256GCM", V12("ECDHE-RSA-AES256-GCM-SHA384"),
                  "ECDHE-RSA-AES256-GCM-SHA384"},
        SuiteCase{"TLS12_CHACHA20", V12("ECDHE-RSA-CHACHA20-POLY1305"),
                  "ECDHE-RSA-CHACHA20-POLY1305"},
        SuiteCase{"TLS12_AES128SHA_EtM", V12("ECDHE-RSA-AES128-SHA"), "ECDHE-RSA-AES128-SHA"},
        SuiteCase{"TLS12_AES128SHA_MtE", V12("ECDHE-RSA-AES128-SHA", true), "ECDHE-RSA-AES128-SHA"},
        SuiteCase{"TLS12_AES256SHA384_EtM", V12("ECDHE-RSA-AES256-SHA384"),
                  "ECDHE-RSA-AES256-SHA384"},
        SuiteCase{"TLS12_AES256SHA384_MtE", V12("ECDHE-RSA-AES256-SHA384", true),
                  "ECDHE-RSA-AES256-SHA384"}),
    [](const ::testing::TestParamInfo<SuiteCase>& info) { return info.param.label; });

// --- connection life ------------------------------------------------------------------------

TEST(TlsStage, KeyUpdateBothDirections) {
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  Exchange(c, 1);
  ASSERT_EQ(SSL_key_update(c.client(), SSL_KEY_UPDATE_REQUESTED), 1);  // the server answers
  Exchange(c, 2);
  ASSERT_EQ(SSL_key_update(c.server(), SSL_KEY_UPDATE_NOT_REQUESTED), 1);
  Exchange(c, 2);
  ASSERT_EQ(SSL_key_update(c.server(), SSL_KEY_UPDATE_REQUESTED), 1);
  Exchange(c, 2);
  c.Shutdown();
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
  // client, server's answer, server, server and the client's answer
  EXPECT_EQ(run.stage->stats().key_updates, 5u);
}

void Resumption(const Config& config) {
  Contexts ctx(config);
  SSL_SESSION* session = nullptr;
  {
    Capture cap;
    Conn first(ctx, &cap);
    ASSERT_TRUE(first.Handshake());
    Exchange(first, 1);
    session = SSL_get1_session(first.client());
    first.Shutdown();
  }
  ASSERT_NE(session, nullptr);
  Capture cap;
  Conn c(ctx, &cap, session);
  ASSERT_TRUE(c.Handshake());
  SSL_SESSION_free(session);
  ASSERT_TRUE(c.Reused());
  cap.Secrets(c.keylog);
  Exchange(c);
  c.Shutdown();
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
}

TEST(TlsStage, Tls13Resumption) { Resumption(V13("TLS_AES_256_GCM_SHA384")); }
TEST(TlsStage, Tls12Resumption) { Resumption(V12("ECDHE-RSA-AES128-GCM-SHA256")); }

TEST(TlsStage, HelloRetryRequest) {
  Config config = V13("TLS_AES_128_GCM_SHA256");
  config.server_groups = "X25519";
  config.client_groups = "P-256:X25519";  // key share for P-256 only: the server asks again
  Contexts ctx(config);
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  static const unsigned char kHrr[] = {0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11};
  ASSERT_NE(cap.wire[TAP_DIR_WRITE].find(std::string(reinterpret_cast<const char*>(kHrr), 8)),
            std::string::npos)
      << "no HelloRetryRequest on the wire";
  cap.Secrets(c.keylog);
  Exchange(c);
  c.Shutdown();
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
  const StageStats& st = run.stage->stats();
  EXPECT_EQ(st.handshake_lost + st.not_tls_streams + st.malformed_records, 0u)
      << st.handshake_lost << " " << st.not_tls_streams << " " << st.malformed_records << " "
      << st.secrets_in << " " << st.handshake_records_skipped << " " << st.no_secrets;
}

// Secrets that come after all the data (held) or before the ClientHello (kept unmatched).
void SecretsMoved(const Config& config, bool to_front) {
  Contexts ctx(config);
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  Exchange(c);
  size_t before = cap.records.size();
  cap.Secrets(c.keylog);
  if (to_front) {
    std::rotate(cap.records.begin(), cap.records.begin() + static_cast<ptrdiff_t>(before),
                cap.records.end());
  }
  c.Shutdown();
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
}

TEST(TlsStage, Tls13SecretsAfterTheData) { SecretsMoved(V13("TLS_AES_128_GCM_SHA256"), false); }
TEST(TlsStage, Tls12SecretsAfterTheData) { SecretsMoved(V12("ECDHE-RSA-AES128-SHA"), false); }
TEST(TlsStage, Tls13SecretsBeforeTheClientHello) {
  SecretsMoved(V13("TLS_CHACHA20_POLY1305_SHA256"), true);
}
TEST(TlsStage, Tls12SecretsBeforeTheClientHello) {
  SecretsMoved(V12("ECDHE-RSA-AES256-GCM-SHA384"), true);
}

TEST(TlsStage, SecretsClosedBeforeTheyCame) {
  // The socket closes before the secrets arrive: the data is still decrypted, then ended.
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  Exchange(c);
  c.Shutdown();
  cap.SockClose();
  cap.Secrets(c.keylog);
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
}

// The secrets come when the server's handshake completes, i.e. when the client's Finished
// arrives: under a connect storm (10,000 clients, tests/e2e/test_soak.py) that is tens of
// seconds after the ClientHello. With the default wait the connection is still decrypted.
TEST(TlsStage, SecretsOfASlowHandshakeStillMatch) {
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.ts += 30'000'000'000;  // the client finished its handshake 30 s later
  cap.Secrets(c.keylog);
  Exchange(c);
  c.Shutdown();
  cap.SockClose();
  StageRun run;
  for (const Record& r : cap.records) {
    run.stage->OnRecord(r.data(), r.size());
    run.stage->Tick(reinterpret_cast<const tap_hdr*>(r.data())->ts_ns);  // a live auditor's Tick
  }
  ExpectDecrypted(run, c);
  EXPECT_EQ(run.stage->stats().no_secrets, 0u);
}

TEST(TlsStage, NoSecretsExpire) {
  Contexts ctx(V12("ECDHE-RSA-AES128-GCM-SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  Exchange(c);
  StageOptions o;
  o.secret_wait_ns = 1'000'000'000;
  StageRun run(o);
  run.Feed(cap.records);
  run.stage->Tick(cap.ts + 500'000'000);
  EXPECT_EQ(run.stage->stats().no_secrets, 0u);
  run.stage->Tick(cap.ts + 2'000'000'000);
  EXPECT_EQ(run.stage->stats().no_secrets, 1u);
  cap.records.clear();
  cap.Secrets(c.keylog);  // too late
  c.Send(TAP_DIR_READ, "GET / HTTP/1.1\r\n\r\n");
  cap.SockClose();
  run.Feed(cap.records);
  EXPECT_EQ(run.out.Count(TAP_EV_DATA), 0);
  EXPECT_EQ(run.out.Count(TAP_EV_CONN_END), 0);
  EXPECT_EQ(run.stage->stats().connections_decrypted, 0u);
  run.stage->Tick(cap.ts + 10'000'000'000);
  EXPECT_EQ(run.stage->stats().secrets_expired, 1u);
}

TEST(TlsStage, PendingCiphertextIsBounded) {
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  c.Send(TAP_DIR_READ, Pattern(100000, 3));
  StageOptions o;
  o.max_pending_bytes = 64 * 1024;
  StageRun run(o);
  cap.Secrets(c.keylog);
  run.Feed(cap.records);
  EXPECT_EQ(run.stage->stats().pending_overflow, 1u);
  EXPECT_EQ(run.out.Count(TAP_EV_DATA), 0);
}

TEST(TlsStage, OneMebibyteEachWay) {
  Contexts ctx(V13("TLS_AES_256_GCM_SHA384"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  c.Send(TAP_DIR_READ,
         "PUT /big HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n" + Pattern(1 << 20, 11));
  c.Send(TAP_DIR_WRITE,
         "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + Pattern(1 << 20, 12));
  c.Shutdown();
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
  EXPECT_GT(run.stage->stats().plaintext_records, 128u);
}

TEST(TlsStage, EndsOnFdCloseAndPassesItOn) {
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog, /*conn=*/0);  // no SSL* known: the socket names the connection
  Exchange(c, 1);
  cap.records.push_back(mat::testing::FdCloseRecord(kTgid, kFd, cap.ts));
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c, kSock);
  EXPECT_EQ(run.out.Count(TAP_EV_FD_CLOSE), 1);
}

TEST(TlsStage, PerCallDuplicatesOfADecryptedConnectionAreDropped) {
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  Exchange(c, 1);
  StageRun run;
  run.Feed(cap.records);
  EXPECT_TRUE(run.stage->Decrypts(kTgid, kSsl));
  EXPECT_FALSE(run.stage->Decrypts(kTgid, kSsl + 1));
  EXPECT_FALSE(run.stage->Decrypts(kTgid + 1, kSsl));
  size_t n = run.out.records.size();
  run.Feed({mat::testing::DataRecord(kTgid, kSsl, kFd, TAP_DIR_READ, 0, "GET / HTTP/1.1\r\n"),
            mat::testing::DataRecord(kTgid, kSsl + 1, kFd, TAP_DIR_READ, 0, "GET / HTTP/1.1\r\n"),
            mat::testing::SockRecord(kTgid, kFd, TAP_ROLE_SERVER, "10.0.0.1", 443)});
  EXPECT_EQ(run.stage->stats().plain_duplicates_dropped, 1u);
  ASSERT_EQ(run.out.records.size(), n + 2);  // the other connection's record and the socket
  EXPECT_EQ(reinterpret_cast<const tap_hdr*>(run.out.records[n].data())->conn, kSsl + 1);
  EXPECT_EQ(reinterpret_cast<const tap_hdr*>(run.out.records[n + 1].data())->type,
            uint32_t{TAP_EV_SOCK});
}

TEST(TlsStage, UndecryptableSuiteIsCountedByName) {
  Contexts ctx(V13("TLS_AES_128_CCM_SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  ASSERT_EQ(c.CipherName(), "TLS_AES_128_CCM_SHA256");
  cap.Secrets(c.keylog);
  Exchange(c);
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  EXPECT_EQ(run.stage->stats().undecryptable_suite, 1u);
  EXPECT_EQ(run.stage->stats().undecryptable_by_suite.at("TLS_AES_128_CCM_SHA256"), 1u);
  EXPECT_EQ(run.out.records.size(), 0u);
  EXPECT_FALSE(run.stage->Decrypts(kTgid, kSsl));
}

TEST(TlsStage, NotTlsAndMidConnectionStreamsAreDropped) {
  StageRun run;
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  auto p = reinterpret_cast<const unsigned char*>(http.data());
  Record a = CipherRecord(TAP_DIR_READ, 0, p, http.size(), 1);
  Record b = CipherRecord(TAP_DIR_READ, 5000, p, http.size(), 2);
  reinterpret_cast<tap_hdr*>(b.data())->conn = kSock + 64;
  run.Feed({a, a, b, b});
  EXPECT_EQ(run.stage->stats().not_tls_streams, 1u);
  EXPECT_EQ(run.stage->stats().no_handshake_seen, 1u);
  EXPECT_EQ(run.stage->stats().streams, 2u);
  EXPECT_EQ(run.out.records.size(), 0u);
}

// --- gaps ----------------------------------------------------------------------------------

class Gaps : public ::testing::TestWithParam<SuiteCase> {};

TEST_P(Gaps, ResyncsAfterLostCiphertext) {
  Contexts ctx(GetParam().config);
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  // 20 requests of one record each; the wire range of each is known.
  std::vector<std::pair<uint64_t, uint64_t>> range;
  std::vector<std::string> msg;
  for (int i = 0; i < 20; ++i) {
    msg.push_back("POST /r/" + std::to_string(i) + " " + Pattern(1000 + 13 * i, 100 + i));
    uint64_t from = cap.wire[TAP_DIR_READ].size();
    if (i == 5) {  // loses the rest of 5, 6 and 7 and the start of 8
      cap.drop_from = from + 100;
      cap.drop_to = UINT64_MAX;
    }
    if (i == 8) cap.drop_to = from + 40;
    c.Send(TAP_DIR_READ, msg.back());
    range.emplace_back(from, cap.wire[TAP_DIR_READ].size());
  }
  ASSERT_LT(cap.drop_from, cap.drop_to);
  c.Send(TAP_DIR_WRITE, "HTTP/1.1 200 OK\r\n\r\n");
  c.Shutdown();
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  std::vector<uint64_t> jumps;
  std::string got = run.out.Plain(kSsl, TAP_DIR_READ, &jumps);
  std::string before, after;
  for (int i = 0; i < 5; ++i) before += msg[i];
  for (int i = 9; i < 20; ++i) after += msg[i];
  EXPECT_TRUE(Same(got, before + after));
  ASSERT_EQ(jumps.size(), 1u);
  EXPECT_GT(jumps[0], before.size());
  EXPECT_TRUE(Same(run.out.Plain(kSsl, TAP_DIR_WRITE), c.sent[TAP_DIR_WRITE]));
  const StageStats& st = run.stage->stats();
  EXPECT_EQ(st.gaps, 1u);
  EXPECT_EQ(st.resyncs, 1u);
  EXPECT_EQ(st.resync_failures, 0u);
  ASSERT_NE(run.out.End(), nullptr);
  EXPECT_EQ(run.out.End()->read_pos, jumps[0] + after.size());
}

INSTANTIATE_TEST_SUITE_P(
    All, Gaps,
    ::testing::Values(SuiteCase{"TLS13_AES128GCM", V13("TLS_AES_128_GCM_SHA256"), ""},
                      SuiteCase{"TLS13_CHACHA20", V13("TLS_CHACHA20_POLY1305_SHA256"), ""},
                      SuiteCase{"TLS12_AES256GCM", V12("ECDHE-RSA-AES256-GCM-SHA384"), ""},
                      SuiteCase{"TLS12_CHACHA20", V12("ECDHE-RSA-CHACHA20-POLY1305"), ""},
                      SuiteCase{"TLS12_AES128SHA_EtM", V12("ECDHE-RSA-AES128-SHA"), ""},
                      SuiteCase{"TLS12_AES128SHA_MtE", V12("ECDHE-RSA-AES128-SHA", true), ""}),
    [](const ::testing::TestParamInfo<SuiteCase>& info) { return info.param.label; });

// --- hostile input ------------------------------------------------------------------------

TEST(TlsStage, GarbageNeverCrashes) {
  std::mt19937 g(12345);
  StageOptions o;
  o.max_connections = 64;
  StageRun run(o);
  std::vector<unsigned char> buf(sizeof(tap_data));
  for (int i = 0; i < 20000; ++i) {
    size_t n = g() % buf.size();
    for (size_t k = 0; k < n; ++k) buf[k] = static_cast<unsigned char>(g());
    if (n >= sizeof(tap_hdr)) {
      tap_hdr* h = reinterpret_cast<tap_hdr*>(buf.data());
      h->type = 1 + g() % 9;
      h->tgid = g() % 3;
      h->conn = g() % 8;
      h->fd = static_cast<int32_t>(g() % 4);
      if ((h->type == TAP_EV_CIPHER || h->type == TAP_EV_DATA) && n >= TAP_DATA_HDR_BYTES) {
        tap_data* d = reinterpret_cast<tap_data*>(buf.data());
        d->len = static_cast<uint32_t>(n - TAP_DATA_HDR_BYTES);
        d->offset = 0;
        d->call_len = d->len;
        d->dir = g() % 2;
        d->pos = g() % 3 == 0 ? 0 : g() % 100000;
        if (g() % 2 && d->len >= 6) {  // a record header that looks right
          d->data[0] = 22;
          d->data[1] = 3;
          d->data[2] = 1;
          d->data[5] = 1;
        }
      }
      if (h->type == TAP_EV_SECRET && n >= sizeof(tap_secret)) {
        tap_secret* s = reinterpret_cast<tap_secret*>(buf.data());
        s->len = g() % 65;
        s->label = 1 + g() % 5;
      }
    }
    run.stage->OnRecord(buf.data(), n);
    if (i % 1000 == 0) run.stage->Tick(g());
  }
  EXPECT_EQ(run.out.Count(TAP_EV_CIPHER), 0);
  EXPECT_EQ(run.out.Count(TAP_EV_SECRET), 0);
  EXPECT_LE(run.stage->stats().streams, 20000u);
}

TEST(TlsStage, MangledRealConnectionsNeverCrash) {
  std::mt19937 g(777);
  for (const Config& config : {V13("TLS_AES_128_GCM_SHA256"), V12("ECDHE-RSA-AES128-SHA"),
                               V12("ECDHE-RSA-AES128-GCM-SHA256")}) {
    Contexts ctx(config);
    Capture cap;
    cap.chunk = 333;
    Conn c(ctx, &cap);
    ASSERT_TRUE(c.Handshake());
    cap.Secrets(c.keylog);
    Exchange(c, 4);
    c.Shutdown();
    cap.SockClose();
    for (int round = 0; round < 300; ++round) {
      StageRun run;
      for (Record r : cap.records) {
        int what = g() % 20;
        if (what == 0) continue;  // lost
        if (what == 1 && r.size() > 60) r[56 + g() % (r.size() - 56)] ^= 1 << (g() % 8);
        if (what == 2 && r.size() > 60) {  // shorter payload
          tap_data* d = reinterpret_cast<tap_data*>(r.data());
          if (d->hdr.type == TAP_EV_CIPHER) {
            d->len = d->len / 2;
            d->call_len = d->len;
            r.resize(TAP_DATA_HDR_BYTES + d->len);
          }
        }
        if (what == 3) {
          tap_data* d = reinterpret_cast<tap_data*>(r.data());
          if (d->hdr.type == TAP_EV_CIPHER) d->pos += g() % 5000;
        }
        run.stage->OnRecord(r.data(), r.size());
        if (what == 4) run.stage->OnRecord(r.data(), r.size());  // twice
      }
      run.stage->Tick(cap.ts + 100'000'000'000);
      EXPECT_EQ(run.out.Count(TAP_EV_CIPHER), 0);
      EXPECT_EQ(run.out.Count(TAP_EV_SECRET), 0);
    }
  }
}

TEST(TlsStage, HandshakeMessagesSpanRecordsAndSocketCalls) {
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  SSL_CTX_set_max_send_fragment(ctx.client, 512);  // the ClientHello spans records
  std::string alpn;
  for (int i = 0; i < 60; ++i) alpn += std::string(1, char(14)) + "proto-" + Pattern(8, i);
  ASSERT_EQ(SSL_CTX_set_alpn_protos(ctx.client, reinterpret_cast<const unsigned char*>(alpn.data()),
                                    static_cast<unsigned>(alpn.size())),
            0);
  Capture cap;
  cap.chunk = 1;  // every byte its own socket call
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  ASSERT_GT(cap.wire[TAP_DIR_READ].size(), 1200u);
  cap.Secrets(c.keylog);
  cap.chunk = 5;
  Exchange(c, 2);
  c.Shutdown();
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
}

TEST(TlsStage, WrongTls13KeysAreGivenUp) {
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture other_cap;
  Conn other(ctx, &other_cap);
  ASSERT_TRUE(other.Handshake());
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  // The right client random with another connection's secrets.
  std::vector<std::string> keylog = other.keylog;
  const std::string random = c.keylog[0].substr(c.keylog[0].find(' ') + 1, 64);
  for (std::string& line : keylog) line.replace(line.find(' ') + 1, 64, random);
  cap.Secrets(keylog);
  for (int i = 0; i < 80; ++i) Exchange(c, 1);
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  EXPECT_EQ(run.out.Count(TAP_EV_DATA), 0);
  EXPECT_EQ(run.stage->stats().wrong_keys, 2u);
  EXPECT_EQ(run.stage->stats().records_decrypted, 0u);
}

TEST(TlsStage, FullTableEvictsDroppedStreamsFirst) {
  StageOptions o = StageRun::NoGrace();
  o.max_connections = 2;
  StageRun run(o);
  const std::string http = "GET / HTTP/1.1\r\n\r\n";
  auto p = reinterpret_cast<const unsigned char*>(http.data());
  for (uint64_t i = 1; i <= 2; ++i) {
    Record r = CipherRecord(TAP_DIR_READ, 0, p, http.size(), 1);
    reinterpret_cast<tap_hdr*>(r.data())->conn = kSock + 64 * i;
    reinterpret_cast<tap_hdr*>(r.data())->fd = 100 + static_cast<int32_t>(i);
    run.Feed({r});
  }
  EXPECT_EQ(run.stage->stats().not_tls_streams, 2u);
  Contexts ctx(V12("ECDHE-RSA-AES128-GCM-SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  Exchange(c);
  c.Shutdown();
  cap.SockClose();
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
  EXPECT_EQ(run.stage->stats().streams_evicted, 1u);
  EXPECT_EQ(run.stage->stats().streams_over_limit, 0u);

  // Two live, recent streams fill the table: a third is refused and counted.
  o.max_connections = 1;
  StageRun full(o);
  Capture cap2;
  Conn c2(ctx, &cap2);
  ASSERT_TRUE(c2.Handshake());
  full.Feed(cap2.records);
  Record r = CipherRecord(TAP_DIR_READ, 0, p, http.size(), cap2.ts);
  reinterpret_cast<tap_hdr*>(r.data())->conn = kSock + 4096;
  full.Feed({r});
  EXPECT_EQ(full.stage->stats().streams_over_limit, 1u);
  EXPECT_EQ(full.stage->stats().streams_evicted, 0u);
}

TEST(TlsStage, AReusedFdEndsTheOldStream) {
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  Exchange(c, 1);
  // The fd's close was not seen; a new socket comes with the same fd.
  const std::string hello = "\x16\x03\x01";
  Record r = CipherRecord(TAP_DIR_READ, 0, reinterpret_cast<const unsigned char*>(hello.data()),
                          hello.size(), cap.ts);
  reinterpret_cast<tap_hdr*>(r.data())->conn = kSock + 64;
  cap.records.push_back(r);
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
  EXPECT_EQ(run.stage->stats().streams_replaced, 1u);
}

TEST(TlsStage, TheLibrarysConnectionEndIsReplacedByOursWithThePlaintextPositions) {
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  Exchange(c, 2);
  // SSL_free in keys capture: the kernel knows no positions.
  cap.records.push_back(mat::testing::ConnEndRecord(kTgid, kSsl, kFd, 0, 0));
  cap.SockClose();  // later, when TCP reaches CLOSE
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
  EXPECT_EQ(run.out.Count(TAP_EV_CONN_END), 1);
}

TEST(TlsStage, AReusedConnectionIdEndsTheOldConnectionFirst) {
  // The library frees a connection object and the next connection gets the same address
  // before the old socket has closed: two streams, one id. The old one must end before the
  // new one's plaintext goes out under that id.
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture a, b;
  Conn ca(ctx, &a), cb(ctx, &b);
  ASSERT_TRUE(ca.Handshake());
  a.Secrets(ca.keylog);
  Exchange(ca, 1);
  ASSERT_TRUE(cb.Handshake());
  b.Secrets(cb.keylog);  // the same kSsl
  Exchange(cb, 1);
  for (Record& r : b.records) {
    auto* h = reinterpret_cast<tap_hdr*>(r.data());
    if (h->type != TAP_EV_CIPHER) continue;
    h->conn = kSock + 64;
    h->fd = kFd + 1;
  }
  StageRun run;
  run.Feed(a.records);
  run.Feed(b.records);
  run.Feed({HeaderRecord(TAP_EV_SOCK_CLOSE, kSock, kFd, b.ts)});  // the old socket, late
  EXPECT_EQ(run.stage->stats().connections_decrypted, 2u);
  ASSERT_EQ(run.out.Count(TAP_EV_CONN_END), 1);
  bool ended = false;
  uint64_t first_read = 0;
  for (const Record& r : run.out.records) {
    const auto* h = reinterpret_cast<const tap_hdr*>(r.data());
    if (h->type == TAP_EV_CONN_END) {
      const auto* e = reinterpret_cast<const tap_conn_end*>(r.data());
      EXPECT_EQ(e->hdr.fd, kFd);
      EXPECT_EQ(e->read_pos, ca.sent[TAP_DIR_READ].size());
      EXPECT_EQ(e->write_pos, ca.sent[TAP_DIR_WRITE].size());
      ended = true;
    }
    if (h->type == TAP_EV_DATA && h->fd == kFd + 1) {
      EXPECT_TRUE(ended) << "the new connection's plaintext came before the old one's end";
      const auto* d = reinterpret_cast<const tap_data*>(r.data());
      if (d->dir == TAP_DIR_READ && first_read == 0) first_read = d->pos + 1;
    }
  }
  EXPECT_EQ(first_read, 1u) << "the new connection's plaintext starts at 0";
  EXPECT_TRUE(run.stage->Decrypts(kTgid, kSsl));
}

TEST(TlsStage, BytesReadAfterTheSocketClosedAreStillDecrypted) {
  // A client sends its request and resets the connection: TCP_CLOSE comes first, then the
  // server reads the request that had arrived before the reset, and serves it.
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  std::vector<Record> before = cap.records;
  cap.records.clear();
  c.Send(TAP_DIR_READ, "GET /after-reset HTTP/1.1\r\nHost: x\r\n\r\n");
  std::vector<Record> request = cap.records;
  StageOptions o;  // the default grace
  StageRun run(o);
  run.Feed(before);
  run.Feed({HeaderRecord(TAP_EV_SOCK_CLOSE, kSock, kFd, cap.ts)});
  run.Feed(request);
  EXPECT_EQ(run.out.Count(TAP_EV_CONN_END), 0) << "ended before the grace was over";
  run.stage->Tick(cap.ts + o.close_grace_ns / 2);
  EXPECT_EQ(run.out.Count(TAP_EV_CONN_END), 0);
  run.stage->Tick(cap.ts + o.close_grace_ns + 1);
  EXPECT_EQ(run.out.Count(TAP_EV_CONN_END), 1);
  EXPECT_TRUE(Same(run.out.Plain(kSsl, TAP_DIR_READ), c.sent[TAP_DIR_READ]));
  const tap_conn_end* end = run.out.End();
  ASSERT_NE(end, nullptr);
  EXPECT_EQ(end->read_pos, c.sent[TAP_DIR_READ].size());
}

TEST(TlsStage, AKernelRestartOfTheSocketsPositionsIsRebased) {
  // The kernel's LRU map lost the socket's entry: its next bytes come from position 0 again,
  // announced by a TAP_EV_SOCK. Nothing was lost in between.
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  Exchange(c, 1);
  std::vector<Record> first = cap.records;
  uint64_t base[2] = {cap.wire[0].size(), cap.wire[1].size()};
  cap.records.clear();
  Exchange(c, 2);
  cap.SockClose();
  for (Record& r : cap.records) {
    auto* h = reinterpret_cast<tap_hdr*>(r.data());
    if (h->type != TAP_EV_CIPHER) continue;
    auto* d = reinterpret_cast<tap_data*>(r.data());
    d->pos -= base[d->dir];
  }
  tap_sock sock{};
  sock.hdr = {TAP_EV_SOCK, kTgid, kTgid, kFd, cap.ts, kSock};
  StageRun run;
  run.Feed(first);
  run.Feed({mat::testing::AsRecord(sock)});
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
  EXPECT_EQ(run.stage->stats().socket_restarts, 1u);
  EXPECT_EQ(run.out.Count(TAP_EV_SOCK), 1);  // passed on
}

TEST(TlsStage, AWarningAlertBeforeTheClientHelloIsSkippedAsServersDo) {
  Contexts ctx(V13("TLS_AES_128_GCM_SHA256"));
  Capture cap;
  const std::string alert("\x15\x03\x01\x00\x02\x01\x00", 7);  // warning close_notify
  cap.wire[TAP_DIR_READ] = alert;  // positions of the real bytes start after it
  cap.records.push_back(CipherRecord(
      TAP_DIR_READ, 0, reinterpret_cast<const unsigned char*>(alert.data()), alert.size(), cap.ts));
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  Exchange(c, 1);
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
  EXPECT_EQ(run.stage->stats().not_tls_streams, 0u);
}

TEST(SecurePool, SlotsAreLeftOutOfCoreDumpsAndWipedOnFree) {
  SecurePool pool(200);
  auto* a = static_cast<unsigned char*>(pool.Alloc());
  auto* b = static_cast<unsigned char*>(pool.Alloc());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_GE(static_cast<size_t>(std::abs(a - b)), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(a[i], 0);
  std::memset(a, 0xAB, 200);
  // The mapping that holds the slot carries VmFlags "dd" (MADV_DONTDUMP).
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false, found = false;
  auto addr = reinterpret_cast<uintptr_t>(a);
  while (std::getline(smaps, line)) {
    unsigned long lo, hi;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > 8) {
      inside = lo <= addr && addr < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) {
      found = true;
      EXPECT_NE((line + " ").find(" dd "), std::string::npos) << line;
    }
  }
  EXPECT_TRUE(found);
  pool.Free(a);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(a[i], 0) << "not wiped at " << i;
  EXPECT_EQ(pool.Alloc(), a);  // reused
  EXPECT_EQ(pool.in_use(), 2u);
}

TEST(TlsStage, EndsOnASocketCloseSeenFromAnotherTask) {
  Contexts ctx(V12("ECDHE-RSA-CHACHA20-POLY1305"));
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  Exchange(c, 2);
  Record close = HeaderRecord(TAP_EV_SOCK_CLOSE, kSock, kFd, cap.ts);
  reinterpret_cast<tap_hdr*>(close.data())->tgid = 0;  // softirq: no task of the target
  cap.records.push_back(close);
  StageRun run;
  run.Feed(cap.records);
  ExpectDecrypted(run, c);
}

// n_before messages, n_lost messages whose ciphertext is lost (after a KeyUpdate, if asked, that
// is lost too), n_after messages; each message one record of about `size` bytes.
void LoseRecords(const Config& config, int n_before, int n_lost, int n_after, size_t size,
                 bool key_update_lost) {
  SCOPED_TRACE(config.version == TLS1_3_VERSION ? config.suites13 : config.ciphers);
  Contexts ctx(config);
  Capture cap;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  std::string before, after;
  for (int i = 0; i < n_before; ++i) {
    std::string m = Pattern(size, i);
    c.Send(TAP_DIR_READ, m);
    before += m;
  }
  cap.drop_from = cap.wire[TAP_DIR_READ].size() + 3;
  cap.drop_to = UINT64_MAX;
  if (key_update_lost) {
    ASSERT_EQ(SSL_key_update(c.client(), SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    ASSERT_EQ(SSL_do_handshake(c.client()), 1);  // sends it now
    c.Pump();
  }
  for (int i = 0; i < n_lost; ++i) c.Send(TAP_DIR_READ, Pattern(size, 1000 + i));
  cap.drop_to = cap.wire[TAP_DIR_READ].size() + 7;  // and the start of the next record
  c.Send(TAP_DIR_READ, Pattern(size, 5000));
  for (int i = 0; i < n_after; ++i) {
    std::string m = Pattern(size, 9000 + i);
    c.Send(TAP_DIR_READ, m);
    after += m;
  }
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  std::vector<uint64_t> jumps;
  EXPECT_TRUE(Same(run.out.Plain(kSsl, TAP_DIR_READ, &jumps), before + after));
  EXPECT_EQ(jumps.size(), 1u);
  const StageStats& st = run.stage->stats();
  EXPECT_EQ(st.gaps, 1u);
  EXPECT_EQ(st.resyncs, 1u);
  EXPECT_EQ(st.resync_failures, 0u);
  EXPECT_EQ(st.key_updates, key_update_lost ? 1u : 0u);
}

TEST(TlsStage, ResyncsAfterThousandsOfSmallRecordsLost) {
  LoseRecords(V13("TLS_AES_128_GCM_SHA256"), 20, 3000, 20, 24, false);
  LoseRecords(V12("ECDHE-RSA-CHACHA20-POLY1305"), 20, 3000, 20, 24, false);
  LoseRecords(V12("ECDHE-RSA-AES128-SHA", true), 20, 3000, 20, 24, false);
}

TEST(TlsStage, ResyncsAcrossALostKeyUpdate) {
  LoseRecords(V13("TLS_AES_128_GCM_SHA256"), 10, 30, 10, 300, true);
  LoseRecords(V13("TLS_CHACHA20_POLY1305_SHA256"), 10, 0, 10, 300, true);
}

TEST(TlsStage, GoSourcedSecretsOfTheirOwnLength) {
  constexpr uint64_t kGoConn = 0xc000123400ull;
  for (const Config& config : {V13("TLS_AES_128_GCM_SHA256"), V13("TLS_AES_256_GCM_SHA384"),
                               V12("ECDHE-RSA-AES256-GCM-SHA384")}) {
    Contexts ctx(config);
    Capture cap;
    Conn c(ctx, &cap);
    ASSERT_TRUE(c.Handshake());
    cap.GoSecrets(c.keylog, kGoConn);
    Exchange(c);
    c.Shutdown();
    cap.SockClose();
    StageRun run;
    run.Feed(cap.records);
    ExpectDecrypted(run, c, kGoConn);
  }
}

TEST(TlsStage, TargetAsTheClient) {
  Contexts ctx(V13("TLS_CHACHA20_POLY1305_SHA256"));
  Capture cap;
  cap.client_view = true;
  Conn c(ctx, &cap);
  ASSERT_TRUE(c.Handshake());
  cap.Secrets(c.keylog);
  Exchange(c);
  c.Shutdown();
  cap.SockClose();
  StageRun run;
  run.Feed(cap.records);
  EXPECT_TRUE(Same(run.out.Plain(kSsl, TAP_DIR_WRITE), c.sent[TAP_DIR_READ]));
  EXPECT_TRUE(Same(run.out.Plain(kSsl, TAP_DIR_READ), c.sent[TAP_DIR_WRITE]));
  ASSERT_NE(run.out.End(), nullptr);
  EXPECT_EQ(run.out.End()->write_pos, c.sent[TAP_DIR_READ].size());
  EXPECT_EQ(run.stage->stats().connections_decrypted, 1u);
}

// Not a check: how fast the stage turns ciphertext into plaintext records on this machine.
// Run with --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'.
TEST(TlsStage, DISABLED_Throughput) {
  for (const Config& config : {V13("TLS_AES_128_GCM_SHA256"), V13("TLS_CHACHA20_POLY1305_SHA256"),
                               V12("ECDHE-RSA-AES128-GCM-SHA256"), V12("ECDHE-RSA-AES128-SHA")}) {
    Contexts ctx(config);
    Capture cap;
    Conn c(ctx, &cap);
    ASSERT_TRUE(c.Handshake());
    cap.Secrets(c.keylog);
    c.Send(TAP_DIR_READ, Pattern(16 << 20, 1));
    for (int i = 0; i < 2000; ++i) Exchange(c, 1);
    size_t bytes = 0;
    for (const Record& r : cap.records) bytes += r.size();
    uint64_t plain = 0;
    DecryptStage stage([&](const void*, size_t n) { plain += n; });
    auto t0 = std::chrono::steady_clock::now();
    for (const Record& r : cap.records) stage.OnRecord(r.data(), r.size());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-32s %zu records, %.1f MiB in %.3f s: %.0f MiB/s, %.2f us/record\n",
                SSL_CIPHER_get_name(SSL_get_current_cipher(c.server())), cap.records.size(),
                bytes / 1048576.0, s, bytes / 1048576.0 / s, s * 1e6 / cap.records.size());
    EXPECT_EQ(stage.stats().decrypt_failures, 0u);
  }
}

}  // namespace
}  // namespace mat::tls

namespace mat::tls {
namespace {

// Recordings of whole TLS sessions (socket, handshake, secrets, HTTP/1.1 exchanges, close) as
// --record writes them read back through the stage: the seeds of tests/fuzz/replay_fuzz. With
// MAT_FUZZ_SEED_DIR set, they are also written there (tests/fuzz/corpus/replay holds them; the
// secrets are those of a throwaway in-process handshake). The clock offset's low bits choose
// the fuzzer's configuration (see replay_fuzz.cpp): each seed a different one.
TEST(TlsStage, RecordedSessionsReplayThroughTheStage) {
  struct Seed {
    const char* name;
    Config config;
  };
  const Seed seeds[] = {{"tls13-aes128gcm", V13("TLS_AES_128_GCM_SHA256")},
                        {"tls13-chacha20", V13("TLS_CHACHA20_POLY1305_SHA256")},
                        {"tls12-aes256gcm", V12("ECDHE-RSA-AES256-GCM-SHA384")},
                        {"tls12-aes128cbc", V12("ECDHE-RSA-AES128-SHA")}};
  const char* seed_dir = std::getenv("MAT_FUZZ_SEED_DIR");
  int index = 0;
  for (const Seed& seed : seeds) {
    SCOPED_TRACE(seed.name);
    Contexts ctx(seed.config);
    Capture cap;
    cap.records.push_back(
        mat::testing::SockRecord(kTgid, kFd, TAP_ROLE_SERVER, "10.0.0.2", 40000, cap.ts, kTgid));
    Conn c(ctx, &cap);
    ASSERT_TRUE(c.Handshake());
    cap.Secrets(c.keylog);
    c.Send(TAP_DIR_READ,
           "GET /api/v1/namespaces/default/pods?limit=5 HTTP/1.1\r\nHost: x\r\n"
           "Authorization: Basic ZnV6ejpub3QtYS1zZWNyZXQ=\r\nUser-Agent: kubectl/v1.30\r\n\r\n");
    c.Send(TAP_DIR_WRITE,
           "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
           "{\"kind\":\"List\"}\r\n");
    c.Send(TAP_DIR_READ,
           "POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Transfer-Encoding: chunked\r\n\r\n7\r\n{\"a\":1}\r\n0\r\n\r\n");
    c.Send(TAP_DIR_WRITE, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}");
    c.Shutdown();
    cap.SockClose();

    const std::string path = ::testing::TempDir() + "/" + seed.name + ".rec";
    capture::ClockMap clock;
    clock.mono_to_wall_ns = 1'700'000'000'000'000'000 + index++;
    {
      capture::Recorder recorder;
      ASSERT_EQ(ErrorOf(recorder.Open(path, clock)), "");
      for (const Record& r : cap.records)
        recorder.Append(r.data(), static_cast<uint32_t>(r.size()));
    }
    StageRun run;
    capture::ReplayStats stats;
    capture::ClockMap read_clock;
    ASSERT_EQ(ErrorOf(capture::ReadRecording(
                  path, &read_clock, [&](const void* p, uint32_t n) { run.stage->OnRecord(p, n); },
                  &stats)),
              "");
    EXPECT_EQ(read_clock.mono_to_wall_ns, clock.mono_to_wall_ns);
    EXPECT_EQ(stats.records, cap.records.size());
    EXPECT_EQ(stats.bad_records, 0u);
    EXPECT_TRUE(Same(run.out.Plain(kSsl, TAP_DIR_READ), c.sent[TAP_DIR_READ]));
    EXPECT_TRUE(Same(run.out.Plain(kSsl, TAP_DIR_WRITE), c.sent[TAP_DIR_WRITE]));
    EXPECT_EQ(run.stage->stats().connections_decrypted, 1u);
    if (seed_dir != nullptr)
      std::filesystem::copy_file(path, std::string(seed_dir) + "/" + seed.name + ".rec",
                                 std::filesystem::copy_options::overwrite_existing);
    std::filesystem::remove(path);
  }
}

// The one table of the stage's counters (kStageCounters): each name once, each member once, each
// warning counter a loss; the log line, /metrics and the loss notices read it.
TEST(StageCounters, EachCounterOnceAndEveryWarningALoss) {
  std::set<std::string> names;
  std::vector<uint64_t StageStats::*> members;  // (member pointers have no order)
  StageStats s;
  uint64_t n = 0;
  for (const StageCounter& c : kStageCounters) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name;
    EXPECT_EQ(std::find(members.begin(), members.end(), c.member), members.end()) << c.name;
    members.push_back(c.member);
    EXPECT_NE(c.flags & (kStageShown | kStageLoss), 0u) << c.name;
    if (c.flags & kStageWarns) {
      EXPECT_NE(c.flags & kStageLoss, 0u) << c.name;
    }
    s.*c.member = ++n;
  }
  n = 0;
  size_t shown = 0;
  for (const auto& [name, value] : StageCounterValues(s, kStageShown)) {
    while (!(kStageCounters[n].flags & kStageShown)) ++n;
    EXPECT_STREQ(name, kStageCounters[n].name);
    EXPECT_EQ(value, ++n);
    ++shown;
  }
  EXPECT_EQ(shown, 24u);
  EXPECT_EQ(StageCounterValues(s, kStageLoss).size(), 13u);
  EXPECT_EQ(StageCounterValues(s, kStageWarns).size(), 10u);
  EXPECT_EQ(StageCounterValues(s, kStageLoss).front().first, std::string("no_secrets"));
}

}  // namespace
}  // namespace mat::tls
