// Model::Predict and Model::ParamBlocks (worker/models/model.h), what
// mtps-predict scores with and exports: for every model kind, Predict gives
// every row of every task the score Evaluate gives the rows it evaluates
// (ESMM's cvr and single-task only_where on the rows they keep, the others
// on all), ESMM's pCTCVR is pCTR * pCVR; the blocks tile [0, num_params)
// with unique names, their shapes fit the layer widths, and each block
// lands where InitParams writes that kind of parameter (biases 0,
// batch-norm scales 1 and shifts 0, PReLU slopes 0.25, weights within their
// init bound), so an index shifted against the real layout fails.

#include "worker/nn/eigen.h"

#include <cmath>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include "worker/models/model.h"

namespace mtps {
namespace {

struct Case {
  std::string name;
  std::string model;  // ModelConfig in text format
  std::vector<std::string> labels;
  ModelInputs inputs;
  // The label column that selects the rows of task `filtered_task` (-1: none).
  int filtered_task = -1;
  int filter_label = -1;
};

std::vector<Case> Cases() {
  return {
      {"mmoe",
       "mmoe { num_experts: 3 expert_hidden: [5, 4] tower_hidden: [3] }",
       {"a", "b"},
       {8, 3}},
      {"mmoe_batch_norm_prelu",
       "batch_norm: true activation: PRELU mmoe { num_experts: 2 expert_hidden: [6] "
       "tower_hidden: [4] }",
       {"a", "b", "c"},
       {6, 2}},
      {"shared_bottom",
       "shared_bottom { bottom_hidden: [7, 5] tower_hidden: [3] }",
       {"a", "b"},
       {4, 2}},
      {"ple",
       "ple { num_levels: 2 shared_experts: 2 task_experts: 1 expert_hidden: [5] "
       "tower_hidden: [3] }",
       {"a", "b"},
       {6, 1}},
      {"ple_batch_norm",
       "batch_norm: true ple { num_levels: 3 shared_experts: 1 task_experts: 2 "
       "expert_hidden: [4] }",
       {"a", "b"},
       {4, 2}},
      {"esmm", "esmm { tower_hidden: [6, 4] }", {"click", "conversion"}, {8, 2}, 1, 0},
      {"esmm_no_sharing_batch_norm",
       "batch_norm: true esmm { tower_hidden: [5] variant: NO_SHARING }",
       {"click", "conversion"},
       {4, 2},
       1,
       0},
      {"esmm_naive_prelu",
       "activation: PRELU esmm { tower_hidden: [5] variant: NAIVE }",
       {"click", "conversion"},
       {4, 3},
       1,
       0},
      {"single_task_only_where",
       "single_task { label: 'cvr' hidden: [6, 3] only_where: 'clk' }",
       {"clk", "cvr"},
       {5, 2},
       0,
       0},
  };
}

std::unique_ptr<Model<double>> Build(const Case& c) {
  config::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(c.model, &config)) << c.model;
  auto model = CreateModel<double>(config, c.inputs, c.labels, 1);
  EXPECT_TRUE(model.ok()) << c.name << ": " << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

// Parameters after InitParams, moved a little so that biases are not 0; a
// model state whose running statistics are not the initial ones.
std::vector<double> Params(Model<double>* model, std::mt19937_64* rng) {
  std::vector<double> params(static_cast<size_t>(model->num_params()));
  model->InitParams(7, params.data());
  std::uniform_real_distribution<double> noise(-0.1, 0.1);
  for (double& p : params) p += noise(*rng);
  std::vector<double> state = model->State();
  for (size_t i = 0; i < state.size(); ++i) state[i] += 0.1 + 0.05 * static_cast<double>(i % 7);
  EXPECT_TRUE(model->SetState(state).ok());
  return params;
}

TEST(ModelPredictTest, PredictScoresEveryRowAsEvaluateScoresTheRowsItKeeps) {
  std::mt19937_64 rng(5);
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    auto model = Build(c);
    ASSERT_NE(model, nullptr);
    const std::vector<double> params = Params(model.get(), &rng);
    const int rows = 23;
    RowMatrix<double> input(rows, model->input_dim());
    std::uniform_real_distribution<double> u(-2, 2);
    for (Eigen::Index i = 0; i < input.size(); ++i) input.data()[i] = u(rng);
    RowMatrix<double> labels(rows, static_cast<int>(c.labels.size()));
    for (int i = 0; i < rows; ++i) {
      for (int k = 0; k < labels.cols(); ++k) labels(i, k) = (rng() % 3 == 0) ? 1 : 0;
    }
    std::vector<EvalColumn> eval;
    model->Evaluate(params.data(), input, labels, &eval);
    RowMatrix<double> scores;
    model->Predict(params.data(), input, &scores);
    const size_t tasks = model->eval_task_names().size();
    ASSERT_EQ(scores.rows(), rows);
    ASSERT_EQ(static_cast<size_t>(scores.cols()), tasks);
    ASSERT_EQ(eval.size(), tasks);
    int filtered_rows = 0;
    for (size_t t = 0; t < tasks; ++t) {
      SCOPED_TRACE(model->eval_task_names()[t]);
      size_t at = 0;
      for (int i = 0; i < rows; ++i) {
        EXPECT_GT(scores(i, t), 0.0);
        EXPECT_LT(scores(i, t), 1.0);
        const bool kept = static_cast<int>(t) != c.filtered_task || labels(i, c.filter_label) > 0.5;
        if (!kept) continue;
        ASSERT_LT(at, eval[t].scores.size());
        EXPECT_EQ(static_cast<float>(scores(i, t)), eval[t].scores[at]) << "row " << i;
        ++at;
      }
      EXPECT_EQ(at, eval[t].scores.size()) << "Evaluate scored other rows than expected";
      if (static_cast<int>(t) == c.filtered_task) filtered_rows = static_cast<int>(at);
    }
    if (c.filtered_task >= 0) {
      // The filter left rows out, so Predict's extra rows were tested.
      EXPECT_GT(filtered_rows, 0);
      EXPECT_LT(filtered_rows, rows);
    }
    if (model->eval_task_names() == std::vector<std::string>{"ctr", "cvr", "ctcvr"}) {
      for (int i = 0; i < rows; ++i) {
        EXPECT_DOUBLE_EQ(scores(i, 2), scores(i, 0) * scores(i, 1)) << "row " << i;
      }
    }
  }
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

TEST(ModelPredictTest, ParamBlocksTileTheLayoutWhereInitParamsPutsEachKind) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    auto model = Build(c);
    ASSERT_NE(model, nullptr);
    std::vector<double> params(static_cast<size_t>(model->num_params()));
    model->InitParams(3, params.data());
    const std::vector<ParamBlock> blocks = model->ParamBlocks();
    ASSERT_FALSE(blocks.empty());
    std::set<std::string> names;
    int64_t at = 0;
    int64_t bn_widths = 0;
    for (const ParamBlock& b : blocks) {
      SCOPED_TRACE(b.name);
      EXPECT_TRUE(names.insert(b.name).second) << "duplicate name";
      EXPECT_EQ(b.offset, at);
      ASSERT_GT(b.size(), 0);
      at = b.offset + b.size();
      ASSERT_LE(at, model->num_params());
      const double* v = params.data() + b.offset;
      if (EndsWith(b.name, ".W")) {
        ASSERT_EQ(b.shape.size(), 2u);
        // He or Glorot: |w| <= sqrt(6 / fan_in), and some weight is not 0.
        const double bound = std::sqrt(6.0 / static_cast<double>(b.shape[0]));
        double largest = 0;
        for (int64_t i = 0; i < b.size(); ++i) largest = std::max(largest, std::fabs(v[i]));
        EXPECT_LE(largest, bound);
        EXPECT_GT(largest, 0.0);
      } else {
        ASSERT_EQ(b.shape.size(), 1u);
        double want = 0;  // ".b", ".bn_shift"
        if (EndsWith(b.name, ".bn_scale")) want = 1;
        if (EndsWith(b.name, ".prelu")) want = 0.25;
        if (EndsWith(b.name, ".bn_scale")) bn_widths += b.size();
        for (int64_t i = 0; i < b.size(); ++i) EXPECT_EQ(v[i], want) << "element " << i;
      }
      if (EndsWith(b.name, ".b")) {
        // A bias follows its W and has its output width.
        const ParamBlock& w = *(&b - 1);
        EXPECT_EQ(w.name, b.name.substr(0, b.name.size() - 2) + ".W");
        EXPECT_EQ(b.shape[0], w.shape[1]);
      }
    }
    EXPECT_EQ(at, model->num_params());
    // Model::State: a mean and a variance per batch-norm unit.
    EXPECT_EQ(static_cast<int64_t>(model->State().size()), 2 * bn_widths);
  }
}

