#include "identity/token_cache.h"

#include <cstring>

namespace mat::identity {

size_t TokenCache::DigestHash::operator()(const Sha256Digest& d) const {
  size_t h = 0;
  std::memcpy(&h, d.data(), sizeof h);  // a SHA-256 is as uniform as hashes get
  return h;
}

TokenCache::TokenCache(TokenCacheOptions options) : options_(options) {}

uint64_t TokenCache::Deadline(uint64_t now_ns, uint64_t expires_ns) const {
  uint64_t deadline = now_ns > UINT64_MAX - options_.ttl_ns ? UINT64_MAX : now_ns + options_.ttl_ns;
  if (expires_ns != 0 && expires_ns < deadline) deadline = expires_ns;
  return deadline;
}

void TokenCache::Learn(const Sha256Digest& digest, TokenUser user, uint64_t now_ns,
                       uint64_t expires_ns) {
  if (options_.max_entries == 0) return;
  if (expires_ns != 0 && expires_ns <= now_ns) return;  // already expired
  Forget(digest);
  while (index_.size() >= options_.max_entries) {
    index_.erase(lru_.back().digest);
    lru_.pop_back();
    ++stats_.evicted;
  }
  lru_.push_front(Entry{digest, std::move(user), Deadline(now_ns, expires_ns), expires_ns});
  index_.emplace(digest, lru_.begin());
  ++stats_.learned;
}

const TokenUser* TokenCache::Find(const Sha256Digest& digest, uint64_t now_ns) {
  auto it = index_.find(digest);
  if (it == index_.end()) {
    ++stats_.misses;
    return nullptr;
  }
  Entry& entry = *it->second;
  if (now_ns >= entry.deadline_ns) {
    lru_.erase(it->second);
    index_.erase(it);
    ++stats_.expired;
    ++stats_.misses;
    return nullptr;
  }
  entry.deadline_ns = Deadline(now_ns, entry.expires_ns);
  lru_.splice(lru_.begin(), lru_, it->second);
  ++stats_.hits;
  return &lru_.front().user;
}

void TokenCache::Forget(const Sha256Digest& digest) {
  auto it = index_.find(digest);
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

}  // namespace mat::identity
