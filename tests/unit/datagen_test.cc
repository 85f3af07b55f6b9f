// Tests of the Ali-CCP generator (worker/data/datagen.h). The written files are
// parsed here by a small parser of the raw format of its own (field counts,
// 0x01/0x02/0x03 structure, feature_count, the common_feature_index order
// contract between the two files of a split); every expectation is recounted
// from those files or from the options, never taken from the generator:
// determinism, rates against the flags, the history and cross fields, the
// ground-truth AUCs recomputed from the features as written, calibration of
// the labels against the true probabilities, and the selection bias.
#include "worker/data/datagen.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "common/eval/metrics.h"

namespace mtps {
namespace {

namespace fs = std::filesystem;

const char* const kFiles[] = {"sample_skeleton_train.csv", "common_features_train.csv",
                              "sample_skeleton_test.csv", "common_features_test.csv",
                              "ground_truth.json"};

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "/mtps_datagen_XXXXXX";
  char* dir = mkdtemp(pattern.data());
  CHECK(dir != nullptr) << "mkdtemp " << pattern;
  return dir;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Small options for fast tests: small vocabularies so ids repeat.
DatagenOptions SmallOptions(const std::string& dir, int64_t impressions, uint64_t seed) {
  DatagenOptions o;
  o.out_dir = dir;
  o.impressions = impressions;
  o.seed = seed;
  o.cvr = 0.2;  // enough conversions to measure
  o.num_users = 5000;
  o.num_items = 20000;
  o.num_categories = 300;
  o.num_shops = 3000;
  o.num_brands = 2000;
  o.num_intentions = 1000;
  return o;
}

// ---------------------------------------------------------------------------
// The test's own parser of the raw format.
// ---------------------------------------------------------------------------

struct Impression {
  int64_t sample_id = 0;
  int click = 0;
  int conversion = 0;
  std::vector<AliccpFeature> features;
};
struct Session {
  std::string index;
  std::vector<AliccpFeature> common;
  std::vector<Impression> impressions;
};

std::vector<std::string_view> SplitView(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t end = s.find(sep, start);
    out.push_back(
        s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

bool ParseUint(std::string_view s, uint64_t* v) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + static_cast<uint64_t>(c - '0');
  }
  *v = x;
  return true;
}

// feature_count + feature_list -> features, or false with *why.
bool ParseFeatures(std::string_view count_text, std::string_view list,
                   std::vector<AliccpFeature>* out, std::string* why) {
  uint64_t count = 0;
  if (!ParseUint(count_text, &count)) {
    *why = "bad feature_count '" + std::string(count_text) + "'";
    return false;
  }
  const std::vector<std::string_view> items = SplitView(list, '\x01');
  if (items.size() != count) {
    *why = "feature_count " + std::to_string(count) + " but " + std::to_string(items.size()) +
           " features";
    return false;
  }
  out->clear();
  for (std::string_view item : items) {
    const size_t a = item.find('\x02');
    const size_t b = item.find('\x03');
    if (a == std::string_view::npos || b == std::string_view::npos || b < a ||
        item.find('\x02', a + 1) != std::string_view::npos ||
        item.find('\x03', b + 1) != std::string_view::npos) {
      *why = "feature '" + std::string(item) + "' is not field 0x02 id 0x03 value";
      return false;
    }
    AliccpFeature f;
    if (!AliccpFieldFromName(item.substr(0, a), &f.field)) {
      *why = "unknown field '" + std::string(item.substr(0, a)) + "'";
      return false;
    }
    if (!ParseUint(item.substr(a + 1, b - a - 1), &f.id) || f.id == 0) {
      *why = "bad feature id in '" + std::string(item) + "'";
      return false;
    }
    const std::string value(item.substr(b + 1));
    char* end = nullptr;
    f.value = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0') {
      *why = "bad value in '" + std::string(item) + "'";
      return false;
    }
    out->push_back(f);
  }
  return true;
}

// Parses DIR/{sample_skeleton,common_features}_SPLIT.csv and checks the join
// contract: the skeleton's indexes come in contiguous runs, in the order of
// the common file's lines, one common line per index. "" or "file:line: why".
std::string ParseSplit(const std::string& dir, const std::string& split,
                       std::vector<Session>* sessions) {
  sessions->clear();
  const std::string common_name = "common_features_" + split + ".csv";
  const std::string skeleton_name = "sample_skeleton_" + split + ".csv";
  const std::string common_text = ReadAll(dir + "/" + common_name);
  const std::string skeleton_text = ReadAll(dir + "/" + skeleton_name);
  std::string why;
  std::set<std::string> indexes;
  // Common lines.
  {
    std::string_view text = common_text;
    if (!text.empty() && text.back() != '\n') return common_name + ": no final newline";
    int line_no = 0;
    for (std::string_view line : SplitView(text.substr(0, text.size() - 1), '\n')) {
      ++line_no;
      if (text.empty()) break;
      const std::string where = common_name + ":" + std::to_string(line_no) + ": ";
      const std::vector<std::string_view> cols = SplitView(line, ',');
      if (cols.size() != 3) return where + std::to_string(cols.size()) + " columns, want 3";
      Session s;
      s.index = std::string(cols[0]);
      if (s.index.empty()) return where + "empty common_feature_index";
      if (!indexes.insert(s.index).second) return where + "index " + s.index + " repeated";
      if (!ParseFeatures(cols[1], cols[2], &s.common, &why)) return where + why;
      sessions->push_back(std::move(s));
    }
  }
  // Skeleton lines.
  std::string_view text = skeleton_text;
  if (text.empty() || text.back() != '\n') return skeleton_name + ": empty or no final newline";
  size_t session = 0;
  bool started = false;
  int line_no = 0;
  for (std::string_view line : SplitView(text.substr(0, text.size() - 1), '\n')) {
    ++line_no;
    const std::string where = skeleton_name + ":" + std::to_string(line_no) + ": ";
    const std::vector<std::string_view> cols = SplitView(line, ',');
    if (cols.size() != 6) return where + std::to_string(cols.size()) + " columns, want 6";
    Impression imp;
    uint64_t id = 0, click = 0, conversion = 0;
    if (!ParseUint(cols[0], &id)) return where + "bad sample_id";
    if (static_cast<int>(id) != line_no) return where + "sample_id " + std::to_string(id);
    if (!ParseUint(cols[1], &click) || click > 1) return where + "bad click";
    if (!ParseUint(cols[2], &conversion) || conversion > 1) return where + "bad conversion";
    if (conversion > click) return where + "conversion without click";
    imp.sample_id = static_cast<int64_t>(id);
    imp.click = static_cast<int>(click);
    imp.conversion = static_cast<int>(conversion);
    if (!ParseFeatures(cols[4], cols[5], &imp.features, &why)) return where + why;
    const std::string index(cols[3]);
    if (!started || (*sessions)[session].index != index) {
      if (started) ++session;
      started = true;
      if (session >= sessions->size())
        return where + "index " + index + " has no common line left (order or missing)";
      if ((*sessions)[session].index != index)
        return where + "index " + index + " but the next common line is " +
               (*sessions)[session].index;
    }
    (*sessions)[session].impressions.push_back(std::move(imp));
  }
  if (session + 1 != sessions->size())
    return common_name + ": " + std::to_string(sessions->size() - session - 1) +
           " common lines without skeleton lines";
  return "";
}

// A number in ground_truth.json: the value of "key" inside the object "object".
double JsonValue(const std::string& json, const std::string& object, const std::string& key) {
  const size_t o = json.find("\"" + object + "\": {");
  if (o == std::string::npos) return std::nan("");
  const size_t end = json.find('}', o);
  const size_t k = json.find("\"" + key + "\": ", o);
  if (k == std::string::npos || k > end) return std::nan("");
  return std::strtod(json.c_str() + k + key.size() + 4, nullptr);
}

const AliccpFeature* Find(const std::vector<AliccpFeature>& features, AliccpField field) {
  for (const AliccpFeature& f : features)
    if (f.field == field) return &f;
  return nullptr;
}
int CountOf(const std::vector<AliccpFeature>& features, AliccpField field) {
  return static_cast<int>(
      std::count_if(features.begin(), features.end(),
                    [field](const AliccpFeature& f) { return f.field == field; }));
}

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// ---------------------------------------------------------------------------
// One 200k-impression data set, parsed once for the suite.
// ---------------------------------------------------------------------------

class DatagenDataTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir());
    options_ = new DatagenOptions(SmallOptions(*dir_, 200000, 7));
    Status s = GenerateAliccp(*options_);
    ASSERT_TRUE(s.ok()) << s;
    train_ = new std::vector<Session>;
    test_ = new std::vector<Session>;
    parse_error_ = new std::string(ParseSplit(*dir_, "train", train_));
    if (parse_error_->empty()) *parse_error_ = ParseSplit(*dir_, "test", test_);
    json_ = new std::string(ReadAll(*dir_ + "/ground_truth.json"));
    auto model = AliccpTruthModel::Create(*options_);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = new AliccpTruthModel(std::move(model).value());
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete options_;
    delete train_;
    delete test_;
    delete parse_error_;
    delete json_;
    delete model_;
  }
  void SetUp() override { ASSERT_EQ(*parse_error_, ""); }

  static std::string* dir_;
  static DatagenOptions* options_;
  static std::vector<Session>* train_;
  static std::vector<Session>* test_;
  static std::string* parse_error_;
  static std::string* json_;
  static AliccpTruthModel* model_;  // of options_
};
std::string* DatagenDataTest::dir_;
DatagenOptions* DatagenDataTest::options_;
std::vector<Session>* DatagenDataTest::train_;
std::vector<Session>* DatagenDataTest::test_;
std::string* DatagenDataTest::parse_error_;
std::string* DatagenDataTest::json_;
AliccpTruthModel* DatagenDataTest::model_;

