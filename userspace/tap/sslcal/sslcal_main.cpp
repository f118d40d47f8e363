// mke-audit-tap-sslcal: finds where one libssl build keeps a connection's TLS secrets in its
// private structures (struct tap_ssl_layout), by running handshakes with that very library.
//
//   mke-audit-tap-sslcal --libcrypto PATH --libssl PATH
//
// PATH may be /proc/PID/map_files/RANGE: how the auditor opens a target's own mapped library
// whatever the target's mount namespace. The helper links no OpenSSL (the headers give types and
// constants only): a process that already has a libssl.so.3 would be handed that one back by
// dlopen, matched by SONAME. It opens both files (as root if it is root), then drops to nobody
// (the target's library code runs in this process), loads libcrypto then libssl (whose DT_NEEDED
// libcrypto then resolves, by SONAME, to the one just loaded), runs a TLS 1.3 and a TLS 1.2
// handshake in memory (client and server both from that library, over a BIO pair, with a key log
// callback) and searches the SSL and SSL_SESSION objects for what the handshakes logged.
//
// Success: one line on stdout, exit 0:
//   version=N client_random=N client_app_secret=N server_app_secret=N session=N master_key=N
// Failure: one reason line on stderr, exit nonzero. Never prints a secret.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <dlfcn.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "util/url.h"

