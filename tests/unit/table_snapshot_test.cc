// Tests of the table snapshots (checkpoints): SparseTable::Snapshot,
// WriteSparseSnapshot and SparseTable::Restore for every optimizer, key 0,
// eviction ages, the row cap, admission counts, the snapshot's independence
// from its table, and hostile input (truncation, flipped bytes, forged
// headers); the delta snapshots (StartDelta, DeltaSnapshot, ApplyDelta):
// chains that reproduce the table exactly under random operations in every
// optimizer and eviction setting, the subtle changes (rows created at the
// base step, keys removed and created again, backward shifts, resizes, row
// cap evictions, stamps across 2^32), wrong chains and hostile input;
// DenseStore::Serialize and Restore likewise.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "ps/table/dense_store.h"
#include "ps/table/sparse_table.h"

namespace mtps {
namespace {

using Kind = SparseTable::OptimizerKind;

constexpr Kind kAllKinds[] = {Kind::kSgd, Kind::kAdagrad, Kind::kAdam, Kind::kFtrl};
constexpr const char* kWhere = "ckpt/server-0.shard-1";
// Header offsets of MTPSROWS (sparse_table.h).
constexpr size_t kHeaderBytes = 104;
constexpr size_t kDimAt = 12;
constexpr size_t kStepAt = 24;
constexpr size_t kAdmittedAt = 32;
constexpr size_t kRowsAt = 56;
constexpr size_t kCapacityLog2At = 64;
constexpr size_t kSketchDepthAt = 68;
constexpr size_t kSketchWidthAt = 88;

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kSgd:
      return "sgd";
    case Kind::kAdagrad:
      return "adagrad";
    case Kind::kAdam:
      return "adam";
    case Kind::kFtrl:
      return "ftrl";
  }
  return "?";
}

