// Tests of the server section's rules, owned by the tables
// (ps/table/table_config.h: every sparse optimizer's rates, the dense
// optimizer, the init scale, admission, eviction and the row cap) and by the
// server (ps/server/server_config.h: shard threads). Every rule names its
// field; the tables' own validation (ValidateSparseTableOptions for each
// shard's table, ValidateDenseOptimizer) runs the same rules, so it rejects
// the same values with the same words, and whatever passes the config check
// passes it too, so a server never CHECK-fails on a loaded config.
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/config/config.h"
#include "ps/server/server_config.h"
#include "ps/server/server_shard.h"
#include "ps/table/dense_store.h"
#include "ps/table/sparse_table.h"
#include "ps/table/table_config.h"

namespace mtps {
namespace {

// The server section's owners' checks, as the scheduler passes them.
const std::vector<ConfigCheck> kServerChecks = {CheckTableConfig, CheckServerConfig};

Status Check(const config::Config& c) { return ValidateConfig(c, kServerChecks); }

config::Config Census() {
  StatusOr<config::Config> c =
      LoadConfig(std::string(MTPS_SOURCE_DIR) + "/configs/census_mmoe.pbtxt", {}, kServerChecks);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : config::Config();
}

// The table-side name of a server field ("server.sparse_optimizer.adam.beta1"
// is the sparse table's "adam.beta1"; "server.max_rows" its "max_rows"), or
// "" for a field no table option holds.
std::string TableField(const std::string& field) {
  for (const std::string prefix :
       {"server.sparse_optimizer.", "server.dense_optimizer.", "server."}) {
    if (field.rfind(prefix, 0) == 0) return field.substr(prefix.size());
  }
  return "";
}

TEST(ServerConfigTest, BadServerFieldsAreNamed) {
  struct Case {
    std::string override_text;
    std::string field;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"server.sparse_optimizer.adagrad.learning_rate=0",
       "server.sparse_optimizer.adagrad.learning_rate", "must be > 0 (got 0)"},
      {"server.sparse_optimizer.adagrad.initial_accumulator=0",
       "server.sparse_optimizer.adagrad.initial_accumulator", "must be > 0 (got 0)"},
      {"server.sparse_optimizer.sgd.learning_rate=0", "server.sparse_optimizer.sgd.learning_rate",
       "must be > 0 (got 0)"},
      {"server.sparse_optimizer.adam.learning_rate=-1",
       "server.sparse_optimizer.adam.learning_rate", "must be > 0 (got -1)"},
      {"server.sparse_optimizer.adam.beta1=1", "server.sparse_optimizer.adam.beta1",
       "must be in [0, 1)"},
      {"server.sparse_optimizer.adam.beta2=-0.5", "server.sparse_optimizer.adam.beta2",
       "must be in [0, 1)"},
      {"server.sparse_optimizer.adam.epsilon=0", "server.sparse_optimizer.adam.epsilon",
       "must be > 0 (got 0)"},
      {"server.sparse_optimizer.ftrl.alpha=0", "server.sparse_optimizer.ftrl.alpha",
       "must be > 0 (got 0)"},
      {"server.sparse_optimizer.ftrl.beta=-1", "server.sparse_optimizer.ftrl.beta",
       "must be >= 0 (got -1)"},
      {"server.sparse_optimizer.ftrl.l1=-0.1", "server.sparse_optimizer.ftrl.l1",
       "must be >= 0 (got -0.1)"},
      {"server.sparse_optimizer.ftrl.l2=-2", "server.sparse_optimizer.ftrl.l2",
       "must be >= 0 (got -2)"},
      {"server.admission_min_count=-1", "server.admission_min_count", "must be >= 0 (got -1)"},
      {"server.admission_min_count=65536", "server.admission_min_count",
       "must be <= 65535 (got 65536)"},
      {"server.evict_after_steps=-5", "server.evict_after_steps", "must be >= 0 (got -5)"},
      {"server.evict_after_steps=2147483648", "server.evict_after_steps",
       "must be < 2^31 (got 2147483648)"},
      {"server.max_rows=-1", "server.max_rows", "must be >= 0 (got -1)"},
      {"server.max_rows=4294967295", "server.max_rows", "must be <= 2^32 - 2 (got 4294967295)"},
      {"server.dense_optimizer.adam.learning_rate=-1", "server.dense_optimizer.adam.learning_rate",
       "must be > 0 (got -1)"},
      {"server.dense_optimizer.adam.beta2=1", "server.dense_optimizer.adam.beta2",
       "must be in [0, 1)"},
      {"server.dense_optimizer.adam.epsilon=0", "server.dense_optimizer.adam.epsilon",
       "must be > 0 (got 0)"},
      {"server.dense_optimizer.adagrad.initial_accumulator=0",
       "server.dense_optimizer.adagrad.initial_accumulator", "must be > 0 (got 0)"},
      {"server.embedding_init_scale=-0.5", "server.embedding_init_scale",
       "must be >= 0 (got -0.5)"},
      {"server.shard_threads=0", "server.shard_threads", "must be in [1, 64] (got 0)"},
      {"server.shard_threads=65", "server.shard_threads", "must be in [1, 64] (got 65)"},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.override_text);
    config::Config c = Census();
    ASSERT_TRUE(ApplyOverride(t.override_text, &c).ok());
    const Status s = Check(c);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), "invalid config: " + t.field + ": " + t.why);
    // The tables reject it in the same words (shard_threads is no table's).
    if (t.field == "server.shard_threads") continue;
    const Status table = t.field.rfind("server.dense_optimizer.", 0) == 0
                             ? ValidateDenseOptimizer(c.server().dense_optimizer())
                             : ValidateSparseTableOptions(ShardTableOptions(c));
    const std::string field =
        t.field == "server.embedding_init_scale" ? "init_scale" : TableField(t.field);
    EXPECT_NE(table.message().find(": " + field + ": " + t.why), std::string::npos) << table;
  }
}

