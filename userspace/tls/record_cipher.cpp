#include "tls/record_cipher.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstdio>
#include <cstring>

namespace mat::tls {

namespace {

constexpr Suite kSuites[] = {
    // TLS 1.3
    {0x1301, "TLS_AES_128_GCM_SHA256", true, CipherKind::kGcm, 16, 12, 0, nullptr, "SHA256", 32},
    {0x1302, "TLS_AES_256_GCM_SHA384", true, CipherKind::kGcm, 32, 12, 0, nullptr, "SHA384", 48},
    {0x1303, "TLS_CHACHA20_POLY1305_SHA256", true, CipherKind::kChaCha, 32, 12, 0, nullptr,
     "SHA256", 32},
    // TLS 1.2 AEAD
    {0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", false, CipherKind::kGcm, 16, 4, 0, nullptr,
     "SHA256", 32},
    {0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", false, CipherKind::kGcm, 16, 4, 0, nullptr,
     "SHA256", 32},
    {0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", false, CipherKind::kGcm, 16, 4, 0, nullptr,
     "SHA256", 32},
    {0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", false, CipherKind::kGcm, 16, 4, 0, nullptr,
     "SHA256", 32},
    {0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", false, CipherKind::kGcm, 32, 4, 0, nullptr,
     "SHA384", 48},
    {0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", false, CipherKind::kGcm, 32, 4, 0, nullptr,
     "SHA384", 48},
    {0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", false, CipherKind::kGcm, 32, 4, 0, nullptr,
     "SHA384", 48},
    {0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", false, CipherKind::kGcm, 32, 4, 0, nullptr,
     "SHA384", 48},
    {0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, CipherKind::kChaCha, 32, 12, 0,
     nullptr, "SHA256", 32},
    {0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", false, CipherKind::kChaCha, 32, 12, 0,
     nullptr, "SHA256", 32},
    {0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, CipherKind::kChaCha, 32, 12, 0,
     nullptr, "SHA256", 32},
    // TLS 1.2 AES-CBC with HMAC
    {0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", false, CipherKind::kCbc, 16, 0, 20, "SHA1",
     "SHA256", 32},
    {0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", false, CipherKind::kCbc, 32, 0, 20, "SHA1",
     "SHA256", 32},
    {0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", false, CipherKind::kCbc, 16, 0, 20, "SHA1",
     "SHA256", 32},
    {0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", false, CipherKind::kCbc, 32, 0, 20, "SHA1",
     "SHA256", 32},
    {0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", false, CipherKind::kCbc, 16, 0, 20, "SHA1", "SHA256",
     32},
    {0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", false, CipherKind::kCbc, 32, 0, 20, "SHA1", "SHA256",
     32},
    {0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", false, CipherKind::kCbc, 16, 0, 20, "SHA1",
     "SHA256", 32},
    {0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", false, CipherKind::kCbc, 32, 0, 20, "SHA1",
     "SHA256", 32},
    {0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", false, CipherKind::kCbc, 16, 0, 32, "SHA256",
     "SHA256", 32},
    {0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", false, CipherKind::kCbc, 16, 0, 32,
     "SHA256", "SHA256", 32},
    {0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", false, CipherKind::kCbc, 16, 0, 32, "SHA256",
     "SHA256", 32},
    {0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", false, CipherKind::kCbc, 32, 0, 32, "SHA256",
     "SHA256", 32},
    {0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", false, CipherKind::kCbc, 16, 0, 32, "SHA256",
     "SHA256", 32},
    {0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", false, CipherKind::kCbc, 32, 0, 32, "SHA256",
     "SHA256", 32},
    {0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", false, CipherKind::kCbc, 32, 0, 48, "SHA384",
     "SHA384", 48},
    {0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", false, CipherKind::kCbc, 32, 0, 48,
     "SHA384", "SHA384", 48},
};

struct SuiteNameEntry {
  uint16_t id;
  const char* name;
};

// Suites a server may pick that this stage does not decrypt, by name for the log.
constexpr SuiteNameEntry kOtherNames[] = {
    {0x1304, "TLS_AES_128_CCM_SHA256"},
    {0x1305, "TLS_AES_128_CCM_8_SHA256"},
    {0xC09C, "TLS_RSA_WITH_AES_128_CCM"},
    {0xC09D, "TLS_RSA_WITH_AES_256_CCM"},
    {0xC09E, "TLS_DHE_RSA_WITH_AES_128_CCM"},
    {0xC09F, "TLS_DHE_RSA_WITH_AES_256_CCM"},
    {0xC0A0, "TLS_RSA_WITH_AES_128_CCM_8"},
    {0xC0A1, "TLS_RSA_WITH_AES_256_CCM_8"},
    {0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"},
    {0xC0AD, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"},
    {0xC0AE, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"},
    {0xC0AF, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8"},
    {0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
    {0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"},
    {0xC012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"},
    {0xC008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"},
    {0x0001, "TLS_RSA_WITH_NULL_MD5"},
    {0x0002, "TLS_RSA_WITH_NULL_SHA"},
    {0x003B, "TLS_RSA_WITH_NULL_SHA256"},
    {0xC010, "TLS_ECDHE_RSA_WITH_NULL_SHA"},
    {0xC006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA"},
    {0x0004, "TLS_RSA_WITH_RC4_128_MD5"},
    {0x0005, "TLS_RSA_WITH_RC4_128_SHA"},
    {0xC011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"},
    {0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"},
    {0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"},
    {0xC050, "TLS_RSA_WITH_ARIA_128_GCM_SHA256"},
    {0xC051, "TLS_RSA_WITH_ARIA_256_GCM_SHA384"},
};

EVP_KDF* FetchKdf(const char* name) { return EVP_KDF_fetch(nullptr, name, nullptr); }

EVP_KDF* HkdfAlgorithm() {
  static EVP_KDF* kdf = FetchKdf(OSSL_KDF_NAME_HKDF);
  return kdf;
}

EVP_KDF* PrfAlgorithm() {
  static EVP_KDF* kdf = FetchKdf(OSSL_KDF_NAME_TLS1_PRF);
  return kdf;
}

EVP_MAC* HmacAlgorithm() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

const EVP_CIPHER* CipherFor(const Suite& s) {
  switch (s.kind) {
    case CipherKind::kGcm:
      return s.key_len == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
    case CipherKind::kChaCha:
      return EVP_chacha20_poly1305();
    case CipherKind::kCbc:
      return s.key_len == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
  }
  return nullptr;
}

void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

constexpr size_t kTagLen = 16;
constexpr size_t kBlock = 16;

}  // namespace

const Suite* FindSuite(uint16_t id) {
  for (const Suite& s : kSuites)
    if (s.id == id) return &s;
  return nullptr;
}

std::string SuiteName(uint16_t id) {
  if (const Suite* s = FindSuite(id)) return s->name;
  for (const SuiteNameEntry& e : kOtherNames)
    if (e.id == id) return e.name;
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%04X", id);
  return buf;
}

bool HkdfExpandLabel(const char* hash, const uint8_t* secret, size_t secret_len, const char* label,
                     uint8_t* out, size_t out_len) {
  EVP_KDF* kdf = HkdfAlgorithm();
  if (kdf == nullptr) return false;
  // struct HkdfLabel { uint16 length; opaque label<7..255> = "tls13 " + label; opaque context<0> }
  uint8_t info[2 + 1 + 255 + 1];
  size_t label_len = std::strlen(label);
  if (label_len + 6 > 255) return false;
  size_t n = 0;
  info[n++] = static_cast<uint8_t>(out_len >> 8);
  info[n++] = static_cast<uint8_t>(out_len);
  info[n++] = static_cast<uint8_t>(6 + label_len);
  std::memcpy(info + n, "tls13 ", 6);
  n += 6;
  std::memcpy(info + n, label, label_len);
  n += label_len;
  info[n++] = 0;
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  if (ctx == nullptr) return false;
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(hash), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(secret),
                                        secret_len),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
      OSSL_PARAM_construct_end(),
  };
  bool ok = EVP_KDF_derive(ctx, out, out_len, params) == 1;
  EVP_KDF_CTX_free(ctx);
  return ok;
}

bool Tls12KeyBlock(const char* hash, const uint8_t* master, size_t master_len,
                   const uint8_t* client_random, const uint8_t* server_random, uint8_t* out,
                   size_t out_len) {
  EVP_KDF* kdf = PrfAlgorithm();
  if (kdf == nullptr) return false;
  uint8_t seed[13 + 64];
  std::memcpy(seed, "key expansion", 13);
  std::memcpy(seed + 13, server_random, 32);
  std::memcpy(seed + 45, client_random, 32);
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  if (ctx == nullptr) return false;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(hash), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, const_cast<uint8_t*>(master),
                                        master_len),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof(seed)),
      OSSL_PARAM_construct_end(),
  };
  bool ok = EVP_KDF_derive(ctx, out, out_len, params) == 1;
  EVP_KDF_CTX_free(ctx);
  return ok;
}

RecordCipher::~RecordCipher() { Reset(); }

void RecordCipher::Reset() {
  if (ctx_ != nullptr) EVP_CIPHER_CTX_free(ctx_);  // cleanses the key schedule
  if (mac_ != nullptr) EVP_MAC_CTX_free(mac_);
  ctx_ = nullptr;
  mac_ = nullptr;
  suite_ = nullptr;
  keys_ = nullptr;
  ready_ = false;
}

bool RecordCipher::InitCipher() {
  if (ctx_ == nullptr) ctx_ = EVP_CIPHER_CTX_new();
  if (ctx_ == nullptr) return false;
  if (EVP_DecryptInit_ex(ctx_, CipherFor(*suite_), nullptr, keys_->key, nullptr) != 1) return false;
  if (suite_->kind == CipherKind::kCbc) {
    EVP_CIPHER_CTX_set_padding(ctx_, 0);
    if (mac_ == nullptr) mac_ = EVP_MAC_CTX_new(HmacAlgorithm());
    if (mac_ == nullptr) return false;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(suite_->mac_hash),
                                         0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_init(mac_, keys_->mac_key, suite_->mac_len, params) != 1) return false;
  }
  ready_ = true;
  return true;
}

bool RecordCipher::Init13(const Suite& suite, const uint8_t* secret, DirKeys* keys) {
  suite_ = &suite;
  keys_ = keys;
  ready_ = false;
  if (secret != keys->traffic) std::memcpy(keys->traffic, secret, suite.hash_len);
  if (!HkdfExpandLabel(suite.prf_hash, keys->traffic, suite.hash_len, "key", keys->key,
                       suite.key_len) ||
      !HkdfExpandLabel(suite.prf_hash, keys->traffic, suite.hash_len, "iv", keys->iv, 12))
    return false;
  return InitCipher();
}

bool RecordCipher::Update13() {
  if (suite_ == nullptr || !suite_->tls13) return false;
  uint8_t* next = keys_->mac_key;  // unused in TLS 1.3: scratch inside the pool
  if (!HkdfExpandLabel(suite_->prf_hash, keys_->traffic, suite_->hash_len, "traffic upd", next,
                       suite_->hash_len))
    return false;
  std::memcpy(keys_->traffic, next, suite_->hash_len);
  OPENSSL_cleanse(next, sizeof(keys_->mac_key));
  return Init13(*suite_, keys_->traffic, keys_);
}

bool RecordCipher::Init12(const Suite& suite, DirKeys* keys, bool etm) {
  suite_ = &suite;
  keys_ = keys;
  etm_ = etm;
  ready_ = false;
  return InitCipher();
}

size_t RecordCipher::MinRecord() const {
  if (suite_ == nullptr) return 5;
  if (suite_->tls13) return 5 + 1 + kTagLen;
  switch (suite_->kind) {
    case CipherKind::kGcm:
      return 5 + 8 + kTagLen;
    case CipherKind::kChaCha:
      return 5 + kTagLen;
    case CipherKind::kCbc:
      return 5 + kBlock +
             (etm_ ? kBlock + suite_->mac_len
                   : (suite_->mac_len + 1 + kBlock - 1) / kBlock * kBlock);
  }
  return 5;
}

bool RecordCipher::ExplicitSeq(const uint8_t* record, size_t size, uint64_t* seq) const {
  if (suite_ == nullptr || suite_->tls13 || suite_->kind != CipherKind::kGcm || size < 13)
    return false;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | record[5 + i];
  *seq = v;
  return true;
}

bool RecordCipher::Open(const uint8_t* record, size_t size, uint64_t seq, uint8_t* out,
                        size_t* out_len, uint8_t* type) {
  if (!ready_ || size < 5) return false;
  if (suite_->tls13) return OpenAead13(record, size, seq, out, out_len, type);
  *type = record[0];
  if (suite_->kind == CipherKind::kCbc) return OpenCbc(record, size, seq, out, out_len);
  return OpenAead12(record, size, seq, out, out_len);
}

bool RecordCipher::OpenAead13(const uint8_t* rec, size_t size, uint64_t seq, uint8_t* out,
                              size_t* out_len, uint8_t* type) {
  if (size < 5 + 1 + kTagLen) return false;
  uint8_t nonce[12];
  std::memcpy(nonce, keys_->iv, 12);
  for (int i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<uint8_t>(seq >> (8 * i));
  const uint8_t* body = rec + 5;
  int clen = static_cast<int>(size - 5 - kTagLen);
  int n = 0;
  int fin = 0;
  if (EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1 ||
      EVP_DecryptUpdate(ctx_, nullptr, &n, rec, 5) != 1 ||
      EVP_DecryptUpdate(ctx_, out, &n, body, clen) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kTagLen,
                          const_cast<uint8_t*>(body + clen)) != 1 ||
      EVP_DecryptFinal_ex(ctx_, out + n, &fin) != 1)
    return false;
  // TLSInnerPlaintext: content || type || zeros
  size_t i = static_cast<size_t>(clen);
  while (i > 0 && out[i - 1] == 0) --i;
  if (i == 0) return false;
  *type = out[i - 1];
  *out_len = i - 1;
  return true;
}

bool RecordCipher::OpenAead12(const uint8_t* rec, size_t size, uint64_t seq, uint8_t* out,
                              size_t* out_len) {
  const bool gcm = suite_->kind == CipherKind::kGcm;
  size_t explicit_len = gcm ? 8 : 0;
  if (size < 5 + explicit_len + kTagLen) return false;
  uint8_t nonce[12];
  if (gcm) {
    std::memcpy(nonce, keys_->iv, 4);
    std::memcpy(nonce + 4, rec + 5, 8);
  } else {
    std::memcpy(nonce, keys_->iv, 12);
    for (int i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<uint8_t>(seq >> (8 * i));
  }
  size_t plen = size - 5 - explicit_len - kTagLen;
  uint8_t aad[13];
  PutU64(aad, seq);
  aad[8] = rec[0];
  aad[9] = rec[1];
  aad[10] = rec[2];
  aad[11] = static_cast<uint8_t>(plen >> 8);
  aad[12] = static_cast<uint8_t>(plen);
  const uint8_t* body = rec + 5 + explicit_len;
  int n = 0;
  int fin = 0;
  if (EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1 ||
      EVP_DecryptUpdate(ctx_, nullptr, &n, aad, sizeof(aad)) != 1 ||
      EVP_DecryptUpdate(ctx_, out, &n, body, static_cast<int>(plen)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kTagLen,
                          const_cast<uint8_t*>(body + plen)) != 1 ||
      EVP_DecryptFinal_ex(ctx_, out + n, &fin) != 1)
    return false;
  *out_len = plen;
  return true;
}

bool RecordCipher::Mac(const uint8_t* prefix13, const uint8_t* data, size_t len, uint8_t* mac) {
  size_t outl = 0;
  return EVP_MAC_init(mac_, nullptr, 0, nullptr) == 1 && EVP_MAC_update(mac_, prefix13, 13) == 1 &&
         EVP_MAC_update(mac_, data, len) == 1 &&
         EVP_MAC_final(mac_, mac, &outl, EVP_MAX_MD_SIZE) == 1 && outl == suite_->mac_len;
}

bool RecordCipher::OpenCbc(const uint8_t* rec, size_t size, uint64_t seq, uint8_t* out,
                           size_t* out_len) {
  const size_t mac_len = suite_->mac_len;
  uint8_t prefix[13];
  PutU64(prefix, seq);
  prefix[8] = rec[0];
  prefix[9] = rec[1];
  prefix[10] = rec[2];
  uint8_t mac[EVP_MAX_MD_SIZE];
  const uint8_t* body = rec + 5;
  size_t n = size - 5;
  size_t enc_len;
  if (etm_) {
    if (n < kBlock + kBlock + mac_len) return false;
    enc_len = n - mac_len;  // IV + ciphertext
    if (enc_len % kBlock != 0) return false;
    prefix[11] = static_cast<uint8_t>(enc_len >> 8);
    prefix[12] = static_cast<uint8_t>(enc_len);
    if (!Mac(prefix, body, enc_len, mac) || CRYPTO_memcmp(mac, body + enc_len, mac_len) != 0)
      return false;
  } else {
    enc_len = n;
    if (enc_len % kBlock != 0 || enc_len < kBlock + kBlock) return false;
  }
  int outl = 0;
  int clen = static_cast<int>(enc_len - kBlock);
  if (EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, body) != 1 ||
      EVP_DecryptUpdate(ctx_, out, &outl, body + kBlock, clen) != 1 || outl != clen)
    return false;
  size_t m = static_cast<size_t>(clen);
  size_t pad = out[m - 1];
  size_t tail = pad + 1 + (etm_ ? 0 : mac_len);
  if (tail > m) return false;
  for (size_t i = m - pad - 1; i < m - 1; ++i)
    if (out[i] != pad) return false;
  size_t plen = m - tail;
  if (!etm_) {
    prefix[11] = static_cast<uint8_t>(plen >> 8);
    prefix[12] = static_cast<uint8_t>(plen);
    if (!Mac(prefix, out, plen, mac) || CRYPTO_memcmp(mac, out + plen, mac_len) != 0) return false;
  }
  *out_len = plen;
  return true;
}

}  // namespace mat::tls
