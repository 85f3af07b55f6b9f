// Registration and heartbeats of servers and workers (see common/cluster/cluster_member.h).
#include "common/cluster/cluster_member.h"

#include <unistd.h>

#include <algorithm>

#include "common/metrics/exposition.h"

namespace mtps {

ClusterMember::ClusterMember(std::unique_ptr<Transport> transport, MemberOptions options)
    : transport_(std::move(transport)), options_(std::move(options)), rpc_(transport_.get(), -1) {}

Status ClusterMember::Join() {
  // With CURVE, a request's sender id must be the node its key belongs to.
  rpc_.set_authorizer([this](const Incoming& in) { return Authorize(in); });
  MTPS_ASSIGN_OR_RETURN(int port, transport_->Bind(options_.host, options_.port));
  transport_->NamePeer(kSchedulerNodeId, CurveNodeName(wire::SCHEDULER, 0));
  MTPS_RETURN_IF_ERROR(transport_->Connect(kSchedulerNodeId, options_.scheduler_endpoint));

  Message reg(wire::REGISTER);
  wire::NodeInfo* me = reg.meta.mutable_register_request()->mutable_node();
  me->set_role(options_.role);
  me->set_rank(options_.requested_rank);
  me->set_host(options_.advertise_host.empty() ? options_.host : options_.advertise_host);
  me->set_port(port);
  me->set_pid(static_cast<int64_t>(getpid()));
  auto reply = rpc_.Call(kSchedulerNodeId, std::move(reg), options_.register_timeout_ms);
  if (!reply.ok()) {
    return Status(reply.status().code(), "registering with the scheduler at " +
                                             options_.scheduler_endpoint + ": " +
                                             reply.status().message());
  }
  const wire::RegisterReply& r = reply->meta.register_reply();
  if (!config_.ParseFromString(r.config())) {
    return Status::Corruption("the scheduler sent a config that does not parse");
  }
  self_ = r.you();
  restore_ = r.restore();
  partition_map_ = reply->meta.partition_map();
  copy_partitions_.assign(r.copy_partitions().begin(), r.copy_partitions().end());
  nodes_.assign(r.nodes().begin(), r.nodes().end());
  rpc_.set_self_id(self_.node_id());
  rpc_.set_epoch(r.cluster_epoch());
  rpc_.set_retry(RetryPolicyFrom(config_.cluster().retry()));

  for (const wire::NodeInfo& n : nodes_) {
    if (n.role() == wire::SERVER) ++num_servers_;
    if (n.role() == wire::WORKER) ++num_workers_;
  }
  server_ids_.assign(num_servers_, -1);
  for (const wire::NodeInfo& n : nodes_) {
    if (n.role() != wire::SERVER) continue;
    if (n.rank() < 0 || n.rank() >= num_servers_ || server_ids_[n.rank()] != -1) {
      return Status::Corruption("the scheduler sent an inconsistent node list (server rank " +
                                std::to_string(n.rank()) + ")");
    }
    server_ids_[n.rank()] = n.node_id();
    // Workers talk to every server; with replicas, servers to each other.
    const bool replicated = config_.server().replicas() > 0 && n.node_id() != self_.node_id();
    if (options_.role == wire::WORKER || replicated) {
      transport_->NamePeer(n.node_id(), CurveNodeName(n.role(), n.rank()));
      MTPS_RETURN_IF_ERROR(
          transport_->Connect(n.node_id(), "tcp://" + n.host() + ":" + std::to_string(n.port())));
    }
  }
  last_heartbeat_ok_ = SteadyClock::now();
  next_heartbeat_ = SteadyClock::now();
  // Heartbeats go out from inside every Rpc wait, so a node blocked on a slow
  // peer (or busy serving) still shows it is alive.
  rpc_.set_tick([this] { MaybeHeartbeat(); }, config_.cluster().heartbeat_interval_ms());
  LOG(INFO) << wire::Role_Name(self_.role()) << " rank " << self_.rank() << " is node "
            << self_.node_id() << " on " << self_.host() << ":" << self_.port() << ", epoch "
            << rpc_.epoch() << ", " << num_servers_ << " servers, " << num_workers_ << " workers";
  return Status::OK();
}

Status ClusterMember::Authorize(const Incoming& in) const {
  if (in.authenticated_as.empty()) return Status::OK();  // no CURVE: nothing to look up
  const int sender = in.msg.meta.sender();
  std::string expected;
  if (sender == kSchedulerNodeId) expected = CurveNodeName(wire::SCHEDULER, 0);
  for (const wire::NodeInfo& n : nodes_) {
    if (n.node_id() == sender) expected = CurveNodeName(n.role(), n.rank());
  }
  return CheckSpeaksFor(in.authenticated_as, expected,
                        "node " + std::to_string(sender) +
                            (expected.empty() ? " (no such node)" : " (" + expected + ")"));
}

void ClusterMember::MaybeHeartbeat() {
  auto now = SteadyClock::now();
  if (heartbeat_in_flight_ || now < next_heartbeat_) return;
  const config::ClusterConfig& c = config_.cluster();
  next_heartbeat_ = now + std::chrono::milliseconds(c.heartbeat_interval_ms());
  heartbeat_in_flight_ = true;
  // A lost heartbeat must not use up the whole liveness window: each one
  // waits about two intervals, so several attempts fit in the timeout.
  int64_t timeout =
      std::min<int64_t>(2 * int64_t{c.heartbeat_interval_ms()}, c.heartbeat_timeout_ms());
  Message heartbeat(wire::HEARTBEAT);
  if (heartbeat_metrics_) {
    wire::MetricsSnapshot* snapshot = heartbeat.meta.mutable_metrics();
    heartbeat_metrics_(snapshot);
    if (const size_t bytes = snapshot->ByteSizeLong(); bytes > kMaxSnapshotBytes) {
      LOG_EVERY_N(WARNING, 100) << "metrics snapshot of " << bytes << " bytes exceeds "
                                << kMaxSnapshotBytes << "; heartbeats go without it";
      heartbeat.meta.clear_metrics();
    }
  }
  Status s = rpc_.StartAsync(
      kSchedulerNodeId, std::move(heartbeat), timeout, [this](StatusOr<Message>&& response) {
        heartbeat_in_flight_ = false;
        if (!response.ok()) {
          LOG(WARNING) << "heartbeat failed: " << response.status();
          return;
        }
        last_heartbeat_ok_ = SteadyClock::now();
        NoteCheckpointRequest(response->meta.checkpoint_request());
        if (response->meta.has_partition_map() && response->meta.cluster_epoch() != rpc_.epoch()) {
          // A failover: the scheduler moved partitions
          // in a new epoch.
          rpc_.set_epoch(response->meta.cluster_epoch());
          partition_map_ = response->meta.partition_map();
          LOG(INFO) << "cluster epoch " << rpc_.epoch() << ": partitions moved";
          if (on_partition_map_) on_partition_map_();
        }
        if (response->meta.job_state() != wire::JOB_RUNNING) {
          job_state_ = response->meta.job_state();
          end_reason_ = response->meta.status_message();
        }
      });
  if (!s.ok()) {
    heartbeat_in_flight_ = false;
    LOG(WARNING) << "cannot send a heartbeat: " << s;
  }
}

Status ClusterMember::CheckLiveness() const {
  if (job_state_ == wire::JOB_ABORTED) {
    return Status::Aborted("the scheduler aborted the job: " + end_reason_);
  }
  auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() -
                                                                      last_heartbeat_ok_);
  if (silent.count() > config_.cluster().heartbeat_timeout_ms()) {
    return Status::Unavailable("no heartbeat answer from the scheduler for " +
                               std::to_string(silent.count()) + " ms");
  }
  return Status::OK();
}

