// The probe-plan caches are bounded: the least recently used plan goes first, so a long-running
// auditor that sees many files (upgraded libraries, many container images) keeps a fixed number.
#include "tap/file_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace mat::tap {
namespace {

FileKey Key(uint64_t inode) { return {1, inode}; }

TEST(FileCache, KeepsAtMostItsCapacityLeastRecentlyUsedFirstOut) {
  FileCache<std::string> cache(3);
  for (uint64_t i = 1; i <= 3; ++i) cache.Insert(Key(i), "plan" + std::to_string(i));
  EXPECT_EQ(cache.size(), 3u);
  ASSERT_NE(cache.Find(Key(1)), nullptr);  // 1 is now the most recently used
  cache.Insert(Key(4), "plan4");           // 2 goes
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.Find(Key(2)), nullptr);
  ASSERT_NE(cache.Find(Key(1)), nullptr);
  EXPECT_EQ(*cache.Find(Key(1)), "plan1");
  EXPECT_EQ(*cache.Find(Key(3)), "plan3");
  EXPECT_EQ(*cache.Find(Key(4)), "plan4");
  // Many files seen over time: the size stays at the capacity.
  for (uint64_t i = 100; i < 1100; ++i) cache.Insert(Key(i), "p");
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.Find(Key(1)), nullptr);
  EXPECT_NE(cache.Find(Key(1099)), nullptr);
}

TEST(FileCache, ReinsertingAKeyReplacesItsValue) {
  FileCache<int> cache(2);
  cache.Insert(Key(1), 1);
  int& value = cache.Insert(Key(1), 2);
  EXPECT_EQ(value, 2);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(*cache.Find(Key(1)), 2);
  cache.Insert({2, 1}, 3);  // same inode on another device: another file
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(*cache.Find(Key(1)), 2);
}

// The value just found or inserted survives until `capacity` other files are inserted.
TEST(FileCache, AFoundValueOutlivesTheNextInserts) {
  FileCache<std::string> cache(4);
  for (uint64_t i = 1; i <= 4; ++i) cache.Insert(Key(i), std::to_string(i));
  std::string* found = cache.Find(Key(1));
  ASSERT_NE(found, nullptr);
  for (uint64_t i = 5; i <= 7; ++i) cache.Insert(Key(i), std::to_string(i));
  EXPECT_EQ(*found, "1");
  EXPECT_EQ(cache.Find(Key(1)), found);
}

}  // namespace
}  // namespace mat::tap
