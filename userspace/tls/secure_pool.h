// Fixed-size slots for TLS secrets and keys in memory that core dumps leave out
// (madvise MADV_DONTDUMP); a slot is wiped when freed and every slot when the pool goes.
#pragma once

#include <cstddef>
#include <vector>

namespace mat::tls {

class SecurePool {
 public:
  explicit SecurePool(size_t slot_size);
  ~SecurePool();
  SecurePool(const SecurePool&) = delete;
  SecurePool& operator=(const SecurePool&) = delete;

  // A zeroed slot of slot_size bytes, or nullptr when no memory could be mapped.
  void* Alloc();
  // Wipes the slot and keeps it for reuse.
  void Free(void* slot);
  size_t in_use() const { return in_use_; }

 private:
  struct Chunk {
    void* base;
    size_t size;
  };
  size_t slot_size_;
  std::vector<Chunk> chunks_;
  std::vector<void*> free_;
  size_t in_use_ = 0;
};

}  // namespace mat::tls
