// Go handshake secrets from the kernel (needs root and Debian's golang-go): the e2e Go HTTPS
// server (tests/e2e/go_https_server, built stripped, so its functions come from pclntab) runs as
// a keys target; this test is its TLS client (OpenSSL, keylog callback kept in memory) and checks
// that the TAP_EV_SECRET records from (*Config).writeKeyLog equal the client's keylog, label by
// label, for TLS 1.3 and TLS 1.2, each tied to the server's *tls.Conn. No check prints a secret.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tap/bpf_tap.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace {

using mat::testing::ErrorOf;

using Bytes = std::vector<uint8_t>;

struct Logged {
  Bytes client_random, secret;
};
std::map<std::string, Logged>* g_keylog;

Bytes FromHex(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

void KeyLog(const SSL*, const char* line) {
  std::string s(line);
  size_t a = s.find(' '), b = s.find(' ', a + 1);
  if (a != std::string::npos && b != std::string::npos)
    (*g_keylog)[s.substr(0, a)] = {FromHex(s.substr(a + 1, b - a - 1)), FromHex(s.substr(b + 1))};
  OPENSSL_cleanse(s.data(), s.size());
}

class GoSecretsTapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (BPF)";
    if (access("/usr/bin/go", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/go";
    char tmpl[] = "/tmp/go_secrets_tap_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const char* sub : {"home", "cache", "gopath"}) fs::create_directories(dir_ / sub);
    std::string env = "env HOME='" + (dir_ / "home").string() + "' GOCACHE='" +
                      (dir_ / "cache").string() + "' GOPATH='" + (dir_ / "gopath").string() +
                      "' GOPROXY=off GOFLAGS=-mod=mod GO111MODULE=on GOWORK=off GOENV=off "
                      "GOTOOLCHAIN=local GOTELEMETRY=off CGO_ENABLED=0 ";
    std::string output;
    ASSERT_EQ(mat::testing::RunCommand("cd '" + std::string(MAT_GO_SERVER_DIR) + "' && " + env +
                                           "go build -ldflags='-s -w' -o '" +
                                           (dir_ / "server").string() + "' .",
                                       &output),
              0)
        << output;
    ASSERT_TRUE(mat::testing::WriteSelfSignedPem(dir_));
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    server_ = fork();
    if (server_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      execl((dir_ / "server").c_str(), "mat-go-secrets", "127.0.0.1:0", (dir_ / "cert.pem").c_str(),
            (dir_ / "key.pem").c_str(), nullptr);
      _exit(127);
    }
    close(out[1]);
    std::string line;
    char ch;
    while (read(out[0], &ch, 1) == 1 && ch != '\n') line += ch;
    close(out[0]);
    ASSERT_EQ(line.rfind("listening ", 0), 0u) << line;
    port_ = static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
    g_keylog = &keylog_;
  }
  void TearDown() override {
    if (server_ > 0) {
      kill(server_, SIGKILL);
      waitpid(server_, nullptr, 0);
    }
    for (auto& [label, v] : keylog_) OPENSSL_cleanse(v.secret.data(), v.secret.size());
    for (tap_secret& s : secrets_) OPENSSL_cleanse(&s, sizeof(s));
    g_keylog = nullptr;
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // One HTTPS request to the server with the highest TLS version max_version.
  bool Request(int max_version) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL_CTX_set_keylog_callback(ctx, KeyLog);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    ok = ok && SSL_connect(ssl) == 1;
    const char req[] = "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    ok = ok && SSL_write(ssl, req, sizeof(req) - 1) == int(sizeof(req) - 1);
    char buf[4096];
    ok = ok && SSL_read(ssl, buf, sizeof(buf)) > 0;
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    return ok;
  }

  void Drain() {
    while (tap_->Consume() > 0) {
    }
  }

  // The one record with this label whose client random is the connection's.
  void ExpectLogged(uint32_t label, const std::string& keylog_label) {
    SCOPED_TRACE(keylog_label);
    auto it = keylog_.find(keylog_label);
    ASSERT_NE(it, keylog_.end()) << "the client logged no such secret";
    const Logged& logged = it->second;
    ASSERT_EQ(logged.client_random.size(), 32u);
    const tap_secret* rec = nullptr;
    int matches = 0;
    for (const tap_secret& s : secrets_)
      if (s.label == label && std::memcmp(s.client_random, logged.client_random.data(), 32) == 0) {
        rec = &s;
        ++matches;
      }
    ASSERT_EQ(matches, 1);
    EXPECT_EQ(rec->source, TAP_SECRET_FROM_GO);
    EXPECT_EQ(rec->hdr.tgid, uint32_t(server_));
    EXPECT_NE(rec->hdr.conn, 0u) << "not tied to the server's *tls.Conn";
    ASSERT_EQ(rec->len, logged.secret.size());
    EXPECT_TRUE(std::memcmp(rec->secret, logged.secret.data(), rec->len) == 0)
        << "secret differs from the client's keylog";
  }

  fs::path dir_;
  pid_t server_ = -1;
  uint16_t port_ = 0;
  std::map<std::string, Logged> keylog_;
  std::vector<tap_secret> secrets_;
  std::unique_ptr<mat::tap::BpfTap> tap_;
};

TEST_F(GoSecretsTapTest, WriteKeyLogSecretsEqualTheClientsKeyLog) {
  auto tap =
      mat::tap::BpfTap::Create(mat::tap::TapOptions{}, [this](const void* data, size_t size) {
        tap_hdr h;
        std::memcpy(&h, data, sizeof(h));
        if (h.type == TAP_EV_SECRET && size == sizeof(tap_secret)) {
          secrets_.emplace_back();
          std::memcpy(&secrets_.back(), data, sizeof(tap_secret));
        }
      });
  ASSERT_TRUE(tap) << tap.error();
  tap_ = std::move(*tap);
  mat::tap::TargetOptions options;
  options.mode = mat::tap::CaptureMode::kKeys;
  ASSERT_EQ(ErrorOf(tap_->AddTarget({server_, "mat-go-secrets", 0}, options)), "");

  ASSERT_TRUE(Request(TLS1_3_VERSION));
  Drain();
  ExpectLogged(TAP_SECRET_CLIENT_HANDSHAKE, "CLIENT_HANDSHAKE_TRAFFIC_SECRET");
  ExpectLogged(TAP_SECRET_SERVER_HANDSHAKE, "SERVER_HANDSHAKE_TRAFFIC_SECRET");
  ExpectLogged(TAP_SECRET_CLIENT_TRAFFIC_0, "CLIENT_TRAFFIC_SECRET_0");
  ExpectLogged(TAP_SECRET_SERVER_TRAFFIC_0, "SERVER_TRAFFIC_SECRET_0");
  // One connection: every secret names the same *tls.Conn.
  for (const tap_secret& s : secrets_) EXPECT_EQ(s.hdr.conn, secrets_.front().hdr.conn);
  EXPECT_EQ(secrets_.size(), 4u);

  keylog_.clear();
  secrets_.clear();
  ASSERT_TRUE(Request(TLS1_2_VERSION));
  Drain();
  ExpectLogged(TAP_SECRET_MASTER, "CLIENT_RANDOM");
  EXPECT_EQ(secrets_.size(), 1u);
  EXPECT_EQ(tap_->ReadCounters()[TAP_CNT_SECRET_FAULTS], 0u);
}

}  // namespace
