// Tests of crash-safe checkpoint files (common/base/durable_file.h) and of
// the checkpoint directory (ps/scheduler/checkpoint_store.h): commit by
// manifest, detection of cut-short, truncated and corrupt checkpoints with
// the file named, fallback to the newest intact one, pruning.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/base/durable_file.h"
#include "ps/scheduler/checkpoint_store.h"
#include "tests/unit/temp_dir_test.h"

namespace mtps {
namespace {

namespace fs = std::filesystem;

class CheckpointStoreTest : public TempDirTest {
 protected:
  // Writes checkpoint `id` with the given files (name -> content) and, when
  // `commit`, its manifest.
  void MakeCheckpoint(const CheckpointStore& store, uint64_t id,
                      const std::vector<std::pair<std::string, std::string>>& files,
                      bool commit = true, uint64_t chain_start = 0) {
    fs::create_directories(store.DirFor(id));
    checkpoint::Manifest m;
    m.set_id(id);
    m.set_step(static_cast<int64_t>(id) * 100);
    if (chain_start != 0) m.set_chain_start(chain_start);
    for (const auto& [name, content] : files) {
      uint64_t size = 0;
      uint32_t crc = 0;
      ASSERT_TRUE(WriteFileDurably(store.DirFor(id) + "/" + name, content, &size, &crc).ok());
      wire::CheckpointFile* f = m.add_files();
      f->set_name(name);
      f->set_size(size);
      f->set_crc32(crc);
    }
    if (commit) {
      ASSERT_TRUE(store.Commit(m).ok());
    }
  }
  std::string Root() const { return (dir_ / "ckpts").string(); }
};

TEST_F(CheckpointStoreTest, DurableWriterComputesSizeAndCrcAndLeavesNoTemporary) {
  const std::string path = (dir_ / "f.bin").string();
  auto writer = DurableFileWriter::Create(path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append("hello ", 6).ok());
  ASSERT_TRUE((*writer)->Append("world", 5).ok());
  EXPECT_FALSE(fs::exists(path)) << "visible before its commit";
  EXPECT_TRUE(fs::exists(path + ".tmp"));
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_EQ((*writer)->size(), 11u);
  EXPECT_EQ((*writer)->crc32(), Crc32(0, "hello world", 11));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto back = ReadVerifiedFile(path, 11, Crc32(0, "hello world", 11));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "hello world");
}

TEST_F(CheckpointStoreTest, AbandonedWriterRemovesItsTemporary) {
  const std::string path = (dir_ / "g.bin").string();
  {
    auto writer = DurableFileWriter::Create(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append("x", 1).ok());
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(CheckpointStoreTest, ReadVerifiedFileNamesTruncationAndCorruption) {
  const std::string path = Write("data.bin", "0123456789");
  const uint32_t crc = Crc32(0, "0123456789", 10);
  auto shorter = ReadVerifiedFile(path, 12, crc);
  ASSERT_FALSE(shorter.ok());
  EXPECT_EQ(shorter.status().code(), StatusCode::kCorruption);
  EXPECT_NE(shorter.status().message().find(path), std::string::npos);
  EXPECT_NE(shorter.status().message().find("truncated"), std::string::npos);
  auto flipped = ReadVerifiedFile(Write("data.bin", "0123456788"), 10, crc);
  ASSERT_FALSE(flipped.ok());
  EXPECT_NE(flipped.status().message().find("corrupt"), std::string::npos);
  auto missing = ReadVerifiedFile((dir_ / "none").string(), 1, 0);
  EXPECT_EQ(missing.status().code(), StatusCode::kCorruption);
}

TEST_F(CheckpointStoreTest, NewestIntactCheckpointWinsAndEachSkippedOneIsNamed) {
  CheckpointStore store(Root());
  ASSERT_TRUE(store.Init().ok());
  MakeCheckpoint(store, 1, {{"server-0.shard-0", "rows of one"}, {"worker-0.state", "w1"}});
  MakeCheckpoint(store, 2, {{"server-0.shard-0", "rows of two"}, {"worker-0.state", "w2"}});
  MakeCheckpoint(store, 3, {{"server-0.shard-0", "rows of three"}, {"worker-0.state", "w3"}});
  MakeCheckpoint(store, 4, {{"server-0.shard-0", "rows of four"}}, /*commit=*/false);
  EXPECT_EQ(store.ListIds(), (std::vector<uint64_t>{4, 3, 2, 1}));

  std::vector<std::string> skipped;
  auto good = store.LatestGood(&skipped);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->id(), 3u);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("MANIFEST"), std::string::npos) << skipped[0];

  // Truncate 3's shard, flip a byte of 2's state: 1 is the newest intact.
  fs::resize_file(store.DirFor(3) + "/server-0.shard-0", 4);
  Write("ckpts/ckpt-00000002/worker-0.state", "w3");
  skipped.clear();
  good = store.LatestGood(&skipped);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->id(), 1u);
  ASSERT_EQ(skipped.size(), 3u);
  EXPECT_NE(skipped[1].find("ckpt-00000003/server-0.shard-0"), std::string::npos) << skipped[1];
  EXPECT_NE(skipped[1].find("truncated"), std::string::npos) << skipped[1];
  EXPECT_NE(skipped[2].find("ckpt-00000002/worker-0.state"), std::string::npos) << skipped[2];
  EXPECT_NE(skipped[2].find("corrupt"), std::string::npos) << skipped[2];

