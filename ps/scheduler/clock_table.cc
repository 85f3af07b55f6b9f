// The workers' consistency clocks (see ps/scheduler/clock_table.h).
#include "ps/scheduler/clock_table.h"

#include <algorithm>

namespace mtps {

ClockTable::ClockTable(int num_workers) {
  for (int r = 0; r < num_workers; ++r) clocks_[r] = WorkerClock();
}

void ClockTable::Report(int rank, const wire::Clock& report) {
  WorkerClock& w = clocks_[rank];
  w.clock = std::max(w.clock, report.clock());
  const bool plain = report.wait_for() < 0;
  if (plain) w.started = std::max(w.started, report.started());
  w.finished = w.finished || report.finished();
  const int64_t min = MinClock();
  // How far ahead of the slowest unfinished worker's clock the reporter's
  // latest batch started: BOUNDED_STALENESS keeps this <= staleness, BSP at
  // 0. Only plain reports count (a waiting request is not running yet).
  if (plain && !w.finished && min != kNoClock) {
    max_clock_gap_ = std::max(max_clock_gap_, w.started - min);
  }
}

int64_t ClockTable::MinClock() const {
  int64_t min = kNoClock;
  for (const auto& [rank, w] : clocks_) {
    if (!w.finished) min = std::min(min, w.clock);
  }
  return min;
}

void ClockTable::Defer(Incoming&& request, int64_t wait_for) {
  waits_.emplace_back(std::move(request), wait_for);
}

std::vector<Incoming> ClockTable::TakeReady() {
  std::vector<Incoming> ready;
  if (waits_.empty()) return ready;
  const int64_t min = MinClock();
  std::vector<std::pair<Incoming, int64_t>> still;
  for (auto& [request, wait_for] : waits_) {
    if (wait_for <= min) {
      ready.push_back(std::move(request));
    } else {
      still.emplace_back(std::move(request), wait_for);
    }
  }
  waits_ = std::move(still);
  return ready;
}

std::vector<Incoming> ClockTable::TakeAll() {
  std::vector<Incoming> all;
  for (auto& [request, wait_for] : waits_) all.push_back(std::move(request));
  waits_.clear();
  return all;
}

}  // namespace mtps
