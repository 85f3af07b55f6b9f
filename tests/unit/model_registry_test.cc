// Tests of worker/models/model_registry.h: one kind per ModelConfig.kind
// member, keyed by its name; each kind's task names are those of the model
// its factory builds; the model section's config check names every broken
// rule's field with the message users saw before the rules moved out of
// common/config; and the config check and the factories are one rule: for
// every bad model config CreateModel fails with exactly the config check's
// message.
#include "worker/models/model_registry.h"

#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include "common/config/config.h"
#include "worker/models/model.h"

namespace mtps {
namespace {

// A job config with data labels click, conversion, income and the model
// section `model` (text format).
config::Config JobWithModel(const std::string& model) {
  config::Config c;
  for (const char* name : {"click", "conversion", "income"}) {
    config::LabelSpec* label = c.mutable_data()->add_labels();
    label->set_name(name);
    label->set_column(name);
  }
  CHECK(google::protobuf::TextFormat::ParseFromString(model, c.mutable_model())) << model;
  return c;
}

std::vector<std::string> LabelNames(const config::Config& c) {
  std::vector<std::string> names;
  for (const config::LabelSpec& label : c.data().labels()) names.push_back(label.name());
  return names;
}

// One valid model section per kind.
const std::vector<std::string> kValidModels = {
    "esmm { tower_hidden: [8, 4] }",
    "esmm { variant: NAIVE click_label: 'income' conversion_label: 'click' }",
    "mmoe { num_experts: 3 expert_hidden: [4] tower_hidden: [2] }",
    "shared_bottom { bottom_hidden: [6] tower_hidden: [3] }",
    "ple { num_levels: 2 shared_experts: 1 task_experts: 1 expert_hidden: [4] }",
    "single_task { label: 'conversion' only_where: 'click' hidden: [5] }",
    "embedding_dim: 4 activation: PRELU dropout: 0.5 batch_norm: true single_task { label: 'x' }",
};

TEST(ModelRegistryTest, OneKindPerMemberOfTheKindOneof) {
  const google::protobuf::OneofDescriptor* oneof =
      config::ModelConfig::descriptor()->FindOneofByName("kind");
  ASSERT_NE(oneof, nullptr);
  const std::vector<ModelKind>& kinds = ModelKinds();
  ASSERT_EQ(kinds.size(), static_cast<size_t>(oneof->field_count()));
  for (int i = 0; i < oneof->field_count(); ++i) {
    const std::string name = oneof->field(i)->name();
    SCOPED_TRACE(name);
    EXPECT_EQ(kinds[i].name, name);
    const ModelKind* kind = FindModelKind(name);
    ASSERT_NE(kind, nullptr);
    EXPECT_EQ(kind, &kinds[i]);
    EXPECT_NE(kind->check, nullptr);
    EXPECT_NE(kind->task_names, nullptr);
    EXPECT_NE(kind->factory<float>(), nullptr);
    EXPECT_NE(kind->factory<double>(), nullptr);
    // A config that sets the member finds the kind.
    config::ModelConfig model;
    model.GetReflection()->MutableMessage(&model, oneof->field(i));
    EXPECT_EQ(FindModelKind(model), kind);
  }
  EXPECT_EQ(FindModelKind("nope"), nullptr);
  ConfigProblems problems;
  EXPECT_EQ(FindModelKind(config::ModelConfig(), &problems), nullptr);
  EXPECT_EQ(problems.ToStatus().message(),
            "invalid config: model.kind: must be set (model.esmm, mmoe, shared_bottom, ple or "
            "single_task)");
}

TEST(ModelRegistryTest, TaskNamesAreThoseOfTheBuiltModel) {
  for (const std::string& text : kValidModels) {
    SCOPED_TRACE(text);
    config::Config c = JobWithModel(text);
    if (c.model().has_single_task() && c.model().single_task().label() == "x") {
      c.mutable_data()->mutable_labels(2)->set_name("x");
    }
    ASSERT_TRUE(ValidateConfig(c, {CheckModelConfig}).ok())
        << ValidateConfig(c, {CheckModelConfig});
    const ModelKind* kind = FindModelKind(c.model());
    ASSERT_NE(kind, nullptr);
    const std::vector<std::string> labels = LabelNames(c);
    auto model = CreateModel<float>(c.model(), ModelInputs{6, 2}, labels, 1);
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ(kind->task_names(c.model(), labels), (*model)->eval_task_names());
    auto model_double = kind->factory<double>()(c.model(), ModelInputs{6, 2}, labels, 1);
    ASSERT_TRUE(model_double.ok()) << model_double.status();
    EXPECT_EQ((*model_double)->num_params(), (*model)->num_params());
  }
  // ESMM's tasks, whatever its labels are called.
  const config::Config esmm = JobWithModel(kValidModels[1]);
  EXPECT_EQ(FindModelKind("esmm")->task_names(esmm.model(), LabelNames(esmm)),
            (std::vector<std::string>{"ctr", "cvr", "ctcvr"}));
}

struct BadCase {
  std::string model;    // text format of the model section
  std::string problem;  // "<field>: <why>" (a part of it)
};

// Every model rule, each broken once.
const std::vector<BadCase> kBadModels = {
    // Every kind.
    {"", "model.kind: must be set (model.esmm, mmoe, shared_bottom, ple or single_task)"},
    {"embedding_dim: 0 esmm {}", "model.embedding_dim: must be > 0 (got 0)"},
    {"dropout: 1 esmm {}", "model.dropout: must be in [0, 1)"},
    {"dropout: -0.5 mmoe { expert_hidden: [2] }", "model.dropout: must be in [0, 1)"},
    // ESMM: widths, and its click and conversion labels.
    {"esmm { tower_hidden: [8, 0] }", "model.esmm.tower_hidden[1]: must be in [1, 65536], got 0"},
    {"esmm { tower_hidden: [70000] }", "model.esmm.tower_hidden[0]: must be in [1, 65536]"},
    {"esmm { click_label: 'clk' }",
     "model.esmm.click_label: \"clk\" is not a data label (data.labels: click, conversion, "
     "income)"},
    {"esmm { conversion_label: 'buy' }",
     "model.esmm.conversion_label: \"buy\" is not a data label"},
    {"esmm { conversion_label: 'click' }",
     "model.esmm.conversion_label: must differ from model.esmm.click_label (both \"click\")"},
    // MMOE.
    {"mmoe { num_experts: 0 expert_hidden: [2] }", "model.mmoe.num_experts: must be > 0 (got 0)"},
    {"mmoe { num_experts: 5000 expert_hidden: [2] }",
     "model.mmoe.num_experts: must be <= 1024 (got 5000)"},
    {"mmoe { }",
     "model.mmoe.expert_hidden: must list at least one width (the expert output width)"},
    {"mmoe { expert_hidden: [-1] }", "model.mmoe.expert_hidden[0]: must be in [1, 65536], got -1"},
    {"mmoe { expert_hidden: [2] tower_hidden: [0] }", "model.mmoe.tower_hidden[0]: must be in"},
    // Shared-Bottom.
    {"shared_bottom { }", "model.shared_bottom.bottom_hidden: must list at least one width"},
    {"shared_bottom { bottom_hidden: [2, 0] }", "model.shared_bottom.bottom_hidden[1]: must be in"},
    {"shared_bottom { bottom_hidden: [2] tower_hidden: [-1] }",
     "model.shared_bottom.tower_hidden[0]: must be in"},
    // PLE.
    {"ple { num_levels: 0 expert_hidden: [2] }", "model.ple.num_levels: must be > 0 (got 0)"},
    {"ple { num_levels: 17 expert_hidden: [2] }", "model.ple.num_levels: must be <= 16 (got 17)"},
    {"ple { task_experts: -1 expert_hidden: [2] }",
     "model.ple.task_experts: must be in [0, 1024] (got -1)"},
    {"ple { shared_experts: 5000 expert_hidden: [2] }",
     "model.ple.shared_experts: must be in [0, 1024] (got 5000)"},
    {"ple { task_experts: 0 shared_experts: 0 expert_hidden: [2] }",
     "model.ple: task_experts + shared_experts must be > 0 (a gate needs experts)"},
    {"ple { }", "model.ple.expert_hidden: must list at least one width"},
    {"ple { expert_hidden: [2] tower_hidden: [0] }", "model.ple.tower_hidden[0]: must be in"},
    // Single task.
    {"single_task { label: 'buy' }", "model.single_task.label: \"buy\" is not a data label"},
    {"single_task { }", "model.single_task.label: \"\" is not a data label"},
    {"single_task { label: 'click' only_where: 'clicked' }",
     "model.single_task.only_where: \"clicked\" is not a data label"},
    {"single_task { label: 'click' only_where: 'click' }",
     "model.single_task.only_where: \"click\" is model.single_task.label itself; it must differ"},
    {"single_task { label: 'click' hidden: [4, 100000] }",
     "model.single_task.hidden[1]: must be in [1, 65536]"},
};

TEST(ModelRegistryTest, ConfigCheckNamesEveryRulesField) {
  for (const BadCase& t : kBadModels) {
    SCOPED_TRACE(t.model);
    const Status s = ValidateConfig(JobWithModel(t.model), {CheckModelConfig});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("invalid config: " + t.problem), std::string::npos) << s;
  }
}

TEST(ModelRegistryTest, FactoriesRunTheConfigCheck) {
  for (const BadCase& t : kBadModels) {
    SCOPED_TRACE(t.model);
    const config::Config c = JobWithModel(t.model);
    const Status check = ValidateConfig(c, {CheckModelConfig});
    ASSERT_FALSE(check.ok());
    auto model = CreateModel<float>(c.model(), ModelInputs{4, 1}, LabelNames(c), 1);
    ASSERT_FALSE(model.ok());
    EXPECT_EQ(model.status().message(), check.message());
    auto model_double = CreateModel<double>(c.model(), ModelInputs{4, 1}, LabelNames(c), 1);
    ASSERT_FALSE(model_double.ok());
    EXPECT_EQ(model_double.status().message(), check.message());
  }
}

TEST(ModelRegistryTest, DuplicateOrMissingTasksOfTheTaskPerLabelKinds) {
  for (const char* text : {"mmoe { expert_hidden: [2] }", "shared_bottom { bottom_hidden: [2] }",
                           "ple { expert_hidden: [2] }"}) {
    SCOPED_TRACE(text);
    config::Config c = JobWithModel(text);
    const std::string kind = FindModelKind(c.model())->name;
    c.mutable_data()->mutable_labels(1)->set_name("click");
    Status s = ValidateConfig(c, {CheckModelConfig});
    EXPECT_NE(s.message().find("model." + kind +
                               ": task names (data.labels[].name) must be "
                               "distinct"),
              std::string::npos)
        << s;
    c.mutable_data()->clear_labels();
    s = ValidateConfig(c, {CheckModelConfig});
    EXPECT_NE(s.message().find("model." + kind + ": needs at least one task: data.labels is empty"),
              std::string::npos)
        << s;
  }
}

}  // namespace
}  // namespace mtps
