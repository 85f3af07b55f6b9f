// mtps-datagen: writes Ali-CCP raw-format data (sample_skeleton_{train,test}.csv,
// common_features_{train,test}.csv) from a known ground-truth model, and
// ground_truth.json with the model's parameters, the split counts and the
// AUCs of the true probabilities on the test split (worker/data/datagen.h).
//
//   mtps-datagen --out DIR --impressions N --seed S [--test_fraction 0.2]
//                [--ctr 0.04] [--cvr 0.005] [--num_users ...] [...]
//
// The only place that reads these flags: they become a DatagenOptions here.
// Exit codes: 0 written, 1 generation failed (e.g. cannot write), 2 bad flags.
#include <cstdio>
#include <string>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "worker/data/datagen.h"

DEFINE_string(out, "", "output directory (created if missing); required");
DEFINE_int64(impressions, 0, "impressions (skeleton lines) in train + test; required, >= 1");
DEFINE_uint64(seed, 1, "seed of the world, the hidden model and the labels");
DEFINE_double(test_fraction, 0.2, "share of the impressions in the test split, [0, 1)");
DEFINE_double(ctr, 0.04, "target clicks per impression, (0, 1)");
DEFINE_double(cvr, 0.005, "target conversions per click, (0, 1)");
DEFINE_double(session_mean, 20, "mean impressions per user session (common_feature_index)");
DEFINE_double(zipf_exponent, 1.1, "Zipf exponent of every id's popularity");
DEFINE_int64(num_users, 200000, "user ids (field 101)");
DEFINE_int64(num_items, 500000, "item ids (field 205)");
DEFINE_int64(num_categories, 5000, "category ids (fields 206, 109_14, 508)");
DEFINE_int64(num_shops, 100000, "shop ids (fields 207, 110_14, 509)");
DEFINE_int64(num_brands, 50000, "brand ids (fields 216, 127_14, 702)");
DEFINE_int64(num_intentions, 20000, "intention ids (fields 210, 150_14, 853)");
DEFINE_double(history_mean, 8, "mean distinct ids in each user history field");
DEFINE_int32(latent_dim, 8, "rank of the hidden user x item interaction, [0, 64]");
DEFINE_double(signal_scale, 1.0, "scale of every hidden effect (0: labels are pure noise)");
DEFINE_double(
    cvr_ctr_correlation, 0.5,
    "correlation of conversion effects with click effects, [-1, 1] (0: no selection bias)");

namespace {

constexpr int kExitBadFlags = 2;

int Usage(const char* argv0, const std::string& error) {
  std::fprintf(stderr,
               "mtps-datagen: %s\nusage: %s --out DIR --impressions N [--seed S] [...]"
               " (--help lists every flag)\n",
               error.c_str(), argv0);
  return kExitBadFlags;
}

// Parses argv into the gflags without letting gflags exit (it exits 1 on an
// unknown flag or a bad value; a bad flag here is exit code 2). Accepts
// --name=value, --name value, -name=value, and --name / --noname for bools.
// Returns false with *error set on the first bad argument.
bool ParseFlags(int argc, char** argv, bool* help, std::string* error) {
  *help = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') {
      *error = "unexpected argument '" + arg + "' (flags only)";
      return false;
    }
    arg = arg.substr(arg[1] == '-' ? 2 : 1);
    if (arg == "help" || arg == "helpfull") {
      *help = true;
      return true;
    }
    std::string name = arg, value;
    bool has_value = false;
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    gflags::CommandLineFlagInfo info;
    if (!gflags::GetCommandLineFlagInfo(name.c_str(), &info)) {
      if (!has_value && name.rfind("no", 0) == 0 &&
          gflags::GetCommandLineFlagInfo(name.substr(2).c_str(), &info) && info.type == "bool") {
        name = name.substr(2);
        value = "false";
        has_value = true;
      } else {
        *error = "unknown flag --" + name;
        return false;
      }
    }
    if (!has_value) {
      if (info.type == "bool") {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        *error = "flag --" + name + " needs a value";
        return false;
      }
    }
    if (gflags::SetCommandLineOption(name.c_str(), value.c_str()).empty()) {
      *error = "bad value '" + value + "' for --" + name + " (" + info.type + ")";
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "writes Ali-CCP raw-format data from a known ground-truth model.\n"
      "  mtps-datagen --out DIR --impressions N --seed S [--test_fraction 0.2] [...]");
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  bool help = false;
  std::string error;
  if (!ParseFlags(argc, argv, &help, &error)) return Usage(argv[0], error);
  if (help) {
    gflags::ShowUsageWithFlagsRestrict(argv[0], "datagen_main");
    return 0;
  }
  if (FLAGS_out.empty()) return Usage(argv[0], "--out is required");
  if (FLAGS_impressions < 1) return Usage(argv[0], "--impressions is required and must be >= 1");

  mtps::DatagenOptions options;
  options.out_dir = FLAGS_out;
  options.impressions = FLAGS_impressions;
  options.seed = FLAGS_seed;
  options.test_fraction = FLAGS_test_fraction;
  options.ctr = FLAGS_ctr;
  options.cvr = FLAGS_cvr;
  options.session_mean = FLAGS_session_mean;
  options.zipf_exponent = FLAGS_zipf_exponent;
  options.num_users = FLAGS_num_users;
  options.num_items = FLAGS_num_items;
  options.num_categories = FLAGS_num_categories;
  options.num_shops = FLAGS_num_shops;
  options.num_brands = FLAGS_num_brands;
  options.num_intentions = FLAGS_num_intentions;
  options.history_mean = FLAGS_history_mean;
  options.latent_dim = FLAGS_latent_dim;
  options.signal_scale = FLAGS_signal_scale;
  options.cvr_ctr_correlation = FLAGS_cvr_ctr_correlation;
  if (mtps::Status s = mtps::ValidateDatagenOptions(options); !s.ok())
    return Usage(argv[0], "bad flag: --" + s.message());

  auto report = mtps::GenerateAliccpWithReport(options);
  if (!report.ok()) {
    std::fprintf(stderr, "mtps-datagen: %s\n", report.status().ToString().c_str());
    return 1;
  }
  const mtps::DatagenReport& r = report.value();
  for (const auto& [name, c] :
       {std::pair<const char*, const mtps::DatagenSplitCounts&>{"train", r.train},
        {"test", r.test}}) {
    std::printf(
        "%-5s %12lld impressions %10lld sessions %10lld clicks (%.4f) %8lld conversions "
        "(%.4f of clicks)\n",
        name, static_cast<long long>(c.impressions), static_cast<long long>(c.sessions),
        static_cast<long long>(c.clicks),
        c.impressions > 0 ? static_cast<double>(c.clicks) / c.impressions : 0.0,
        static_cast<long long>(c.conversions),
        c.clicks > 0 ? static_cast<double>(c.conversions) / c.clicks : 0.0);
  }
  std::printf("true-probability AUCs on test: ctr %.4f  cvr %.4f  ctcvr %.4f\n", r.test_auc_ctr,
              r.test_auc_cvr, r.test_auc_ctcvr);
  std::printf("wrote %s/{sample_skeleton,common_features}_{train,test}.csv, ground_truth.json\n",
              options.out_dir.c_str());
  return 0;
}
