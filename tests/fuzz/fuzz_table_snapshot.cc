// Fuzzes the table snapshot loaders of a server's checkpoint (ps/table):
// SparseTable::Restore of a full snapshot (MTPSROWS), ApplyDelta of an
// incremental one (MTPSDELT) on top of it, and DenseStore::Restore
// (MTPSDENS): what a resuming server loads from checkpoint files.
//
// Input: byte 0 picks the table (tests/fuzz/checkpoint_fuzz.h: optimizer,
// admission, row cap, eviction; bit 5: the dense block instead, Adam or
// Adagrad by bit 0; bit 6: rewrite each part's trailing checksum to match,
// so mutations get past it). The rest is the snapshot, optionally followed by
// kFileSeparator and a delta to apply after it.
//
// Checked beyond "no crash" (and allocating no more than the input holds,
// as Restore promises; libFuzzer's -rss_limit_mb catches that): errors say
// why; a restored table snapshots again to bytes that restore to a table
// whose snapshot is the same bytes (the continuation is exact); it then
// serves a pull and a push; a restored dense block serializes to bytes that
// restore to the same block.
//
// Run: tests/run_fuzz, or by hand
//   build-fuzz/tests/fuzz/fuzz_table_snapshot -dict=tests/fuzz/mtps.dict \
//     build-fuzz/fuzz-corpus/fuzz_table_snapshot build-fuzz/fuzz-seeds/fuzz_table_snapshot
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/checkpoint_fuzz.h"
#include "tests/fuzz/fuzz_support.h"

#include "ps/table/dense_store.h"
#include "ps/table/sparse_table.h"

namespace mtps {
namespace {

// A restored table's state, checked for an exact round trip, then used.
void CheckRestoredTable(SparseTable* table, const SparseTableOptions& options) {
  const std::string bytes = fuzz::SnapshotBytes(table->Snapshot());
  SparseTable again(options);
  Status s = again.Restore(bytes.data(), bytes.size(), "again");
  if (!s.ok()) fuzz::Fail("a restored table's own snapshot does not restore: " + s.ToString());
  if (fuzz::SnapshotBytes(again.Snapshot()) != bytes) {
    fuzz::Fail("a restored table's snapshot restores to another table");
  }
  const uint64_t keys[3] = {0, 1, 0x9e3779b97f4a7c15ULL};
  std::vector<float> rows(3 * fuzz::kTableDim);
  table->Pull(keys, 3, /*create_missing=*/true, rows.data());
  std::vector<float> grads(3 * fuzz::kTableDim, 0.5f);
  table->Push(keys, 3, grads.data());
}

void FuzzSparse(uint8_t pick, std::vector<std::string> parts) {
  const SparseTableOptions options = fuzz::TableOptionsOf(pick);
  SparseTable table(options);
  Status s = table.Restore(parts[0].data(), parts[0].size(), "full");
  if (!s.ok()) {
    if (s.message().rfind("full", 0) != 0) fuzz::Fail("a Restore error not naming its input");
    return;
  }
  CheckRestoredTable(&table, options);
  if (parts.size() < 2) return;
  SparseTable chained(options);
  if (!chained.Restore(parts[0].data(), parts[0].size(), "full").ok()) {
    fuzz::Fail("a snapshot restored once fails the second time");
  }
  s = chained.ApplyDelta(parts[1].data(), parts[1].size(), "delta");
  if (!s.ok()) {
    if (s.message().rfind("delta", 0) != 0) fuzz::Fail("an ApplyDelta error not naming its input");
    return;
  }
  CheckRestoredTable(&chained, options);
}

void FuzzDense(uint8_t pick, const std::string& bytes) {
  config::DenseOptimizer optimizer;
  if (pick & 1) {
    optimizer.mutable_adagrad();
  } else {
    optimizer.mutable_adam();
  }
  DenseStore store(optimizer);
  Status s = store.Restore(bytes.data(), bytes.size(), "dense");
  if (!s.ok()) {
    if (s.message().rfind("dense", 0) != 0)
      fuzz::Fail("a dense Restore error not naming its input");
    return;
  }
  const std::string out = store.Serialize();
  DenseStore again(optimizer);
  s = again.Restore(out.data(), out.size(), "again");
  if (!s.ok()) fuzz::Fail("a restored dense block's own bytes do not restore: " + s.ToString());
  if (again.Serialize() != out) fuzz::Fail("a restored dense block restores to another block");
  if (store.initialized()) {
    std::vector<float> grads(store.size(), 0.25f);
    s = store.Push(grads.data(), grads.size());
    if (!s.ok()) fuzz::Fail("a push of the restored block's size: " + s.ToString());
  }
}

}  // namespace
}  // namespace mtps

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mtps::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mtps;
  if (size == 0) return 0;
  const uint8_t pick = data[0];
  std::vector<std::string> parts;
  for (std::string_view part :
       fuzz::Split(fuzz::AsView(data + 1, size - 1), fuzz::kFileSeparator)) {
    parts.emplace_back(part);
    if (pick & 64) fuzz::FixChecksum(&parts.back());
  }
  if (pick & 32) {
    FuzzDense(pick, parts[0]);
  } else {
    FuzzSparse(pick, std::move(parts));
  }
  return 0;
}
