// ps/offline/model_checkpoint.h: which checkpoint a run dir's model comes
// from (the run dir's own root, a remote run's hosts/*/ copies, an absolute
// checkpoint.dir; the newest intact one, corrupt newer ones named and
// passed over; an explicit id taken or refused) and what Load rebuilds
// from real shard, delta and dense files of two servers with two shards
// each: rows found where the servers keep them (and SparseTable::ForEachRow
// visiting every row once), unseen keys answered their
// initial value, the dense blocks in server order, the workers' model
// states, every row enumerated once; a dense file of the wrong length is
// refused naming it.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/base/durable_file.h"
#include "common/cluster/partition.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "ps/offline/model_checkpoint.h"
#include "ps/scheduler/checkpoint_store.h"
#include "ps/server/server_shard.h"
#include "ps/table/dense_store.h"
#include "ps/table/sparse_table.h"
#include "tests/unit/temp_dir_test.h"

namespace mtps {
namespace {

namespace fs = std::filesystem;

constexpr int kServers = 2;
constexpr int kShards = 2;
constexpr int kDim = 4;

config::Config JobConfig() {
  config::Config c;
  c.mutable_model()->set_embedding_dim(kDim);
  c.mutable_train()->set_seed(9);
  c.mutable_server()->set_shard_threads(kShards);
  c.mutable_server()->mutable_sparse_optimizer()->mutable_sgd()->set_learning_rate(1.0f);
  c.mutable_server()->set_embedding_init_scale(0.5f);
  return c;
}

std::string SnapshotBytes(const SparseTableSnapshot& snapshot) {
  std::string bytes;
  EXPECT_TRUE(WriteSparseSnapshot(snapshot, [&bytes](const char* data, size_t size) {
                bytes.append(data, size);
                return Status::OK();
              }).ok());
  return bytes;
}

class ModelCheckpointTest : public TempDirTest {
 protected:
  // Writes checkpoint `id` under `root` with `files` (name -> content).
  void Commit(const std::string& root, uint64_t id,
              const std::vector<std::pair<std::string, std::string>>& files,
              const config::Config& config = JobConfig()) {
    const CheckpointStore store(root);
    fs::create_directories(store.DirFor(id));
    checkpoint::Manifest m;
    m.set_id(id);
    m.set_step(static_cast<int64_t>(id) * 10);
    m.set_num_servers(kServers);
    m.set_num_workers(1);
    m.set_shard_threads(kShards);
    m.set_config(config.SerializeAsString());
    for (const auto& [name, content] : files) {
      uint64_t size = 0;
      uint32_t crc = 0;
      ASSERT_TRUE(WriteFileDurably(store.DirFor(id) + "/" + name, content, &size, &crc).ok());
      wire::CheckpointFile* f = m.add_files();
      f->set_name(name);
      f->set_size(size);
      f->set_crc32(crc);
    }
    ASSERT_TRUE(store.Commit(m).ok());
  }
  std::string RunDir() const { return dir_.string(); }
};

TEST_F(ModelCheckpointTest, TakesTheNewestIntactCheckpointAndNamesTheCorruptOnes) {
  const std::string root = RunDir() + "/checkpoints";
  Commit(root, 1, {{"a", "one"}});
  Commit(root, 2, {{"a", "two"}});
  Commit(root, 3, {{"a", "three"}});
  // Checkpoint 3: a flipped byte; checkpoint 4: cut short (no manifest).
  Write("checkpoints/ckpt-00000003/a", "thref");
  fs::create_directories(root + "/ckpt-00000004");
  auto choice = ChooseCheckpoint(RunDir(), JobConfig(), -1);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->manifest.id(), 2u);
  EXPECT_EQ(choice->root, root);
  ASSERT_EQ(choice->notes.size(), 2u);
  EXPECT_NE(choice->notes[0].find("checkpoint 4"), std::string::npos) << choice->notes[0];
  EXPECT_NE(choice->notes[0].find("no manifest"), std::string::npos) << choice->notes[0];
  EXPECT_NE(choice->notes[1].find("checkpoint 3"), std::string::npos) << choice->notes[1];
  EXPECT_NE(choice->notes[1].find("ckpt-00000003/a"), std::string::npos) << choice->notes[1];

  // An explicit id is taken as it is, or refused; never replaced.
  auto one = ChooseCheckpoint(RunDir(), JobConfig(), 1);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->manifest.id(), 1u);
  auto three = ChooseCheckpoint(RunDir(), JobConfig(), 3);
  ASSERT_FALSE(three.ok());
  EXPECT_EQ(three.status().code(), StatusCode::kCorruption);
  EXPECT_NE(three.status().message().find("ckpt-00000003/a"), std::string::npos) << three.status();
  auto seven = ChooseCheckpoint(RunDir(), JobConfig(), 7);
  ASSERT_FALSE(seven.ok());
  EXPECT_EQ(seven.status().code(), StatusCode::kNotFound);
  EXPECT_NE(seven.status().message().find("1, 2, 3, 4"), std::string::npos) << seven.status();
}

