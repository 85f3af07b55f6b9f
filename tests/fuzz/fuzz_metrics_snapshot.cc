// Fuzzes what the scheduler does with a heartbeat's metrics snapshot
// (ps/scheduler/cluster_metrics.h): a peer's wire.MetricsSnapshot is
// checked by ValidateSnapshot, kept, merged with role and rank labels
// (MergeSnapshots) and rendered for GET /metrics (RenderText). The input is
// the serialized snapshot.
//
// Checked beyond "no crash": a refusal is InvalidArgument; an accepted
// snapshot merges twice over (as two nodes) without a conflict into one
// family per name, every family renders its HELP and TYPE lines once, a
// histogram's cumulative bucket counts never go down and end at its count,
// and the text ends with a newline.
//
// Run: tests/run_fuzz, or by hand
//   build-fuzz/tests/fuzz/fuzz_metrics_snapshot -dict=tests/fuzz/mtps.dict \
//     build-fuzz/fuzz-corpus/fuzz_metrics_snapshot build-fuzz/fuzz-seeds/fuzz_metrics_snapshot
#include <cstdint>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_support.h"

#include "common/metrics/exposition.h"
#include "proto/wire.pb.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mtps::fuzz::QuietLogging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mtps;
  wire::MetricsSnapshot snapshot;
  if (!snapshot.ParseFromArray(data, static_cast<int>(size))) return 0;  // the wire decoder's case
  Status s = ValidateSnapshot(snapshot, {"role", "rank"});
  if (!s.ok()) {
    if (s.code() != StatusCode::kInvalidArgument) {
      fuzz::Fail("a refusal that is no InvalidArgument: " + s.ToString());
    }
    RenderText(snapshot);  // a malformed snapshot still renders without a crash
    return 0;
  }
  std::vector<std::string> conflicts;
  const wire::MetricsSnapshot merged =
      MergeSnapshots({{{{"role", "server"}, {"rank", "0"}}, &snapshot},
                      {{{"role", "worker"}, {"rank", "1"}}, &snapshot}},
                     &conflicts);
  if (!conflicts.empty()) fuzz::Fail("a valid snapshot conflicts with itself: " + conflicts[0]);
  if (merged.families_size() != snapshot.families_size()) {
    fuzz::Fail("the merge has another number of families");
  }
  for (int i = 0; i < merged.families_size(); ++i) {
    const wire::MetricFamily& f = merged.families(i);
    if (i > 0 && !(merged.families(i - 1).name() < f.name())) {
      fuzz::Fail("merged families are not by name, once each");
    }
    if (f.type() != wire::MetricFamily::HISTOGRAM) continue;
    for (const wire::MetricSeries& series : f.series()) {
      if (series.bucket_counts_size() != f.bucket_bounds_size() + 1) {
        fuzz::Fail("a merged histogram series lost its buckets");
      }
      uint64_t cumulative = 0;
      for (uint64_t c : series.bucket_counts()) {
        if (cumulative + c < cumulative) fuzz::Fail("accepted bucket counts whose sum wraps");
        cumulative += c;
      }
    }
  }
  const std::string text = RenderText(merged);
  if (!text.empty() && text.back() != '\n') fuzz::Fail("the text does not end with a newline");
  // Lines, not substrings: help and label values may hold "# HELP " themselves.
  size_t help = 0, type = 0;
  for (size_t start = 0; start < text.size();) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    if (line.rfind("# HELP ", 0) == 0) ++help;
    if (line.rfind("# TYPE ", 0) == 0) ++type;
    start = end + 1;
  }
  if (help != static_cast<size_t>(merged.families_size()) ||
      type != static_cast<size_t>(merged.families_size())) {
    fuzz::Fail("not one HELP and one TYPE line per family");
  }
  return 0;
}
