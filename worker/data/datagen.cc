// The Ali-CCP data generator with a known ground truth (see datagen.h).
#include "worker/data/datagen.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>

#include "common/base/file_util.h"
#include "common/base/hash.h"
#include "common/base/json_file.h"
#include "common/eval/metrics.h"

namespace mtps {
namespace {

// ---------------------------------------------------------------------------
// Randomness. Every draw is either from the sequential generator of a run
// (Xoshiro256ss) or a pure function of (seed, what, id) (HashKey), so the
// same options give the same bytes.
// ---------------------------------------------------------------------------

// xoshiro256** (Blackman & Vigna), seeded through SplitMix64.
class Xoshiro256ss {
 public:
  explicit Xoshiro256ss(uint64_t seed) {
    for (uint64_t& word : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      word = Mix64(seed);
    }
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// SplitMix64 as a generator: cheap to seed, for short hashed streams (the
// attributes of one item, the history of one user).
class SplitMix {
 public:
  explicit SplitMix(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return Mix64(state_);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// A 64-bit hash of (key, what, id).
inline uint64_t HashKey(uint64_t key, uint64_t what, uint64_t id) {
  return Mix64(Mix64(key ^ Mix64(what)) ^ id);
}

// An approximately standard normal number from 64 hashed bits: the
// Irwin-Hall sum of four 16-bit uniforms, standardised (bounded by
// +-3.46; cheap and the same on every platform).
inline double GaussianOf(uint64_t h) {
  const double sum =
      static_cast<double>((h & 0xffff) + ((h >> 16) & 0xffff) + ((h >> 32) & 0xffff) + (h >> 48)) +
      2.0;  // + 4 * 0.5: centre every 16-bit value in its bin
  constexpr double kSqrt3 = 1.7320508075688772;
  return (sum * (1.0 / 65536.0) - 2.0) * kSqrt3;  // variance 4/12 -> 1
}

inline double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// ---------------------------------------------------------------------------
// The hidden model's constants (all multiplied by signal_scale).
// ---------------------------------------------------------------------------

// Standard deviation of each field's per-id effects; for the histories and
// crosses it multiplies log1p(count).
constexpr double kFieldScale[kAliccpNumFields] = {
    0.40,  // 101 user id
    0.15,  // 121 profile
    0.15,  // 122 group
    0.10,  // 124 gender
    0.15,  // 125 age
    0.10,  // 126 consumption
    0.10,  // 127 consumption
    0.10,  // 128 occupation
    0.10,  // 129 geography
    0.08,  // 109_14 category history
    0.08,  // 110_14 shop history
    0.08,  // 127_14 brand history
    0.08,  // 150_14 intention history
    0.40,  // 205 item id
    0.30,  // 206 category
    0.30,  // 207 shop
    0.20,  // 210 intention
    0.20,  // 216 brand
    0.00,  // 301 position (kPositionSlope instead)
    0.10,  // 508 category cross
    0.10,  // 509 shop cross
    0.10,  // 702 brand cross
    0.10,  // 853 intention cross
};
// A cross (the item's category/shop/... is in the user's history) raises the
// click logit by this much times log1p(count) on average.
constexpr double kCrossMean = 0.3;
// Click logit change per position further down (click only: position makes
// people click, not buy).
constexpr double kPositionSlope = -0.3;
// Standard deviation of <u, v> for a standard-normal-ish latent pair.
constexpr double kInteractionSd = 0.5;
constexpr int kMaxLatentDim = 64;
constexpr int kNumPositions = 3;
// Cardinalities of the profile fields 121, 122, 124..129 (as in the release).
constexpr int kProfileFields = 8;
constexpr AliccpField kProfileField[kProfileFields] = {
    AliccpField::k121, AliccpField::k122, AliccpField::k124, AliccpField::k125,
    AliccpField::k126, AliccpField::k127, AliccpField::k128, AliccpField::k129};
constexpr uint64_t kProfileCardinality[kProfileFields] = {98, 13, 2, 7, 3, 3, 2, 4};
// History field, the item field it matches and the cross it yields.
struct CrossSpec {
  AliccpField history;
  AliccpField item;
  AliccpField cross;
};
constexpr int kNumCrosses = 4;
constexpr CrossSpec kCrosses[kNumCrosses] = {
    {AliccpField::k109_14, AliccpField::k206, AliccpField::k508},
    {AliccpField::k110_14, AliccpField::k207, AliccpField::k509},
    {AliccpField::k127_14, AliccpField::k216, AliccpField::k702},
    {AliccpField::k150_14, AliccpField::k210, AliccpField::k853},
};
constexpr int kMaxHistoryCount = 30;
constexpr int kCalibrationImpressions = 200000;

// `what` values of HashKey (beyond the per-field effect streams).
constexpr uint64_t kWhatEffect = 1000;      // + 4 * field + stream
constexpr uint64_t kWhatLatent = 2000;      // + 256 * field + component
constexpr uint64_t kWhatAttribute = 30000;  // + field
constexpr uint64_t kWhatIndex = 40000;

int FieldIndex(AliccpField f) { return static_cast<int>(f); }

}  // namespace

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

Status ValidateDatagenOptions(const DatagenOptions& o) {
  auto bad = [](const std::string& what) { return Status::InvalidArgument(what); };
  if (o.out_dir.empty()) return bad("out_dir: must name a directory");
  if (o.impressions < 1)
    return bad("impressions: must be at least 1, got " + std::to_string(o.impressions));
  if (!(o.test_fraction >= 0 && o.test_fraction < 1))
    return bad("test_fraction: must be in [0, 1), got " + std::to_string(o.test_fraction));
  if (!(o.ctr > 0 && o.ctr < 1)) return bad("ctr: must be in (0, 1), got " + std::to_string(o.ctr));
  if (!(o.cvr > 0 && o.cvr < 1)) return bad("cvr: must be in (0, 1), got " + std::to_string(o.cvr));
  if (!(o.session_mean >= 1 && o.session_mean <= 1e6))
    return bad("session_mean: must be in [1, 1e6], got " + std::to_string(o.session_mean));
  if (!(o.zipf_exponent > 0 && o.zipf_exponent <= 10))
    return bad("zipf_exponent: must be in (0, 10], got " + std::to_string(o.zipf_exponent));
  const std::pair<const char*, int64_t> vocabs[] = {
      {"num_users", o.num_users},           {"num_items", o.num_items},
      {"num_categories", o.num_categories}, {"num_shops", o.num_shops},
      {"num_brands", o.num_brands},         {"num_intentions", o.num_intentions}};
  for (const auto& [name, size] : vocabs) {
    if (size < 1 || size > (int64_t{1} << 40))
      return bad(std::string(name) + ": must be in [1, 2^40], got " + std::to_string(size));
  }
  if (!(o.history_mean >= 1 && o.history_mean <= 1000))
    return bad("history_mean: must be in [1, 1000], got " + std::to_string(o.history_mean));
  if (o.latent_dim < 0 || o.latent_dim > kMaxLatentDim)
    return bad("latent_dim: must be in [0, 64], got " + std::to_string(o.latent_dim));
  if (!(o.signal_scale >= 0 && o.signal_scale <= 100))
    return bad("signal_scale: must be in [0, 100], got " + std::to_string(o.signal_scale));
  if (!(o.cvr_ctr_correlation >= -1 && o.cvr_ctr_correlation <= 1))
    return bad("cvr_ctr_correlation: must be in [-1, 1], got " +
               std::to_string(o.cvr_ctr_correlation));
  return Status::OK();
}

bool AliccpFieldFromName(std::string_view name, AliccpField* field) {
  for (int i = 0; i < kAliccpNumFields; ++i) {
    if (kAliccpFieldNames[i] == name) {
      *field = static_cast<AliccpField>(i);
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// ZipfSampler (rejection-inversion, after Apache Commons Math's
// ZipfRejectionInversionSampler).
// ---------------------------------------------------------------------------

namespace {
// log1p(x) / x, continuous at 0.
double Helper1(double x) {
  return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}
// expm1(x) / x, continuous at 0.
double Helper2(double x) {
  return std::abs(x) > 1e-8 ? std::expm1(x) / x
                            : 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
}
}  // namespace

ZipfSampler::ZipfSampler(int64_t n, double exponent) : n_(n), exponent_(exponent) {
  CHECK_GE(n, 1);
  CHECK_GT(exponent, 0);
  h_integral_x1_ = HIntegral(1.5) - 1.0;
  h_integral_n_ = HIntegral(static_cast<double>(n) + 0.5);
  s_ = 2.0 - HIntegralInverse(HIntegral(2.5) - H(2.0));
}

double ZipfSampler::H(double x) const { return std::exp(-exponent_ * std::log(x)); }

double ZipfSampler::HIntegral(double x) const {
  const double log_x = std::log(x);
  return Helper2((1.0 - exponent_) * log_x) * log_x;
}

double ZipfSampler::HIntegralInverse(double x) const {
  double t = x * (1.0 - exponent_);
  if (t < -1.0) t = -1.0;  // numerical safety
  return std::exp(Helper1(t) * x);
}

// ---------------------------------------------------------------------------
// AliccpTruthModel
// ---------------------------------------------------------------------------

AliccpTruthModel::AliccpTruthModel(const DatagenOptions& o)
    : key_(Mix64(o.seed ^ 0x6d74707364617461ULL)),  // "mtpsdata"
      latent_dim_(o.latent_dim),
      scale_(o.signal_scale),
      rho_(o.cvr_ctr_correlation),
      rho_rest_(std::sqrt(std::max(0.0, 1.0 - o.cvr_ctr_correlation * o.cvr_ctr_correlation))),
      // k products of two N(0, sd^2) have variance k sd^4; <u, v> scales with
      // signal_scale like every other effect.
      latent_sd_(o.latent_dim > 0 ? std::sqrt(o.signal_scale * kInteractionSd /
                                              std::sqrt(static_cast<double>(o.latent_dim)))
                                  : 0.0) {}

void AliccpTruthModel::Effects(AliccpField field, uint64_t id, double* click,
                               double* conversion) const {
  const int f = FieldIndex(field);
  const double sd = kFieldScale[f] * scale_;
  const double g0 = GaussianOf(HashKey(key_, kWhatEffect + 4 * f, id));
  const double g1 = GaussianOf(HashKey(key_, kWhatEffect + 4 * f + 1, id));
  *click = sd * g0;
  *conversion = sd * (rho_ * g0 + rho_rest_ * g1);
}

void AliccpTruthModel::ScoreUser(const std::vector<AliccpFeature>& common, UserTerms* terms) const {
  terms->click = 0;
  terms->conversion = 0;
  std::fill(terms->u.begin(), terms->u.end(), 0.0);
  std::fill(terms->u_conv.begin(), terms->u_conv.end(), 0.0);
  for (const AliccpFeature& feature : common) {
    double click = 0, conversion = 0;
    switch (feature.field) {
      case AliccpField::k101: {
        Effects(feature.field, feature.id, &click, &conversion);
        const uint64_t what = kWhatLatent + 256 * FieldIndex(feature.field);
        for (int j = 0; j < latent_dim_; ++j) {
          terms->u[j] = latent_sd_ * GaussianOf(HashKey(key_, what + j, feature.id));
          terms->u_conv[j] =
              latent_sd_ * GaussianOf(HashKey(key_, what + kMaxLatentDim + j, feature.id));
        }
        break;
      }
      case AliccpField::k121:
      case AliccpField::k122:
      case AliccpField::k124:
      case AliccpField::k125:
      case AliccpField::k126:
      case AliccpField::k127:
      case AliccpField::k128:
      case AliccpField::k129:
        Effects(feature.field, feature.id, &click, &conversion);
        break;
      case AliccpField::k109_14:
      case AliccpField::k110_14:
      case AliccpField::k127_14:
      case AliccpField::k150_14: {
        Effects(feature.field, feature.id, &click, &conversion);
        const double weight = std::log1p(feature.value);
        click *= weight;
        conversion *= weight;
        break;
      }
      default:
        break;  // item-side field in the common line: not part of the model
    }
    terms->click += click;
    terms->conversion += conversion;
  }
}

TruthLogits AliccpTruthModel::ScoreItem(const UserTerms& user,
                                        const std::vector<AliccpFeature>& skeleton) const {
  double click = 0, conversion = 0;
  double dot = 0, dot_conv = 0;
  for (const AliccpFeature& feature : skeleton) {
    double c = 0, v = 0;
    switch (feature.field) {
      case AliccpField::k205: {
        Effects(feature.field, feature.id, &c, &v);
        const uint64_t what = kWhatLatent + 256 * FieldIndex(feature.field);
        for (int j = 0; j < latent_dim_; ++j) {
          dot += user.u[j] * latent_sd_ * GaussianOf(HashKey(key_, what + j, feature.id));
          dot_conv += user.u_conv[j] * latent_sd_ *
                      GaussianOf(HashKey(key_, what + kMaxLatentDim + j, feature.id));
        }
        break;
      }
      case AliccpField::k206:
      case AliccpField::k207:
      case AliccpField::k210:
      case AliccpField::k216:
        Effects(feature.field, feature.id, &c, &v);
        break;
      case AliccpField::k301:
        c = kPositionSlope * scale_ * (static_cast<double>(feature.id) - 1.0);
        break;
      case AliccpField::k508:
      case AliccpField::k509:
      case AliccpField::k702:
      case AliccpField::k853: {
        Effects(feature.field, feature.id, &c, &v);
        const double weight = std::log1p(feature.value);
        c = (kCrossMean * scale_ + c) * weight;
        v = (rho_ * kCrossMean * scale_ + v) * weight;
        break;
      }
      default:
        break;  // user-side field in the skeleton line: not part of the model
    }
    click += c;
    conversion += v;
  }
  TruthLogits logits;
  logits.click = click_bias_ + user.click + click + dot;
  logits.conversion =
      conversion_bias_ + user.conversion + conversion + rho_ * dot + rho_rest_ * dot_conv;
  return logits;
}

TruthLogits AliccpTruthModel::Logits(const std::vector<AliccpFeature>& common,
                                     const std::vector<AliccpFeature>& skeleton) const {
  UserTerms user;
  ScoreUser(common, &user);
  return ScoreItem(user, skeleton);
}

// ---------------------------------------------------------------------------
// The world: users, items, sessions.
// ---------------------------------------------------------------------------

namespace {

// Draws sessions and impressions. Immutable apart from the generator passed
// in; one per run.
class World {
 public:
  explicit World(const DatagenOptions& o)
      : key_(Mix64(o.seed ^ 0x776f726c64ULL)),  // "world"
        history_mean_(o.history_mean),
        session_continue_(1.0 - 1.0 / o.session_mean),
        users_(o.num_users, o.zipf_exponent),
        items_(o.num_items, o.zipf_exponent),
        categories_(o.num_categories, o.zipf_exponent),
        shops_(o.num_shops, o.zipf_exponent),
        brands_(o.num_brands, o.zipf_exponent),
        intentions_(o.num_intentions, o.zipf_exponent) {}

  int64_t DrawUser(Xoshiro256ss* rng) const {
    return users_.Sample([rng] { return rng->Uniform(); });
  }

  // Impressions in a session: 1 + Geometric, mean session_mean.
  int64_t DrawSessionLength(Xoshiro256ss* rng) const {
    if (session_continue_ <= 0) return 1;
    const double u = 1.0 - rng->Uniform();  // (0, 1]
    const double extra = std::floor(std::log(u) / std::log(session_continue_));
    return 1 + static_cast<int64_t>(std::min(extra, 1e12));
  }

  // The common features of `user` (a pure function of the user id).
  // history_begin[c]/history_end[c] delimit kCrosses[c].history in *common.
  void MakeUser(int64_t user, std::vector<AliccpFeature>* common, int* history_begin,
                int* history_end) const {
    common->clear();
    const uint64_t id = static_cast<uint64_t>(user);
    common->push_back({AliccpField::k101, id, 1.0});
    for (int p = 0; p < kProfileFields; ++p) {
      const uint64_t h = HashKey(key_, kWhatAttribute + FieldIndex(kProfileField[p]), id);
      common->push_back({kProfileField[p], 1 + h % kProfileCardinality[p], 1.0});
    }
    for (int c = 0; c < kNumCrosses; ++c) {
      SplitMix rng(HashKey(key_, kWhatAttribute + FieldIndex(kCrosses[c].history), id));
      const ZipfSampler& vocab = VocabOf(kCrosses[c].item);
      const int64_t n = 1 + static_cast<int64_t>(rng.Uniform() * (2 * history_mean_ - 1));
      history_begin[c] = static_cast<int>(common->size());
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t item = static_cast<uint64_t>(vocab.Sample([&rng] { return rng.Uniform(); }));
        // Count: 1 + Geometric(1/2), capped.
        const int count =
            1 + std::min(kMaxHistoryCount - 1, __builtin_ctzll(rng.Next() | (1ULL << 63)));
        bool seen = false;
        for (size_t k = history_begin[c]; k < common->size(); ++k) {
          if ((*common)[k].id == item) {
            (*common)[k].value = std::min<double>(kMaxHistoryCount, (*common)[k].value + count);
            seen = true;
            break;
          }
        }
        if (!seen) common->push_back({kCrosses[c].history, item, static_cast<double>(count)});
      }
      history_end[c] = static_cast<int>(common->size());
    }
  }

  // The skeleton features of one impression of the session's user.
  void MakeImpression(Xoshiro256ss* rng, const std::vector<AliccpFeature>& common,
                      const int* history_begin, const int* history_end,
                      std::vector<AliccpFeature>* skeleton) const {
    skeleton->clear();
    const uint64_t item = static_cast<uint64_t>(items_.Sample([rng] { return rng->Uniform(); }));
    skeleton->push_back({AliccpField::k205, item, 1.0});
    uint64_t attribute[kNumCrosses];
    for (int c = 0; c < kNumCrosses; ++c) {
      const AliccpField field = kCrosses[c].item;
      SplitMix attr_rng(HashKey(key_, kWhatAttribute + FieldIndex(field), item));
      attribute[c] =
          static_cast<uint64_t>(VocabOf(field).Sample([&attr_rng] { return attr_rng.Uniform(); }));
    }
    // Line order: 206 category, 207 shop, 210 intention, 216 brand.
    skeleton->push_back({AliccpField::k206, attribute[0], 1.0});
    skeleton->push_back({AliccpField::k207, attribute[1], 1.0});
    skeleton->push_back({AliccpField::k210, attribute[3], 1.0});
    skeleton->push_back({AliccpField::k216, attribute[2], 1.0});
    skeleton->push_back({AliccpField::k301, 1 + rng->Next() % kNumPositions, 1.0});
    for (int c = 0; c < kNumCrosses; ++c) {
      for (int k = history_begin[c]; k < history_end[c]; ++k) {
        if (common[k].id == attribute[c]) {
          skeleton->push_back({kCrosses[c].cross, attribute[c], common[k].value});
          break;
        }
      }
    }
  }

  uint64_t SessionIndex(int64_t session) const {
    return HashKey(key_, kWhatIndex, static_cast<uint64_t>(session));
  }

 private:
  const ZipfSampler& VocabOf(AliccpField item_field) const {
    switch (item_field) {
      case AliccpField::k206:
        return categories_;
      case AliccpField::k207:
        return shops_;
      case AliccpField::k216:
        return brands_;
      case AliccpField::k210:
        return intentions_;
      default:
        LOG(FATAL) << "no vocabulary for field " << FieldIndex(item_field);
        return categories_;
    }
  }

  uint64_t key_;
  double history_mean_;
  double session_continue_;
  ZipfSampler users_, items_, categories_, shops_, brands_, intentions_;
};

// Bisection for the b with mean(f(b)) = target, f increasing in b.
template <typename MeanOf>
double SolveBias(MeanOf mean_of, double target) {
  double lo = -50, hi = 50;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (mean_of(mid) < target ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

StatusOr<AliccpTruthModel> AliccpTruthModel::Create(const DatagenOptions& options) {
  MTPS_RETURN_IF_ERROR(ValidateDatagenOptions(options));
  AliccpTruthModel model(options);
  // Calibration sample: sessions drawn like the data, from their own stream.
  World world(options);
  Xoshiro256ss rng(Mix64(options.seed ^ 0x63616c6962ULL));  // "calib"
  std::vector<double> click_raw, conversion_raw;
  click_raw.reserve(kCalibrationImpressions);
  conversion_raw.reserve(kCalibrationImpressions);
  std::vector<AliccpFeature> common, skeleton;
  int history_begin[kNumCrosses], history_end[kNumCrosses];
  UserTerms user;
  while (static_cast<int>(click_raw.size()) < kCalibrationImpressions) {
    world.MakeUser(world.DrawUser(&rng), &common, history_begin, history_end);
    model.ScoreUser(common, &user);
    const int64_t length = std::min<int64_t>(world.DrawSessionLength(&rng),
                                             kCalibrationImpressions - click_raw.size());
    for (int64_t i = 0; i < length; ++i) {
      world.MakeImpression(&rng, common, history_begin, history_end, &skeleton);
      const TruthLogits logits = model.ScoreItem(user, skeleton);  // biases still 0
      click_raw.push_back(logits.click);
      conversion_raw.push_back(logits.conversion);
    }
  }
  const double n = static_cast<double>(click_raw.size());
  model.click_bias_ = SolveBias(
      [&](double b) {
        double sum = 0;
        for (double s : click_raw) sum += Sigmoid(b + s);
        return sum / n;
      },
      options.ctr);
  std::vector<double> click_probability(click_raw.size());
  double click_sum = 0;
  for (size_t i = 0; i < click_raw.size(); ++i) {
    click_probability[i] = Sigmoid(model.click_bias_ + click_raw[i]);
    click_sum += click_probability[i];
  }
  model.conversion_bias_ = SolveBias(
      [&](double b) {
        double sum = 0;
        for (size_t i = 0; i < conversion_raw.size(); ++i)
          sum += click_probability[i] * Sigmoid(b + conversion_raw[i]);
        return sum / click_sum;
      },
      options.cvr);
  return model;
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

namespace {

// A file written through one large buffer; the first error sticks and is
// returned by Flush/Close naming the file. Owns the FILE. Not thread-safe.
class BufferedFile {
 public:
  static constexpr size_t kBufferSize = size_t{4} << 20;

  BufferedFile() { buffer_.reserve(kBufferSize + 4096); }
  ~BufferedFile() {
    if (file_ != nullptr) std::fclose(file_);
  }
  BufferedFile(const BufferedFile&) = delete;
  BufferedFile& operator=(const BufferedFile&) = delete;

  Status Open(const std::string& path) {
    path_ = path;
    file_ = std::fopen(path.c_str(), "wb");
    if (file_ == nullptr) return Status::IoError(path + ": cannot create: " + std::strerror(errno));
    return Status::OK();
  }

  void Char(char c) { buffer_.push_back(c); }
  void Text(std::string_view s) { buffer_.append(s.data(), s.size()); }
  void Uint(uint64_t v) {
    char digits[24];
    const auto result = std::to_chars(digits, digits + sizeof(digits), v);
    buffer_.append(digits, result.ptr);
  }
  void Hex16(uint64_t v) {
    static constexpr char kHex[] = "0123456789abcdef";
    char digits[16];
    for (int i = 15; i >= 0; --i, v >>= 4) digits[i] = kHex[v & 0xf];
    buffer_.append(digits, 16);
  }
  // Writes the buffer out once it is full.
  Status MaybeFlush() { return buffer_.size() >= kBufferSize ? Flush() : Status::OK(); }
  Status Flush() {
    if (!buffer_.empty() && std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size())
      return Status::IoError(path_ + ": write failed: " + std::strerror(errno));
    buffer_.clear();
    return Status::OK();
  }
  Status Close() {
    MTPS_RETURN_IF_ERROR(Flush());
    std::FILE* file = file_;
    file_ = nullptr;
    if (std::fclose(file) != 0)
      return Status::IoError(path_ + ": close failed: " + std::strerror(errno));
    return Status::OK();
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  std::string buffer_;
};

// feature_count,feature_list of a line.
void WriteFeatures(const std::vector<AliccpFeature>& features, BufferedFile* out) {
  out->Uint(features.size());
  out->Char(',');
  for (size_t i = 0; i < features.size(); ++i) {
    if (i > 0) out->Char('\x01');
    out->Text(kAliccpFieldNames[FieldIndex(features[i].field)]);
    out->Char('\x02');
    out->Uint(features[i].id);
    out->Char('\x03');
    out->Uint(static_cast<uint64_t>(features[i].value));  // ids 1, counts: integers
  }
  out->Char('\n');
}

// The true probabilities and labels of the test split.
struct TestRecord {
  std::vector<float> pctr, pcvr, pctcvr, click, conversion, click_and_conversion;
};

Json SplitJson(const DatagenSplitCounts& c) {
  Json j;
  j["impressions"] = c.impressions;
  j["clicks"] = c.clicks;
  j["conversions"] = c.conversions;
  j["sessions"] = c.sessions;
  return j;
}

// ground_truth.json (NaN metrics, e.g. of an absent class, are null).
Json GroundTruthJson(const DatagenOptions& o, const DatagenReport& r, const TestRecord& test) {
  std::vector<float> clicked_pcvr, clicked_conversion;
  double pcvr_all = 0, pcvr_clicked = 0;
  for (size_t i = 0; i < test.pcvr.size(); ++i) {
    pcvr_all += test.pcvr[i];
    if (test.click[i] > 0.5f) {
      clicked_pcvr.push_back(test.pcvr[i]);
      clicked_conversion.push_back(test.conversion[i]);
      pcvr_clicked += test.pcvr[i];
    }
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto mean = [nan](double sum, size_t n) { return n > 0 ? sum / static_cast<double>(n) : nan; };
  auto logloss = [nan](const std::vector<float>& s, const std::vector<float>& l) {
    return s.empty() ? nan : LogLoss(s, l);
  };
  Json options;
  options["impressions"] = o.impressions;
  options["seed"] = o.seed;
  options["test_fraction"] = o.test_fraction;
  options["ctr"] = o.ctr;
  options["cvr"] = o.cvr;
  options["session_mean"] = o.session_mean;
  options["zipf_exponent"] = o.zipf_exponent;
  options["num_users"] = o.num_users;
  options["num_items"] = o.num_items;
  options["num_categories"] = o.num_categories;
  options["num_shops"] = o.num_shops;
  options["num_brands"] = o.num_brands;
  options["num_intentions"] = o.num_intentions;
  options["history_mean"] = o.history_mean;
  options["latent_dim"] = o.latent_dim;
  options["signal_scale"] = o.signal_scale;
  options["cvr_ctr_correlation"] = o.cvr_ctr_correlation;
  Json scales = Json::object();
  for (int f = 0; f < kAliccpNumFields; ++f) {
    if (kFieldScale[f] == 0) continue;
    scales[std::string(kAliccpFieldNames[f])] = kFieldScale[f];
  }
  Json model;
  model["field_effect_sd"] = std::move(scales);
  model["cross_mean"] = kCrossMean;
  model["position_slope"] = kPositionSlope;
  model["interaction_sd"] = kInteractionSd;
  model["note"] =
      "click logit = bias + sum of per-id effects (histories and crosses times log1p(count)) + "
      "<u(101), v(205)>; conversion logit given click = bias + effects correlated "
      "cvr_ctr_correlation with the click ones (position: click only); effect sds are times "
      "signal_scale";
  Json biases;
  biases["click"] = r.click_bias;
  biases["conversion"] = r.conversion_bias;
  Json files;
  files["train"] = Json::array({"sample_skeleton_train.csv", "common_features_train.csv"});
  files["test"] = Json::array({"sample_skeleton_test.csv", "common_features_test.csv"});
  Json auc;
  auc["ctr"] = r.test_auc_ctr;
  auc["cvr"] = r.test_auc_cvr;
  auc["ctcvr"] = r.test_auc_ctcvr;
  Json logloss_json;
  logloss_json["ctr"] = logloss(test.pctr, test.click);
  logloss_json["cvr"] = logloss(clicked_pcvr, clicked_conversion);
  logloss_json["ctcvr"] = logloss(test.pctcvr, test.click_and_conversion);
  Json mean_pcvr;
  mean_pcvr["all"] = mean(pcvr_all, test.pcvr.size());
  mean_pcvr["clicked"] = mean(pcvr_clicked, clicked_pcvr.size());

  Json j;
  j["generator"] = "mtps-datagen";
  j["format"] = "Ali-CCP raw (sample_skeleton + common_features)";
  j["options"] = std::move(options);
  j["model"] = std::move(model);
  j["biases"] = std::move(biases);
  j["files"] = std::move(files);
  j["train"] = SplitJson(r.train);
  j["test"] = SplitJson(r.test);
  j["test_auc"] = std::move(auc);
  j["test_logloss"] = std::move(logloss_json);
  j["test_mean_true_pcvr"] = std::move(mean_pcvr);
  return j;
}

double AucOrNan(const std::vector<float>& scores, const std::vector<float>& labels) {
  return scores.empty() ? std::numeric_limits<double>::quiet_NaN() : Auc(scores, labels);
}

}  // namespace

StatusOr<DatagenReport> GenerateAliccpWithReport(const DatagenOptions& options) {
  MTPS_RETURN_IF_ERROR(ValidateDatagenOptions(options));
  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  if (ec)
    return Status::IoError(options.out_dir + ": cannot create the directory: " + ec.message());
  // ground_truth.json is written last: its presence marks a complete run, so
  // a stale one from an earlier run goes first.
  const std::string truth_path = options.out_dir + "/ground_truth.json";
  if (std::filesystem::remove(truth_path, ec); ec)
    return Status::IoError(truth_path + ": cannot remove the old file: " + ec.message());
  MTPS_ASSIGN_OR_RETURN(AliccpTruthModel model, AliccpTruthModel::Create(options));

  const World world(options);
  Xoshiro256ss rng(Mix64(options.seed));
  DatagenReport report;
  report.click_bias = model.click_bias();
  report.conversion_bias = model.conversion_bias();
  const int64_t test_impressions =
      std::llround(static_cast<double>(options.impressions) * options.test_fraction);
  TestRecord test;
  for (auto* v : {&test.pctr, &test.pcvr, &test.pctcvr, &test.click, &test.conversion,
                  &test.click_and_conversion})
    v->reserve(test_impressions);

  std::vector<AliccpFeature> common, skeleton;
  int history_begin[kNumCrosses], history_end[kNumCrosses];
  AliccpTruthModel::UserTerms user;
  int64_t session = 0;
  for (const bool is_test : {false, true}) {
    const std::string split = is_test ? "test" : "train";
    DatagenSplitCounts& counts = is_test ? report.test : report.train;
    BufferedFile skeleton_file, common_file;
    MTPS_RETURN_IF_ERROR(
        skeleton_file.Open(options.out_dir + "/sample_skeleton_" + split + ".csv"));
    MTPS_RETURN_IF_ERROR(common_file.Open(options.out_dir + "/common_features_" + split + ".csv"));
    int64_t remaining = is_test ? test_impressions : options.impressions - test_impressions;
    while (remaining > 0) {
      const uint64_t index = world.SessionIndex(session++);
      world.MakeUser(world.DrawUser(&rng), &common, history_begin, history_end);
      model.ScoreUser(common, &user);
      const int64_t length = std::min(world.DrawSessionLength(&rng), remaining);
      remaining -= length;
      ++counts.sessions;
      common_file.Hex16(index);
      common_file.Char(',');
      WriteFeatures(common, &common_file);
      MTPS_RETURN_IF_ERROR(common_file.MaybeFlush());
      for (int64_t i = 0; i < length; ++i) {
        world.MakeImpression(&rng, common, history_begin, history_end, &skeleton);
        const TruthLogits logits = model.ScoreItem(user, skeleton);
        const double pctr = Sigmoid(logits.click);
        const double pcvr = Sigmoid(logits.conversion);
        const bool click = rng.Uniform() < pctr;
        const bool conversion = click && rng.Uniform() < pcvr;
        ++counts.impressions;
        counts.clicks += click;
        counts.conversions += conversion;
        skeleton_file.Uint(counts.impressions);  // sample_id, 1-based per file
        skeleton_file.Text(click ? ",1," : ",0,");
        skeleton_file.Text(conversion ? "1," : "0,");
        skeleton_file.Hex16(index);
        skeleton_file.Char(',');
        WriteFeatures(skeleton, &skeleton_file);
        MTPS_RETURN_IF_ERROR(skeleton_file.MaybeFlush());
        if (is_test) {
          test.pctr.push_back(static_cast<float>(pctr));
          test.pcvr.push_back(static_cast<float>(pcvr));
          test.pctcvr.push_back(static_cast<float>(pctr * pcvr));
          test.click.push_back(click);
          test.conversion.push_back(conversion);
          test.click_and_conversion.push_back(conversion);  // conversion implies click
        }
      }
    }
    MTPS_RETURN_IF_ERROR(skeleton_file.Close());
    MTPS_RETURN_IF_ERROR(common_file.Close());
  }

  report.test_auc_ctr = AucOrNan(test.pctr, test.click);
  report.test_auc_ctcvr = AucOrNan(test.pctcvr, test.click_and_conversion);
  std::vector<float> clicked_pcvr, clicked_conversion;
  for (size_t i = 0; i < test.click.size(); ++i) {
    if (test.click[i] > 0.5f) {
      clicked_pcvr.push_back(test.pcvr[i]);
      clicked_conversion.push_back(test.conversion[i]);
    }
  }
  report.test_auc_cvr = AucOrNan(clicked_pcvr, clicked_conversion);
  MTPS_RETURN_IF_ERROR(WriteJsonFile(truth_path, GroundTruthJson(options, report, test)));
  return report;
}

Status GenerateAliccp(const DatagenOptions& options) {
  return GenerateAliccpWithReport(options).status();
}

}  // namespace mtps
