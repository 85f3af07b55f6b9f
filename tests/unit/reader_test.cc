// Tests of worker/data/example_reader.h on the bundled data (tests/data) and small files
// written per test: counts, labels, keys, dense transform, sharding, errors,
// gzip transparency, the FIELD_ID format, shuffling and the holdout split.
// Expected values come from the raw text, parsed here independently of the
// reader. (ALICCP_RAW: tests/unit/aliccp_reader_test.cc.)
#include "worker/data/census_format.h"
#include "worker/data/example_reader.h"
#include "worker/data/read_ahead_reader.h"
#include "worker/data/shuffling_reader.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/temp_dir_test.h"

#include "common/base/hash.h"
#include "common/config/config.h"

namespace mtps {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(MTPS_SOURCE_DIR) + "/tests/data/";
const std::string kCensusTrain = kData + "census-income/train.gz";
const std::string kCensusTest = kData + "census-income/test.gz";
const std::string kAliCcpTrain = kData + "ali-ccp/ali_ccp_train_sample.csv";
const std::string kAliExpressTrain = kData + "aliexpress/aliexpress_train_sample.csv";
const std::string kEsmmTrain = kData + "ali-ccp/esmm_train_small.txt";
const std::string kEsmmTest = kData + "ali-ccp/esmm_test_small.txt";

// The raw lines of a plain or gzip file, read with zlib directly.
std::vector<std::string> RawLines(const std::string& path) {
  std::vector<std::string> lines;
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return lines;
  std::string content;
  char buf[1 << 16];
  int n = 0;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) content.append(buf, n);
  gzclose(f);
  std::istringstream in(content);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// Splits at `sep` and strips spaces.
std::vector<std::string> Split(const std::string& line, const std::string& sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t end = line.find(sep, start);
    std::string v = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
    v.erase(0, v.find_first_not_of(' '));
    v.erase(v.find_last_not_of(' ') + 1);
    out.push_back(v);
    if (end == std::string::npos) break;
    start = end + sep.size();
  }
  return out;
}

config::DataConfig ShippedData(const std::string& name) {
  StatusOr<config::Config> c = LoadConfig(std::string(MTPS_SOURCE_DIR) + "/configs/" + name, {});
  CHECK(c.ok()) << c.status();
  return c->data();
}

// One example, unpacked from a Batch.
struct Example {
  std::vector<std::vector<uint64_t>> keys;  // per slot
  std::vector<float> weights;
  std::vector<float> dense;
  std::vector<float> labels;
  bool operator==(const Example& o) const {
    return keys == o.keys && weights == o.weights && dense == o.dense && labels == o.labels;
  }
};

std::vector<Example> Unpack(const Batch& b) {
  std::vector<Example> out(b.num_examples);
  EXPECT_EQ(b.offsets.size(), static_cast<size_t>(b.num_examples) * b.num_slots + 1);
  EXPECT_EQ(b.keys.size(), b.weights.size());
  EXPECT_EQ(b.dense.size(), static_cast<size_t>(b.num_examples) * b.num_dense);
  EXPECT_EQ(b.labels.size(), static_cast<size_t>(b.num_examples) * b.num_labels);
  for (int e = 0; e < b.num_examples; ++e) {
    for (int s = 0; s < b.num_slots; ++s) {
      const size_t lo = b.offsets[e * b.num_slots + s], hi = b.offsets[e * b.num_slots + s + 1];
      out[e].keys.emplace_back(b.keys.begin() + lo, b.keys.begin() + hi);
      out[e].weights.insert(out[e].weights.end(), b.weights.begin() + lo, b.weights.begin() + hi);
    }
    out[e].dense.assign(b.dense.begin() + e * b.num_dense, b.dense.begin() + (e + 1) * b.num_dense);
    out[e].labels.assign(b.labels.begin() + e * b.num_labels,
                         b.labels.begin() + (e + 1) * b.num_labels);
  }
  return out;
}

// Reads every example of (part, num_parts); fails the test on error.
std::vector<Example> ReadAll(const config::DataConfig& config, const std::string& path,
                             int part = 0, int num_parts = 1, int batch_size = 100) {
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(config, path, part, num_parts);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return {};
  std::vector<Example> all;
  Batch batch;
  while (true) {
    Status s = (*reader)->Next(batch_size, &batch);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok() || batch.num_examples == 0) break;
    EXPECT_LE(batch.num_examples, batch_size);
    std::vector<Example> some = Unpack(batch);
    all.insert(all.end(), some.begin(), some.end());
  }
  return all;
}

// The error of reading `path` to the end (OK if there was none).
Status ReadError(const config::DataConfig& config, const std::string& path) {
  StatusOr<std::unique_ptr<ExampleReader>> reader = ExampleReader::Open(config, path, 0, 1);
  if (!reader.ok()) return reader.status();
  Batch batch;
  while (true) {
    Status s = (*reader)->Next(7, &batch);
    if (!s.ok()) return s;
    if (batch.num_examples == 0) return Status::OK();
  }
}

class ReaderTest : public TempDirTest {};

TEST_F(ReaderTest, CensusSplitCountsAndLabels) {
  const config::DataConfig data = ShippedData("census_mmoe.pbtxt");
  for (const auto& [path, expected_rows] :
       std::vector<std::pair<std::string, size_t>>{{kCensusTrain, 55771}, {kCensusTest, 13942}}) {
    SCOPED_TRACE(path);
    // 69,713 rows split 4:1 by line number (tests/data/README.md).
    const std::vector<std::string> raw = RawLines(path);
    ASSERT_EQ(raw.size(), expected_rows);
    int income = 0, never_married = 0;
    for (const std::string& line : raw) {
      income += line.size() >= 7 && line.compare(line.size() - 7, 7, "50000+.") == 0;
      never_married += line.find(", Never married,") != std::string::npos;
    }
    const std::vector<Example> examples = ReadAll(data, path, 0, 1, 1000);
    ASSERT_EQ(examples.size(), expected_rows);
    float income_sum = 0, never_married_sum = 0;
    for (const Example& e : examples) {
      ASSERT_EQ(e.labels.size(), 2u);
      income_sum += e.labels[0];
      never_married_sum += e.labels[1];
    }
    EXPECT_EQ(income_sum, income);
    EXPECT_EQ(never_married_sum, never_married);
    // The data README's rates (6.3% and 43.0% of the full file).
    EXPECT_NEAR(static_cast<double>(income) / raw.size(), 0.063, 0.01);
    EXPECT_NEAR(static_cast<double>(never_married) / raw.size(), 0.43, 0.02);
  }
}

TEST_F(ReaderTest, CsvSampleCountsAndLabels) {
  struct Case {
    std::string config, path;
    size_t rows;  // from the data README
    std::string click_column, conversion_column;
  };
  for (const Case& t :
       std::vector<Case>{{"aliccp_esmm.pbtxt", kAliCcpTrain, 100, "click", "purchase"},
                         {"aliccp_esmm.pbtxt", kData + "ali-ccp/ali_ccp_test_sample.csv", 50,
                          "click", "purchase"},
                         {"aliexpress_esmm.pbtxt", kAliExpressTrain, 100, "click", "conversion"},
                         {"aliexpress_esmm.pbtxt", kData + "aliexpress/aliexpress_test_sample.csv",
                          20, "click", "conversion"}}) {
    SCOPED_TRACE(t.path);
    const std::vector<std::string> raw = RawLines(t.path);
    ASSERT_EQ(raw.size(), t.rows + 1);  // header
    const std::vector<std::string> header = Split(raw[0], ",");
    const size_t click_col =
        std::find(header.begin(), header.end(), t.click_column) - header.begin();
    const size_t conv_col =
        std::find(header.begin(), header.end(), t.conversion_column) - header.begin();
    ASSERT_LT(click_col, header.size());
    ASSERT_LT(conv_col, header.size());
    int clicks = 0, conversions = 0;
    for (size_t i = 1; i < raw.size(); ++i) {
      const std::vector<std::string> v = Split(raw[i], ",");
      clicks += v[click_col] == "1";
      conversions += v[conv_col] == "1";
    }
    EXPECT_GT(clicks, 0);
    const std::vector<Example> examples = ReadAll(ShippedData(t.config), t.path, 0, 1, 32);
    ASSERT_EQ(examples.size(), t.rows);
    int click_sum = 0, conversion_sum = 0;
    for (const Example& e : examples) {
      click_sum += e.labels[0];
      conversion_sum += e.labels[1];
    }
    EXPECT_EQ(click_sum, clicks);
    EXPECT_EQ(conversion_sum, conversions);
  }
}