SparseTableOptions Options(Kind kind, int dim) {
  SparseTableOptions o;
  o.dim = dim;
  o.init_scale = 0.1f;
  o.seed = 42;
  switch (kind) {
    case Kind::kSgd:
      o.optimizer.mutable_sgd()->set_learning_rate(0.05f);
      break;
    case Kind::kAdagrad:
      o.optimizer.mutable_adagrad()->set_learning_rate(0.1f);
      o.optimizer.mutable_adagrad()->set_initial_accumulator(0.1f);
      break;
    case Kind::kAdam:
      o.optimizer.mutable_adam()->set_learning_rate(0.01f);
      break;
    case Kind::kFtrl:
      o.optimizer.mutable_ftrl()->set_alpha(0.05f);
      o.optimizer.mutable_ftrl()->set_beta(1.0f);
      o.optimizer.mutable_ftrl()->set_l1(0.001f);
      o.optimizer.mutable_ftrl()->set_l2(0.01f);
      break;
  }
  return o;
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

// Pushes keys with gradients drawn from rng (the same rng state gives the
// same push).
void PushRandom(SparseTable* table, const std::vector<uint64_t>& keys, std::mt19937_64* rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> grads(keys.size() * table->dim());
  for (float& g : grads) g = normal(*rng);
  table->Push(keys.data(), keys.size(), grads.data());
}

// A random sample (with repeats) of `keys`.
std::vector<uint64_t> Sample(const std::vector<uint64_t>& keys, size_t n, std::mt19937_64* rng) {
  std::vector<uint64_t> out(n);
  for (auto& k : out) k = keys[(*rng)() % keys.size()];
  return out;
}

std::string Write(const SparseTableSnapshot& snapshot, size_t* chunks = nullptr) {
  std::string out;
  size_t calls = 0;
  const Status s = WriteSparseSnapshot(snapshot, [&](const char* data, size_t size) {
    EXPECT_LE(size, size_t{1} << 20);
    EXPECT_GT(size, 0u);
    out.append(data, size);
    ++calls;
    return Status::OK();
  });
  EXPECT_TRUE(s.ok()) << s;
  if (chunks != nullptr) *chunks = calls;
  return out;
}

std::string Serialize(const SparseTable& table) { return Write(table.Snapshot()); }

// Pull without inserting, as raw bytes so that comparisons are bitwise (NaN
// and -0 included).
std::string PullBytes(SparseTable* table, const std::vector<uint64_t>& keys) {
  std::vector<float> out(keys.size() * table->dim());
  table->Pull(keys.data(), keys.size(), /*create_missing=*/false, out.data());
  return std::string(reinterpret_cast<const char*>(out.data()), out.size() * sizeof(float));
}

void ExpectSameState(SparseTable* a, SparseTable* b, const std::vector<uint64_t>& keys) {
  EXPECT_EQ(a->size(), b->size());
  EXPECT_EQ(a->steps(), b->steps());
  EXPECT_EQ(a->counters().admitted, b->counters().admitted);
  EXPECT_EQ(a->counters().rejected, b->counters().rejected);
  EXPECT_EQ(a->counters().evicted, b->counters().evicted);
  for (uint64_t k : keys) ASSERT_EQ(a->Contains(k), b->Contains(k)) << "key " << k;
  EXPECT_TRUE(PullBytes(a, keys) == PullBytes(b, keys));
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// A restore that must fail: a clean error starting with the file name, and
// an empty table that still works.
void ExpectCleanFailure(SparseTable* table, const std::string& bytes, const std::string& what) {
  const Status s = table->Restore(bytes.data(), bytes.size(), kWhere);
  ASSERT_FALSE(s.ok()) << what;
  EXPECT_TRUE(s.code() == StatusCode::kCorruption || s.code() == StatusCode::kInvalidArgument)
      << what << ": " << s;
  EXPECT_TRUE(StartsWith(s.message(), std::string(kWhere) + ": ")) << what << ": " << s;
  ASSERT_EQ(table->size(), 0u) << what;
  EXPECT_EQ(table->steps(), 0) << what;
  EXPECT_EQ(table->counters().admitted, 0) << what;
}

void StoreU32(std::string* bytes, size_t at, uint32_t v) { std::memcpy(&(*bytes)[at], &v, 4); }
void StoreU64(std::string* bytes, size_t at, uint64_t v) { std::memcpy(&(*bytes)[at], &v, 8); }
// Recomputes the closing checksum after a forged edit.
void Reseal(std::string* bytes) {
  StoreU64(bytes, bytes->size() - 8, SnapshotChecksum::Of(bytes->data(), bytes->size() - 8));
}

// A table of `rows` rows (key 0 among them) pushed `steps` times.
struct Filled {
  SparseTableOptions options;
  std::vector<uint64_t> keys;
};
Filled Fill(SparseTable* table, const SparseTableOptions& options, size_t rows, int steps,
            uint64_t seed) {
  Filled f{options, DistinctKeys(rows - 1, seed)};
  f.keys.push_back(SparseTable::kEmptyKey);
  std::mt19937_64 rng(seed);
  PushRandom(table, f.keys, &rng);
  for (int s = 1; s < steps; ++s) PushRandom(table, Sample(f.keys, rows / 2, &rng), &rng);
  return f;
}

// ---------------------------------------------------------------------------
// Round trips

TEST(TableSnapshotTest, RoundTripEveryOptimizerAndDimContinuesBitIdentically) {
  for (Kind kind : kAllKinds) {
    for (int dim : {1, 8, 13}) {
      SCOPED_TRACE(std::string(KindName(kind)) + " dim " + std::to_string(dim));
      const SparseTableOptions o = Options(kind, dim);
      SparseTable original(o);
      const Filled f = Fill(&original, o, 3000, 6, 11 * dim);
      // Never-seen keys answer their initial values in both.
      std::vector<uint64_t> probe = f.keys;
      const std::vector<uint64_t> fresh = DistinctKeys(50, 999);
      probe.insert(probe.end(), fresh.begin(), fresh.end());

      const SparseTableSnapshot snapshot = original.Snapshot();
      EXPECT_EQ(snapshot.rows(), original.size());
      EXPECT_EQ(snapshot.dim(), dim);
      EXPECT_EQ(snapshot.steps(), original.steps());
      EXPECT_GE(snapshot.memory_bytes(), original.size() * original.row_floats() * sizeof(float));
      const std::string bytes = Write(snapshot);
      SparseTable restored(o);
      const Status s = restored.Restore(bytes.data(), bytes.size(), kWhere);
      ASSERT_TRUE(s.ok()) << s;
      ExpectSameState(&original, &restored, probe);
      // Same layout, stamps, counters, sweep and sampler state: the restored
      // table serializes to the same bytes.
      EXPECT_TRUE(Serialize(restored) == bytes);

      // Optimizer state (Adam's per-row step count too): the same pushes,
      // new keys among them, give the same bits.
      std::mt19937_64 rng_a(5), rng_b(5);
      for (int step = 0; step < 5; ++step) {
        std::vector<uint64_t> keys = Sample(probe, 2000, &rng_a);
        Sample(probe, 2000, &rng_b);
        PushRandom(&original, keys, &rng_a);
        PushRandom(&restored, keys, &rng_b);
      }
      ExpectSameState(&original, &restored, probe);
      EXPECT_TRUE(Serialize(restored) == Serialize(original));
    }
  }
}

TEST(TableSnapshotTest, AdamRowsKeepTheirOwnStepCounts) {
  // Two rows pushed 1 and 40 times: after a restore each continues with its
  // own bias correction, so one more equal push moves them as in the
  // original.
  const SparseTableOptions o = Options(Kind::kAdam, 4);
  SparseTable original(o);
  const uint64_t young = 7, old = 8;
  const std::vector<float> g(4, 0.5f);
  for (int i = 0; i < 40; ++i) original.Push(&old, 1, g.data());
  original.Push(&young, 1, g.data());
  const std::string bytes = Serialize(original);
  SparseTable restored(o);
  ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
  const std::vector<uint64_t> both = {young, old};
  const std::vector<float> g2(8, -0.25f);
  original.Push(both.data(), 2, g2.data());
  restored.Push(both.data(), 2, g2.data());
  ExpectSameState(&original, &restored, both);
}

// The index's home bucket of a key: Mix64 (common/base/hash.h, fixed
// forever), restated since this test links only mtps_table.
uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

TEST(TableSnapshotTest, ProbeRunWrappingAroundTheIndexKeepsItsLayout) {
  // Three keys whose home is the last of 16 buckets fill buckets 15, 0 and 1.
  // Restored in bucket order from 0 they would land in another order; the
  // writer starts after a free bucket, so they land where they were.
  std::vector<uint64_t> keys;
  for (uint64_t k = 1; keys.size() < 3; ++k) {
    if ((Mix64(k) & 15) == 15) keys.push_back(k);
  }
  keys.push_back(1000001);
  keys.push_back(1000002);
  SparseTableOptions o = Options(Kind::kSgd, 1);
  o.evict_after_steps = 2;  // the sweep visits buckets in index order
  SparseTable original(o);
  std::mt19937_64 rng(1);
  PushRandom(&original, keys, &rng);
  const std::string bytes = Serialize(original);
  SparseTable restored(o);
  ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
  EXPECT_TRUE(Serialize(restored) == bytes);
  ExpectSameState(&original, &restored, keys);
}

TEST(TableSnapshotTest, KeyZeroSurvives) {
  const SparseTableOptions o = Options(Kind::kAdagrad, 3);
  SparseTable original(o);
  const std::vector<uint64_t> keys = {SparseTable::kEmptyKey, 1, ~uint64_t{0}};
  const std::vector<float> g = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  original.Push(keys.data(), keys.size(), g.data());
  original.Push(keys.data(), 1, g.data());  // key 0 only
  const std::string bytes = Serialize(original);
  SparseTable restored(o);
  ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
  EXPECT_TRUE(restored.Contains(SparseTable::kEmptyKey));
  EXPECT_EQ(restored.size(), 3u);
  ExpectSameState(&original, &restored, keys);
  // Key 0 alone, without any other row.
  SparseTable lone(o);
  lone.Push(keys.data(), 1, g.data());
  const std::string lone_bytes = Serialize(lone);
  SparseTable lone_restored(o);
  ASSERT_TRUE(lone_restored.Restore(lone_bytes.data(), lone_bytes.size(), kWhere).ok());
  ExpectSameState(&lone, &lone_restored, keys);
}

TEST(TableSnapshotTest, EmptyTableRoundTrips) {
  const SparseTableOptions o = Options(Kind::kSgd, 2);
  SparseTable original(o);
  const std::string bytes = Serialize(original);
  EXPECT_EQ(bytes.size(), kHeaderBytes + 8);
  SparseTable restored(o);
  ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
  EXPECT_EQ(restored.size(), 0u);
  EXPECT_EQ(restored.steps(), 0);
}

TEST(TableSnapshotTest, RestoreReplacesTheTablesContent) {
  const SparseTableOptions o = Options(Kind::kFtrl, 5);
  SparseTable source(o);
  const Filled f = Fill(&source, o, 200, 3, 1);
  SparseTable target(o);
  const Filled other = Fill(&target, o, 5000, 9, 2);
  const std::string bytes = Serialize(source);
  ASSERT_TRUE(target.Restore(bytes.data(), bytes.size(), kWhere).ok());
  EXPECT_EQ(target.size(), 200u);
  EXPECT_EQ(target.steps(), 3);
  for (uint64_t k : other.keys) {
    if (k != SparseTable::kEmptyKey) {
      ASSERT_FALSE(target.Contains(k));
    }
  }
  std::vector<uint64_t> all = f.keys;
  all.insert(all.end(), other.keys.begin(), other.keys.end());
  ExpectSameState(&source, &target, all);
  // Its memory is that of the restored rows, not of the old ones.
  EXPECT_LT(target.memory_report().index_bytes, size_t{16} * 1024);
}

TEST(TableSnapshotTest, RestoredIndexIsNotOverFullAndMemoryReportIsSane) {
  const SparseTableOptions o = Options(Kind::kAdagrad, 8);
  SparseTable original(o);
  Fill(&original, o, 100000, 2, 3);
  const std::string bytes = Serialize(original);
  SparseTable restored(o);
  ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
  const MemoryReport r = restored.memory_report();
  const size_t buckets = r.index_bytes / 16;
  EXPECT_EQ(r.rows, 100000u);
  EXPECT_LE(r.rows, buckets * 7 / 10);
  EXPECT_EQ(r.index_bytes, original.memory_report().index_bytes);
  const size_t row_bytes = restored.row_floats() * sizeof(float);
  EXPECT_GE(r.arena_bytes, r.rows * row_bytes);
  EXPECT_LE(r.arena_bytes, r.rows * row_bytes + (size_t{2} << 20));
  EXPECT_EQ(r.total_bytes, r.index_bytes + r.arena_bytes + r.other_bytes);
  EXPECT_EQ(r.total_bytes, restored.memory_bytes());
  EXPECT_EQ(r.raw_row_bytes, 8 + row_bytes);
  EXPECT_LT(r.bytes_per_row, 2.0 * r.raw_row_bytes);
  // Growing on from there keeps the index within its load factor.
  std::mt19937_64 rng(1);
  PushRandom(&restored, DistinctKeys(100000, 77), &rng);
  EXPECT_EQ(restored.size(), 200000u);
  EXPECT_LE(restored.size(), restored.memory_report().index_bytes / 16 * 7 / 10);
}

TEST(TableSnapshotTest, ReservedIndexIsNotCopiedButTheRowsAre) {
  // A Reserve far ahead of the rows (more than 8 times what they need) is not
  // reproduced: the restored index is sized for its rows.
  const SparseTableOptions o = Options(Kind::kSgd, 2);
  SparseTable original(o);
  original.Reserve(1 << 20);
  const Filled f = Fill(&original, o, 100, 2, 4);
  const std::string bytes = Serialize(original);
  SparseTable restored(o);
  ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
  EXPECT_LE(restored.memory_report().index_bytes, size_t{16} * 256);
  ExpectSameState(&original, &restored, f.keys);
}

// ---------------------------------------------------------------------------
// Eviction, row cap, admission

TEST(TableSnapshotTest, EvictionAgesSurviveAndRowsExpireAtTheSameSteps) {
  for (int64_t t : {int64_t{3}, int64_t{20}}) {
    SCOPED_TRACE("evict_after_steps " + std::to_string(t));
    SparseTableOptions o = Options(Kind::kAdagrad, 4);
    o.evict_after_steps = t;
    SparseTable original(o);
    const std::vector<uint64_t> keys = DistinctKeys(4000, 5);
    std::vector<uint64_t> all = keys;
    all.push_back(SparseTable::kEmptyKey);
    std::mt19937_64 rng(3);
    // Rows last updated at every step of the last few periods, key 0 among them.
    for (int step = 0; step < 30; ++step) {
      std::vector<uint64_t> batch = Sample(keys, 300, &rng);
      if (step % 7 == 0) batch.push_back(SparseTable::kEmptyKey);
      PushRandom(&original, batch, &rng);
    }
    ASSERT_GT(original.counters().evicted, 0);
    const int64_t rows_at_snapshot = static_cast<int64_t>(original.size());
    const std::string bytes = Serialize(original);
    SparseTable restored(o);
    ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
    ExpectSameState(&original, &restored, all);
    // Empty steps and a few updates: every row leaves both tables at the
    // same push.
    const int64_t evicted_before = original.counters().evicted;
    std::mt19937_64 rng_a(9), rng_b(9);
    for (int step = 0; step < 3 * t + 8; ++step) {
      std::vector<uint64_t> batch = Sample(all, step % 3 == 0 ? 20 : 0, &rng_a);
      Sample(all, step % 3 == 0 ? 20 : 0, &rng_b);
      PushRandom(&original, batch, &rng_a);
      PushRandom(&restored, batch, &rng_b);
      ASSERT_EQ(original.size(), restored.size()) << "step " << step;
      for (uint64_t k : all) {
        ASSERT_EQ(original.Contains(k), restored.Contains(k)) << "key " << k << " step " << step;
      }
    }
    EXPECT_GT(original.counters().evicted - evicted_before, rows_at_snapshot / 2);
    ExpectSameState(&original, &restored, all);
  }
}

TEST(TableSnapshotTest, RowCapContinuesIdentically) {
  SparseTableOptions o = Options(Kind::kSgd, 2);
  o.max_rows = 500;
  SparseTable original(o);
  std::mt19937_64 rng(1);
  for (int step = 0; step < 10; ++step) PushRandom(&original, DistinctKeys(100, step), &rng);
  ASSERT_EQ(original.size(), 500u);
  const std::string bytes = Serialize(original);
  SparseTable restored(o);
  ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
  std::mt19937_64 rng_a(2), rng_b(2);
  std::vector<uint64_t> all;
  for (int step = 10; step < 20; ++step) {
    const std::vector<uint64_t> batch = DistinctKeys(100, step);
    all.insert(all.end(), batch.begin(), batch.end());
    PushRandom(&original, batch, &rng_a);
    PushRandom(&restored, batch, &rng_b);
    ASSERT_EQ(restored.size(), 500u);
  }
  ExpectSameState(&original, &restored, all);
}

TEST(TableSnapshotTest, SmallerRowCapKeepsTheMostRecentlyUpdatedRows) {
  const SparseTableOptions o = Options(Kind::kSgd, 2);
  SparseTable original(o);
  std::vector<std::vector<uint64_t>> batches;
  std::mt19937_64 rng(1);
  for (int step = 0; step < 10; ++step) {
    batches.push_back(DistinctKeys(50, 100 + step));
    PushRandom(&original, batches.back(), &rng);
  }
  const std::string bytes = Serialize(original);
  SparseTableOptions capped = o;
  capped.max_rows = 120;
  SparseTable restored(capped);
  ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
  EXPECT_EQ(restored.size(), 120u);
  EXPECT_EQ(restored.counters().evicted, original.counters().evicted + 380);
  EXPECT_EQ(restored.counters().admitted, original.counters().admitted);
  // The last two pushes whole, 20 of the one before, nothing older.
  for (int step = 0; step < 10; ++step) {
    size_t kept = 0;
    for (uint64_t k : batches[step]) kept += restored.Contains(k);
    EXPECT_EQ(kept, step >= 8 ? 50u : step == 7 ? 20u : 0u) << "step " << step;
    if (step >= 8) {
      EXPECT_TRUE(PullBytes(&restored, batches[step]) == PullBytes(&original, batches[step]));
    }
  }
  // The cap holds from then on.
  PushRandom(&restored, DistinctKeys(300, 7), &rng);
  EXPECT_EQ(restored.size(), 120u);
}

TEST(TableSnapshotTest, AdmissionSketchCountsSurvive) {
  SparseTableOptions o = Options(Kind::kAdagrad, 2);
  o.admission_min_count = 4;
  o.admission_sketch_width_log2 = 12;
  SparseTable original(o);
  const uint64_t ready = 1234, counted = 5678;
  const std::vector<float> g(2, 1.0f);
  for (int i = 0; i < 3; ++i) original.Push(&ready, 1, g.data());  // K - 1
  original.Push(&counted, 1, g.data());
  EXPECT_EQ(original.size(), 0u);
  EXPECT_EQ(original.counters().rejected, 4);
  const std::string bytes = Serialize(original);
  SparseTable restored(o);
  ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
  EXPECT_EQ(restored.counters().rejected, 4);
  EXPECT_EQ(restored.admission_sketch()->Estimate(ready), 3u);
  restored.Push(&ready, 1, g.data());
  EXPECT_TRUE(restored.Contains(ready));
  restored.Push(&counted, 1, g.data());
  EXPECT_FALSE(restored.Contains(counted));
  EXPECT_EQ(restored.counters().rejected, 5);

  // Another sketch width: refused, since the counts would land elsewhere.
  SparseTableOptions wider = o;
  wider.admission_sketch_width_log2 = 13;
  SparseTable other(wider);
  ExpectCleanFailure(&other, bytes, "sketch width");
  // A table without admission ignores the counts; a snapshot without a
  // sketch leaves the table's empty.
  SparseTableOptions no_admission = o;
  no_admission.admission_min_count = 0;
  SparseTable plain(no_admission);
  ASSERT_TRUE(plain.Restore(bytes.data(), bytes.size(), kWhere).ok());
  EXPECT_EQ(plain.counters().rejected, 4);
  const std::string plain_bytes = Serialize(plain);
  ASSERT_TRUE(restored.Restore(plain_bytes.data(), plain_bytes.size(), kWhere).ok());
  EXPECT_EQ(restored.admission_sketch()->Estimate(ready), 0u);
}

// ---------------------------------------------------------------------------
// The snapshot and the writer

TEST(TableSnapshotTest, SnapshotIsIndependentOfTheTable) {
  const SparseTableOptions o = Options(Kind::kAdam, 8);
  SparseTable table(o);
  const Filled f = Fill(&table, o, 2000, 3, 6);
  const std::string before = PullBytes(&table, f.keys);
  SparseTableSnapshot snapshot = table.Snapshot();
  const std::string first = Write(snapshot);
  // Updates, erasures, growth (a rehash) and many new rows after the copy.
  std::mt19937_64 rng(8);
  PushRandom(&table, f.keys, &rng);
  for (size_t i = 0; i < 100; ++i) table.Erase(f.keys[i]);
  PushRandom(&table, DistinctKeys(20000, 9), &rng);
  EXPECT_TRUE(Write(snapshot) == first);
  // Moved, it still writes the same bytes.
  SparseTableSnapshot moved = std::move(snapshot);
  EXPECT_TRUE(Write(moved) == first);
  SparseTableSnapshot assigned;
  assigned = std::move(moved);
  EXPECT_TRUE(Write(assigned) == first);
  // And they hold the table as it was.
  SparseTable restored(o);
  ASSERT_TRUE(restored.Restore(first.data(), first.size(), kWhere).ok());
  EXPECT_TRUE(PullBytes(&restored, f.keys) == before);
  EXPECT_EQ(restored.steps(), 3);
}

TEST(TableSnapshotTest, WriterUsesBoundedChunksAndStopsAtTheSinksError) {
  SparseTableOptions o = Options(Kind::kAdagrad, 8);
  o.admission_min_count = 2;
  o.admission_sketch_width_log2 = 18;  // 2 MiB of counters
  SparseTable table(o);
  const std::vector<uint64_t> keys = DistinctKeys(40000, 1);
  std::mt19937_64 rng(1);
  PushRandom(&table, keys, &rng);
  PushRandom(&table, keys, &rng);
  ASSERT_EQ(table.size(), keys.size());
  const SparseTableSnapshot snapshot = table.Snapshot();
  size_t chunks = 0;
  const std::string bytes = Write(snapshot, &chunks);  // checks each chunk <= 1 MiB
  EXPECT_GE(chunks, bytes.size() >> 20);
  EXPECT_EQ(bytes.size(),
            kHeaderBytes + (size_t{4} << 18) * 2 + keys.size() * (12 + table.row_floats() * 4) + 8);
  SparseTable restored(o);
  ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
  ExpectSameState(&table, &restored, keys);

  int calls = 0;
  const Status s = WriteSparseSnapshot(snapshot, [&](const char*, size_t) {
    ++calls;
    return calls == 2 ? Status::IoError("disk full") : Status::OK();
  });
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.message(), "disk full");
  EXPECT_EQ(calls, 2);
}

TEST(TableSnapshotTest, ChecksumIsTheSameInAnyPieces) {
  std::string data(1000, '\0');
  std::mt19937_64 rng(1);
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t size : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{31}, size_t{32},
                      size_t{33}, size_t{999}, size_t{1000}}) {
    const uint64_t whole = SnapshotChecksum::Of(data.data(), size);
    for (size_t piece : {size_t{1}, size_t{3}, size_t{32}, size_t{45}}) {
      SnapshotChecksum c;
      for (size_t i = 0; i < size; i += piece) c.Update(data.data() + i, std::min(piece, size - i));
      EXPECT_EQ(c.Digest(), whole) << size << " in pieces of " << piece;
    }
  }
  // Zero bytes count: a longer run of zeros is another checksum.
  EXPECT_NE(SnapshotChecksum::Of(std::string(9, '\0').data(), 9),
            SnapshotChecksum::Of(std::string(10, '\0').data(), 10));
}

