// Tests of the raw Ali-CCP reader (worker/data/aliccp_reader.h) through
// ExampleReader: the skeleton/common join (keys, weights, labels of known
// samples), a streamed join over many indexes checked against an in-test
// model of the data, parts, holdout sides, gzip, and every error naming its
// file and line. The files are written by hand in a temp dir per test; the
// expected examples are built here from the same feature tuples, with
// FeatureKey (common/base/hash.h) as the only shared code.
#include "worker/data/aliccp_reader.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/temp_dir_test.h"

#include "common/base/hash.h"
#include "worker/data/example_reader.h"

namespace mtps {
namespace {

namespace fs = std::filesystem;

struct Feature {
  std::string field, id, value;
};

std::string FeatureList(const std::vector<Feature>& features) {
  std::string out;
  for (size_t i = 0; i < features.size(); ++i) {
    if (i > 0) out += '\x01';
    out += features[i].field + '\x02' + features[i].id + '\x03' + features[i].value;
  }
  return out;
}

std::string SkeletonLine(const std::string& sample_id, int click, int conversion,
                         const std::string& index, const std::vector<Feature>& features) {
  return sample_id + "," + std::to_string(click) + "," + std::to_string(conversion) + "," + index +
         "," + std::to_string(features.size()) + "," + FeatureList(features) + "\n";
}

std::string CommonLine(const std::string& index, const std::vector<Feature>& features) {
  return index + "," + std::to_string(features.size()) + "," + FeatureList(features) + "\n";
}

// The test's config: slots 205 and 301 (categorical), 101 (categorical, from
// the common file), then 109_14 (multi-valued, sum) and 150_14 (mean).
config::DataConfig AliccpConfig(const std::string& skeleton, const std::string& common) {
  config::DataConfig data;
  data.set_format(config::DataConfig::ALICCP_RAW);
  data.set_train_path(skeleton);
  data.set_train_common_path(common);
  config::LabelSpec* click = data.add_labels();
  click->set_name("ctr");
  click->set_column("click");
  config::LabelSpec* conversion = data.add_labels();
  conversion->set_name("cvr");
  conversion->set_column("conversion");
  data.add_categorical_columns("205");
  data.add_categorical_columns("301");
  data.add_categorical_columns("101");
  config::MultiValuedColumn* history = data.add_multi_valued_columns();
  history->set_name("109_14");
  history->set_pooling(config::MultiValuedColumn::SUM);
  config::MultiValuedColumn* intent = data.add_multi_valued_columns();
  intent->set_name("150_14");
  intent->set_pooling(config::MultiValuedColumn::MEAN);
  return data;
}
const std::vector<std::string> kSlots = {"205", "301", "101", "109_14", "150_14"};

// One example, unpacked from a Batch: per slot, the (key, weight) pairs.
struct Example {
  std::vector<std::vector<std::pair<uint64_t, float>>> slots;
  std::vector<float> labels;
  bool operator==(const Example& o) const { return slots == o.slots && labels == o.labels; }
};

std::ostream& operator<<(std::ostream& os, const Example& e) {
  os << "labels";
  for (float y : e.labels) os << " " << y;
  for (size_t s = 0; s < e.slots.size(); ++s) {
    os << " | slot " << s << ":";
    for (const auto& [k, w] : e.slots[s]) os << " " << k << "*" << w;
  }
  return os;
}

std::vector<Example> Unpack(const Batch& b) {
  std::vector<Example> out(b.num_examples);
  EXPECT_EQ(b.offsets.size(), static_cast<size_t>(b.num_examples) * b.num_slots + 1);
  EXPECT_EQ(b.keys.size(), b.weights.size());
  EXPECT_EQ(b.num_dense, 0);
  for (int e = 0; e < b.num_examples; ++e) {
    for (int s = 0; s < b.num_slots; ++s) {
      out[e].slots.emplace_back();
      for (uint32_t j = b.offsets[e * b.num_slots + s]; j < b.offsets[e * b.num_slots + s + 1];
           ++j) {
        out[e].slots.back().emplace_back(b.keys[j], b.weights[j]);
      }
    }
    out[e].labels.assign(b.labels.begin() + e * b.num_labels,
                         b.labels.begin() + (e + 1) * b.num_labels);
  }
  return out;
}

Status ReadAllInto(ExampleReader* reader, std::vector<Example>* out, int batch_size = 5) {
  Batch batch;
  while (true) {
    MTPS_RETURN_IF_ERROR(reader->Next(batch_size, &batch));
    if (batch.num_examples == 0) return Status::OK();
    for (Example& e : Unpack(batch)) out->push_back(std::move(e));
  }
}

std::vector<Example> ReadAll(const config::DataConfig& data, DataSplit split, int part = 0,
                             int num_parts = 1) {
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(data, split, part, num_parts);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return {};
  std::vector<Example> all;
  Status s = ReadAllInto(reader->get(), &all);
  EXPECT_TRUE(s.ok()) << s;
  return all;
}

// The error of opening and reading to the end (OK if none).
Status ReadError(const config::DataConfig& data) {
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(data, DataSplit::kTrain, 0, 1);
  if (!reader.ok()) return reader.status();
  std::vector<Example> all;
  return ReadAllInto(reader->get(), &all);
}

// The example the test expects for a skeleton line's and its common line's
// features: for each slot, the skeleton's features then the common ones.
Example Expected(int click, int conversion, const std::vector<Feature>& skeleton,
                 const std::vector<Feature>& common) {
  Example e;
  e.labels = {static_cast<float>(click), static_cast<float>(conversion)};
  for (const std::string& slot : kSlots) {
    e.slots.emplace_back();
    for (const std::vector<Feature>* part : {&skeleton, &common}) {
      for (const Feature& f : *part) {
        if (f.field == slot)
          e.slots.back().emplace_back(FeatureKey(f.field, f.id), std::stof(f.value));
      }
    }
  }
  return e;
}

class AliccpReaderTest : public TempDirTest {};

TEST_F(AliccpReaderTest, JoinGivesKeysWeightsAndLabelsOfEachSample) {
  // Two users (common indexes), three impressions of the first, one of the
  // second. 124 and 206 are fields the config does not name.
  const std::vector<Feature> user_a = {{"101", "u1", "1.0"},    {"109_14", "c1", "2.0"},
                                       {"109_14", "c2", "0.5"}, {"124", "g1", "1.0"},
                                       {"150_14", "t1", "3"},   {"150_14", "t2", "1e-1"}};
  const std::vector<Feature> user_b = {{"101", "u2", "1.0"}, {"109_14", "c3", "4.25"}};
  const std::vector<Feature> s1 = {
      {"205", "i1", "1.0"}, {"301", "p1", "1.0"}, {"109_14", "c9", "1.5"}, {"206", "x", "1.0"}};
  const std::vector<Feature> s2 = {{"205", "i2", "1.0"}};
  const std::vector<Feature> s3 = {{"301", "p2", "1.0"}, {"205", "i3", "1.0"}};
  const std::vector<Feature> s4 = {{"205", "i4", "1.0"}, {"301", "p3", "1.0"}};
  const std::string skeleton =
      Write("skeleton.csv",
            SkeletonLine("s1", 1, 0, "a1f3", s1) + SkeletonLine("s2", 0, 0, "a1f3", s2) +
                SkeletonLine("s3", 1, 1, "a1f3", s3) + SkeletonLine("s4", 0, 0, "07bb", s4));
  const std::string common =
      Write("common.csv", CommonLine("a1f3", user_a) + CommonLine("07bb", user_b));
  const config::DataConfig data = AliccpConfig(skeleton, common);

  StatusOr<FeatureSchema> schema = ReadSchema(data);
  ASSERT_TRUE(schema.ok()) << schema.status();
  ASSERT_EQ(schema->slots.size(), kSlots.size());
  for (size_t s = 0; s < kSlots.size(); ++s) EXPECT_EQ(schema->slots[s].name, kSlots[s]);
  EXPECT_EQ(schema->slots[0].pooling, Pooling::kSum);
  EXPECT_EQ(schema->slots[3].pooling, Pooling::kSum);
  EXPECT_EQ(schema->slots[4].pooling, Pooling::kMean);
  EXPECT_EQ(schema->label_names, (std::vector<std::string>{"ctr", "cvr"}));
  EXPECT_TRUE(schema->dense_names.empty());

  const std::vector<Example> got = ReadAll(data, DataSplit::kTrain);
  ASSERT_EQ(got.size(), 4u);
  // Spelled out for the first sample: 205 i1; 301 p1; 101 u1 (common);
  // 109_14 c9*1.5 (skeleton) then c1*2, c2*0.5 (common); 150_14 t1*3, t2*0.1.
  Example first;
  first.labels = {1, 0};
  first.slots = {{{FeatureKey("205", "i1"), 1.0f}},
                 {{FeatureKey("301", "p1"), 1.0f}},
                 {{FeatureKey("101", "u1"), 1.0f}},
                 {{FeatureKey("109_14", "c9"), 1.5f},
                  {FeatureKey("109_14", "c1"), 2.0f},
                  {FeatureKey("109_14", "c2"), 0.5f}},
                 {{FeatureKey("150_14", "t1"), 3.0f}, {FeatureKey("150_14", "t2"), 0.1f}}};
  EXPECT_EQ(got[0], first) << got[0];
  EXPECT_EQ(got[1], Expected(0, 0, s2, user_a)) << got[1];
  EXPECT_EQ(got[2], Expected(1, 1, s3, user_a)) << got[2];
  EXPECT_EQ(got[3], Expected(0, 0, s4, user_b)) << got[3];
  // The second user has no 150_14 and no 301 from the common side.
  EXPECT_TRUE(got[3].slots[4].empty());
}

// A pseudo-random data set: `num_users` common lines, each with 0..4
// impressions (so some common lines are unused), written as files, plus the
// examples the reader should produce, in skeleton order.
struct Generated {
  std::string skeleton_text, common_text;
  std::vector<Example> expected;
};

Generated Generate(int num_users, uint32_t seed) {
  std::mt19937 rng(seed);
  Generated g;
  int sample = 0;
  auto random_features = [&](const std::vector<std::string>& fields, int max_count) {
    std::vector<Feature> out;
    const int n = static_cast<int>(rng() % (max_count + 1));
    for (int i = 0; i < n; ++i) {
      const std::string& field = fields[rng() % fields.size()];
      // Values: integers and fractions, as in the real counts and weights.
      const std::string value =
          rng() % 2 ? std::to_string(rng() % 20 + 1) : std::to_string(rng() % 1000) + "e-3";
      out.push_back({field, std::to_string(rng() % 5000), value});
    }
    return out;
  };
  for (int u = 0; u < num_users; ++u) {
    char index[32];
    snprintf(index, sizeof(index), "%016llx",
             static_cast<unsigned long long>(rng()) * 2654435761ULL);
    const std::vector<Feature> user =
        random_features({"101", "109_14", "150_14", "121", "127_14"}, 12);
    g.common_text += CommonLine(index, user);
    const int impressions = static_cast<int>(rng() % 5);
    for (int i = 0; i < impressions; ++i) {
      std::vector<Feature> item = random_features({"205", "206", "109_14"}, 5);
      // A unique position id makes every example distinct.
      item.insert(item.begin() + rng() % (item.size() + 1), {"301", std::to_string(sample), "1"});
      const int click = rng() % 4 == 0;
      const int conversion = click && rng() % 3 == 0;
      g.skeleton_text += SkeletonLine(std::to_string(++sample), click, conversion, index, item);
      g.expected.push_back(Expected(click, conversion, item, user));
    }
  }
  return g;
}

TEST_F(AliccpReaderTest, StreamingJoinAcrossManyIndexesPartsAndGzip) {
  const Generated g = Generate(3000, 7);
  ASSERT_GT(g.expected.size(), 5000u);
  const config::DataConfig plain =
      AliccpConfig(Write("skeleton.csv", g.skeleton_text), Write("common.csv", g.common_text));
  const std::vector<Example> all = ReadAll(plain, DataSplit::kTrain);
  ASSERT_EQ(all.size(), g.expected.size());
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(all[i], g.expected[i]) << "sample " << i + 1 << ": " << all[i];
  }

