// PredictFile: scores every example of one data file with a trained model
// (worker/predict/scorer.h) and writes one row per example, for
// mtps-predict (launcher/predict_main.cc).
//
// The file is read by the workers' own readers (ExampleReader, the job's
// data section: format, columns, labels, transforms; plain or gzip), as a
// one-worker job's test side reads its test_path: every data line, in file
// order, no holdout, no shuffling. Every malformed line is an error naming
// file:line and why (predict skips none: a row per data line). A CSV file
// without any label column is scored without labels; every other format
// carries its labels.
//
// The output (`out_path`): tab-separated text, a header line, then one line
// per example in file order. Header: the model's evaluation task names
// (summary.json's "eval"), then, when the data has labels, "label:<name>"
// per data label (data.labels order). Each task column holds that task's
// probability for the example, printed with 9 significant digits (the
// float's exact value reads back); each label column 0 or 1. ESMM's cvr
// column holds pCVR for every impression, also the unclicked ones its
// evaluation leaves out.
//
// With labels, the metrics are those of a job's held-out evaluation over
// the same examples: each task's AUC and logloss on the rows the model's
// Evaluate scores it on (e.g. cvr on clicked impressions), exact or, with
// eval.auc_bins > 0, from a histogram of that many bins as the scheduler
// merges them (common/eval/metrics.h).
//
// `dump_dir` (a testing aid; all of it held in memory): also writes the
// inputs of every example as .npy arrays (worker/predict/npy_file.h):
// keys.npy uint64 [K] and weights.npy float32 [K] (every example's keys in
// slot order, CSR over (example, slot) by offsets.npy int64 [N * S + 1]:
// the keys of example b, slot s are keys[offsets[b*S+s] .. offsets[b*S+s+1])),
// dense.npy float32 [N, D] (the dense features after data.dense_transform)
// and input.npy float32 [N, input_dim] (the rows the towers read).
#ifndef MTPS_WORKER_PREDICT_PREDICT_FILE_H_
#define MTPS_WORKER_PREDICT_PREDICT_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "worker/data/example.h"
#include "worker/predict/scorer.h"

namespace mtps {

struct PredictOptions {
  std::string data_path;
  // ALICCP_RAW: the common_features file joined with data_path.
  std::string common_path;
  std::string out_path;
  std::string dump_dir;  // empty: no dump
  int batch_size = 1024;
};

// One task's metrics over the examples its evaluation covers.
struct TaskMetrics {
  std::string task;
  int64_t examples = 0;
  double auc = 0;  // NaN when a class is absent
  double logloss = 0;
};

struct PredictResult {
  int64_t rows = 0;
  bool labeled = false;
  int auc_bins = 0;                  // eval.auc_bins the AUCs were computed with (0: exact)
  std::vector<TaskMetrics> metrics;  // with labels, one per task
};

// The schema of the job's training data (ReadSchema of data.train_path):
// the slots and dense features the model was trained on. A CSV file's
// schema needs its header only for data.other_columns OTHER_CATEGORICAL;
// otherwise, when train_path cannot be read any more, it is composed from
// the config as the reader composes it (categorical_columns, then
// multi_valued_columns; dense_columns).
StatusOr<FeatureSchema> TrainedSchema(const config::DataConfig& data);

// The data config that reads options.data_path (and common_path) as the
// test side of a one-worker job; `labeled` false drops the labels (a CSV
// file without label columns).
config::DataConfig PredictDataConfig(const config::DataConfig& data, const PredictOptions& options,
                                     bool labeled);

// The schema `path` yields under the job's data section, and whether it
// carries the labels (see the file comment). For CSV the header is read:
// without every label column it is read again without labels.
// InvalidArgument naming the file when its slots or dense features differ
// from `trained` (the schema of the job's training data).
StatusOr<bool> DataHasLabels(const config::DataConfig& data, const PredictOptions& options,
                             const FeatureSchema& trained);

// See the file comment. `scorer` is built for `trained`, the job's training
// schema (TrainedSchema).
StatusOr<PredictResult> PredictFile(const config::Config& config, const FeatureSchema& trained,
                                    const PredictOptions& options, Scorer* scorer);

}  // namespace mtps

#endif  // MTPS_WORKER_PREDICT_PREDICT_FILE_H_
