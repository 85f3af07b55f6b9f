"""The training report in a real browser: headless Chromium lays out pages
built from fake run dirs (report_fixtures.py) at a desktop width (1280 px)
and a phone's (375 px) and screenshots them (chromium.py, png.py). Checks
that every chart is drawn at a usable size, no chart text overlaps another
or leaves its chart, nothing is wider than the screen, the lines show in
their legend colours, and the charts without data say so visibly."""

import shutil
import tempfile
import unittest
from pathlib import Path

import chromium
import launcher_path  # noqa: F401
from mtps_launch import report
from report_fixtures import TASKS, make_run
from report_page import CHART_IDS

DESKTOP, PHONE = 1280, 375


def rgb(hex_colour):
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


class ReportBrowserTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="mtps-report-browser-"))
        make_run(cls.tmp / "full", steps=80, servers=2, workers=2, failover_at=40)
        cls.full = report.write_report(cls.tmp / "full")
        make_run(cls.tmp / "old", steps=30, metrics=False, new_fields=False, result="failed",
                 restart_at=20)
        cls.old = report.write_report(cls.tmp / "old",
                                      outcome={"result": "failed", "reason": "worker-1 died"})

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check_layout(self, page, width, min_chart_width, min_text_px):
        layout = chromium.geometry(page, self.tmp, width)
        self.assertEqual(layout["innerWidth"], width)
        self.assertLessEqual(layout["scrollWidth"], width, "the page is wider than the screen")
        figures = {f["id"]: f for f in layout["figures"]}
        self.assertEqual(list(figures), list(CHART_IDS))
        for fig in figures.values():
            self.assertLessEqual(fig["box"]["right"], width + 0.5, fig["id"])
            if fig["svg"] is None:
                continue
            svg = fig["svg"]
            self.assertGreaterEqual(svg["width"], min_chart_width, fig["id"])
            self.assertEqual(chromium.overlapping_texts(fig), [], fig["id"])
            for text in fig["texts"]:
                box = text["box"]
                self.assertGreaterEqual(box["height"], min_text_px, (fig["id"], text))
                self.assertTrue(svg["left"] - 0.5 <= box["left"] and
                                box["right"] <= svg["right"] + 0.5 and
                                svg["top"] - 0.5 <= box["top"] and
                                box["bottom"] <= svg["bottom"] + 0.5,
                                "%s: %r leaves its chart" % (fig["id"], text["text"]))
            # Legend entries on one line do not overlap each other.
            legend = fig["legend"]
            for a, b in zip(legend, legend[1:]):
                if abs(a["box"]["top"] - b["box"]["top"]) < 1:
                    self.assertLessEqual(a["box"]["right"], b["box"]["left"], fig["id"])
        return figures

    def test_full_report_at_desktop_width(self):
        figures = self.check_layout(self.full, DESKTOP, min_chart_width=450, min_text_px=12)
        for chart_id in CHART_IDS:
            self.assertIsNotNone(figures[chart_id]["svg"], chart_id)
            self.assertIsNone(figures[chart_id]["empty"], chart_id)
        self.assertEqual(figures["loss"]["series"], len(TASKS))
        self.assertEqual(figures["auc"]["series"], len(TASKS))
        self.assertEqual(figures["throughput"]["series"], 3)  # all workers, worker 0, 1
        self.assertEqual(figures["server-rows"]["series"], 2)
        # Two charts side by side at this width.
        self.assertLess(figures["loss"]["box"]["right"], figures["auc"]["box"]["left"])

    def test_full_report_at_phone_width(self):
        figures = self.check_layout(self.full, PHONE, min_chart_width=300, min_text_px=10)
        # One column.
        self.assertGreater(figures["auc"]["box"]["top"], figures["loss"]["box"]["bottom"])

    def test_screenshot_shows_the_lines_in_their_colours(self):
        image = chromium.screenshot(self.full, self.tmp, DESKTOP, 2000)
        self.assertEqual((image.width, image.height), (DESKTOP, 2000))
        histogram = image.histogram()
        pixels = image.width * image.height
        self.assertGreater(len(histogram), 200, "too few colours: a blank page?")
        background = (histogram.get(b"\xff\xff\xff", 0) + image.count(rgb("#f5f6f8"), 2))
        self.assertLess(background / pixels, 0.97, "almost all background")
        # Each series colour the page used is on screen as a line, not a dot.
        for colour in report.PALETTE[:2] + (report.TOTAL_COLOUR,):
            self.assertGreater(image.count(rgb(colour), 10), 500, colour)

    def test_old_run_without_metrics_says_so_visibly(self):
        figures = self.check_layout(self.old, DESKTOP, min_chart_width=450, min_text_px=12)
        for chart_id in ("auc", "server-rows", "server-requests"):
            empty = figures[chart_id]["empty"]
            self.assertIsNotNone(empty, chart_id)
            self.assertIsNone(figures[chart_id]["svg"], chart_id)
            self.assertGreater(empty["box"]["height"], 50, chart_id)
            self.assertIn("no metrics.jsonl", empty["text"])
        # The restart split each task's line in two.
        self.assertEqual(figures["loss"]["series"], 2 * len(TASKS))
        image = chromium.screenshot(self.old, self.tmp, DESKTOP, 1600)
        self.assertGreater(image.count(rgb(report.PALETTE[0]), 10), 300)
        self.assertGreater(image.count(rgb("#cf222e"), 10), 50, "the failed badge")


if __name__ == "__main__":
    unittest.main(verbosity=2)
