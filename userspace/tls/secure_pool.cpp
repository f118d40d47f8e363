#include "tls/secure_pool.h"

#include <openssl/crypto.h>
#include <sys/mman.h>

namespace mat::tls {

namespace {
constexpr size_t kChunkBytes = 64 * 1024;
}

SecurePool::SecurePool(size_t slot_size) : slot_size_((slot_size + 63) / 64 * 64) {}

SecurePool::~SecurePool() {
  for (const Chunk& c : chunks_) {
    OPENSSL_cleanse(c.base, c.size);
    munmap(c.base, c.size);
  }
}

void* SecurePool::Alloc() {
  if (free_.empty()) {
    size_t size = slot_size_ > kChunkBytes ? slot_size_ : kChunkBytes;
    void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return nullptr;
    // Keys must never reach a core file; without this guarantee hold no keys at all.
    if (madvise(base, size, MADV_DONTDUMP) != 0) {
      munmap(base, size);
      return nullptr;
    }
    chunks_.push_back({base, size});
    for (size_t off = size / slot_size_ * slot_size_; off >= slot_size_; off -= slot_size_)
      free_.push_back(static_cast<char*>(base) + off - slot_size_);
  }
  void* slot = free_.back();
  free_.pop_back();
  ++in_use_;
  return slot;  // zero: fresh mappings are, freed slots were wiped
}

void SecurePool::Free(void* slot) {
  if (slot == nullptr) return;
  OPENSSL_cleanse(slot, slot_size_);
  free_.push_back(slot);
  --in_use_;
}

}  // namespace mat::tls
