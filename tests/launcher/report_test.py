"""The training report (launcher/mtps_launch/report.py) from fake run dirs
(report_fixtures.py): every chart drawn from the records it was given, the
charts without data saying so, malformed and missing input named and
skipped, restarts and events, escaping, the page self-contained, ticks and
counts, and the `mtps-launch report` command."""

import io
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr
from pathlib import Path

import launcher_path  # noqa: F401
from mtps_launch import report
from report_fixtures import TASKS, make_run, write_jsonl
from report_page import CHART_IDS, figures

LAUNCHER = launcher_path.LAUNCHER_DIR / "mtps-launch"


def tick_value(text):
    """"1.25M" -> 1250000.0, "0.35" -> 0.35."""
    scale = {"k": 1e3, "M": 1e6, "B": 1e9}
    if text[-1] in scale:
        return float(text[:-1]) * scale[text[-1]]
    return float(text)


class ReportTestCase(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="mtps-report-"))
        self.addCleanup(shutil.rmtree, self.dir, True)

    def page(self, run_dir=None, **kwargs):
        return report.build_report(run_dir or self.dir / "run", **kwargs)


class FullRunTest(ReportTestCase):

    def test_every_chart_is_drawn_from_its_records(self):
        wrote = make_run(self.dir / "run", steps=40, servers=3, workers=2)
        figs = figures(self.page())
        self.assertEqual(list(figs), list(CHART_IDS))
        for chart in CHART_IDS:
            self.assertTrue(figs[chart].svg, chart)
            self.assertIsNone(figs[chart].empty, chart)
        self.assertEqual(figs["loss"].legend, list(TASKS))
        self.assertEqual(figs["auc"].legend, list(TASKS))
        self.assertEqual(figs["throughput"].legend, ["all workers", "worker 0", "worker 1"])
        servers = ["server %d" % s for s in range(3)]
        self.assertEqual(figs["server-rows"].legend, servers)
        self.assertEqual(figs["server-requests"].legend, servers)
        # One point per record (40 is under the thinning limit); rates need two.
        for chart, points in (("loss", len(wrote["progress"])), ("auc", len(wrote["metrics"])),
                              ("server-rows", len(wrote["metrics"])),
                              ("server-requests", len(wrote["metrics"]) - 1)):
            self.assertEqual([len(line) for line in figs[chart].lines],
                             [points] * len(figs[chart].legend), chart)

    def test_lines_follow_the_data_and_stay_inside_the_axes(self):
        wrote = make_run(self.dir / "run", steps=50)
        figs = figures(self.page())
        loss = figs["loss"]
        # Read each point back through the y axis' ticks (pixel -> value).
        (y0, t0), (y1, t1) = loss.y_ticks[0], loss.y_ticks[-1]
        t0, t1 = tick_value(t0), tick_value(t1)
        per_pixel = (t1 - t0) / (y1 - y0)
        for task, line in zip(TASKS, loss.lines):
            values = [r["loss"][task] for r in wrote["progress"]]
            xs = [x for x, _ in line]
            self.assertEqual(xs, sorted(xs), "examples only grow")
            for (_, y), value in zip(line, values):
                # The tick labels' y is the grid line's plus 4 (the baseline).
                self.assertAlmostEqual(t0 + (y + 4 - y0) * per_pixel, value,
                                       delta=abs(per_pixel) * 0.1, msg=task)
        for fig in figs.values():
            for line in fig.lines:
                for x, y in line:
                    self.assertTrue(report.MARGIN_LEFT - 0.1 <= x <= report.CHART_W -
                                    report.MARGIN_RIGHT + 0.1, (fig.id, x))
                    self.assertTrue(report.MARGIN_TOP - 0.1 <= y <= report.CHART_H -
                                    report.MARGIN_BOTTOM + 0.1, (fig.id, y))
        # The y ticks span the data.
        losses = [v for r in wrote["progress"] for v in r["loss"].values()]
        ticks = [tick_value(t) for _, t in loss.y_ticks]
        self.assertLessEqual(min(ticks), min(losses))
        self.assertGreaterEqual(max(ticks), max(losses))
        rates = [r["examples_per_sec"] for r in wrote["progress"]]
        ticks = [tick_value(t) for _, t in figs["throughput"].y_ticks]
        self.assertEqual(min(ticks), 0)
        self.assertGreaterEqual(max(ticks), max(rates))
        auc_ticks = [tick_value(t) for _, t in figs["auc"].y_ticks]
        self.assertTrue(all(0 <= t <= 1 for t in auc_ticks), auc_ticks)

    def test_tick_labels_do_not_overlap_or_leave_the_chart(self):
        for steps in (3, 40, 700):
            run = self.dir / ("run-%d" % steps)
            make_run(run, steps=steps, interval=7.3)
            for fig in figures(self.page(run)).values():
                spans = []
                for x, anchor, text in fig.x_ticks:
                    width = len(text) * report.TICK_CHAR_WIDTH
                    left = {"middle": x - width / 2, "end": x - width}.get(anchor, x)
                    spans.append((left, left + width))
                    self.assertGreaterEqual(left, 0, (fig.id, text))
                    self.assertLessEqual(left + width, report.CHART_W, (fig.id, text))
                for (_, a_end), (b_start, _) in zip(spans, spans[1:]):
                    self.assertLess(a_end, b_start, (steps, fig.id, fig.x_ticks))
                ys = [y for y, _ in fig.y_ticks]
                for a, b in zip(ys, ys[1:]):
                    self.assertGreater(a - b, 16, (fig.id, fig.y_ticks))

    def test_epochs_and_header(self):
        make_run(self.dir / "run", steps=30, epochs=3)
        page = self.page()
        figs = figures(page)
        self.assertEqual(figs["loss"].marker_tags, ["epoch 2", "epoch 3"])
        self.assertIn("2 servers, 2 workers", page)
        self.assertIn('<span class="badge success">success</span>', page)
        for task in TASKS:
            self.assertRegex(page, r"<td>%s</td><td>0\.\d{4}</td>" % task)

    def test_long_runs_are_thinned_keeping_the_last_point(self):
        wrote = make_run(self.dir / "run", steps=3 * report.MAX_POINTS_PER_SERIES)
        figs = figures(self.page())
        for line in figs["loss"].lines + figs["throughput"].lines:
            self.assertEqual(len(line), report.MAX_POINTS_PER_SERIES)
        # The last record is the right-most point of the throughput line.
        total = figs["throughput"].lines[0]
        self.assertEqual(max(x for x, _ in total), total[-1][0])
        self.assertEqual(len(wrote["progress"]), 3 * report.MAX_POINTS_PER_SERIES)

    def test_self_contained(self):
        make_run(self.dir / "run", failover_at=10)
        page = self.page()
        self.assertNotRegex(page, r"(?i)https?://")
        self.assertNotRegex(page, r"(?i)\s(src|href)\s*=")
        self.assertNotRegex(page, r"(?i)<(script|link|img|iframe|object)\b")
        self.assertNotRegex(page, r"(?i)url\(")


