"""Integration: the training report of real runs through the launcher. Census
MMOE on 2 servers + 2 workers (2 epochs) writes RUN_DIR/report.html: self-
contained (nothing fetched), its tables and charts made from the run's own
files, laid out and screenshot by headless Chromium, and rebuilt the same by
`mtps-launch report`. A failing job and an interrupted one get their page
too, with what data they left."""

import json
import os
import re
import signal
import subprocess
import sys

import harness
from harness import CONFIGS, RunDirTestCase, describe, read_json, read_progress

sys.path.insert(0, str(harness.REPO / "tests" / "launcher"))
import chromium  # noqa: E402
from report_page import CHART_IDS, figures  # noqa: E402

CONFIG = CONFIGS / "census_mmoe.pbtxt"
# Progress lines every 0.1 s: a 2-epoch census job trains for 1-3 s.
SHORT_INTERVAL = ["--set", "train.progress_interval_sec=0.1"]
FIRST_PROGRESS_TIMEOUT_SEC = 120
STOP_TIMEOUT_SEC = 60
PALETTE_FIRST = (0x00, 0x72, 0xB2)  # report.PALETTE[0], the first task's colour


class ReportTest(RunDirTestCase):

    def assert_self_contained(self, page):
        self.assertNotRegex(page, r"(?i)https?://", "a network reference")
        self.assertNotRegex(page, r"(?i)\s(src|href)\s*=", "an external file")
        self.assertNotRegex(page, r"(?i)<(script|link|img|iframe|object|embed)\b")
        self.assertNotRegex(page, r"(?i)url\(|@import")

    def test_census_run_writes_a_report_that_renders(self):
        run_dir = self.tmp / "run"
        result = self.run_launcher(CONFIG, servers=2, workers=2, run_dir=run_dir,
                                   extra=["--set", "train.epochs=2"] + SHORT_INTERVAL)
        info = describe(result, run_dir)
        self.assertEqual(result.returncode, 0, info)
        path = run_dir / "report.html"
        self.assertIn("report: %s" % path, result.stderr, info)
        page = path.read_text()
        self.assert_self_contained(page)

        # The header and table say what summary.json says.
        summary = read_json(run_dir / "summary.json")
        self.assertIn("Training report: %s" % summary["model"], page)
        self.assertIn('<span class="badge success">success</span>', page)
        self.assertIn("2 servers, 2 workers", page)
        for task, metrics in summary["eval"].items():
            self.assertIn("<td>%s</td><td>%.4f</td><td>%.4f</td><td>%s</td>" % (
                task, metrics["auc"], metrics["logloss"], "{:,}".format(metrics["examples"])),
                page)

        # The loss chart: one line per task, one point per progress record.
        progress = [r for r in read_progress(run_dir / "progress.jsonl") if "loss" in r]
        self.assertGreaterEqual(len(progress), 2, "too few progress lines to draw")
        figs = figures(page)
        self.assertEqual(list(figs), list(CHART_IDS))
        self.assertEqual(figs["loss"].legend, list(summary["eval"]))
        self.assertEqual([len(line) for line in figs["loss"].lines],
                         [len(progress)] * len(summary["eval"]))
        self.assertEqual(len(figs["throughput"].lines[0]), len(progress))
        # AUC and per-server charts come from metrics.jsonl: drawn when the run
        # wrote one, else they say there is none.
        has_metrics = (run_dir / "metrics.jsonl").is_file()
        for chart in ("auc", "server-rows", "server-requests"):
            if not has_metrics:
                self.assertIn("no metrics.jsonl", figs[chart].empty, chart)

        # In Chromium: every chart laid out, no chart text overlapping,
        # nothing wider than the window, the first task's colour on screen.
        tmp = self.tmp / "chromium"
        tmp.mkdir()
        layout = chromium.geometry(path, tmp, 1280)
        self.assertLessEqual(layout["scrollWidth"], 1280)
        drawn = {f["id"]: f for f in layout["figures"]}
        self.assertEqual(list(drawn), list(CHART_IDS))
        for chart in ("loss", "throughput"):
            self.assertGreater(drawn[chart]["svg"]["width"], 400, chart)
            self.assertGreater(drawn[chart]["series"], 0, chart)
        for fig in drawn.values():
            self.assertEqual(chromium.overlapping_texts(fig), [], fig["id"])
        image = chromium.screenshot(path, tmp, 1280, 2000)
        self.assertGreater(len(image.histogram()), 100, "a blank screenshot")
        self.assertGreater(image.count(PALETTE_FIRST, 10), 200, "no loss line on screen")

        # `mtps-launch report` rebuilds the same page (but for its build time).
        copy = self.tmp / "again.html"
        rebuilt = subprocess.run([sys.executable, harness.LAUNCHER, "report", "--run-dir",
                                  str(run_dir), "--out", str(copy)], stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(rebuilt.returncode, 0, rebuilt.stderr)

        def without_time(text):
            return re.sub(r"Built by mtps-launch at [^<]*", "", text)

        self.assertEqual(without_time(copy.read_text()), without_time(page))

    def test_failed_run_gets_a_report(self):
        # A dense learning rate of 1e30 makes the worker fail within a few batches.
        run_dir = self.tmp / "run"
        result = self.run_launcher(
            CONFIG, servers=1, workers=1, run_dir=run_dir,
            extra=["--set", "server.dense_optimizer.adam.learning_rate=1e30"], timeout=300)
        info = describe(result, run_dir)
        self.assertEqual(result.returncode, 1, info)
        page = (run_dir / "report.html").read_text()
        self.assert_self_contained(page)
        self.assertIn('<span class="badge failed">failed</span>', page, info)
        self.assertIn("worker-0 (exit", page, info)
        self.assertIn("No held-out evaluation", page)
        self.assertEqual(list(figures(page)), list(CHART_IDS))

    def test_interrupted_run_gets_a_report(self):
        run_dir = self.tmp / "run"
        launcher = self.start_launcher(CONFIG, 1, 1, run_dir,
                                       extra=["--set", "train.epochs=1000"] + SHORT_INTERVAL)
        progress = run_dir / "progress.jsonl"

        def trained_a_little():
            return launcher.poll() is not None or (progress.exists() and sum(
                1 for line in progress.read_text().splitlines() if '"loss"' in line) >= 3)

        self.assertTrue(harness.wait_for(trained_a_little, FIRST_PROGRESS_TIMEOUT_SEC),
                        "no progress within %d s" % FIRST_PROGRESS_TIMEOUT_SEC)
        self.assertIsNone(launcher.poll(), self.launcher_output(run_dir))
        os.killpg(launcher.pid, signal.SIGINT)
        try:
            launcher.wait(timeout=STOP_TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            self.fail("launcher still running %d s after Ctrl-C" % STOP_TIMEOUT_SEC)
        output = self.launcher_output(run_dir)
        self.assertEqual(launcher.returncode, 130, output)
        page = (run_dir / "report.html").read_text()
        self.assert_self_contained(page)
        self.assertIn('<span class="badge interrupted">interrupted</span>', page, output)
        self.assertIn("(last progress line)", page)
        records = [json.loads(line) for line in progress.read_text().splitlines()
                   if '"loss"' in line]
        loss = figures(page)["loss"]
        self.assertEqual([len(line) for line in loss.lines],
                         [len(records)] * len(records[0]["loss"]))
        self.assert_nothing_left(run_dir)


if __name__ == "__main__":
    harness.main()
