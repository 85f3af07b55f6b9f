// Tests of SparseTable's row lifecycle: feature admission (count-min sketch),
// eviction by age, the row cap's approximate LRU, deletion against a
// std::unordered_map model, free-row reuse and memory accounting.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "ps/table/sparse_table.h"

namespace mtps {
namespace {

// SGD with learning rate 1: a row is its initial value minus the sum of its
// gradients, computed here in float in the same order, so values compare
// exactly.
SparseTableOptions SgdOptions(int dim) {
  SparseTableOptions o;
  o.dim = dim;
  o.init_scale = 0.5f;
  o.seed = 17;
  o.optimizer.mutable_sgd()->set_learning_rate(1.0f);
  return o;
}

std::vector<float> Initial(const SparseTableOptions& o, uint64_t key) {
  std::vector<float> w(o.dim);
  for (int j = 0; j < o.dim; ++j) w[j] = InitialValue(o.seed, key, j, o.init_scale);
  return w;
}

std::vector<float> PullOne(SparseTable* table, uint64_t key) {
  std::vector<float> out(table->dim());
  table->Pull(&key, 1, /*create_missing=*/false, out.data());
  return out;
}

std::vector<uint64_t> DistinctKeys(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::set<uint64_t> seen = {SparseTable::kEmptyKey};
  std::vector<uint64_t> keys;
  while (keys.size() < n) {
    const uint64_t k = rng();
    if (seen.insert(k).second) keys.push_back(k);
  }
  return keys;
}

// Pushes gradient `g` (every element) for each key, one call.
void PushAll(SparseTable* table, const std::vector<uint64_t>& keys, float g) {
  std::vector<float> grads(keys.size() * table->dim(), g);
  table->Push(keys.data(), keys.size(), grads.data());
}

// ---------------------------------------------------------------------------
// Admission

TEST(AdmissionTest, KthPushCreatesTheRowAndEarlierPushesOnlyCount) {
  SparseTableOptions o = SgdOptions(3);
  o.admission_min_count = 3;
  SparseTable table(o);
  ASSERT_NE(table.admission_sketch(), nullptr);
  std::vector<uint64_t> keys = DistinctKeys(200, 1);
  keys.push_back(SparseTable::kEmptyKey);
  keys.push_back(~uint64_t{0});

  PushAll(&table, keys, 1.0f);
  PushAll(&table, keys, 2.0f);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.counters().rejected, static_cast<int64_t>(2 * keys.size()));
  EXPECT_EQ(table.counters().admitted, 0);
  // Pulls before admission answer the initial value and never insert, even
  // when asked to create.
  std::vector<float> out(keys.size() * 3);
  table.Pull(keys.data(), keys.size(), /*create_missing=*/true, out.data());
  EXPECT_EQ(table.size(), 0u);
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::vector<float> want = Initial(o, keys[i]);
    ASSERT_EQ(std::vector<float>(out.begin() + i * 3, out.begin() + (i + 1) * 3), want);
  }
  // The third push admits every key and applies only its own gradient.
  PushAll(&table, keys, 4.0f);
  EXPECT_EQ(table.size(), keys.size());
  EXPECT_EQ(table.counters().admitted, static_cast<int64_t>(keys.size()));
  for (uint64_t key : keys) {
    std::vector<float> want = Initial(o, key);
    for (float& w : want) w -= 4.0f;
    ASSERT_EQ(PullOne(&table, key), want) << "key " << key;
  }
  // Once admitted, later pushes update normally.
  PushAll(&table, keys, 1.0f);
  EXPECT_EQ(table.counters().rejected, static_cast<int64_t>(2 * keys.size()));
  std::vector<float> want = Initial(o, keys[0]);
  for (float& w : want) w -= 5.0f;
  EXPECT_EQ(PullOne(&table, keys[0]), want);
}

TEST(AdmissionTest, RepeatedKeyInOneCallCountsPerOccurrence) {
  SparseTableOptions o = SgdOptions(1);
  o.admission_min_count = 3;
  SparseTable table(o);
  const uint64_t keys[4] = {5, 5, 5, 5};
  const float grads[4] = {1.0f, 2.0f, 4.0f, 8.0f};
  table.Push(keys, 4, grads);
  ASSERT_EQ(table.size(), 1u);
  EXPECT_EQ(table.counters().rejected, 2);
  // Third occurrence creates the row; third and fourth gradients apply.
  EXPECT_EQ(PullOne(&table, 5)[0], Initial(o, 5)[0] - 4.0f - 8.0f);
}