class NoDataTest(ReportTestCase):

    def test_without_metrics_the_auc_and_server_charts_say_so(self):
        make_run(self.dir / "run", metrics=False, new_fields=False)
        figs = figures(self.page())
        self.assertTrue(figs["loss"].svg and figs["throughput"].svg)
        self.assertEqual(figs["throughput"].legend, ["all workers"])
        for chart in ("auc", "server-rows", "server-requests"):
            self.assertFalse(figs[chart].svg, chart)
            self.assertFalse(figs[chart].lines, chart)
            self.assertIn("no metrics.jsonl", figs[chart].empty, chart)
        # Old records: no epoch markers.
        self.assertEqual(figs["loss"].marker_tags, [])

    def test_metrics_without_auc_or_servers(self):
        make_run(self.dir / "run", metrics=False)
        write_jsonl(self.dir / "run" / "metrics.jsonl",
                    [{"t": 1.0, "examples": 10, "loss": {"a": 0.5}}])
        figs = figures(self.page())
        self.assertIn('no "auc" values', figs["auc"].empty)
        self.assertIn('no "servers" counters', figs["server-rows"].empty)

    def test_an_empty_run_dir_still_gives_a_page(self):
        (self.dir / "run").mkdir()
        page = self.page()
        figs = figures(page)
        self.assertEqual(list(figs), list(CHART_IDS))
        self.assertTrue(all(f.empty for f in figs.values()))
        self.assertIn("unknown", page)
        self.assertIn("progress.jsonl: not in the run dir", page)
        self.assertIn("No held-out evaluation", page)

    def test_a_failed_run_shows_the_launchers_reason(self):
        make_run(self.dir / "run", result="failed", steps=10)
        page = self.page(outcome={"result": "failed", "reason": "worker-1 <exit code 1>"})
        self.assertIn('<span class="badge failed">failed</span> worker-1 &lt;exit code 1&gt;',
                      page)
        self.assertIn("worker-1 (exit 1)", page)
        self.assertIn("did not finish", page)


