// Tokens learned passively: when a login exchange (see login.h) is seen, the token it issued is
// remembered as belonging to the login's user, so later requests bearing the token are
// attributed to that user. Keyed by the token's SHA-256: the token itself is never stored.
// Entries live for a sliding TTL (each use renews it, as MKE renews a session that is used;
// never past the token's own expiry when that is known) and the least recently used entry is
// evicted when the cache is full. No clock of its own: every call says what time it is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>

#include "identity/digest.h"
#include "util/defaults.h"

namespace mat::identity {

struct TokenUser {
  std::string login;       // the login name given at login
  std::string account_id;  // the account id, when the login response said it (eNZi)
};

struct TokenCacheOptions {
  uint64_t ttl_ns =
      defaults::kTokenTtlSeconds * 1'000'000'000ull;  // MKE's default session lifetime: 60 minutes
  size_t max_entries = defaults::kTokenCacheSize;     // 0: learn nothing
};

struct TokenCacheStats {
  uint64_t learned = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t expired = 0;  // entries dropped because their time was up
  uint64_t evicted = 0;  // entries dropped to make room
};

class TokenCache {
 public:
  explicit TokenCache(TokenCacheOptions options = {});

  // Remembers that the token whose SHA-256 is `digest` belongs to `user`, from `now_ns` for the
  // TTL; `expires_ns` (nonzero) is the token's own expiry, beyond which it is never kept.
  // Learning a token again replaces its entry.
  void Learn(const Sha256Digest& digest, TokenUser user, uint64_t now_ns, uint64_t expires_ns = 0);
  // The token's user, or nullptr when unknown or expired (an expired entry is dropped). A hit
  // renews the entry's TTL and makes it the most recently used. The pointer is valid until the
  // next non-const call.
  const TokenUser* Find(const Sha256Digest& digest, uint64_t now_ns);
  void Forget(const Sha256Digest& digest);

  size_t size() const { return index_.size(); }
  const TokenCacheStats& stats() const { return stats_; }
  const TokenCacheOptions& options() const { return options_; }

 private:
  struct Entry {
    Sha256Digest digest;
    TokenUser user;
    uint64_t deadline_ns = 0;  // the sliding TTL's end
    uint64_t expires_ns = 0;   // the token's own expiry (0: unknown)
  };
  struct DigestHash {
    size_t operator()(const Sha256Digest& d) const;
  };
  uint64_t Deadline(uint64_t now_ns, uint64_t expires_ns) const;

  TokenCacheOptions options_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<Sha256Digest, std::list<Entry>::iterator, DigestHash> index_;
  TokenCacheStats stats_;
};

}  // namespace mat::identity