TEST(AdmissionTest, OffWhenMinCountIsAtMostOne) {
  for (int k : {0, 1}) {
    SparseTableOptions o = SgdOptions(2);
    o.admission_min_count = k;
    SparseTable table(o);
    EXPECT_EQ(table.admission_sketch(), nullptr);
    const uint64_t key = 9;
    const float g[2] = {1.0f, 1.0f};
    table.Push(&key, 1, g);
    EXPECT_EQ(table.size(), 1u) << "K=" << k;
  }
}

TEST(CountMinSketchTest, NeverUnderCountsEvenWhenCrowded) {
  // 4 x 256 counters for 3000 keys: many collisions, so the estimates must
  // over-count some keys; none may under-count.
  CountMinSketch sketch(8, 3);
  std::mt19937_64 rng(4);
  const std::vector<uint64_t> keys = DistinctKeys(3000, 5);
  std::unordered_map<uint64_t, uint32_t> truth;
  for (int i = 0; i < 30000; ++i) {
    const uint64_t key = keys[rng() % keys.size()];
    const uint32_t estimate = sketch.Add(key);
    const uint32_t count = ++truth[key];
    ASSERT_GE(estimate, count) << "key " << key;
  }
  size_t over = 0;
  for (const auto& [key, count] : truth) {
    ASSERT_GE(sketch.Estimate(key), count) << "key " << key;
    if (sketch.Estimate(key) > count) ++over;
  }
  EXPECT_GT(over, truth.size() / 2);  // the test did exercise collisions
  // An unseen key is estimated from the same crowded counters: >= 0 only.
  // A roomy sketch counts exactly (no collisions among 3000 keys in 2^20).
  CountMinSketch roomy(20, 3);
  for (const auto& [key, count] : truth) {
    for (uint32_t c = 0; c < count; ++c) roomy.Add(key);
  }
  size_t exact = 0;
  for (const auto& [key, count] : truth) exact += roomy.Estimate(key) == count;
  EXPECT_EQ(exact, truth.size());
  EXPECT_EQ(roomy.memory_bytes(), size_t{4} << 21);  // 4 x 2^20 x 2 bytes
}

TEST(CountMinSketchTest, SaturatesInsteadOfWrapping) {
  CountMinSketch sketch(4, 1);
  for (uint32_t i = 0; i < CountMinSketch::kMaxCount + 10; ++i) sketch.Add(77);
  EXPECT_EQ(sketch.Estimate(77), CountMinSketch::kMaxCount);
}

TEST(AdmissionTest, CrowdedSketchStillAdmitsAtTheKthPushAtLatest) {
  // Over-counting may admit early; under-counting (admitting late) never.
  SparseTableOptions o = SgdOptions(1);
  o.admission_min_count = 4;
  o.admission_sketch_width_log2 = 4;
  SparseTable table(o);
  const std::vector<uint64_t> keys = DistinctKeys(500, 6);
  for (int round = 0; round < 4; ++round) PushAll(&table, keys, 1.0f);
  EXPECT_EQ(table.size(), keys.size());
  EXPECT_LT(table.counters().rejected, static_cast<int64_t>(3 * keys.size()));
}

// ---------------------------------------------------------------------------
// Eviction by age