// ---------------------------------------------------------------------------
// Hostile input

struct Small {
  SparseTableOptions options = Options(Kind::kAdam, 3);
  std::string bytes;
  Small() {
    options.admission_min_count = 2;
    options.admission_sketch_width_log2 = 4;  // 128 bytes of counters
    SparseTable table(options);
    const std::vector<uint64_t> keys = DistinctKeys(40, 2);
    std::mt19937_64 rng(1);
    PushRandom(&table, keys, &rng);
    PushRandom(&table, keys, &rng);
    bytes = Serialize(table);
  }
};

TEST(TableSnapshotCorruptionTest, TruncationAtEveryByteFailsCleanly) {
  const Small small;
  SparseTable table(small.options);
  ASSERT_TRUE(table.Restore(small.bytes.data(), small.bytes.size(), kWhere).ok());
  ASSERT_EQ(table.size(), 40u);
  for (size_t cut = 0; cut < small.bytes.size(); ++cut) {
    ExpectCleanFailure(&table, small.bytes.substr(0, cut), "cut at " + std::to_string(cut));
  }
  // The message says what is missing.
  const size_t record = 12 + 4 * (3 * 3 + 1);
  const std::string cut = small.bytes.substr(0, small.bytes.size() - record - 5);
  const Status s = table.Restore(cut.data(), cut.size(), kWhere);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_EQ(s.message(), std::string(kWhere) + ": truncated: 40 rows announced, 38 present");
  const Status header = table.Restore(cut.data(), 50, kWhere);
  EXPECT_EQ(header.message(),
            std::string(kWhere) + ": truncated: 50 bytes, the header alone takes 104");
  // Still a working table.
  std::mt19937_64 rng(1);
  PushRandom(&table, DistinctKeys(10, 3), &rng);
  EXPECT_EQ(table.size(), 0u);  // admission: counted only
  const Status ok = table.Restore(small.bytes.data(), small.bytes.size(), kWhere);
  EXPECT_TRUE(ok.ok()) << ok;
}

TEST(TableSnapshotCorruptionTest, EveryFlippedByteIsDetected) {
  const Small small;
  SparseTable table(small.options);
  for (size_t at = 0; at < small.bytes.size(); ++at) {
    for (int bit : {0, 7}) {
      std::string bytes = small.bytes;
      bytes[at] = static_cast<char>(bytes[at] ^ (1 << bit));
      ExpectCleanFailure(&table, bytes,
                         "bit " + std::to_string(bit) + " of byte " + std::to_string(at));
    }
  }
  std::string step = small.bytes;
  step[kStepAt] ^= 1;
  const Status s = table.Restore(step.data(), step.size(), kWhere);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("checksum mismatch"), std::string::npos) << s;
}

TEST(TableSnapshotCorruptionTest, WrongMagicVersionAndStrayBytes) {
  const Small small;
  SparseTable table(small.options);
  std::string magic = small.bytes;
  magic[4] = 'X';
  ExpectCleanFailure(&table, magic, "magic");
  EXPECT_NE(table.Restore(magic.data(), magic.size(), kWhere).message().find("MTPSROWS"),
            std::string::npos);
  const std::string dense = DenseStore(config::DenseOptimizer()).Serialize();
  ExpectCleanFailure(&table, dense, "a dense block");
  ExpectCleanFailure(&table, "MTP", "short");
  std::string version = small.bytes;
  StoreU32(&version, 8, 2);
  Reseal(&version);
  ExpectCleanFailure(&table, version, "version");
  EXPECT_NE(table.Restore(version.data(), version.size(), kWhere).message().find("version 2"),
            std::string::npos);
  std::string stray = small.bytes;
  stray.insert(stray.size() - 8, "abc");
  Reseal(&stray);
  ExpectCleanFailure(&table, stray, "stray bytes");
  EXPECT_NE(table.Restore(stray.data(), stray.size(), kWhere).message().find("3 stray bytes"),
            std::string::npos);
  ExpectCleanFailure(&table, Write(SparseTableSnapshot()), "default snapshot");
}

TEST(TableSnapshotCorruptionTest, WrongDimOrOptimizerKindIsInvalidArgument) {
  SparseTable source(Options(Kind::kAdagrad, 8));
  Fill(&source, Options(Kind::kAdagrad, 8), 100, 2, 1);
  const std::string bytes = Serialize(source);
  SparseTable dim13(Options(Kind::kAdagrad, 13));
  Status s = dim13.Restore(bytes.data(), bytes.size(), kWhere);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), std::string(kWhere) + ": snapshot of dim 8, this table's is 13");
  ExpectCleanFailure(&dim13, bytes, "dim");
  for (Kind kind : {Kind::kSgd, Kind::kAdam, Kind::kFtrl}) {
    SparseTable other(Options(kind, 8));
    s = other.Restore(bytes.data(), bytes.size(), kWhere);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << KindName(kind);
    EXPECT_EQ(s.message(), std::string(kWhere) +
                               ": snapshot's optimizer is Adagrad, this table's is " +
                               (kind == Kind::kSgd    ? "SGD"
                                : kind == Kind::kAdam ? "Adam"
                                                      : "FTRL"));
    ExpectCleanFailure(&other, bytes, KindName(kind));
  }
  // A dim edited alone no longer matches row_floats.
  std::string edited = bytes;
  StoreU32(&edited, kDimAt, 13);
  Reseal(&edited);
  ExpectCleanFailure(&dim13, edited, "dim edited");
}

TEST(TableSnapshotCorruptionTest, HugeAnnouncedCountsAreCheckedAgainstTheInput) {
  const Small small;
  SparseTable table(small.options);
  for (uint64_t rows : {uint64_t{41}, uint64_t{1} << 32, uint64_t{1} << 62, ~uint64_t{0}}) {
    std::string bytes = small.bytes;
    StoreU64(&bytes, kRowsAt, rows);
    ExpectCleanFailure(&table, bytes, "rows " + std::to_string(rows));
    EXPECT_EQ(table.Restore(bytes.data(), bytes.size(), kWhere).message(),
              std::string(kWhere) + ": truncated: " + std::to_string(rows) +
                  " rows announced, 40 present");
    Reseal(&bytes);
    ExpectCleanFailure(&table, bytes, "resealed rows " + std::to_string(rows));
  }
  // A sketch of 4 x 2^30 counters announced in a small file.
  std::string sketch = small.bytes;
  StoreU32(&sketch, kSketchWidthAt, 30);
  Reseal(&sketch);
  ExpectCleanFailure(&table, sketch, "sketch width");
  StoreU32(&sketch, kSketchDepthAt, 1000);
  Reseal(&sketch);
  ExpectCleanFailure(&table, sketch, "sketch depth");
  // A forged index capacity of 2^36 buckets is not allocated (far more than
  // 40 rows need), and beyond that is refused.
  std::string capacity = small.bytes;
  StoreU32(&capacity, kCapacityLog2At, 36);
  Reseal(&capacity);
  ASSERT_TRUE(table.Restore(capacity.data(), capacity.size(), kWhere).ok());
  EXPECT_EQ(table.size(), 40u);
  EXPECT_LE(table.memory_report().index_bytes, size_t{16} * 128);
  for (uint32_t log2 : {0u, 3u, 37u, 64u, 200u}) {
    StoreU32(&capacity, kCapacityLog2At, log2);
    Reseal(&capacity);
    ExpectCleanFailure(&table, capacity, "capacity log2 " + std::to_string(log2));
  }
}

