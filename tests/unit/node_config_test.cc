// Tests of the scheduler's config loading through the real mtps-node binary
// (launcher/node_main.cc, --check_config): the scheduler passes every owner's
// check to LoadConfig, so every shipped config loads, and a bad value of a
// rule of any owner (data readers, model kinds, tables, server, and the
// generic train/cluster/eval rules) is rejected before anything starts, with
// exactly the message LoadConfig gives with all the owners' checks.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "common/config/config.h"
#include "ps/server/server_config.h"
#include "ps/table/table_config.h"
#include "tests/unit/temp_dir_test.h"
#include "worker/data/data_config.h"
#include "worker/models/model_registry.h"

namespace mtps {
namespace {

namespace fs = std::filesystem;

// Every owner's check: what the scheduler must pass to LoadConfig.
const std::vector<ConfigCheck> kAllChecks = {CheckDataConfig, CheckModelConfig, CheckTableConfig,
                                             CheckServerConfig};

std::string Configs() { return std::string(MTPS_SOURCE_DIR) + "/configs/"; }

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class NodeConfigTest : public TempDirTest {
 protected:
  struct Result {
    int exit_code = -1;
    std::string out;
    std::string err;
  };

  // Runs mtps-node with `args` (a minute at most).
  Result RunNode(const std::vector<std::string>& args) {
    std::string command = "timeout 60 " + Quote(std::string(MTPS_BINARY_DIR) + "/bin/mtps-node");
    for (const std::string& a : args) command += " " + Quote(a);
    command += " >" + Quote((dir_ / "out").string()) + " 2>" + Quote((dir_ / "err").string());
    const int status = std::system(command.c_str());
    Result r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = ReadFile(dir_ / "out");
    r.err = ReadFile(dir_ / "err");
    return r;
  }

  Result CheckConfig(const std::string& config, const std::string& set) {
    return RunNode({"--role=scheduler", "--config=" + config, "--set=" + set, "--check_config"});
  }
};

TEST_F(NodeConfigTest, EveryShippedConfigLoadsWithEveryOwnersCheck) {
  int found = 0;
  for (const auto& entry : fs::directory_iterator(Configs())) {
    if (entry.path().extension() != ".pbtxt") continue;
    ++found;
    const std::string path = entry.path().string();
    SCOPED_TRACE(path);
    StatusOr<config::Config> expected = LoadConfig(path, {}, kAllChecks);
    ASSERT_TRUE(expected.ok()) << expected.status();
    const Result r = CheckConfig(path, "");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // It prints the checked config.
    config::Config printed;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(r.out, &printed)) << r.out;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(printed, *expected));
  }
  EXPECT_GE(found, 8);
}