void CheckAgeEviction(int64_t t, size_t old_keys, size_t live_keys) {
  SCOPED_TRACE("T=" + std::to_string(t) + " old=" + std::to_string(old_keys));
  SparseTableOptions o = SgdOptions(2);
  o.evict_after_steps = t;
  SparseTable table(o);
  const std::vector<uint64_t> all = DistinctKeys(old_keys + live_keys, 7);
  std::vector<uint64_t> old(all.begin(), all.begin() + old_keys);
  old.push_back(SparseTable::kEmptyKey);  // the side bucket ages too
  const std::vector<uint64_t> live(all.begin() + old_keys, all.end());

  PushAll(&table, old, 1.0f);  // step 1
  // Steps 2 .. t: the old rows are at most t - 1 steps old and must stay.
  for (int64_t step = 2; step <= t; ++step) {
    PushAll(&table, live, 0.5f);
    ASSERT_EQ(table.size(), old.size() + live.size()) << "early eviction at step " << step;
  }
  EXPECT_EQ(table.counters().evicted, 0);
  // They are all gone by the end of step t + P (P = max(1, t/4), the sweep
  // period): old from step 1 + t on, and P pushes scan the whole index.
  const int64_t deadline = t + std::max<int64_t>(1, t / 4);
  for (int64_t step = t + 1; step <= deadline; ++step) PushAll(&table, live, 0.5f);
  EXPECT_EQ(table.size(), live.size());
  EXPECT_EQ(table.counters().evicted, static_cast<int64_t>(old.size()));
  for (uint64_t key : old) ASSERT_FALSE(table.Contains(key)) << "key " << key;
  // Survivors are intact: pushed at steps 2 .. deadline.
  const float pushes = static_cast<float>(deadline - 1);
  for (uint64_t key : live) {
    std::vector<float> want = Initial(o, key);
    for (float& w : want) {
      for (int i = 0; i < pushes; ++i) w -= 0.5f;
    }
    ASSERT_EQ(PullOne(&table, key), want) << "key " << key;
  }
  // An evicted key comes back from its initial value.
  std::vector<float> out(2);
  table.Pull(&old[0], 1, /*create_missing=*/true, out.data());
  EXPECT_EQ(out, Initial(o, old[0]));
  EXPECT_TRUE(table.Contains(old[0]));
  const float g[2] = {1.0f, 1.0f};
  table.Push(&old[1], 1, g);
  std::vector<float> want = Initial(o, old[1]);
  for (float& w : want) w -= 1.0f;
  EXPECT_EQ(PullOne(&table, old[1]), want);
}

TEST(EvictionTest, RowsUntouchedForTStepsGoAndRecentOnesStay) {
  CheckAgeEviction(1, 50, 20);  // full sweep every step
  CheckAgeEviction(3, 50, 20);
  CheckAgeEviction(8, 300, 40);
  CheckAgeEviction(100, 20000, 500);  // incremental sweep over a big index
}

TEST(EvictionTest, NoEvictionWhenOff) {
  SparseTable table(SgdOptions(1));
  const std::vector<uint64_t> keys = DistinctKeys(100, 8);
  PushAll(&table, keys, 1.0f);
  const uint64_t other = 1;
  const float g = 1.0f;
  for (int i = 0; i < 1000; ++i) table.Push(&other, 1, &g);
  EXPECT_EQ(table.size(), 101u);
  EXPECT_EQ(table.counters().evicted, 0);
}

// ---------------------------------------------------------------------------
// Row cap

TEST(RowCapTest, EvictsTheLeastRecentlyUpdatedRows) {
  SparseTableOptions o = SgdOptions(2);
  o.max_rows = 1000;
  SparseTable table(o);
  const std::vector<uint64_t> keys = DistinctKeys(1500, 9);
  const std::vector<uint64_t> first(keys.begin(), keys.begin() + 1000);
  // Steps 1..10: 100 rows each, so the first rows are the oldest.
  for (int i = 0; i < 10; ++i) {
    PushAll(&table, std::vector<uint64_t>(first.begin() + i * 100, first.begin() + (i + 1) * 100),
            1.0f);
  }
  // Step 11: the oldest 100 are touched again and become the most recent.
  const std::vector<uint64_t> recent(first.begin(), first.begin() + 100);
  PushAll(&table, recent, 1.0f);
  ASSERT_EQ(table.size(), 1000u);
  // Then 500 new keys, one per step: each insertion evicts one row.
  for (size_t i = 1000; i < 1500; ++i) {
    PushAll(&table, {keys[i]}, 1.0f);
    ASSERT_LE(table.size(), 1000u);
  }
  EXPECT_EQ(table.size(), 1000u);
  EXPECT_EQ(table.counters().evicted, 500);
  // Rows of steps 2..10 (900 of them) were the candidates; the recent 100 and
  // the new rows should survive (a young row is chosen only when all 16
  // sampled rows are young).
  size_t recent_alive = 0, new_alive = 0, old_alive = 0;
  for (uint64_t key : recent) recent_alive += table.Contains(key);
  for (size_t i = 1000; i < 1500; ++i) new_alive += table.Contains(keys[i]);
  for (size_t i = 100; i < 1000; ++i) old_alive += table.Contains(keys[i]);
  EXPECT_GE(recent_alive, 98u);
  EXPECT_GE(new_alive, 490u);
  EXPECT_EQ(old_alive + recent_alive + new_alive, 1000u);
  // Among the old rows, the older ones went first: rows of steps 2..4 are
  // mostly gone, rows of step 10 mostly stayed.
  size_t early_alive = 0, late_alive = 0;
  for (size_t i = 100; i < 400; ++i) early_alive += table.Contains(keys[i]);
  for (size_t i = 900; i < 1000; ++i) late_alive += table.Contains(keys[i]);
  EXPECT_LT(early_alive, 60u);
  EXPECT_GT(late_alive, 80u);
  // Survivors' values are intact.
  for (uint64_t key : recent) {
    if (!table.Contains(key)) continue;
    std::vector<float> want = Initial(o, key);
    for (float& w : want) w -= 2.0f;
    ASSERT_EQ(PullOne(&table, key), want);
  }
}