Status ClusterMember::Tick(Deadline until) {
  rpc_.Poll(until);
  return CheckLiveness();
}

int ClusterMember::PrimaryOf(int partition) const {
  if (partition_map_.partitions_size() == 0) return server_ids_.at(static_cast<size_t>(partition));
  return partition_map_.partitions(partition).primary();
}

void ClusterMember::Leave() {
  const int64_t wait_ms =
      std::max<int64_t>(500, 2 * int64_t{config_.cluster().heartbeat_interval_ms()});
  auto reply = rpc_.Call(kSchedulerNodeId, Message(wire::LEAVE), wait_ms);
  if (!reply.ok()) VLOG(1) << "leaving: " << reply.status();
}

Status ClusterMember::Barrier(const std::string& name, int expected) {
  Message msg(wire::BARRIER);
  msg.meta.mutable_barrier()->set_name(name);
  msg.meta.mutable_barrier()->set_expected(expected);
  MTPS_ASSIGN_OR_RETURN(uint64_t id, rpc_.Start(kSchedulerNodeId, std::move(msg),
                                                config_.cluster().barrier_timeout_ms()));
  // Keep heartbeating while waiting: a barrier can last as long as training.
  while (!rpc_.Done(id)) {
    rpc_.Poll(Deadline::In(config_.cluster().heartbeat_interval_ms()), /*return_after_one=*/true);
    MTPS_RETURN_IF_ERROR(CheckLiveness());
  }
  auto reply = rpc_.Wait(id);
  if (!reply.ok())
    return Status(reply.status().code(), "barrier '" + name + "': " + reply.status().message());
  return Status::OK();
}

}  // namespace mtps