TEST_F(ModelCheckpointTest, NoCheckpointAndNoIntactCheckpointAreErrorsNamingWhere) {
  auto none = ChooseCheckpoint(RunDir(), JobConfig(), -1);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find(RunDir() + "/checkpoints"), std::string::npos)
      << none.status();
  Commit(RunDir() + "/checkpoints", 5, {{"a", "five"}});
  Write("checkpoints/ckpt-00000005/a", "fivE");
  auto broken = ChooseCheckpoint(RunDir(), JobConfig(), -1);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), StatusCode::kCorruption);
  EXPECT_NE(broken.status().message().find("checkpoint 5"), std::string::npos) << broken.status();
}

TEST_F(ModelCheckpointTest, RemoteRunsUseTheHostWithTheNewestIntactCheckpoint) {
  // mtps-launch ssh: the scheduler's files under RUN_DIR/hosts/HOST/.
  Commit(RunDir() + "/hosts/alpha/checkpoints", 4, {{"a", "x"}});
  Commit(RunDir() + "/hosts/beta/checkpoints", 6, {{"a", "y"}});
  Commit(RunDir() + "/hosts/beta/checkpoints", 7, {{"a", "z"}});
  Write("hosts/beta/checkpoints/ckpt-00000007/a", "Z");
  auto choice = ChooseCheckpoint(RunDir(), JobConfig(), -1);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->manifest.id(), 6u);
  EXPECT_EQ(choice->root, RunDir() + "/hosts/beta/checkpoints");
  ASSERT_EQ(choice->notes.size(), 1u);
  EXPECT_NE(choice->notes[0].find("checkpoint 7"), std::string::npos) << choice->notes[0];
  // The run dir's own root, once it has checkpoints, is the only one looked at.
  Commit(RunDir() + "/checkpoints", 2, {{"a", "w"}});
  choice = ChooseCheckpoint(RunDir(), JobConfig(), -1);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->manifest.id(), 2u);
  EXPECT_EQ(choice->root, RunDir() + "/checkpoints");
}

TEST_F(ModelCheckpointTest, AnAbsoluteCheckpointDirIsTheOnlyRoot) {
  config::Config config = JobConfig();
  const std::string elsewhere = (dir_ / "shared" / "ckpts").string();
  config.mutable_checkpoint()->set_dir(elsewhere);
  Commit(RunDir() + "/checkpoints", 9, {{"a", "x"}});
  Commit(elsewhere, 3, {{"a", "y"}});
  EXPECT_EQ(CheckpointRoots(RunDir(), config), std::vector<std::string>{elsewhere});
  auto choice = ChooseCheckpoint(RunDir(), config, -1);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->manifest.id(), 3u);
  // A relative dir is the run dir's (and the hosts') subdirectory.
  config.mutable_checkpoint()->set_dir("ck");
  EXPECT_EQ(CheckpointRoots(RunDir(), config), std::vector<std::string>{RunDir() + "/ck"});
}

TEST(SparseTableForEachRowTest, VisitsEveryRowOnceWithItsEmbeddingKeyZeroIncluded) {
  SparseTableOptions options;
  options.dim = 3;
  SparseTable table(options);
  std::vector<uint64_t> keys{0, 7, 1ULL << 63, 12345};
  std::vector<float> rows(keys.size() * 3);
  table.Pull(keys.data(), keys.size(), /*create_missing=*/true, rows.data());
  std::vector<uint64_t> seen;
  table.ForEachRow([&](uint64_t key, const float* embedding) {
    seen.push_back(key);
    const size_t i = static_cast<size_t>(std::find(keys.begin(), keys.end(), key) - keys.begin());
    ASSERT_LT(i, keys.size());
    for (int j = 0; j < 3; ++j) EXPECT_EQ(embedding[j], rows[i * 3 + j]);
  });
  std::sort(seen.begin(), seen.end());
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(seen, keys);
  EXPECT_EQ(table.steps(), 0) << "ForEachRow must not count as a step";
}

