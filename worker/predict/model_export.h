// ExportModel: writes a trained model in a format a serving system loads
// without mtps: NumPy arrays and one JSON file (README.md, "Predict and
// export", is the specification; launcher/mtps_launch/torch_export.py
// rebuilds the model in PyTorch from it). For mtps-predict --export_dir
// (launcher/predict_main.cc).
//
// Files, in the export directory:
//   model.json              what the arrays mean: the model kind and its
//                           config, the evaluation tasks, the input layout
//                           (slots with their pooling, dense features), the
//                           key hashing rule, the dense parameter blocks, the
//                           batch norms' running statistics, the source
//                           checkpoint;
//   embeddings.keys.npy     uint64 [n]: every key with a row, ascending;
//   embeddings.values.npy   float32 [n, embedding_dim]: row i is key i's;
//   dense.npy               float32 [num_params]: the dense parameters in
//                           the layout of model.json "dense_blocks";
//   model_state.npy         float32 [S]: the model state of one worker
//                           (batch-norm running statistics; S = 0 without).
// Arrays are written streaming and renamed into place (npy_file.h);
// model.json is written last, so a directory with a model.json is complete.
#ifndef MTPS_WORKER_PREDICT_MODEL_EXPORT_H_
#define MTPS_WORKER_PREDICT_MODEL_EXPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/json_file.h"
#include "common/base/status.h"
#include "proto/config.pb.h"
#include "worker/data/example.h"
#include "worker/models/model.h"
#include "worker/predict/scorer.h"

namespace mtps {

// Version of the export format (model.json "version"); a change a loader
// of the previous version would misread increments it.
constexpr int kExportFormatVersion = 1;

struct ExportInput {
  config::Config config;  // the job's
  FeatureSchema schema;   // of its training data
  std::vector<float> dense;
  std::vector<float> model_state;
  int model_state_worker = 0;  // whose model state it is
  // Every key that has a row (any order, no repeats), and where to read
  // the rows.
  std::vector<uint64_t> keys;
  Scorer::RowLookup lookup;
  // model.json "source": where the model came from (run dir, checkpoint).
  Json source;
};

// See the file comment. `dir` is created if missing. Errors name the file.
Status ExportModel(const std::string& dir, ExportInput input);

}  // namespace mtps

#endif  // MTPS_WORKER_PREDICT_MODEL_EXPORT_H_
