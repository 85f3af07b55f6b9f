// A generator of Ali-CCP raw-format data (sample_skeleton / common_features
// files, see README "Data formats") whose labels come from a known model, so
// the best achievable AUCs of a CTR, CVR and CTCVR model are known.
//
// The world: users and items with Zipf-distributed popularity over
// configurable vocabularies. A session is one user (one common_feature_index,
// one common_features line with the user's id, profile and history fields)
// seeing a run of impressions (contiguous skeleton lines with the item's id,
// category, shop, intention, brand, position and the cross fields that match
// the user's history). The hidden model (AliccpTruthModel) gives every
// (field, feature id) a seeded, hashed click effect and a conversion effect
// correlated with it, plus a low-rank user x item interaction that enters
// both; click ~ Bernoulli(sigmoid(click logit)), conversion given click ~
// Bernoulli(sigmoid(conversion logit)). Because the features that drive
// clicks also drive conversions, a CVR model trained on clicked impressions
// only sees a biased sample (the selection bias ESMM addresses).
//
// Everything is a pure function of the options (byte-identical output for the
// same options and seed); nothing here reads flags or the environment.
#ifndef MTPS_WORKER_DATA_DATAGEN_H_
#define MTPS_WORKER_DATA_DATAGEN_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace mtps {

// What to generate. Built by launcher/datagen_main.cc from its flags; checked
// by ValidateDatagenOptions.
struct DatagenOptions {
  std::string out_dir;      // created if missing
  int64_t impressions = 0;  // train + test skeleton lines
  uint64_t seed = 1;
  double test_fraction = 0.2;      // share of impressions in the test split, [0, 1)
  double ctr = 0.04;               // target clicks / impressions
  double cvr = 0.005;              // target conversions / clicks
  double session_mean = 20;        // mean impressions per common_feature_index, >= 1
  double zipf_exponent = 1.1;      // popularity of every id vocabulary, > 0
  int64_t num_users = 200000;      // field 101
  int64_t num_items = 500000;      // field 205
  int64_t num_categories = 5000;   // fields 206, 109_14, 508
  int64_t num_shops = 100000;      // fields 207, 110_14, 509
  int64_t num_brands = 50000;      // fields 216, 127_14, 702
  int64_t num_intentions = 20000;  // fields 210, 150_14, 853
  double history_mean = 8;         // mean distinct ids per user history field, >= 1
  int latent_dim = 8;              // rank of the user x item interaction, [0, 64]
  double signal_scale = 1.0;       // multiplies every hidden effect (0: labels are noise)
  // Correlation of each feature's conversion effect with its click effect,
  // [-1, 1]; 0 removes the selection bias.
  double cvr_ctr_correlation = 0.5;
};

// OK, or InvalidArgument naming the first bad option and why.
Status ValidateDatagenOptions(const DatagenOptions& options);

// The Ali-CCP field ids the generator writes, in line order. User side
// (common_features): 101 user id, 121..129 profile, then the multi-valued
// histories 109_14 (categories), 110_14 (shops), 127_14 (brands), 150_14
// (intentions), whose values are counts. Item side (sample_skeleton): 205 item
// id, 206 category, 207 shop, 210 intention, 216 brand, 301 position, and the
// crosses 508/509/702/853, present when the item's category/shop/brand/
// intention is in the user's history: feature id = that id, value = the count.
enum class AliccpField : uint8_t {
  k101,
  k121,
  k122,
  k124,
  k125,
  k126,
  k127,
  k128,
  k129,
  k109_14,
  k110_14,
  k127_14,
  k150_14,
  k205,
  k206,
  k207,
  k210,
  k216,
  k301,
  k508,
  k509,
  k702,
  k853,
};
inline constexpr int kAliccpNumFields = 23;
inline constexpr std::array<std::string_view, kAliccpNumFields> kAliccpFieldNames = {
    "101",    "121", "122", "124", "125", "126", "127", "128", "129", "109_14", "110_14", "127_14",
    "150_14", "205", "206", "207", "210", "216", "301", "508", "509", "702",    "853"};

// The field named `name` ("205"), or false if the generator has no such field.
bool AliccpFieldFromName(std::string_view name, AliccpField* field);

// One feature of a line: field, feature id (1-based within its field: ids of
// different fields may coincide, readers key on the pair), value (1 for plain
// ids, a count for histories and crosses).
struct AliccpFeature {
  AliccpField field;
  uint64_t id;
  double value;
};