  // Gzip files (either or both) give the same examples.
  const config::DataConfig gz = AliccpConfig(WriteGzip("skeleton.csv.gz", g.skeleton_text),
                                             WriteGzip("common.csv.gz", g.common_text));
  EXPECT_TRUE(ReadAll(gz, DataSplit::kTrain) == all);
  const config::DataConfig mixed = AliccpConfig(plain.train_path(), gz.train_common_path());
  EXPECT_TRUE(ReadAll(mixed, DataSplit::kTrain) == all);

  // Part p of 3 holds skeleton lines p, p + 3, ... (each worker streams the
  // whole common file in step).
  constexpr int kParts = 3;
  size_t total = 0;
  for (int part = 0; part < kParts; ++part) {
    const std::vector<Example> mine = ReadAll(plain, DataSplit::kTrain, part, kParts);
    total += mine.size();
    for (size_t k = 0; k < mine.size(); ++k) {
      ASSERT_EQ(mine[k], g.expected[k * kParts + part]) << "part " << part << " example " << k;
    }
  }
  EXPECT_EQ(total, all.size());

  // Rewind replays the same examples.
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(plain, DataSplit::kTrain, 1, 2);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<Example> first, second;
  ASSERT_TRUE(ReadAllInto(reader->get(), &first, 64).ok());
  ASSERT_TRUE((*reader)->Rewind().ok());
  ASSERT_TRUE(ReadAllInto(reader->get(), &second, 64).ok());
  EXPECT_EQ(first.size(), all.size() / 2);
  EXPECT_TRUE(first == second);
}

TEST_F(AliccpReaderTest, HoldoutSidesAreDisjointAndCoverTheSkeleton) {
  const Generated g = Generate(1500, 11);
  config::DataConfig data =
      AliccpConfig(Write("skeleton.csv", g.skeleton_text), Write("common.csv", g.common_text));
  data.set_holdout_fraction(0.25);
  data.set_holdout_seed(3);
  // Identify every example by its position in g.expected.
  std::map<std::vector<std::vector<std::pair<uint64_t, float>>>, size_t> position;
  for (size_t i = 0; i < g.expected.size(); ++i) position[g.expected[i].slots] = i;
  ASSERT_EQ(position.size(), g.expected.size());

  std::vector<int> side(g.expected.size(), 0);  // 1 train, 2 test
  for (int part = 0; part < 2; ++part) {
    for (DataSplit split : {DataSplit::kTrain, DataSplit::kTest}) {
      size_t last = 0;
      bool any = false;
      for (const Example& e : ReadAll(data, split, part, 2)) {
        auto it = position.find(e.slots);
        ASSERT_NE(it, position.end()) << e;
        const size_t i = it->second;
        EXPECT_EQ(i % 2, static_cast<size_t>(part));
        EXPECT_EQ(g.expected[i], e);  // labels too
        if (any) {
          EXPECT_GT(i, last);  // file order
        }
        last = i;
        any = true;
        EXPECT_EQ(side[i], 0) << "example " << i << " read twice";
        side[i] = split == DataSplit::kTrain ? 1 : 2;
      }
    }
  }
  const size_t test = std::count(side.begin(), side.end(), 2);
  EXPECT_EQ(std::count(side.begin(), side.end(), 0), 0);  // every line on one side
  const double fraction = static_cast<double>(test) / g.expected.size();
  EXPECT_NEAR(fraction, 0.25, 0.03) << test << " of " << g.expected.size();
}

TEST_F(AliccpReaderTest, JoinErrorsNameBothFilesAndLines) {
  const std::vector<Feature> f = {{"205", "i1", "1"}};
  const std::string common = Write("common.csv", CommonLine("aa", f) + CommonLine("bb", f));
  {
    // "zz" is in no common line.
    const std::string skeleton =
        Write("missing.csv", SkeletonLine("1", 0, 0, "aa", f) + SkeletonLine("2", 0, 0, "zz", f));
    const Status s = ReadError(AliccpConfig(skeleton, common));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(skeleton + ":2:"), std::string::npos) << s;
    EXPECT_NE(s.message().find("'zz'"), std::string::npos) << s;
    EXPECT_NE(s.message().find(common), std::string::npos) << s;
    EXPECT_NE(s.message().find("line 2"), std::string::npos) << s;  // where the search began
  }
  {
    // The skeleton lists bb before aa, the common file aa before bb.
    const std::string skeleton =
        Write("order.csv", SkeletonLine("1", 0, 0, "bb", f) + SkeletonLine("2", 0, 0, "bb", f) +
                               SkeletonLine("3", 0, 0, "aa", f));
    const Status s = ReadError(AliccpConfig(skeleton, common));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(skeleton + ":3:"), std::string::npos) << s;
    EXPECT_NE(s.message().find("'aa'"), std::string::npos) << s;
    EXPECT_NE(s.message().find(common), std::string::npos) << s;
    EXPECT_NE(s.message().find("line 2 has 'bb'"), std::string::npos) << s;
    EXPECT_NE(s.message().find("order"), std::string::npos) << s;
  }
  {
    // Skeleton lines of one index must be contiguous.
    const std::string skeleton =
        Write("split.csv", SkeletonLine("1", 0, 0, "aa", f) + SkeletonLine("2", 0, 0, "bb", f) +
                               SkeletonLine("3", 0, 0, "aa", f));
    const Status s = ReadError(AliccpConfig(skeleton, common));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(skeleton + ":3:"), std::string::npos) << s;
  }
  {
    // A line no worker keeps still moves the join: part 1 of 2 keeps only
    // line 2, and line 3's bad index is found all the same.
    const std::string skeleton =
        Write("parts.csv", SkeletonLine("1", 0, 0, "aa", f) + SkeletonLine("2", 0, 0, "bb", f) +
                               SkeletonLine("3", 0, 0, "aa", f));
    StatusOr<std::unique_ptr<ExampleReader>> reader =
        ExampleReader::Open(AliccpConfig(skeleton, common), DataSplit::kTrain, 1, 2);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::vector<Example> got;
    const Status s = ReadAllInto(reader->get(), &got, 1);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(skeleton + ":3:"), std::string::npos) << s;
  }
}