class BadInputTest(ReportTestCase):

    def test_malformed_lines_are_skipped_and_named(self):
        run = self.dir / "run"
        wrote = make_run(run, steps=12)
        lines = (run / "progress.jsonl").read_text().splitlines()
        lines.insert(3, "{not json")
        lines.insert(7, "[1, 2, 3]")
        lines.insert(9, "\xff\xfe garbage")
        (run / "progress.jsonl").write_text("\n".join(lines) + "\n")
        with open(run / "metrics.jsonl", "ab") as f:
            f.write(b'{"t": 99, "examples": 1, "auc": {"income": 0.5}')  # cut short
        page = self.page()
        self.assertIn("progress.jsonl: %d records; 3 malformed lines skipped (lines 4, 8, 10)" %
                      (len(wrote["progress"]) + len(wrote["events"])), page)
        self.assertIn("metrics.jsonl: %d records; 1 malformed line skipped (line %d)" %
                      (len(wrote["metrics"]), len(wrote["metrics"]) + 1), page)
        figs = figures(page)
        self.assertEqual([len(line) for line in figs["loss"].lines], [12, 12])

    def test_wrong_types_and_non_finite_values_are_left_out(self):
        run = self.dir / "run"
        run.mkdir()
        write_jsonl(run / "progress.jsonl", [
            {"t": 1.0, "examples": 100, "examples_per_sec": 100.0, "loss": {"a": 0.5}},
            {"t": 2.0, "examples": "lots", "examples_per_sec": "fast", "loss": "low"},
            {"t": "late", "examples": 300, "loss": {"a": 0.4}},
            {"t": 3.0, "examples": 300, "examples_per_sec": float("nan"),
             "loss": {"a": float("inf"), "b": True}},
            {"t": 4.0, "examples": 400, "examples_per_sec": 100.0, "loss": {"a": 0.3}},
            {"event": 7}, {"event": "training"}])
        write_jsonl(run / "metrics.jsonl", [
            {"t": 1.0, "servers": "none", "workers": [1, None, {"rank": "x"}]},
            {"t": 2.0, "servers": [{"rank": 0, "rows": "many", "requests_total": -1},
                                   {"rows": 5}, "junk"]},
            {"t": 3.0, "servers": [{"rank": 0, "rows": 7, "requests_total": 10}]},
            {"t": 4.0, "servers": [{"rank": 0, "rows": 8, "requests_total": 30}]}])
        (run / "summary.json").write_text('{"eval": {"a": "high", "b": {"auc": null}}, '
                                          '"train": [], "cluster": {"servers": "two"}}')
        (run / "launch.json").write_text("[]")
        page = self.page()
        figs = figures(page)
        self.assertEqual(figs["loss"].lines, [figs["loss"].lines[0]])
        self.assertEqual(len(figs["loss"].lines[0]), 2)  # t=1 and t=4
        self.assertEqual(len(figs["throughput"].lines[0]), 2)
        self.assertEqual(len(figs["server-rows"].lines[0]), 2)  # the numeric rows
        self.assertEqual(len(figs["server-requests"].lines), 1)
        self.assertEqual(len(figs["server-requests"].lines[0]), 1)
        self.assertIn("launch.json: not a JSON object; ignored", page)
        # {"t": "late"} and the two events without a time.
        self.assertIn("3 records without a numeric &quot;t&quot; skipped", page)

    def test_random_junk_never_raises(self):
        rng = random.Random(11)
        scalars = [None, True, 0, -1, 2.5, 1e308, -1e308, float("nan"), "x", "<i>", [], {}]

        def junk(depth=0):
            kind = rng.random()
            if depth > 2 or kind < 0.5:
                return rng.choice(scalars)
            if kind < 0.75:
                return [junk(depth + 1) for _ in range(rng.randint(0, 3))]
            keys = ["t", "examples", "loss", "auc", "servers", "workers", "rank", "rows",
                    "requests_total", "event", "epoch", "examples_per_sec", "eval", "train",
                    "cluster", "nodes", "recovery", "events", "model", "result", "backend"]
            return {rng.choice(keys): junk(depth + 1) for _ in range(rng.randint(0, 6))}

        run = self.dir / "run"
        run.mkdir()
        for trial in range(600):
            write_jsonl(run / "progress.jsonl", [junk() for _ in range(8)] +
                        [{"t": rng.random() * 5, "examples": rng.randint(0, 99),
                          "loss": {"a": junk()}, "examples_per_sec": junk()}])
            write_jsonl(run / "metrics.jsonl", [
                {"t": rng.random() * 5, "servers": [junk(), {"rank": junk(), "rows": junk(),
                                                              "requests_total": junk()}],
                 "workers": junk(), "auc": junk()} for _ in range(5)])
            for name in ("summary.json", "launch.json"):
                (run / name).write_text(json.dumps(junk() if trial % 3 else {
                    k: junk() for k in ("eval", "train", "cluster", "nodes", "recovery",
                                        "model", "start_time", "end_time", "config")}))
            page = report.build_report(run, outcome=junk(), recovery=junk())
            self.assertEqual(list(figures(page)), list(CHART_IDS), trial)

    def test_unreadable_json_files_are_named(self):
        run = self.dir / "run"
        make_run(run, steps=5)
        (run / "summary.json").write_text("{\"model\": ")
        page = self.page()
        self.assertIn("summary.json: not valid JSON", page)
        self.assertIn("No held-out evaluation", page)

    def test_names_are_escaped(self):
        run = self.dir / "run"
        make_run(run, steps=5, tasks=("<b>bold</b>", 'q"uote'))
        page = self.page()
        self.assertNotIn("<b>bold</b>", page)
        self.assertIn("&lt;b&gt;bold&lt;/b&gt;", page)
        self.assertEqual(figures(page)["loss"].legend, ["<b>bold</b>", 'q"uote'])


