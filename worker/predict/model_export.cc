// A trained model written for serving (see worker/predict/model_export.h).
#include "worker/predict/model_export.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <utility>

#include <google/protobuf/util/json_util.h>

#include "common/base/file_util.h"
#include "common/config/config.h"
#include "worker/data/census_format.h"
#include "worker/predict/npy_file.h"

namespace mtps {
namespace {

StatusOr<Json> ProtoJson(const google::protobuf::Message& message) {
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  const auto status = google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) return Status::Internal("config to JSON: " + status.ToString());
  return Json::parse(text);
}

const char* PoolingName(Pooling p) { return p == Pooling::kMean ? "mean" : "sum"; }

// The hashing rule of common/base/hash.h and worker/nn/embedding_bag.h
// (GroupKey), and the rows of unseen keys (ps/table/sparse_table.h
// InitialValue), written out for a serving system to reimplement.
Json HashingJson(const config::Config& config) {
  Json h;
  h["feature_key"] =
      "FeatureKey(column, value) = Mix64(FNV1a64(value, FNV1a64(\"\\x1f\", "
      "FNV1a64(column, 0xcbf29ce484222325))))";
  h["fnv1a64"] = "FNV1a64(bytes, h): for each byte c: h = (h ^ c) * 0x100000001b3 mod 2^64";
  h["mix64"] =
      "Mix64(x): x = x + 0x9e3779b97f4a7c15; x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9; "
      "x = (x ^ (x >> 27)) * 0x94d049bb133111eb; return x ^ (x >> 31) (all mod 2^64)";
  h["value"] =
      "the field's text (UTF-8 bytes) with spaces and tabs stripped from both ends; a "
      "multi-valued column gives one key per non-empty id between its separators (each "
      "stripped); the field-id formats key each feature id under its field id as column";
  h["group_key"] = "group 0: key; group g > 0: Mix64(key ^ (0x9e3779b97f4a7c15 * g mod 2^64))";
  h["missing_key"] =
      "a key without a row gets InitialValue(seed, key, j, init_scale) for j in "
      "0..embedding_dim-1: s = Mix64(key ^ Mix64(seed)); bits = Mix64(s + j * "
      "0x9e3779b97f4a7c15 mod 2^64); u = float32(bits >> 40) / 2^24; value = float32((2u - 1) "
      "* init_scale)";
  h["seed"] = config.train().seed();
  h["init_scale"] = config.server().embedding_init_scale();
  return h;
}

}  // namespace