struct Counts {
  int64_t impressions = 0, clicks = 0, conversions = 0, sessions = 0;
};
Counts CountOf(const std::vector<Session>& sessions) {
  Counts c;
  for (const Session& s : sessions) {
    ++c.sessions;
    for (const Impression& i : s.impressions) {
      ++c.impressions;
      c.clicks += i.click;
      c.conversions += i.conversion;
    }
  }
  return c;
}

TEST_F(DatagenDataTest, SplitSizesAndCountsInJsonMatchTheFiles) {
  const Counts train = CountOf(*train_), test = CountOf(*test_);
  EXPECT_EQ(train.impressions + test.impressions, options_->impressions);
  EXPECT_EQ(test.impressions, std::llround(options_->impressions * options_->test_fraction));
  EXPECT_GT(train.sessions, 100);
  EXPECT_GT(test.sessions, 100);
  EXPECT_EQ(JsonValue(*json_, "train", "impressions"), train.impressions);
  EXPECT_EQ(JsonValue(*json_, "train", "clicks"), train.clicks);
  EXPECT_EQ(JsonValue(*json_, "train", "conversions"), train.conversions);
  EXPECT_EQ(JsonValue(*json_, "train", "sessions"), train.sessions);
  EXPECT_EQ(JsonValue(*json_, "test", "impressions"), test.impressions);
  EXPECT_EQ(JsonValue(*json_, "test", "clicks"), test.clicks);
  EXPECT_EQ(JsonValue(*json_, "test", "conversions"), test.conversions);
  EXPECT_EQ(JsonValue(*json_, "test", "sessions"), test.sessions);
  // The mean session length is near the option (sessions are geometric).
  const double mean_length =
      static_cast<double>(train.impressions) / static_cast<double>(train.sessions);
  EXPECT_NEAR(mean_length, options_->session_mean, 0.1 * options_->session_mean);
  // Train and test indexes are distinct.
  std::set<std::string> train_indexes;
  for (const Session& s : *train_) train_indexes.insert(s.index);
  for (const Session& s : *test_) EXPECT_EQ(train_indexes.count(s.index), 0u) << s.index;
}