TEST(RowCapTest, CapOfOneAndTheSideBucketKey) {
  SparseTableOptions o = SgdOptions(1);
  o.max_rows = 1;
  SparseTable table(o);
  const float g = 1.0f;
  const uint64_t zero = SparseTable::kEmptyKey, five = 5;
  table.Push(&zero, 1, &g);
  table.Push(&five, 1, &g);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_FALSE(table.Contains(zero));
  EXPECT_TRUE(table.Contains(five));
  table.Push(&zero, 1, &g);
  EXPECT_TRUE(table.Contains(zero));
  EXPECT_FALSE(table.Contains(five));
  EXPECT_EQ(table.counters().evicted, 2);
  EXPECT_EQ(PullOne(&table, zero)[0], Initial(o, zero)[0] - 1.0f);
  // A creating pull at the cap evicts too.
  std::vector<float> out(1);
  table.Pull(&five, 1, true, out.data());
  EXPECT_EQ(table.size(), 1u);
  EXPECT_TRUE(table.Contains(five));
}

// ---------------------------------------------------------------------------
// Requests longer than a block. Pull and Push take keys in blocks of 128, in
// two passes (find every row, then copy or update them): the rows found must
// stay the keys' own even when an insertion in the block frees rows (row cap;
// with eviction by age, a growth of the index sweeps).

// Every row of the table, by key.
std::map<uint64_t, std::vector<float>> Rows(const SparseTable& table) {
  std::map<uint64_t, std::vector<float>> rows;
  table.ForEachRow(
      [&](uint64_t key, const float* w) { rows[key] = std::vector<float>(w, w + table.dim()); });
  return rows;
}

// n distinct keys, key 0 (the one kept beside the index) among them.
std::vector<uint64_t> PoolWithKeyZero(size_t n, uint64_t seed) {
  std::vector<uint64_t> pool = DistinctKeys(n - 1, seed);
  pool.insert(pool.begin() + static_cast<std::ptrdiff_t>(n / 10), SparseTable::kEmptyKey);
  return pool;
}

// n keys drawn with repeats from pool.
std::vector<uint64_t> Draw(const std::vector<uint64_t>& pool, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> keys(n);
  for (uint64_t& k : keys) k = pool[rng() % pool.size()];
  return keys;
}

std::vector<float> Ramp(size_t n) {
  std::vector<float> g(n);
  for (size_t i = 0; i < n; ++i) g[i] = 0.001f * static_cast<float>(i % 997 + 1);
  return g;
}