TEST_F(ReaderTest, SchemaSlotCountsPerConfig) {
  // census: 42 columns - 2 label columns - 7 dense - 2 ignored = 31 slots.
  StatusOr<FeatureSchema> census =
      ReadSchema(ShippedData("census_mmoe.pbtxt"), kData + "does-not-need-to-exist");
  ASSERT_TRUE(census.ok()) << census.status();
  EXPECT_EQ(census->slots.size(), 31u);
  EXPECT_EQ(census->dense_names.size(), 7u);
  EXPECT_EQ(census->label_names, (std::vector<std::string>{"income", "never_married"}));
  EXPECT_EQ(census->slots.front().name, "class_of_worker");
  EXPECT_EQ(census->slots.back().name, "year");
  for (const SlotInfo& slot : census->slots) {
    EXPECT_NE(slot.name, "education");
    EXPECT_NE(slot.name, "instance_weight");
    EXPECT_NE(slot.name, "marital_status");
    EXPECT_NE(slot.name, "income");
  }

  StatusOr<FeatureSchema> aliccp = ReadSchema(ShippedData("aliccp_esmm.pbtxt"), kAliCcpTrain);
  ASSERT_TRUE(aliccp.ok()) << aliccp.status();
  EXPECT_EQ(aliccp->slots.size(), 23u);
  EXPECT_EQ(aliccp->dense_names.size(), 8u);
  EXPECT_EQ(aliccp->slots.front().name, "101");
  EXPECT_EQ(aliccp->label_names, (std::vector<std::string>{"click", "conversion"}));

  StatusOr<FeatureSchema> aliexpress =
      ReadSchema(ShippedData("aliexpress_esmm.pbtxt"), kAliExpressTrain);
  ASSERT_TRUE(aliexpress.ok()) << aliexpress.status();
  EXPECT_EQ(aliexpress->slots.size(), 16u);
  EXPECT_EQ(aliexpress->dense_names.size(), 63u);

  // The reader's schema is the same.
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(ShippedData("aliccp_esmm.pbtxt"), kAliCcpTrain, 0, 1);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->schema().slots.size(), 23u);
}

TEST_F(ReaderTest, CensusKeysDenseAndLabelsOfAKnownRow) {
  const std::vector<std::string> raw = RawLines(kCensusTest);
  ASSERT_FALSE(raw.empty());
  const std::vector<std::string> v = Split(raw[0], ", ");
  ASSERT_EQ(v.size(), 42u);
  config::DataConfig data = ShippedData("census_mmoe.pbtxt");
  StatusOr<std::unique_ptr<ExampleReader>> reader = ExampleReader::Open(data, kCensusTest, 0, 1);
  ASSERT_TRUE(reader.ok()) << reader.status();
  Batch batch;
  ASSERT_TRUE((*reader)->Next(1, &batch).ok());
  ASSERT_EQ(batch.num_examples, 1);
  const Example e = Unpack(batch)[0];
  const FeatureSchema& schema = (*reader)->schema();
  // Spot checks by the UCI column order: 1 class of worker, 2 industry code,
  // 40 year; 0 age and 39 weeks worked are dense; 41 income, 7 marital status.
  auto slot_of = [&](const std::string& name) {
    for (size_t s = 0; s < schema.slots.size(); ++s) {
      if (schema.slots[s].name == name) return s;
    }
    ADD_FAILURE() << "no slot " << name;
    return size_t{0};
  };
  EXPECT_EQ(e.keys[slot_of("class_of_worker")],
            std::vector<uint64_t>{FeatureKey("class_of_worker", v[1])});
  EXPECT_EQ(e.keys[slot_of("detailed_industry_recode")],
            std::vector<uint64_t>{FeatureKey("detailed_industry_recode", v[2])});
  EXPECT_EQ(e.keys[slot_of("year")], std::vector<uint64_t>{FeatureKey("year", v[40])});
  for (const auto& keys : e.keys) EXPECT_EQ(keys.size(), 1u);
  EXPECT_EQ(e.weights, std::vector<float>(schema.slots.size(), 1.0f));
  ASSERT_EQ(schema.dense_names.front(), "age");
  ASSERT_EQ(schema.dense_names.back(), "weeks_worked_in_year");
  EXPECT_FLOAT_EQ(e.dense.front(), std::log1p(std::stof(v[0])));
  EXPECT_FLOAT_EQ(e.dense.back(), std::log1p(std::stof(v[39])));
  EXPECT_EQ(e.labels[0], v[41] == "50000+." ? 1.0f : 0.0f);
  EXPECT_EQ(e.labels[1], v[7] == "Never married" ? 1.0f : 0.0f);

  // Without the transform the raw numbers come through.
  data.set_dense_transform(config::DataConfig::NONE);
  const std::vector<Example> plain = ReadAll(data, kCensusTest, 0, 1, 1);
  ASSERT_FALSE(plain.empty());
  EXPECT_FLOAT_EQ(plain[0].dense.front(), std::stof(v[0]));
}

TEST_F(ReaderTest, CsvKeysOfAKnownRowMatchTheHeader) {
  const std::vector<std::string> raw = RawLines(kAliCcpTrain);
  const std::vector<std::string> header = Split(raw[0], ",");
  const std::vector<std::string> row = Split(raw[1], ",");
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(ShippedData("aliccp_esmm.pbtxt"), kAliCcpTrain, 0, 1);
  ASSERT_TRUE(reader.ok()) << reader.status();
  Batch batch;
  ASSERT_TRUE((*reader)->Next(1, &batch).ok());
  const Example e = Unpack(batch)[0];
  const FeatureSchema& schema = (*reader)->schema();
  for (size_t s = 0; s < schema.slots.size(); ++s) {
    const size_t col =
        std::find(header.begin(), header.end(), schema.slots[s].name) - header.begin();
    ASSERT_LT(col, header.size());
    EXPECT_EQ(e.keys[s], std::vector<uint64_t>{FeatureKey(header[col], row[col])}) << header[col];
  }
  for (size_t d = 0; d < schema.dense_names.size(); ++d) {
    const size_t col =
        std::find(header.begin(), header.end(), schema.dense_names[d]) - header.begin();
    ASSERT_LT(col, header.size());
    EXPECT_FLOAT_EQ(e.dense[d], std::stof(row[col]));  // dense_transform NONE
  }
}

TEST_F(ReaderTest, ShardingCoversEveryRowExactlyOnce) {
  for (const auto& [config, path] : std::vector<std::pair<std::string, std::string>>{
           {"aliccp_esmm.pbtxt", kAliCcpTrain}, {"census_mmoe.pbtxt", kCensusTest}}) {
    SCOPED_TRACE(path);
    const config::DataConfig data = ShippedData(config);
    const std::vector<Example> all = ReadAll(data, path, 0, 1, 64);
    ASSERT_FALSE(all.empty());
    constexpr int kParts = 3;
    size_t total = 0;
    for (int part = 0; part < kParts; ++part) {
      const std::vector<Example> mine = ReadAll(data, path, part, kParts, 50);
      total += mine.size();
      // Part p holds data lines p, p + 3, p + 6, ... in order.
      for (size_t k = 0; k < mine.size(); ++k) {
        ASSERT_LT(k * kParts + part, all.size());
        ASSERT_TRUE(mine[k] == all[k * kParts + part]) << "part " << part << " example " << k;
      }
    }
    EXPECT_EQ(total, all.size());
  }
}

TEST_F(ReaderTest, RewindRestartsAndEofStaysEmpty) {
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(ShippedData("aliccp_esmm.pbtxt"), kAliCcpTrain, 1, 2);
  ASSERT_TRUE(reader.ok()) << reader.status();
  Batch first, batch;
  ASSERT_TRUE((*reader)->Next(7, &first).ok());
  ASSERT_EQ(first.num_examples, 7);
  int total = 7;
  while (true) {
    ASSERT_TRUE((*reader)->Next(7, &batch).ok());
    if (batch.num_examples == 0) break;
    total += batch.num_examples;
  }
  EXPECT_EQ(total, 50);
  ASSERT_TRUE((*reader)->Next(7, &batch).ok());
  EXPECT_EQ(batch.num_examples, 0);
  ASSERT_TRUE((*reader)->Rewind().ok());
  ASSERT_TRUE((*reader)->Next(7, &batch).ok());
  EXPECT_TRUE(Unpack(batch) == Unpack(first));
}