class TimelineTest(ReportTestCase):

    def test_a_restart_breaks_the_lines_and_continues_the_clock(self):
        wrote = make_run(self.dir / "run", steps=30, restart_at=20)
        figs = figures(self.page())
        # Two attempts: two segments per task; examples went back at the restart.
        self.assertEqual(figs["loss"].line_names, [TASKS[0], TASKS[0], TASKS[1], TASKS[1]])
        self.assertEqual([len(line) for line in figs["loss"].lines], [20, 10, 20, 10])
        first, second = figs["throughput"].lines[:2]
        self.assertLess(max(x for x, _ in first), min(x for x, _ in second))
        self.assertIn("attempts end to end", " ".join(figs["throughput"].labels))
        # The resume is an event on the time charts.
        self.assertEqual(figs["throughput"].marker_tags, ["1"])
        self.assertTrue(any("resumed from checkpoint 3" in item
                            for item in figs["throughput"].legend))
        self.assertEqual(sum(1 for e in wrote["events"] if e["event"] == "training"), 2)

    def test_run_times_made_continuous(self):
        timed = report.with_run_times([{"t": 1.0}, {"t": 5.0}, {"t": 0.5}, {"t": 2.0},
                                       {"t": None}, {"t": 0.1}])
        self.assertEqual([(t, a) for t, a, _ in timed],
                         [(1.0, 0), (5.0, 0), (5.5, 1), (7.0, 1), (7.1, 2)])

    def test_failover_and_rejoin_events(self):
        make_run(self.dir / "run", steps=30, failover_at=12)
        page = self.page()
        figs = figures(page)
        for chart in ("throughput", "server-rows", "server-requests"):
            self.assertEqual(figs[chart].marker_tags, ["1", "2"], chart)
            self.assertEqual(len(figs[chart].markers), 2, chart)
        self.assertIn("server-1 failed over (partitions 1 promoted)", page)
        self.assertIn("server-1 rejoined as backup of partition 1", page)

    def test_the_launchers_recovery_events(self):
        make_run(self.dir / "run", steps=10)
        recovery = {"restarts": 1, "events": [
            {"node": "worker-1", "exit": "killed by SIGKILL", "detected_after_s": 0.12,
             "training_again_after_s": 1.5, "checkpoint_id": 4, "checkpoint_step": 80}]}
        page = self.page(recovery=recovery)
        self.assertRegex(page, r"<td>worker-1</td><td>killed by SIGKILL</td><td>job restarted "
                         r"from checkpoint 4 \(step 80\)</td><td>0\.12</td><td>1\.50</td>")
        self.assertRegex(page, r"<dt>Restarts</dt><dd>1</dd>")


