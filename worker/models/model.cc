// CreateModel: builds the model a ModelConfig names (see model.h) through
// the model-kind registry (worker/models/model_registry.h).
#include "worker/models/model.h"

#include "common/config/config_check.h"
#include "worker/models/model_registry.h"

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
  ConfigProblems problems;
  const ModelKind* kind = FindModelKind(config, &problems);
  if (kind == nullptr) return problems.ToStatus();
  return kind->factory<T>()(config, inputs, label_names, seed);
}

template StatusOr<std::unique_ptr<Model<float>>> CreateModel<float>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);
template StatusOr<std::unique_ptr<Model<double>>> CreateModel<double>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);

}  // namespace mtps
