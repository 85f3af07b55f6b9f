// Metrics (common/metrics/): the registry's counters, gauges and histograms
// and their snapshot; the Prometheus text format (HELP/TYPE lines, label and
// help escaping, cumulative histogram buckets ending in +Inf, _sum and
// _count, value formatting, family order); snapshot validation against
// hostile input; merging nodes' snapshots with their labels; statm parsing.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/metrics/exposition.h"
#include "common/metrics/metrics.h"
#include "common/metrics/process_stats.h"

namespace mtps {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

TEST(MetricRegistryTest, CountersGaugesAndHistogramsKeepTheirValues) {
  MetricRegistry r;
  Counter* c = r.GetCounter("mtps_x_total", "help");
  c->Increment();
  c->Increment(2.5);
  c->Increment(-4);  // ignored: counters only go up
  c->Increment(std::nan(""));
  EXPECT_DOUBLE_EQ(c->value(), 3.5);
  EXPECT_EQ(r.GetCounter("mtps_x_total", "other help"), c);  // the same series
  Gauge* g = r.GetGauge("mtps_g", "g", {{"task", "a"}});
  g->Set(5);
  g->Add(-7);
  EXPECT_DOUBLE_EQ(g->value(), -2);
  EXPECT_NE(r.GetGauge("mtps_g", "g", {{"task", "b"}}), g);
  Histogram* h = r.GetHistogram("mtps_h_seconds", "h", {0.1, 1});
  for (double v : {0.05, 0.1, 0.5, 2.0, std::nan("")}) h->Observe(v);
  EXPECT_EQ(h->count(), 4u);
  EXPECT_DOUBLE_EQ(h->sum(), 2.65);

  const wire::MetricsSnapshot s = r.Snapshot();
  ASSERT_EQ(s.families_size(), 3);
  // By name.
  EXPECT_EQ(s.families(0).name(), "mtps_g");
  EXPECT_EQ(s.families(1).name(), "mtps_h_seconds");
  EXPECT_EQ(s.families(2).name(), "mtps_x_total");
  EXPECT_EQ(s.families(0).type(), wire::MetricFamily::GAUGE);
  ASSERT_EQ(s.families(0).series_size(), 2);
  EXPECT_EQ(s.families(0).series(0).labels(0).value(), "a");  // in creation order
  EXPECT_EQ(s.families(0).series(1).labels(0).value(), "b");
  const wire::MetricSeries& hs = s.families(1).series(0);
  // Upper-inclusive buckets: 0.05 and 0.1 in le=0.1, 0.5 in le=1, 2.0 above.
  EXPECT_EQ(std::vector<uint64_t>(hs.bucket_counts().begin(), hs.bucket_counts().end()),
            (std::vector<uint64_t>{2, 1, 1}));
  EXPECT_EQ(s.families(2).help(), "help");  // the first Get's
  EXPECT_TRUE(ValidateSnapshot(s).ok()) << ValidateSnapshot(s);
}

TEST(MetricRegistryTest, ConcurrentUpdatesAreAllCounted) {
  MetricRegistry r;
  Counter* c = r.GetCounter("mtps_c_total", "c");
  Histogram* h = r.GetHistogram("mtps_h", "h", {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c->Increment();
        h->Observe(0.5);
        if (i % 1000 == 0) r.Snapshot();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_DOUBLE_EQ(c->value(), 40000);
  EXPECT_EQ(h->count(), 40000u);
  EXPECT_DOUBLE_EQ(h->sum(), 20000);
}

TEST(MetricRegistryDeathTest, MisuseIsAProgrammerError) {
  MetricRegistry r;
  r.GetCounter("mtps_a_total", "a");
  EXPECT_DEATH(r.GetGauge("mtps_a_total", "a"), "is a COUNTER");
  EXPECT_DEATH(r.GetCounter("bad name", "a"), "invalid metric name");
  EXPECT_DEATH(r.GetCounter("mtps_b", "b", {{"__x", "1"}}), "invalid label name");
  r.GetHistogram("mtps_h", "h", {1, 2});
  EXPECT_DEATH(r.GetHistogram("mtps_h", "h", {1, 3}), "other bucket bounds");
  EXPECT_DEATH(r.GetHistogram("mtps_i", "i", {2, 1}), "increasing");
}

TEST(ExpositionTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeHelp("a\\b\"c\nd"), "a\\\\b\"c\\nd");  // quotes stay in help
  MetricRegistry r;
  r.GetGauge("mtps_g", "line one\nline \\two", {{"task", "in\"co\\me\n"}})->Set(1);
  EXPECT_EQ(RenderText(r.Snapshot()),
            "# HELP mtps_g line one\\nline \\\\two\n"
            "# TYPE mtps_g gauge\n"
            "mtps_g{task=\"in\\\"co\\\\me\\n\"} 1\n");
}

TEST(ExpositionTest, FormatsValuesShortestAndSpecials) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(557710), "557710");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(0.9340221490123), "0.9340221490123");
  EXPECT_EQ(FormatMetricValue(-2.5), "-2.5");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(std::stod(FormatMetricValue(1e-300)), 1e-300);
}