namespace {

constexpr size_t kObjectCap = 65536;  // bytes of an object searched, at most
constexpr unsigned kTimeoutSeconds = 10;
constexpr uid_t kNobody = 65534;

void WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

void Wipe(void* p, size_t n) { explicit_bzero(p, n); }

void WipeAll();

std::string g_version;  // the library's OpenSSL_version(), once loaded: named in failures

[[noreturn]] void Fail(const std::string& why) {
  WipeAll();
  std::string line = "mke-audit-tap-sslcal: " + (g_version.empty() ? "" : g_version + ": ") + why;
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  WriteAll(2, line + "\n");
  ::_exit(1);
}

extern "C" void OnAlarm(int) {
  static const char kMsg[] = "mke-audit-tap-sslcal: timed out (calibration took over 10 s)\n";
  (void)!::write(2, kMsg, sizeof(kMsg) - 1);
  ::_exit(2);
}

// ---- the library's functions, by dlsym ----

void* g_crypto = nullptr;
void* g_ssl = nullptr;

template <class F>
F Sym(void* lib, const char* name, bool required = true) {
  void* p = ::dlsym(lib, name);
  if (p == nullptr && required) Fail(std::string("the library lacks ") + name);
  return reinterpret_cast<F>(p);
}

#define MAT_FN(lib, name) decltype(&::name) name = Sym<decltype(&::name)>(lib, #name)
#define MAT_FN_OPT(lib, name) decltype(&::name) name = Sym<decltype(&::name)>(lib, #name, false)

struct Api {
  // libcrypto
  MAT_FN(g_crypto, ERR_get_error);
  MAT_FN(g_crypto, ERR_error_string_n);
  MAT_FN(g_crypto, BIO_new_bio_pair);
  MAT_FN(g_crypto, EVP_PKEY_free);
  MAT_FN_OPT(g_crypto, EC_KEY_new_by_curve_name);
  MAT_FN_OPT(g_crypto, EC_KEY_generate_key);
  MAT_FN_OPT(g_crypto, EC_KEY_set_asn1_flag);
  MAT_FN_OPT(g_crypto, EC_KEY_free);
  MAT_FN_OPT(g_crypto, EVP_PKEY_new);
  MAT_FN_OPT(g_crypto, EVP_PKEY_assign);
  MAT_FN_OPT(g_crypto, EVP_PKEY_Q_keygen);  // OpenSSL 3 only
  MAT_FN(g_crypto, X509_new);
  MAT_FN(g_crypto, X509_free);
  MAT_FN(g_crypto, X509_set_version);
  MAT_FN(g_crypto, X509_get_serialNumber);
  MAT_FN(g_crypto, ASN1_INTEGER_set);
  MAT_FN(g_crypto, X509_getm_notBefore);
  MAT_FN(g_crypto, X509_getm_notAfter);
  MAT_FN(g_crypto, X509_gmtime_adj);
  MAT_FN(g_crypto, X509_set_pubkey);
  MAT_FN(g_crypto, X509_get_subject_name);
  MAT_FN(g_crypto, X509_NAME_add_entry_by_txt);
  MAT_FN(g_crypto, X509_set_issuer_name);
  MAT_FN(g_crypto, X509_sign);
  MAT_FN(g_crypto, EVP_sha256);
  // libssl
  MAT_FN(g_ssl, TLS_server_method);
  MAT_FN(g_ssl, TLS_client_method);
  MAT_FN(g_ssl, SSL_CTX_new);
  MAT_FN(g_ssl, SSL_CTX_free);
  MAT_FN(g_ssl, SSL_CTX_ctrl);
  MAT_FN(g_ssl, SSL_CTX_set_keylog_callback);
  MAT_FN(g_ssl, SSL_CTX_use_certificate);
  MAT_FN(g_ssl, SSL_CTX_use_PrivateKey);
  MAT_FN(g_ssl, SSL_new);
  MAT_FN(g_ssl, SSL_free);
  MAT_FN(g_ssl, SSL_set_bio);
  MAT_FN(g_ssl, SSL_set_accept_state);
  MAT_FN(g_ssl, SSL_set_connect_state);
  MAT_FN(g_ssl, SSL_do_handshake);
  MAT_FN(g_ssl, SSL_get_error);
  MAT_FN(g_ssl, SSL_version);
  MAT_FN(g_ssl, SSL_get_client_random);
  MAT_FN(g_ssl, SSL_get_session);
  MAT_FN(g_ssl, SSL_SESSION_get_master_key);
};

Api* g_api = nullptr;

std::string LastError(const char* what) {
  std::string out = what;
  unsigned long e = g_api->ERR_get_error();
  if (e != 0) {
    char buf[256];
    g_api->ERR_error_string_n(e, buf, sizeof(buf));
    out += std::string(": ") + buf;
  }
  return out;
}

// ---- what the key log said, per SSL object ----

struct Secrets {
  const SSL* ssl = nullptr;
  unsigned char random[32] = {};  // the client random of the logged lines
  bool has_random = false;
  unsigned char client_app[64] = {}, server_app[64] = {}, master[48] = {};
  size_t client_app_len = 0, server_app_len = 0, master_len = 0;
};

Secrets g_logged[4];  // one per SSL object: at most four

void WipeAll() { Wipe(g_logged, sizeof(g_logged)); }

// Decodes hex text of exactly `want_max` bytes or fewer into out; the byte count, 0 when bad.
size_t FromHex(const char* text, size_t text_len, unsigned char* out, size_t out_max) {
  if (text_len == 0 || text_len % 2 != 0 || text_len / 2 > out_max) return 0;
  for (size_t i = 0; i < text_len / 2; ++i) {
    int hi = mat::HexDigitValue(text[2 * i]), lo = mat::HexDigitValue(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return 0;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return text_len / 2;
}

extern "C" void OnKeylog(const SSL* ssl, const char* line) {
  Secrets* slot = nullptr;
  for (Secrets& s : g_logged) {
    if (s.ssl == ssl || s.ssl == nullptr) {
      s.ssl = ssl;
      slot = &s;
      break;
    }
  }
  if (slot == nullptr) return;
  const char* sp1 = std::strchr(line, ' ');
  if (sp1 == nullptr) return;
  const char* sp2 = std::strchr(sp1 + 1, ' ');
  if (sp2 == nullptr) return;
  std::string label(line, static_cast<size_t>(sp1 - line));
  unsigned char random[32];
  if (FromHex(sp1 + 1, static_cast<size_t>(sp2 - sp1 - 1), random, sizeof(random)) != 32) return;
  if (slot->has_random && std::memcmp(slot->random, random, 32) != 0) return;
  std::memcpy(slot->random, random, 32);
  slot->has_random = true;
  const char* hex = sp2 + 1;
  size_t hex_len = std::strlen(hex);
  if (label == "CLIENT_TRAFFIC_SECRET_0")
    slot->client_app_len = FromHex(hex, hex_len, slot->client_app, sizeof(slot->client_app));
  else if (label == "SERVER_TRAFFIC_SECRET_0")
    slot->server_app_len = FromHex(hex, hex_len, slot->server_app, sizeof(slot->server_app));
  else if (label == "CLIENT_RANDOM")
    slot->master_len = FromHex(hex, hex_len, slot->master, sizeof(slot->master));
}

const Secrets& LoggedFor(const SSL* ssl, const char* name) {
  for (const Secrets& s : g_logged)
    if (s.ssl == ssl) return s;
  Fail(std::string("the key log callback logged nothing for the ") + name);
}

// ---- a key and a self-signed certificate ----

EVP_PKEY* NewKey() {
  const Api& a = *g_api;
  if (a.EC_KEY_new_by_curve_name != nullptr && a.EC_KEY_generate_key != nullptr &&
      a.EVP_PKEY_new != nullptr && a.EVP_PKEY_assign != nullptr && a.EC_KEY_free != nullptr) {
    EC_KEY* ec = a.EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    if (ec == nullptr || a.EC_KEY_generate_key(ec) != 1) Fail(LastError("EC key generation"));
    if (a.EC_KEY_set_asn1_flag != nullptr) a.EC_KEY_set_asn1_flag(ec, OPENSSL_EC_NAMED_CURVE);
    EVP_PKEY* pkey = a.EVP_PKEY_new();
    if (pkey == nullptr || a.EVP_PKEY_assign(pkey, EVP_PKEY_EC, ec) != 1) {
      a.EC_KEY_free(ec);
      Fail(LastError("EVP_PKEY_assign"));
    }
    return pkey;
  }
  if (a.EVP_PKEY_Q_keygen != nullptr) {
    EVP_PKEY* pkey = a.EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    if (pkey == nullptr) Fail(LastError("EVP_PKEY_Q_keygen"));
    return pkey;
  }
  Fail("the library has no EC key generation (EC_KEY_* or EVP_PKEY_Q_keygen)");
}

X509* NewCert(EVP_PKEY* pkey) {
  const Api& a = *g_api;
  X509* x = a.X509_new();
  if (x == nullptr) Fail(LastError("X509_new"));
  a.X509_set_version(x, 2);
  a.ASN1_INTEGER_set(a.X509_get_serialNumber(x), 1);
  a.X509_gmtime_adj(a.X509_getm_notBefore(x), -3600);
  a.X509_gmtime_adj(a.X509_getm_notAfter(x), 3600);
  a.X509_set_pubkey(x, pkey);
  X509_NAME* name = a.X509_get_subject_name(x);
  a.X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("sslcal"), -1, -1, 0);
  a.X509_set_issuer_name(x, name);
  if (a.X509_sign(x, pkey, a.EVP_sha256()) <= 0) Fail(LastError("X509_sign"));
  return x;
}

// ---- one in-memory handshake ----

struct Pair {
  SSL_CTX* server_ctx = nullptr;
  SSL_CTX* client_ctx = nullptr;
  SSL* server = nullptr;
  SSL* client = nullptr;
};

Pair Handshake(int version, EVP_PKEY* pkey, X509* cert, const char* name) {
  const Api& a = *g_api;
  Pair p;
  p.server_ctx = a.SSL_CTX_new(a.TLS_server_method());
  p.client_ctx = a.SSL_CTX_new(a.TLS_client_method());
  if (p.server_ctx == nullptr || p.client_ctx == nullptr) Fail(LastError("SSL_CTX_new"));
  for (SSL_CTX* ctx : {p.server_ctx, p.client_ctx}) {
    // TLS 1.3 as the minimum, or TLS 1.2 as the maximum, not both: the SSL object keeps its
    // min_proto_version and max_proto_version, which would then hold the version too.
    int cmd =
        version == TLS1_3_VERSION ? SSL_CTRL_SET_MIN_PROTO_VERSION : SSL_CTRL_SET_MAX_PROTO_VERSION;
    if (a.SSL_CTX_ctrl(ctx, cmd, version, nullptr) != 1)
      Fail(std::string("the library refuses ") + name);
    a.SSL_CTX_set_keylog_callback(ctx, &OnKeylog);
  }
  if (a.SSL_CTX_use_certificate(p.server_ctx, cert) != 1)
    Fail(LastError("SSL_CTX_use_certificate"));
  if (a.SSL_CTX_use_PrivateKey(p.server_ctx, pkey) != 1) Fail(LastError("SSL_CTX_use_PrivateKey"));
  p.server = a.SSL_new(p.server_ctx);
  p.client = a.SSL_new(p.client_ctx);
  if (p.server == nullptr || p.client == nullptr) Fail(LastError("SSL_new"));
  BIO *server_bio = nullptr, *client_bio = nullptr;
  if (a.BIO_new_bio_pair(&server_bio, 65536, &client_bio, 65536) != 1)
    Fail(LastError("BIO_new_bio_pair"));
  a.SSL_set_bio(p.server, server_bio, server_bio);
  a.SSL_set_bio(p.client, client_bio, client_bio);
  a.SSL_set_accept_state(p.server);
  a.SSL_set_connect_state(p.client);
  bool server_done = false, client_done = false;
  for (int round = 0; round < 64 && !(server_done && client_done); ++round) {
    for (SSL* s : {p.client, p.server}) {
      bool& done = s == p.client ? client_done : server_done;
      if (done) continue;
      int rc = a.SSL_do_handshake(s);
      if (rc == 1) {
        done = true;
        continue;
      }
      int err = a.SSL_get_error(s, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        Fail(LastError((std::string(name) + " handshake failed").c_str()));
    }
  }
  if (!(server_done && client_done)) Fail(std::string(name) + " handshake did not complete");
  if (a.SSL_version(p.server) != version || a.SSL_version(p.client) != version)
    Fail(std::string(name) + " handshake negotiated another version");
  return p;
}

// ---- the search ----

struct Object {
  const unsigned char* base;
  size_t size;
};

Object ObjectOf(const void* p, const char* name) {
  size_t n = ::malloc_usable_size(const_cast<void*>(p));
  if (n == 0) Fail(std::string("no allocation size for the ") + name);
  return {static_cast<const unsigned char*>(p), n < kObjectCap ? n : kObjectCap};
}

std::vector<size_t> FindAll(Object obj, const void* needle, size_t len, size_t align) {
  std::vector<size_t> out;
  for (size_t off = 0; off + len <= obj.size; off += align)
    if (std::memcmp(obj.base + off, needle, len) == 0) out.push_back(off);
  return out;
}

// The one offset at which every (object, needle) of `cases` matches: each object must hold its
// needle exactly once (at that offset), or the field is ambiguous or absent.
struct Case {
  Object obj;
  const void* needle;
  size_t len;
  const char* object_name;
};

size_t UniqueOffset(const char* field, const std::vector<Case>& cases, size_t align) {
  size_t found = SIZE_MAX;
  for (const Case& c : cases) {
    std::vector<size_t> offs = FindAll(c.obj, c.needle, c.len, align);
    if (offs.empty())
      Fail(std::string(field) + " not found in the " + c.object_name +
           (g_version.rfind("OpenSSL 1.", 0) == 0
                ? " (OpenSSL 1.x keeps the client random in a separate s3 object: not supported)"
                : ""));
    if (offs.size() > 1)
      Fail(std::string(field) + " found " + std::to_string(offs.size()) + " times in the " +
           c.object_name);
    if (found != SIZE_MAX && offs[0] != found)
      Fail(std::string(field) + " lies at different offsets in the SSL objects (" +
           std::to_string(found) + ", " + std::to_string(offs[0]) + " in the " + c.object_name +
           ")");
    found = offs[0];
  }
  return found;
}

// The version is a small int: the right value may also stand elsewhere by chance, so it is the
// one offset holding 0x0304 in both TLS 1.3 objects and 0x0303 in both TLS 1.2 objects.
size_t VersionOffset(const Pair& v13, const Pair& v12) {
  Object objs[4] = {ObjectOf(v13.server, "SSL"), ObjectOf(v13.client, "SSL"),
                    ObjectOf(v12.server, "SSL"), ObjectOf(v12.client, "SSL")};
  const int want[4] = {TLS1_3_VERSION, TLS1_3_VERSION, TLS1_2_VERSION, TLS1_2_VERSION};
  size_t limit = kObjectCap;
  for (const Object& o : objs) limit = o.size < limit ? o.size : limit;
  std::vector<size_t> hits;
  for (size_t off = 0; off + sizeof(int) <= limit; off += sizeof(int)) {
    bool all = true;
    for (int i = 0; i < 4 && all; ++i) {
      int v;
      std::memcpy(&v, objs[i].base + off, sizeof(v));
      all = v == want[i];
    }
    if (all) hits.push_back(off);
  }
  if (hits.empty()) Fail("the version field was not found in the SSL objects");
  if (hits.size() > 1) Fail("the version field is ambiguous in the SSL objects");
  return hits[0];
}

bool Overlap(size_t a, size_t alen, size_t b, size_t blen) { return a < b + blen && b < a + alen; }

int Run(const std::string& crypto_path, const std::string& ssl_path) {
  // Open both as the caller (root can read any process's map_files), then run the library's code
  // with no privilege: it is the target's code.
  int crypto_fd = ::open(crypto_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (crypto_fd < 0) Fail("cannot open " + crypto_path + ": " + std::strerror(errno));
  int ssl_fd = ::open(ssl_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ssl_fd < 0) Fail("cannot open " + ssl_path + ": " + std::strerror(errno));
  if (::geteuid() == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
      Fail(std::string("cannot drop privileges to nobody (the auditor needs CAP_SETUID and "
                       "CAP_SETGID to calibrate): ") +
           std::strerror(errno));
  }
  ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  // No core file: the process holds (throwaway) key material. The open descriptors stay
  // usable through /proc/self/fd, the process's own, even when not dumpable.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  struct rlimit no_core = {0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  // The layout does not depend on configuration: load none (the host's openssl.cnf may not suit
  // a target's build, e.g. name providers it lacks).
  ::setenv("OPENSSL_CONF", "/dev/null", 1);

  std::string crypto_fd_path = "/proc/self/fd/" + std::to_string(crypto_fd);
  std::string ssl_fd_path = "/proc/self/fd/" + std::to_string(ssl_fd);
  g_crypto = ::dlopen(crypto_fd_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (g_crypto == nullptr)
    Fail("cannot load libcrypto " + crypto_path + ": " + std::string(::dlerror()));
  g_ssl = ::dlopen(ssl_fd_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (g_ssl == nullptr) Fail("cannot load libssl " + ssl_path + ": " + std::string(::dlerror()));
  // libssl must use the libcrypto given (its DT_NEEDED matched by SONAME), not another one.
  void* own = ::dlsym(g_crypto, "ERR_get_error");
  if (own == nullptr || ::dlsym(g_ssl, "ERR_get_error") != own)
    Fail("the libssl does not use the libcrypto given (another SONAME or not a libcrypto)");
  using VersionFn = const char* (*)(int);
  if (auto version = reinterpret_cast<VersionFn>(::dlsym(g_crypto, "OpenSSL_version"))) {
    const char* text = version(0);  // OPENSSL_VERSION: "OpenSSL 3.0.19 27 Jan 2026"
    if (text != nullptr) g_version.assign(text, ::strnlen(text, 80));
  }
  static Api api;  // its members are resolved here, after both libraries are loaded
  g_api = &api;

  EVP_PKEY* pkey = NewKey();
  X509* cert = NewCert(pkey);
  Pair v13 = Handshake(TLS1_3_VERSION, pkey, cert, "TLS 1.3");
  Pair v12 = Handshake(TLS1_2_VERSION, pkey, cert, "TLS 1.2");

  const Secrets& s13 = LoggedFor(v13.server, "TLS 1.3 server");
  const Secrets& c13 = LoggedFor(v13.client, "TLS 1.3 client");
  const Secrets& s12 = LoggedFor(v12.server, "TLS 1.2 server");
  const Secrets& c12 = LoggedFor(v12.client, "TLS 1.2 client");
  for (const Secrets* s : {&s13, &c13})
    if (s->client_app_len == 0 || s->server_app_len == 0)
      Fail("the key log lacks the TLS 1.3 application traffic secrets");
  for (const Secrets* s : {&s12, &c12})
    if (s->master_len != 48) Fail("the key log lacks the TLS 1.2 master secret");

  // Each SSL object's client random, as the library reports it; the key log must agree.
  unsigned char random[4][32];
  SSL* ssls[4] = {v13.server, v13.client, v12.server, v12.client};
  const Secrets* logs[4] = {&s13, &c13, &s12, &c12};
  for (int i = 0; i < 4; ++i) {
    if (api.SSL_get_client_random(ssls[i], random[i], 32) != 32)
      Fail("SSL_get_client_random returned no random");
    if (std::memcmp(random[i], logs[i]->random, 32) != 0)
      Fail("the key log's client random differs from SSL_get_client_random");
  }
  const char* names[4] = {"TLS 1.3 server SSL", "TLS 1.3 client SSL", "TLS 1.2 server SSL",
                          "TLS 1.2 client SSL"};
  Object objs[4];
  for (int i = 0; i < 4; ++i) objs[i] = ObjectOf(ssls[i], names[i]);

  size_t version = VersionOffset(v13, v12);
  std::vector<Case> random_cases, session_cases;
  SSL_SESSION* sessions[4];
  for (int i = 0; i < 4; ++i) {
    random_cases.push_back({objs[i], random[i], 32, names[i]});
    sessions[i] = api.SSL_get_session(ssls[i]);
    if (sessions[i] == nullptr) Fail(std::string("no session in the ") + names[i]);
  }
  for (int i = 0; i < 4; ++i)
    session_cases.push_back({objs[i], &sessions[i], sizeof(void*), names[i]});
  size_t client_random = UniqueOffset("the client random", random_cases, 1);
  size_t session = UniqueOffset("the session pointer", session_cases, sizeof(void*));
  size_t client_app = UniqueOffset("the client application traffic secret",
                                   {{objs[0], s13.client_app, s13.client_app_len, names[0]},
                                    {objs[1], c13.client_app, c13.client_app_len, names[1]}},
                                   1);
  size_t server_app = UniqueOffset("the server application traffic secret",
                                   {{objs[0], s13.server_app, s13.server_app_len, names[0]},
                                    {objs[1], c13.server_app, c13.server_app_len, names[1]}},
                                   1);
  // The master secret: the key log's, which SSL_SESSION_get_master_key must confirm.
  for (int i = 2; i < 4; ++i) {
    unsigned char mk[48];
    size_t n = api.SSL_SESSION_get_master_key(sessions[i], mk, sizeof(mk));
    bool same = n == 48 && std::memcmp(mk, logs[i]->master, 48) == 0;
    Wipe(mk, sizeof(mk));
    if (!same) Fail("SSL_SESSION_get_master_key differs from the key log");
  }
  size_t master_key = UniqueOffset(
      "the master secret",
      {{ObjectOf(sessions[2], "TLS 1.2 server SSL_SESSION"), s12.master, 48, "server SSL_SESSION"},
       {ObjectOf(sessions[3], "TLS 1.2 client SSL_SESSION"), c12.master, 48, "client SSL_SESSION"}},
      1);

  // The fields of the SSL object must be distinct (the secrets' arrays are 64 bytes).
  struct Field {
    const char* name;
    size_t off, len;
  } fields[] = {{"version", version, 4},
                {"client_random", client_random, 32},
                {"client_app_secret", client_app, 64},
                {"server_app_secret", server_app, 64},
                {"session", session, 8}};
  for (size_t i = 0; i < std::size(fields); ++i)
    for (size_t j = i + 1; j < std::size(fields); ++j)
      if (Overlap(fields[i].off, fields[i].len, fields[j].off, fields[j].len))
        Fail(std::string("the ") + fields[i].name + " and " + fields[j].name + " fields overlap");

  WipeAll();
  WriteAll(1, "version=" + std::to_string(version) +
                  " client_random=" + std::to_string(client_random) + " client_app_secret=" +
                  std::to_string(client_app) + " server_app_secret=" + std::to_string(server_app) +
                  " session=" + std::to_string(session) +
                  " master_key=" + std::to_string(master_key) + "\n");
  // No cleanup: the objects hold key material only in this process, which ends now (atexit
  // handlers of the loaded library are skipped on purpose).
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  struct sigaction sa = {};
  sa.sa_handler = &OnAlarm;
  ::sigaction(SIGALRM, &sa, nullptr);
  ::alarm(kTimeoutSeconds);
  std::string crypto_path, ssl_path;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--libcrypto" || arg == "--libssl") && i + 1 < argc)
      (arg == "--libcrypto" ? crypto_path : ssl_path) = argv[++i];
    else
      Fail("usage: mke-audit-tap-sslcal --libcrypto PATH --libssl PATH");
  }
  if (crypto_path.empty() || ssl_path.empty())
    Fail("usage: mke-audit-tap-sslcal --libcrypto PATH --libssl PATH");
  int rc = Run(crypto_path, ssl_path);
  ::_exit(rc);
}