TEST_F(ReaderTest, GzipAndPlainGiveIdenticalBatches) {
  // A plain prefix of the census test split and a gzip copy of it.
  const std::vector<std::string> raw = RawLines(kCensusTest);
  std::string text;
  for (size_t i = 0; i < 1000 && i < raw.size(); ++i) text += raw[i] + "\n";
  const std::string plain = Write("census.txt", text);
  const std::string gz = WriteGzip("census.txt.gz", text);
  const config::DataConfig census = ShippedData("census_mmoe.pbtxt");
  const std::vector<Example> a = ReadAll(census, plain, 0, 1, 128);
  const std::vector<Example> b = ReadAll(census, gz, 0, 1, 128);
  EXPECT_EQ(a.size(), 1000u);
  EXPECT_TRUE(a == b);

  // And a CSV sample, compressed here.
  std::ifstream in(kAliCcpTrain, std::ios::binary);
  const std::string csv((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string csv_gz = WriteGzip("aliccp.csv.gz", csv);
  const config::DataConfig aliccp = ShippedData("aliccp_esmm.pbtxt");
  const std::vector<Example> c = ReadAll(aliccp, kAliCcpTrain);
  const std::vector<Example> d = ReadAll(aliccp, csv_gz);
  EXPECT_EQ(c.size(), 100u);
  EXPECT_TRUE(c == d);
}

TEST_F(ReaderTest, MalformedCensusLinesNameFileAndLine) {
  const config::DataConfig census = ShippedData("census_mmoe.pbtxt");
  const std::string wrong_count = kData + "malformed/census_wrong_field_count.txt";
  Status s = ReadError(census, wrong_count);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(wrong_count + ":3:"), std::string::npos) << s;
  EXPECT_NE(s.message().find("41"), std::string::npos) << s;

  const std::string bad_number = kData + "malformed/census_bad_number.txt";
  s = ReadError(census, bad_number);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(bad_number + ":2:"), std::string::npos) << s;
  EXPECT_NE(s.message().find("age"), std::string::npos) << s;
  EXPECT_NE(s.message().find("4x2"), std::string::npos) << s;
}

TEST_F(ReaderTest, BlankTrailingLinesAreSkipped) {
  const std::vector<std::string> raw = RawLines(kCensusTest);
  const std::string path = Write("census.txt", raw[0] + "\n" + raw[1] + "\n\n  \n\n");
  EXPECT_EQ(ReadAll(ShippedData("census_mmoe.pbtxt"), path).size(), 2u);
}

config::DataConfig SmallCsvConfig() {
  config::DataConfig data;
  data.set_format(config::DataConfig::CSV);
  config::LabelSpec* label = data.add_labels();
  label->set_name("y");
  label->set_column("label");
  data.add_categorical_columns("user");
  config::MultiValuedColumn* tags = data.add_multi_valued_columns();
  tags->set_name("tags");
  tags->set_separator("|");
  tags->set_pooling(config::MultiValuedColumn::MEAN);
  data.add_dense_columns("score");
  data.set_dense_transform(config::DataConfig::LOG1P);
  return data;
}

TEST_F(ReaderTest, MultiValuedColumnsAndNegativeLog1p) {
  const std::string path = Write("small.csv",
                                 "label,user,tags,score\r\n"
                                 "1, u1 ,a|b||c,2.5\r\n"
                                 "0,u2,,-3\r\n");
  const config::DataConfig data = SmallCsvConfig();
  StatusOr<FeatureSchema> schema = ReadSchema(data, path);
  ASSERT_TRUE(schema.ok()) << schema.status();
  ASSERT_EQ(schema->slots.size(), 2u);
  EXPECT_EQ(schema->slots[0].name, "user");
  EXPECT_EQ(schema->slots[1].name, "tags");
  EXPECT_EQ(schema->slots[1].pooling, Pooling::kMean);

  const std::vector<Example> e = ReadAll(data, path);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].keys[0], std::vector<uint64_t>{FeatureKey("user", "u1")});
  EXPECT_EQ(e[0].keys[1], (std::vector<uint64_t>{FeatureKey("tags", "a"), FeatureKey("tags", "b"),
                                                 FeatureKey("tags", "c")}));
  EXPECT_EQ(e[0].weights, std::vector<float>(4, 1.0f));
  EXPECT_TRUE(e[1].keys[1].empty());
  EXPECT_FLOAT_EQ(e[0].dense[0], std::log1p(2.5f));
  EXPECT_FLOAT_EQ(e[1].dense[0], -std::log1p(3.0f));
  EXPECT_EQ(e[0].labels[0], 1.0f);
  EXPECT_EQ(e[1].labels[0], 0.0f);
}

TEST_F(ReaderTest, CsvErrorsNameFileLineAndColumn) {
  const config::DataConfig data = SmallCsvConfig();
  const std::string bad_number = Write("bad_number.csv",
                                       "label,user,tags,score\n"
                                       "1,u1,a,2.5\n"
                                       "0,u2,b,1.2.3\n");
  Status s = ReadError(data, bad_number);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(bad_number + ":3:"), std::string::npos) << s;
  EXPECT_NE(s.message().find("score"), std::string::npos) << s;
  EXPECT_NE(s.message().find("1.2.3"), std::string::npos) << s;

  const std::string bad_label = Write("bad_label.csv", "label,user,tags,score\nyes,u1,a,1\n");
  s = ReadError(data, bad_label);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(bad_label + ":2:"), std::string::npos) << s;
  EXPECT_NE(s.message().find("yes"), std::string::npos) << s;

  const std::string short_line = Write("short.csv", "label,user,tags,score\n1,u1,a,1\n1,u1\n");
  s = ReadError(data, short_line);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(short_line + ":3:"), std::string::npos) << s;

  const std::string no_column = Write("no_column.csv", "label,user,score\n1,u1,1\n");
  StatusOr<std::unique_ptr<ExampleReader>> reader = ExampleReader::Open(data, no_column, 0, 1);
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(reader.status().message().find("tags"), std::string::npos) << reader.status();
  EXPECT_NE(reader.status().message().find(no_column), std::string::npos) << reader.status();
  EXPECT_FALSE(ReadSchema(data, no_column).ok());
}

TEST_F(ReaderTest, MissingFileAndBadArguments) {
  const std::string missing = (dir_ / "missing.csv").string();
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(SmallCsvConfig(), missing, 0, 1);
  ASSERT_FALSE(reader.ok());
  EXPECT_TRUE(reader.status().code() == StatusCode::kNotFound ||
              reader.status().code() == StatusCode::kIoError);
  EXPECT_NE(reader.status().message().find(missing), std::string::npos) << reader.status();
  EXPECT_FALSE(ReadSchema(SmallCsvConfig(), missing).ok());
  // Census: the schema needs no file, but opening does.
  EXPECT_TRUE(ReadSchema(ShippedData("census_mmoe.pbtxt"), missing).ok());
  EXPECT_FALSE(ExampleReader::Open(ShippedData("census_mmoe.pbtxt"), missing, 0, 1).ok());

  EXPECT_FALSE(ExampleReader::Open(SmallCsvConfig(), kAliCcpTrain, 2, 2).ok());
  EXPECT_FALSE(ExampleReader::Open(SmallCsvConfig(), kAliCcpTrain, 0, 0).ok());
  config::DataConfig no_format = SmallCsvConfig();
  no_format.clear_format();
  EXPECT_FALSE(ExampleReader::Open(no_format, kAliCcpTrain, 0, 1).ok());
}

// ---------------------------------------------------------------------------
// FIELD_ID
// ---------------------------------------------------------------------------

