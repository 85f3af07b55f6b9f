// KvClient: a worker's view of the parameter servers.
//
// Slices each request by server (sparse keys by KeyPartitioner, the dense
// parameter array by DenseBlockOf), keeps every slice in flight at once, and
// reassembles the answers. Pushes are asynchronous: Push returns once the
// requests are queued and only waits while too many are unanswered; an
// error of an earlier push surfaces on the next call. Requests to one server
// travel over one ordered connection, so a pull sees this worker's earlier
// pushes to that server.
// Not thread-safe: uses the Rpc of the thread that owns it.
#ifndef MTPS_WORKER_CLIENT_KV_CLIENT_H_
#define MTPS_WORKER_CLIENT_KV_CLIENT_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "common/base/status.h"
#include "common/cluster/partition.h"
#include "common/metrics/metrics.h"
#include "common/net/array_pool.h"
#include "common/net/rpc.h"

namespace mtps {

// The client's settings (from the job config): a value type.
struct KvClientOptions {
  int dim = 8;             // embedding width
  int64_t num_params = 0;  // length of the dense parameter array
  int request_timeout_ms = 30000;
  int max_inflight_pushes = 8;  // Push calls (one per batch) unanswered, at most
};

// Where a KvClient records the round trip of each request it sent that was
// answered OK, from sending to the answer's arrival, in seconds (null: not
// recorded). Not owned; they outlive the client.
struct KvClientMetrics {
  Histogram* pull_sparse = nullptr;
  Histogram* pull_dense = nullptr;
  Histogram* push_sparse = nullptr;
  Histogram* push_dense = nullptr;
};

// A pull in flight: started by KvClient::StartPull, completed (or dropped)
// by FinishPull. Opaque to callers; reusable.
struct PendingPull {
  std::vector<uint64_t> sparse_ids, dense_ids;  // request ids per server (0: none)
  // Per server, how many keys it was sent and their indexes in the pull
  // (empty with one server: every key, in order).
  std::vector<size_t> counts;
  std::vector<std::vector<uint32_t>> positions;
  SteadyClock::time_point started{};  // when StartPull sent them
};

// See the file comment. Owned by the worker's Trainer; called only from the
// thread that owns the Rpc it uses.
class KvClient {
 public:
  // `rpc` outlives the client; server_ids[r] is the node id of server rank
  // r, the primary of partition r until SetPrimaries says otherwise. Every
  // request names its partition (Meta.partition).
  KvClient(Rpc* rpc, std::vector<int> server_ids, KvClientOptions options);

  // Records round trips from now on (see KvClientMetrics).
  void set_metrics(const KvClientMetrics& metrics) { metrics_ = metrics; }

  // After a failover: primaries[p] is the node id now serving partition p
  // (the p-th server's keys and dense block). Unanswered requests for a
  // partition that moved are resent to its new primary.
  void SetPrimaries(std::vector<int> primaries);

  // Sends every server its block of `params` (the first INIT_DENSE wins).
  Status InitDense(const float* params);

  // Fetches the rows of `keys` (distinct) into emb (keys.size() x dim) and,
  // when dense is not null, the dense parameters into dense (num_params).
  // create_missing=false answers unknown keys with their initial value
  // without creating rows (evaluation). A server refuses a pull whose answer
  // would exceed 256 MiB.
  Status Pull(const std::vector<uint64_t>& keys, bool create_missing, float* emb, float* dense);

  // Pull in two steps, so a worker can compute while a pull is in flight
  // (prefetch): StartPull sends every request; FinishPull waits for the
  // answers and writes them as Pull does. A started pull must be finished
  // (or the client destroyed) before its PendingPull is reused.
  Status StartPull(const std::vector<uint64_t>& keys, bool create_missing, bool want_dense,
                   PendingPull* pull);
  Status FinishPull(PendingPull* pull, float* emb, float* dense);

  // Sends the gradients of `keys` (emb_grad: keys.size() x dim) and, when
  // dense_grad is not null, of the dense parameters.
  Status Push(const std::vector<uint64_t>& keys, const float* emb_grad, const float* dense_grad);

  // Waits until every push is answered; returns the first push error.
  Status Flush();

  // Push calls (batches) answered completely, counting from the first in
  // order: the worker's clock for consistency control.
  int64_t acked_pushes() const { return first_unacked_push_; }
  // Push requests (one per server and Push call, sparse and dense apart)
  // answered OK, and resends of push requests (summary.json "updates").
  int64_t push_requests_acknowledged() const { return push_requests_acknowledged_; }
  int64_t push_requests_resent() const {
    return rpc_->resent(wire::PUSH_SPARSE) + rpc_->resent(wire::PUSH_DENSE);
  }

 private:
  // Splits keys by server into slice_keys_[s] (slice_counts_[s] of them,
  // in pooled arrays) and slice_positions_[s] (their indexes; left empty
  // with one server, whose slice is every key in order).
  void Slice(const std::vector<uint64_t>& keys);
  // Serves traffic until at most `limit` Push calls are unanswered.
  Status WaitForPushesAtMost(size_t limit);
  // Forgets started requests (ids of 0 are skipped) when a call gives up early.
  void CancelAll(const std::vector<uint64_t>& ids);
  void Cancel(PendingPull* pull);

  Rpc* rpc_;
  std::vector<int> server_ids_;
  KvClientOptions options_;
  KeyPartitioner partitioner_;
  // Request payloads are sent without a copy from arrays these pools keep
  // mapped (no page faults, no zero-fill per request).
  ArrayPool<uint64_t> key_pool_;
  ArrayPool<float> grad_pool_;
  std::vector<PooledArray<uint64_t>> slice_keys_;
  std::vector<size_t> slice_counts_;
  std::vector<std::vector<uint32_t>> slice_positions_;
  std::vector<uint32_t> server_of_;  // Slice's scratch: each key's server
  // Requests still unanswered per Push call not yet complete, oldest first;
  // the front is Push call number first_unacked_push_.
  std::deque<int> push_remaining_;
  int64_t first_unacked_push_ = 0;
  int64_t push_requests_acknowledged_ = 0;
  Status push_error_;
  std::vector<float> scratch_;
  KvClientMetrics metrics_;
  // Expires with the client; push callbacks left in the Rpc check it (a
  // push answered after the client is gone once crashed a worker leaving
  // the job: integration.failure, the diverging run).
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace mtps

#endif  // MTPS_WORKER_CLIENT_KV_CLIENT_H_