// Two servers of two shards: each key goes to the table of its partition
// and shard, pushed once with SGD at rate 1 (row = initial - gradient), then
// a delta moves one key again; dense blocks of 5 parameters split 2 + 3.
class LoadTest : public ModelCheckpointTest {
 protected:
  void SetUp() override {
    ModelCheckpointTest::SetUp();
    const config::Config config = JobConfig();
    const SparseTableOptions options = ShardTableOptions(config);
    const KeyPartitioner partitioner(kServers);
    std::vector<std::vector<SparseTable>> tables(kServers);
    for (auto& server : tables) {
      for (int s = 0; s < kShards; ++s) server.emplace_back(options);
    }
    for (uint64_t key = 1; key <= 40; ++key) {
      keys_.push_back(key * 0x9e3779b97f4a7c15ULL);
      const uint64_t k = keys_.back();
      std::vector<float> grad(kDim, -static_cast<float>(key));
      tables[partitioner.ServerOf(k)][KeyShard(k, kShards)].Push(&k, 1, grad.data());
    }
    std::vector<std::pair<std::string, std::string>> files;
    for (int p = 0; p < kServers; ++p) {
      for (int s = 0; s < kShards; ++s) {
        SparseTable& t = tables[p][s];
        const std::string name = "server-" + std::to_string(p) + ".shard-" + std::to_string(s);
        files.emplace_back(name, SnapshotBytes(t.Snapshot()));
        t.StartDelta();
        // The delta: key 1 (wherever it lives) pushed again.
        if (partitioner.ServerOf(keys_[0]) == p && KeyShard(keys_[0], kShards) == s) {
          std::vector<float> grad(kDim, -100.0f);
          t.Push(&keys_[0], 1, grad.data());
        }
        files.emplace_back(name + ".delta-00000002", SnapshotBytes(t.DeltaSnapshot()));
      }
      DenseStore dense(config.server().dense_optimizer());
      const DenseBlock block = DenseBlockOf(5, p, kServers);
      std::vector<float> values;
      for (int64_t i = block.begin; i < block.end; ++i) values.push_back(0.5f + i);
      dense.Init(values.data(), values.size());
      files.emplace_back("server-" + std::to_string(p) + ".dense", dense.Serialize());
    }
    checkpoint::WorkerState state;
    state.set_rank(0);
    state.add_model_state(0.25f);
    state.add_model_state(4.0f);
    files.emplace_back("worker-0.state", state.SerializeAsString());
    files_ = files;
    Commit(RunDir() + "/checkpoints", 2, files_);
  }
  std::vector<uint64_t> keys_;
  std::vector<std::pair<std::string, std::string>> files_;
};

TEST_F(LoadTest, RebuildsEveryServersRowsDenseBlocksAndModelStates) {
  auto choice = ChooseCheckpoint(RunDir(), JobConfig(), -1);
  ASSERT_TRUE(choice.ok()) << choice.status();
  auto ckpt = ModelCheckpoint::Load(*choice);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  ModelCheckpoint& m = **ckpt;
  EXPECT_EQ(m.rows(), keys_.size());
  EXPECT_EQ(m.dense(), (std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f, 4.5f}));
  auto state = m.WorkerModelState(0);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, (std::vector<float>{0.25f, 4.0f}));
  EXPECT_EQ(m.WorkerModelState(1).status().code(), StatusCode::kNotFound);

  const float scale = JobConfig().server().embedding_init_scale();
  const uint64_t seed = JobConfig().train().seed();
  std::vector<uint64_t> lookup = keys_;
  const uint64_t unseen = 12345;
  lookup.push_back(unseen);
  std::vector<float> rows(lookup.size() * kDim);
  m.Lookup(lookup.data(), lookup.size(), rows.data());
  for (size_t i = 0; i < keys_.size(); ++i) {
    // SGD at rate 1: initial value minus the gradient(s); key 1 also the delta's.
    const float pushed = static_cast<float>(i + 1) + (i == 0 ? 100.0f : 0.0f);
    for (int j = 0; j < kDim; ++j) {
      const float want = InitialValue(seed, keys_[i], j, scale) + pushed;
      EXPECT_FLOAT_EQ(rows[i * kDim + j], want) << "key " << i << " element " << j;
    }
  }
  for (int j = 0; j < kDim; ++j) {
    EXPECT_EQ(rows[keys_.size() * kDim + j], InitialValue(seed, unseen, j, scale));
  }
  std::vector<uint64_t> seen;
  m.ForEachRow([&seen](uint64_t key, const float*) { seen.push_back(key); });
  std::sort(seen.begin(), seen.end());
  std::vector<uint64_t> want = keys_;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(seen, want);
}

TEST_F(LoadTest, ADenseBlockOfTheWrongLengthIsRefusedNamingItsFile) {
  // Server 0's block holds 1 parameter: of the 1 + 3, DenseBlockOf gives it 2.
  DenseStore dense(JobConfig().server().dense_optimizer());
  const std::vector<float> values{1};
  dense.Init(values.data(), values.size());
  for (auto& [name, content] : files_) {
    if (name == "server-0.dense") content = dense.Serialize();
  }
  Commit(RunDir() + "/checkpoints", 3, files_);
  auto choice = ChooseCheckpoint(RunDir(), JobConfig(), 3);
  ASSERT_TRUE(choice.ok()) << choice.status();
  auto ckpt = ModelCheckpoint::Load(*choice);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(ckpt.status().message().find("server-0.dense"), std::string::npos) << ckpt.status();
}

}  // namespace
}  // namespace mtps