TEST_F(AliccpReaderTest, MalformedLinesNameFileAndLine) {
  const std::vector<Feature> f = {{"205", "i1", "1"}, {"109_14", "c1", "2"}};
  const std::string good_common = CommonLine("aa", f);
  const std::string good_skeleton = SkeletonLine("1", 1, 0, "aa", f);
  struct Case {
    std::string name;
    std::string skeleton, common;  // file contents
    bool in_common;                // the error is on line 2 of the common file
    std::vector<std::string> mentions;
  };
  // Line 2 of one file is bad; the other file is fine.
  const std::vector<Case> cases = {
      {"skeleton count too high",
       good_skeleton + "2,0,0,aa,3," + FeatureList(f) + "\n",
       good_common + good_common,
       false,
       {"feature_count is 3", "has 2 features"}},
      {"common count too low",
       good_skeleton + SkeletonLine("2", 0, 0, "bb", f),
       good_common + "bb,1," + FeatureList(f) + "\n",
       true,
       {"feature_count is 1"}},
      {"count not a number",
       good_skeleton + "2,0,0,aa,two," + FeatureList(f) + "\n",
       good_common,
       false,
       {"feature_count 'two'"}},
      {"no 0x02",
       good_skeleton + "2,0,0,aa,1,205\x03"
                       "1\n",
       good_common,
       false,
       {"feature 1", "no \\x02"}},
      {"no 0x03",
       good_skeleton + SkeletonLine("2", 0, 0, "bb", f),
       good_common + "bb,2,205\x02i1\x03"
                     "1\x01"
                     "109_14\x02"
                     "c1\n",
       true,
       {"feature 2", "no \\x03", "109_14\\x02c1"}},
      {"value not a number",
       good_skeleton + "2,0,0,aa,2,205\x02i1\x03"
                       "1\x01"
                       "124\x02g\x03x1\n",
       good_common,
       false,
       {"feature 2", "value 'x1'"}},
      {"value not finite",
       good_skeleton + SkeletonLine("2", 0, 0, "bb", f),
       good_common + "bb,1,205\x02i1\x03inf\n",
       true,
       {"value 'inf'"}},
      {"empty field id",
       good_skeleton + "2,0,0,aa,1,\x02i1\x03"
                       "1\n",
       good_common,
       false,
       {"empty field id"}},
      {"empty feature",
       good_skeleton + "2,0,0,aa,2,205\x02i1\x03"
                       "1\x01\n",
       good_common,
       false,
       {"feature 2"}},
      {"too few values", good_skeleton + "2,0,0,aa\n", good_common, false, {"found 4"}},
      {"common too few values",
       good_skeleton + SkeletonLine("2", 0, 0, "bb", f),
       good_common + "bb\n",
       true,
       {"expected 3"}},
      {"bad label",
       good_skeleton + SkeletonLine("2", 0, 0, "aa", f).replace(2, 1, "y"),
       good_common,
       false,
       {"column 'click'", "'y'"}},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.name);
    const std::string skeleton = Write("skeleton.csv", t.skeleton);
    const std::string common = Write("common.csv", t.common);
    const Status s = ReadError(AliccpConfig(skeleton, common));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    const std::string where = (t.in_common ? common : skeleton) + ":2:";
    EXPECT_NE(s.message().find(where), std::string::npos) << s;
    for (const std::string& m : t.mentions) {
      EXPECT_NE(s.message().find(m), std::string::npos) << "missing '" << m << "' in " << s;
    }
  }
  // Control: the good lines alone read fine.
  EXPECT_TRUE(ReadError(AliccpConfig(Write("ok.csv", good_skeleton + good_skeleton),
                                     Write("okc.csv", good_common)))
                  .ok());
}