TEST_F(DatagenDataTest, RatesMatchTheOptions) {
  Counts all = CountOf(*train_);
  const Counts test = CountOf(*test_);
  all.impressions += test.impressions;
  all.clicks += test.clicks;
  all.conversions += test.conversions;
  const double ctr = static_cast<double>(all.clicks) / static_cast<double>(all.impressions);
  const double cvr = static_cast<double>(all.conversions) / static_cast<double>(all.clicks);
  EXPECT_NEAR(ctr, options_->ctr, 0.1 * options_->ctr);
  EXPECT_NEAR(cvr, options_->cvr, 0.1 * options_->cvr);
}

TEST_F(DatagenDataTest, LinesCarryTheAliccpFields) {
  const AliccpField kOnce[] = {AliccpField::k101, AliccpField::k121, AliccpField::k122,
                               AliccpField::k124, AliccpField::k125, AliccpField::k126,
                               AliccpField::k127, AliccpField::k128, AliccpField::k129};
  const AliccpField kHistories[] = {AliccpField::k109_14, AliccpField::k110_14,
                                    AliccpField::k127_14, AliccpField::k150_14};
  const AliccpField kItem[] = {AliccpField::k205, AliccpField::k206, AliccpField::k207,
                               AliccpField::k210, AliccpField::k216, AliccpField::k301};
  int64_t multi_valued = 0, counts_above_one = 0, history_fields = 0;
  for (const Session& s : *train_) {
    for (AliccpField f : kOnce) ASSERT_EQ(CountOf(s.common, f), 1) << s.index;
    for (AliccpField f : kHistories) {
      const int n = CountOf(s.common, f);
      ASSERT_GE(n, 1) << s.index;
      ++history_fields;
      multi_valued += n >= 2;
      std::set<uint64_t> ids;
      for (const AliccpFeature& h : s.common) {
        if (h.field != f) continue;
        EXPECT_TRUE(ids.insert(h.id).second) << "repeated history id in " << s.index;
        EXPECT_GE(h.value, 1) << s.index;
        EXPECT_EQ(h.value, std::floor(h.value)) << "history value is a count";
        counts_above_one += h.value > 1;
      }
    }
    for (const AliccpFeature& f : s.common) EXPECT_LT(static_cast<int>(f.field), 13);
    for (const Impression& imp : s.impressions) {
      for (AliccpField f : kItem) ASSERT_EQ(CountOf(imp.features, f), 1) << s.index;
      const AliccpFeature* position = Find(imp.features, AliccpField::k301);
      EXPECT_GE(position->id, 1u);
      EXPECT_LE(position->id, 3u);
      for (const AliccpFeature& f : imp.features) {
        EXPECT_GE(static_cast<int>(f.field), 13) << "user field in a skeleton line";
        if (static_cast<int>(f.field) < 19) {
          EXPECT_EQ(f.value, 1.0);  // plain ids; crosses (19..22) carry counts
        }
      }
    }
  }
  // Most history fields hold several ids, and counts above one occur.
  EXPECT_GT(multi_valued, history_fields / 2);
  EXPECT_GT(counts_above_one, history_fields / 2);
}