TEST(BlockedRequestTest, LongCreatingPullEqualsOnePullPerKeyWhileRowsAreFreed) {
  struct Case {
    const char* name;
    int dim;
    int64_t max_rows;
    int64_t evict_after_steps;
  };
  for (const Case& c :
       {Case{"plain", 16, 0, 0}, Case{"row cap", 16, 150, 0}, Case{"row cap, dim 5", 5, 150, 0},
        Case{"age", 16, 0, 400}, Case{"age, dim 5", 5, 0, 400}}) {
    SCOPED_TRACE(c.name);
    SparseTableOptions o = SgdOptions(c.dim);
    o.max_rows = c.max_rows;
    o.evict_after_steps = c.evict_after_steps;
    SparseTable one_call(o), per_key(o);
    const std::vector<uint64_t> pool = PoolWithKeyZero(700, 21);
    // The same history on both: 140 rows pushed at step 1, then 400 steps
    // of one other key. With eviction after 400 steps the old rows have
    // expired, and the incremental sweep (1/100 of the index per step) has
    // dropped only some of them.
    const std::vector<uint64_t> old_keys(pool.begin(), pool.begin() + 140);
    for (SparseTable* t : {&one_call, &per_key}) {
      std::vector<float> g = Ramp(old_keys.size() * c.dim);
      t->Push(old_keys.data(), old_keys.size(), g.data());
      for (int step = 0; step < 400; ++step) PushAll(t, {pool[699]}, 0.5f);
    }
    const int64_t evicted_before = one_call.counters().evicted;
    // Old and new keys with repeats: inserting the new ones evicts (row cap)
    // or grows the index, which sweeps the expired rows out (age).
    const std::vector<uint64_t> keys = Draw(pool, 1000, 22);
    std::vector<float> a(keys.size() * c.dim), b(keys.size() * c.dim);
    one_call.Pull(keys.data(), keys.size(), /*create_missing=*/true, a.data());
    for (size_t i = 0; i < keys.size(); ++i) {
      per_key.Pull(&keys[i], 1, /*create_missing=*/true, b.data() + i * c.dim);
    }
    EXPECT_EQ(a, b);
    EXPECT_EQ(one_call.counters().evicted, per_key.counters().evicted);
    EXPECT_EQ(one_call.counters().admitted, per_key.counters().admitted);
    EXPECT_EQ(Rows(one_call), Rows(per_key));
    if (c.max_rows > 0 || c.evict_after_steps > 0) {
      EXPECT_GT(one_call.counters().evicted, evicted_before + 50);
    }
  }
}

TEST(BlockedRequestTest, LongPushEqualsOnePushPerKeyForEveryOptimizer) {
  // Without eviction or Adam's table step, a push's result does not depend
  // on the step, so one call of n keys must equal n calls of one key.
  std::vector<std::pair<const char*, config::SparseOptimizer>> optimizers(4);
  optimizers[0].first = "sgd";
  optimizers[0].second.mutable_sgd()->set_learning_rate(0.1f);
  optimizers[1].first = "adagrad";
  optimizers[1].second.mutable_adagrad()->set_learning_rate(0.1f);
  optimizers[2].first = "adam (row step)";
  optimizers[2].second.mutable_adam()->set_step_count(config::Adam::ROW);
  optimizers[3].first = "ftrl";
  optimizers[3].second.mutable_ftrl()->set_alpha(0.1f);
  for (const auto& [name, optimizer] : optimizers) {
    for (int dim : {5, 16, 64}) {
      SCOPED_TRACE(std::string(name) + ", dim " + std::to_string(dim));
      SparseTableOptions o = SgdOptions(dim);
      o.optimizer = optimizer;
      SparseTable one_call(o), per_key(o), selected(o), selected_per_key(o);
      const std::vector<uint64_t> keys = Draw(PoolWithKeyZero(300, 23), 1000, 24);
      const std::vector<float> g = Ramp(keys.size() * dim);
      // A shard's share of a request: every third position, over 3 blocks.
      std::vector<uint32_t> sel;
      for (uint32_t i = 0; i < keys.size(); i += 3) sel.push_back(i);
      for (int round = 0; round < 2; ++round) {
        one_call.Push(keys.data(), keys.size(), g.data());
        for (size_t i = 0; i < keys.size(); ++i) per_key.Push(&keys[i], 1, g.data() + i * dim);
        selected.PushSelected(keys.data(), sel.data(), sel.size(), g.data());
        for (uint32_t i : sel) selected_per_key.Push(&keys[i], 1, g.data() + i * dim);
      }
      ASSERT_EQ(one_call.size(), per_key.size());
      EXPECT_EQ(Rows(one_call), Rows(per_key));
      EXPECT_EQ(Rows(selected), Rows(selected_per_key));
      // And a selected pull answers at the selected positions only.
      std::vector<float> out(keys.size() * dim, -7.0f), want(keys.size() * dim, -7.0f);
      selected.PullSelected(keys.data(), sel.data(), sel.size(), false, out.data());
      for (uint32_t i : sel) selected_per_key.Pull(&keys[i], 1, false, want.data() + i * dim);
      EXPECT_EQ(out, want);
    }
  }
}