TEST_F(ReaderTest, FieldIdSampleCountsLabelsAndKeysFromTheRawText) {
  const config::DataConfig data = ShippedData("aliccp_esmm_fieldid.pbtxt");
  ASSERT_EQ(data.format(), config::DataConfig::FIELD_ID);
  StatusOr<FeatureSchema> schema = ReadSchema(data);
  ASSERT_TRUE(schema.ok()) << schema.status();
  ASSERT_EQ(schema->slots.size(), 23u);
  EXPECT_TRUE(schema->dense_names.empty());
  EXPECT_EQ(schema->label_names, (std::vector<std::string>{"click", "conversion"}));
  for (const std::string& path : {kEsmmTrain, kEsmmTest}) {
    SCOPED_TRACE(path);
    const std::vector<std::string> raw = RawLines(path);
    ASSERT_EQ(raw.size(), 10u);  // data README
    // The test side is never shuffled, so read with shuffle_buffer 0 to
    // compare line by line.
    config::DataConfig plain = data;
    plain.set_shuffle_buffer(0);
    plain.set_train_path(path);
    const std::vector<Example> examples = ReadAll(plain, path, 0, 1, 3);
    ASSERT_EQ(examples.size(), raw.size());
    int clicks = 0;
    for (size_t i = 0; i < raw.size(); ++i) {
      const std::vector<std::string> v = Split(raw[i], ",");
      ASSERT_GT(v.size(), 800u);
      EXPECT_EQ(examples[i].labels, (std::vector<float>{std::stof(v[1]), std::stof(v[2])}));
      clicks += v[1] == "1";
      // Per slot, the ids of its field in line order.
      std::map<std::string, std::vector<uint64_t>> by_field;
      for (size_t t = 3; t < v.size(); ++t) {
        const size_t colon = v[t].find(':');
        by_field[v[t].substr(0, colon)].push_back(
            FeatureKey(v[t].substr(0, colon), v[t].substr(colon + 1)));
      }
      size_t total = 0;
      for (size_t slot = 0; slot < schema->slots.size(); ++slot) {
        EXPECT_EQ(examples[i].keys[slot], by_field[schema->slots[slot].name])
            << "line " << i + 1 << " field " << schema->slots[slot].name;
        total += examples[i].keys[slot].size();
      }
      // Every token of this sample is in a named field (all but none).
      EXPECT_EQ(total, v.size() - 3);
      EXPECT_EQ(examples[i].weights, std::vector<float>(total, 1.0f));
    }
    EXPECT_EQ(clicks, path == kEsmmTrain ? 2 : 1);  // data README
  }
  // The many-valued history fields really are many-valued.
  const std::vector<Example> train = ReadAll(data, kEsmmTrain);
  ASSERT_EQ(schema->slots[22].name, "150_14");
  EXPECT_GT(train[0].keys[22].size(), 10u);
  EXPECT_EQ(schema->slots[22].pooling, Pooling::kMean);
  EXPECT_TRUE(train[0].keys[5].empty());  // field 126 never occurs
}

TEST_F(ReaderTest, FieldIdErrorsNameFileLineAndValue) {
  config::DataConfig data;
  data.set_format(config::DataConfig::FIELD_ID);
  config::LabelSpec* click = data.add_labels();
  click->set_name("click");
  click->set_column("click");
  data.add_categorical_columns("101");
  const std::string ok = Write("ok.txt", "1,1,0,101:5,205:7\n2,0,0\n\n3,0,1,101:6,101:8\n");
  const std::vector<Example> e = ReadAll(data, ok);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].keys[0], std::vector<uint64_t>{FeatureKey("101", "5")});
  EXPECT_TRUE(e[1].keys[0].empty());
  EXPECT_EQ(e[2].keys[0], (std::vector<uint64_t>{FeatureKey("101", "6"), FeatureKey("101", "8")}));
  EXPECT_EQ(e[2].labels, std::vector<float>{0});

  struct Case {
    std::string text;
    std::vector<std::string> mentions;
  };
  for (const Case& t : std::vector<Case>{{"1,1,0,101:5\n2,0,0,101:5,2057\n", {"value 5", "2057"}},
                                         {"1,1,0,101:5\n2,0,0,:5\n", {"value 4", "':5'"}},
                                         {"1,1,0,101:5\n2,0,0,101:\n", {"value 4"}},
                                         {"1,1,0,101:5\n2,0,0,101:5,\n", {"value 5"}},
                                         {"1,1,0,101:5\n2,yes,0,101:5\n", {"click", "yes"}},
                                         {"1,1,0,101:5\n2,0\n", {"found 2"}}}) {
    SCOPED_TRACE(t.text);
    const std::string path = Write("bad.txt", t.text);
    const Status s = ReadError(data, path);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(path + ":2:"), std::string::npos) << s;
    for (const std::string& m : t.mentions) {
      EXPECT_NE(s.message().find(m), std::string::npos) << "missing '" << m << "' in " << s;
    }
  }
  // Config problems name the field.
  config::DataConfig dense = data;
  dense.add_dense_columns("x");
  EXPECT_NE(ReadError(dense, ok).message().find("data.dense_columns"), std::string::npos);
  config::DataConfig label = data;
  label.mutable_labels(0)->set_column("conversion");
  const Status s = ReadError(label, ok);
  EXPECT_NE(s.message().find("data.labels[0].column"), std::string::npos) << s;
  EXPECT_NE(s.message().find("purchase"), std::string::npos) << s;
}

// ---------------------------------------------------------------------------
// Holdout and shuffling, on a CSV whose `id` column numbers the data lines
// ---------------------------------------------------------------------------

// "id,label,g" then `rows` lines; label = id % 3 == 0, g = id % 7.
std::string NumberedCsv(int rows) {
  std::string text = "id,label,g\n";
  for (int i = 0; i < rows; ++i) {
    text += std::to_string(i) + "," + (i % 3 == 0 ? "1" : "0") + "," + std::to_string(i % 7) + "\n";
  }
  return text;
}

config::DataConfig NumberedConfig(const std::string& train, const std::string& test) {
  config::DataConfig data;
  data.set_format(config::DataConfig::CSV);
  data.set_train_path(train);
  data.set_test_path(test);
  config::LabelSpec* label = data.add_labels();
  label->set_name("y");
  label->set_column("label");
  data.add_categorical_columns("id");
  data.add_categorical_columns("g");
  return data;
}

// The line ids of everything a reader returns, in order, checking each
// example's label and g key against its id.
Status ReadIds(ExampleReader* reader, int rows, std::vector<int>* ids, int batch_size = 10) {
  std::map<uint64_t, int> id_of;
  for (int i = 0; i < rows; ++i) id_of[FeatureKey("id", std::to_string(i))] = i;
  Batch batch;
  while (true) {
    MTPS_RETURN_IF_ERROR(reader->Next(batch_size, &batch));
    if (batch.num_examples == 0) return Status::OK();
    if (batch.num_examples > batch_size) return Status::Internal("batch too large");
    for (const Example& e : Unpack(batch)) {
      auto it = id_of.find(e.keys[0].at(0));
      if (it == id_of.end()) return Status::Internal("unknown id key");
      const int id = it->second;
      if (e.labels != std::vector<float>{id % 3 == 0 ? 1.0f : 0.0f} ||
          e.keys[1] != std::vector<uint64_t>{FeatureKey("g", std::to_string(id % 7))}) {
        return Status::Internal("example of id " + std::to_string(id) + " is garbled");
      }
      ids->push_back(id);
    }
  }
}

std::vector<int> Ids(const config::DataConfig& data, DataSplit split, int rows, int part = 0,
                     int num_parts = 1) {
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(data, split, part, num_parts);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return {};
  std::vector<int> ids;
  const Status s = ReadIds(reader->get(), rows, &ids);
  EXPECT_TRUE(s.ok()) << s;
  return ids;
}

TEST_F(ReaderTest, HoldoutSidesAreDisjointCoverEveryLineAndHaveTheFraction) {
  constexpr int kRows = 20000;
  const std::string text = NumberedCsv(kRows);
  for (const std::string& train : {Write("rows.csv", text), WriteGzip("rows.csv.gz", text)}) {
    SCOPED_TRACE(train);
    config::DataConfig data = NumberedConfig(train, "");
    data.set_holdout_fraction(0.1);
    data.set_holdout_seed(42);
    // Without parts: the two sides, each in file order.
    const std::vector<int> train_ids = Ids(data, DataSplit::kTrain, kRows);
    const std::vector<int> test_ids = Ids(data, DataSplit::kTest, kRows);
    EXPECT_TRUE(std::is_sorted(train_ids.begin(), train_ids.end()));
    EXPECT_TRUE(std::is_sorted(test_ids.begin(), test_ids.end()));
    std::vector<int> both = train_ids;
    both.insert(both.end(), test_ids.begin(), test_ids.end());
    std::sort(both.begin(), both.end());
    std::vector<int> every(kRows);
    for (int i = 0; i < kRows; ++i) every[i] = i;
    EXPECT_EQ(both, every);  // disjoint and covering
    // Binomial(20000, 0.1): standard deviation 42 rows; allow ~5 of them.
    EXPECT_NEAR(static_cast<double>(test_ids.size()), 0.1 * kRows, 200);
    // With parts: part p of 3 holds the side's lines with id % 3 == p.
    for (DataSplit split : {DataSplit::kTrain, DataSplit::kTest}) {
      std::vector<int> merged;
      for (int part = 0; part < 3; ++part) {
        for (int id : Ids(data, split, kRows, part, 3)) {
          EXPECT_EQ(id % 3, part);
          merged.push_back(id);
        }
      }
      std::sort(merged.begin(), merged.end());
      EXPECT_EQ(merged, split == DataSplit::kTrain ? train_ids : test_ids);
    }
    // Another seed holds out other lines; the same seed the same ones.
    config::DataConfig other = data;
    other.set_holdout_seed(43);
    const std::vector<int> other_test = Ids(other, DataSplit::kTest, kRows);
    EXPECT_NE(other_test, test_ids);
    EXPECT_NEAR(static_cast<double>(other_test.size()), 0.1 * kRows, 200);
    EXPECT_EQ(Ids(data, DataSplit::kTest, kRows), test_ids);
  }
  // A larger fraction.
  config::DataConfig half = NumberedConfig(Write("rows2.csv", text), "");
  half.set_holdout_fraction(0.5);
  EXPECT_NEAR(static_cast<double>(Ids(half, DataSplit::kTest, kRows).size()), 0.5 * kRows, 350);
}