// A cross is present exactly when the item's category/shop/brand/intention
// is in the user's matching history; its id is that id, its value the count.
TEST_F(DatagenDataTest, CrossesMatchTheUserHistory) {
  struct Spec {
    AliccpField history, item, cross;
  };
  const Spec kSpecs[] = {{AliccpField::k109_14, AliccpField::k206, AliccpField::k508},
                         {AliccpField::k110_14, AliccpField::k207, AliccpField::k509},
                         {AliccpField::k127_14, AliccpField::k216, AliccpField::k702},
                         {AliccpField::k150_14, AliccpField::k210, AliccpField::k853}};
  int64_t crosses[4] = {0, 0, 0, 0};
  for (const Session& s : *train_) {
    for (const Impression& imp : s.impressions) {
      for (int c = 0; c < 4; ++c) {
        const uint64_t item_value = Find(imp.features, kSpecs[c].item)->id;
        double history_count = 0;
        for (const AliccpFeature& h : s.common)
          if (h.field == kSpecs[c].history && h.id == item_value) history_count = h.value;
        const AliccpFeature* cross = Find(imp.features, kSpecs[c].cross);
        ASSERT_EQ(CountOf(imp.features, kSpecs[c].cross), history_count > 0 ? 1 : 0)
            << s.index << " sample " << imp.sample_id;
        if (cross != nullptr) {
          EXPECT_EQ(cross->id, item_value);
          EXPECT_EQ(cross->value, history_count);
          ++crosses[c];
        }
      }
    }
  }
  for (int c = 0; c < 4; ++c) EXPECT_GT(crosses[c], 100) << "cross " << c;
}