TEST(TableSnapshotCorruptionTest, ForgedContentIsRefused) {
  const Small small;
  SparseTable table(small.options);
  const size_t rows_at = small.bytes.size() - 8 - 40 * (12 + 40);
  // The same key twice.
  std::string twice = small.bytes;
  std::memcpy(&twice[rows_at + 52], &twice[rows_at], 8);
  Reseal(&twice);
  ExpectCleanFailure(&table, twice, "duplicate key");
  EXPECT_NE(table.Restore(twice.data(), twice.size(), kWhere).message().find("appears twice"),
            std::string::npos);
  // Key 0 twice.
  std::string zeros = small.bytes;
  StoreU64(&zeros, rows_at, 0);
  StoreU64(&zeros, rows_at + 52, 0);
  Reseal(&zeros);
  ExpectCleanFailure(&table, zeros, "key 0 twice");
  // Negative counters and steps, unknown kinds.
  std::string counters = small.bytes;
  StoreU64(&counters, kAdmittedAt, ~uint64_t{0});
  Reseal(&counters);
  ExpectCleanFailure(&table, counters, "negative admitted");
  std::string step = small.bytes;
  StoreU64(&step, kStepAt, uint64_t{1} << 63);
  Reseal(&step);
  ExpectCleanFailure(&table, step, "step");
  std::string kind = small.bytes;
  StoreU32(&kind, 20, 4);
  Reseal(&kind);
  ExpectCleanFailure(&table, kind, "kind");
  std::string reserved = small.bytes;
  StoreU32(&reserved, 92, 1);
  Reseal(&reserved);
  ExpectCleanFailure(&table, reserved, "reserved");
  std::string cursor = small.bytes;
  StoreU64(&cursor, 72, uint64_t{1} << 40);
  Reseal(&cursor);
  ExpectCleanFailure(&table, cursor, "sweep cursor");
}

TEST(TableSnapshotCorruptionTest, RandomByteFlipsNeverCrash) {
  const Small small;
  SparseTable table(small.options);
  std::mt19937_64 rng(12345);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = small.bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    if (trial % 5 == 0) bytes.resize(rng() % bytes.size());
    if (trial % 7 == 0 && bytes.size() >= 8) Reseal(&bytes);  // past the checksum sometimes
    const Status s = table.Restore(bytes.data(), bytes.size(), kWhere);
    if (!s.ok()) {
      EXPECT_TRUE(StartsWith(s.message(), std::string(kWhere) + ": ")) << s;
      ASSERT_EQ(table.size(), 0u);
    }
    if (flips == 1 && trial % 5 != 0 && trial % 7 != 0) {
      EXPECT_FALSE(s.ok()) << trial;
    }
    // Whatever happened, the table works.
    std::vector<uint64_t> keys = DistinctKeys(8, trial);
    PushRandom(&table, keys, &rng);
    PushRandom(&table, keys, &rng);
    ASSERT_LE(table.size(), table.memory_report().index_bytes / 16);
  }
}

// ---------------------------------------------------------------------------
// Delta (incremental) snapshots

// Header offsets of MTPSDELT (sparse_table.h).
constexpr size_t kDeltaHeaderBytes = 256;
constexpr size_t kDeltaFlagsAt = 24;
constexpr size_t kDeltaKey0At = 28;
constexpr size_t kDeltaBaseStepAt = 32;
constexpr size_t kDeltaBaseRowsAt = 40;
constexpr size_t kDeltaResultCapacityAt = 168;
constexpr size_t kDeltaBlocksAt = 216;
constexpr size_t kDeltaChangedAt = 224;
constexpr size_t kDeltaMovedAt = 232;
constexpr size_t kDeltaEmptiedAt = 240;
constexpr size_t kDeltaRemovedAt = 248;
constexpr const char* kDeltaWhere = "ckpt-7/server-0.shard-1.delta";

uint64_t LoadU64(const std::string& bytes, size_t at) {
  uint64_t v;
  std::memcpy(&v, bytes.data() + at, 8);
  return v;
}
uint32_t LoadU32(const std::string& bytes, size_t at) {
  uint32_t v;
  std::memcpy(&v, bytes.data() + at, 4);
  return v;
}
bool WholeLayout(const std::string& delta) { return (LoadU32(delta, kDeltaFlagsAt) & 1) != 0; }

std::string WriteDelta(const SparseTable& table) {
  const SparseTableSnapshot delta = table.DeltaSnapshot();
  EXPECT_TRUE(delta.is_delta());
  return Write(delta);
}

// Two tables must be the same in everything a full snapshot holds: rows,
// optimizer state, stamps, step, counters, sketch counts, and the index
// layout, sweep position and sampler state (so their snapshots are the same
// bytes), and answer every probe alike.
void ExpectIdentical(SparseTable* a, SparseTable* b, const std::vector<uint64_t>& probe) {
  ExpectSameState(a, b, probe);
  EXPECT_TRUE(Serialize(*a) == Serialize(*b));
}

// An original table checkpointed with a full snapshot and then deltas, and
// a replica kept at the last checkpoint by applying each delta as it is
// taken.
struct Checkpointed {
  explicit Checkpointed(const SparseTableOptions& o) : original(o), replica(o) {}

  void Full() {
    full = Serialize(original);
    original.StartDelta();
    deltas.clear();
    const Status s = replica.Restore(full.data(), full.size(), kWhere);
    EXPECT_TRUE(s.ok()) << s;
  }
  const std::string& Delta() {
    deltas.push_back(WriteDelta(original));
    original.StartDelta();
    const std::string& d = deltas.back();
    whole += WholeLayout(d);
    const Status s = replica.ApplyDelta(d.data(), d.size(), kDeltaWhere);
    EXPECT_TRUE(s.ok()) << s;
    return d;
  }
  // Restore(full) and every delta since, into a new table.
  void Replay(SparseTable* table) const {
    Status s = table->Restore(full.data(), full.size(), kWhere);
    ASSERT_TRUE(s.ok()) << s;
    for (const std::string& d : deltas) {
      s = table->ApplyDelta(d.data(), d.size(), kDeltaWhere);
      ASSERT_TRUE(s.ok()) << s;
    }
  }

  SparseTable original;
  SparseTable replica;
  std::string full;
  std::vector<std::string> deltas;
  int whole = 0;  // deltas that listed every row's bucket
};

struct Scenario {
  const char* name;
  int64_t evict_after_steps;
  int64_t max_rows;
  int admission_min_count;
};
constexpr Scenario kScenarios[] = {
    {"plain", 0, 0, 0},     {"evict 4", 4, 0, 0},   {"evict 25", 25, 0, 0},
    {"cap 150", 0, 150, 0}, {"admission", 0, 0, 2}, {"evict 12 cap 120 admission", 12, 120, 2},
};

SparseTableOptions ScenarioOptions(Kind kind, const Scenario& sc) {
  SparseTableOptions o = Options(kind, 3);
  o.evict_after_steps = sc.evict_after_steps;
  o.max_rows = sc.max_rows;
  o.admission_min_count = sc.admission_min_count;
  o.admission_sketch_width_log2 = 6;  // collisions
  return o;
}

// One random operation on the original: a push (known, fresh keys and key
// 0), a pull that creates, an erasure, an empty step.
void RandomOp(SparseTable* table, const std::vector<uint64_t>& universe, uint64_t* fresh,
              std::mt19937_64* rng) {
  const int op = static_cast<int>((*rng)() % 10);
  std::vector<uint64_t> keys = Sample(universe, 1 + (*rng)() % 60, rng);
  for (int i = static_cast<int>((*rng)() % 4); i > 0; --i) keys.push_back((*fresh)++);
  if ((*rng)() % 8 == 0) keys.push_back(SparseTable::kEmptyKey);
  if (op < 5) {
    PushRandom(table, keys, rng);
  } else if (op < 8) {
    std::vector<float> out(keys.size() * table->dim());
    table->Pull(keys.data(), keys.size(), /*create_missing=*/true, out.data());
  } else if (op == 8) {
    for (size_t i = 0; i < keys.size() && i < 12; ++i) table->Erase(keys[i]);
  } else {
    table->Push(nullptr, 0, nullptr);
  }
}

TEST(TableDeltaTest, ChainsOfDeltasReproduceTheTableExactlyEveryOptimizerAndScenario) {
  int deltas = 0, whole = 0;
  for (Kind kind : kAllKinds) {
    for (const Scenario& sc : kScenarios) {
      for (uint64_t seed : {1, 2}) {
        SCOPED_TRACE(std::string(KindName(kind)) + ", " + sc.name + ", seed " +
                     std::to_string(seed));
        const SparseTableOptions o = ScenarioOptions(kind, sc);
        Checkpointed c(o);
        std::vector<uint64_t> universe = DistinctKeys(300, 100 + seed);
        universe.push_back(SparseTable::kEmptyKey);
        uint64_t fresh = uint64_t{1} << 40;
        std::mt19937_64 rng(seed);
        for (int i = 0; i < 20; ++i) RandomOp(&c.original, universe, &fresh, &rng);
        c.Full();
        for (int round = 0; round < 400; ++round) {
          RandomOp(&c.original, universe, &fresh, &rng);
          const int r = static_cast<int>(rng() % 16);
          if (r == 0) {
            c.Delta();
            if (rng() % 2 == 0) c.Delta();  // nothing changed between
          } else if (r == 1) {
            // A checkpoint, pulls that create while the step stands still,
            // another checkpoint.
            c.Delta();
            RandomOp(&c.original, universe, &fresh, &rng);
            c.Delta();
          } else {
            continue;
          }
          ASSERT_TRUE(Serialize(c.original) == Serialize(c.replica)) << "round " << round;
        }
        c.Delta();
        std::vector<uint64_t> probe = universe;
        for (uint64_t k = uint64_t{1} << 40; k < fresh; ++k) probe.push_back(k);
        ExpectIdentical(&c.original, &c.replica, probe);
        SparseTable replayed(o);
        c.Replay(&replayed);
        ExpectIdentical(&c.original, &replayed, probe);
        deltas += static_cast<int>(c.deltas.size());
        whole += c.whole;
        // Both go on bit-identically: same rows evicted at the same steps.
        std::mt19937_64 rng_a(seed + 7), rng_b(seed + 7);
        uint64_t fresh_a = fresh, fresh_b = fresh;
        for (int step = 0; step < 60; ++step) {
          RandomOp(&c.original, universe, &fresh_a, &rng_a);
          RandomOp(&replayed, universe, &fresh_b, &rng_b);
          ASSERT_EQ(c.original.size(), replayed.size()) << "step " << step;
        }
        ExpectIdentical(&c.original, &replayed, probe);
      }
    }
  }
  // Both kinds of delta were exercised: in place, and listing every row's
  // bucket (after a resize of the index).
  EXPECT_GT(whole, 10);
  EXPECT_GT(deltas - whole, 100);
}