TEST(ExpositionTest, HistogramLinesAreCumulativeEndingInInfThenSumAndCount) {
  MetricRegistry r;
  Histogram* h =
      r.GetHistogram("mtps_lat_seconds", "latency", {0.001, 0.01, 0.1}, {{"op", "PULL_SPARSE"}});
  for (double v : {0.0005, 0.002, 0.003, 0.05, 5.0}) h->Observe(v);
  const std::vector<std::string> lines = Lines(RenderText(r.Snapshot()));
  const std::vector<std::string> expected = {
      "# HELP mtps_lat_seconds latency",
      "# TYPE mtps_lat_seconds histogram",
      "mtps_lat_seconds_bucket{op=\"PULL_SPARSE\",le=\"0.001\"} 1",
      "mtps_lat_seconds_bucket{op=\"PULL_SPARSE\",le=\"0.01\"} 3",
      "mtps_lat_seconds_bucket{op=\"PULL_SPARSE\",le=\"0.1\"} 4",
      "mtps_lat_seconds_bucket{op=\"PULL_SPARSE\",le=\"+Inf\"} 5",
      "mtps_lat_seconds_sum{op=\"PULL_SPARSE\"} " + FormatMetricValue(h->sum()),
      "mtps_lat_seconds_count{op=\"PULL_SPARSE\"} 5",
  };
  EXPECT_EQ(lines, expected);
  // Without labels, le is the only one.
  MetricRegistry bare;
  bare.GetHistogram("mtps_d", "d", {1})->Observe(2);
  EXPECT_EQ(Lines(RenderText(bare.Snapshot()))[2], "mtps_d_bucket{le=\"1\"} 0");
  EXPECT_EQ(Lines(RenderText(bare.Snapshot()))[3], "mtps_d_bucket{le=\"+Inf\"} 1");
}

TEST(ExpositionTest, FamiliesByNameEachWithItsLinesTogether) {
  MetricRegistry r;
  r.GetCounter("mtps_z_total", "z", {{"op", "b"}})->Increment(2);
  r.GetGauge("mtps_a", "a")->Set(1);
  r.GetCounter("mtps_z_total", "z", {{"op", "a"}})->Increment(3);
  EXPECT_EQ(RenderText(r.Snapshot()),
            "# HELP mtps_a a\n# TYPE mtps_a gauge\nmtps_a 1\n"
            "# HELP mtps_z_total z\n# TYPE mtps_z_total counter\n"
            "mtps_z_total{op=\"b\"} 2\nmtps_z_total{op=\"a\"} 3\n");
  EXPECT_EQ(RenderText(wire::MetricsSnapshot()), "");
}

