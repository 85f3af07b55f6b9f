// The table settings' rules (see ps/table/table_config.h).
#include "ps/table/table_config.h"

#include "ps/table/count_min_sketch.h"

namespace mtps {
namespace {

// `name` under `field` ("" for none).
std::string Under(const std::string& field, const std::string& name) {
  return field.empty() ? name : field + "." + name;
}

void CheckAdagrad(const config::Adagrad& adagrad, const std::string& field, ConfigProblems* p) {
  p->PositiveFinite(field + ".learning_rate", adagrad.learning_rate());
  // Zero would make the first Adagrad step 0/0.
  p->PositiveFinite(field + ".initial_accumulator", adagrad.initial_accumulator());
}

void CheckAdam(const config::Adam& adam, const std::string& field, ConfigProblems* p) {
  p->PositiveFinite(field + ".learning_rate", adam.learning_rate());
  if (!(adam.beta1() >= 0 && adam.beta1() < 1)) p->Add(field + ".beta1", "must be in [0, 1)");
  if (!(adam.beta2() >= 0 && adam.beta2() < 1)) p->Add(field + ".beta2", "must be in [0, 1)");
  p->PositiveFinite(field + ".epsilon", adam.epsilon());
}

}  // namespace

void CheckSparseOptimizer(const config::SparseOptimizer& optimizer, const std::string& field,
                          ConfigProblems* p) {
  switch (optimizer.kind_case()) {
    case config::SparseOptimizer::kSgd:
      p->PositiveFinite(Under(field, "sgd.learning_rate"), optimizer.sgd().learning_rate());
      break;
    case config::SparseOptimizer::kAdam:
      CheckAdam(optimizer.adam(), Under(field, "adam"), p);
      break;
    case config::SparseOptimizer::kFtrl: {
      const config::Ftrl& ftrl = optimizer.ftrl();
      p->PositiveFinite(Under(field, "ftrl.alpha"), ftrl.alpha());
      p->NonNegativeFinite(Under(field, "ftrl.beta"), ftrl.beta());
      p->NonNegativeFinite(Under(field, "ftrl.l1"), ftrl.l1());
      p->NonNegativeFinite(Under(field, "ftrl.l2"), ftrl.l2());
      break;
    }
    case config::SparseOptimizer::kAdagrad:
    case config::SparseOptimizer::KIND_NOT_SET:
      CheckAdagrad(optimizer.adagrad(), Under(field, "adagrad"), p);
      break;
  }
}

void CheckDenseOptimizer(const config::DenseOptimizer& optimizer, const std::string& field,
                         ConfigProblems* p) {
  if (optimizer.has_adagrad()) {
    CheckAdagrad(optimizer.adagrad(), Under(field, "adagrad"), p);
  } else {
    CheckAdam(optimizer.adam(), Under(field, "adam"), p);  // the default instance when unset
  }
}

void CheckInitScale(double scale, const std::string& field, ConfigProblems* p) {
  p->NonNegativeFinite(field, scale);
}

void CheckSparseTableLimits(int64_t admission_min_count, int64_t evict_after_steps,
                            int64_t max_rows, const std::string& prefix, ConfigProblems* p) {
  const std::string admission = Under(prefix, "admission_min_count");
  p->NonNegative(admission, admission_min_count);
  if (admission_min_count > int64_t{CountMinSketch::kMaxCount}) {
    p->Add(admission, "must be <= " + std::to_string(CountMinSketch::kMaxCount) + " (got " +
                          std::to_string(admission_min_count) + ")");
  }
  const std::string evict = Under(prefix, "evict_after_steps");
  p->NonNegative(evict, evict_after_steps);
  if (evict_after_steps > kMaxEvictAfterSteps) {
    p->Add(evict, "must be < 2^31 (got " + std::to_string(evict_after_steps) + ")");
  }
  const std::string rows = Under(prefix, "max_rows");
  p->NonNegative(rows, max_rows);
  if (max_rows > kMaxTableRows) {
    p->Add(rows, "must be <= 2^32 - 2 (got " + std::to_string(max_rows) + ")");
  }
}

void CheckTableConfig(const config::Config& config, ConfigProblems* p) {
  const config::ServerConfig& server = config.server();
  CheckSparseOptimizer(server.sparse_optimizer(), "server.sparse_optimizer", p);
  CheckSparseTableLimits(server.admission_min_count(), server.evict_after_steps(),
                         server.max_rows(), "server", p);
  CheckDenseOptimizer(server.dense_optimizer(), "server.dense_optimizer", p);
  CheckInitScale(server.embedding_init_scale(), "server.embedding_init_scale", p);
}

}  // namespace mtps