TEST_F(ReaderTest, SplitsPickTheirFilesAndHoldoutNeedsNoTestPath) {
  constexpr int kRows = 50;
  const std::string train = Write("train.csv", NumberedCsv(kRows));
  // The test file holds ids 0..9 only.
  const std::string test = Write("test.csv", NumberedCsv(10));
  config::DataConfig data = NumberedConfig(train, test);
  EXPECT_EQ(Ids(data, DataSplit::kTrain, kRows).size(), 50u);
  EXPECT_EQ(Ids(data, DataSplit::kTest, kRows).size(), 10u);
  // With a holdout the test side comes from train_path, and test_path must be empty.
  data.set_holdout_fraction(0.3);
  StatusOr<std::unique_ptr<ExampleReader>> bad = ExampleReader::Open(data, DataSplit::kTest, 0, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("data.test_path"), std::string::npos) << bad.status();
  data.clear_test_path();
  EXPECT_EQ(Ids(data, DataSplit::kTrain, kRows).size() + Ids(data, DataSplit::kTest, kRows).size(),
            50u);
  // Out-of-range settings are errors naming the field.
  for (double f : {1.0, -0.5}) {
    config::DataConfig c = data;
    c.set_holdout_fraction(f);
    StatusOr<std::unique_ptr<ExampleReader>> r = ExampleReader::Open(c, DataSplit::kTrain, 0, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("data.holdout_fraction"), std::string::npos);
  }
  config::DataConfig c = data;
  c.set_shuffle_buffer(-1);
  EXPECT_FALSE(ExampleReader::Open(c, DataSplit::kTrain, 0, 1).ok());
  EXPECT_FALSE(ExampleReader::Open(data, DataSplit::kTrain, 3, 3).ok());
  // The census format (no header) is split the same way: sides add up.
  config::DataConfig census = ShippedData("census_mmoe.pbtxt");
  census.set_train_path(kCensusTest);
  census.clear_test_path();
  census.set_holdout_fraction(0.2);
  size_t total = 0, held_out = 0;
  for (DataSplit split : {DataSplit::kTrain, DataSplit::kTest}) {
    StatusOr<std::unique_ptr<ExampleReader>> r = ExampleReader::Open(census, split, 0, 1);
    ASSERT_TRUE(r.ok()) << r.status();
    Batch batch;
    while (true) {
      ASSERT_TRUE((*r)->Next(1000, &batch).ok());
      if (batch.num_examples == 0) break;
      total += batch.num_examples;
      if (split == DataSplit::kTest) held_out += batch.num_examples;
    }
  }
  EXPECT_EQ(total, 13942u);
  EXPECT_NEAR(static_cast<double>(held_out) / total, 0.2, 0.02);
}

TEST_F(ReaderTest, ShufflingIsAWindowedPermutationNewEachEpochAndSeeded) {
  constexpr int kRows = 3000;
  constexpr int kWindow = 100;
  config::DataConfig data = NumberedConfig(WriteGzip("rows.csv.gz", NumberedCsv(kRows)),
                                           Write("test.csv", NumberedCsv(kRows)));
  data.set_shuffle_buffer(kWindow);
  data.set_shuffle_seed(5);
  std::vector<int> every(kRows);
  for (int i = 0; i < kRows; ++i) every[i] = i;

  auto epochs = [&](const config::DataConfig& c, int part, int num_parts, int n) {
    std::vector<std::vector<int>> out;
    StatusOr<std::unique_ptr<ExampleReader>> reader =
        ExampleReader::Open(c, DataSplit::kTrain, part, num_parts);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return out;
    for (int epoch = 0; epoch < n; ++epoch) {
      if (epoch > 0) {
        EXPECT_TRUE((*reader)->Rewind().ok());
      }
      out.emplace_back();
      const Status s = ReadIds(reader->get(), kRows, &out.back(), 64);
      EXPECT_TRUE(s.ok()) << s;
    }
    return out;
  };
  const std::vector<std::vector<int>> a = epochs(data, 0, 1, 3);
  ASSERT_EQ(a.size(), 3u);
  for (const std::vector<int>& order : a) {
    // A permutation of the lines...
    std::vector<int> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, every);
    // ...not the file order, and no line comes out before the window has
    // reached it: position k only sees lines < k + window.
    EXPECT_NE(order, every);
    int displaced = 0;
    for (int k = 0; k < kRows; ++k) {
      EXPECT_LT(order[k], k + kWindow) << "position " << k;
      displaced += order[k] != k;
    }
    EXPECT_GT(displaced, kRows * 9 / 10);
  }
  // Each epoch has its own order.
  EXPECT_NE(a[0], a[1]);
  EXPECT_NE(a[1], a[2]);
  // The same seed gives the same orders; another seed others.
  EXPECT_EQ(epochs(data, 0, 1, 3), a);
  config::DataConfig other = data;
  other.set_shuffle_seed(6);
  const std::vector<std::vector<int>> b = epochs(other, 0, 1, 2);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_NE(b[0], a[0]);
  // Parts shuffle their own lines.
  const std::vector<std::vector<int>> p1 = epochs(data, 1, 2, 2);
  ASSERT_EQ(p1.size(), 2u);
  std::vector<int> sorted = p1[0];
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> odd;
  for (int i = 1; i < kRows; i += 2) odd.push_back(i);
  EXPECT_EQ(sorted, odd);
  EXPECT_NE(p1[0], odd);
  EXPECT_NE(p1[0], p1[1]);
  // A window of one is the file order; the test side is never shuffled.
  config::DataConfig one = data;
  one.set_shuffle_buffer(1);
  EXPECT_EQ(epochs(one, 0, 1, 1).at(0), every);
  EXPECT_EQ(Ids(data, DataSplit::kTest, kRows), every);
  // A window larger than the data shuffles all of it.
  config::DataConfig big = data;
  big.set_shuffle_buffer(kRows * 2);
  const std::vector<int> whole = epochs(big, 0, 1, 1).at(0);
  EXPECT_EQ(std::set<int>(whole.begin(), whole.end()).size(), static_cast<size_t>(kRows));
  EXPECT_GT(*std::max_element(whole.begin(), whole.begin() + 10), kWindow);
}

// The exact order, against a model of the draw written here: the window is
// refilled (in input order) to its size before each pick; pick t of epoch e
// takes position floor(r * n / 2^64) of the n examples in the window, with
// r = Mix64(Mix64(seed ^ Mix64(e)) + t), and the last example of the window
// moves into its place. Pins that a change of the window's storage keeps
// every batch the same.
TEST_F(ReaderTest, ShufflingOrderIsTheDocumentedDraw) {
  constexpr int kRows = 500;
  constexpr uint64_t kSeed = 99;
  const std::string path = Write("rows.csv", NumberedCsv(kRows));
  const config::DataConfig data = NumberedConfig(path, path);
  for (int window : {1, 2, 37, 499, 500, 1000}) {
    StatusOr<std::unique_ptr<ExampleReader>> inner = ExampleReader::Open(data, path, 0, 1);
    ASSERT_TRUE(inner.ok()) << inner.status();
    std::unique_ptr<ExampleReader> reader = NewShufflingReader(std::move(*inner), window, kSeed);
    for (uint64_t epoch = 0; epoch < 3; ++epoch) {
      if (epoch > 0) {
        ASSERT_TRUE(reader->Rewind().ok());
      }
      std::vector<int> got;
      const Status s = ReadIds(reader.get(), kRows, &got, 7 + static_cast<int>(epoch));
      ASSERT_TRUE(s.ok()) << s;

      std::vector<int> expected, pool;
      uint64_t state = Mix64(kSeed ^ Mix64(epoch));
      int next_input = 0;
      while (true) {
        while (static_cast<int>(pool.size()) < window && next_input < kRows) {
          pool.push_back(next_input++);
        }
        if (pool.empty()) break;
        const uint64_t r = Mix64(state++);
        const size_t j =
            static_cast<size_t>((static_cast<unsigned __int128>(r) * pool.size()) >> 64);
        expected.push_back(pool[j]);
        pool[j] = pool.back();
        pool.pop_back();
      }
      ASSERT_EQ(got, expected) << "window " << window << ", epoch " << epoch;
    }
  }
}