TEST(ExpositionTest, NamesFollowThePrometheusGrammar) {
  EXPECT_TRUE(IsValidMetricName("mtps_train_examples_total"));
  EXPECT_TRUE(IsValidMetricName("a:b_c9"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("9a"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName("a b"));
  EXPECT_FALSE(IsValidMetricName(std::string(200, 'a')));
  EXPECT_TRUE(IsValidLabelName("task"));
  EXPECT_TRUE(IsValidLabelName("_x1"));
  EXPECT_FALSE(IsValidLabelName("__name__"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("1a"));
}

// A valid snapshot to break one rule at a time.
wire::MetricsSnapshot Valid() {
  MetricRegistry r;
  r.GetCounter("mtps_c_total", "c", {{"op", "PUSH"}})->Increment(4);
  r.GetGauge("mtps_g", "g")->Set(std::nan(""));  // gauges may be NaN
  r.GetHistogram("mtps_h", "h", {1, 2})->Observe(1.5);
  return r.Snapshot();
}

TEST(ValidateSnapshotTest, RefusesEachBrokenRuleNamingIt) {
  ASSERT_TRUE(ValidateSnapshot(Valid()).ok()) << ValidateSnapshot(Valid());
  struct Case {
    std::string what;
    std::function<void(wire::MetricsSnapshot*)> breaks;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"bad name", [](auto* s) { s->mutable_families(0)->set_name("bad-name"); }, "invalid name"},
      {"twice", [](auto* s) { s->mutable_families(1)->set_name("mtps_c_total"); }, "appears twice"},
      {"untyped", [](auto* s) { s->mutable_families(1)->set_type(wire::MetricFamily::UNTYPED); },
       "type must be"},
      {"help", [](auto* s) { s->mutable_families(0)->set_help(std::string(600, 'h')); },
       "help of 600 bytes"},
      {"negative counter",
       [](auto* s) { s->mutable_families(0)->mutable_series(0)->set_value(-1); },
       "metric mtps_c_total series 0: a counter must be finite and >= 0, got -1"},
      {"nan counter",
       [](auto* s) { s->mutable_families(0)->mutable_series(0)->set_value(std::nan("")); },
       "got NaN"},
      {"label name",
       [](auto* s) {
         s->mutable_families(0)->mutable_series(0)->mutable_labels(0)->set_name("a b");
       },
       "invalid label name"},
      {"reserved",
       [](auto* s) {
         s->mutable_families(0)->mutable_series(0)->mutable_labels(0)->set_name("role");
       },
       "label 'role' is reserved"},
      {"label twice",
       [](auto* s) {
         *s->mutable_families(0)->mutable_series(0)->add_labels() =
             s->families(0).series(0).labels(0);
       },
       "given twice"},
      {"long value",
       [](auto* s) {
         s->mutable_families(0)->mutable_series(0)->mutable_labels(0)->set_value(
             std::string(300, 'v'));
       },
       "value of 300 bytes"},
      {"same labels",
       [](auto* s) { *s->mutable_families(0)->add_series() = s->families(0).series(0); },
       "the same labels as an earlier series"},
      {"buckets off by one",
       [](auto* s) { s->mutable_families(2)->mutable_series(0)->add_bucket_counts(1); },
       "4 bucket counts for 2 bounds"},
      {"bounds not increasing", [](auto* s) { s->mutable_families(2)->set_bucket_bounds(1, 0.5); },
       "finite and increasing"},
      {"infinite bound",
       [](auto* s) {
         s->mutable_families(2)->set_bucket_bounds(1, std::numeric_limits<double>::infinity());
       },
       "finite and increasing"},
      {"no bounds",
       [](auto* s) {
         s->mutable_families(2)->clear_bucket_bounds();
         s->mutable_families(2)->mutable_series(0)->clear_bucket_counts();
         s->mutable_families(2)->mutable_series(0)->add_bucket_counts(1);
       },
       "needs 1 to 64 bucket bounds"},
      {"counts wrap",
       [](auto* s) {
         s->mutable_families(2)->mutable_series(0)->set_bucket_counts(0, ~uint64_t{0});
       },
       "bucket counts add up past 2^64"},
      {"nan sum", [](auto* s) { s->mutable_families(2)->mutable_series(0)->set_sum(std::nan("")); },
       "sum is not finite"},
      {"gauge with buckets",
       [](auto* s) { s->mutable_families(1)->mutable_series(0)->add_bucket_counts(1); },
       "outside a histogram"},
      {"too many families",
       [](auto* s) {
         for (int i = 0; i < kMaxSnapshotFamilies; ++i) {
           s->add_families()->set_name("mtps_f" + std::to_string(i));
           s->mutable_families(s->families_size() - 1)->set_type(wire::MetricFamily::GAUGE);
         }
       },
       "families, at most 128"},
      {"too big",
       [](auto* s) {
         for (int i = 0; i < 300; ++i) {
           wire::MetricSeries* x = s->mutable_families(1)->add_series();
           wire::MetricLabel* l = x->add_labels();
           l->set_name("k");
           l->set_value(std::to_string(i) + std::string(250, 'x'));
         }
       },
       "bytes, at most 65536"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    wire::MetricsSnapshot s = Valid();
    c.breaks(&s);
    Status st = ValidateSnapshot(s, {"role", "rank"});
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find(c.message), std::string::npos) << st;
    // Whatever passes or not, rendering never crashes.
    RenderText(s);
  }
}

TEST(MergeSnapshotsTest, PrefixesEachPartsLabelsAndMergesFamiliesByName) {
  MetricRegistry a, b;
  a.GetCounter("mtps_x_total", "x")->Increment(1);
  a.GetGauge("mtps_rows", "rows")->Set(10);
  b.GetCounter("mtps_x_total", "x other help", {{"op", "PULL"}})->Increment(2);
  b.GetCounter("mtps_rows", "rows as a counter")->Increment(3);  // conflicts with a's gauge
  const wire::MetricsSnapshot sa = a.Snapshot(), sb = b.Snapshot();
  std::vector<std::string> conflicts;
  const wire::MetricsSnapshot m = MergeSnapshots(
      {{{{"role", "server"}, {"rank", "0"}}, &sa}, {{{"role", "worker"}, {"rank", "1"}}, &sb}},
      &conflicts);
  EXPECT_EQ(RenderText(m),
            "# HELP mtps_rows rows\n# TYPE mtps_rows gauge\n"
            "mtps_rows{role=\"server\",rank=\"0\"} 10\n"
            "# HELP mtps_x_total x\n# TYPE mtps_x_total counter\n"
            "mtps_x_total{role=\"server\",rank=\"0\"} 1\n"
            "mtps_x_total{role=\"worker\",rank=\"1\",op=\"PULL\"} 2\n");
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_NE(conflicts[0].find("mtps_rows of role=worker rank=1 is a counter"), std::string::npos)
      << conflicts[0];
  EXPECT_TRUE(ValidateSnapshot(m).ok()) << ValidateSnapshot(m);
  double sum = 0;
  ASSERT_TRUE(SumOfFamily(m, "mtps_x_total", &sum));
  EXPECT_DOUBLE_EQ(sum, 3);
  EXPECT_FALSE(SumOfFamily(m, "mtps_nothing", &sum));
}

TEST(ProcessStatsTest, StatmResidentPagesTimesPageSize) {
  auto bytes = ParseStatmResidentBytes("12345 678 90 1 0 400 0\n", "statm", 4096);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, 678 * 4096);
  auto bad = ParseStatmResidentBytes("garbage", "/proc/self/statm", 4096);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("/proc/self/statm"), std::string::npos);
  auto mine = ResidentMemoryBytes();
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_GT(*mine, 1 << 20);  // a running test binary holds more than 1 MiB
}

}  // namespace
}  // namespace mtps