// Users and items are consistent: the same user id always has the same
// profile and history, the same item id the same attributes.
TEST_F(DatagenDataTest, UsersAndItemsAreConsistentAcrossLines) {
  auto key = [](const std::vector<AliccpFeature>& fs, bool user) {
    std::string k;
    for (const AliccpFeature& f : fs) {
      if (user || (f.field != AliccpField::k205 && static_cast<int>(f.field) < 18))
        k += std::string(kAliccpFieldNames[static_cast<int>(f.field)]) + ":" +
             std::to_string(f.id) + "=" + std::to_string(f.value) + " ";
    }
    return k;
  };
  std::map<uint64_t, std::string> users, items;
  int64_t repeated_users = 0, repeated_items = 0;
  for (const auto* split : {train_, test_}) {
    for (const Session& s : *split) {
      const uint64_t user = Find(s.common, AliccpField::k101)->id;
      auto [it, inserted] = users.emplace(user, key(s.common, true));
      if (!inserted) {
        ++repeated_users;
        EXPECT_EQ(it->second, key(s.common, true)) << "user " << user;
      }
      for (const Impression& imp : s.impressions) {
        const uint64_t item = Find(imp.features, AliccpField::k205)->id;
        auto [jt, item_new] = items.emplace(item, key(imp.features, false));
        if (!item_new) {
          ++repeated_items;
          EXPECT_EQ(jt->second, key(imp.features, false)) << "item " << item;
        }
      }
    }
  }
  EXPECT_GT(repeated_users, 100);
  EXPECT_GT(repeated_items, 1000);
  // Zipf: the most frequent user id is 1 (rank 1 is the most popular).
  std::map<uint64_t, int64_t> user_sessions;
  for (const Session& s : *train_) ++user_sessions[Find(s.common, AliccpField::k101)->id];
  const auto top =
      std::max_element(user_sessions.begin(), user_sessions.end(),
                       [](const auto& a, const auto& b) { return a.second < b.second; });
  EXPECT_EQ(top->first, 1u);
}

struct Truth {
  std::vector<float> pctr, pcvr, pctcvr, click, conversion;
  std::vector<double> click_logit, conversion_logit;
};
Truth TruthOf(const AliccpTruthModel& model, const std::vector<Session>& sessions) {
  Truth t;
  for (const Session& s : sessions) {
    for (const Impression& imp : s.impressions) {
      const TruthLogits l = model.Logits(s.common, imp.features);
      const double pctr = Sigmoid(l.click), pcvr = Sigmoid(l.conversion);
      t.pctr.push_back(static_cast<float>(pctr));
      t.pcvr.push_back(static_cast<float>(pcvr));
      t.pctcvr.push_back(static_cast<float>(pctr * pcvr));
      t.click.push_back(static_cast<float>(imp.click));
      t.conversion.push_back(static_cast<float>(imp.conversion));
      t.click_logit.push_back(l.click);
      t.conversion_logit.push_back(l.conversion);
    }
  }
  return t;
}

