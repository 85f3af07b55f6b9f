// CreateModel: builds the model a ModelConfig names (see model.h).
#include "worker/model.h"

#include "worker/esmm.h"
#include "worker/mmoe.h"

namespace mtps {

template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateModel(const config::ModelConfig& config, int input_dim,
                                                const std::vector<std::string>& label_names) {
  if (input_dim <= 0) {
    return Status::InvalidArgument(
        "model input width must be > 0 (no slots and no dense "
        "features?), got " +
        std::to_string(input_dim));
  }
  switch (config.kind_case()) {
    case config::ModelConfig::kEsmm:
      return CreateEsmm<T>(config.esmm(), input_dim, label_names);
    case config::ModelConfig::kMmoe:
      return CreateMmoe<T>(config.mmoe(), input_dim, label_names);
    case config::ModelConfig::kSharedBottom:
    case config::ModelConfig::kPle:
    case config::ModelConfig::kSingleTask:
      return Status::InvalidArgument("model: " + config.GetDescriptor()->oneof_decl(0)->name() +
                                     " kind " + std::to_string(config.kind_case()) +
                                     " is not built into this version");
    case config::ModelConfig::KIND_NOT_SET:
      break;
  }
  return Status::InvalidArgument("model: set one of model.esmm or model.mmoe");
}

template StatusOr<std::unique_ptr<Model<float>>> CreateModel<float>(
    const config::ModelConfig& config, int input_dim, const std::vector<std::string>& label_names);
template StatusOr<std::unique_ptr<Model<double>>> CreateModel<double>(
    const config::ModelConfig& config, int input_dim, const std::vector<std::string>& label_names);

}  // namespace mtps