TEST_F(NodeConfigTest, ABadValueOfEveryOwnersRulesIsRejectedWithItsField) {
  struct Case {
    std::string config;  // in configs/
    std::string set;     // --set
    std::string field;   // named in the message
  };
  const std::vector<Case> cases = {
      // LoadConfig's own: train, cluster, eval.
      {"census_mmoe.pbtxt", "train.epochs=0", "train.epochs"},
      {"census_mmoe.pbtxt", "cluster.heartbeat_timeout_ms=10", "cluster.heartbeat_timeout_ms"},
      {"census_mmoe.pbtxt", "eval.auc_bins=-1", "eval.auc_bins"},
      // The data readers'.
      {"census_mmoe.pbtxt", "data.format=FORMAT_UNSPECIFIED", "data.format"},
      {"census_mmoe.pbtxt", "data.delimiter=ab", "data.delimiter"},
      {"census_mmoe.pbtxt", "data.holdout_fraction=1", "data.holdout_fraction"},
      {"census_mmoe.pbtxt", "data.shuffle_buffer=-1", "data.shuffle_buffer"},
      {"census_mmoe.pbtxt", "data.max_bad_lines=-1", "data.max_bad_lines"},
      {"census_mmoe.pbtxt", "data.test_path=", "data.test_path"},
      {"census_mmoe.pbtxt", "data.train_common_path=/c.csv", "data.train_common_path"},
      {"census_mmoe.pbtxt", "data.dense_columns=income", "data.dense_columns[0]"},
      {"census_mmoe.pbtxt", "data.ignore_columns=age,age", "data.ignore_columns[1]"},
      {"synthetic_esmm.pbtxt", "data.train_common_path=", "data.train_common_path"},
      {"synthetic_esmm.pbtxt",
       "data.holdout_fraction=0.1;data.test_path=", "data.test_common_path"},
      {"synthetic_esmm.pbtxt", "data.dense_columns=D101", "data.dense_columns"},
      {"aliccp_esmm_fieldid.pbtxt", "data.other_columns=OTHER_CATEGORICAL", "data.other_columns"},
      {"aliccp_esmm_fieldid.pbtxt", "data.categorical_columns=101,101",
       "data.categorical_columns[1]"},
      // The readers' label columns: FIELD_ID's are click and purchase,
      // ALICCP_RAW's click and conversion.
      {"synthetic_esmm.pbtxt",
       "data.format=FIELD_ID;data.train_common_path=;data.test_common_path=",
       "data.labels[1].column"},
      {"aliccp_esmm_fieldid.pbtxt",
       "data.format=ALICCP_RAW;data.train_common_path=/c;data.test_common_path=/d",
       "data.labels[1].column"},
      // The model kinds'.
      {"census_mmoe.pbtxt", "model.embedding_dim=0", "model.embedding_dim"},
      {"census_mmoe.pbtxt", "model.dropout=1", "model.dropout"},
      {"census_mmoe.pbtxt", "model.mmoe.num_experts=0", "model.mmoe.num_experts"},
      {"census_mmoe.pbtxt", "model.mmoe.expert_hidden=", "model.mmoe.expert_hidden"},
      {"aliccp_esmm.pbtxt", "model.esmm.click_label=clk", "model.esmm.click_label"},
      {"aliccp_esmm.pbtxt", "model.esmm.tower_hidden=8,0", "model.esmm.tower_hidden[1]"},
      {"census_ple.pbtxt", "model.ple.num_levels=0", "model.ple.num_levels"},
      {"census_shared_bottom.pbtxt",
       "model.shared_bottom.bottom_hidden=", "model.shared_bottom.bottom_hidden"},
      {"census_single_task.pbtxt", "model.single_task.label=nope", "model.single_task.label"},
      {"census_mmoe.pbtxt", "model.mmoe=", "model.mmoe.expert_hidden"},
      // The tables'.
      {"census_mmoe.pbtxt", "server.sparse_optimizer.adagrad.learning_rate=0",
       "server.sparse_optimizer.adagrad.learning_rate"},
      {"census_mmoe.pbtxt", "server.sparse_optimizer.ftrl.alpha=0",
       "server.sparse_optimizer.ftrl.alpha"},
      {"census_mmoe.pbtxt", "server.dense_optimizer.adam.beta1=1",
       "server.dense_optimizer.adam.beta1"},
      {"census_mmoe.pbtxt", "server.admission_min_count=65536", "server.admission_min_count"},
      {"census_mmoe.pbtxt", "server.evict_after_steps=2147483648", "server.evict_after_steps"},
      {"census_mmoe.pbtxt", "server.max_rows=4294967295", "server.max_rows"},
      {"census_mmoe.pbtxt", "server.embedding_init_scale=-1", "server.embedding_init_scale"},
      // The server's.
      {"census_mmoe.pbtxt", "server.shard_threads=65", "server.shard_threads"},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.config + " --set=" + t.set);
    const std::string path = Configs() + t.config;
    std::vector<std::string> overrides;
    std::stringstream list(t.set);
    for (std::string o; std::getline(list, o, ';');) overrides.push_back(o);
    const StatusOr<config::Config> expected = LoadConfig(path, overrides, kAllChecks);
    ASSERT_FALSE(expected.ok());
    const std::string& message = expected.status().message();
    EXPECT_NE(message.find(path + ": invalid config: "), std::string::npos) << message;
    EXPECT_NE(message.find(t.field + ": "), std::string::npos) << message;
    const Result r = CheckConfig(path, t.set);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("cannot load the config: " + expected.status().ToString()),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST_F(NodeConfigTest, TheSchedulerRejectsABadConfigBeforeAnythingStarts) {
  const std::string path = Configs() + "census_mmoe.pbtxt";
  const std::string set =
      "server.shard_threads=0;model.embedding_dim=0;data.shuffle_buffer=-1;train.epochs=0;"
      "server.max_rows=-1";
  const StatusOr<config::Config> expected =
      LoadConfig(path,
                 {"server.shard_threads=0", "model.embedding_dim=0", "data.shuffle_buffer=-1",
                  "train.epochs=0", "server.max_rows=-1"},
                 kAllChecks);
  ASSERT_FALSE(expected.ok());
  // Every problem, in one message: LoadConfig's own, then the data, model,
  // table and server checks.
  EXPECT_EQ(expected.status().message(),
            path +
                ": invalid config: train.epochs: must be >= 1 (got 0); data.shuffle_buffer: must "
                "be >= 0 (got -1); model.embedding_dim: must be > 0 (got 0); server.max_rows: "
                "must be >= 0 (got -1); server.shard_threads: must be in [1, 64] (got 0)");
  const fs::path run_dir = dir_ / "run";
  fs::create_directories(run_dir);
  const Result r = RunNode({"--role=scheduler", "--config=" + path, "--set=" + set,
                            "--num_servers=1", "--num_workers=1", "--run_dir=" + run_dir.string()});
  // 3: a permanent error, which the launcher does not restart.
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("mtps-node: cannot load the config: " + expected.status().ToString()),
            std::string::npos)
      << r.err;
  // Nothing started: no address to join, no config written.
  EXPECT_TRUE(fs::is_empty(run_dir));
}

TEST_F(NodeConfigTest, ParseAndOverrideErrorsAreTheLoadersMessages) {
  const std::string bad = Write("bad.pbtxt", "data {\n  labels { name: 3 }\n}\n");
  Result r = CheckConfig(bad, "");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(bad + ":2:18: field 'data.labels[0].name': Expected string, got: 3"),
            std::string::npos)
      << r.err;
  r = CheckConfig(Configs() + "census_mmoe.pbtxt", "train.no_such_field=1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("override 'train.no_such_field=1'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mtps