TEST(TableDeltaTest, UnchangedTableGivesAHeaderOnlyDelta) {
  SparseTableOptions o = Options(Kind::kAdagrad, 8);
  o.admission_min_count = 2;  // an 8 MiB sketch, none of it dirty
  SparseTable table(o);
  const Filled f = Fill(&table, o, 2000, 3, 1);
  table.StartDelta();
  EXPECT_EQ(WriteDelta(table).size(), kDeltaHeaderBytes + 8);
  // Pulls of known keys change nothing; an empty push moves only the step.
  std::vector<float> out(f.keys.size() * 8);
  table.Pull(f.keys.data(), f.keys.size(), /*create_missing=*/true, out.data());
  table.Push(nullptr, 0, nullptr);
  const SparseTableSnapshot delta = table.DeltaSnapshot();
  EXPECT_EQ(delta.changed_rows(), 0u);
  EXPECT_EQ(delta.removed_keys(), 0u);
  EXPECT_EQ(delta.rows(), table.size());
  EXPECT_EQ(delta.steps(), 4);
  EXPECT_EQ(Write(delta).size(), kDeltaHeaderBytes + 8);
  EXPECT_FALSE(table.Snapshot().is_delta());
  EXPECT_EQ(table.Snapshot().removed_keys(), 0u);
  // A push of unseen keys dirties a few 4 KiB sketch blocks, not 8 MiB.
  const std::vector<uint64_t> unseen = DistinctKeys(3, 77);
  std::mt19937_64 rng(1);
  PushRandom(&table, unseen, &rng);
  const std::string d = WriteDelta(table);
  EXPECT_GE(LoadU64(d, kDeltaBlocksAt), 1u);
  EXPECT_LE(LoadU64(d, kDeltaBlocksAt), 12u);
  EXPECT_LT(d.size(), size_t{64} << 10);
}

TEST(TableDeltaTest, OnlyChangedRowsAreWritten) {
  for (Kind kind : kAllKinds) {
    SCOPED_TRACE(KindName(kind));
    const SparseTableOptions o = Options(kind, 8);
    Checkpointed c(o);
    const Filled f = Fill(&c.original, o, 5000, 4, 3);
    c.Full();
    std::mt19937_64 rng(4);
    std::vector<uint64_t> some(f.keys.begin(), f.keys.begin() + 50);
    PushRandom(&c.original, some, &rng);
    PushRandom(&c.original, some, &rng);
    const SparseTableSnapshot delta = c.original.DeltaSnapshot();
    EXPECT_EQ(delta.changed_rows(), 50u);
    EXPECT_EQ(delta.removed_keys(), 0u);
    EXPECT_EQ(Write(delta).size(), kDeltaHeaderBytes + 50 * (20 + c.original.row_floats() * 4) + 8);
    c.Delta();
    ExpectIdentical(&c.original, &c.replica, f.keys);
  }
}

TEST(TableDeltaTest, RowsCreatedByPullBeforeTheStepMovesAreInTheDelta) {
  // Their stamp is the base step, like the rows of the push just before.
  const SparseTableOptions o = Options(Kind::kAdam, 4);
  Checkpointed c(o);
  const Filled f = Fill(&c.original, o, 500, 2, 5);
  c.Full();
  const std::vector<uint64_t> created = DistinctKeys(40, 6);
  std::vector<float> out(created.size() * 4);
  c.original.Pull(created.data(), created.size(), /*create_missing=*/true, out.data());
  c.original.Pull(created.data(), created.size(), /*create_missing=*/true, out.data());  // again
  EXPECT_EQ(c.original.DeltaSnapshot().changed_rows(), 40u);
  c.Delta();
  std::vector<uint64_t> all = f.keys;
  all.insert(all.end(), created.begin(), created.end());
  for (uint64_t k : created) ASSERT_TRUE(c.replica.Contains(k));
  ExpectIdentical(&c.original, &c.replica, all);
  // Key 0 too, alone in its side bucket.
  SparseTable lone(o);
  Checkpointed z(o);
  z.Full();
  const uint64_t zero = SparseTable::kEmptyKey;
  z.original.Pull(&zero, 1, /*create_missing=*/true, out.data());
  EXPECT_EQ(z.original.DeltaSnapshot().changed_rows(), 1u);
  z.Delta();
  EXPECT_TRUE(z.replica.Contains(zero));
  ExpectIdentical(&z.original, &z.replica, {zero});
}

TEST(TableDeltaTest, RemovedAndRecreatedKeysKeyZeroIncluded) {
  const SparseTableOptions o = Options(Kind::kFtrl, 3);
  Checkpointed c(o);
  const Filled f = Fill(&c.original, o, 400, 3, 7);  // key 0 among them
  c.Full();
  const uint64_t zero = SparseTable::kEmptyKey;
  // Removed for good: 20 keys and key 0.
  for (size_t i = 0; i < 20; ++i) ASSERT_TRUE(c.original.Erase(f.keys[i]));
  ASSERT_TRUE(c.original.Erase(zero));
  // Removed and created again in the same period, without a step between.
  std::vector<uint64_t> again(f.keys.begin() + 20, f.keys.begin() + 30);
  for (uint64_t k : again) ASSERT_TRUE(c.original.Erase(k));
  std::vector<float> out(again.size() * 3);
  c.original.Pull(again.data(), again.size(), /*create_missing=*/true, out.data());
  SparseTableSnapshot delta = c.original.DeltaSnapshot();
  EXPECT_EQ(delta.removed_keys(), 21u);
  EXPECT_EQ(delta.changed_rows(), 10u);
  c.Delta();
  ExpectIdentical(&c.original, &c.replica, f.keys);
  EXPECT_FALSE(c.replica.Contains(zero));
  // And key 0 back (by a push) in the next period.
  std::mt19937_64 rng(1);
  PushRandom(&c.original, {zero}, &rng);
  delta = c.original.DeltaSnapshot();
  EXPECT_EQ(delta.changed_rows(), 1u);
  EXPECT_EQ(LoadU32(Write(delta), kDeltaKey0At), 2u);
  c.Delta();
  ExpectIdentical(&c.original, &c.replica, f.keys);
}

TEST(TableDeltaTest, BackwardShiftsAreReproducedBucketForBucket) {
  // Keys with the same home bucket: erasing the first of a run moves the
  // others back, rows that did not change but whose bucket did.
  std::vector<uint64_t> run;
  for (uint64_t k = 1; run.size() < 6; ++k) {
    if ((Mix64(k) & 63) == 40) run.push_back(k);
  }
  SparseTableOptions o = Options(Kind::kSgd, 2);
  o.evict_after_steps = 8;  // the sweep visits buckets in index order
  Checkpointed c(o);
  c.original.Reserve(40);  // 64 buckets
  std::mt19937_64 rng(1);
  PushRandom(&c.original, run, &rng);
  PushRandom(&c.original, DistinctKeys(20, 3), &rng);
  c.Full();
  ASSERT_TRUE(c.original.Erase(run[0]));
  ASSERT_TRUE(c.original.Erase(run[3]));
  const std::string& d = c.Delta();
  EXPECT_FALSE(WholeLayout(d));
  EXPECT_GE(LoadU64(d, kDeltaMovedAt), 3u);
  EXPECT_EQ(LoadU64(d, kDeltaEmptiedAt), 2u);
  EXPECT_EQ(LoadU64(d, kDeltaRemovedAt), 2u);
  EXPECT_EQ(LoadU64(d, kDeltaChangedAt), 0u);
  ExpectIdentical(&c.original, &c.replica, run);
  // Both evict alike from here on.
  for (int step = 0; step < 12; ++step) {
    c.original.Push(nullptr, 0, nullptr);
    c.replica.Push(nullptr, 0, nullptr);
    ASSERT_TRUE(Serialize(c.original) == Serialize(c.replica)) << step;
  }
  EXPECT_EQ(c.replica.size(), 0u);
}

TEST(TableDeltaTest, RowCapEvictionsAndIndexResizesInAPeriod) {
  SparseTableOptions o = Options(Kind::kAdagrad, 4);
  o.max_rows = 300;
  Checkpointed c(o);
  std::mt19937_64 rng(2);
  PushRandom(&c.original, DistinctKeys(100, 1), &rng);
  c.Full();
  // Growth past the cap's size: the index doubles twice, then the cap evicts.
  for (uint64_t b = 0; b < 6; ++b) PushRandom(&c.original, DistinctKeys(100, 10 + b), &rng);
  ASSERT_EQ(c.original.size(), 300u);
  SparseTableSnapshot delta = c.original.DeltaSnapshot();
  EXPECT_EQ(delta.removed_keys(), static_cast<size_t>(c.original.counters().evicted));
  const std::string& d = c.Delta();
  EXPECT_TRUE(WholeLayout(d));
  ExpectIdentical(&c.original, &c.replica, DistinctKeys(100, 1));
  // An in-place period of cap evictions only.
  PushRandom(&c.original, DistinctKeys(50, 30), &rng);
  EXPECT_FALSE(WholeLayout(c.Delta()));
  ExpectIdentical(&c.original, &c.replica, DistinctKeys(50, 30));
  // Shrinking: most rows erased.
  std::vector<uint64_t> all;
  for (uint64_t b = 0; b < 6; ++b) {
    const std::vector<uint64_t> batch = DistinctKeys(100, 10 + b);
    all.insert(all.end(), batch.begin(), batch.end());
  }
  for (uint64_t k : all) c.original.Erase(k);
  EXPECT_TRUE(WholeLayout(c.Delta()));
  ExpectIdentical(&c.original, &c.replica, all);
  // The same later evictions.
  std::mt19937_64 rng_a(3), rng_b(3);
  for (uint64_t b = 0; b < 5; ++b) {
    PushRandom(&c.original, DistinctKeys(120, 40 + b), &rng_a);
    PushRandom(&c.replica, DistinctKeys(120, 40 + b), &rng_b);
  }
  ExpectIdentical(&c.original, &c.replica, all);
}

TEST(TableDeltaTest, StampsAreComparedModulo2To32) {
  // A table at step 2^32 - 3 (a forged snapshot of one), pushed across the
  // wrap: the rows pushed since the base are found, the others not.
  for (int64_t t : {int64_t{0}, int64_t{6}}) {
    SCOPED_TRACE("evict_after_steps " + std::to_string(t));
    SparseTableOptions o = Options(Kind::kAdam, 2);
    o.evict_after_steps = t;
    SparseTable source(o);
    const Filled f = Fill(&source, o, 300, 1, 9);
    std::string bytes = Serialize(source);
    const uint64_t base_step = (uint64_t{1} << 32) - 3;
    StoreU64(&bytes, kStepAt, base_step);
    const size_t record = 12 + source.row_floats() * 4;
    for (size_t r = 0; r < 300; ++r) {
      StoreU32(&bytes, kHeaderBytes + r * record + 8, static_cast<uint32_t>(base_step - 1));
    }
    Reseal(&bytes);
    Checkpointed c(o);
    ASSERT_TRUE(c.original.Restore(bytes.data(), bytes.size(), kWhere).ok());
    c.Full();
    std::mt19937_64 rng(1);
    const std::vector<uint64_t> pushed(f.keys.begin(), f.keys.begin() + 30);
    for (int step = 0; step < 5; ++step) PushRandom(&c.original, pushed, &rng);
    ASSERT_EQ(c.original.steps(), static_cast<int64_t>(base_step + 5));
    if (t > 0) {
      EXPECT_EQ(c.original.size(), 30u);  // the others expired across the wrap
    } else {
      EXPECT_EQ(c.original.DeltaSnapshot().changed_rows(), 30u);
    }
    c.Delta();
    ExpectIdentical(&c.original, &c.replica, f.keys);
    PushRandom(&c.original, pushed, &rng);
    EXPECT_EQ(c.original.DeltaSnapshot().changed_rows(), 30u);
    c.Delta();
    ExpectIdentical(&c.original, &c.replica, f.keys);
  }
}

