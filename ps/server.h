// ParameterServer: one server process's share of the model.
//
// Holds the sparse embedding rows whose keys hash to this server
// (common/partition.h) and one contiguous block of the dense tower
// parameters, and answers pulls and pushes until the scheduler reports the
// job finished. A request is validated completely before anything is
// applied; a bad request gets an error response and never stops the server.
// Single-threaded: the thread calling Run owns the tables, so rows need no
// locks.
#ifndef MTPS_PS_SERVER_H_
#define MTPS_PS_SERVER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "common/cluster_member.h"
#include "common/status.h"
#include "ps/dense_store.h"
#include "ps/sparse_table.h"

namespace mtps {

class ParameterServer {
 public:
  // `member` has joined the job and outlives the server. Checks the table
  // and optimizer settings of the job config first (they arrive from the
  // scheduler and must not crash the server).
  static StatusOr<std::unique_ptr<ParameterServer>> Create(ClusterMember* member);

  // Serves until the job finishes (OK) or is aborted / the scheduler is lost.
  Status Run();

  // Counters, for logs and tests. `rejected` counts rejected requests; the
  // sparse table's figures (rows, admitted, admission_rejected: pushed keys
  // that only counted toward admission, evicted, sparse_memory_bytes) are
  // refreshed after every sparse pull and push.
  struct Stats {
    int64_t pulls = 0, pushes = 0, keys_pulled = 0, keys_pushed = 0, rejected = 0;
    int64_t rows = 0, admitted = 0, admission_rejected = 0, evicted = 0;
    int64_t sparse_memory_bytes = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  explicit ParameterServer(ClusterMember* member);
  void Handle(Incoming&& request);
  Status HandlePullSparse(const Incoming& request, Message* response);
  Status HandlePushSparse(const Incoming& request);
  Status HandlePullDense(Message* response);
  Status HandlePushDense(const Incoming& request);
  Status HandleInitDense(const Incoming& request);
  // Copies the sparse table's counters and memory into stats_.
  void UpdateTableStats();

  ClusterMember* member_;
  SparseTable table_;
  DenseStore dense_;
  Stats stats_;
  std::vector<uint64_t> key_scratch_;
  std::vector<float> value_scratch_;
};

}  // namespace mtps

#endif  // MTPS_PS_SERVER_H_