// ---------------------------------------------------------------------------
// Malformed lines within the data error budget (data.max_bad_lines)
// ---------------------------------------------------------------------------

// Ten samples over five common lines, with six malformed lines among them:
//   common 1 aa  good           skeleton 1  aa  good          -> example
//   common 2 xx  3 values short skeleton 2  aa  no \x02        (bad)
//   common 3 bb  count wrong    skeleton 3-5 bb  good, dropped with common 3
//   common 4 cc  index only     skeleton 6  cc  good, dropped with common 4
//   common 5 dd  good           skeleton 7  dd  good          -> example
//                               skeleton 8  dd  bad label      (bad)
//                               skeleton 9  only 4 values      (bad)
//                               skeleton 10 dd  good          -> example
// Common 2 is passed by skeleton 3's search, so skeleton 3's reader counts
// it; common 3 is reached by skeleton 3, common 4 by skeleton 6.
struct BadJoin {
  std::string skeleton_text, common_text;
  std::vector<Example> expected;  // skeleton 1, 7, 10
  std::vector<int> kept_index;    // their data line indexes: 0, 6, 9
  // The data line index of the skeleton line that answers for each
  // malformed line, in the order a reader meets them.
  std::vector<int> answered_by;
};

BadJoin MakeBadJoin() {
  const std::vector<Feature> user_a = {{"101", "ua", "1"}, {"109_14", "ca", "2"}};
  const std::vector<Feature> user_b = {{"101", "ub", "1"}};
  const std::vector<Feature> user_d = {{"101", "ud", "1"}, {"150_14", "td", "0.5"}};
  auto item = [](int n) {
    return std::vector<Feature>{{"205", "i" + std::to_string(n), "1"},
                                {"301", "p" + std::to_string(n), "1"}};
  };
  BadJoin b;
  b.common_text = CommonLine("aa", user_a) + "xx,3\n" + "bb,5," + FeatureList(user_b) + "\n" +
                  "cc\n" + CommonLine("dd", user_d);
  b.skeleton_text =
      SkeletonLine("1", 1, 0, "aa", item(1)) + "2,0,0,aa,1,205\x03" + "1\n" +
      SkeletonLine("3", 0, 0, "bb", item(3)) + SkeletonLine("4", 1, 1, "bb", item(4)) +
      SkeletonLine("5", 0, 0, "bb", item(5)) + SkeletonLine("6", 1, 0, "cc", item(6)) +
      SkeletonLine("7", 1, 1, "dd", item(7)) +
      SkeletonLine("8", 0, 0, "dd", item(8)).replace(2, 1, "y") + "9,0,0,dd\n" +
      SkeletonLine("10", 0, 0, "dd", item(10));
  b.expected = {Expected(1, 0, item(1), user_a), Expected(1, 1, item(7), user_d),
                Expected(0, 0, item(10), user_d)};
  b.kept_index = {0, 6, 9};
  b.answered_by = {1, 2, 2, 5, 7, 8};
  return b;
}