TEST(TableDeltaTest, ManyRowsCreatedBeforeTheStepMovesAreAllFound) {
  // Past its bound the list of rows created at the base step is dropped:
  // every row stamped at the base step is then in the delta (here also the
  // rows of the push just before the checkpoint).
  const SparseTableOptions o = Options(Kind::kSgd, 2);
  Checkpointed c(o);
  std::mt19937_64 rng(3);
  const std::vector<uint64_t> pushed = DistinctKeys(1000, 1);
  PushRandom(&c.original, pushed, &rng);
  c.Full();
  const std::vector<uint64_t> created = DistinctKeys(30000, 2);
  std::vector<float> out(created.size() * 2);
  c.original.Pull(created.data(), created.size(), /*create_missing=*/true, out.data());
  EXPECT_EQ(c.original.DeltaSnapshot().changed_rows(), 31000u);
  c.Delta();
  ExpectIdentical(&c.original, &c.replica, created);
  // The next period lists them again, by key.
  const std::vector<uint64_t> more = DistinctKeys(100, 3);
  out.resize(more.size() * 2);
  c.original.Pull(more.data(), more.size(), /*create_missing=*/true, out.data());
  EXPECT_EQ(c.original.DeltaSnapshot().changed_rows(), 100u);
  c.Delta();
  ExpectIdentical(&c.original, &c.replica, more);
}

TEST(TableDeltaTest, ChurnBeyondTheListsBoundsListsEveryRow) {
  // A period with more evictions than the table has rows: the removed keys
  // and rewritten buckets are no longer listed; the delta lists every row's
  // bucket instead, and the table still comes out the same.
  for (int64_t evict : {int64_t{0}, int64_t{40}}) {
    SCOPED_TRACE("evict_after_steps " + std::to_string(evict));
    SparseTableOptions o = Options(Kind::kAdagrad, 2);
    o.max_rows = 3000;
    o.evict_after_steps = evict;
    Checkpointed c(o);
    std::mt19937_64 rng(4);
    PushRandom(&c.original, DistinctKeys(3000, 1), &rng);
    c.Full();
    for (uint64_t b = 0; b < 12; ++b) PushRandom(&c.original, DistinctKeys(1000, 10 + b), &rng);
    const SparseTableSnapshot delta = c.original.DeltaSnapshot();
    EXPECT_EQ(delta.removed_keys(), 0u);
    const std::string& d = c.Delta();
    EXPECT_EQ(LoadU32(d, kDeltaFlagsAt), 3u);  // whole layout, removed keys not listed
    ExpectIdentical(&c.original, &c.replica, DistinctKeys(1000, 21));
    std::mt19937_64 rng_a(5), rng_b(5);
    for (uint64_t b = 0; b < 50; ++b) {
      PushRandom(&c.original, DistinctKeys(100, 40 + b), &rng_a);
      PushRandom(&c.replica, DistinctKeys(100, 40 + b), &rng_b);
    }
    ExpectIdentical(&c.original, &c.replica, DistinctKeys(100, 80));
  }
}

TEST(TableDeltaTest, AdmissionCountsTravelInTheirBlocks) {
  SparseTableOptions o = Options(Kind::kAdagrad, 2);
  o.admission_min_count = 3;
  o.admission_sketch_width_log2 = 14;  // 32 blocks
  Checkpointed c(o);
  const std::vector<uint64_t> keys = DistinctKeys(500, 4);
  std::mt19937_64 rng(1);
  PushRandom(&c.original, keys, &rng);
  c.Full();
  PushRandom(&c.original, keys, &rng);  // counted twice: not yet admitted
  const std::string& d = c.Delta();
  EXPECT_EQ(c.original.size(), 0u);
  EXPECT_EQ(LoadU64(d, kDeltaBlocksAt), 32u);
  for (uint64_t k : keys) {
    ASSERT_EQ(c.replica.admission_sketch()->Estimate(k),
              c.original.admission_sketch()->Estimate(k));
  }
  PushRandom(&c.original, {keys[0]}, &rng);  // admitted
  EXPECT_LE(LoadU64(c.Delta(), kDeltaBlocksAt), 4u);
  EXPECT_TRUE(c.replica.Contains(keys[0]));
  ExpectIdentical(&c.original, &c.replica, keys);
}

TEST(TableDeltaTest, NewTableIsTheBaseOfItsFirstDelta) {
  const SparseTableOptions o = Options(Kind::kSgd, 3);
  SparseTable original(o);
  const Filled f = Fill(&original, o, 700, 3, 2);
  const std::string d = WriteDelta(original);
  EXPECT_TRUE(WholeLayout(d));  // the index grew
  SparseTable fresh(o);
  const Status s = fresh.ApplyDelta(d.data(), d.size(), kDeltaWhere);
  ASSERT_TRUE(s.ok()) << s;
  ExpectIdentical(&original, &fresh, f.keys);
}

TEST(TableDeltaTest, OtherLayoutAppliesByKey) {
  // A Reserve far ahead is not kept by Restore: the replica's index is
  // smaller than the original's, so deltas apply by key. Same content; the
  // layout is the replica's own. (Removals by the row cap: an erasure would
  // shrink the index.)
  SparseTableOptions o = Options(Kind::kAdagrad, 4);
  o.max_rows = 220;
  Checkpointed c(o);
  c.original.Reserve(1 << 14);
  const Filled f = Fill(&c.original, o, 200, 2, 3);
  c.Full();
  EXPECT_LT(c.replica.memory_report().index_bytes, c.original.memory_report().index_bytes);
  std::mt19937_64 rng(5);
  for (int round = 0; round < 4; ++round) {
    PushRandom(&c.original, Sample(f.keys, 50, &rng), &rng);
    PushRandom(&c.original, DistinctKeys(30, 50 + round), &rng);
    const SparseTableSnapshot delta = c.original.DeltaSnapshot();
    EXPECT_GT(delta.removed_keys(), 0u);
    EXPECT_FALSE(WholeLayout(c.Delta()));
    std::vector<uint64_t> probe = f.keys;
    const std::vector<uint64_t> added = DistinctKeys(30, 50 + round);
    probe.insert(probe.end(), added.begin(), added.end());
    ExpectSameState(&c.original, &c.replica, probe);
  }
  // A whole-layout delta of an index far larger than its rows: placed by
  // probing (as Restore would), same content.
  c.original.Reserve(1 << 16);
  const std::string& d = c.Delta();
  EXPECT_TRUE(WholeLayout(d));
  ExpectSameState(&c.original, &c.replica, f.keys);
  // And the chain goes on by key.
  PushRandom(&c.original, f.keys, &rng);
  c.Delta();
  ExpectSameState(&c.original, &c.replica, f.keys);
}

TEST(TableDeltaTest, SmallerRowCapDropsTheLeastRecentlyUpdated) {
  const SparseTableOptions o = Options(Kind::kSgd, 2);
  SparseTable original(o);
  std::mt19937_64 rng(1);
  PushRandom(&original, DistinctKeys(100, 1), &rng);
  const std::string full = Serialize(original);
  original.StartDelta();
  PushRandom(&original, DistinctKeys(100, 2), &rng);
  const std::string d = WriteDelta(original);
  SparseTableOptions capped = o;
  capped.max_rows = 150;
  SparseTable replica(capped);
  ASSERT_TRUE(replica.Restore(full.data(), full.size(), kWhere).ok());
  ASSERT_TRUE(replica.ApplyDelta(d.data(), d.size(), kDeltaWhere).ok());
  EXPECT_EQ(replica.size(), 150u);
  EXPECT_EQ(replica.counters().evicted, 50);
  for (uint64_t k : DistinctKeys(100, 2)) ASSERT_TRUE(replica.Contains(k));
}

TEST(TableDeltaTest, DeltaSnapshotIsIndependentOfTheTable) {
  const SparseTableOptions o = Options(Kind::kAdam, 8);
  Checkpointed c(o);
  const Filled f = Fill(&c.original, o, 2000, 3, 6);
  c.Full();
  std::mt19937_64 rng(8);
  PushRandom(&c.original, Sample(f.keys, 300, &rng), &rng);
  for (size_t i = 0; i < 50; ++i) c.original.Erase(f.keys[i]);
  SparseTableSnapshot delta = c.original.DeltaSnapshot();
  const std::string first = Write(delta);
  SparseTable expected(o);
  c.Replay(&expected);
  ASSERT_TRUE(expected.ApplyDelta(first.data(), first.size(), kDeltaWhere).ok());
  const std::string want = Serialize(expected);
  // The table goes on (a resize among it); the copy does not.
  PushRandom(&c.original, DistinctKeys(20000, 9), &rng);
  EXPECT_TRUE(Write(delta) == first);
  SparseTableSnapshot moved = std::move(delta);
  EXPECT_TRUE(Write(moved) == first);
  EXPECT_GT(moved.memory_bytes(), 300 * c.original.row_floats() * sizeof(float));
  SparseTable applied(o);
  c.Replay(&applied);
  ASSERT_TRUE(applied.ApplyDelta(first.data(), first.size(), kDeltaWhere).ok());
  EXPECT_TRUE(Serialize(applied) == want);
}

// ---------------------------------------------------------------------------
// Deltas: wrong chains and hostile input

// A small chain with every section of a delta in use: sketch blocks,
// changed rows (key 0 among them), moved rows, emptied buckets, removed keys.
struct SmallChain {
  SparseTableOptions options = Options(Kind::kAdam, 3);
  std::string full;
  std::string delta;
  SmallChain() {
    options.admission_min_count = 2;
    options.admission_sketch_width_log2 = 4;  // 64 counters, one block
    SparseTable table(options);
    const std::vector<uint64_t> keys = DistinctKeys(40, 2);
    std::mt19937_64 rng(1);
    PushRandom(&table, keys, &rng);
    PushRandom(&table, keys, &rng);
    full = Serialize(table);
    table.StartDelta();
    for (size_t i = 0; i < 8; ++i) table.Erase(keys[i]);
    std::vector<uint64_t> pushed(keys.begin() + 30, keys.end());
    pushed.push_back(SparseTable::kEmptyKey);
    PushRandom(&table, pushed, &rng);
    PushRandom(&table, pushed, &rng);
    delta = WriteDelta(table);
  }
  // A table at the delta's base.
  void Base(SparseTable* table) const {
    ASSERT_TRUE(table->Restore(full.data(), full.size(), kWhere).ok());
  }
};