Status ExportModel(const std::string& dir, ExportInput input) {
  const config::Config& config = input.config;
  const FeatureSchema& schema = input.schema;
  const int dim = config.model().embedding_dim();
  ModelInputs inputs;
  inputs.sparse_width = static_cast<int>(schema.slots.size()) * dim;
  inputs.dense_width = static_cast<int>(schema.dense_names.size());
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<Model<float>> model,
                        CreateModel<float>(config.model(), inputs, schema.label_names, 0));
  if (static_cast<int64_t>(input.dense.size()) != model->num_params()) {
    return Status::InvalidArgument(std::to_string(input.dense.size()) +
                                   " dense parameters for a model of " +
                                   std::to_string(model->num_params()));
  }
  if (Status s = model->SetState(input.model_state); !s.ok()) {
    return Status::InvalidArgument("model state: " + s.message());
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError(dir + ": cannot create: " + ec.message());
  // A model.json left from an earlier export would vouch for half-written
  // arrays: it goes first and comes back last.
  std::filesystem::remove(dir + "/model.json", ec);

  // Embeddings, ascending keys, streamed in chunks.
  std::vector<uint64_t>& keys = input.keys;
  std::sort(keys.begin(), keys.end());
  const int64_t n = static_cast<int64_t>(keys.size());
  MTPS_RETURN_IF_ERROR(WriteNpy(dir + "/embeddings.keys.npy", NpyType::kUint64, {n}, keys.data()));
  {
    MTPS_ASSIGN_OR_RETURN(std::unique_ptr<NpyWriter> values,
                          NpyWriter::Create(dir + "/embeddings.values.npy", NpyType::kFloat32,
                                            {n, static_cast<int64_t>(dim)}));
    constexpr size_t kChunk = 65536;
    std::vector<float> rows(kChunk * static_cast<size_t>(dim));
    for (size_t at = 0; at < keys.size(); at += kChunk) {
      const size_t m = std::min(kChunk, keys.size() - at);
      input.lookup(keys.data() + at, m, rows.data());
      MTPS_RETURN_IF_ERROR(values->Append(rows.data(), m * static_cast<size_t>(dim)));
    }
    MTPS_RETURN_IF_ERROR(values->Finish());
  }
  MTPS_RETURN_IF_ERROR(WriteNpy(dir + "/dense.npy", NpyType::kFloat32,
                                {static_cast<int64_t>(input.dense.size())}, input.dense.data()));
  const std::vector<float> state = model->State();
  MTPS_RETURN_IF_ERROR(WriteNpy(dir + "/model_state.npy", NpyType::kFloat32,
                                {static_cast<int64_t>(state.size())}, state.data()));

  Json j;
  j["format"] = "mtps-export";
  j["version"] = kExportFormatVersion;
  j["source"] = input.source;
  j["source"]["model_state_worker"] = input.model_state_worker;

  Json m;
  m["kind"] = ModelKindName(config.model());
  MTPS_ASSIGN_OR_RETURN(m["config"], ProtoJson(config.model()));
  m["tasks"] = model->eval_task_names();
  m["label_names"] = schema.label_names;
  m["num_params"] = model->num_params();
  j["model"] = std::move(m);

  Json in;
  in["input_dim"] = model->input_dim();
  in["embedding_dim"] = dim;
  in["embedding_groups"] = model->embedding_groups();
  in["sparse_width"] = inputs.sparse_width;
  in["dense_width"] = inputs.dense_width;
  in["layout"] =
      "[group 0 | group 1 | ... | dense]: group g holds every slot's pooled embedding in slot "
      "order (slot s at g * sparse_width + s * embedding_dim), its keys GroupKey(key, g); then "
      "the dense features in order";
  Json slots = Json::array();
  for (const SlotInfo& slot : schema.slots) {
    slots.push_back({{"name", slot.name}, {"pooling", PoolingName(slot.pooling)}});
  }
  in["slots"] = std::move(slots);
  in["pooling"] =
      "sum: the sum of the slot's key rows, each times its weight; mean: that sum divided by the "
      "sum of the weights (zeros when it is 0); a slot without keys pools to zeros";
  in["dense"] = schema.dense_names;
  in["dense_transform"] = config::DataConfig::DenseTransform_Name(config.data().dense_transform());
  MTPS_ASSIGN_OR_RETURN(in["data_config"], ProtoJson(config.data()));
  if (config.data().format() == config::DataConfig::CENSUS_RAW) {
    in["census_columns"] = CensusColumnNames();
  }
  j["input"] = std::move(in);
  j["hashing"] = HashingJson(config);

  Json files;
  files["embedding_keys"] = "embeddings.keys.npy";
  files["embedding_values"] = "embeddings.values.npy";
  files["dense"] = "dense.npy";
  files["model_state"] = "model_state.npy";
  j["files"] = std::move(files);
  j["embeddings"] = {{"rows", n}, {"dim", dim}};

  Json blocks = Json::array();
  Json norms = Json::array();
  int64_t at = 0;
  int64_t state_at = 0;
  for (const ParamBlock& b : model->ParamBlocks()) {
    if (b.offset != at) {
      return Status::Internal("model " + ModelKindName(config.model()) + ": block " + b.name +
                              " at " + std::to_string(b.offset) + ", expected " +
                              std::to_string(at));
    }
    blocks.push_back({{"name", b.name}, {"offset", b.offset}, {"shape", b.shape}});
    at += b.size();
    const std::string suffix = ".bn_scale";
    if (b.name.size() > suffix.size() &&
        b.name.compare(b.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      // Model::State: each batch norm's means, then its variances, in
      // parameter-layout order.
      const int64_t width = b.size();
      norms.push_back({{"layer", b.name.substr(0, b.name.size() - suffix.size())},
                       {"width", width},
                       {"mean_offset", state_at},
                       {"var_offset", state_at + width}});
      state_at += 2 * width;
    }
  }
  if (at != model->num_params() || state_at != static_cast<int64_t>(state.size())) {
    return Status::Internal("model " + ModelKindName(config.model()) + ": its blocks cover " +
                            std::to_string(at) + " of " + std::to_string(model->num_params()) +
                            " parameters and " + std::to_string(state_at) + " of " +
                            std::to_string(state.size()) + " state values");
  }
  j["dense_blocks"] = std::move(blocks);
  j["batch_norms"] = std::move(norms);
  j["batch_norm_epsilon"] = BatchNorm<float>::kEpsilon;
  return WriteJsonFile(dir + "/model.json", j);
}

}  // namespace mtps
