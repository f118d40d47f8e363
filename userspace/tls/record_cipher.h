// TLS cipher suites this stage decrypts, their key derivation (TLS 1.3 HKDF-Expand-Label, the
// TLS 1.2 PRF key block) and the opening of one protected record with one direction's keys.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct evp_mac_ctx_st EVP_MAC_CTX;

namespace mat::tls {

enum class CipherKind : uint8_t { kGcm, kChaCha, kCbc };

struct Suite {
  uint16_t id;
  const char* name;  // IANA name
  bool tls13;
  CipherKind kind;
  uint8_t key_len;
  uint8_t fixed_iv_len;  // TLS 1.2: implicit IV bytes from the key block; TLS 1.3: 12
  uint8_t mac_len;       // CBC suites' HMAC length, else 0
  const char* mac_hash;  // CBC suites' HMAC digest
  const char* prf_hash;  // TLS 1.2 PRF / TLS 1.3 HKDF digest
  uint8_t hash_len;      // prf_hash's length: TLS 1.3 secret length
};

// The suite with this id if this stage can decrypt it, else nullptr.
const Suite* FindSuite(uint16_t id);
// A name for any suite id: the IANA name when known, else "0xNNNN".
std::string SuiteName(uint16_t id);

// Key bytes of one direction. Lives in SecurePool memory.
struct DirKeys {
  uint8_t traffic[64];  // TLS 1.3 current traffic secret
  uint8_t key[32];
  uint8_t iv[12];
  uint8_t mac_key[48];
};

// TLS 1.3 HKDF-Expand-Label(secret, label, "", out_len). False on any KDF failure.
bool HkdfExpandLabel(const char* hash, const uint8_t* secret, size_t secret_len, const char* label,
                     uint8_t* out, size_t out_len);
// TLS 1.2 PRF(master, "key expansion", server_random + client_random) into out.
bool Tls12KeyBlock(const char* hash, const uint8_t* master, size_t master_len,
                   const uint8_t* client_random, const uint8_t* server_random, uint8_t* out,
                   size_t out_len);

// One direction's record protection. Reuses its cipher and MAC contexts for every record.
class RecordCipher {
 public:
  RecordCipher() = default;
  ~RecordCipher();
  RecordCipher(const RecordCipher&) = delete;
  RecordCipher& operator=(const RecordCipher&) = delete;

  // TLS 1.3: derives key and iv from the traffic secret (hash_len bytes) into keys.
  bool Init13(const Suite& suite, const uint8_t* secret, DirKeys* keys);
  // TLS 1.3 KeyUpdate: the next traffic secret and its key and iv.
  bool Update13();
  // TLS 1.2: keys->key, iv, mac_key are filled; etm = encrypt_then_mac negotiated (CBC).
  bool Init12(const Suite& suite, DirKeys* keys, bool etm);
  bool ready() const { return ready_; }
  const DirKeys* keys() const { return keys_; }
  // Wipes key state (the DirKeys bytes belong to the caller's pool) and frees the contexts.
  void Reset();

  // Opens one record (5-byte header + body, size bytes) as sequence number seq. On success
  // the plaintext is in out (capacity >= size), *out_len its length, *type its content type
  // (TLS 1.3: the inner type). False when the tag, MAC or padding says it is not this key and
  // sequence number, or the record is malformed.
  bool Open(const uint8_t* record, size_t size, uint64_t seq, uint8_t* out, size_t* out_len,
            uint8_t* type);
  // TLS 1.2 GCM records carry an explicit nonce that senders fill with the sequence number:
  // the first guess when resynchronizing. False if the suite has none.
  bool ExplicitSeq(const uint8_t* record, size_t size, uint64_t* seq) const;
  // The smallest protected record (header included) this cipher produces.
  size_t MinRecord() const;

 private:
  bool InitCipher();
  bool OpenAead13(const uint8_t* rec, size_t size, uint64_t seq, uint8_t* out, size_t* out_len,
                  uint8_t* type);
  bool OpenAead12(const uint8_t* rec, size_t size, uint64_t seq, uint8_t* out, size_t* out_len);
  bool OpenCbc(const uint8_t* rec, size_t size, uint64_t seq, uint8_t* out, size_t* out_len);
  bool Mac(const uint8_t* prefix13, const uint8_t* data, size_t len, uint8_t* mac);

  const Suite* suite_ = nullptr;
  DirKeys* keys_ = nullptr;
  bool etm_ = false;
  bool ready_ = false;
  EVP_CIPHER_CTX* ctx_ = nullptr;
  EVP_MAC_CTX* mac_ = nullptr;
};

}  // namespace mat::tls