TEST(TableDeltaCorruptionTest, TheSmallChainUsesEverySection) {
  const SmallChain chain;
  EXPECT_FALSE(WholeLayout(chain.delta));
  for (size_t at :
       {kDeltaBlocksAt, kDeltaChangedAt, kDeltaMovedAt, kDeltaEmptiedAt, kDeltaRemovedAt}) {
    EXPECT_GT(LoadU64(chain.delta, at), 0u) << at;
  }
  SparseTable table(chain.options);
  chain.Base(&table);
  ASSERT_TRUE(table.ApplyDelta(chain.delta.data(), chain.delta.size(), kDeltaWhere).ok());
  EXPECT_TRUE(table.Contains(SparseTable::kEmptyKey));
}

// An apply that must fail: a clean error starting with the file name, the
// table unchanged (`before`) or empty, and still working.
void ExpectDeltaFailure(SparseTable* table, const std::string& bytes, const std::string& before,
                        const std::string& what, bool unchanged = true) {
  const Status s = table->ApplyDelta(bytes.data(), bytes.size(), kDeltaWhere);
  ASSERT_FALSE(s.ok()) << what;
  EXPECT_TRUE(s.code() == StatusCode::kCorruption || s.code() == StatusCode::kInvalidArgument)
      << what << ": " << s;
  EXPECT_TRUE(StartsWith(s.message(), std::string(kDeltaWhere) + ": ")) << what << ": " << s;
  if (unchanged) {
    ASSERT_TRUE(Serialize(*table) == before) << what << ": " << s;
  } else {
    ASSERT_TRUE(Serialize(*table) == before || table->size() == 0) << what << ": " << s;
  }
}

TEST(TableDeltaCorruptionTest, TruncationAtEveryByteLeavesTheTableAsItWas) {
  const SmallChain chain;
  SparseTable table(chain.options);
  chain.Base(&table);
  const std::string before = Serialize(table);
  for (size_t cut = 0; cut < chain.delta.size(); ++cut) {
    ExpectDeltaFailure(&table, chain.delta.substr(0, cut), before, "cut at " + std::to_string(cut));
  }
  const Status s = table.ApplyDelta(chain.delta.data(), 100, kDeltaWhere);
  EXPECT_EQ(s.message(),
            std::string(kDeltaWhere) + ": truncated: 100 bytes, the header alone takes 256");
  ASSERT_TRUE(table.ApplyDelta(chain.delta.data(), chain.delta.size(), kDeltaWhere).ok());
}

TEST(TableDeltaCorruptionTest, EveryFlippedByteIsDetected) {
  const SmallChain chain;
  SparseTable table(chain.options);
  chain.Base(&table);
  const std::string before = Serialize(table);
  for (size_t at = 0; at < chain.delta.size(); ++at) {
    for (int bit : {0, 7}) {
      std::string bytes = chain.delta;
      bytes[at] = static_cast<char>(bytes[at] ^ (1 << bit));
      ExpectDeltaFailure(&table, bytes, before,
                         "bit " + std::to_string(bit) + " of byte " + std::to_string(at));
    }
  }
  std::string step = chain.delta;
  step[kDeltaBaseStepAt] ^= 1;
  const Status s = table.ApplyDelta(step.data(), step.size(), kDeltaWhere);
  EXPECT_NE(s.message().find("checksum mismatch"), std::string::npos) << s;
}

TEST(TableDeltaCorruptionTest, WrongChainIsRefusedAndTheTableKept) {
  const SparseTableOptions o = Options(Kind::kAdagrad, 4);
  Checkpointed c(o);
  const Filled f = Fill(&c.original, o, 300, 2, 1);
  c.Full();
  std::mt19937_64 rng(1);
  PushRandom(&c.original, Sample(f.keys, 50, &rng), &rng);
  const std::string d1 = c.Delta();
  PushRandom(&c.original, Sample(f.keys, 50, &rng), &rng);
  const std::string d2 = c.Delta();
  // Skipping a delta, or applying one twice.
  SparseTable table(o);
  ASSERT_TRUE(table.Restore(c.full.data(), c.full.size(), kWhere).ok());
  std::string before = Serialize(table);
  Status s = table.ApplyDelta(d2.data(), d2.size(), kDeltaWhere);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), std::string(kDeltaWhere) + ": chained to step 3, the table is at step 2");
  EXPECT_TRUE(Serialize(table) == before);
  ASSERT_TRUE(table.ApplyDelta(d1.data(), d1.size(), kDeltaWhere).ok());
  before = Serialize(table);
  ExpectDeltaFailure(&table, d1, before, "d1 twice");
  ASSERT_TRUE(table.ApplyDelta(d2.data(), d2.size(), kDeltaWhere).ok());
  ExpectIdentical(&c.original, &table, f.keys);
  // Another shard of the same server: same step, other rows.
  SparseTable other(o);
  Fill(&other, o, 300, 2, 99);
  before = Serialize(other);
  s = other.ApplyDelta(d1.data(), d1.size(), kDeltaWhere);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("other keys"), std::string::npos) << s;
  EXPECT_TRUE(Serialize(other) == before);
  // Same keys, other rows count: one erased.
  SparseTable fewer(o);
  ASSERT_TRUE(fewer.Restore(c.full.data(), c.full.size(), kWhere).ok());
  fewer.Erase(f.keys[0]);
  s = fewer.ApplyDelta(d1.data(), d1.size(), kDeltaWhere);
  EXPECT_EQ(s.message(), std::string(kDeltaWhere) +
                             ": chained to a table of 300 rows at step 2, the table has 299");
  // Same keys, same counts, other stamps: a diverged timeline.
  SparseTable diverged(o);
  Fill(&diverged, o, 300, 1, 1);
  PushRandom(&diverged, Sample(f.keys, 150, &rng), &rng);
  s = diverged.ApplyDelta(d1.data(), d1.size(), kDeltaWhere);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("other stamps"), std::string::npos) << s;
  // A table of another dim or optimizer.
  SparseTable dim8(Options(Kind::kAdagrad, 8));
  s = dim8.ApplyDelta(d1.data(), d1.size(), kDeltaWhere);
  EXPECT_EQ(s.message(), std::string(kDeltaWhere) + ": delta of dim 4, this table's is 8");
  SparseTable sgd(Options(Kind::kSgd, 4));
  s = sgd.ApplyDelta(d1.data(), d1.size(), kDeltaWhere);
  EXPECT_EQ(s.message(),
            std::string(kDeltaWhere) + ": delta's optimizer is Adagrad, this table's is SGD");
}

TEST(TableDeltaCorruptionTest, FullAndDeltaAreNotInterchangeable) {
  const SmallChain chain;
  SparseTable table(chain.options);
  chain.Base(&table);
  const std::string before = Serialize(table);
  Status s = table.ApplyDelta(chain.full.data(), chain.full.size(), kDeltaWhere);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("MTPSROWS"), std::string::npos) << s;
  EXPECT_TRUE(Serialize(table) == before);
  s = table.Restore(chain.delta.data(), chain.delta.size(), kWhere);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("ApplyDelta"), std::string::npos) << s;
  EXPECT_EQ(table.size(), 0u);
  ExpectDeltaFailure(&table, "MTPSD", Serialize(table), "short");
  ExpectDeltaFailure(&table, "", Serialize(table), "empty");
}

TEST(TableDeltaCorruptionTest, ForgedHeadersAndSectionsAreRefused) {
  const SmallChain chain;
  SparseTable table(chain.options);
  chain.Base(&table);
  const std::string before = Serialize(table);
  auto forged = [&](size_t at, uint64_t v, bool u32) {
    std::string bytes = chain.delta;
    if (u32) {
      StoreU32(&bytes, at, static_cast<uint32_t>(v));
    } else {
      StoreU64(&bytes, at, v);
    }
    Reseal(&bytes);
    return bytes;
  };
  // Counts beyond the input, checked before anything is allocated.
  for (size_t at :
       {kDeltaBlocksAt, kDeltaChangedAt, kDeltaMovedAt, kDeltaEmptiedAt, kDeltaRemovedAt}) {
    for (uint64_t n : {uint64_t{1} << 32, uint64_t{1} << 62, ~uint64_t{0}}) {
      const std::string bytes = forged(at, n, false);
      ExpectDeltaFailure(&table, bytes, before, "count at " + std::to_string(at));
    }
  }
  ExpectDeltaFailure(&table, forged(kDeltaResultCapacityAt, 37, true), before, "capacity 2^37");
  ExpectDeltaFailure(&table, forged(kDeltaResultCapacityAt, 3, true), before, "capacity 2^3");
  ExpectDeltaFailure(&table, forged(kDeltaFlagsAt, 4, true), before, "flags");
  ExpectDeltaFailure(&table, forged(kDeltaFlagsAt, 2, true), before, "unlisted, in place");
  ExpectDeltaFailure(&table, forged(kDeltaKey0At, 3, true), before, "key 0 state");
  ExpectDeltaFailure(&table, forged(kDeltaBaseRowsAt, 41, false), before, "base rows");
  ExpectDeltaFailure(&table, forged(8, 2, true), before, "version");
  ExpectDeltaFailure(&table, forged(192, 3, true), before, "sketch depth");
  ExpectDeltaFailure(&table, forged(196, 5, true), before, "sketch width");
  ExpectDeltaFailure(&table, forged(100, 1, true), before, "reserved");
  // Records: a bucket beyond the index, buckets twice, key 0 in a bucket.
  const uint64_t blocks = LoadU64(chain.delta, kDeltaBlocksAt);
  const size_t changed_at = kDeltaHeaderBytes + blocks * (4 + 2 * 64);
  const size_t record = 20 + 4 * 10;
  const size_t first = changed_at + record;  // after key 0's
  ExpectDeltaFailure(&table, forged(first + 8, 1 << 20, false), before, "bucket out of range");
  const uint64_t next_pos = LoadU64(chain.delta, first + record + 8);
  ExpectDeltaFailure(&table, forged(first + 8, next_pos, false), before, "bucket twice");
  ExpectDeltaFailure(&table, forged(first, 0, false), before, "key 0 in a bucket");
  ExpectDeltaFailure(&table, forged(changed_at + 8, 5, false), before, "key 0 with a bucket");
  // A moved key the base does not have: found while applying; the table is
  // then left empty.
  const uint64_t changed = LoadU64(chain.delta, kDeltaChangedAt);
  const size_t moved_at = changed_at + changed * record;
  ExpectDeltaFailure(&table, forged(moved_at, 12345, false), before, "unknown moved key",
                     /*unchanged=*/false);
  EXPECT_EQ(table.size(), 0u);
  chain.Base(&table);
  // A removed key never there is fine; a base key left out is not.
  const uint64_t removed = LoadU64(chain.delta, kDeltaRemovedAt);
  const size_t removed_at = chain.delta.size() - 8 - removed * 8;
  std::string unlisted = forged(kDeltaRemovedAt, removed - 1, false);
  unlisted.erase(removed_at, 8);
  Reseal(&unlisted);
  ExpectDeltaFailure(&table, unlisted, before, "a removal left out", /*unchanged=*/false);
  EXPECT_EQ(table.size(), 0u);
  // Whatever happened, the table works and takes the right chain.
  chain.Base(&table);
  ASSERT_TRUE(table.ApplyDelta(chain.delta.data(), chain.delta.size(), kDeltaWhere).ok());
}

