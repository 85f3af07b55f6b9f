// mtps-model-dump: runs one ForwardBackward of an mtps model (worker/models/model.h)
// in float on a random batch and writes everything needed to recompute it
// independently (tests/reference/torch_models.py, agreement_test.py).
//
//   mtps-model-dump --config=FILE [--set='a.b=v;c.d=w'] --sparse_width=S --dense_width=N
//                   --batch=B --seed=SEED [--perturb=0.05] --out_dir=DIR
//   mtps-model-dump --model='mmoe { num_experts: 3 expert_hidden: [4] }' --labels=a,b ...
//
// Only the config's `model` section and its data label names matter. The model
// is built with CreateModel<float>(model, {S, N}, labels, seed), so its input
// rows are D = embedding_groups * S + N wide; its parameters come from
// InitParams(seed) (output biases 0; no prior), then
// (when --perturb > 0) every parameter gets U(-perturb, perturb) added so that
// biases are non-zero too. The input is B x D, uniform in [-2, 2); the labels
// are B x L, each 1 with probability --positive_rate (else 0), except that for ESMM the
// conversion label is 0 wherever the click label is 0. All draws come from
// std::mt19937_64 seeded from --seed through UniformSymmetric (a fixed
// formula), so a seed fixes the whole dump on every platform.
//
// Writes into DIR (created if missing) raw little-endian float32 files
// params.f32 [P], input.f32 [B, D], labels.f32 [B, L], losses.f32 [T],
// param_grad.f32 [P], input_grad.f32 [B, D] (row-major), state.f32 [S] (the
// model's running state after that one ForwardBackward, Model::State(): with
// model.batch_norm the batch norms' running means and variances, else empty),
// and meta.json:
//   {"model": <ModelConfig as JSON, proto field names, defaults included>,
//    "kind": "mmoe", "sparse_width": S, "dense_width": N, "input_dim": D,
//    "embedding_groups": G, "batch": B, "seed": SEED, "perturb": p,
//    "num_params": P, "label_names": [...], "loss_names": [...],
//    "blocks": [{"name", "offset", "shape"}, ...] (Model::ParamBlocks),
//    "files": {"params": {"path": "params.f32", "shape": [P]}, ...}}
// Exit code 0 on success, 1 on bad flags, a bad config or an I/O error
// (message on stderr), 2 on a stray positional argument.
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include "common/base/json_file.h"
#include "common/base/status.h"
#include "common/config/config.h"
#include "proto/config.pb.h"
#include "worker/data/data_config.h"
#include "worker/models/model.h"
#include "worker/models/model_registry.h"
#include "worker/nn/layers.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the dump files are little-endian float32 written in host order");

DEFINE_string(config, "", "job config; only its model section and data label names are used");
DEFINE_string(set, "", "config overrides 'a.b=v', separated by ';' (with --config)");
DEFINE_string(model, "", "instead of --config: a ModelConfig in text format");
DEFINE_string(labels, "", "with --model: the data label names, comma-separated");
DEFINE_int32(sparse_width, 0, "width of one embedding group of an input row");
DEFINE_int32(dense_width, 0, "number of dense features at the end of an input row");
DEFINE_int32(batch, 0, "rows in the batch");
DEFINE_uint64(seed, 1, "seed of InitParams, of the dropout masks and of the random batch");
DEFINE_double(positive_rate, 0.5, "probability of a label being 1");
DEFINE_double(perturb, 0.0, "add U(-perturb, perturb) to every parameter after InitParams");
DEFINE_string(out_dir, "", "output directory (created if missing)");