// Reads a whole side with `budget`; the examples, or the error.
Status ReadWithBudget(const config::DataConfig& data, DataSplit split, int part, int num_parts,
                      std::shared_ptr<BadLineBudget> budget, std::vector<Example>* out) {
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(data, split, part, num_parts, std::move(budget));
  if (!reader.ok()) return reader.status();
  return ReadAllInto(reader->get(), out, 2);
}

TEST_F(AliccpReaderTest, MalformedLinesWithinTheBudgetAreSkippedOnceAndTheJoinGoesOn) {
  const BadJoin b = MakeBadJoin();
  const std::string skeleton = Write("skeleton.csv", b.skeleton_text);
  const std::string common = Write("common.csv", b.common_text);
  config::DataConfig data = AliccpConfig(skeleton, common);
  data.set_max_bad_lines(6);

  // One reader: the good samples exactly, six lines counted; a Rewind reads
  // the same again and counts nothing new.
  auto budget = std::make_shared<BadLineBudget>(6);
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      ExampleReader::Open(data, DataSplit::kTrain, 0, 1, budget);
  ASSERT_TRUE(reader.ok()) << reader.status();
  for (int epoch = 0; epoch < 3; ++epoch) {
    SCOPED_TRACE(epoch);
    std::vector<Example> got;
    const Status s = ReadAllInto(reader->get(), &got, 2);
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_EQ(got.size(), b.expected.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], b.expected[i]) << got[i];
    EXPECT_EQ(budget->skipped(), 6);
    ASSERT_TRUE((*reader)->Rewind().ok());
  }
  // The budget of the reader's own (data.max_bad_lines) reads the same.
  std::vector<Example> own;
  ASSERT_TRUE(ReadWithBudget(data, DataSplit::kTrain, 0, 1, nullptr, &own).ok());
  EXPECT_TRUE(own == b.expected);

  // Parts: each malformed line is counted by the one part that keeps the
  // skeleton line answering for it; the counts add up to six.
  for (int parts : {2, 3}) {
    SCOPED_TRACE(parts);
    int64_t total = 0;
    for (int part = 0; part < parts; ++part) {
      auto mine = std::make_shared<BadLineBudget>(6);
      std::vector<Example> got;
      ASSERT_TRUE(ReadWithBudget(data, DataSplit::kTrain, part, parts, mine, &got).ok());
      std::vector<Example> expected;
      for (size_t k = 0; k < b.expected.size(); ++k) {
        if (b.kept_index[k] % parts == part) expected.push_back(b.expected[k]);
      }
      EXPECT_TRUE(got == expected) << "part " << part;
      const int64_t answers = std::count_if(b.answered_by.begin(), b.answered_by.end(),
                                            [&](int index) { return index % parts == part; });
      EXPECT_EQ(mine->skipped(), answers) << "part " << part;
      total += mine->skipped();
    }
    EXPECT_EQ(total, 6);
  }

  // Holdout: a worker's two sides share its budget; every line is counted
  // by exactly one side of one worker.
  data.set_holdout_fraction(0.5);
  data.set_holdout_seed(9);
  int64_t total = 0;
  size_t examples = 0;
  for (int part = 0; part < 2; ++part) {
    auto worker = std::make_shared<BadLineBudget>(6);
    for (DataSplit split : {DataSplit::kTrain, DataSplit::kTest}) {
      std::vector<Example> got;
      ASSERT_TRUE(ReadWithBudget(data, split, part, 2, worker, &got).ok());
      examples += got.size();
    }
    int64_t answers = 0;
    for (int index : b.answered_by) answers += index % 2 == part;
    EXPECT_EQ(worker->skipped(), answers) << "part " << part;
    total += worker->skipped();
  }
  EXPECT_EQ(total, 6);
  EXPECT_EQ(examples, b.expected.size());
}

