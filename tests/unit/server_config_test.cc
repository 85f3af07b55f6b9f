// Tests of the server section's validation (common/config/config.cc): every sparse
// optimizer's rates, admission, eviction and the row cap are checked with
// errors naming the field, and whatever passes also passes the sparse table's
// own check (ValidateSparseTableOptions) for each shard's table, so a server
// never CHECK-fails on it.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/config/config.h"
#include "ps/server/server_shard.h"
#include "ps/table/sparse_table.h"

namespace mtps {
namespace {

config::Config Census() {
  StatusOr<config::Config> c =
      LoadConfig(std::string(MTPS_SOURCE_DIR) + "/configs/census_mmoe.pbtxt", {});
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : config::Config();
}

TEST(ServerConfigTest, BadServerFieldsAreNamed) {
  struct Case {
    std::string override_text;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"server.sparse_optimizer.sgd.learning_rate=0", "server.sparse_optimizer.sgd.learning_rate"},
      {"server.sparse_optimizer.adam.learning_rate=-1",
       "server.sparse_optimizer.adam.learning_rate"},
      {"server.sparse_optimizer.adam.beta1=1", "server.sparse_optimizer.adam.beta1"},
      {"server.sparse_optimizer.adam.beta2=-0.5", "server.sparse_optimizer.adam.beta2"},
      {"server.sparse_optimizer.adam.epsilon=0", "server.sparse_optimizer.adam.epsilon"},
      {"server.sparse_optimizer.ftrl.alpha=0", "server.sparse_optimizer.ftrl.alpha"},
      {"server.sparse_optimizer.ftrl.beta=-1", "server.sparse_optimizer.ftrl.beta"},
      {"server.sparse_optimizer.ftrl.l1=-0.1", "server.sparse_optimizer.ftrl.l1"},
      {"server.sparse_optimizer.ftrl.l2=-2", "server.sparse_optimizer.ftrl.l2"},
      {"server.admission_min_count=-1", "server.admission_min_count"},
      {"server.admission_min_count=65536", "server.admission_min_count"},
      {"server.evict_after_steps=-5", "server.evict_after_steps"},
      {"server.evict_after_steps=2147483648", "server.evict_after_steps"},
      {"server.max_rows=-1", "server.max_rows"},
      {"server.max_rows=4294967295", "server.max_rows"},
      {"server.shard_threads=0", "server.shard_threads"},
      {"server.shard_threads=65", "server.shard_threads"},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.override_text);
    config::Config c = Census();
    ASSERT_TRUE(ApplyOverride(t.override_text, &c).ok());
    const Status s = ValidateConfig(c);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(t.field), std::string::npos) << s;
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
  };
  for (const auto& overrides : cases) {
    SCOPED_TRACE(overrides.empty() ? "defaults" : overrides[0]);
    config::Config c = Census();
    for (const std::string& o : overrides) ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
    EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
    EXPECT_TRUE(ValidateSparseTableOptions(ShardTableOptions(c)).ok())
        << ValidateSparseTableOptions(ShardTableOptions(c));
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

}  // namespace
}  // namespace mtps
