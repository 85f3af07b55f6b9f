// The rules of the table settings of a job config (config.server: the sparse
// and dense optimizers, the embedding initialisation, admission, eviction
// and the row cap), owned by the tables that rely on them. Each function adds
// one problem (common/config/config_check.h) for every rule broken, with the
// field named under `field` ("server.sparse_optimizer" gives
// "server.sparse_optimizer.adam.beta1"; "" gives "adam.beta1").
//
// The same functions check the tables' own options (ValidateSparseTableOptions
// in ps/table/sparse_table.h, ValidateDenseOptimizer in ps/table/dense_store.h),
// and CheckTableConfig is the ConfigCheck the scheduler passes to LoadConfig
// (launcher/node_main.cc), so a config that loads never makes a table
// CHECK-fail.
#ifndef MTPS_PS_TABLE_TABLE_CONFIG_H_
#define MTPS_PS_TABLE_TABLE_CONFIG_H_

#include <cstdint>
#include <string>

#include "common/config/config_check.h"
#include "proto/config.pb.h"

namespace mtps {

// Rows are 32-bit in a table's index, and one value is reserved.
constexpr int64_t kMaxTableRows = (int64_t{1} << 32) - 2;
// Steps are compared modulo 2^32.
constexpr int64_t kMaxEvictAfterSteps = (int64_t{1} << 31) - 1;

// The optimizer a SparseTable runs for `optimizer` (Adagrad with its defaults
// when no kind is set): Adagrad learning_rate and initial_accumulator (it
// divides by sqrt(acc)) > 0; SGD learning_rate > 0; Adam learning_rate and
// epsilon > 0, beta1 and beta2 in [0, 1); FTRL alpha > 0, beta, l1, l2 >= 0.
// Every rate is also finite.
void CheckSparseOptimizer(const config::SparseOptimizer& optimizer, const std::string& field,
                          ConfigProblems* problems);

// The optimizer a DenseStore runs for `optimizer` (Adam with its defaults
// when no kind is set), with the rules of CheckSparseOptimizer.
void CheckDenseOptimizer(const config::DenseOptimizer& optimizer, const std::string& field,
                         ConfigProblems* problems);

// An embedding init scale: finite and >= 0.
void CheckInitScale(double scale, const std::string& field, ConfigProblems* problems);

// A sparse table's admission, eviction and row cap, each >= 0 (0: off) and
// within what the table can count: admission_min_count <= 65535 (the
// sketch's 16-bit counters, CountMinSketch::kMaxCount), evict_after_steps
// < 2^31 (32-bit steps), max_rows <= 2^32 - 2 (32-bit row numbers). Fields
// "<prefix>.admission_min_count" etc.
void CheckSparseTableLimits(int64_t admission_min_count, int64_t evict_after_steps,
                            int64_t max_rows, const std::string& prefix, ConfigProblems* problems);

// All of the above for config.server: server.sparse_optimizer,
// server.admission_min_count, server.evict_after_steps, server.max_rows,
// server.dense_optimizer, server.embedding_init_scale.
void CheckTableConfig(const config::Config& config, ConfigProblems* problems);

}  // namespace mtps

#endif  // MTPS_PS_TABLE_TABLE_CONFIG_H_
