// ClockTable: the workers' consistency clocks (TrainConfig.consistency).
//
// A worker's clock is the number of its batches whose pushes every server
// acknowledged; workers report it (wire::Clock) with the index of the batch
// they last started and whether they finished training. The workers apply
// the mode: under ASYNC they never wait; under BOUNDED_STALENESS a worker
// about to start batch c asks to wait for c - staleness, under BSP for c
// (staleness 0). The table answers such a wait once the slowest unfinished
// worker's clock (MinClock) reached it; finished workers leave the bound.
// It also measures the largest gap it saw between a worker's started batch
// and MinClock (summary.json's consistency.max_clock_gap), whatever the mode.
//
// Holds the deferred CLOCK requests but never replies: the caller answers
// what Take* hands back. Owned by the Scheduler and called only from its Run
// thread; not thread-safe.
#ifndef MTPS_PS_SCHEDULER_CLOCK_TABLE_H_
#define MTPS_PS_SCHEDULER_CLOCK_TABLE_H_

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "common/net/transport.h"
#include "proto/wire.pb.h"

namespace mtps {

class ClockTable {
 public:
  // MinClock while no worker is left in the bound.
  static constexpr int64_t kNoClock = INT64_MAX;

  // Workers 0..num_workers-1, every clock 0, none finished.
  explicit ClockTable(int num_workers);

  // Applies worker `rank`'s report. Clocks only move forward (a report may
  // overtake an older one); `started` counts only from plain reports
  // (wait_for < 0: a waiting request's batch has not started yet);
  // `finished` is final. A plain report of an unfinished worker raises
  // max_clock_gap to started - MinClock() when that is larger.
  void Report(int rank, const wire::Clock& report);

  // The slowest unfinished worker's clock; kNoClock when all finished.
  int64_t MinClock() const;
  // Whether a request waiting for `wait_for` may be answered now
  // (wait_for <= MinClock(); a negative wait_for always may).
  bool Ready(int64_t wait_for) const { return wait_for <= MinClock(); }

  // Keeps `request` until MinClock() reaches `wait_for`.
  void Defer(Incoming&& request, int64_t wait_for);
  // Removes and returns the deferred requests that are Ready now, in the
  // order they were deferred.
  std::vector<Incoming> TakeReady();
  // Removes and returns every deferred request (the job aborts).
  std::vector<Incoming> TakeAll();
  size_t num_waiting() const { return waits_.size(); }

  // The largest started - MinClock() seen (0 if never positive).
  int64_t max_clock_gap() const { return max_clock_gap_; }

 private:
  struct WorkerClock {
    int64_t clock = 0;    // batches fully acknowledged by the servers
    int64_t started = 0;  // index of the latest batch started
    bool finished = false;
  };
  std::map<int, WorkerClock> clocks_;                // by worker rank
  std::vector<std::pair<Incoming, int64_t>> waits_;  // deferred requests, wait_for
  int64_t max_clock_gap_ = 0;
};

}  // namespace mtps

#endif  // MTPS_PS_SCHEDULER_CLOCK_TABLE_H_
