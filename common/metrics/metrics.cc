// Counters, gauges, histograms and their registry (see common/metrics/metrics.h).
#include "common/metrics/metrics.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>

#include "common/metrics/exposition.h"

namespace mtps {
namespace {

// Adds `by` to an atomic double (C++17 has no fetch_add for it).
void AtomicAdd(std::atomic<double>* a, double by) {
  double old = a->load(std::memory_order_relaxed);
  while (!a->compare_exchange_weak(old, old + by, std::memory_order_relaxed)) {
  }
}

}  // namespace

void Counter::Increment(double by) {
  if (!(by >= 0)) return;
  AtomicAdd(&value_, by);
}

void Gauge::Add(double by) { AtomicAdd(&value_, by); }

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(*bounds), counts_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  // Prometheus buckets are upper-inclusive: v lands in the first bound >= v.
  const size_t i =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(&sum_, v);
}

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) n += counts_[i].load(std::memory_order_relaxed);
  return n;
}

void Histogram::SnapshotInto(wire::MetricSeries* series) const {
  series->clear_bucket_counts();
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    series->add_bucket_counts(counts_[i].load(std::memory_order_relaxed));
  }
  series->set_sum(sum());
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> kBounds = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                              0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                              0.5,     1,      2.5,     5,      10};
  return kBounds;
}

const std::vector<double>& DurationBuckets() {
  static const std::vector<double> kBounds = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1,
                                              2.5,   5,     10,   30,   60,  120,  300, 600};
  return kBounds;
}

MetricRegistry::Series* MetricRegistry::FindOrAdd(const std::string& name, const std::string& help,
                                                  wire::MetricFamily::Type type,
                                                  const std::vector<double>* bounds,
                                                  const MetricLabels& labels) {
  CHECK(IsValidMetricName(name)) << "invalid metric name '" << name << "'";
  for (const auto& [label, value] : labels) {
    CHECK(IsValidLabelName(label)) << name << ": invalid label name '" << label << "'";
  }
  auto [it, added] = families_.try_emplace(name);
  Family& family = it->second;
  if (added) {
    family.type = type;
    family.help = help;
    if (bounds != nullptr) {
      CHECK(!bounds->empty() && std::is_sorted(bounds->begin(), bounds->end()) &&
            std::adjacent_find(bounds->begin(), bounds->end()) == bounds->end() &&
            std::isfinite(bounds->front()) && std::isfinite(bounds->back()))
          << name << ": histogram bounds must be finite and increasing";
      family.bounds = std::make_unique<std::vector<double>>(*bounds);
    }
  }
  CHECK(family.type == type) << "metric " << name << " is a "
                             << wire::MetricFamily::Type_Name(family.type) << ", not a "
                             << wire::MetricFamily::Type_Name(type);
  CHECK(bounds == nullptr || *bounds == *family.bounds)
      << "histogram " << name << " asked for with other bucket bounds";
  for (auto& series : family.series) {
    if (series->labels == labels) return series.get();
  }
  CHECK_LT(family.series.size(), kMaxSeriesPerFamily) << "too many label sets for " << name;
  family.series.push_back(std::make_unique<Series>());
  Series* s = family.series.back().get();
  s->labels = labels;
  switch (type) {
    case wire::MetricFamily::COUNTER:
      s->counter = std::make_unique<Counter>();
      break;
    case wire::MetricFamily::GAUGE:
      s->gauge = std::make_unique<Gauge>();
      break;
    case wire::MetricFamily::HISTOGRAM:
      s->histogram = std::make_unique<Histogram>(family.bounds.get());
      break;
    default:
      LOG(FATAL) << "metric " << name << " of no type";
  }
  return s;
}

Counter* MetricRegistry::GetCounter(const std::string& name, const std::string& help,
                                    const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  return FindOrAdd(name, help, wire::MetricFamily::COUNTER, nullptr, labels)->counter.get();
}

Gauge* MetricRegistry::GetGauge(const std::string& name, const std::string& help,
                                const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  return FindOrAdd(name, help, wire::MetricFamily::GAUGE, nullptr, labels)->gauge.get();
}

Histogram* MetricRegistry::GetHistogram(const std::string& name, const std::string& help,
                                        const std::vector<double>& bounds,
                                        const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  return FindOrAdd(name, help, wire::MetricFamily::HISTOGRAM, &bounds, labels)->histogram.get();
}

wire::MetricsSnapshot MetricRegistry::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  wire::MetricsSnapshot out;
  for (const auto& [name, family] : families_) {
    wire::MetricFamily* f = out.add_families();
    f->set_name(name);
    f->set_help(family.help);
    f->set_type(family.type);
    if (family.bounds) {
      for (double b : *family.bounds) f->add_bucket_bounds(b);
    }
    for (const auto& series : family.series) {
      wire::MetricSeries* s = f->add_series();
      for (const auto& [label, value] : series->labels) {
        wire::MetricLabel* l = s->add_labels();
        l->set_name(label);
        l->set_value(value);
      }
      if (series->counter) s->set_value(series->counter->value());
      if (series->gauge) s->set_value(series->gauge->value());
      if (series->histogram) series->histogram->SnapshotInto(s);
    }
  }
  return out;
}

}  // namespace mtps
