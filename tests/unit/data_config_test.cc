// Tests of worker/data/data_config.h: every data rule names its field with
// the message users saw before the rules moved out of common/config, the
// label columns of ALICCP_RAW and FIELD_ID are the readers' own, and the
// readers (ExampleReader::Open, ReadSchema, FieldSlots, FeatureExtractor)
// report a broken rule with the same words as the config check.
#include "worker/data/data_config.h"

#include <string>
#include <vector>

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include "common/config/config.h"
#include "tests/unit/temp_dir_test.h"
#include "worker/data/aliccp_reader.h"
#include "worker/data/example_reader.h"
#include "worker/data/field_id_reader.h"

namespace mtps {
namespace {

class DataConfigTest : public TempDirTest {};

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
)pb";

config::Config ValidConfig() {
  config::Config c;
  CHECK(google::protobuf::TextFormat::ParseFromString(kValid, &c));
  return c;
}

Status Check(const config::Config& c) { return ValidateConfig(c, {CheckDataConfig}); }

TEST_F(DataConfigTest, ValidationNamesTheField) {
  struct Case {
    std::string override_text;  // applied to the valid config
    std::string field;          // "" if the result is valid
    std::string why;
  };
  const std::vector<Case> cases = {
      {"data.format=FORMAT_UNSPECIFIED", "data.format",
       "must be set (CENSUS_RAW, CSV, ALICCP_RAW or FIELD_ID)"},
      {"data.train_path=", "data.train_path", "must be set"},
      {"data.test_path=", "data.test_path",
       "must be set (or hold out part of data.train_path with data.holdout_fraction)"},
      {"data.delimiter=;;", "data.delimiter", "must be one character (got ';;')"},
      {"data.categorical_columns=", "", ""},  // still has a dense column: valid
      {"data.dense_columns=a", "data.dense_columns[0]",
       "column 'a' is named more than once as an input or ignored"},
      {"data.dense_columns=click", "data.dense_columns[0]",
       "column 'click' is a label column and cannot be an input"},
      {"data.categorical_columns=a,", "data.categorical_columns[1]", "empty column name"},
      {"data.ignore_columns=a", "data.ignore_columns[0]",
       "column 'a' is both ignored and used as an input"},
      {"data.ignore_columns=click", "", ""},  // a label column may be ignored too
      {"data.ignore_columns=", "", ""},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.override_text);
    config::Config c = ValidConfig();
    ASSERT_TRUE(ApplyOverride(t.override_text, &c).ok());
    Status s = Check(c);
    if (t.field.empty()) {
      EXPECT_TRUE(s.ok()) << s;
      continue;
    }
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("invalid config: " + t.field + ": " + t.why), std::string::npos)
        << s;
  }

  // No labels, and no input column at all.
  config::Config c = ValidConfig();
  c.mutable_data()->clear_labels();
  c.mutable_data()->clear_categorical_columns();
  c.mutable_data()->clear_dense_columns();
  Status s = Check(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("data.labels: at least one label is required"), std::string::npos)
      << s;
  EXPECT_NE(s.message().find("data: no input column"), std::string::npos) << s;
  // OTHER_CATEGORICAL counts as input columns.
  c = ValidConfig();
  c.mutable_data()->clear_categorical_columns();
  c.mutable_data()->clear_dense_columns();
  c.mutable_data()->set_other_columns(config::DataConfig::OTHER_CATEGORICAL);
  EXPECT_TRUE(Check(c).ok()) << Check(c);
  // Label names and columns.
  c = ValidConfig();
  c.mutable_data()->mutable_labels(1)->set_name("click");
  c.mutable_data()->mutable_labels(0)->clear_column();
  s = Check(c);
  EXPECT_NE(s.message().find("data.labels[1].name: duplicate label name 'click'"),
            std::string::npos)
      << s;
  EXPECT_NE(s.message().find("data.labels[0].column: must be set"), std::string::npos) << s;
  c = ValidConfig();
  c.mutable_data()->mutable_labels(0)->clear_name();
  EXPECT_NE(Check(c).message().find("data.labels[0].name: must be set"), std::string::npos);
  // Multi-valued separators.
  c = ValidConfig();
  config::MultiValuedColumn* tags = c.mutable_data()->add_multi_valued_columns();
  tags->set_name("tags");
  tags->set_separator("||");
  EXPECT_NE(Check(c).message().find(
                "data.multi_valued_columns[0].separator: must be one character (got '||')"),
            std::string::npos)
      << Check(c);
  tags->set_separator(";");
  EXPECT_TRUE(Check(c).ok()) << Check(c);
}