// The AUCs in ground_truth.json are those of the model's probabilities,
// recomputed from the features of the test files, against their labels.
TEST_F(DatagenDataTest, GroundTruthAucsRecomputeFromTheFiles) {
  EXPECT_DOUBLE_EQ(JsonValue(*json_, "biases", "click"), model_->click_bias());
  EXPECT_DOUBLE_EQ(JsonValue(*json_, "biases", "conversion"), model_->conversion_bias());
  const Truth t = TruthOf(*model_, *test_);
  std::vector<float> clicked_pcvr, clicked_conversion;
  for (size_t i = 0; i < t.click.size(); ++i) {
    if (t.click[i] > 0.5f) {
      clicked_pcvr.push_back(t.pcvr[i]);
      clicked_conversion.push_back(t.conversion[i]);
    }
  }
  const double ctr = Auc(t.pctr, t.click);
  const double cvr = Auc(clicked_pcvr, clicked_conversion);
  const double ctcvr = Auc(t.pctcvr, t.conversion);  // conversion implies click
  EXPECT_DOUBLE_EQ(JsonValue(*json_, "test_auc", "ctr"), ctr);
  EXPECT_DOUBLE_EQ(JsonValue(*json_, "test_auc", "cvr"), cvr);
  EXPECT_DOUBLE_EQ(JsonValue(*json_, "test_auc", "ctcvr"), ctcvr);
  // Informative but not trivial.
  for (double auc : {ctr, cvr, ctcvr}) {
    EXPECT_GT(auc, 0.65);
    EXPECT_LT(auc, 0.97);
  }
}

// The labels are drawn from the true probabilities: per decile of pCTR the
// click rate matches the mean pCTR, and likewise for pCVR on clicks.
TEST_F(DatagenDataTest, LabelsAreCalibratedToTheTrueProbabilities) {
  const Truth t = TruthOf(*model_, *train_);
  auto check = [](std::vector<std::pair<float, float>> pairs, const char* what) {
    std::sort(pairs.begin(), pairs.end());
    const size_t bins = 5;
    for (size_t b = 0; b < bins; ++b) {
      double p = 0, y = 0;
      const size_t begin = pairs.size() * b / bins, end = pairs.size() * (b + 1) / bins;
      for (size_t i = begin; i < end; ++i) {
        p += pairs[i].first;
        y += pairs[i].second;
      }
      // Binomial: |observed - expected| < 5 standard deviations (+1).
      EXPECT_LT(std::abs(y - p), 5 * std::sqrt(p) + 1)
          << what << " bin " << b << " expected " << p << " observed " << y;
    }
  };
  std::vector<std::pair<float, float>> ctr_pairs, cvr_pairs;
  for (size_t i = 0; i < t.pctr.size(); ++i) {
    ctr_pairs.push_back({t.pctr[i], t.click[i]});
    if (t.click[i] > 0.5f) cvr_pairs.push_back({t.pcvr[i], t.conversion[i]});
  }
  check(ctr_pairs, "ctr");
  check(cvr_pairs, "cvr");
}

// Selection bias: click and conversion logits are positively correlated, so
// the impressions that get clicked have a higher true pCVR than the average
// impression (a CVR model fit on clicks overestimates on all impressions).
double Correlation(const std::vector<double>& x, const std::vector<double>& y) {
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i], my += y[i];
  mx /= x.size();
  my /= y.size();
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxy / std::sqrt(sxx * syy);
}

TEST_F(DatagenDataTest, ClickedImpressionsAreABiasedSampleForCvr) {
  const Truth t = TruthOf(*model_, *train_);
  EXPECT_GT(Correlation(t.click_logit, t.conversion_logit), 0.3);
  double all = 0, clicked = 0, clicks = 0, conversions = 0;
  for (size_t i = 0; i < t.pcvr.size(); ++i) {
    all += t.pcvr[i];
    if (t.click[i] > 0.5f) clicked += t.pcvr[i], clicks += 1, conversions += t.conversion[i];
  }
  all /= t.pcvr.size();
  clicked /= clicks;
  // The naive CVR estimate (conversions / clicks) is well above the mean true
  // pCVR over all impressions; the truth on clicks agrees with the naive one.
  const double naive = conversions / clicks;
  EXPECT_GT(naive, 1.2 * all) << "naive " << naive << " all " << all;
  EXPECT_NEAR(clicked, naive, 0.1 * naive);
}

