// ClusterMember: a server's or worker's membership in a job.
//
// Binds the node's own endpoint (port 0 unless told), registers with the
// scheduler (which assigns rank, node id and the cluster epoch, and sends the
// job config), connects to the servers (workers), and keeps the node alive
// in the scheduler's eyes with heartbeats whose responses carry the job
// state. Owns the node's Transport and Rpc; used by one thread.
#ifndef MTPS_COMMON_CLUSTER_CLUSTER_MEMBER_H_
#define MTPS_COMMON_CLUSTER_CLUSTER_MEMBER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/base/deadline.h"
#include "common/base/status.h"
#include "common/net/curve.h"
#include "common/net/rpc.h"
#include "common/net/transport.h"
#include "proto/config.pb.h"
#include "proto/wire.pb.h"

namespace mtps {

// Where a node listens and how it finds the scheduler (from mtps-node's
// flags). A value type.
struct MemberOptions {
  wire::Role role = wire::ROLE_UNSPECIFIED;
  int requested_rank = -1;  // -1: any free rank
  // The address to bind, and the one peers are told to connect to (empty:
  // `host`; set when binding e.g. 0.0.0.0 or behind a NAT).
  std::string host = "127.0.0.1";
  std::string advertise_host;
  int port = 0;
  std::string scheduler_endpoint;  // "tcp://host:port"
  int register_timeout_ms = 60000;
};

// A node's membership (see the file comment). Owned by the node's main
// thread, which is the only one that may call it; the server's shard threads
// never touch it.
class ClusterMember {
 public:
  // Takes ownership of `transport`.
  ClusterMember(std::unique_ptr<Transport> transport, MemberOptions options);

  // Binds, registers (returns once every node of the job registered, or at
  // the deadline) and, for workers, connects to every server.
  Status Join();

  const wire::NodeInfo& self() const { return self_; }
  const std::vector<wire::NodeInfo>& nodes() const { return nodes_; }
  const config::Config& config() const { return config_; }
  int num_servers() const { return num_servers_; }
  int num_workers() const { return num_workers_; }
  // Node ids of the servers, by rank.
  const std::vector<int>& server_ids() const { return server_ids_; }
  Rpc& rpc() { return rpc_; }
  // What to reload when the job resumes from a checkpoint (RegisterReply).
  bool resuming() const { return restore_.has_checkpoint_id(); }
  // A server rejoining a replicated job after it died: the partitions it
  // copies from their primaries (RegisterReply.copy_partitions).
  bool rejoining() const { return !copy_partitions_.empty(); }
  const std::vector<int>& copy_partitions() const { return copy_partitions_; }
  const wire::Restore& restore() const { return restore_; }

  // The newest checkpoint the scheduler asked for (0: none), as heard in
  // heartbeat replies and passed on by the node (NoteCheckpointRequest, from
  // other replies of the scheduler).
  uint64_t checkpoint_requested() const { return checkpoint_requested_; }
  void NoteCheckpointRequest(uint64_t id) {
    if (id > checkpoint_requested_) checkpoint_requested_ = id;
  }

  // Where the key partitions live (a job with server.replicas; empty
  // otherwise): from the RegisterReply, then from every heartbeat reply of
  // a newer cluster epoch, which also becomes the Rpc's epoch. `on_change`
  // runs (on this thread, inside a wait) after each change.
  const wire::PartitionMap& partition_map() const { return partition_map_; }
  void set_on_partition_map(std::function<void()> on_change) {
    on_partition_map_ = std::move(on_change);
  }
  // The node id of the server now primary for `partition` (the rank of the
  // server that held it at the start).
  int PrimaryOf(int partition) const;

  // Fills the metrics snapshot every heartbeat carries (wire.Meta.metrics;
  // the scheduler serves the cluster's). Runs on this thread when a
  // heartbeat is sent; null: heartbeats carry none. A snapshot larger than
  // kMaxSnapshotBytes (common/metrics/exposition.h) is left out and logged.
  void set_heartbeat_metrics(std::function<void(wire::MetricsSnapshot*)> fill) {
    heartbeat_metrics_ = std::move(fill);
  }

  // Serves traffic (and sends heartbeats when due) until `until`.
  // Returns Aborted when the scheduler reports the job aborted, Unavailable
  // when it has been silent longer than the heartbeat timeout.
  Status Tick(Deadline until);
  // True once the scheduler reported the job finished.
  bool finished() const { return job_state_ == wire::JOB_FINISHED; }

  // Tells the scheduler this node is leaving (it learned the job's outcome,
  // or failed), so the scheduler need not wait for it; waits a little for
  // the answer (the scheduler may be gone) and never fails.
  void Leave();

  // Waits until `expected` nodes reached barrier `name` (deadline: the
  // config's barrier timeout), sending heartbeats meanwhile.
  Status Barrier(const std::string& name, int expected);

 private:
  void MaybeHeartbeat();
  Status CheckLiveness() const;
  // The Rpc's authorizer: a CURVE-authenticated request's sender id must be
  // its key's node (common/net/curve.h).
  Status Authorize(const Incoming& in) const;

  std::unique_ptr<Transport> transport_;
  MemberOptions options_;
  Rpc rpc_;
  wire::NodeInfo self_;
  std::vector<wire::NodeInfo> nodes_;
  config::Config config_;
  int num_servers_ = 0;
  int num_workers_ = 0;
  std::vector<int> server_ids_;
  wire::Restore restore_;
  uint64_t checkpoint_requested_ = 0;
  wire::PartitionMap partition_map_;
  std::vector<int> copy_partitions_;
  std::function<void()> on_partition_map_;
  std::function<void(wire::MetricsSnapshot*)> heartbeat_metrics_;

  SteadyClock::time_point last_heartbeat_ok_;
  SteadyClock::time_point next_heartbeat_;
  bool heartbeat_in_flight_ = false;
  wire::JobState job_state_ = wire::JOB_RUNNING;
  std::string end_reason_;  // the scheduler's word when it aborted the job
};

}  // namespace mtps

#endif  // MTPS_COMMON_CLUSTER_CLUSTER_MEMBER_H_
