// Remembered requests per sender incarnation (see common/net/request_window.h).
#include "common/net/request_window.h"

#include <algorithm>
#include <vector>

#include "proto/checkpoint.pb.h"

namespace mtps {

void RequestWindow::RaiseFloor(SenderState* s, uint64_t floor) {
  if (floor <= s->floor) return;
  s->floor = floor;
  auto end = s->ids.lower_bound(floor);
  entries_ -= static_cast<size_t>(std::distance(s->ids.begin(), end));
  s->ids.erase(s->ids.begin(), end);
}

void RequestWindow::EvictIdle(SteadyClock::time_point now) {
  if (now < next_idle_sweep_) return;
  // Sweeping costs a pass over the senders: at most once per tenth of the limit.
  next_idle_sweep_ =
      now + std::chrono::milliseconds(std::max<int64_t>(1, options_.max_idle_ms / 10));
  const auto limit = std::chrono::milliseconds(options_.max_idle_ms);
  for (auto it = senders_.begin(); it != senders_.end();) {
    if (now - it->second.last_heard > limit) {
      entries_ -= it->second.ids.size();
      ++counters_.evicted_idle;
      it = senders_.erase(it);
    } else {
      ++it;
    }
  }
}

RequestWindow::Seen RequestWindow::Begin(const RequestKey& key, uint64_t done_below,
                                         SteadyClock::time_point now) {
  EvictIdle(now);
  const SenderKey sk{key.sender, key.incarnation};
  auto it = senders_.find(sk);
  if (it == senders_.end()) {
    if (senders_.size() >= options_.max_senders) {
      auto quietest = std::min_element(
          senders_.begin(), senders_.end(),
          [](const auto& a, const auto& b) { return a.second.last_heard < b.second.last_heard; });
      entries_ -= quietest->second.ids.size();
      ++counters_.evicted_overflow;
      senders_.erase(quietest);
    }
    it = senders_.emplace(sk, SenderState{}).first;
  }
  SenderState& s = it->second;
  s.last_heard = now;
  RaiseFloor(&s, done_below);
  if (key.id < s.floor) return Seen::kStale;
  auto [e, inserted] = s.ids.try_emplace(key.id);
  if (!inserted) return e->second.done ? Seen::kDone : Seen::kInProgress;
  ++entries_;
  if (s.ids.size() > options_.max_ids_per_sender) {
    // The oldest id goes; the floor rises past it, so a late copy of it is stale.
    auto oldest = s.ids.begin();
    s.floor = oldest->first + 1;
    s.ids.erase(oldest);
    --entries_;
    ++counters_.evicted_overflow;
  }
  return Seen::kNew;
}

void RequestWindow::Finish(const RequestKey& key, std::string outcome) {
  const SenderKey sk{key.sender, key.incarnation};
  auto it = senders_.find(sk);
  if (it == senders_.end()) {
    if (senders_.size() >= options_.max_senders) return;  // Begin evicted it: nobody resends
    it = senders_.emplace(sk, SenderState{}).first;
    it->second.last_heard = SteadyClock::now();
  }
  SenderState& s = it->second;
  if (key.id < s.floor) return;
  auto [e, inserted] = s.ids.try_emplace(key.id);
  if (inserted) ++entries_;
  e->second.done = true;
  e->second.outcome = std::move(outcome);
}

void RequestWindow::Forget(const RequestKey& key) {
  auto it = senders_.find(SenderKey{key.sender, key.incarnation});
  if (it == senders_.end()) return;
  entries_ -= it->second.ids.erase(key.id);
}

const std::string* RequestWindow::Outcome(const RequestKey& key) const {
  auto it = senders_.find(SenderKey{key.sender, key.incarnation});
  if (it == senders_.end()) return nullptr;
  auto e = it->second.ids.find(key.id);
  if (e == it->second.ids.end() || !e->second.done) return nullptr;
  return &e->second.outcome;
}

std::string RequestWindow::Serialize() const {
  checkpoint::RequestWindowState state;
  // In a fixed order, so equal windows serialize equally.
  std::vector<const std::pair<const SenderKey, SenderState>*> order;
  for (const auto& kv : senders_) order.push_back(&kv);
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return a->first.sender != b->first.sender ? a->first.sender < b->first.sender
                                              : a->first.incarnation < b->first.incarnation;
  });
  for (const auto* kv : order) {
    checkpoint::RequestWindowState::Sender* out = state.add_senders();
    out->set_sender(kv->first.sender);
    out->set_incarnation(kv->first.incarnation);
    out->set_floor(kv->second.floor);
    for (const auto& [id, e] : kv->second.ids) {
      if (!e.done) continue;
      out->add_ids(id);
      out->add_outcomes(e.outcome);
    }
  }
  return state.SerializeAsString();
}

Status RequestWindow::Restore(const std::string& data, const std::string& name,
                              SteadyClock::time_point now) {
  senders_.clear();
  entries_ = 0;
  checkpoint::RequestWindowState state;
  if (!state.ParseFromString(data)) {
    return Status::Corruption(name + ": not a request window (" + std::to_string(data.size()) +
                              " bytes that do not parse)");
  }
  std::unordered_map<SenderKey, SenderState, SenderKeyHash> restored;
  size_t entries = 0;
  for (const auto& in : state.senders()) {
    if (in.ids_size() != in.outcomes_size()) {
      return Status::Corruption(name + ": sender " + std::to_string(in.sender()) + " has " +
                                std::to_string(in.ids_size()) + " ids but " +
                                std::to_string(in.outcomes_size()) + " outcomes");
    }
    SenderState s;
    s.floor = in.floor();
    s.last_heard = now;
    for (int i = 0; i < in.ids_size(); ++i) {
      if (in.ids(i) < s.floor) {
        return Status::Corruption(name + ": sender " + std::to_string(in.sender()) + " id " +
                                  std::to_string(in.ids(i)) + " is below its floor " +
                                  std::to_string(s.floor));
      }
      Entry& e = s.ids[in.ids(i)];
      e.done = true;
      e.outcome = in.outcomes(i);
    }
    entries += s.ids.size();
    if (!restored.emplace(SenderKey{in.sender(), in.incarnation()}, std::move(s)).second) {
      return Status::Corruption(name + ": sender " + std::to_string(in.sender()) + " incarnation " +
                                std::to_string(in.incarnation()) + " appears twice");
    }
  }
  senders_ = std::move(restored);
  entries_ = entries;
  return Status::OK();
}

}  // namespace mtps