namespace {

using mtps::Json;
using mtps::JsonText;
using mtps::ModelKindName;
using mtps::Status;
using mtps::StatusOr;

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(start, end - start);
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

// The model config and label names from --config or --model/--labels.
Status ReadModelSpec(mtps::config::ModelConfig* model, std::vector<std::string>* label_names) {
  if (!FLAGS_config.empty()) {
    if (!FLAGS_model.empty() || !FLAGS_labels.empty()) {
      return Status::InvalidArgument("give either --config or --model/--labels, not both");
    }
    // The checks of the sections used: the data labels and the model.
    MTPS_ASSIGN_OR_RETURN(mtps::config::Config config,
                          mtps::LoadConfig(FLAGS_config, Split(FLAGS_set, ';'),
                                           {mtps::CheckDataConfig, mtps::CheckModelConfig}));
    *model = config.model();
    for (const mtps::config::LabelSpec& label : config.data().labels()) {
      label_names->push_back(label.name());
    }
    return Status::OK();
  }
  if (FLAGS_model.empty()) return Status::InvalidArgument("give --config or --model");
  if (!FLAGS_set.empty()) return Status::InvalidArgument("--set needs --config");
  if (!google::protobuf::TextFormat::ParseFromString(FLAGS_model, model)) {
    return Status::InvalidArgument("--model is not a valid ModelConfig in text format: " +
                                   FLAGS_model);
  }
  *label_names = Split(FLAGS_labels, ',');
  return Status::OK();
}

Status WriteFile(const std::string& path, const void* data, size_t bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status::IoError(path + ": cannot open for writing: " + std::strerror(errno));
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  out.close();
  if (!out) return Status::IoError(path + ": write failed");
  return Status::OK();
}

// One output array: its file name, shape and values.
struct Array {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;
};

Status Run() {
  if (FLAGS_sparse_width < 0 || FLAGS_dense_width < 0) {
    return Status::InvalidArgument("--sparse_width and --dense_width must be >= 0");
  }
  if (FLAGS_batch <= 0) return Status::InvalidArgument("--batch must be > 0");
  if (!(FLAGS_perturb >= 0.0)) return Status::InvalidArgument("--perturb must be >= 0");
  if (!(FLAGS_positive_rate >= 0.0 && FLAGS_positive_rate <= 1.0)) {
    return Status::InvalidArgument("--positive_rate must be in [0, 1]");
  }
  if (FLAGS_out_dir.empty()) return Status::InvalidArgument("--out_dir is required");

  mtps::config::ModelConfig model_config;
  std::vector<std::string> label_names;
  MTPS_RETURN_IF_ERROR(ReadModelSpec(&model_config, &label_names));
  mtps::ModelInputs inputs;
  inputs.sparse_width = FLAGS_sparse_width;
  inputs.dense_width = FLAGS_dense_width;
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<mtps::Model<float>> model,
                        mtps::CreateModel<float>(model_config, inputs, label_names, FLAGS_seed));

  const int64_t num_params = model->num_params();
  const int batch = FLAGS_batch;
  const int input_dim = model->input_dim();
  const int num_labels = static_cast<int>(label_names.size());

  std::vector<float> params(num_params);
  model->InitParams(FLAGS_seed, params.data());
  // A stream of its own, so --perturb does not change the batch.
  std::mt19937_64 rng(FLAGS_seed ^ 0x9e3779b97f4a7c15ULL);
  if (FLAGS_perturb > 0) {
    std::mt19937_64 noise(FLAGS_seed ^ 0x5851f42d4c957f2dULL);
    for (float& p : params) p += static_cast<float>(mtps::UniformSymmetric(&noise, FLAGS_perturb));
  }
  mtps::RowMatrix<float> input(batch, input_dim);
  for (int i = 0; i < batch; ++i) {
    for (int j = 0; j < input_dim; ++j) {
      input(i, j) = static_cast<float>(mtps::UniformSymmetric(&rng, 2.0));
    }
  }
  // ESMM: conversion only where click.
  int click_col = -1;
  int conversion_col = -1;
  if (model_config.has_esmm()) {
    for (int k = 0; k < num_labels; ++k) {
      if (label_names[k] == model_config.esmm().click_label()) click_col = k;
      if (label_names[k] == model_config.esmm().conversion_label()) conversion_col = k;
    }
  }
  mtps::RowMatrix<float> labels(batch, num_labels);
  for (int i = 0; i < batch; ++i) {
    for (int k = 0; k < num_labels; ++k) {
      const double u = 0.5 * (mtps::UniformSymmetric(&rng, 1.0) + 1.0);  // [0, 1)
      labels(i, k) = u < FLAGS_positive_rate ? 1.0f : 0.0f;
    }
    if (click_col >= 0 && conversion_col >= 0 && labels(i, click_col) == 0.0f) {
      labels(i, conversion_col) = 0.0f;
    }
  }

