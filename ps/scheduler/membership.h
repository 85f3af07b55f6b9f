// Membership: who is in the job, and whether they are alive.
//
// Registration: servers and workers register (wire::RegisterRequest); each
// request is checked against the job (role, how many of it, host:port) and
// held until every expected node has registered. Then Register assigns
// ranks (a requested rank when valid and free, else the first free one in
// arrival order), node ids (scheduler 0, servers 1..S, workers S+1..S+W) and
// the cluster epoch, and the held requests go back to the caller to answer.
// Heartbeats: every request of a member refreshes its last-seen time;
// FindSilent names a member silent for longer than the heartbeat timeout.
// At the job's end it tracks which members were told the outcome.
//
// Never replies: the Scheduler, which owns it, answers the requests it hands
// back. Called only from the Scheduler's Run thread; not thread-safe.
#ifndef MTPS_PS_SCHEDULER_MEMBERSHIP_H_
#define MTPS_PS_SCHEDULER_MEMBERSHIP_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/base/deadline.h"
#include "common/base/status.h"
#include "common/net/transport.h"
#include "proto/wire.pb.h"

namespace mtps {

// RoleName (how cluster.json and the logs spell roles): common/net/wire.h.
// "worker 1 (node 3, pid 42 on host)", for logs and abort reasons.
std::string NodeLabel(const wire::NodeInfo& node);
// A fresh random cluster epoch; never 0 (which means "unregistered").
uint64_t NewClusterEpoch();

class Membership {
 public:
  struct Member {
    wire::NodeInfo info;  // with rank and node id assigned
    SteadyClock::time_point last_seen;
    bool informed_of_end = false;  // was told the job finished or aborted
    bool dead = false;             // declared dead (a failover took its place)
  };

  Membership(int num_servers, int num_workers);

  int num_servers() const { return num_servers_; }
  int num_workers() const { return num_workers_; }
  int total_nodes() const { return num_servers_ + num_workers_; }

  // --- Registration (until registered()).
  // OK when `request` (a REGISTER) may join: a server or a worker, not more
  // of its role than the job expects, with a host and a port in 1..65535.
  // Otherwise the error to answer it with.
  Status CheckRegistration(const Incoming& request) const;
  // Holds a request CheckRegistration accepted.
  void AddPending(Incoming&& request);
  int num_pending() const { return static_cast<int>(pending_.size()); }
  // Every expected node's request is held.
  bool all_pending() const { return num_pending() == total_nodes(); }
  // Assigns ranks and node ids to the held requests and makes their nodes
  // the members, with the cluster `epoch`, last seen `now`. Returns each held
  // request's node, in the order of TakePending.
  std::vector<wire::NodeInfo> Register(uint64_t epoch, SteadyClock::time_point now);
  // Removes and returns the held requests (to answer them).
  std::vector<Incoming> TakePending();

  bool registered() const { return registered_; }
  uint64_t epoch() const { return epoch_; }  // 0 until registered

  // --- Members (after Register).
  // The member with `node_id`, nullptr if none. The caller refreshes its
  // last_seen when a request of it arrives.
  Member* Find(int node_id);
  // The member with `node_id`, which must exist.
  const Member& Get(int node_id) const { return members_.at(node_id); }
  // Every member, by node id.
  const std::map<int, Member>& members() const { return members_; }
  // The first member (by node id) not seen within `timeout` before `now`;
  // nullptr when all are alive or before registration.
  const Member* FindSilent(SteadyClock::time_point now, std::chrono::milliseconds timeout) const;
  // `node_id` is dead (its partitions failed over): it is never found
  // silent again, needs no news of the end, and its requests are refused.
  void MarkDead(int node_id);
  // Dead member `node_id` is back (a restarted process, `info` its new
  // host, port and pid; rank and node id stay): alive, seen at `now`.
  void Revive(int node_id, const wire::NodeInfo& info, SteadyClock::time_point now);
  // The job's outcome reached `node_id`.
  void MarkInformed(int node_id);
  // Every member was told the outcome (true when there are none).
  bool AllInformed() const;

 private:
  int num_servers_;
  int num_workers_;
  std::vector<Incoming> pending_;  // accepted registrations, in arrival order
  std::map<int, Member> members_;  // by node id, after registration
  bool registered_ = false;
  uint64_t epoch_ = 0;
};

}  // namespace mtps

#endif  // MTPS_PS_SCHEDULER_MEMBERSHIP_H_