TEST_F(AliccpReaderTest, TheFirstMalformedLineBeyondTheBudgetNamesFileLineAndBudget) {
  const BadJoin b = MakeBadJoin();
  const std::string skeleton = Write("skeleton.csv", b.skeleton_text);
  const std::string common = Write("common.csv", b.common_text);
  const config::DataConfig data = AliccpConfig(skeleton, common);
  struct Case {
    int64_t budget;
    std::string where, why;  // of the malformed line beyond it
  };
  // The order a reader meets them: skeleton 2, common 2, 3, 4, skeleton 8, 9.
  const std::vector<Case> cases = {
      {0, skeleton + ":2:", "no \\x02"},         {1, common + ":2:", "expected 3"},
      {2, common + ":3:", "feature_count is 5"}, {3, common + ":4:", "expected 3"},
      {4, skeleton + ":8:", "column 'click'"},   {5, skeleton + ":9:", "found 4"},
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.budget);
    auto budget = std::make_shared<BadLineBudget>(t.budget);
    std::vector<Example> got;
    const Status s = ReadWithBudget(data, DataSplit::kTrain, 0, 1, budget, &got);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message().find(t.where), 0u) << s;
    EXPECT_NE(s.message().find(t.why), std::string::npos) << s;
    EXPECT_NE(s.message().find("malformed line " + std::to_string(t.budget + 1) +
                               ", beyond the data error budget: data.max_bad_lines = " +
                               std::to_string(t.budget) + ")"),
              std::string::npos)
        << s;
    EXPECT_EQ(budget->skipped(), t.budget);
  }
  // data.max_bad_lines is the budget of a reader without one of its own;
  // the default, 0, fails at the first malformed line as before.
  config::DataConfig three = data;
  three.set_max_bad_lines(3);
  std::vector<Example> got;
  Status s = ReadWithBudget(three, DataSplit::kTrain, 0, 1, nullptr, &got);
  EXPECT_EQ(s.message().find(common + ":4:"), 0u) << s;
  EXPECT_NE(s.message().find("data.max_bad_lines = 3)"), std::string::npos) << s;
  s = ReadError(data);
  EXPECT_EQ(s.message().find(skeleton + ":2: feature 1"), 0u) << s;
  EXPECT_NE(s.message().find("data.max_bad_lines = 0)"), std::string::npos) << s;

  // A skeleton index missing from the common file fails whatever the budget.
  const std::string missing =
      Write("missing.csv", b.skeleton_text + SkeletonLine("11", 0, 0, "zz", {}));
  config::DataConfig lenient = AliccpConfig(missing, common);
  lenient.set_max_bad_lines(1000);
  s = ReadError(lenient);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().find(missing + ":11:"), 0u) << s;
  EXPECT_NE(s.message().find("'zz' is not in"), std::string::npos) << s;
}