  std::vector<float> param_grad(num_params);
  mtps::RowMatrix<float> input_grad;
  std::vector<float> losses;
  model->ForwardBackward(params.data(), input, labels, param_grad.data(), &input_grad, &losses);
  if (input_grad.rows() != batch || input_grad.cols() != input_dim) {
    return Status::Internal("ForwardBackward left input_grad " + std::to_string(input_grad.rows()) +
                            " x " + std::to_string(input_grad.cols()));
  }
  const std::vector<float> state = model->State();
  if (losses.size() != model->loss_names().size()) {
    return Status::Internal("ForwardBackward wrote " + std::to_string(losses.size()) +
                            " losses for " + std::to_string(model->loss_names().size()) +
                            " loss names");
  }

  if (::mkdir(FLAGS_out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::IoError(FLAGS_out_dir + ": cannot create: " + std::strerror(errno));
  }
  const std::vector<Array> arrays = {
      {"params", {num_params}, params.data()},
      {"input", {batch, input_dim}, input.data()},
      {"labels", {batch, num_labels}, labels.data()},
      {"losses", {static_cast<int64_t>(losses.size())}, losses.data()},
      {"param_grad", {num_params}, param_grad.data()},
      {"input_grad", {batch, input_dim}, input_grad.data()},
      {"state", {static_cast<int64_t>(state.size())}, state.data()},
  };
  Json files = Json::object();
  for (const auto& array : arrays) {
    int64_t count = 1;
    for (int64_t d : array.shape) count *= d;
    const std::string file = array.name + ".f32";
    MTPS_RETURN_IF_ERROR(WriteFile(FLAGS_out_dir + "/" + file, array.data,
                                   static_cast<size_t>(count) * sizeof(float)));
    files[array.name] = {{"path", file}, {"shape", array.shape}};
  }

  std::string model_json;
  google::protobuf::util::JsonPrintOptions json_options;
  json_options.preserve_proto_field_names = true;
  json_options.always_print_primitive_fields = true;
  const auto json_status =
      google::protobuf::util::MessageToJsonString(model_config, &model_json, json_options);
  if (!json_status.ok()) {
    return Status::Internal("model config to JSON: " + json_status.ToString());
  }
  Json meta;
  meta["model"] = Json::parse(model_json);
  meta["kind"] = ModelKindName(model_config);
  meta["sparse_width"] = FLAGS_sparse_width;
  meta["dense_width"] = FLAGS_dense_width;
  meta["input_dim"] = input_dim;
  meta["embedding_groups"] = model->embedding_groups();
  meta["batch"] = batch;
  meta["seed"] = FLAGS_seed;
  meta["perturb"] = FLAGS_perturb;
  meta["num_params"] = num_params;
  meta["label_names"] = label_names;
  meta["loss_names"] = model->loss_names();
  Json blocks = Json::array();
  for (const mtps::ParamBlock& b : model->ParamBlocks()) {
    blocks.push_back({{"name", b.name}, {"offset", b.offset}, {"shape", b.shape}});
  }
  meta["blocks"] = std::move(blocks);
  meta["files"] = std::move(files);
  const std::string text = JsonText(meta, 1) + "\n";
  return WriteFile(FLAGS_out_dir + "/meta.json", text.data(), text.size());
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("dumps one ForwardBackward of an mtps model (see the file comment)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  if (argc > 1) {
    std::fprintf(stderr, "mtps-model-dump: unexpected argument %s\n", argv[1]);
    return 2;
  }
  const Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "mtps-model-dump: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