class FormattingTest(unittest.TestCase):

    def test_short_counts(self):
        cases = {0: "0", 7: "7", 999: "999", 1000: "1k", 1234: "1.2k", 45000: "45k",
                 1_234_567: "1.2M", 12_500_000: "12M", 3_000_000_000: "3B", -2500: "-2.5k",
                 0.25: "0.25"}
        for value, text in cases.items():
            self.assertEqual(report.short_count(value), text, value)
        self.assertEqual(report.short_count(1_250_000, step=250_000), "1.25M")
        self.assertEqual(report.short_count(750_000, step=250_000), "750k")
        self.assertEqual(report.short_count(1_000_000, step=250_000), "1M")

    def test_nice_ticks_cover_the_range_in_round_steps(self):
        rng = random.Random(5)
        for _ in range(2000):
            # Spans down to 1e-4 of the values: a chart's data, not noise.
            lo = rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-6, 3)
            hi = lo + max(abs(rng.gauss(0, 1)) * 10 ** rng.randint(-6, 6), abs(lo) * 1e-4)
            low, high, step, ticks = report.nice_ticks(lo, hi)
            self.assertLessEqual(low, lo + abs(step) * 1e-6)
            self.assertGreaterEqual(high, hi - abs(step) * 1e-6)
            self.assertTrue(3 <= len(ticks) <= 12, (lo, hi, ticks))
            mantissa = step / 10 ** math.floor(math.log10(step))
            self.assertTrue(any(abs(mantissa - m) < 1e-6 for m in (1, 2, 2.5, 5)), step)
            # Tick labels at the axis' precision are all different.
            texts = ["%.*f" % (report.decimals_for(step), t) for t in ticks]
            self.assertEqual(len(set(texts)), len(texts), (ticks, texts))

    def test_a_flat_series_still_gets_an_axis(self):
        low, high, step, ticks = report.nice_ticks(0.5, 0.5)
        self.assertLess(low, 0.5)
        self.assertGreater(high, 0.5)


class CommandTest(ReportTestCase):

    def run_command(self, *args):
        return subprocess.run([sys.executable, str(LAUNCHER), "report"] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)

    def test_report_command_writes_the_page(self):
        run = self.dir / "run"
        make_run(run, steps=8)
        result = self.run_command("--run-dir", str(run))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), str(run / "report.html"))
        self.assertEqual(list(figures((run / "report.html").read_text())), list(CHART_IDS))
        out = self.dir / "elsewhere.html"
        result = self.run_command("--run-dir", str(run), "--out", str(out))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(out.is_file())

    def test_report_command_errors_are_messages_not_tracebacks(self):
        for args, message in (
                (["--run-dir", str(self.dir / "nowhere")], "no such directory"),
                (["--run-dir", str(self.dir)], "not a run dir"),
                (["--run-dir", str(self.dir / "run"), "--out",
                  str(self.dir / "missing" / "x.html")], "cannot write")):
            if "run" in args[1]:
                make_run(self.dir / "run", steps=3)
            result = self.run_command(*args)
            self.assertEqual(result.returncode, 1, result.stderr)
            self.assertIn(message, result.stderr)
            self.assertNotIn("Traceback", result.stderr)
        result = self.run_command()
        self.assertEqual(result.returncode, 2)
        self.assertIn("--run-dir", result.stderr)

    def test_the_jobs_hook_logs_instead_of_raising(self):
        err = io.StringIO()
        with redirect_stderr(err):
            self.assertIsNone(report.write_for_job(self.dir / "gone" / "run", {}, None))
        self.assertIn("cannot write", err.getvalue())
        make_run(self.dir / "run", steps=3)
        with redirect_stderr(err):
            path = report.write_for_job(self.dir / "run", {"result": "interrupted"}, None)
        self.assertEqual(path, self.dir / "run" / "report.html")
        self.assertIn("badge interrupted", path.read_text())


class RateSeriesTest(unittest.TestCase):

    def test_an_unchanged_counter_waits_for_the_next_snapshot(self):
        # Snapshots arrive once a second, lines five times as often: the
        # counter repeats between them, and the rate spans to the change.
        values = [0, 0, 100, 100, 100, 400, 400, 50]
        rows = [(float(t), 0, {"requests_total": v}) for t, v in enumerate(values)]
        series = report.rate_series(rows, "server 0", "#000", "requests_total")
        self.assertEqual(series.segments, [[(1.0, 0.0), (2.0, 100.0), (5.0, 100.0)]])

    def test_a_counter_going_down_starts_a_segment(self):
        rows = [(0.0, 0, {"n": 10}), (1.0, 0, {"n": 20}), (2.0, 1, {"n": 5}),
                (3.0, 1, {"n": 15})]
        series = report.rate_series(rows, "s", "#000", "n")
        self.assertEqual(series.segments, [[(1.0, 10.0)], [(3.0, 10.0)]])


if __name__ == "__main__":
    unittest.main(verbosity=2)
