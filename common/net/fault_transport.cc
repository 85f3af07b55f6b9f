// Fault injection into a process's outgoing messages (see
// common/net/fault_transport.h).
#include "common/net/fault_transport.h"

#include <algorithm>
#include <chrono>

#include <glog/logging.h>

#include "common/base/hash.h"

namespace mtps {
namespace {

// A message held back behind the next one leaves anyway after this long.
constexpr auto kReorderHold = std::chrono::milliseconds(50);

}  // namespace

FaultOptions FaultOptionsFor(const config::FaultConfig& faults, wire::Role role) {
  FaultOptions o;
  if (faults.roles_size() > 0 && std::find(faults.roles().begin(), faults.roles().end(),
                                           RoleName(role)) == faults.roles().end()) {
    return o;  // not this role: nothing
  }
  o.seed = faults.seed();
  o.drop = faults.drop();
  o.duplicate = faults.duplicate();
  o.reorder = faults.reorder();
  o.delay_ms_max = faults.delay_ms_max();
  for (const std::string& name : faults.ops()) {
    wire::Op op;
    if (wire::Op_Parse(name, &op)) o.ops.insert(op);
  }
  return o;
}

std::vector<std::pair<std::string, std::string>> CheckFaultConfig(const config::FaultConfig& faults,
                                                                  const std::string& field) {
  std::vector<std::pair<std::string, std::string>> problems;
  auto probability = [&](const char* name, double p) {
    if (!(p >= 0 && p <= 1)) {
      problems.emplace_back(field + "." + name, "must be in [0, 1], got " + std::to_string(p));
    }
  };
  probability("drop", faults.drop());
  probability("duplicate", faults.duplicate());
  probability("reorder", faults.reorder());
  if (faults.delay_ms_max() < 0) {
    problems.emplace_back(field + ".delay_ms_max",
                          "must be >= 0, got " + std::to_string(faults.delay_ms_max()));
  }
  for (const std::string& name : faults.ops()) {
    wire::Op op;
    if (!wire::Op_Parse(name, &op) || op == wire::OP_UNSPECIFIED) {
      problems.emplace_back(field + ".ops", "no op '" + name + "' (e.g. PUSH_SPARSE, PULL_SPARSE)");
    }
  }
  for (const std::string& name : faults.roles()) {
    if (name != "scheduler" && name != "server" && name != "worker") {
      problems.emplace_back(field + ".roles", "'" + name + "' is not scheduler, server or worker");
    }
  }
  return problems;
}

FaultInjectingTransport::FaultInjectingTransport(std::unique_ptr<Transport> inner)
    : inner_(std::move(inner)) {}

void FaultInjectingTransport::Configure(const FaultOptions& options, uint64_t salt) {
  options_ = options;
  configured_ = options.active();
  rng_.seed(Mix64(options.seed ^ Mix64(salt + 0x9e3779b97f4a7c15ULL)));
  counters_ = Counters();
}

Status FaultInjectingTransport::Send(int peer, Message msg) {
  Destination to;
  to.peer = peer;
  return Offer(std::move(to), std::move(msg));
}

Status FaultInjectingTransport::Reply(const std::string& reply_to, Message msg) {
  Destination to;
  to.reply_to = reply_to;
  return Offer(std::move(to), std::move(msg));
}

Status FaultInjectingTransport::Deliver(const Destination& to, Message msg) {
  return to.reply_to.empty() ? inner_->Send(to.peer, std::move(msg))
                             : inner_->Reply(to.reply_to, std::move(msg));
}

Status FaultInjectingTransport::Offer(Destination to, Message msg) {
  FlushDue();
  // Registration (request and reply) is never faulted: a job must form.
  if (!configured_ || msg.meta.op() == wire::REGISTER ||
      (!options_.ops.empty() && options_.ops.count(msg.meta.op()) == 0)) {
    return Deliver(to, std::move(msg));
  }
  ++counters_.messages;
  // Every draw happens for every message, in the same order, so the
  // schedule depends only on the seed and the message count.
  const double drop = Uniform();
  const double duplicate = Uniform();
  const double reorder = Uniform();
  const double delay_a = Uniform();
  const double delay_b = Uniform();
  if (drop < options_.drop) {
    ++counters_.dropped;
    return Status::OK();
  }
  const int copies = duplicate < options_.duplicate ? 2 : 1;
  if (copies == 2) ++counters_.duplicated;
  const bool behind = reorder < options_.reorder;
  if (behind) ++counters_.reordered;
  // The destination's earlier messages held back behind this one may go.
  for (Held& h : held_) {
    if (h.behind_next && !(h.to < to) && !(to < h.to)) h.behind_next = false;
  }
  const auto now = SteadyClock::now();
  for (int c = 0; c < copies; ++c) {
    const double u = c == 0 ? delay_a : delay_b;
    const auto delay = std::chrono::microseconds(
        static_cast<int64_t>(u * 1000.0 * static_cast<double>(options_.delay_ms_max)));
    Message m = c + 1 < copies ? msg.Clone() : std::move(msg);
    if (delay.count() == 0 && !behind) {
      MTPS_RETURN_IF_ERROR(Deliver(to, std::move(m)));
      continue;
    }
    if (delay.count() > 0) ++counters_.delayed;
    Held h;
    h.delay_due = now + delay;
    h.due = h.delay_due + (behind ? kReorderHold : SteadyClock::duration::zero());
    h.order = order_++;
    h.to = to;
    h.msg = std::move(m);
    h.behind_next = behind;
    held_.push_back(std::move(h));
  }
  FlushDue();
  return Status::OK();
}

void FaultInjectingTransport::FlushDue() {
  if (held_.empty()) return;
  const auto now = SteadyClock::now();
  // A held message leaves once its delay is over and nothing holds it back
  // (reorder: the next message to its destination went), or at its latest.
  std::vector<Held> ready;
  std::vector<Held> keep;
  for (Held& h : held_) {
    if ((!h.behind_next && h.delay_due <= now) || h.due <= now) {
      ready.push_back(std::move(h));
    } else {
      keep.push_back(std::move(h));
    }
  }
  held_ = std::move(keep);
  std::sort(ready.begin(), ready.end(), [](const Held& a, const Held& b) {
    return a.delay_due != b.delay_due ? a.delay_due < b.delay_due : a.order < b.order;
  });
  for (Held& h : ready) {
    const wire::Op op = h.msg.meta.op();
    Status s = Deliver(h.to, std::move(h.msg));
    if (!s.ok()) {
      ++counters_.undeliverable;
      LOG_EVERY_N(WARNING, 100) << "a held " << wire::Op_Name(op) << " is lost: " << s;
    }
  }
}

StatusOr<Incoming> FaultInjectingTransport::Receive(Deadline deadline) {
  for (;;) {
    FlushDue();
    Deadline wait = deadline;
    for (const Held& h : held_) {
      const auto leaves = h.behind_next ? h.due : h.delay_due;
      if (leaves < wait.at()) wait = Deadline(leaves);
    }
    StatusOr<Incoming> in = inner_->Receive(wait);
    if (in.ok() || in.status().code() != StatusCode::kDeadlineExceeded) return in;
    if (deadline.Expired()) return in;
    // A held message fell due (or the inner transport was woken): the
    // caller's wake-ups must still return at once.
    if (held_.empty() || !wait.Expired()) return in;
  }
}

}  // namespace mtps