// With cvr_ctr_correlation 0 the bias disappears.
TEST(DatagenTest, NoCorrelationNoSelectionBias) {
  const std::string dir = MakeTempDir();
  DatagenOptions o = SmallOptions(dir, 100000, 7);
  o.cvr_ctr_correlation = 0;
  ASSERT_TRUE(GenerateAliccp(o).ok());
  std::vector<Session> train;
  ASSERT_EQ(ParseSplit(dir, "train", &train), "");
  auto model = AliccpTruthModel::Create(o);
  ASSERT_TRUE(model.ok());
  const Truth t = TruthOf(*model, train);
  EXPECT_LT(std::abs(Correlation(t.click_logit, t.conversion_logit)), 0.05);
  fs::remove_all(dir);
}

// With signal_scale 0 the labels carry no information.
TEST(DatagenTest, NoSignalGivesChanceAucs) {
  const std::string dir = MakeTempDir();
  DatagenOptions o = SmallOptions(dir, 100000, 3);
  o.signal_scale = 0;
  o.ctr = 0.1;
  ASSERT_TRUE(GenerateAliccp(o).ok());
  const std::string json = ReadAll(dir + "/ground_truth.json");
  // All true probabilities are equal: every AUC is exactly one half.
  EXPECT_EQ(JsonValue(json, "test_auc", "ctr"), 0.5);
  EXPECT_EQ(JsonValue(json, "test_auc", "cvr"), 0.5);
  std::vector<Session> train;
  ASSERT_EQ(ParseSplit(dir, "train", &train), "");
  const Counts c = CountOf(train);
  EXPECT_NEAR(static_cast<double>(c.clicks) / c.impressions, 0.1, 0.01);
  fs::remove_all(dir);
}

TEST(DatagenTest, SameSeedSameBytesOtherSeedOtherBytes) {
  const std::string a = MakeTempDir(), b = MakeTempDir(), c = MakeTempDir();
  ASSERT_TRUE(GenerateAliccp(SmallOptions(a, 30000, 11)).ok());
  ASSERT_TRUE(GenerateAliccp(SmallOptions(b, 30000, 11)).ok());
  ASSERT_TRUE(GenerateAliccp(SmallOptions(c, 30000, 12)).ok());
  for (const char* file : kFiles) {
    const std::string x = ReadAll(a + "/" + file);
    EXPECT_FALSE(x.empty()) << file;
    EXPECT_TRUE(x == ReadAll(b + "/" + file)) << file << " differs for the same seed";
    EXPECT_FALSE(x == ReadAll(c + "/" + file)) << file << " equal for another seed";
  }
  for (const auto& d : {a, b, c}) fs::remove_all(d);
}

TEST(DatagenTest, OtherRatesAreMet) {
  const std::string dir = MakeTempDir();
  DatagenOptions o = SmallOptions(dir, 200000, 5);
  o.ctr = 0.1;
  o.cvr = 0.05;
  o.test_fraction = 0.5;
  o.session_mean = 5;
  ASSERT_TRUE(GenerateAliccp(o).ok());
  Counts all;
  for (const char* split : {"train", "test"}) {
    std::vector<Session> sessions;
    ASSERT_EQ(ParseSplit(dir, split, &sessions), "");
    const Counts c = CountOf(sessions);
    EXPECT_EQ(c.impressions, 100000) << split;
    all.impressions += c.impressions;
    all.clicks += c.clicks;
    all.conversions += c.conversions;
    all.sessions += c.sessions;
  }
  EXPECT_NEAR(static_cast<double>(all.clicks) / all.impressions, 0.1, 0.01);
  EXPECT_NEAR(static_cast<double>(all.conversions) / all.clicks, 0.05, 0.005);
  EXPECT_NEAR(static_cast<double>(all.impressions) / all.sessions, 5, 0.5);
  fs::remove_all(dir);
}

