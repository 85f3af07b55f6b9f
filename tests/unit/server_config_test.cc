// Tests of the server section's validation (common/config.cc): every sparse
// optimizer's rates, admission, eviction and the row cap are checked with
// errors naming the field, and whatever passes also passes the sparse table's
// own check (ValidateSparseTableOptions), so a server never CHECK-fails on it.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/config.h"
#include "ps/sparse_table.h"

namespace mtps {
namespace {

config::Config Census() {
  StatusOr<config::Config> c =
      LoadConfig(std::string(MTPS_SOURCE_DIR) + "/configs/census_mmoe.pbtxt", {});
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : config::Config();
}

// What ParameterServer builds from the config (ps/server.cc TableOptions).
SparseTableOptions TableOptionsOf(const config::Config& c) {
  SparseTableOptions o;
  o.dim = c.model().embedding_dim();
  o.init_scale = c.server().embedding_init_scale();
  o.seed = c.train().seed();
  o.optimizer = c.server().sparse_optimizer();
  o.admission_min_count = c.server().admission_min_count();
  o.evict_after_steps = c.server().evict_after_steps();
  o.max_rows = c.server().max_rows();
  return o;
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
  };
  for (const auto& overrides : cases) {
    SCOPED_TRACE(overrides.empty() ? "defaults" : overrides[0]);
    config::Config c = Census();
    for (const std::string& o : overrides) ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
    EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
    EXPECT_TRUE(ValidateSparseTableOptions(TableOptionsOf(c)).ok())
        << ValidateSparseTableOptions(TableOptionsOf(c));
  }
}

}  // namespace
}  // namespace mtps
