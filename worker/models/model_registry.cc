// The model-kind registry and the model section's check (see
// worker/models/model_registry.h).
#include "worker/models/model_registry.h"

#include <algorithm>

#include "common/config/config.h"
#include "worker/models/esmm.h"
#include "worker/models/mmoe.h"
#include "worker/models/ple.h"
#include "worker/models/shared_bottom.h"
#include "worker/models/single_task.h"
#include "worker/nn/layers.h"

namespace mtps {

const std::vector<ModelKind>& ModelKinds() {
  static const std::vector<ModelKind> kKinds = {
      {"esmm", CheckEsmmConfig, EsmmTaskNames, CreateEsmm<float>, CreateEsmm<double>},
      {"mmoe", CheckMmoeConfig, TaskPerLabelNames, CreateMmoe<float>, CreateMmoe<double>},
      {"shared_bottom", CheckSharedBottomConfig, TaskPerLabelNames, CreateSharedBottom<float>,
       CreateSharedBottom<double>},
      {"ple", CheckPleConfig, TaskPerLabelNames, CreatePle<float>, CreatePle<double>},
      {"single_task", CheckSingleTaskConfig, SingleTaskTaskNames, CreateSingleTask<float>,
       CreateSingleTask<double>},
  };
  return kKinds;
}

const ModelKind* FindModelKind(const std::string& name) {
  for (const ModelKind& kind : ModelKinds()) {
    if (name == kind.name) return &kind;
  }
  return nullptr;
}

const ModelKind* FindModelKind(const config::ModelConfig& config, ConfigProblems* problems) {
  const std::string member = ModelKindName(config);
  if (!member.empty()) {
    const ModelKind* kind = FindModelKind(member);
    if (kind == nullptr && problems != nullptr) {
      problems->Add("model." + member, "is not a registered model kind");
    }
    return kind;
  }
  if (problems != nullptr) {
    // "model.esmm, mmoe, shared_bottom, ple or single_task"
    const std::vector<ModelKind>& kinds = ModelKinds();
    std::string names;
    for (size_t i = 0; i < kinds.size(); ++i) {
      names += i == 0 ? "model." : i + 1 < kinds.size() ? ", " : " or ";
      names += kinds[i].name;
    }
    problems->Add("model.kind", "must be set (" + names + ")");
  }
  return nullptr;
}

void CheckModelOptions(const config::ModelConfig& config, ConfigProblems* problems) {
  problems->Positive("model.embedding_dim", config.embedding_dim());
  problems->AddError(HiddenOptionsFromConfig(config).status());
}

Status CheckModelKind(const config::ModelConfig& config,
                      const std::vector<std::string>& label_names, ModelCheck check) {
  ConfigProblems problems;
  CheckModelOptions(config, &problems);
  check(config, label_names, &problems);
  return problems.ToStatus();
}

void CheckModelConfig(const config::Config& config, ConfigProblems* problems) {
  const config::ModelConfig& model = config.model();
  CheckModelOptions(model, problems);
  std::vector<std::string> label_names;
  for (const config::LabelSpec& label : config.data().labels()) label_names.push_back(label.name());
  if (const ModelKind* kind = FindModelKind(model, problems)) {
    kind->check(model, label_names, problems);
  }
}

int LabelColumn(const std::vector<std::string>& label_names, const std::string& name) {
  return static_cast<int>(std::find(label_names.begin(), label_names.end(), name) -
                          label_names.begin());
}

}  // namespace mtps
