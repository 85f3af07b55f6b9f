// Tests of common/config/config.h and config_check.h: the shipped configs
// parse, parse errors are located and name the field, overrides behave,
// relative paths resolve, the train/cluster/eval rules name their fields,
// and the owners' checks run after them in one message. The owners' rules are
// tested with their owners (data_config_test, model_registry_test,
// server_config_test) and all together through mtps-node (node_config_test).
#include "common/config/config.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "tests/unit/temp_dir_test.h"

namespace mtps {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public TempDirTest {};

// A small valid config; tests mutate it.
const char kValid[] = R"pb(
  data {
    format: CSV
    train_path: "/data/train.csv"
    test_path: "/data/test.csv"
    labels { name: "click" column: "click" }
    labels { name: "conversion" column: "purchase" }
    categorical_columns: "a"
    dense_columns: "d"
  }
  model {
    embedding_dim: 4
    esmm { tower_hidden: [ 8 ] }
  }
  server {
    sparse_optimizer { adagrad { learning_rate: 0.05 } }
    dense_optimizer { adam { learning_rate: 0.001 } }
  }
)pb";

config::Config ValidConfig() {
  config::Config c;
  CHECK(google::protobuf::TextFormat::ParseFromString(kValid, &c));
  return c;
}

std::string SourceDir() { return MTPS_SOURCE_DIR; }

TEST_F(ConfigTest, ShippedConfigsLoadAndValidate) {
  const std::vector<std::string> expected = {"census_mmoe.pbtxt", "aliccp_esmm.pbtxt",
                                             "aliexpress_esmm.pbtxt", "aliccp_esmm_fieldid.pbtxt",
                                             "synthetic_esmm.pbtxt"};
  int found = 0;
  for (const auto& entry : fs::directory_iterator(SourceDir() + "/configs")) {
    if (entry.path().extension() != ".pbtxt") continue;
    ++found;
    SCOPED_TRACE(entry.path().string());
    StatusOr<config::Config> c = LoadConfig(entry.path().string(), {});
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(fs::path(c->data().train_path()).is_absolute());
    // Configs of generated data (mtps-datagen writes it under runs/) load and
    // validate; their files exist only once generated.
    const std::string generated = fs::weakly_canonical(SourceDir() + "/runs").string() + "/";
    if (c->data().train_path().rfind(generated, 0) == 0) continue;
    // Relative data paths were resolved against configs/ and point at the
    // bundled files.
    EXPECT_TRUE(fs::is_regular_file(c->data().train_path())) << c->data().train_path();
    // With a holdout the test side is part of train_path.
    if (c->data().holdout_fraction() == 0) {
      EXPECT_TRUE(fs::is_regular_file(c->data().test_path())) << c->data().test_path();
    }
    for (const std::string& common :
         {c->data().train_common_path(), c->data().test_common_path()}) {
      if (!common.empty()) {
        EXPECT_TRUE(fs::is_regular_file(common)) << common;
      }
    }
  }
  EXPECT_GE(found, static_cast<int>(expected.size()));
  for (const std::string& name : expected) {
    EXPECT_TRUE(fs::exists(SourceDir() + "/configs/" + name)) << name;
  }
}

