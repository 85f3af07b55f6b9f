// CreateModel: builds the model a ModelConfig names (see model.h).
#include "worker/models/model.h"

#include "worker/models/esmm.h"
#include "worker/models/mmoe.h"
#include "worker/models/ple.h"
#include "worker/models/shared_bottom.h"
#include "worker/models/single_task.h"

namespace mtps {

template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateModel(const config::ModelConfig& config,
                                                const ModelInputs& inputs,
                                                const std::vector<std::string>& label_names,
                                                uint64_t seed) {
  if (inputs.sparse_width < 0 || inputs.dense_width < 0) {
    return Status::InvalidArgument("model input widths must be >= 0, got sparse_width " +
                                   std::to_string(inputs.sparse_width) + ", dense_width " +
                                   std::to_string(inputs.dense_width));
  }
  if (inputs.sparse_width + inputs.dense_width <= 0) {
    return Status::InvalidArgument(
        "model input width must be > 0 (no slots and no dense features?), got sparse_width 0 "
        "and dense_width 0");
  }
  switch (config.kind_case()) {
    case config::ModelConfig::kEsmm:
      return CreateEsmm<T>(config, inputs, label_names, seed);
    case config::ModelConfig::kMmoe:
      return CreateMmoe<T>(config, inputs, label_names, seed);
    case config::ModelConfig::kSharedBottom:
      return CreateSharedBottom<T>(config, inputs, label_names, seed);
    case config::ModelConfig::kPle:
      return CreatePle<T>(config, inputs, label_names, seed);
    case config::ModelConfig::kSingleTask:
      return CreateSingleTask<T>(config, inputs, label_names, seed);
    case config::ModelConfig::KIND_NOT_SET:
      break;
  }
  return Status::InvalidArgument(
      "model: set one of model.esmm, model.mmoe, model.shared_bottom, model.ple or "
      "model.single_task");
}

template StatusOr<std::unique_ptr<Model<float>>> CreateModel<float>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);
template StatusOr<std::unique_ptr<Model<double>>> CreateModel<double>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);

}  // namespace mtps
