// A bounded cache of per-file results (probe plans), keyed by the file's (device, inode): each
// library or program is analysed once however many processes map it, and at most `capacity`
// results are kept, the least recently used going first. An upgraded library is a new inode;
// without a bound, the plans of every file ever seen (and of every failed analysis) would
// stay for the life of the auditor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <utility>

namespace mat::tap {

using FileKey = std::pair<uint64_t, uint64_t>;  // (device, inode)

template <class Value>
class FileCache {
 public:
  explicit FileCache(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

  // The value for key, now the most recently used; nullptr when absent. The pointer stays valid
  // until `capacity` other keys have been inserted.
  Value* Find(const FileKey& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }

  // Stores value for key (replacing any), as the most recently used, and drops the least
  // recently used entries beyond the capacity.
  Value& Insert(const FileKey& key, Value value) {
    if (auto it = index_.find(key); it != index_.end()) {
      order_.erase(it->second);
      index_.erase(it);
    }
    order_.emplace_front(key, std::move(value));
    index_[key] = order_.begin();
    while (order_.size() > capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    return order_.front().second;
  }

  size_t size() const { return order_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  using Entry = std::pair<FileKey, Value>;
  size_t capacity_;
  std::list<Entry> order_;  // most recently used first
  std::map<FileKey, typename std::list<Entry>::iterator> index_;
};

}  // namespace mat::tap