  // A garbled manifest is corrupt, not fatal.
  Write("ckpts/ckpt-00000001/MANIFEST", "not a manifest \x01\x02");
  good = store.LatestGood(&skipped);
  EXPECT_EQ(good.status().code(), StatusCode::kNotFound);
}

TEST_F(CheckpointStoreTest, ManifestFileNamesCannotEscapeTheirDirectory) {
  CheckpointStore store(Root());
  ASSERT_TRUE(store.Init().ok());
  MakeCheckpoint(store, 1, {{"ok", "x"}});
  checkpoint::Manifest m;
  m.set_id(1);
  wire::CheckpointFile* f = m.add_files();
  f->set_name("../../etc/passwd");
  f->set_size(1);
  ASSERT_TRUE(store.Commit(m).ok());
  auto v = store.Verify(1);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("bad file name"), std::string::npos) << v.status();
}

TEST_F(CheckpointStoreTest, PruneKeepsTheNewestCommittedAndDropsOlderCutShortOnes) {
  CheckpointStore store(Root());
  ASSERT_TRUE(store.Init().ok());
  for (uint64_t id = 1; id <= 5; ++id) MakeCheckpoint(store, id, {{"f", "x"}}, id != 2);
  MakeCheckpoint(store, 6, {{"f", "in progress"}}, /*commit=*/false);
  ASSERT_TRUE(store.Prune(5, 2).ok());
  // 5 and 4 kept; 3, 1 (committed, older) and 2 (cut short) removed; 6 is
  // newer than the commit and may still be being written.
  EXPECT_EQ(store.ListIds(), (std::vector<uint64_t>{6, 5, 4}));
}

TEST_F(CheckpointStoreTest, PruneKeepsAFallbackOfAnotherChainOfDeltas) {
  CheckpointStore store(Root());
  ASSERT_TRUE(store.Init().ok());
  // 1: full; 2: full, 3..5 its deltas. Keeping 3 keeps one chain only, so
  // the newest of the older chain (1) stays as the fallback.
  MakeCheckpoint(store, 1, {{"f", "x"}}, true, 1);
  for (uint64_t id = 2; id <= 5; ++id) MakeCheckpoint(store, id, {{"f", "x"}}, true, 2);
  ASSERT_TRUE(store.Prune(5, 3).ok());
  EXPECT_EQ(store.ListIds(), (std::vector<uint64_t>{5, 4, 3, 1}));
  // Once the kept ones span two chains, no extra one is kept.
  MakeCheckpoint(store, 6, {{"f", "x"}}, true, 6);
  ASSERT_TRUE(store.Prune(6, 3).ok());
  EXPECT_EQ(store.ListIds(), (std::vector<uint64_t>{6, 5, 4}));
}

}  // namespace
}  // namespace mtps
