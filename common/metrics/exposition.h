// Metrics snapshots on the wire and in Prometheus's text format: the rules a
// snapshot from a peer must meet (ValidateSnapshot), the merge of several
// nodes' snapshots into one with their own labels (MergeSnapshots), and the
// text exposition format 0.0.4 that GET /metrics answers (RenderText).
//
// The text format (https://prometheus.io/docs/instrumenting/exposition_formats/):
// per family a `# HELP name text` line (backslash and newline escaped), a
// `# TYPE name counter|gauge|histogram|untyped` line, then one line per
// series, `name{label="value",...} value`, label values escaped (backslash,
// double quote, newline). A histogram series becomes its cumulative buckets
// `name_bucket{...,le="bound"}` in increasing order ending with le="+Inf"
// (= the count), then `name_sum` and `name_count`. Values print as the
// shortest text that reads back as the same double; NaN, +Inf and -Inf as
// such. Families come in the snapshot's order (MetricRegistry's and
// MergeSnapshots': by name), each family's lines together.
//
// Pure functions; any thread.
#ifndef MTPS_COMMON_METRICS_EXPOSITION_H_
#define MTPS_COMMON_METRICS_EXPOSITION_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/metrics/metrics.h"
#include "proto/wire.pb.h"

namespace mtps {

// The Content-Type of RenderText's output.
inline constexpr char kPrometheusTextContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Bounds of a snapshot one node may send (ValidateSnapshot).
inline constexpr int kMaxSnapshotFamilies = 128;
inline constexpr int kMaxSnapshotSeries = 1024;  // over all families
inline constexpr int kMaxSeriesLabels = 8;
inline constexpr int kMaxHistogramBuckets = 64;
inline constexpr size_t kMaxMetricNameBytes = 128;
inline constexpr size_t kMaxLabelValueBytes = 256;
inline constexpr size_t kMaxHelpBytes = 512;
inline constexpr size_t kMaxSnapshotBytes = size_t{64} << 10;

// [a-zA-Z_:][a-zA-Z0-9_:]*, at most kMaxMetricNameBytes.
bool IsValidMetricName(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved by Prometheus).
bool IsValidLabelName(std::string_view name);

// OK when `snapshot` (from a peer) is within the bounds above and
// well-formed: every family named validly and once, of a known type, with
// valid help; every series with valid, distinct label names none of which
// is in `reserved_labels` (the labels the merge adds), label values within
// bounds, and a label set not repeated in its family; counters finite and
// >= 0, gauges any double; histograms with increasing finite bounds, one
// count per bucket plus the +Inf one, counts whose sum fits 64 bits, and a
// finite sum. Otherwise InvalidArgument naming the family (and series) and
// the rule.
Status ValidateSnapshot(const wire::MetricsSnapshot& snapshot,
                        const std::vector<std::string>& reserved_labels = {});

// One node's snapshot and the labels its series get in the merge (put
// first, before the series' own).
struct LabelledSnapshot {
  MetricLabels labels;
  const wire::MetricsSnapshot* snapshot = nullptr;
};
// The families of every part, merged by name (sorted by name), each
// series with its part's labels. A family whose type, or histogram bounds,
// differ from the first part that has it is left out of that part; each
// such conflict is described in *conflicts (may be null).
wire::MetricsSnapshot MergeSnapshots(const std::vector<LabelledSnapshot>& parts,
                                     std::vector<std::string>* conflicts);

// The text exposition of `snapshot` (see the file comment), ending with a
// newline (empty for no families).
std::string RenderText(const wire::MetricsSnapshot& snapshot);

// Pieces of the format, for tests.
std::string EscapeLabelValue(std::string_view value);
std::string EscapeHelp(std::string_view help);
std::string FormatMetricValue(double v);

// The sum of every series' value of family `name` in `snapshot` (histograms:
// their sums); false when there is no such family.
bool SumOfFamily(const wire::MetricsSnapshot& snapshot, std::string_view name, double* sum);

}  // namespace mtps

#endif  // MTPS_COMMON_METRICS_EXPOSITION_H_