TEST_F(ConfigTest, CensusConfigHasTheDocumentedSettings) {
  StatusOr<config::Config> c = LoadConfig(SourceDir() + "/configs/census_mmoe.pbtxt", {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().format(), config::DataConfig::CENSUS_RAW);
  ASSERT_EQ(c->data().labels_size(), 2);
  EXPECT_EQ(c->data().labels(0).column(), "income");
  EXPECT_EQ(c->data().labels(1).column(), "marital_status");
  EXPECT_EQ(c->data().dense_columns_size(), 7);
  EXPECT_EQ(c->data().dense_transform(), config::DataConfig::LOG1P);
  EXPECT_TRUE(c->model().has_mmoe());
  EXPECT_EQ(c->model().mmoe().num_experts(), 8);
  EXPECT_EQ(c->train().batch_size(), 256);
  EXPECT_EQ(c->train().epochs(), 10);
  EXPECT_FLOAT_EQ(c->server().sparse_optimizer().adagrad().learning_rate(), 0.05f);
  EXPECT_FLOAT_EQ(c->server().dense_optimizer().adam().learning_rate(), 0.002f);
  EXPECT_EQ(fs::path(c->data().train_path()),
            (fs::path(SourceDir()) / "tests/data/census-income/train.gz").lexically_normal());
}

TEST_F(ConfigTest, MissingFileIsNotFound) {
  const std::string path = (dir_ / "nope.pbtxt").string();
  StatusOr<config::Config> c = LoadConfig(path, {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find(path), std::string::npos) << c.status();
}

TEST_F(ConfigTest, UnknownFieldNamesFileLineAndField) {
  const std::string path = Write("bad.pbtxt",
                                 "data {\n"
                                 "  format: CSV\n"
                                 "  bogus_field: 3\n"
                                 "}\n");
  StatusOr<config::Config> c = LoadConfig(path, {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = c.status().message();
  EXPECT_NE(m.find(path + ":3:"), std::string::npos) << m;
  EXPECT_NE(m.find("bogus_field"), std::string::npos) << m;
}

TEST_F(ConfigTest, IllTypedValueNamesFileLineAndField) {
  const std::string path = Write("bad.pbtxt",
                                 "# comment line\n"
                                 "data { format: CSV }\n"
                                 "model {\n"
                                 "  embedding_dim: eight\n"
                                 "}\n");
  StatusOr<config::Config> c = LoadConfig(path, {});
  ASSERT_FALSE(c.ok());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find(path + ":4:"), std::string::npos) << m;
  EXPECT_NE(m.find("model.embedding_dim"), std::string::npos) << m;
}

TEST_F(ConfigTest, IllTypedStringAndEnumNameTheField) {
  const std::string path =
      Write("bad.pbtxt", "train { batch_size: 32 }\ndata {\n  format: XML\n}\n");
  StatusOr<config::Config> c = LoadConfig(path, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(path + ":3:"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("data.format"), std::string::npos) << c.status();

  const std::string path2 = Write("bad2.pbtxt", "data {\n  train_path: 12\n}\n");
  c = LoadConfig(path2, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(path2 + ":2:"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("data.train_path"), std::string::npos) << c.status();
}

// The field of a parse error: the messages open at the error (protobuf's
// ParseInfoTree, repeated ones with their index), then the field protobuf
// names or whose value it was reading.
TEST_F(ConfigTest, ParseErrorsNameTheFieldInNestedAndRepeatedMessages) {
  struct Case {
    std::string text;
    std::string expected;  // after "<path>:"
  };
  const std::vector<Case> cases = {
      {"data { labels { name: 'a' } labels { name: 3 } }",
       "1:44: field 'data.labels[1].name': Expected string, got: 3"},
      {"data { labels: [{ name: 'a' }, { column: 3 }] }",
       "1:42: field 'data.labels[1].column': Expected string, got: 3"},
      {"model { esmm { tower_hidden: [1, x] } }",
       "1:34: field 'model.esmm.tower_hidden': Expected integer, got: x"},
      {"data {\n\tlabels {\n\t\tname: \"a\"\n\t}\n\tshuffle_buffer: -\n}\n",
       "6:1: field 'data.shuffle_buffer': Expected integer, got: }"},
      // After a complete sibling message: no field is being read.
      {"data { labels { name: 'a' } 5 }", "1:29: field 'data': Expected identifier, got: 5"},
      {"data { labels { name: 'a' } labels { 5 } }",
       "1:38: field 'data.labels[1]': Expected identifier, got: 5"},
      {"model {\n  esmm: 3 }", "2:9: field 'model.esmm': Expected \"{\", found \"3\"."},
      // Braces and colons in comments and strings do not count.
      {"# model { x: [\ndata { train_path: 'a{b}:' test_path: 5 }",
       "2:39: field 'data.test_path': Expected string, got: 5"},
      {"bogus: 1",
       "1:1: field 'bogus': Message type \"mtps.config.Config\" has no field named "
       "\"bogus\"."},
      {"train { epochs: 1 }\ntrain { epochs: 2 }",
       "2:7: field 'train': Non-repeated field \"train\" is specified multiple times."},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.text);
    const std::string path = Write("bad.pbtxt", t.text);
    StatusOr<config::Config> c = LoadConfig(path, {});
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(c.status().message(), path + ":" + t.expected);
  }
  // Override bodies are located in the value, fields relative to it.
  config::Config c = ValidConfig();
  const Status s = ApplyOverride("model.esmm=tower_hidden: [1, x]", &c);
  EXPECT_EQ(s.message(),
            "override 'model.esmm=tower_hidden: [1, x]': value of 'model.esmm':1:19: field "
            "'tower_hidden': Expected integer, got: x");
}

TEST_F(ConfigTest, RelativePathsResolveAgainstConfigDir) {
  std::string text = kValid;
  text.replace(text.find("/data/train.csv"), 15, "sub/train.csv");
  text.replace(text.find("/data/test.csv"), 14, "../test.csv");
  const std::string path = Write("cfgdir/job.pbtxt", text);
  StatusOr<config::Config> c = LoadConfig(path, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().train_path(), (dir_ / "cfgdir/sub/train.csv").string());
  EXPECT_EQ(c->data().test_path(), (dir_ / "test.csv").string());

  // Absolute paths stay as they are.
  const std::string abs_path = Write("cfgdir/abs.pbtxt", kValid);
  c = LoadConfig(abs_path, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().train_path(), "/data/train.csv");
}

TEST_F(ConfigTest, OverridesOfEveryKind) {
  config::Config c = ValidConfig();
  ASSERT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
  // Scalars.
  ASSERT_TRUE(ApplyOverride("train.batch_size=64", &c).ok());
  EXPECT_EQ(c.train().batch_size(), 64);
  ASSERT_TRUE(ApplyOverride("train.progress_interval_sec=0.25", &c).ok());
  EXPECT_DOUBLE_EQ(c.train().progress_interval_sec(), 0.25);
  ASSERT_TRUE(ApplyOverride("train.seed=18446744073709551615", &c).ok());
  EXPECT_EQ(c.train().seed(), 18446744073709551615ULL);
  ASSERT_TRUE(ApplyOverride("data.train_path=/x/y z.csv", &c).ok());
  EXPECT_EQ(c.data().train_path(), "/x/y z.csv");
  // Enum by name.
  ASSERT_TRUE(ApplyOverride("data.format=CENSUS_RAW", &c).ok());
  EXPECT_EQ(c.data().format(), config::DataConfig::CENSUS_RAW);
  // Nested messages created on the way.
  EXPECT_FALSE(c.has_cluster());
  ASSERT_TRUE(ApplyOverride("cluster.request_timeout_ms=500", &c).ok());
  EXPECT_EQ(c.cluster().request_timeout_ms(), 500);
  // Repeated scalars: the list is replaced.
  ASSERT_TRUE(ApplyOverride("model.esmm.tower_hidden=32,16, 4", &c).ok());
  EXPECT_EQ(std::vector<int>(c.model().esmm().tower_hidden().begin(),
                             c.model().esmm().tower_hidden().end()),
            (std::vector<int>{32, 16, 4}));
  ASSERT_TRUE(ApplyOverride("data.ignore_columns=x, y", &c).ok());
  ASSERT_EQ(c.data().ignore_columns_size(), 2);
  EXPECT_EQ(c.data().ignore_columns(1), "y");
  ASSERT_TRUE(ApplyOverride("data.ignore_columns=", &c).ok());
  EXPECT_EQ(c.data().ignore_columns_size(), 0);
  // A oneof member clears its siblings.
  ASSERT_TRUE(ApplyOverride("model.mmoe.num_experts=3", &c).ok());
  EXPECT_TRUE(c.model().has_mmoe());
  EXPECT_FALSE(c.model().has_esmm());
  EXPECT_EQ(c.model().mmoe().num_experts(), 3);
  ASSERT_TRUE(ApplyOverride("server.dense_optimizer.adagrad.learning_rate=0.1", &c).ok());
  EXPECT_TRUE(c.server().dense_optimizer().has_adagrad());
  EXPECT_FALSE(c.server().dense_optimizer().has_adam());
  // A message body in text format.
  ASSERT_TRUE(ApplyOverride("model.esmm=tower_hidden: [5] click_label: 'c'", &c).ok());
  EXPECT_TRUE(c.model().has_esmm());
  EXPECT_FALSE(c.model().has_mmoe());
  EXPECT_EQ(c.model().esmm().tower_hidden(0), 5);
  EXPECT_EQ(c.model().esmm().click_label(), "c");
}

TEST_F(ConfigTest, BadOverridesAreClearErrorsAndChangeNothing) {
  const config::Config original = ValidConfig();
  struct Case {
    std::string assignment;
    std::vector<std::string> mentions;
  };
  const std::vector<Case> cases = {
      {"train.batch_size", {"train.batch_size", "="}},
      {"train.batchsize=3", {"batchsize", "TrainConfig"}},
      {"train.batch_size=abc", {"train.batch_size", "abc", "integer"}},
      {"train.batch_size=99999999999", {"99999999999", "range"}},
      {"train.seed=-1", {"train.seed", "-1"}},
      {"train.batch_size.x=1", {"train.batch_size", "scalar"}},
      {"data.format=XML", {"XML", "CENSUS_RAW"}},
      {"data.labels=x", {"data.labels", "repeated"}},
      {"data.labels.name=x", {"data.labels", "repeated"}},
      {"model.esmm.tower_hidden=8,x", {"model.esmm.tower_hidden", "'x'"}},
      {"model.esmm=bogus: 1", {"model.esmm", "bogus"}},
      {"cluster..request_timeout_ms=1", {"empty"}},
      {"train.progress_interval_sec=1e999", {"1e999"}},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.assignment);
    config::Config c = original;
    Status s = ApplyOverride(t.assignment, &c);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    for (const std::string& m : t.mentions) {
      EXPECT_NE(s.message().find(m), std::string::npos) << "missing '" << m << "' in " << s;
    }
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(c, original));
  }
}

TEST_F(ConfigTest, LoadConfigAppliesOverridesThenValidates) {
  const std::string path = Write("job.pbtxt", kValid);
  StatusOr<config::Config> c = LoadConfig(path, {"train.epochs=4", "data.train_path=rel.csv"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->train().epochs(), 4);
  // Overrides come from the command line: not resolved against the config dir.
  EXPECT_EQ(c->data().train_path(), "rel.csv");

  c = LoadConfig(path, {"train.epochs=0"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("train.epochs"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find(path), std::string::npos) << c.status();

  c = LoadConfig(path, {"train.nope=1"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("train.nope"), std::string::npos) << c.status();
}

TEST_F(ConfigTest, ValidationNamesTheField) {
  struct Case {
    std::string override_text;  // applied to the valid config (';' between several)
    std::string field;
    std::string why;  // part of the message
  };
  const std::vector<Case> cases = {
      {"train.batch_size=0", "train.batch_size", "must be > 0 (got 0)"},
      {"train.epochs=0", "train.epochs", "must be >= 1 (got 0)"},
      {"train.eval_batch_size=-5", "train.eval_batch_size", "must be > 0 (got -5)"},
      {"train.progress_interval_sec=0", "train.progress_interval_sec", "must be > 0"},
      {"train.max_inflight_pushes=0", "train.max_inflight_pushes", "must be > 0"},
      {"train.staleness=-1", "train.staleness", "must be >= 0, got -1"},
      {"train.throttle_ms=-2", "train.throttle_ms", "must be >= 0, got -2"},
      {"train.dense_sync_batches=0", "train.dense_sync_batches", "must be in [1, 1000000]"},
      {"train.dense_sync_batches=4;train.consistency=BSP", "train.dense_sync_batches",
       "> 1 (the workers' local dense steps) needs train.consistency ASYNC, got BSP"},
      {"cluster.request_timeout_ms=0", "cluster.request_timeout_ms", "must be > 0"},
      {"cluster.register_timeout_ms=0", "cluster.register_timeout_ms", "must be > 0"},
      {"cluster.barrier_timeout_ms=-1", "cluster.barrier_timeout_ms", "must be > 0 (got -1)"},
      {"cluster.heartbeat_interval_ms=0", "cluster.heartbeat_interval_ms", "must be > 0"},
      {"cluster.heartbeat_timeout_ms=10", "cluster.heartbeat_timeout_ms",
       "must be > cluster.heartbeat_interval_ms"},
      {"cluster.metrics_port=-2", "cluster.metrics_port",
       "must be -1 (no metrics server), 0 (any free port) or a port in [1, 65535], got -2"},
      {"cluster.metrics_port=65536", "cluster.metrics_port",
       "must be -1 (no metrics server), 0 (any free port) or a port in [1, 65535], got 65536"},
      {"cluster.metrics_port=-1", "", ""},
      {"cluster.metrics_port=65535", "", ""},
      {"eval.auc_bins=-1", "eval.auc_bins", "must be in [0, 16777216], got -1"},
      {"eval.auc_bins=16777217", "eval.auc_bins", "must be in [0, 16777216]"},
      {"eval.auc_bins=1048576", "", ""},
      // The other sections' rules belong to their owners' checks.
      {"data.format=FORMAT_UNSPECIFIED", "", ""},
      {"model.embedding_dim=0", "", ""},
      {"server.shard_threads=0", "", ""},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.override_text);
    config::Config c = ValidConfig();
    size_t start = 0;
    for (size_t end; (end = t.override_text.find(';', start)) != std::string::npos;
         start = end + 1) {
      ASSERT_TRUE(ApplyOverride(t.override_text.substr(start, end - start), &c).ok());
    }
    ASSERT_TRUE(ApplyOverride(t.override_text.substr(start), &c).ok());
    Status s = ValidateConfig(c);
    if (t.field.empty()) {
      EXPECT_TRUE(s.ok()) << s;
      continue;
    }
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("invalid config: " + t.field + ": " + t.why), std::string::npos)
        << s;
  }
}

// A check that adds one problem per entry of `problems`.
ConfigCheck Adds(std::vector<ConfigProblems::Problem> problems) {
  return [problems](const config::Config&, ConfigProblems* out) {
    for (const ConfigProblems::Problem& p : problems) out->Add(p.field, p.why);
  };
}

TEST_F(ConfigTest, OwnersChecksRunAfterTheGenericOnesInOneMessage) {
  const std::string path = Write("job.pbtxt", kValid);
  // Nothing to say: the config loads.
  StatusOr<config::Config> c = LoadConfig(path, {}, {Adds({}), Adds({})});
  ASSERT_TRUE(c.ok()) << c.status();
  // Every problem, generic first, then each check's in order, in today's
  // format.
  c = LoadConfig(path, {"train.epochs=0"},
                 {Adds({{"data.x", "why one"}}), Adds({{"model.y", "why two"}, {"z", "three"}})});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().message(), path +
                                      ": invalid config: train.epochs: must be >= 1 (got 0); "
                                      "data.x: why one; model.y: why two; z: three");
  // A check sees the config after the overrides.
  int seen_epochs = 0;
  c = LoadConfig(path, {"train.epochs=7"}, {[&](const config::Config& config, ConfigProblems*) {
                   seen_epochs = config.train().epochs();
                 }});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(seen_epochs, 7);
  // ValidateConfig takes the same checks.
  const Status s = ValidateConfig(ValidConfig(), {Adds({{"server.w", "bad"}})});
  EXPECT_EQ(s.message(), "invalid config: server.w: bad");
}

TEST(ConfigProblemsTest, FormatsEveryKindOfProblem) {
  ConfigProblems p;
  EXPECT_TRUE(p.empty());
  EXPECT_TRUE(p.ToStatus().ok());
  p.Positive("a", 1);
  p.Positive("a", 0.5f);
  p.NonNegative("b", 0);
  p.PositiveFinite("c", 2.0);
  p.NonNegativeFinite("d", 0.0);
  p.AddError(Status::OK());
  EXPECT_TRUE(p.empty());
  p.Positive("e", 0);
  p.Positive("f", std::nan(""));
  p.NonNegative("g", int64_t{-3});
  p.PositiveFinite("h", -1.5);
  p.PositiveFinite("i", INFINITY);
  p.NonNegativeFinite("j", INFINITY);
  p.NonNegativeFinite("k", -0.25);
  // Errors of the checks that name their field first (worker/nn/layers.h).
  p.AddError(Status::InvalidArgument("model.dropout must be in [0, 1), got 1"));
  p.AddError(Status::InvalidArgument("model.activation: unknown value 9"));
  ASSERT_EQ(p.problems().size(), 9u);
  EXPECT_EQ(p.problems()[7].field, "model.dropout");
  EXPECT_EQ(p.problems()[7].why, "must be in [0, 1), got 1");
  EXPECT_EQ(p.problems()[8].field, "model.activation");
  EXPECT_EQ(p.ToStatus().message(),
            "invalid config: e: must be > 0 (got 0); f: must be > 0 (got nan); g: must be >= 0 "
            "(got -3); h: must be > 0 (got -1.5); i: must be finite (got inf); j: must be finite "
            "(got inf); k: must be >= 0 (got -0.25); model.dropout: must be in [0, 1), got 1; "
            "model.activation: unknown value 9");
  EXPECT_EQ(p.ToStatus("sparse table").message().rfind("sparse table: e: must be > 0", 0), 0u);
}

TEST_F(ConfigTest, CommonPathsResolveAgainstConfigDir) {
  std::string text = kValid;
  text.replace(text.find("format: CSV"), 11,
               "format: ALICCP_RAW train_common_path: 'c/train_common.csv' "
               "test_common_path: '/abs/test_common.csv'");
  const std::string dense = "dense_columns: \"d\"";
  text.replace(text.find(dense), dense.size(), "");
  const std::string purchase = "column: \"purchase\"";
  text.replace(text.find(purchase), purchase.size(), "column: \"conversion\"");
  const std::string path = Write("cfgdir/raw.pbtxt", text);
  StatusOr<config::Config> c = LoadConfig(path, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().train_common_path(), (dir_ / "cfgdir/c/train_common.csv").string());
  EXPECT_EQ(c->data().test_common_path(), "/abs/test_common.csv");
}

TEST_F(ConfigTest, ConfigToTextRoundTrips) {
  StatusOr<config::Config> c =
      LoadConfig(SourceDir() + "/configs/census_mmoe.pbtxt", {"train.seed=7"});
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string text = ConfigToText(*c);
  EXPECT_NE(text.find("seed: 7"), std::string::npos) << text;
  const std::string path = Write("round/trip.pbtxt", text);
  StatusOr<config::Config> again = LoadConfig(path, {});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*c, *again));
}

}  // namespace
}  // namespace mtps