// Logits of one impression under the hidden model, biases included.
struct TruthLogits {
  double click = 0;       // P(click) = sigmoid(click)
  double conversion = 0;  // P(conversion | click) = sigmoid(conversion)
};

// The hidden model. Scores depend only on the features as written to the
// files, so a reader of the files can recompute every true probability.
// Immutable after Create; thread-safe.
class AliccpTruthModel {
 public:
  // Derives the hidden effects from options.seed and solves the two biases
  // so that, on a calibration sample drawn like the data, the mean P(click)
  // is options.ctr and the click-weighted mean P(conversion | click) is
  // options.cvr. Deterministic. InvalidArgument for bad options.
  static StatusOr<AliccpTruthModel> Create(const DatagenOptions& options);

  // The logits of an impression from its user features (common_features
  // line) and item features (sample_skeleton line). Fields in the wrong
  // place are ignored.
  TruthLogits Logits(const std::vector<AliccpFeature>& common,
                     const std::vector<AliccpFeature>& skeleton) const;

  double click_bias() const { return click_bias_; }
  double conversion_bias() const { return conversion_bias_; }

  // Internal: the per-user part of Logits, computed once per session.
  struct UserTerms {
    double click = 0;
    double conversion = 0;
    std::array<double, 64> u{};       // click interaction vector
    std::array<double, 64> u_conv{};  // conversion-only interaction vector
  };
  void ScoreUser(const std::vector<AliccpFeature>& common, UserTerms* terms) const;
  TruthLogits ScoreItem(const UserTerms& user, const std::vector<AliccpFeature>& skeleton) const;

 private:
  explicit AliccpTruthModel(const DatagenOptions& options);

  // Click and conversion effect of (field, id), zero-mean, field's scale.
  void Effects(AliccpField field, uint64_t id, double* click, double* conversion) const;

  uint64_t key_;  // mixed seed
  int latent_dim_;
  double scale_;
  double rho_;       // cvr_ctr_correlation
  double rho_rest_;  // sqrt(1 - rho^2)
  double latent_sd_;
  double click_bias_ = 0;
  double conversion_bias_ = 0;
};

// Zipf(exponent) over ranks 1..n, P(k) proportional to k^-exponent, by
// rejection-inversion (Hoermann & Derflinger 1996): O(1) memory and time for
// any n. Immutable; thread-safe. `uniform` must return doubles in [0, 1).
class ZipfSampler {
 public:
  ZipfSampler(int64_t n, double exponent);

  template <typename Uniform>
  int64_t Sample(Uniform&& uniform) const {
    for (;;) {
      const double u = h_integral_n_ + uniform() * (h_integral_x1_ - h_integral_n_);
      const double x = HIntegralInverse(u);
      int64_t k = static_cast<int64_t>(x + 0.5);
      if (k < 1) k = 1;
      if (k > n_) k = n_;
      if (k - x <= s_ || u >= HIntegral(k + 0.5) - H(static_cast<double>(k))) return k;
    }
  }

  int64_t n() const { return n_; }

 private:
  double H(double x) const;
  double HIntegral(double x) const;
  double HIntegralInverse(double x) const;

  int64_t n_;
  double exponent_;
  double h_integral_x1_;
  double h_integral_n_;
  double s_;
};

// What GenerateAliccp wrote (also in DIR/ground_truth.json).
struct DatagenSplitCounts {
  int64_t impressions = 0;
  int64_t clicks = 0;
  int64_t conversions = 0;
  int64_t sessions = 0;
};
struct DatagenReport {
  DatagenSplitCounts train;
  DatagenSplitCounts test;
  double click_bias = 0;
  double conversion_bias = 0;
  // AUCs of the true probabilities on the test split (NaN when a class is
  // absent): ctr = P(click) vs click over all impressions, cvr =
  // P(conversion | click) vs conversion over clicked impressions, ctcvr =
  // P(click) * P(conversion | click) vs click AND conversion over all.
  double test_auc_ctr = 0;
  double test_auc_cvr = 0;
  double test_auc_ctcvr = 0;
};

// Writes DIR/sample_skeleton_{train,test}.csv, DIR/common_features_{train,
// test}.csv and DIR/ground_truth.json. Both files of a split list the
// sessions' common_feature_index in the same order, one common line per
// index, the skeleton lines of an index contiguous. InvalidArgument for bad
// options, IoError naming the file for a write failure.
StatusOr<DatagenReport> GenerateAliccpWithReport(const DatagenOptions& options);
Status GenerateAliccp(const DatagenOptions& options);

}  // namespace mtps

#endif  // MTPS_WORKER_DATA_DATAGEN_H_