TEST_F(DataConfigTest, DataOptionsOfTheNewFormatsNameTheField) {
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
      {{"data.max_bad_lines=-1"}, "data.max_bad_lines", ">= 0 (got -1)"},
      {{"data.max_bad_lines=0"}, "", ""},
      {{"data.max_bad_lines=1000000"}, "", ""},
      {{"data.train_common_path=/d/c.csv"}, "data.train_common_path", "ALICCP_RAW"},
      {{"data.test_common_path=/d/c.csv"}, "data.test_common_path", "ALICCP_RAW"},
      {{"data.format=FIELD_ID", "data.dense_columns="}, "", ""},
      {{"data.format=FIELD_ID"}, "data.dense_columns", "FIELD_ID"},
      {{"data.format=FIELD_ID", "data.dense_columns=", "data.other_columns=OTHER_CATEGORICAL"},
       "data.other_columns",
       "FIELD_ID"},
      {{"data.format=FIELD_ID", "data.dense_columns=", "data.categorical_columns="},
       "data",
       "needs at least one input field"},
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
    Status s = Check(c);
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
  Status s = Check(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("data.labels[1].column: 'purchase' is not a label column of format "
                             "ALICCP_RAW (one of click, conversion)"),
            std::string::npos)
      << s;
  c.mutable_data()->mutable_labels(1)->set_column("conversion");
  EXPECT_TRUE(Check(c).ok()) << Check(c);
}

// The label columns a field-id format accepts are exactly its reader's.
TEST_F(DataConfigTest, FieldIdLabelColumnsAreTheReadersOwn) {
  struct Format {
    const char* name;
    std::vector<std::string> columns;
  };
  for (const Format& format :
       {Format{"ALICCP_RAW", AliccpLabelColumns()}, Format{"FIELD_ID", FieldIdLabelColumns()}}) {
    SCOPED_TRACE(format.name);
    config::Config c = ValidConfig();
    for (const std::string& o :
         {std::string("data.format=") + format.name, std::string("data.dense_columns="),
          std::string("data.train_common_path=/d/c"), std::string("data.test_common_path=/d/c")}) {
      ASSERT_TRUE(ApplyOverride(o, &c).ok());
    }
    if (std::string(format.name) == "FIELD_ID") {
      c.mutable_data()->clear_train_common_path();
      c.mutable_data()->clear_test_common_path();
    }
    ASSERT_EQ(format.columns.size(), 2u);
    c.mutable_data()->mutable_labels(0)->set_column(format.columns[0]);
    c.mutable_data()->mutable_labels(1)->set_column(format.columns[1]);
    EXPECT_TRUE(Check(c).ok()) << Check(c);
    for (const char* other : {"purchase", "conversion", "label", "Click"}) {
      if (other == format.columns[1]) continue;
      c.mutable_data()->mutable_labels(1)->set_column(other);
      EXPECT_NE(Check(c).message().find("data.labels[1].column: '" + std::string(other) + "'"),
                std::string::npos)
          << Check(c);
    }
  }
}

TEST_F(DataConfigTest, FieldIdFormatsReadAtMostMaxSlotsFields) {
  config::Config c = ValidConfig();
  ASSERT_TRUE(ApplyOverride("data.format=FIELD_ID", &c).ok());
  ASSERT_TRUE(ApplyOverride("data.dense_columns=", &c).ok());
  c.mutable_data()->clear_categorical_columns();
  for (int i = 0; i < FieldSlots::kMaxSlots; ++i) {
    c.mutable_data()->add_categorical_columns(std::to_string(100 + i));
  }
  EXPECT_TRUE(Check(c).ok()) << Check(c);
  c.mutable_data()->add_multi_valued_columns()->set_name("9999");
  EXPECT_NE(Check(c).message().find("data: format FIELD_ID reads at most 128 input fields"),
            std::string::npos)
      << Check(c);
  EXPECT_FALSE(FieldSlots::Create(c.data(), FieldIdLabelColumns(), "FIELD_ID").ok());
}