TEST(ModelPredictTest, MmoeBlocksAreNamedAsTheReferenceNamesThem) {
  const Case c{"census",
               "mmoe { num_experts: 8 expert_hidden: [16] tower_hidden: [8] }",
               {"income", "never_married"},
               {248, 7}};
  auto model = Build(c);
  ASSERT_NE(model, nullptr);
  const std::vector<ParamBlock> blocks = model->ParamBlocks();
  // 8 experts of one layer, 2 gates, 2 towers of two layers: a W and b each.
  ASSERT_EQ(blocks.size(), 8u * 2 + 2 * 2 + 2 * 4);
  EXPECT_EQ(blocks[0].name, "expert0.layer0.W");
  EXPECT_EQ(blocks[0].shape, (std::vector<int64_t>{255, 16}));
  EXPECT_EQ(blocks[16].name, "gate0.W");
  EXPECT_EQ(blocks[16].shape, (std::vector<int64_t>{255, 8}));
  EXPECT_EQ(blocks[20].name, "tower0.layer0.W");
  EXPECT_EQ(blocks[20].shape, (std::vector<int64_t>{16, 8}));
  EXPECT_EQ(blocks.back().name, "tower1.layer1.b");
  EXPECT_EQ(blocks.back().shape, (std::vector<int64_t>{1}));
}

}  // namespace
}  // namespace mtps