// The ids of `epochs` epochs of `reader` in batches of `batch`. With cut >=
// 0 the second epoch is cut short by a Rewind after `cut` batches (its keys
// are recorded) and the next epoch read whole.
std::vector<std::vector<int>> EpochIds(ExampleReader* reader, int rows, int epochs, int batch,
                                       int cut = -1) {
  std::vector<std::vector<int>> out;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    if (epoch > 0) {
      EXPECT_TRUE(reader->Rewind().ok());
    }
    out.emplace_back();
    if (epoch == 1 && cut >= 0) {
      Batch b;
      for (int i = 0; i < cut; ++i) {
        EXPECT_TRUE(reader->Next(batch, &b).ok());
        // The first batches' keys, as a fingerprint of what was read.
        for (uint64_t key : b.keys) out.back().push_back(static_cast<int>(key & 0x7fffffff));
      }
      EXPECT_TRUE(reader->Rewind().ok());
      out.emplace_back();
    }
    const Status s = ReadIds(reader, rows, &out.back(), batch);
    EXPECT_TRUE(s.ok()) << s;
  }
  return out;
}

TEST_F(ReaderTest, ReadAheadGivesTheInnerReadersBatchesEpochAfterEpoch) {
  constexpr int kRows = 3000;
  config::DataConfig data = NumberedConfig(WriteGzip("rows.csv.gz", NumberedCsv(kRows)), "");
  data.set_shuffle_buffer(100);
  data.set_shuffle_seed(5);
  for (int depth : {1, 4}) {
    for (int cut : {-1, 0, 5}) {
      auto plain = ExampleReader::Open(data, DataSplit::kTrain, 0, 1);
      auto inner = ExampleReader::Open(data, DataSplit::kTrain, 0, 1);
      ASSERT_TRUE(plain.ok() && inner.ok());
      ReadAheadOptions o;
      o.batch_size = 64;
      o.depth = depth;
      std::unique_ptr<ExampleReader> ahead = NewReadAheadReader(std::move(*inner), o);
      const auto expected = EpochIds(plain->get(), kRows, 3, 64, cut);
      const auto got = EpochIds(ahead.get(), kRows, 3, 64, cut);
      EXPECT_EQ(got, expected) << "depth " << depth << ", cut " << cut;
      ASSERT_EQ(expected.size(), cut >= 0 ? 4u : 3u);
      EXPECT_NE(expected[0], expected.back());  // a new order each epoch: Rewinds were counted
      EXPECT_EQ(expected.back().size(), static_cast<size_t>(kRows));
    }
  }
  // Destroyed while the thread reads ahead (nothing consumed).
  auto inner = ExampleReader::Open(data, DataSplit::kTrain, 0, 1);
  ASSERT_TRUE(inner.ok());
  NewReadAheadReader(std::move(*inner), ReadAheadOptions());
}

TEST_F(ReaderTest, ReadAheadPassesTheInnerErrorAndRefusesOtherSizes) {
  std::string text = NumberedCsv(500);
  text += "500,1\n";  // a value short
  text += "501,0,4\n";
  const config::DataConfig data = NumberedConfig(Write("bad.csv", text), "");
  auto plain = ExampleReader::Open(data, DataSplit::kTrain, 0, 1);
  auto inner = ExampleReader::Open(data, DataSplit::kTrain, 0, 1);
  ASSERT_TRUE(plain.ok() && inner.ok());
  ReadAheadOptions o;
  o.batch_size = 64;
  std::unique_ptr<ExampleReader> ahead = NewReadAheadReader(std::move(*inner), o);
  EXPECT_EQ(ahead->Next(32, nullptr).code(), StatusCode::kInvalidArgument);
  Batch a, b;
  for (int i = 0;; ++i) {
    const Status want = (*plain)->Next(64, &a);
    const Status got = ahead->Next(64, &b);
    EXPECT_EQ(got.code(), want.code()) << "batch " << i;
    EXPECT_EQ(got.message(), want.message()) << "batch " << i;
    if (!want.ok()) {
      EXPECT_NE(want.message().find("bad.csv:502"), std::string::npos) << want;
      break;
    }
    ASSERT_LT(i, 20) << "the bad line was not found";
    EXPECT_EQ(b.keys, a.keys) << "batch " << i;
  }
}

TEST_F(ReaderTest, ShufflingKeepsEveryExampleWhole) {
  // Multi-valued slots and dense values travel with their example.
  const std::string path = Write("mv.csv",
                                 "label,user,tags,score\n"
                                 "1,u1,a|b|c,1\n"
                                 "0,u2,,2\n"
                                 "1,u3,d,3\n"
                                 "0,u4,e|f,4\n");
  config::DataConfig data = SmallCsvConfig();
  data.set_train_path(path);
  data.set_test_path(path);
  const std::vector<Example> plain = ReadAll(data, path);
  ASSERT_EQ(plain.size(), 4u);
  data.set_shuffle_buffer(4);
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    data.set_shuffle_seed(seed);
    StatusOr<std::unique_ptr<ExampleReader>> reader =
        ExampleReader::Open(data, DataSplit::kTrain, 0, 1);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::vector<Example> got;
    Batch batch;
    while (true) {
      ASSERT_TRUE((*reader)->Next(3, &batch).ok());
      if (batch.num_examples == 0) break;
      for (const Example& e : Unpack(batch)) got.push_back(e);
    }
    ASSERT_EQ(got.size(), 4u);
    for (const Example& e : got) {
      EXPECT_EQ(std::count(plain.begin(), plain.end(), e), 1);
    }
  }
}

// ---------------------------------------------------------------------------
// Malformed lines and the data error budget (data.max_bad_lines)
// ---------------------------------------------------------------------------

// Reads `reader` to the end or its first error, appending what it returns.
Status ReadInto(ExampleReader* reader, std::vector<Example>* out, int batch_size = 7) {
  Batch batch;
  while (true) {
    MTPS_RETURN_IF_ERROR(reader->Next(batch_size, &batch));
    if (batch.num_examples == 0) return Status::OK();
    std::vector<Example> some = Unpack(batch);
    out->insert(out->end(), some.begin(), some.end());
  }
}

// Opens `path` (deprecated path form) for (part, num_parts) with `budget` and
// reads it whole.
Status ReadPath(const config::DataConfig& data, const std::string& path, int part, int num_parts,
                std::shared_ptr<BadLineBudget> budget, std::vector<Example>* out) {
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(data, path, part, num_parts, std::move(budget));
  if (!reader.ok()) return reader.status();
  return ReadInto(reader->get(), out);
}

// A file of data lines, some of them malformed, with the examples the good
// ones give (read from a file of the good lines alone).
struct BadFile {
  std::string path;
  std::vector<int> file_line;   // per data line, its 1-based line in the file
  std::vector<bool> bad;        // per data line
  std::vector<Example> good;    // the examples of the good lines, in order
  std::vector<int> good_index;  // their data line indexes
};

// Writes `header` (may be empty) and `lines` (a blank line after the first
// data line, which is no data line) to `name`.
BadFile WriteBadFile(
    const config::DataConfig& data, const std::string& name, const std::string& header,
    const std::vector<std::string>& lines, const std::vector<bool>& bad,
    const std::function<std::string(const std::string&, const std::string&)>& write) {
  BadFile f;
  f.bad = bad;
  std::string text = header.empty() ? "" : header + "\n";
  std::string good_text = text;
  int line = header.empty() ? 0 : 1;
  for (size_t i = 0; i < lines.size(); ++i) {
    text += lines[i] + "\n";
    f.file_line.push_back(++line);
    if (i == 0) {
      text += "   \n";
      ++line;
    }
    if (!bad[i]) {
      good_text += lines[i] + "\n";
      f.good_index.push_back(static_cast<int>(i));
    }
  }
  f.path = write(name, text);
  f.good = ReadAll(data, write("good_" + name, good_text));
  EXPECT_EQ(f.good.size(), f.good_index.size());
  return f;
}