// The message `config` gives under CheckDataConfig, without the prefix.
std::string CheckMessage(const config::Config& c) {
  const Status s = Check(c);
  EXPECT_FALSE(s.ok());
  return s.message().substr(std::string("invalid config: ").size());
}

// The readers apply the same rules as the config check, in the same words.
TEST_F(DataConfigTest, ReadersReportTheConfigChecksWords) {
  const std::string train = Write("train.csv", "a,d,click,purchase\nx,1,0,1\n");
  const std::string test = Write("test.csv", "a,d,click,purchase\ny,2,1,0\n");
  config::Config good = ValidConfig();
  good.mutable_data()->set_train_path(train);
  good.mutable_data()->set_test_path(test);
  ASSERT_TRUE(Check(good).ok()) << Check(good);
  for (DataSplit split : {DataSplit::kTrain, DataSplit::kTest}) {
    EXPECT_TRUE(ExampleReader::Open(good.data(), split, 0, 1).ok());
  }

  struct Case {
    std::vector<std::string> overrides;
    DataSplit split;
  };
  const std::vector<Case> cases = {
      {{"data.holdout_fraction=-0.5"}, DataSplit::kTrain},      // Open
      {{"data.shuffle_buffer=-2"}, DataSplit::kTrain},          // Open
      {{"data.max_bad_lines=-3"}, DataSplit::kTrain},           // Open
      {{"data.max_bad_lines=-3"}, DataSplit::kTest},            // Open
      {{"data.holdout_fraction=0.5"}, DataSplit::kTest},        // Open: test_path set
      {{"data.test_path="}, DataSplit::kTest},                  // Open
      {{"data.format=FORMAT_UNSPECIFIED"}, DataSplit::kTrain},  // Open, ReadSchema
      {{"data.delimiter=ab"}, DataSplit::kTrain},               // Open, ReadSchema
      {{"data.dense_columns=a"}, DataSplit::kTrain},            // FeatureExtractor
      {{"data.categorical_columns=click"}, DataSplit::kTrain},  // FeatureExtractor
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.overrides[0]);
    config::Config c = good;
    for (const std::string& o : t.overrides) ASSERT_TRUE(ApplyOverride(o, &c).ok());
    const std::string expected = CheckMessage(c);
    StatusOr<std::unique_ptr<ExampleReader>> reader = ExampleReader::Open(c.data(), t.split, 0, 1);
    ASSERT_FALSE(reader.ok());
    EXPECT_NE(reader.status().message().find(expected), std::string::npos)
        << reader.status() << " lacks " << expected;
  }

  // FieldSlots (ReadSchema and the field-id readers): label columns, dense
  // columns, OTHER_CATEGORICAL, repeated fields.
  config::Config field_id = good;
  ASSERT_TRUE(ApplyOverride("data.format=FIELD_ID", &field_id).ok());
  ASSERT_TRUE(ApplyOverride("data.dense_columns=", &field_id).ok());
  ASSERT_TRUE(Check(field_id).ok()) << Check(field_id);
  EXPECT_TRUE(ReadSchema(field_id.data()).ok());
  for (const std::string o :
       {"data.labels=", "data.dense_columns=7", "data.other_columns=OTHER_CATEGORICAL",
        "data.categorical_columns=101,101"}) {
    SCOPED_TRACE(o);
    config::Config c = field_id;
    if (o == "data.labels=") {
      c.mutable_data()->mutable_labels(1)->set_column("conversion");
    } else {
      ASSERT_TRUE(ApplyOverride(o, &c).ok());
    }
    const std::string expected = CheckMessage(c);
    const StatusOr<FeatureSchema> schema = ReadSchema(c.data());
    ASSERT_FALSE(schema.ok());
    EXPECT_NE(schema.status().message().find(expected), std::string::npos)
        << schema.status() << " lacks " << expected;
  }
}

}  // namespace
}  // namespace mtps