TEST(BlockedRequestTest, LongPushUnderTheRowCapUpdatesOnlyEachKeysOwnRow) {
  // SGD at rate 1 with an integer gradient per occurrence: a row present at
  // the end is its value before the push (or its initial value, when it was
  // created or re-created in the push) minus the gradients of its last
  // occurrences, exactly. A row found before an eviction freed it and handed
  // it to another key would carry the other key's gradients too.
  SparseTableOptions o = SgdOptions(2);
  o.max_rows = 100;
  SparseTable table(o);
  const std::vector<uint64_t> pool = PoolWithKeyZero(300, 25);
  const std::vector<uint64_t> before(pool.begin(), pool.begin() + 100);
  PushAll(&table, before, 1000.0f);
  const std::map<uint64_t, std::vector<float>> prev = Rows(table);
  const std::vector<uint64_t> keys = Draw(pool, 600, 26);
  std::vector<float> grads(keys.size() * 2);
  for (size_t i = 0; i < keys.size(); ++i) grads[2 * i] = grads[2 * i + 1] = float(i + 1);
  table.Push(keys.data(), keys.size(), grads.data());
  ASSERT_GT(table.counters().evicted, 100);
  ASSERT_EQ(table.size(), 100u);
  for (const auto& [key, row] : Rows(table)) {
    std::vector<size_t> occurrences;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) occurrences.push_back(i);
    }
    bool explained = false;
    // The row kept (or re-created) from before occurrence s.
    for (size_t s = 0; s <= occurrences.size() && !explained; ++s) {
      for (bool from_prev : {true, false}) {
        if (from_prev && (s > 0 || prev.count(key) == 0)) continue;
        std::vector<float> want = from_prev ? prev.at(key) : Initial(o, key);
        for (size_t k = s; k < occurrences.size(); ++k) {
          for (float& w : want) w -= grads[2 * occurrences[k]];
        }
        if (want == row) explained = true;
      }
    }
    EXPECT_TRUE(explained) << "key " << key << ": row " << row[0] << ", " << row[1];
  }
}

// ---------------------------------------------------------------------------
// Deletion against a model

TEST(DeletionTest, RandomInsertEraseAgainstAMapModel) {
  const SparseTableOptions o = SgdOptions(2);
  SparseTable table(o);
  std::mt19937_64 rng(2025);
  std::vector<uint64_t> pool = DistinctKeys(4000, 10);
  pool.push_back(SparseTable::kEmptyKey);
  pool.push_back(~uint64_t{0});
  pool.push_back(1);
  std::unordered_map<uint64_t, std::vector<float>> model;
  auto check_key = [&](uint64_t key) {
    const auto it = model.find(key);
    ASSERT_EQ(table.Contains(key), it != model.end()) << "key " << key;
    ASSERT_EQ(PullOne(&table, key), it != model.end() ? it->second : Initial(o, key))
        << "key " << key;
  };
  const int kOps = 100000;
  for (int op = 0; op < kOps; ++op) {
    // Phases of 20k ops alternate insert-heavy and erase-heavy, so the index
    // grows, shrinks and runs at high load.
    const int insert_percent = (op / 20000) % 2 == 0 ? 75 : 20;
    const uint64_t key = pool[rng() % pool.size()];
    const int dice = static_cast<int>(rng() % 100);
    if (dice < insert_percent) {
      const float g[2] = {static_cast<float>(rng() % 7) - 3.0f, 0.25f};
      table.Push(&key, 1, g);
      auto it = model.find(key);
      if (it == model.end()) it = model.emplace(key, Initial(o, key)).first;
      it->second[0] -= g[0];
      it->second[1] -= g[1];
    } else if (dice < 95) {
      ASSERT_EQ(table.Erase(key), model.erase(key) == 1) << "op " << op << " key " << key;
    } else {
      check_key(key);
    }
    ASSERT_EQ(table.size(), model.size()) << "op " << op;
    if (op % 10000 == 9999) {
      for (uint64_t k : pool) check_key(k);
    }
  }
  for (uint64_t k : pool) check_key(k);
  EXPECT_EQ(table.counters().evicted, 0);
}

