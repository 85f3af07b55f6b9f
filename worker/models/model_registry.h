// The model kinds: one ModelKind per member of the ModelConfig.kind oneof
// (proto/config.proto), keyed by the member's field name ("esmm", "mmoe",
// "shared_bottom", "ple", "single_task"), with the kind's config rules, its
// factory and its evaluation task names. CreateModel (worker/models/model.h)
// dispatches through it; CheckModelConfig is the model section's ConfigCheck
// the scheduler passes to LoadConfig (launcher/node_main.cc). A kind's rules
// are written once, with its model (esmm.cc, mmoe.cc, ...): the factory runs
// the same check before it builds anything, so a config that loads builds.
#ifndef MTPS_WORKER_MODELS_MODEL_REGISTRY_H_
#define MTPS_WORKER_MODELS_MODEL_REGISTRY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "common/base/status.h"
#include "common/config/config_check.h"
#include "proto/config.pb.h"
#include "worker/models/model.h"

namespace mtps {

// The rules of one kind's section (model.<kind>) for a job whose data labels
// are label_names (data.labels[].name, in order). Adds a problem per rule
// broken, naming the field ("model.esmm.click_label: ...").
using ModelCheck = void (*)(const config::ModelConfig& config,
                            const std::vector<std::string>& label_names, ConfigProblems* problems);

// Builds a model as CreateModel does (after CreateModel's input-width checks).
template <typename T>
using ModelFactory = StatusOr<std::unique_ptr<Model<T>>> (*)(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);

struct ModelKind {
  // The ModelConfig.kind member (and config section model.<name>).
  const char* name;
  // The kind's rules (see ModelCheck); run by CheckModelConfig and by the
  // factories.
  ModelCheck check;
  // Model::eval_task_names of the model the kind builds for label_names
  // from a config that passes `check`, without building it.
  std::vector<std::string> (*task_names)(const config::ModelConfig& config,
                                         const std::vector<std::string>& label_names);
  // The factory: runs CheckModelKind(config, label_names, check) and builds
  // the model; a config problem is InvalidArgument naming every field.
  ModelFactory<float> create_float;
  ModelFactory<double> create_double;

  template <typename T>
  ModelFactory<T> factory() const {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
    if constexpr (std::is_same_v<T, float>) {
      return create_float;
    } else {
      return create_double;
    }
  }
};

// Every kind, in the order of the ModelConfig.kind members.
const std::vector<ModelKind>& ModelKinds();

// The kind whose ModelConfig.kind member is `name`, or nullptr.
const ModelKind* FindModelKind(const std::string& name);

// The kind `config` sets, or nullptr when it sets none (then, if `problems`
// is given, adds "model.kind: must be set (...)").
const ModelKind* FindModelKind(const config::ModelConfig& config,
                               ConfigProblems* problems = nullptr);

// The rules every kind shares: model.embedding_dim > 0; model.activation
// and model.dropout as HiddenOptionsFromConfig (worker/nn/layers.h) reads
// them.
void CheckModelOptions(const config::ModelConfig& config, ConfigProblems* problems);

// CheckModelOptions and `check`, as a Status ("invalid config: <field>:
// <why>; ..."); what every factory runs first.
Status CheckModelKind(const config::ModelConfig& config,
                      const std::vector<std::string>& label_names, ModelCheck check);

// The model section's ConfigCheck: CheckModelOptions, a kind is set, and the
// kind's check against the data label names.
void CheckModelConfig(const config::Config& config, ConfigProblems* problems);

// The column (index into label_names) of a label a kind's check has found
// in label_names (FindLabel).
int LabelColumn(const std::vector<std::string>& label_names, const std::string& name);

// The kinds' checks and task names, defined with their models.
// ESMM (esmm.cc): model.esmm.tower_hidden widths; click_label and
// conversion_label are two different data labels (the CTR tower learns the
// clicks, pCTCVR their conversions); a known variant. Tasks ctr, cvr, ctcvr.
void CheckEsmmConfig(const config::ModelConfig& config, const std::vector<std::string>& label_names,
                     ConfigProblems* problems);
std::vector<std::string> EsmmTaskNames(const config::ModelConfig& config,
                                       const std::vector<std::string>& label_names);
// MMOE (mmoe.cc): num_experts in [1, 1024]; expert_hidden non-empty; widths;
// at least one task, distinct task names. A task per data label.
void CheckMmoeConfig(const config::ModelConfig& config, const std::vector<std::string>& label_names,
                     ConfigProblems* problems);
// Shared-Bottom (shared_bottom.cc): bottom_hidden non-empty; widths; tasks
// as MMOE's.
void CheckSharedBottomConfig(const config::ModelConfig& config,
                             const std::vector<std::string>& label_names, ConfigProblems* problems);
// PLE (ple.cc): num_levels in [1, 16]; task_experts and shared_experts in
// [0, 1024], not both 0; expert_hidden non-empty; widths; tasks as MMOE's.
void CheckPleConfig(const config::ModelConfig& config, const std::vector<std::string>& label_names,
                    ConfigProblems* problems);
// The tasks of the one-task-per-data-label kinds (MMOE, Shared-Bottom, PLE):
// the data labels (task_towers.cc).
std::vector<std::string> TaskPerLabelNames(const config::ModelConfig& config,
                                           const std::vector<std::string>& label_names);
// Single task (single_task.cc): hidden widths; label is a data label;
// only_where, when set, another one. Its one task is named after the label.
void CheckSingleTaskConfig(const config::ModelConfig& config,
                           const std::vector<std::string>& label_names, ConfigProblems* problems);
std::vector<std::string> SingleTaskTaskNames(const config::ModelConfig& config,
                                             const std::vector<std::string>& label_names);

}  // namespace mtps

#endif  // MTPS_WORKER_MODELS_MODEL_REGISTRY_H_
