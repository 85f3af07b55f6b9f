// Tests of ArrayPool (common/net/array_pool.h): arrays come back to the pool when
// ZeroMQ lets go of their payload and are reused for requests of similar
// size, the pool keeps no more than its byte cap, and a payload may outlive
// its pool.
#include "common/net/array_pool.h"

#include <cstring>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

namespace mtps {
namespace {

TEST(ArrayPoolTest, ReusesArraysOfSimilarSize) {
  ArrayPool<float> pool;
  PooledArray<float> a = pool.Acquire(1000);
  EXPECT_EQ(a.capacity, 1024u);  // rounded up to a power of two
  float* first = a.get();
  pool.Release(std::move(a));
  EXPECT_EQ(pool.counters().pooled_bytes, 1024 * sizeof(float));

  PooledArray<float> b = pool.Acquire(600);  // 1024 <= 2 x 600: reused
  EXPECT_EQ(b.get(), first);
  EXPECT_EQ(b.capacity, 1024u);
  EXPECT_EQ(pool.counters().reused, 1);
  EXPECT_EQ(pool.counters().pooled_bytes, 0u);
  pool.Release(std::move(b));

  PooledArray<float> c = pool.Acquire(400);  // 1024 > 2 x 400: a new, smaller one
  EXPECT_NE(c.get(), first);
  EXPECT_EQ(c.capacity, 512u);
  PooledArray<float> d = pool.Acquire(2000);  // larger than anything free
  EXPECT_EQ(d.capacity, 2048u);
  EXPECT_EQ(pool.counters().allocated, 3);
  EXPECT_EQ(pool.counters().reused, 1);
}

TEST(ArrayPoolTest, PayloadReturnsItsArrayWhenReleased) {
  ArrayPool<float> pool;
  PooledArray<float> a = pool.Acquire(100);
  for (size_t i = 0; i < 100; ++i) a[i] = static_cast<float>(i);
  float* data = a.get();
  {
    Payload p = pool.ToPayload(std::move(a), 100);
    EXPECT_EQ(p.dtype(), wire::F32);
    ASSERT_EQ(p.count(), 100u);
    EXPECT_EQ(p.bytes().data(), static_cast<void*>(data));  // no copy
    std::vector<float> scratch;
    EXPECT_EQ(p.Data<float>(&scratch)[99], 99.0f);
    EXPECT_EQ(pool.counters().pooled_bytes, 0u);  // still ZeroMQ's
  }
  // The message is gone: its array is back and serves the next pull.
  EXPECT_EQ(pool.counters().pooled_bytes, 128 * sizeof(float));
  PooledArray<float> b = pool.Acquire(90);
  EXPECT_EQ(b.get(), data);
}

TEST(ArrayPoolTest, KeepsNoMoreThanItsCap) {
  ArrayPool<float> pool(/*max_pooled_bytes=*/4096);
  PooledArray<float> big = pool.Acquire(2048);   // 8 KiB
  PooledArray<float> small = pool.Acquire(512);  // 2 KiB
  pool.Release(std::move(big));
  EXPECT_EQ(pool.counters().pooled_bytes, 0u);  // freed instead
  pool.Release(std::move(small));
  EXPECT_EQ(pool.counters().pooled_bytes, 2048u);
}

TEST(ArrayPoolTest, PayloadMayOutliveThePool) {
  Payload p;
  {
    ArrayPool<float> pool;
    PooledArray<float> a = pool.Acquire(64);
    std::memset(a.get(), 0, 64 * sizeof(float));
    p = pool.ToPayload(std::move(a), 64);
  }
  EXPECT_EQ(p.count(), 64u);
  p = Payload();  // frees the array through the pool's surviving state
}

}  // namespace
}  // namespace mtps