// ---------------------------------------------------------------------------
// Memory

TEST(MemoryTest, ReportAddsUpAndFreedRowsAreReused) {
  const SparseTableOptions o = SgdOptions(8);
  SparseTable table(o);
  const MemoryReport empty = table.memory_report();
  EXPECT_EQ(empty.rows, 0u);
  EXPECT_EQ(empty.raw_row_bytes, sizeof(uint64_t) + 8 * sizeof(float));
  EXPECT_EQ(empty.bytes_per_row, 0.0);

  const size_t kN = 200000;
  const std::vector<uint64_t> keys = DistinctKeys(2 * kN, 11);
  const std::vector<uint64_t> a(keys.begin(), keys.begin() + kN);
  const std::vector<uint64_t> b(keys.begin() + kN, keys.end());
  PushAll(&table, a, 1.0f);
  const MemoryReport full = table.memory_report();
  EXPECT_EQ(full.rows, kN);
  EXPECT_EQ(full.total_bytes, full.index_bytes + full.arena_bytes + full.other_bytes);
  EXPECT_EQ(full.total_bytes, table.memory_bytes());
  EXPECT_GT(full.total_bytes, empty.total_bytes);
  // Rows: at least their floats; index: at least 16 bytes per row at load
  // <= 0.7; and not wasteful: within 3x of the raw key + row bytes.
  EXPECT_GE(full.arena_bytes, kN * 8 * sizeof(float));
  EXPECT_GE(full.index_bytes, kN * 16 * 10 / 7);
  EXPECT_GE(full.bytes_per_row, static_cast<double>(full.raw_row_bytes));
  EXPECT_LE(full.bytes_per_row, 3.0 * full.raw_row_bytes);

  // Erasing 95% shrinks the index; the arena keeps its chunks for reuse.
  for (size_t i = 0; i < kN * 95 / 100; ++i) ASSERT_TRUE(table.Erase(a[i]));
  const MemoryReport small = table.memory_report();
  EXPECT_EQ(small.rows, kN - kN * 95 / 100);
  EXPECT_LE(small.index_bytes, full.index_bytes / 8);
  EXPECT_EQ(small.arena_bytes, full.arena_bytes);
  EXPECT_LT(small.total_bytes, full.total_bytes);

  // As many new rows again fit in the freed rows: the arena does not grow.
  std::vector<uint64_t> refill(b.begin(), b.begin() + kN * 95 / 100);
  PushAll(&table, refill, 2.0f);
  const MemoryReport again = table.memory_report();
  EXPECT_EQ(again.rows, kN);
  EXPECT_EQ(again.arena_bytes, full.arena_bytes);
  EXPECT_LE(again.index_bytes, full.index_bytes);
  // And the reused rows hold the new keys' values, the old survivors theirs.
  for (size_t i = 0; i < refill.size(); i += 997) {
    std::vector<float> want = Initial(o, refill[i]);
    for (float& w : want) w -= 2.0f;
    ASSERT_EQ(PullOne(&table, refill[i]), want);
  }
  for (size_t i = kN * 95 / 100; i < kN; i += 101) {
    std::vector<float> want = Initial(o, a[i]);
    for (float& w : want) w -= 1.0f;
    ASSERT_EQ(PullOne(&table, a[i]), want);
  }
}

TEST(MemoryTest, RowWidthFollowsTheOptimizerAndSketchIsCounted) {
  SparseTableOptions o = SgdOptions(4);
  o.optimizer.mutable_adam();
  o.admission_min_count = 2;
  SparseTable table(o);
  const MemoryReport r = table.memory_report();
  EXPECT_EQ(r.raw_row_bytes, sizeof(uint64_t) + (3 * 4 + 1) * sizeof(float));
  EXPECT_GE(r.other_bytes, size_t{8} << 20);  // the 8 MiB sketch
  o.optimizer.mutable_ftrl();
  o.admission_min_count = 0;
  SparseTable ftrl(o);
  EXPECT_EQ(ftrl.memory_report().raw_row_bytes, sizeof(uint64_t) + 3 * 4 * sizeof(float));
  EXPECT_LT(ftrl.memory_bytes(), size_t{8} << 20);
}

}  // namespace
}  // namespace mtps
