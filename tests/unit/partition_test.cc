// Key placement (consistent hashing with virtual nodes) and dense blocks.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/cluster/partition.h"

namespace mtps {
namespace {

std::vector<uint64_t> RandomKeys(size_t n) {
  std::mt19937_64 rng(42);
  std::vector<uint64_t> keys(n);
  for (auto& k : keys) k = rng();
  keys[0] = 0;
  keys[1] = ~0ULL;
  return keys;
}

TEST(KeyPartitionerTest, EveryProcessDerivesTheSamePlacement) {
  KeyPartitioner a(5), b(5);
  for (uint64_t key : RandomKeys(10000)) {
    int s = a.ServerOf(key);
    EXPECT_EQ(s, b.ServerOf(key));
    EXPECT_GE(s, 0);
    EXPECT_LT(s, 5);
  }
}

TEST(KeyPartitionerTest, SpreadsKeysEvenly) {
  for (int servers : {2, 3, 8}) {
    KeyPartitioner p(servers);
    std::vector<int> count(servers, 0);
    const auto keys = RandomKeys(400000);
    for (uint64_t key : keys) ++count[p.ServerOf(key)];
    const double fair = static_cast<double>(keys.size()) / servers;
    for (int s = 0; s < servers; ++s) {
      EXPECT_NEAR(count[s], fair, 0.12 * fair) << servers << " servers, server " << s;
    }
  }
}

TEST(KeyPartitionerTest, AddingAServerMovesAboutOneNthOfTheKeysAllToIt) {
  const auto keys = RandomKeys(200000);
  for (int servers : {1, 2, 4, 7}) {
    KeyPartitioner before(servers), after(servers + 1);
    size_t moved = 0;
    for (uint64_t key : keys) {
      int from = before.ServerOf(key), to = after.ServerOf(key);
      if (from != to) {
        ++moved;
        EXPECT_EQ(to, servers) << "a moved key must go to the new server";
      }
    }
    const double expected = static_cast<double>(keys.size()) / (servers + 1);
    EXPECT_NEAR(static_cast<double>(moved), expected, 0.15 * expected)
        << servers << " -> " << servers + 1;
  }
}

TEST(KeyPartitionerTest, OneServerTakesEverything) {
  KeyPartitioner p(1);
  for (uint64_t key : RandomKeys(1000)) EXPECT_EQ(p.ServerOf(key), 0);
}

TEST(DenseBlockTest, BlocksTileTheArray) {
  for (int64_t n : {0, 1, 7, 100, 37154}) {
    for (int servers : {1, 2, 3, 8}) {
      int64_t next = 0;
      for (int r = 0; r < servers; ++r) {
        DenseBlock b = DenseBlockOf(n, r, servers);
        EXPECT_EQ(b.begin, next);
        EXPECT_LE(b.size(), n / servers + 1);
        EXPECT_GE(b.size(), n / servers);
        next = b.end;
      }
      EXPECT_EQ(next, n);
    }
  }
}

}  // namespace
}  // namespace mtps
