// Tests of common/config/config.h: the shipped configs load, parse errors are
// located, overrides and validation behave, relative paths resolve.
#include "common/config/config.h"

#include <unistd.h>

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
    std::string override_text;  // applied to the valid config
    std::string field;
  };
  const std::vector<Case> cases = {
      {"data.format=FORMAT_UNSPECIFIED", "data.format"},
      {"data.train_path=", "data.train_path"},
      {"data.test_path=", "data.test_path"},
      {"data.delimiter=;;", "data.delimiter"},
      {"data.categorical_columns=", ""},  // still has a dense column: valid
      {"model.embedding_dim=0", "model.embedding_dim"},
      {"model.esmm.tower_hidden=8,0", "model.esmm.tower_hidden[1]"},
      {"model.esmm.click_label=nope", "model.esmm.click_label"},
      {"model.mmoe.num_experts=0", "model.mmoe.num_experts"},
      {"model.mmoe.expert_hidden=-1", "model.mmoe.expert_hidden[0]"},
      {"train.batch_size=0", "train.batch_size"},
      {"train.epochs=0", "train.epochs"},
      {"train.eval_batch_size=-5", "train.eval_batch_size"},
      {"server.sparse_optimizer.adagrad.learning_rate=0", "server.sparse_optimizer.adagrad"},
      {"server.dense_optimizer.adam.learning_rate=-1", "server.dense_optimizer.adam.learning_rate"},
      {"server.dense_optimizer.adam.beta2=1", "server.dense_optimizer.adam.beta2"},
      {"cluster.request_timeout_ms=0", "cluster.request_timeout_ms"},
      {"cluster.barrier_timeout_ms=-1", "cluster.barrier_timeout_ms"},
      {"cluster.heartbeat_timeout_ms=10", "cluster.heartbeat_timeout_ms"},
      {"data.dense_columns=a", "data.dense_columns[0]"},      // also categorical
      {"data.dense_columns=click", "data.dense_columns[0]"},  // a label column
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.override_text);
    config::Config c = ValidConfig();
    ASSERT_TRUE(ApplyOverride(t.override_text, &c).ok());
    Status s = ValidateConfig(c);
    if (t.field.empty()) {
      EXPECT_TRUE(s.ok()) << s;
      continue;
    }
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(t.field), std::string::npos) << s;
  }

  // No labels, and no input column at all.
  config::Config c = ValidConfig();
  c.mutable_data()->clear_labels();
  c.mutable_data()->clear_categorical_columns();
  c.mutable_data()->clear_dense_columns();
  Status s = ValidateConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("data.labels"), std::string::npos) << s;
  EXPECT_NE(s.message().find("no input column"), std::string::npos) << s;
  // OTHER_CATEGORICAL counts as input columns.
  c = ValidConfig();
  c.mutable_data()->clear_categorical_columns();
  c.mutable_data()->clear_dense_columns();
  c.mutable_data()->set_other_columns(config::DataConfig::OTHER_CATEGORICAL);
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
  // No model kind.
  c = ValidConfig();
  c.mutable_model()->clear_esmm();
  s = ValidateConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.kind"), std::string::npos) << s;
}

TEST_F(ConfigTest, DataOptionsOfTheNewFormatsNameTheField) {
  struct Case {
    std::vector<std::string> overrides;  // applied to the valid (CSV) config
    std::string field;                   // "" if the result is valid
    std::string why;                     // a word of the reason
  };
  const std::vector<Case> cases = {
      {{"data.holdout_fraction=1"}, "data.holdout_fraction", "[0, 1)"},
      {{"data.holdout_fraction=-0.1"}, "data.holdout_fraction", "[0, 1)"},
      {{"data.holdout_fraction=0.2"}, "data.test_path", "empty"},
      {{"data.holdout_fraction=0.2", "data.test_path="}, "", ""},
      {{"data.test_path="}, "data.test_path", "holdout_fraction"},
      {{"data.shuffle_buffer=-1"}, "data.shuffle_buffer", ">= 0"},
      {{"data.shuffle_buffer=4096", "data.shuffle_seed=9"}, "", ""},
      {{"data.train_common_path=/d/c.csv"}, "data.train_common_path", "ALICCP_RAW"},
      {{"data.test_common_path=/d/c.csv"}, "data.test_common_path", "ALICCP_RAW"},
      {{"data.format=FIELD_ID", "data.dense_columns="}, "", ""},
      {{"data.format=FIELD_ID"}, "data.dense_columns", "FIELD_ID"},
      {{"data.format=FIELD_ID", "data.dense_columns=", "data.other_columns=OTHER_CATEGORICAL"},
       "data.other_columns",
       "FIELD_ID"},
      {{"data.format=ALICCP_RAW", "data.dense_columns=", "data.test_common_path=/d/c"},
       "data.train_common_path",
       "ALICCP_RAW"},
      {{"data.format=ALICCP_RAW", "data.dense_columns=", "data.train_common_path=/d/c"},
       "data.test_common_path",
       "ALICCP_RAW"},
      {{"data.format=ALICCP_RAW", "data.train_common_path=/d/c", "data.test_common_path=/d/c"},
       "data.dense_columns",
       "ALICCP_RAW"},
      {{"data.format=ALICCP_RAW", "data.dense_columns=", "data.train_common_path=/d/c",
        "data.holdout_fraction=0.1", "data.test_path="},
       "",
       ""},
      {{"data.format=ALICCP_RAW", "data.dense_columns=", "data.train_common_path=/d/c",
        "data.test_common_path=/d/c", "data.holdout_fraction=0.1", "data.test_path="},
       "data.test_common_path",
       "empty"},
  };
  for (const Case& t : cases) {
    std::string joined;
    for (const std::string& o : t.overrides) joined += o + " ";
    SCOPED_TRACE(joined);
    config::Config c = ValidConfig();
    for (const std::string& o : t.overrides) ASSERT_TRUE(ApplyOverride(o, &c).ok()) << o;
    // ALICCP_RAW's conversion label column (checked below).
    if (c.data().format() == config::DataConfig::ALICCP_RAW) {
      c.mutable_data()->mutable_labels(1)->set_column("conversion");
    }
    Status s = ValidateConfig(c);
    if (t.field.empty()) {
      EXPECT_TRUE(s.ok()) << s;
      continue;
    }
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(t.field + ":"), std::string::npos) << s;
    EXPECT_NE(s.message().find(t.why), std::string::npos) << s;
  }

  // The valid config's labels are click and purchase: right for FIELD_ID,
  // wrong for ALICCP_RAW, whose conversion column is "conversion".
  config::Config c = ValidConfig();
  for (const char* o : {"data.format=ALICCP_RAW", "data.dense_columns=",
                        "data.train_common_path=/d/c", "data.test_common_path=/d/c"}) {
    ASSERT_TRUE(ApplyOverride(o, &c).ok());
  }
  Status s = ValidateConfig(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("data.labels[1].column"), std::string::npos) << s;
  EXPECT_NE(s.message().find("'purchase'"), std::string::npos) << s;
  c.mutable_data()->mutable_labels(1)->set_column("conversion");
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
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
