// PLE (see ple.h); instantiated for float and double.

#include "worker/models/ple.h"
#include "worker/nn/eigen.h"

#include <random>

#include "worker/models/model_registry.h"
#include "worker/models/task_towers.h"
#include "worker/nn/layers.h"

namespace mtps {
namespace {

constexpr int kMaxLevels = 16;
constexpr int kMaxExperts = 1024;

// Owns its experts, gates and towers, their workspaces and its dropout RNG;
// not thread-safe (see Model).
template <typename T>
class Ple final : public Model<T> {
 public:
  using Matrix = RowMatrix<T>;

  Ple(int input_dim, int num_levels, int task_experts, int shared_experts,
      const std::vector<int>& expert_hidden, const std::vector<int>& tower_hidden,
      const HiddenOptions& hidden, const std::vector<std::string>& task_names, bool bias_prior,
      uint64_t seed)
      : input_dim_(input_dim),
        num_tasks_(static_cast<int>(task_names.size())),
        task_experts_(task_experts),
        shared_experts_(shared_experts),
        bias_prior_(bias_prior),
        dropout_rng_(seed) {
    const int k_tasks = num_tasks_;
    const int num_experts = k_tasks * task_experts + shared_experts;
    // Members of gate g (g < K: task g; g == K: the shared gate).
    members_.resize(k_tasks + 1);
    for (int g = 0; g < k_tasks; ++g) {
      for (int j = 0; j < task_experts; ++j) members_[g].push_back(g * task_experts + j);
      for (int j = 0; j < shared_experts; ++j) {
        members_[g].push_back(k_tasks * task_experts + j);
      }
    }
    for (int e = 0; e < num_experts; ++e) members_[k_tasks].push_back(e);

    int64_t at = 0;
    levels_.resize(num_levels);
    for (int l = 0; l < num_levels; ++l) {
      Level& level = levels_[l];
      const int in = l == 0 ? input_dim : expert_hidden.back();
      level.experts.reserve(num_experts);
      for (int e = 0; e < num_experts; ++e) {
        level.experts.emplace_back(in, expert_hidden, Mlp<T>::Output::kHidden, at, hidden);
        at += level.experts.back().num_params();
      }
      const bool shared_gate = l + 1 < num_levels && shared_experts > 0;
      const int num_gates = k_tasks + (shared_gate ? 1 : 0);
      level.gates.reserve(num_gates);
      for (int g = 0; g < num_gates; ++g) {
        level.gates.emplace_back(in, static_cast<int>(members_[g].size()), at,
                                 Linear<T>::Init::kXavier, hidden.matmul);
        at += level.gates.back().num_params();
      }
      level.expert_out.resize(num_experts);
      level.expert_grad.resize(num_experts);
      level.gate_logits.resize(num_gates);
      level.gate.resize(num_gates);
      level.out.resize(num_gates);
      level.out_grad.resize(num_gates);
    }
    towers_ = TaskTowers<T>(task_names, expert_hidden.back(), tower_hidden, hidden, at);
    num_params_ = at + towers_.num_params();
  }

  int64_t num_params() const override { return num_params_; }
  int input_dim() const override { return input_dim_; }
  const std::vector<std::string>& loss_names() const override { return towers_.names(); }
  const std::vector<std::string>& eval_task_names() const override { return towers_.names(); }

  void InitParams(uint64_t seed, T* params) const override {
    std::mt19937_64 rng(seed);
    for (const Level& level : levels_) {
      for (const Mlp<T>& expert : level.experts) expert.InitParams(&rng, params);
      for (const Linear<T>& gate : level.gates) gate.InitParams(&rng, params);
    }
    towers_.InitParams(&rng, params);
  }

  std::vector<ParamBlock> ParamBlocks() const override {
    // Named as in tests/reference/torch_models.py: E(level,task,j) task
    // experts, S(level,j) shared experts, G(level,task) task gates, G(level,s)
    // the shared gate.
    std::vector<ParamBlock> blocks;
    for (size_t l = 0; l < levels_.size(); ++l) {
      const Level& level = levels_[l];
      const std::string lv = std::to_string(l);
      for (size_t e = 0; e < level.experts.size(); ++e) {
        const int ei = static_cast<int>(e);
        const std::string name =
            GroupOf(ei) < num_tasks_
                ? "E(" + lv + "," + std::to_string(GroupOf(ei)) + "," +
                      std::to_string(ei % task_experts_) + ")"
                : "S(" + lv + "," + std::to_string(ei - num_tasks_ * task_experts_) + ")";
        level.experts[e].AppendBlocks(name, &blocks);
      }
      for (size_t g = 0; g < level.gates.size(); ++g) {
        const std::string which =
            static_cast<int>(g) < num_tasks_ ? std::to_string(g) : std::string("s");
        level.gates[g].AppendBlocks("G(" + lv + "," + which + ")", &blocks);
      }
    }
    towers_.AppendBlocks(&blocks);
    return blocks;
  }

  void InitOutputBiases(const Matrix& labels, T* params) const override {
    if (bias_prior_) towers_.InitOutputBiases(labels, params);
  }

