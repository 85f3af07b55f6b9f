// mtps-predict: a finished job's model, read back from one of its
// checkpoints, scores a data file or is exported for serving
// (`mtps-launch predict` and `mtps-launch export` run it;
// README.md "Predict and export").
//
//   mtps-predict --run_dir DIR --data FILE --out FILE [--common_data FILE]
//                [--checkpoint ID] [--model_state_worker R] [--dump_inputs DIR]
//   mtps-predict --run_dir DIR --export_dir DIR [--checkpoint ID]
//
// Loads DIR/config.pbtxt, picks the newest intact checkpoint (or --checkpoint
// ID; ps/offline/model_checkpoint.h, ChooseCheckpoint: a corrupt newer one
// is named with why on stderr and skipped), rebuilds every server's
// embedding rows and the dense parameters, and then
//   - with --data: runs the model's evaluation forward pass over FILE (the
//     job's data format, plain or gzip) with the workers' feature
//     extraction, writes one TSV row per example to --out and prints each
//     task's AUC and logloss when FILE has labels
//     (worker/predict/predict_file.h);
//   - with --export_dir: writes the model as NumPy arrays and model.json
//     (worker/predict/model_export.h).
// Both may be given at once.
//
// The only place that reads these flags. Exit codes: 0 done, 1 an error
// (a missing run dir or config, no intact checkpoint, a malformed data line,
// an I/O error: the message names the file and why), 2 bad flags.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "common/base/json_file.h"
#include "common/base/status.h"
#include "common/config/config.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "ps/offline/model_checkpoint.h"
#include "worker/data/example.h"
#include "worker/predict/model_export.h"
#include "worker/predict/predict_file.h"
#include "worker/predict/scorer.h"

DEFINE_string(run_dir, "", "the job's run dir (mtps-launch --run-dir); required");
DEFINE_int64(checkpoint, -1, "checkpoint id to use (-1: the newest intact one)");
DEFINE_string(data, "", "data file to score, in the job's data format (plain or gzip)");
DEFINE_string(common_data, "", "ALICCP_RAW: the common_features file joined with --data");
DEFINE_string(out, "", "with --data: the TSV of per-example probabilities to write");
DEFINE_string(dump_inputs, "",
              "with --data: also write every example's keys, dense features and input row as "
              ".npy arrays into this directory (a testing aid; held in memory)");
DEFINE_int32(batch_size, 0, "examples per forward pass (0: the config's train.eval_batch_size)");
DEFINE_int32(model_state_worker, 0,
             "whose model state (batch-norm running statistics) to use: each worker keeps its "
             "own");
DEFINE_string(export_dir, "", "write the model for serving into this directory");

namespace {

constexpr int kExitError = 1;
constexpr int kExitBadFlags = 2;

using mtps::Status;
using mtps::StatusOr;

int Usage(const char* argv0, const std::string& error) {
  std::fprintf(stderr,
               "mtps-predict: %s\nusage: %s --run_dir DIR (--data FILE --out FILE | --export_dir "
               "DIR) [--checkpoint ID] (--help lists every flag)\n",
               error.c_str(), argv0);
  return kExitBadFlags;
}

// Parses argv into the gflags without letting gflags exit (as
// launcher/datagen_main.cc: a bad flag is exit code 2).
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
      *error = "unknown flag --" + name;
      return false;
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

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool IsFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string WithCommas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return (n < 0 ? "-" : "") + digits;
}

// The table mtps-launch prints after a job (launcher/mtps_launch/job.py).
void PrintMetrics(const mtps::PredictResult& result) {
  std::vector<std::vector<std::string>> rows{{"task", "AUC", "logloss", "examples"}};
  char auc[32], logloss[32];
  for (const mtps::TaskMetrics& m : result.metrics) {
    std::snprintf(auc, sizeof(auc), "%.4f", m.auc);
    std::snprintf(logloss, sizeof(logloss), "%.4f", m.logloss);
    rows.push_back({m.task, auc, logloss, WithCommas(m.examples)});
  }
  std::vector<size_t> widths(4, 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < 4; ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line = "  " + row[0] + std::string(widths[0] - row[0].size(), ' ');
    for (size_t i = 1; i < 4; ++i)
      line += "  " + std::string(widths[i] - row[i].size(), ' ') + row[i];
    std::printf("%s\n", line.c_str());
  }
  if (result.auc_bins > 0) {
    std::printf("  (AUC from histograms of eval.auc_bins = %d bins, as the job computed it)\n",
                result.auc_bins);
  }
}