// The census test lines 0..n-1 with three malformed ones put in at data
// lines 3 (41 values), 11 (age "4x2") and 18 (3 values).
std::vector<std::string> CensusWithBadLines(std::vector<bool>* bad) {
  const std::vector<std::string> raw = RawLines(kCensusTest);
  std::vector<std::string> lines;
  size_t next = 0;
  auto good = [&](int n) {
    for (int i = 0; i < n; ++i) {
      lines.push_back(raw[next++]);
      bad->push_back(false);
    }
  };
  good(3);
  lines.push_back(raw[next].substr(0, raw[next].rfind(", ")));  // 41 values
  ++next;
  bad->push_back(true);
  good(7);
  lines.push_back("4x2" + raw[next].substr(raw[next].find(',')));
  ++next;
  bad->push_back(true);
  good(6);
  lines.push_back("73, Not in universe, 0");
  bad->push_back(true);
  good(8);
  return lines;
}

TEST_F(ReaderTest, CensusMalformedLinesWithinTheBudgetAreSkippedAndCountedExactly) {
  const config::DataConfig census = ShippedData("census_mmoe.pbtxt");
  std::vector<bool> bad;
  const std::vector<std::string> lines = CensusWithBadLines(&bad);
  for (bool gzip : {false, true}) {
    SCOPED_TRACE(gzip);
    const BadFile f = WriteBadFile(census, gzip ? "census.txt.gz" : "census.txt", "", lines, bad,
                                   [this, gzip](const std::string& n, const std::string& t) {
                                     return gzip ? WriteGzip(n, t) : Write(n, t);
                                   });
    ASSERT_EQ(f.good.size(), 24u);
    // The budget exactly: the good lines' examples, three lines counted.
    auto budget = std::make_shared<BadLineBudget>(3);
    std::vector<Example> got;
    Status s = ReadPath(census, f.path, 0, 1, budget, &got);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_TRUE(got == f.good);
    EXPECT_EQ(budget->skipped(), 3);
    // More budget than lines: the same.
    auto roomy = std::make_shared<BadLineBudget>(1000);
    got.clear();
    ASSERT_TRUE(ReadPath(census, f.path, 0, 1, roomy, &got).ok());
    EXPECT_TRUE(got == f.good);
    EXPECT_EQ(roomy->skipped(), 3);

    // Parts: a malformed line keeps its data line index, so every part
    // holds the good lines of its indexes, and counts its own bad ones.
    for (int parts : {2, 3}) {
      int64_t total = 0;
      for (int part = 0; part < parts; ++part) {
        auto mine = std::make_shared<BadLineBudget>(3);
        std::vector<Example> part_got;
        ASSERT_TRUE(ReadPath(census, f.path, part, parts, mine, &part_got).ok());
        std::vector<Example> expected;
        for (size_t k = 0; k < f.good.size(); ++k) {
          if (f.good_index[k] % parts == part) expected.push_back(f.good[k]);
        }
        EXPECT_TRUE(part_got == expected) << part << " of " << parts;
        int64_t own = 0;
        for (size_t i = 0; i < bad.size(); ++i)
          own += bad[i] && static_cast<int>(i) % parts == part;
        EXPECT_EQ(mine->skipped(), own) << part << " of " << parts;
        total += mine->skipped();
      }
      EXPECT_EQ(total, 3) << parts << " parts";
    }

    // Epochs: each Rewind reads the same examples and counts nothing new.
    auto epochs = std::make_shared<BadLineBudget>(3);
    StatusOr<std::unique_ptr<ExampleReader>> reader =
        ExampleReader::Open(census, f.path, 0, 1, epochs);
    ASSERT_TRUE(reader.ok()) << reader.status();
    for (int epoch = 0; epoch < 3; ++epoch) {
      std::vector<Example> pass;
      ASSERT_TRUE(ReadInto(reader->get(), &pass, 5).ok());
      EXPECT_TRUE(pass == f.good) << "epoch " << epoch;
      EXPECT_EQ(epochs->skipped(), 3) << "epoch " << epoch;
      ASSERT_TRUE((*reader)->Rewind().ok());
    }
    // A Rewind half-way: the rest of the lines are counted in the next pass.
    auto half = std::make_shared<BadLineBudget>(3);
    reader = ExampleReader::Open(census, f.path, 0, 1, half);
    ASSERT_TRUE(reader.ok()) << reader.status();
    Batch batch;
    ASSERT_TRUE((*reader)->Next(5, &batch).ok());  // data lines 0..5: one bad
    EXPECT_EQ(half->skipped(), 1);
    ASSERT_TRUE((*reader)->Rewind().ok());
    got.clear();
    ASSERT_TRUE(ReadInto(reader->get(), &got).ok());
    EXPECT_TRUE(got == f.good);
    EXPECT_EQ(half->skipped(), 3);
  }
}

TEST_F(ReaderTest, CensusMalformedLineBeyondTheBudgetNamesFileLineReasonAndBudget) {
  config::DataConfig census = ShippedData("census_mmoe.pbtxt");
  std::vector<bool> bad;
  const std::vector<std::string> lines = CensusWithBadLines(&bad);
  const BadFile f =
      WriteBadFile(census, "census.txt", "", lines, bad,
                   [this](const std::string& n, const std::string& t) { return Write(n, t); });
  std::vector<int> bad_line;  // file lines of the malformed data lines
  std::vector<size_t> bad_index;
  for (size_t i = 0; i < bad.size(); ++i) {
    if (bad[i]) {
      bad_line.push_back(f.file_line[i]);
      bad_index.push_back(i);
    }
  }
  ASSERT_EQ(bad_line, (std::vector<int>{5, 13, 20}));
  // The error of each bad line as today's reader gives it (the line format's own).
  std::vector<std::string> today;
  std::vector<std::string_view> fields;
  today.push_back(SplitCensusLine(lines[bad_index[0]], f.path, bad_line[0], &fields).message());
  today.push_back(f.path + ":13: column 'age': '4x2' is not a number");
  today.push_back(SplitCensusLine(lines[bad_index[2]], f.path, bad_line[2], &fields).message());
  EXPECT_NE(today[0].find("found 41"), std::string::npos) << today[0];
  for (int64_t budget = 0; budget < 3; ++budget) {
    SCOPED_TRACE(budget);
    auto b = std::make_shared<BadLineBudget>(budget);
    std::vector<Example> got;
    const Status s = ReadPath(census, f.path, 0, 1, b, &got);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), today[budget] + " (malformed line " + std::to_string(budget + 1) +
                               ", beyond the data error budget: data.max_bad_lines = " +
                               std::to_string(budget) + ")");
    EXPECT_EQ(b->skipped(), budget);
  }
  // Without a budget of its own a reader has data.max_bad_lines: the
  // default 0 fails at the first malformed line, naming the budget.
  Status s = ReadError(census, f.path);
  EXPECT_EQ(s.message().find(today[0] + " (malformed line 1,"), 0u) << s;
  census.set_max_bad_lines(2);
  s = ReadError(census, f.path);
  EXPECT_EQ(s.message().find(f.path + ":20:"), 0u) << s;
  EXPECT_NE(s.message().find("data.max_bad_lines = 2)"), std::string::npos) << s;
  census.set_max_bad_lines(3);
  EXPECT_TRUE(ReadError(census, f.path).ok());
  // A negative budget is a config error naming the field.
  census.set_max_bad_lines(-1);
  StatusOr<std::unique_ptr<ExampleReader>> reader = ExampleReader::Open(census, f.path, 0, 1);
  ASSERT_FALSE(reader.ok());
  EXPECT_NE(reader.status().message().find("data.max_bad_lines: must be >= 0 (got -1)"),
            std::string::npos)
      << reader.status();
}

