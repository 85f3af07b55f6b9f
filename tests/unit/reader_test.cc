// Tests of worker/reader.h on the bundled data (tests/data) and small files
// written per test: counts, labels, keys, dense transform, sharding, errors,
// gzip transparency. Expected values come from the raw text, parsed here
// independently of the reader.
#include "worker/reader.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/config.h"
#include "common/hash.h"

namespace mtps {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(MTPS_SOURCE_DIR) + "/tests/data/";
const std::string kCensusTrain = kData + "census-income/train.gz";
const std::string kCensusTest = kData + "census-income/test.gz";
const std::string kAliCcpTrain = kData + "ali-ccp/ali_ccp_train_sample.csv";
const std::string kAliExpressTrain = kData + "aliexpress/aliexpress_train_sample.csv";

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

class ReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "mtps_reader_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::string WriteGzip(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzwrite(f, text.data(), text.size()), static_cast<int>(text.size()));
    gzclose(f);
    return path;
  }
  fs::path dir_;
};

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

}  // namespace
}  // namespace mtps