  void SeedDropout(uint64_t seed) override { dropout_rng_.seed(seed); }

  std::vector<T> State() const override {
    std::vector<T> state;
    for (const Level& level : levels_) {
      for (const Mlp<T>& expert : level.experts) expert.AppendState(&state);
    }
    towers_.AppendState(&state);
    return state;
  }

  Status SetState(const std::vector<T>& state) override {
    StateReader<T> reader(state);
    for (Level& level : levels_) {
      for (Mlp<T>& expert : level.experts) MTPS_RETURN_IF_ERROR(expert.ReadState(&reader));
    }
    MTPS_RETURN_IF_ERROR(towers_.ReadState(&reader));
    return reader.Finish();
  }

  void ForwardBackward(const T* params, const Matrix& input, const Matrix& labels, T* param_grad,
                       Matrix* input_grad, std::vector<T>* losses) override {
    CheckShapes(input, labels);
    Forward(params, input, &dropout_rng_);
    const Eigen::Index n = input.rows();
    Level& top = levels_.back();
    losses->resize(num_tasks_);
    for (int k = 0; k < num_tasks_; ++k) {
      (*losses)[k] = towers_.ForwardBackward(k, params, top.out[k], labels, &dropout_rng_,
                                             param_grad, &top.out_grad[k]);
    }
    if (input_grad != nullptr) input_grad->setZero(n, input_dim_);
    for (size_t l = levels_.size(); l-- > 0;) {
      Level& level = levels_[l];
      Level* below = l > 0 ? &levels_[l - 1] : nullptr;
      // d loss / d (this level's inputs): the outputs of the level below, or
      // the input row; every gate and expert adds its part.
      if (below != nullptr) {
        for (Matrix& g : below->out_grad) g.setZero(n, below->out[0].cols());
      }
      auto input_grad_of = [&](int group) -> Matrix* {
        return below != nullptr ? &below->out_grad[group] : input_grad;
      };
      for (Matrix& g : level.expert_grad) g.setZero(n, level.expert_out[0]->cols());
      for (size_t g = 0; g < level.gates.size(); ++g) {
        // out[g] = sum_j gate[g][:, j] * expert_out[members[g][j]], row-wise.
        const std::vector<int>& members = members_[g];
        const Matrix& out_grad = level.out_grad[g];
        gate_grad_.resize(n, static_cast<Eigen::Index>(members.size()));
        for (size_t j = 0; j < members.size(); ++j) {
          const int e = members[j];
          gate_grad_.col(j) = out_grad.cwiseProduct(*level.expert_out[e]).rowwise().sum();
          level.expert_grad[e].array() += out_grad.array().colwise() * level.gate[g].col(j).array();
        }
        Softmax<T>::Backward(level.gate[g], gate_grad_, &gate_logit_grad_);
        level.gates[g].Backward(params, GateInput(l, static_cast<int>(g), input), gate_logit_grad_,
                                param_grad, input_grad_of(static_cast<int>(g)),
                                GradMode::kAccumulate);
      }
      for (size_t e = 0; e < level.experts.size(); ++e) {
        level.experts[e].Backward(params, level.expert_grad[e], param_grad,
                                  input_grad_of(GroupOf(static_cast<int>(e))),
                                  GradMode::kAccumulate);
      }
    }
  }

  void TrainingScores(const Matrix& labels, std::vector<EvalColumn>* out) const override {
    if (out->size() < static_cast<size_t>(towers_.num_tasks())) out->resize(towers_.num_tasks());
    for (int k = 0; k < towers_.num_tasks(); ++k) towers_.TrainingScores(k, labels, &(*out)[k]);
  }

  void Evaluate(const T* params, const Matrix& input, const Matrix& labels,
                std::vector<EvalColumn>* out) override {
    CheckShapes(input, labels);
    StartEvalColumns(towers_.names(), out);
    Forward(params, input, nullptr);
    for (int k = 0; k < num_tasks_; ++k) {
      towers_.Evaluate(k, params, levels_.back().out[k], labels, &(*out)[k]);
    }
  }

  void Predict(const T* params, const Matrix& input, Matrix* scores) override {
    CHECK_EQ(input.cols(), input_dim_);
    Forward(params, input, nullptr);
    scores->resize(input.rows(), num_tasks_);
    for (int k = 0; k < num_tasks_; ++k) {
      towers_.Predict(k, params, levels_.back().out[k], scores);
    }
  }

 private:
  // One extraction level: its experts (task 0's, ..., task K-1's, then the
  // shared ones), its gates (tasks 0..K-1, then the shared gate if any) and
  // their workspaces.
  struct Level {
    std::vector<Mlp<T>> experts;
    std::vector<Linear<T>> gates;
    std::vector<const Matrix*> expert_out;  // into experts[e]'s output, B x h
    std::vector<Matrix> expert_grad;        // d loss / d expert output, B x h
    std::vector<Matrix> gate_logits;        // per gate, B x members
    std::vector<Matrix> gate;               // softmax of gate_logits
    std::vector<Matrix> out;                // per gate: the mixed output, B x h
    std::vector<Matrix> out_grad;           // d loss / d out
  };