TEST(DatagenTest, BadOptionsAreRejectedByName) {
  const DatagenOptions good = SmallOptions("/nonexistent-never-written", 10, 1);
  ASSERT_TRUE(ValidateDatagenOptions(good).ok());
  struct Case {
    const char* name;
    void (*change)(DatagenOptions*);
  };
  const Case cases[] = {
      {"out_dir", [](DatagenOptions* o) { o->out_dir = ""; }},
      {"impressions", [](DatagenOptions* o) { o->impressions = 0; }},
      {"test_fraction", [](DatagenOptions* o) { o->test_fraction = 1; }},
      {"test_fraction", [](DatagenOptions* o) { o->test_fraction = -0.1; }},
      {"ctr", [](DatagenOptions* o) { o->ctr = 0; }},
      {"cvr", [](DatagenOptions* o) { o->cvr = 1.5; }},
      {"cvr", [](DatagenOptions* o) { o->cvr = std::nan(""); }},
      {"session_mean", [](DatagenOptions* o) { o->session_mean = 0.5; }},
      {"zipf_exponent", [](DatagenOptions* o) { o->zipf_exponent = 0; }},
      {"num_users", [](DatagenOptions* o) { o->num_users = 0; }},
      {"num_intentions", [](DatagenOptions* o) { o->num_intentions = -3; }},
      {"history_mean", [](DatagenOptions* o) { o->history_mean = 0; }},
      {"latent_dim", [](DatagenOptions* o) { o->latent_dim = 65; }},
      {"signal_scale", [](DatagenOptions* o) { o->signal_scale = -1; }},
      {"cvr_ctr_correlation", [](DatagenOptions* o) { o->cvr_ctr_correlation = 1.01; }},
  };
  for (const Case& c : cases) {
    DatagenOptions o = good;
    c.change(&o);
    const Status s = ValidateDatagenOptions(o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_EQ(s.message().rfind(c.name, 0), 0u) << s;
    EXPECT_EQ(GenerateAliccp(o).code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_FALSE(AliccpTruthModel::Create(o).ok()) << c.name;
  }
  EXPECT_FALSE(fs::exists("/nonexistent-never-written"));
}

TEST(DatagenTest, UnwritableDirectoryIsAnIoErrorNamingIt) {
  const std::string dir = MakeTempDir();
  const std::string file = dir + "/a_file";
  std::ofstream(file) << "x";
  const Status s = GenerateAliccp(SmallOptions(file + "/sub", 100, 1));
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s;
  EXPECT_NE(s.message().find(file + "/sub"), std::string::npos) << s;
  fs::remove_all(dir);
}

// ZipfSampler against the exact pmf k^-s / H(n, s), for a few (n, s).
TEST(ZipfSamplerTest, FrequenciesMatchThePmf) {
  struct Case {
    int64_t n;
    double s;
  };
  for (const Case& c :
       {Case{1000, 1.1}, Case{1000, 1.0}, Case{50, 0.5}, Case{1, 1.1}, Case{200000, 2.0}}) {
    const ZipfSampler zipf(c.n, c.s);
    std::mt19937_64 gen(42);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const int draws = 400000;
    std::map<int64_t, int64_t> freq;
    for (int i = 0; i < draws; ++i) {
      const int64_t k = zipf.Sample([&] { return u(gen); });
      ASSERT_GE(k, 1);
      ASSERT_LE(k, c.n);
      ++freq[k];
    }
    double norm = 0;
    for (int64_t k = 1; k <= c.n; ++k) norm += std::pow(static_cast<double>(k), -c.s);
    // Ranks 1..10 one by one, then ranks 11..n together.
    double tail_expected = 1.0;
    int64_t tail_observed = draws;
    for (int64_t k = 1; k <= std::min<int64_t>(10, c.n); ++k) {
      const double p = std::pow(static_cast<double>(k), -c.s) / norm;
      tail_expected -= p;
      tail_observed -= freq[k];
      const double sd = std::sqrt(draws * p * (1 - p));
      EXPECT_NEAR(freq[k], draws * p, 5 * sd + 1) << "n " << c.n << " s " << c.s << " k " << k;
    }
    const double sd = std::sqrt(draws * std::max(tail_expected, 0.0));
    EXPECT_NEAR(tail_observed, draws * tail_expected, 5 * sd + 1) << "n " << c.n << " s " << c.s;
  }
}

}  // namespace
}  // namespace mtps