Status Run() {
  const std::string& run_dir = FLAGS_run_dir;
  if (!IsDirectory(run_dir)) {
    return Status::NotFound("--run_dir " + run_dir + ": no such directory");
  }
  const std::string config_path = run_dir + "/config.pbtxt";
  if (!IsFile(config_path)) {
    return Status::NotFound(config_path +
                            ": no such file (not the run dir of a job that started: the "
                            "scheduler writes it)");
  }
  MTPS_ASSIGN_OR_RETURN(const mtps::config::Config run_config, mtps::LoadConfig(config_path, {}));
  MTPS_ASSIGN_OR_RETURN(mtps::CheckpointChoice choice,
                        mtps::ChooseCheckpoint(run_dir, run_config, FLAGS_checkpoint));
  for (const std::string& note : choice.notes) {
    std::fprintf(stderr, "mtps-predict: %s; passed over for an older one\n", note.c_str());
  }
  const mtps::checkpoint::Manifest& manifest = choice.manifest;
  std::fprintf(stderr, "mtps-predict: using checkpoint %llu (step %lld, taken at \"%s\") in %s\n",
               static_cast<unsigned long long>(manifest.id()),
               static_cast<long long>(manifest.step()), manifest.reason().c_str(),
               choice.root.c_str());
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<mtps::ModelCheckpoint> ckpt,
                        mtps::ModelCheckpoint::Load(choice));
  const mtps::config::Config& config = ckpt->config();
  if (!mtps::SameModelSections(config, run_config)) {
    return Status::InvalidArgument(
        choice.dir + " was taken with other data, model or server sections than " + config_path +
        " holds (was the run dir reused for another job?)");
  }
  MTPS_ASSIGN_OR_RETURN(const mtps::FeatureSchema schema, mtps::TrainedSchema(config.data()));

  // The model state: one worker's (each keeps its own running statistics).
  std::vector<float> state;
  {
    auto s = ckpt->WorkerModelState(FLAGS_model_state_worker);
    if (s.ok()) {
      state = std::move(*s);
    } else if (config.model().batch_norm() || FLAGS_model_state_worker != 0) {
      return s.status();
    }
  }
  mtps::Scorer::RowLookup lookup = [&ckpt](const uint64_t* keys, size_t n, float* out) {
    ckpt->Lookup(keys, n, out);
  };

  if (!FLAGS_data.empty()) {
    MTPS_ASSIGN_OR_RETURN(std::unique_ptr<mtps::Scorer> scorer,
                          mtps::Scorer::Create(config, schema, ckpt->dense(), state, lookup));
    mtps::PredictOptions options;
    options.data_path = FLAGS_data;
    options.common_path = FLAGS_common_data;
    options.out_path = FLAGS_out;
    options.dump_dir = FLAGS_dump_inputs;
    options.batch_size = FLAGS_batch_size > 0 ? FLAGS_batch_size : config.train().eval_batch_size();
    if (!options.dump_dir.empty() && !IsDirectory(options.dump_dir) &&
        ::mkdir(options.dump_dir.c_str(), 0755) != 0) {
      return Status::IoError("--dump_inputs " + options.dump_dir + ": cannot create");
    }
    MTPS_ASSIGN_OR_RETURN(const mtps::PredictResult result,
                          mtps::PredictFile(config, schema, options, scorer.get()));
    std::printf("scored %s examples of %s into %s (%s)\n", WithCommas(result.rows).c_str(),
                FLAGS_data.c_str(), FLAGS_out.c_str(),
                result.labeled ? "with labels" : "no labels in the data");
    if (result.labeled) PrintMetrics(result);
  }

  if (!FLAGS_export_dir.empty()) {
    mtps::ExportInput input;
    input.config = config;
    input.schema = schema;
    input.dense = ckpt->dense();
    input.model_state = state;
    input.model_state_worker = FLAGS_model_state_worker;
    input.keys.reserve(ckpt->rows());
    ckpt->ForEachRow([&input](uint64_t key, const float*) { input.keys.push_back(key); });
    input.lookup = lookup;
    mtps::Json source;
    source["run_dir"] = run_dir;
    source["checkpoint_id"] = manifest.id();
    source["checkpoint_dir"] = choice.dir;
    source["step"] = manifest.step();
    source["reason"] = manifest.reason();
    source["unix_time"] = manifest.unix_time();
    input.source = std::move(source);
    MTPS_RETURN_IF_ERROR(mtps::ExportModel(FLAGS_export_dir, std::move(input)));
    std::printf("exported %s embedding rows of dim %d and %s dense parameters into %s\n",
                WithCommas(static_cast<int64_t>(ckpt->rows())).c_str(), ckpt->dim(),
                WithCommas(static_cast<int64_t>(ckpt->dense().size())).c_str(),
                FLAGS_export_dir.c_str());
  }
  return Status::OK();
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "scores a data file with a finished job's model, or exports the model.\n"
      "  mtps-predict --run_dir DIR --data FILE --out FILE [--checkpoint ID]\n"
      "  mtps-predict --run_dir DIR --export_dir DIR [--checkpoint ID]");
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = 1;  // warnings and errors only: the tool reports on its own
  bool help = false;
  std::string error;
  if (!ParseFlags(argc, argv, &help, &error)) return Usage(argv[0], error);
  if (help) {
    gflags::ShowUsageWithFlagsRestrict(argv[0], "predict_main");
    return 0;
  }
  if (FLAGS_run_dir.empty()) return Usage(argv[0], "--run_dir is required");
  if (FLAGS_data.empty() && FLAGS_export_dir.empty()) {
    return Usage(argv[0], "give --data FILE --out FILE, or --export_dir DIR");
  }
  if (!FLAGS_data.empty() && FLAGS_out.empty()) return Usage(argv[0], "--data needs --out");
  if (FLAGS_data.empty() && (!FLAGS_out.empty() || !FLAGS_dump_inputs.empty())) {
    return Usage(argv[0], "--out and --dump_inputs need --data");
  }
  if (FLAGS_checkpoint < -1) return Usage(argv[0], "--checkpoint must be an id >= 0 (or -1)");
  if (FLAGS_model_state_worker < 0) return Usage(argv[0], "--model_state_worker must be >= 0");
  if (FLAGS_batch_size < 0) return Usage(argv[0], "--batch_size must be >= 0");
  const Status s = Run();
  if (!s.ok()) {
    std::fprintf(stderr, "mtps-predict: error: %s\n", s.message().c_str());
    return kExitError;
  }
  return 0;
}
