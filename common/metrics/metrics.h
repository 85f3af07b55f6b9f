// MetricRegistry: one process's metrics — counters, gauges and histograms
// with labels, in Prometheus's data model — and their snapshot for the wire.
//
// Every mtps process owns one registry (made by whoever runs the process's
// job: the Scheduler, the ParameterServer, the Trainer; never a global) and
// hands out pointers to its metrics; a metric lives as long as its registry.
// A server's and a worker's snapshot (wire::MetricsSnapshot) rides on their
// heartbeats to the scheduler, which merges them with its own and serves
// the whole cluster's over HTTP (ps/scheduler/cluster_metrics.h,
// common/metrics/exposition.h renders and checks snapshots).
//
// Names follow Prometheus's conventions: an `mtps_` prefix, base units
// (seconds, bytes), `_total` for counters, `_seconds` for duration
// histograms. A name, its type, help and (histograms) bucket bounds are
// fixed by the first Get of that name; asking again with another type or
// other bounds, an invalid name or label name, or more than
// kMaxSeriesPerFamily label sets are programmer errors (CHECK): names and
// label names are constants of the code, and label values come from
// bounded sets (op names, task names of the checked config).
//
// Thread-safety: every method of the registry and of its metrics may be
// called from any thread. Updates are lock-free (relaxed atomics: a
// snapshot taken during updates sees each value whole, but not necessarily
// all of one moment); Get* and Snapshot take the registry's mutex.
#ifndef MTPS_COMMON_METRICS_METRICS_H_
#define MTPS_COMMON_METRICS_METRICS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "proto/wire.pb.h"

namespace mtps {

// The labels of one series: (name, value) pairs, in the order given.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// A value that only goes up (events, bytes, examples).
class Counter {
 public:
  // `by` must be >= 0 (a negative or NaN `by` is ignored).
  void Increment(double by = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down (rows, bytes in use, a rate, a loss).
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double by);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted in buckets with fixed upper bounds (plus one above
// every bound), and their sum.
class Histogram {
 public:
  // `bounds` increasing and finite (checked by the registry), outliving this.
  explicit Histogram(const std::vector<double>* bounds);

  // A NaN observation is ignored.
  void Observe(double v);
  // Observations so far, and their sum.
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  // Writes the bucket counts (bounds + 1, not cumulative) and the sum.
  void SnapshotInto(wire::MetricSeries* series) const;

 private:
  const std::vector<double>& bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0.0};
};

// Bucket bounds, in seconds, for request latencies: 50 us to 10 s.
const std::vector<double>& LatencyBuckets();
// Bucket bounds, in seconds, for long operations (checkpoints): 1 ms to 10 min.
const std::vector<double>& DurationBuckets();

class MetricRegistry {
 public:
  // At most this many label sets per name.
  static constexpr size_t kMaxSeriesPerFamily = 256;

  MetricRegistry() = default;
  MetricRegistry(const MetricRegistry&) = delete;
  MetricRegistry& operator=(const MetricRegistry&) = delete;

  // The metric `name` with `labels` (created at 0 on first use). `help`
  // describes the family (the first Get's is kept).
  Counter* GetCounter(const std::string& name, const std::string& help,
                      const MetricLabels& labels = {});
  Gauge* GetGauge(const std::string& name, const std::string& help,
                  const MetricLabels& labels = {});
  Histogram* GetHistogram(const std::string& name, const std::string& help,
                          const std::vector<double>& bounds, const MetricLabels& labels = {});

  // Every family, by name; within one, series in the order they were made.
  wire::MetricsSnapshot Snapshot() const;

 private:
  struct Series {
    MetricLabels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    wire::MetricFamily::Type type = wire::MetricFamily::UNTYPED;
    std::string help;
    std::unique_ptr<std::vector<double>> bounds;  // histograms; stable address
    std::vector<std::unique_ptr<Series>> series;
  };
  // The series of `name` with `labels`, made when new (mu_ held).
  Series* FindOrAdd(const std::string& name, const std::string& help, wire::MetricFamily::Type type,
                    const std::vector<double>* bounds, const MetricLabels& labels);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // guarded by mu_
};

}  // namespace mtps

#endif  // MTPS_COMMON_METRICS_METRICS_H_