TEST_F(AliccpReaderTest, ConfigErrorsNameTheField) {
  const std::string skeleton = Write("s.csv", "");
  const std::string common = Write("c.csv", "");
  config::DataConfig data = AliccpConfig(skeleton, common);
  ASSERT_TRUE(ReadError(data).ok());  // empty files: no examples

  config::DataConfig dense = data;
  dense.add_dense_columns("D109_14");
  Status s = ReadError(dense);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("data.dense_columns"), std::string::npos) << s;
  EXPECT_FALSE(ReadSchema(dense).ok());

  config::DataConfig label = data;
  label.mutable_labels(1)->set_column("purchase");
  s = ReadError(label);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("data.labels[1].column"), std::string::npos) << s;
  EXPECT_NE(s.message().find("conversion"), std::string::npos) << s;

  config::DataConfig no_common = data;
  no_common.clear_train_common_path();
  s = ReadError(no_common);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("common"), std::string::npos) << s;

  config::DataConfig twice = data;
  twice.add_categorical_columns("109_14");
  s = ReadError(twice);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("109_14"), std::string::npos) << s;

  config::DataConfig missing = data;
  missing.set_train_common_path((dir_ / "nope.csv").string());
  s = ReadError(missing);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nope.csv"), std::string::npos) << s;

  // The deprecated path form knows the common file only for the config's paths.
  EXPECT_TRUE(ExampleReader::Open(data, skeleton, 0, 1).ok());
  EXPECT_FALSE(ExampleReader::Open(data, common, 0, 1).ok());
}

}  // namespace
}  // namespace mtps