TEST_F(ReaderTest, CsvAndFieldIdMalformedLinesWithinAndBeyondTheBudget) {
  auto write = [this](const std::string& n, const std::string& t) { return Write(n, t); };
  {
    SCOPED_TRACE("CSV");
    const config::DataConfig data = SmallCsvConfig();
    const BadFile f = WriteBadFile(data, "small.csv", "label,user,tags,score",
                                   {"1,u1,a|b,2.5", "0,u2,b,1.2.3", "1,u3,c,1", "yes,u4,a,1",
                                    "0,u5,,0", "1,u6", "0,u7,d|e,-2"},
                                   {false, true, false, true, false, true, false}, write);
    ASSERT_EQ(f.good.size(), 4u);
    auto budget = std::make_shared<BadLineBudget>(3);
    std::vector<Example> got;
    ASSERT_TRUE(ReadPath(data, f.path, 0, 1, budget, &got).ok());
    EXPECT_TRUE(got == f.good);
    EXPECT_EQ(budget->skipped(), 3);
    // Beyond: line 8 (header, data line 0, a blank line, data lines 1-5) is the third.
    auto two = std::make_shared<BadLineBudget>(2);
    got.clear();
    Status s = ReadPath(data, f.path, 0, 1, two, &got);
    EXPECT_EQ(s.message().find(f.path + ":8: expected 4 values (as in the header), found 2"), 0u)
        << s;
    EXPECT_NE(s.message().find("data.max_bad_lines = 2)"), std::string::npos) << s;
    // The default: the first one, as before.
    s = ReadError(data, f.path);
    EXPECT_EQ(s.message().find(f.path + ":4: column 'score': '1.2.3' is not a number"), 0u) << s;
    EXPECT_NE(s.message().find("data.max_bad_lines = 0)"), std::string::npos) << s;
    // A bad header is no data line: never skipped.
    const std::string header = Write("header.csv", "label,user,user,score\n1,u1,a,1\n");
    got.clear();
    s = ReadPath(data, header, 0, 1, std::make_shared<BadLineBudget>(1000), &got);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.message().find("beyond the data error budget"), std::string::npos) << s;
  }
  {
    SCOPED_TRACE("FIELD_ID");
    config::DataConfig data = ShippedData("aliccp_esmm_fieldid.pbtxt");
    data.set_shuffle_buffer(0);
    const BadFile f = WriteBadFile(data, "fieldid.txt", "",
                                   {"1,0,0,101:a,205:b", "2,1", "3,1,0,101:c,205", "4,1,1,101:d",
                                    "5,x,0,101:e", "6,0,0,205:f"},
                                   {false, true, true, false, true, false}, write);
    ASSERT_EQ(f.good.size(), 3u);
    auto budget = std::make_shared<BadLineBudget>(3);
    std::vector<Example> got;
    ASSERT_TRUE(ReadPath(data, f.path, 0, 1, budget, &got).ok());
    EXPECT_TRUE(got == f.good);
    EXPECT_EQ(budget->skipped(), 3);
    auto one = std::make_shared<BadLineBudget>(1);
    got.clear();
    const Status s = ReadPath(data, f.path, 0, 1, one, &got);
    EXPECT_EQ(s.message().find(f.path + ":4: value 5 '205': expected field:id"), 0u) << s;
    EXPECT_NE(s.message().find("malformed line 2, beyond the data error budget: "
                               "data.max_bad_lines = 1)"),
              std::string::npos)
        << s;
  }
}

// A worker's budget over its training side (shuffled, several epochs) and
// its test side (the holdout): each malformed line counted once, by the one
// worker and side that keeps it.
TEST_F(ReaderTest, BadLineCountsAreExactOverPartsHoldoutShufflingAndEpochs) {
  constexpr int kRows = 3000;
  std::string text = "id,label,g\n";
  std::set<int> bad_ids;
  for (int i = 0; i < kRows; ++i) {
    if (i % 53 == 7) {
      bad_ids.insert(i);
      // A bad label, or too few values.
      text += i % 2 ? std::to_string(i) + ",x," + std::to_string(i % 7) + "\n"
                    : std::to_string(i) + ",1\n";
    } else {
      text +=
          std::to_string(i) + "," + (i % 3 == 0 ? "1" : "0") + "," + std::to_string(i % 7) + "\n";
    }
  }
  config::DataConfig data = NumberedConfig(WriteGzip("rows.csv.gz", text), "");
  data.set_holdout_fraction(0.2);
  data.set_holdout_seed(4);
  data.set_shuffle_buffer(64);
  data.set_max_bad_lines(1000);
  constexpr int kParts = 3;
  int64_t total = 0;
  std::vector<int> seen_test;
  for (int part = 0; part < kParts; ++part) {
    SCOPED_TRACE(part);
    auto budget = std::make_shared<BadLineBudget>(data.max_bad_lines());
    StatusOr<std::unique_ptr<ExampleReader>> train =
        ExampleReader::Open(data, DataSplit::kTrain, part, kParts, budget);
    ASSERT_TRUE(train.ok()) << train.status();
    std::vector<int> expected_train, expected_test;
    int64_t own_bad = 0;
    for (int i = part; i < kRows; i += kParts) {
      if (bad_ids.count(i)) {
        ++own_bad;
      } else if (IsHeldOut(i, 0.2, 4)) {
        expected_test.push_back(i);
      } else {
        expected_train.push_back(i);
      }
    }
    for (int epoch = 0; epoch < 3; ++epoch) {
      std::vector<int> ids;
      ASSERT_TRUE(ReadIds(train->get(), kRows, &ids).ok());
      EXPECT_NE(ids, expected_train);  // shuffled
      std::sort(ids.begin(), ids.end());
      EXPECT_EQ(ids, expected_train) << "epoch " << epoch;
      ASSERT_TRUE((*train)->Rewind().ok());
    }
    StatusOr<std::unique_ptr<ExampleReader>> test =
        ExampleReader::Open(data, DataSplit::kTest, part, kParts, budget);
    ASSERT_TRUE(test.ok()) << test.status();
    std::vector<int> ids;
    ASSERT_TRUE(ReadIds(test->get(), kRows, &ids).ok());
    EXPECT_EQ(ids, expected_test);
    EXPECT_EQ(budget->skipped(), own_bad);
    total += budget->skipped();
  }
  EXPECT_EQ(total, static_cast<int64_t>(bad_ids.size()));
  EXPECT_EQ(bad_ids.size(), 57u);
}

// Captures the WARNING lines logged while it lives.
class WarningCapture : public google::LogSink {
 public:
  WarningCapture() { google::AddLogSink(this); }
  ~WarningCapture() override { google::RemoveLogSink(this); }
  using google::LogSink::send;
  void send(google::LogSeverity severity, const char* full_filename, const char* base_filename,
            int line, const google::LogMessageTime& time, const char* message,
            size_t message_len) override {
    if (severity == google::GLOG_WARNING) lines.emplace_back(message, message_len);
  }
  std::vector<std::string> lines;
};

TEST_F(ReaderTest, BadLineBudgetLogsTheFirstLinesThenEveryPowerOfTen) {
  std::vector<std::string> logged;
  {
    WarningCapture capture;
    BadLineBudget budget(5000);
    for (int i = 1; i <= 5000; ++i) {
      ASSERT_TRUE(
          budget.Skip(Status::InvalidArgument("f.txt:" + std::to_string(i) + ": bad")).ok());
    }
    EXPECT_EQ(budget.skipped(), 5000);
    const Status beyond = budget.Skip(Status::InvalidArgument("f.txt:5001: bad"));
    EXPECT_EQ(beyond.message(),
              "f.txt:5001: bad (malformed line 5001, beyond the data error budget: "
              "data.max_bad_lines = 5000)");
    EXPECT_EQ(budget.skipped(), 5000);
    // A quiet budget counts the same and logs nothing.
    BadLineBudget quiet(10, BadLineBudget::Logging::kQuiet);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(quiet.Skip(Status::InvalidArgument("q:1: x")).ok());
    EXPECT_EQ(quiet.skipped(), 10);
    EXPECT_FALSE(quiet.Skip(Status::InvalidArgument("q:1: x")).ok());
    logged = capture.lines;
  }
  // 20 one by one, then at 100 and 1000: 22 lines, however many are skipped.
  ASSERT_EQ(logged.size(), static_cast<size_t>(BadLineBudget::kLogEach) + 2);
  EXPECT_NE(logged[0].find("skipped malformed data line 1 of at most 5000"), std::string::npos)
      << logged[0];
  EXPECT_NE(logged[0].find("f.txt:1: bad"), std::string::npos) << logged[0];
  EXPECT_NE(logged[19].find("f.txt:20: bad"), std::string::npos) << logged[19];
  EXPECT_NE(logged[20].find("100 malformed data lines skipped so far"), std::string::npos)
      << logged[20];
  EXPECT_NE(logged[20].find("f.txt:100: bad"), std::string::npos) << logged[20];
  EXPECT_NE(logged[21].find("1000 malformed data lines"), std::string::npos) << logged[21];
}

}  // namespace
}  // namespace mtps