  // Which output of the level below expert e reads: its task, or K (shared).
  int GroupOf(int e) const {
    return e < num_tasks_ * task_experts_ ? e / task_experts_ : num_tasks_;
  }

  // The input of gate g (and of group g's experts) at level l.
  const Matrix& GateInput(size_t l, int g, const Matrix& input) const {
    return l == 0 ? input : levels_[l - 1].out[g];
  }

  void Forward(const T* params, const Matrix& input, std::mt19937_64* dropout_rng) {
    const Eigen::Index n = input.rows();
    for (size_t l = 0; l < levels_.size(); ++l) {
      Level& level = levels_[l];
      for (size_t e = 0; e < level.experts.size(); ++e) {
        const Matrix& x = GateInput(l, GroupOf(static_cast<int>(e)), input);
        level.expert_out[e] = &level.experts[e].Forward(params, x, dropout_rng);
      }
      for (size_t g = 0; g < level.gates.size(); ++g) {
        level.gates[g].Forward(params, GateInput(l, static_cast<int>(g), input),
                               &level.gate_logits[g]);
        Softmax<T>::Forward(level.gate_logits[g], &level.gate[g]);
        Matrix& mixed = level.out[g];
        mixed.setZero(n, level.expert_out[0]->cols());
        const std::vector<int>& members = members_[g];
        for (size_t j = 0; j < members.size(); ++j) {
          mixed.array() +=
              level.expert_out[members[j]]->array().colwise() * level.gate[g].col(j).array();
        }
      }
    }
  }

  void CheckShapes(const Matrix& input, const Matrix& labels) const {
    CHECK_EQ(input.cols(), input_dim_);
    CHECK_EQ(labels.rows(), input.rows());
    CHECK_EQ(labels.cols(), num_tasks_);
  }

  const int input_dim_;
  const int num_tasks_;
  const int task_experts_;
  const int shared_experts_;
  const bool bias_prior_;
  int64_t num_params_ = 0;
  std::vector<std::vector<int>> members_;  // experts each gate mixes, in gate-column order
  std::vector<Level> levels_;
  TaskTowers<T> towers_;
  std::mt19937_64 dropout_rng_;
  // Workspaces, reused between batches.
  Matrix gate_grad_;        // B x members
  Matrix gate_logit_grad_;  // B x members
};

}  // namespace

void CheckPleConfig(const config::ModelConfig& config, const std::vector<std::string>& label_names,
                    ConfigProblems* problems) {
  const config::PleConfig& ple = config.ple();
  problems->Positive("model.ple.num_levels", ple.num_levels());
  if (ple.num_levels() > kMaxLevels) {
    problems->Add("model.ple.num_levels", "must be <= " + std::to_string(kMaxLevels) + " (got " +
                                              std::to_string(ple.num_levels()) + ")");
  }
  bool experts_in_range = true;
  for (const auto& [name, value] : {std::pair<const char*, int>{"task_experts", ple.task_experts()},
                                    {"shared_experts", ple.shared_experts()}}) {
    if (value < 0 || value > kMaxExperts) {
      experts_in_range = false;
      problems->Add(std::string("model.ple.") + name, "must be in [0, " +
                                                          std::to_string(kMaxExperts) + "] (got " +
                                                          std::to_string(value) + ")");
    }
  }
  if (experts_in_range && ple.task_experts() + ple.shared_experts() == 0) {
    problems->Add("model.ple", "task_experts + shared_experts must be > 0 (a gate needs experts)");
  }
  problems->AddError(
      LayerWidths(ple.expert_hidden(), "model.ple.expert_hidden", "the expert output width")
          .status());
  problems->AddError(CheckTaskTowers(ple.tower_hidden(), label_names, "model.ple").status());
}

template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreatePle(const config::ModelConfig& config,
                                              const ModelInputs& inputs,
                                              const std::vector<std::string>& label_names,
                                              uint64_t seed) {
  MTPS_RETURN_IF_ERROR(CheckModelKind(config, label_names, CheckPleConfig));
  const config::PleConfig& ple = config.ple();
  MTPS_ASSIGN_OR_RETURN(HiddenOptions hidden,
                        HiddenOptionsFromConfig(config, inputs.compute_threads));
  const std::vector<int> expert_hidden(ple.expert_hidden().begin(), ple.expert_hidden().end());
  const std::vector<int> tower_hidden(ple.tower_hidden().begin(), ple.tower_hidden().end());
  return std::unique_ptr<Model<T>>(std::make_unique<Ple<T>>(
      inputs.sparse_width + inputs.dense_width, ple.num_levels(), ple.task_experts(),
      ple.shared_experts(), expert_hidden, tower_hidden, hidden, label_names,
      config.output_bias_from_prior(), seed));
}

template StatusOr<std::unique_ptr<Model<float>>> CreatePle<float>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);
template StatusOr<std::unique_ptr<Model<double>>> CreatePle<double>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);

}  // namespace mtps