TEST(TableDeltaCorruptionTest, RandomByteFlipsNeverCrash) {
  const SmallChain chain;
  SparseTable table(chain.options);
  std::mt19937_64 rng(4321);
  int applied = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    chain.Base(&table);
    std::string bytes = chain.delta;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    if (trial % 5 == 0) bytes.resize(rng() % bytes.size());
    const bool resealed = trial % 3 == 0 && bytes.size() >= 8;
    if (resealed) Reseal(&bytes);  // past the checksum
    const Status s = table.ApplyDelta(bytes.data(), bytes.size(), kDeltaWhere);
    if (!s.ok()) {
      EXPECT_TRUE(StartsWith(s.message(), std::string(kDeltaWhere) + ": ")) << s;
    } else {
      ++applied;
    }
    if (!resealed) {
      EXPECT_FALSE(s.ok()) << trial;
    }
    // Whatever happened, the table works.
    std::vector<uint64_t> keys = DistinctKeys(8, trial);
    PushRandom(&table, keys, &rng);
    PushRandom(&table, keys, &rng);
    ASSERT_LE(table.size(), table.memory_report().index_bytes / 16 + 1);
    std::vector<float> out(keys.size() * 3);
    table.Pull(keys.data(), keys.size(), /*create_missing=*/true, out.data());
  }
  EXPECT_GT(applied, 0);  // flips in row content pass every check
}

// ---------------------------------------------------------------------------
// DenseStore

config::DenseOptimizer DenseOptions(bool adam) {
  config::DenseOptimizer o;
  if (adam) {
    o.mutable_adam()->set_learning_rate(0.01f);
  } else {
    o.mutable_adagrad()->set_learning_rate(0.1f);
  }
  return o;
}

std::vector<float> RandomVector(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

std::string Values(const DenseStore& s) {
  return std::string(reinterpret_cast<const char*>(s.values()), s.size() * sizeof(float));
}

TEST(DenseSnapshotTest, RoundTripAdamAndAdagradContinuesBitIdentically) {
  for (bool adam : {true, false}) {
    SCOPED_TRACE(adam ? "adam" : "adagrad");
    const size_t n = 37;
    DenseStore original(DenseOptions(adam));
    const std::vector<float> init = RandomVector(n, 1);
    ASSERT_TRUE(original.Init(init.data(), n));
    for (int t = 0; t < 5; ++t) ASSERT_TRUE(original.Push(RandomVector(n, 10 + t).data(), n).ok());
    const std::string bytes = original.Serialize();
    EXPECT_EQ(bytes.size(), 40 + (adam ? 3 : 2) * n * 4 + 8);
    DenseStore restored(DenseOptions(adam));
    const Status s = restored.Restore(bytes.data(), bytes.size(), kWhere);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_TRUE(restored.initialized());
    EXPECT_EQ(restored.steps(), 5);
    EXPECT_TRUE(Values(restored) == Values(original));
    EXPECT_FALSE(restored.Init(init.data(), n));  // initialized: the first Init won
    for (int t = 0; t < 3; ++t) {
      const std::vector<float> g = RandomVector(n, 100 + t);
      ASSERT_TRUE(original.Push(g.data(), n).ok());
      ASSERT_TRUE(restored.Push(g.data(), n).ok());
    }
    EXPECT_EQ(restored.steps(), 8);
    EXPECT_TRUE(Values(restored) == Values(original));
    EXPECT_TRUE(restored.Serialize() == original.Serialize());
  }
}

TEST(DenseSnapshotTest, UninitializedStoreRoundTripsAndReplacesContent) {
  for (bool adam : {true, false}) {
    DenseStore empty(DenseOptions(adam));
    const std::string bytes = empty.Serialize();
    DenseStore target(DenseOptions(adam));
    const std::vector<float> init = RandomVector(10, 1);
    ASSERT_TRUE(target.Init(init.data(), 10));
    ASSERT_TRUE(target.Push(init.data(), 10).ok());
    ASSERT_TRUE(target.Restore(bytes.data(), bytes.size(), kWhere).ok());
    EXPECT_FALSE(target.initialized());
    EXPECT_EQ(target.size(), 0u);
    EXPECT_EQ(target.steps(), 0);
    EXPECT_TRUE(target.Init(init.data(), 10));
  }
}

TEST(DenseSnapshotTest, WrongKindIsInvalidArgument) {
  DenseStore adam(DenseOptions(true));
  const std::vector<float> init = RandomVector(4, 1);
  adam.Init(init.data(), 4);
  const std::string bytes = adam.Serialize();
  DenseStore adagrad(DenseOptions(false));
  adagrad.Init(init.data(), 4);
  const Status s = adagrad.Restore(bytes.data(), bytes.size(), kWhere);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            std::string(kWhere) + ": dense block's optimizer is Adam, this store's is Adagrad");
  EXPECT_FALSE(adagrad.initialized());
}

// train.dense_sync_batches > 1: a push is a change, added as it is; the
// block round-trips with no optimizer state (kind 3). A job resumed with
// another dense_sync_batches crosses modes: the values are kept, and the
// optimizer state starts afresh (into kOptimize) or is dropped.
TEST(DenseSnapshotTest, AddChangesModeAddsAndRoundTrips) {
  const size_t n = 9;
  DenseStore store(DenseOptions(true), DenseStore::Mode::kAddChanges);
  const std::vector<float> init = RandomVector(n, 1), change = RandomVector(n, 2);
  ASSERT_TRUE(store.Init(init.data(), n));
  ASSERT_TRUE(store.Push(change.data(), n).ok());
  ASSERT_TRUE(store.Push(change.data(), n).ok());
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(store.values()[i], init[i] + change[i] + change[i]);
  EXPECT_EQ(store.steps(), 2);
  const std::string bytes = store.Serialize();
  EXPECT_EQ(bytes.size(), 40 + n * 4 + 8);
  DenseStore restored(DenseOptions(true), DenseStore::Mode::kAddChanges);
  ASSERT_TRUE(restored.Restore(bytes.data(), bytes.size(), kWhere).ok());
  EXPECT_TRUE(Values(restored) == Values(store));
  EXPECT_EQ(restored.steps(), 2);
  EXPECT_TRUE(restored.Serialize() == bytes);

  // Into a stepping store: the values, and Adam from its first step.
  DenseStore adam(DenseOptions(true));
  ASSERT_TRUE(adam.Restore(bytes.data(), bytes.size(), kWhere).ok());
  EXPECT_TRUE(Values(adam) == Values(store));
  DenseStore fresh(DenseOptions(true));
  ASSERT_TRUE(fresh.Init(adam.values(), n));
  const std::vector<float> g = RandomVector(n, 3);
  ASSERT_TRUE(adam.Push(g.data(), n).ok());
  ASSERT_TRUE(fresh.Push(g.data(), n).ok());
  EXPECT_TRUE(Values(adam) == Values(fresh));  // the same first step
  // A stepped block into a store of added changes: the values, no state.
  const std::string adam_bytes = adam.Serialize();
  ASSERT_TRUE(restored.Restore(adam_bytes.data(), adam_bytes.size(), kWhere).ok());
  EXPECT_TRUE(Values(restored) == Values(adam));
  EXPECT_EQ(restored.Serialize().size(), 40 + n * 4 + 8);
  // Another optimizer is still refused by name.
  DenseStore adagrad(DenseOptions(false));
  const Status s = adagrad.Restore(adam_bytes.data(), adam_bytes.size(), kWhere);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            std::string(kWhere) + ": dense block's optimizer is Adam, this store's is Adagrad");
}

void ExpectDenseFailure(DenseStore* store, const std::string& bytes, const std::string& what) {
  const Status s = store->Restore(bytes.data(), bytes.size(), kWhere);
  ASSERT_FALSE(s.ok()) << what;
  EXPECT_TRUE(StartsWith(s.message(), std::string(kWhere) + ": ")) << what << ": " << s;
  EXPECT_FALSE(store->initialized()) << what;
  EXPECT_EQ(store->size(), 0u) << what;
  EXPECT_EQ(store->steps(), 0) << what;
}

TEST(DenseSnapshotTest, CorruptInputFailsCleanly) {
  DenseStore source(DenseOptions(true));
  const std::vector<float> init = RandomVector(20, 1);
  source.Init(init.data(), 20);
  ASSERT_TRUE(source.Push(init.data(), 20).ok());
  const std::string bytes = source.Serialize();
  DenseStore store(DenseOptions(true));
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    ExpectDenseFailure(&store, bytes.substr(0, cut), "cut at " + std::to_string(cut));
  }
  for (size_t at = 0; at < bytes.size(); ++at) {
    std::string flipped = bytes;
    flipped[at] ^= 0x10;
    ExpectDenseFailure(&store, flipped, "flip at " + std::to_string(at));
  }
  std::string magic = bytes;
  magic[0] = 'X';
  ExpectDenseFailure(&store, magic, "magic");
  ExpectDenseFailure(&store, Serialize(SparseTable(Options(Kind::kAdam, 2))), "a sparse table");
  for (uint64_t n : {uint64_t{21}, uint64_t{1} << 40, ~uint64_t{0}}) {
    std::string huge = bytes;
    StoreU64(&huge, 32, n);
    Reseal(&huge);
    ExpectDenseFailure(&store, huge, "n " + std::to_string(n));
    EXPECT_EQ(store.Restore(huge.data(), huge.size(), kWhere).message(),
              std::string(kWhere) + ": truncated: " + std::to_string(n) +
                  " parameters announced, 20 present");
  }
  std::string uninit = bytes;  // parameters without the initialized flag
  StoreU32(&uninit, 20, 0);
  Reseal(&uninit);
  ExpectDenseFailure(&store, uninit, "not initialized");
  std::string states = bytes;
  StoreU32(&states, 16, 1);
  Reseal(&states);
  ExpectDenseFailure(&store, states, "state vectors");
  std::string steps = bytes;
  StoreU64(&steps, 24, ~uint64_t{0});
  Reseal(&steps);
  ExpectDenseFailure(&store, steps, "negative steps");
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string b = bytes;
    for (int i = 0, flips = 1 + static_cast<int>(rng() % 3); i < flips; ++i) {
      b[rng() % b.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    if (trial % 3 == 0) Reseal(&b);
    const Status s = store.Restore(b.data(), b.size(), kWhere);
    if (!s.ok()) {
      EXPECT_FALSE(store.initialized());
    }
    if (store.initialized()) {
      EXPECT_EQ(store.size(), 20u);
    }
  }
  ASSERT_TRUE(store.Restore(bytes.data(), bytes.size(), kWhere).ok());
  EXPECT_TRUE(Values(store) == Values(source));
}

}  // namespace
}  // namespace mtps
