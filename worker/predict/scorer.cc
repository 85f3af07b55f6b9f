// A model's evaluation forward pass outside a job (see worker/predict/scorer.h).
#include "worker/predict/scorer.h"

#include <utility>

#include "common/config/config.h"
#include "worker/models/model_registry.h"

namespace mtps {

Scorer::Scorer(std::unique_ptr<Model<float>> model, const FeatureSchema& schema, int dim,
               RowLookup lookup)
    : model_(std::move(model)),
      dim_(dim),
      groups_(model_->embedding_groups()),
      lookup_(std::move(lookup)) {
  for (int g = 0; g < groups_; ++g) {
    model_slots_.insert(model_slots_.end(), schema.slots.begin(), schema.slots.end());
  }
}

StatusOr<std::unique_ptr<Scorer>> Scorer::Create(const config::Config& config,
                                                 const FeatureSchema& schema,
                                                 const std::vector<float>& params,
                                                 const std::vector<float>& state,
                                                 RowLookup lookup) {
  const int dim = config.model().embedding_dim();
  ModelInputs inputs;
  inputs.sparse_width = static_cast<int>(schema.slots.size()) * dim;
  inputs.dense_width = static_cast<int>(schema.dense_names.size());
  // Evaluation draws no dropout masks: the seed does not matter.
  MTPS_ASSIGN_OR_RETURN(std::unique_ptr<Model<float>> model,
                        CreateModel<float>(config.model(), inputs, schema.label_names, 0));
  if (static_cast<int64_t>(params.size()) != model->num_params()) {
    return Status::InvalidArgument("the checkpoint holds " + std::to_string(params.size()) +
                                   " dense parameters; the " + ModelKindName(config.model()) +
                                   " model of its config has " +
                                   std::to_string(model->num_params()));
  }
  if (Status s = model->SetState(state); !s.ok()) {
    return Status::InvalidArgument("model state: " + s.message());
  }
  std::unique_ptr<Scorer> scorer(new Scorer(std::move(model), schema, dim, std::move(lookup)));
  scorer->params_.assign(params.begin(), params.end());
  return scorer;
}

void Scorer::Score(const Batch& batch, RowMatrix<float>* scores) {
  if (groups_ > 1) ReplicateSlots(batch, groups_, &grouped_);
  const Batch& view = groups_ > 1 ? grouped_ : batch;
  deduper_.Unique(view.keys, &unique_keys_, &key_index_);
  emb_.resize(unique_keys_.size() * static_cast<size_t>(dim_));
  if (!unique_keys_.empty()) lookup_(unique_keys_.data(), unique_keys_.size(), emb_.data());
  PoolEmbeddings<float>(view, model_slots_, key_index_, emb_.data(), dim_, &input_);
  model_->Predict(params_.data(), input_, scores);
}

void Scorer::Evaluate(const Batch& batch, std::vector<EvalColumn>* out) {
  labels_ =
      Eigen::Map<const RowMatrix<float>>(batch.labels.data(), batch.num_examples, batch.num_labels);
  model_->Evaluate(params_.data(), input_, labels_, out);
}

}  // namespace mtps
