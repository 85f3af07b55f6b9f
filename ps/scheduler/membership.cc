// Registration, ranks and liveness of a job's nodes (see
// ps/scheduler/membership.h).
#include "ps/scheduler/membership.h"

#include <random>

namespace mtps {

std::string NodeLabel(const wire::NodeInfo& n) {
  return std::string(RoleName(n.role())) + " " + std::to_string(n.rank()) + " (node " +
         std::to_string(n.node_id()) + ", pid " + std::to_string(n.pid()) + " on " + n.host() + ")";
}

uint64_t NewClusterEpoch() {
  std::random_device rd;
  return ((static_cast<uint64_t>(rd()) << 32) | rd()) | 1;
}

Membership::Membership(int num_servers, int num_workers)
    : num_servers_(num_servers), num_workers_(num_workers) {}

Status Membership::CheckRegistration(const Incoming& request) const {
  const wire::NodeInfo& node = request.msg.meta.register_request().node();
  const int expected = node.role() == wire::SERVER   ? num_servers_
                       : node.role() == wire::WORKER ? num_workers_
                                                     : 0;
  if (expected == 0) {
    return Status::InvalidArgument("cannot register a node of role " +
                                   wire::Role_Name(node.role()));
  }
  int same_role = 0;
  for (const Incoming& p : pending_) {
    if (p.msg.meta.register_request().node().role() == node.role()) ++same_role;
  }
  if (same_role >= expected) {
    return Status::InvalidArgument("too many " + std::string(RoleName(node.role())) +
                                   "s: the job expects " + std::to_string(expected));
  }
  if (node.port() <= 0 || node.port() > 65535 || node.host().empty()) {
    return Status::InvalidArgument("registration without a valid host:port");
  }
  return Status::OK();
}

void Membership::AddPending(Incoming&& request) { pending_.push_back(std::move(request)); }

std::vector<wire::NodeInfo> Membership::Register(uint64_t epoch, SteadyClock::time_point now) {
  // Ranks: requested ranks first (when valid and free), then arrival order.
  std::map<wire::Role, std::vector<bool>> taken;
  taken[wire::SERVER].assign(num_servers_, false);
  taken[wire::WORKER].assign(num_workers_, false);
  std::vector<int> rank(pending_.size(), -1);
  for (size_t i = 0; i < pending_.size(); ++i) {
    const wire::NodeInfo& n = pending_[i].msg.meta.register_request().node();
    std::vector<bool>& t = taken[n.role()];
    if (n.rank() >= 0 && n.rank() < static_cast<int>(t.size()) && !t[n.rank()]) {
      rank[i] = n.rank();
      t[n.rank()] = true;
    }
  }
  for (size_t i = 0; i < pending_.size(); ++i) {
    if (rank[i] >= 0) continue;
    std::vector<bool>& t = taken[pending_[i].msg.meta.register_request().node().role()];
    for (size_t r = 0; r < t.size(); ++r) {
      if (!t[r]) {
        rank[i] = static_cast<int>(r);
        t[r] = true;
        break;
      }
    }
  }
  epoch_ = epoch;
  std::vector<wire::NodeInfo> nodes;
  for (size_t i = 0; i < pending_.size(); ++i) {
    wire::NodeInfo n = pending_[i].msg.meta.register_request().node();
    n.set_rank(rank[i]);
    n.set_node_id(n.role() == wire::SERVER ? 1 + rank[i] : 1 + num_servers_ + rank[i]);
    nodes.push_back(n);
    members_[n.node_id()] = Member{n, now, false};
  }
  registered_ = true;
  return nodes;
}

std::vector<Incoming> Membership::TakePending() {
  std::vector<Incoming> pending = std::move(pending_);
  pending_.clear();
  return pending;
}

Membership::Member* Membership::Find(int node_id) {
  auto it = members_.find(node_id);
  return it == members_.end() ? nullptr : &it->second;
}

const Membership::Member* Membership::FindSilent(SteadyClock::time_point now,
                                                 std::chrono::milliseconds timeout) const {
  if (!registered_) return nullptr;
  for (const auto& [id, m] : members_) {
    if (!m.dead && now - m.last_seen > timeout) return &m;
  }
  return nullptr;
}

void Membership::MarkDead(int node_id) {
  if (Member* m = Find(node_id)) m->dead = true;
}

void Membership::Revive(int node_id, const wire::NodeInfo& info, SteadyClock::time_point now) {
  Member* m = Find(node_id);
  if (m == nullptr) return;
  m->info.set_host(info.host());
  m->info.set_port(info.port());
  m->info.set_pid(info.pid());
  m->dead = false;
  m->informed_of_end = false;
  m->last_seen = now;
}

void Membership::MarkInformed(int node_id) {
  if (Member* m = Find(node_id)) m->informed_of_end = true;
}

bool Membership::AllInformed() const {
  for (const auto& [id, m] : members_) {
    if (!m.informed_of_end && !m.dead) return false;
  }
  return true;
}

}  // namespace mtps