// Rates must also be finite: a table could not use an infinite one (text
// format reads "inf"; an override cannot give one).
TEST(ServerConfigTest, InfiniteRatesAreNamed) {
  struct Case {
    std::string field;
    std::function<void(config::ServerConfig*)> set;
  };
  const std::vector<Case> cases = {
      {"server.sparse_optimizer.sgd.learning_rate",
       [](config::ServerConfig* s) {
         s->mutable_sparse_optimizer()->mutable_sgd()->set_learning_rate(INFINITY);
       }},
      {"server.sparse_optimizer.ftrl.l2",
       [](config::ServerConfig* s) {
         s->mutable_sparse_optimizer()->mutable_ftrl()->set_l2(INFINITY);
       }},
      {"server.dense_optimizer.adagrad.learning_rate",
       [](config::ServerConfig* s) {
         s->mutable_dense_optimizer()->mutable_adagrad()->set_learning_rate(INFINITY);
       }},
      {"server.embedding_init_scale",
       [](config::ServerConfig* s) { s->set_embedding_init_scale(INFINITY); }},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.field);
    config::Config c = Census();
    t.set(c.mutable_server());
    EXPECT_EQ(Check(c).message(), "invalid config: " + t.field + ": must be finite (got inf)");
  }
}

TEST(ServerConfigTest, ValidServerSettingsPassBothChecks) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"server.sparse_optimizer.sgd.learning_rate=0.1"},
      {"server.sparse_optimizer.adam.learning_rate=0.01"},
      {"server.sparse_optimizer.ftrl.beta=0", "server.sparse_optimizer.ftrl.l1=0"},
      {"server.sparse_optimizer.ftrl.alpha=0.1", "server.sparse_optimizer.ftrl.l1=1",
       "server.sparse_optimizer.ftrl.l2=1"},
      {"server.admission_min_count=65535", "server.evict_after_steps=2147483647",
       "server.max_rows=4294967294"},
      {"server.admission_min_count=0", "server.evict_after_steps=0", "server.max_rows=0"},
      {"server.shard_threads=64", "server.admission_min_count=3", "server.max_rows=4294967294"},
      {"server.shard_threads=3", "server.max_rows=10"},
      {"server.dense_optimizer.adagrad.learning_rate=0.1", "server.embedding_init_scale=0"},
  };
  for (const auto& overrides : cases) {
    SCOPED_TRACE(overrides.empty() ? "defaults" : overrides[0]);
    config::Config c = Census();
    for (const std::string& o : overrides) ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
    EXPECT_TRUE(Check(c).ok()) << Check(c);
    EXPECT_TRUE(ValidateSparseTableOptions(ShardTableOptions(c)).ok())
        << ValidateSparseTableOptions(ShardTableOptions(c));
    EXPECT_TRUE(ValidateDenseOptimizer(c.server().dense_optimizer()).ok());
  }
}

TEST(ServerConfigTest, ShardTablesSplitTheRowCapAndTheSketch) {
  config::Config c = Census();
  ASSERT_TRUE(ApplyOverride("server.max_rows=10", &c).ok());
  EXPECT_EQ(ShardTableOptions(c).max_rows, 10);
  EXPECT_EQ(ShardTableOptions(c).admission_sketch_width_log2, 20);
  ASSERT_TRUE(ApplyOverride("server.shard_threads=3", &c).ok());
  EXPECT_EQ(ShardTableOptions(c).max_rows, 4);  // ceil(10 / 3)
  EXPECT_EQ(ShardTableOptions(c).admission_sketch_width_log2, 18);
  ASSERT_TRUE(ApplyOverride("server.shard_threads=4", &c).ok());
  EXPECT_EQ(ShardTableOptions(c).admission_sketch_width_log2, 18);
  ASSERT_TRUE(ApplyOverride("server.max_rows=0", &c).ok());
  EXPECT_EQ(ShardTableOptions(c).max_rows, 0);  // still no cap
}

// Found by fuzz_config (tests/fuzz): a server's own check of the config the
// scheduler sends it computed the shards' row cap as (max_rows + shards -
// 1) / shards, which overflows (undefined behaviour) for a cap near 2^63
// and rounds a negative cap of -1 to 0, "no cap", which then passed
// ValidateSparseTableOptions. Both must be refused by name.
TEST(ServerConfigTest, ShardRowCapOfHugeOrNegativeMaxRowsIsRefusedNotWrapped) {
  config::Config c = Census();
  ASSERT_TRUE(ApplyOverride("server.shard_threads=2", &c).ok());
  ASSERT_TRUE(ApplyOverride("server.max_rows=9223372036854775807", &c).ok());
  EXPECT_EQ(ShardTableOptions(c).max_rows, int64_t{4611686018427387904});  // ceil(max / 2)
  Status s = ValidateSparseTableOptions(ShardTableOptions(c));
  EXPECT_NE(s.message().find("max_rows: must be <= 2^32 - 2"), std::string::npos) << s;
  ASSERT_TRUE(ApplyOverride("server.max_rows=-1", &c).ok());
  EXPECT_EQ(ShardTableOptions(c).max_rows, -1);
  s = ValidateSparseTableOptions(ShardTableOptions(c));
  EXPECT_NE(s.message().find("max_rows"), std::string::npos) << s;
  ASSERT_TRUE(ApplyOverride("server.max_rows=7", &c).ok());
  EXPECT_EQ(ShardTableOptions(c).max_rows, 4);  // ceil(7 / 2), as before
}

}  // namespace
}  // namespace mtps
