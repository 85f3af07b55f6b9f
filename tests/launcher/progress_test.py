"""The progress line (launcher/mtps_launch/progress.py): its text with and
without the epoch fields, the ETA from a smoothed recent rate (steady, after
a slowdown, after a restart, with no or a zero rate), and ProgressDisplay on
a terminal and off one, with fake records, streams and clocks."""

import io
import re
import unittest

import launcher_path  # noqa: F401
from mtps_launch.progress import (ETA_WINDOW_SEC, PLAIN_PROGRESS_PERIOD_SEC, ProgressDisplay,
                                  RecentRate, format_duration, format_eta, format_progress)


def record(t, examples, rate=None, epoch=None, epochs=None, total=None, loss=None):
    r = {"t": t, "examples": examples, "workers_done": 0, "num_workers": 2,
         "loss": loss if loss is not None else {"income": 0.25, "never_married": 0.125}}
    if rate is not None:
        r["examples_per_sec"] = rate
    for key, value in (("epoch", epoch), ("epochs", epochs), ("examples_total", total)):
        if value is not None:
            r[key] = value
    return r


def eta_seconds(text):
    """The seconds of "ETA h:mm:ss" in text (AssertionError if there is none)."""
    match = re.search(r"ETA (\d+):(\d\d):(\d\d)", text)
    if match is None:
        raise AssertionError("no ETA in %r" % text)
    h, m, s = (int(g) for g in match.groups())
    return 3600 * h + 60 * m + s


class FakeTerminal(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class FormatTest(unittest.TestCase):

    def test_old_record_has_no_epoch_and_no_eta(self):
        text = format_progress(record(12.5, 123456, rate=9876.4))
        self.assertIn("examples 123,456", text)
        self.assertIn("9,876 ex/s", text)
        self.assertIn("loss income=0.2500 never_married=0.1250", text)
        self.assertIn("workers done 0/2", text)
        self.assertNotIn("epoch", text)
        self.assertNotIn("ETA", text)

    def test_first_epoch_says_when_the_eta_comes(self):
        text = format_progress(record(3.0, 5000, rate=1000.0, epoch=1, epochs=3))
        self.assertIn("epoch 1/3", text)
        self.assertIn("ETA after epoch 1", text)

    def test_no_total_after_the_first_epoch_is_unknown_not_a_promise(self):
        self.assertEqual(format_eta(record(3.0, 5000, rate=10.0, epoch=2, epochs=3)), "ETA ?")

    def test_eta_is_examples_left_over_the_rate(self):
        r = record(10.0, 250_000, rate=1.0, epoch=2, epochs=4, total=1_000_000)
        # The given rate, not the record's own, when there is one.
        self.assertEqual(eta_seconds(format_progress(r, rate=500.0)), 750_000 // 500)
        self.assertEqual(eta_seconds(format_progress(r)), 750_000)
        self.assertIn("epoch 2/4", format_progress(r))

    def test_zero_or_missing_rate_gives_a_question_mark(self):
        for own in (None, 0, 0.0, float("nan"), "fast"):
            for given in (None, 0.0, -5.0):
                r = record(1.0, 10, rate=own, epoch=2, epochs=2, total=100)
                self.assertEqual(format_eta(r, given), "ETA ?", (own, given))
                self.assertIn("ETA ?", format_progress(r, given))

    def test_done_or_past_the_total_is_zero(self):
        for examples in (100, 150):
            self.assertEqual(format_eta(record(1.0, examples, rate=0.0, epoch=2, epochs=2,
                                               total=100)), "ETA 0:00:00")

    def test_a_crawling_rate_is_capped(self):
        self.assertEqual(format_eta(record(1.0, 0, epoch=2, epochs=2, total=10 ** 9), 1e-3),
                         "ETA >999:00:00")

    def test_duration_format(self):
        self.assertEqual(format_duration(0), "0:00:00")
        self.assertEqual(format_duration(59.6), "0:01:00")
        self.assertEqual(format_duration(3 * 3600 + 25 * 60 + 7), "3:25:07")
        self.assertEqual(format_duration(100 * 3600), "100:00:00")

    def test_malformed_fields_do_not_break_the_line(self):
        text = format_progress({"t": "x", "examples": None, "epoch": "two", "epochs": None,
                                "examples_total": "lots", "loss": [1, 2]})
        self.assertIn("ETA after epoch 1", text)
        self.assertNotIn("loss", text)


class RecentRateTest(unittest.TestCase):

    def test_steady_rate(self):
        rate = RecentRate()
        self.assertIsNone(rate.rate())
        for i in range(10):
            rate.add({"t": 2.0 * i, "examples": 3000 * i})
        self.assertAlmostEqual(rate.rate(), 1500.0)

    def test_follows_a_slowdown_within_the_window(self):
        rate = RecentRate()
        t, examples = 0.0, 0
        for _ in range(100):  # fast for 100 s ...
            t, examples = t + 1.0, examples + 1000
            rate.add({"t": t, "examples": examples})
        for _ in range(int(ETA_WINDOW_SEC) + 5):  # ... then slow for longer than the window
            t, examples = t + 1.0, examples + 100
            rate.add({"t": t, "examples": examples})
        self.assertAlmostEqual(rate.rate(), 100.0)

    def test_smooths_a_single_slow_interval(self):
        rate = RecentRate()
        t, examples = 0.0, 0
        for i in range(30):
            t += 1.0
            examples += 10 if i == 20 else 1000
            rate.add({"t": t, "examples": examples})
        self.assertGreater(rate.rate(), 900.0)

    def test_restart_starts_again(self):
        rate = RecentRate()
        for i in range(10):
            rate.add({"t": 10.0 + i, "examples": 1000 * i})
        rate.add({"t": 0.5, "examples": 100})  # a new scheduler
        self.assertIsNone(rate.rate())
        rate.add({"t": 1.5, "examples": 300})
        self.assertAlmostEqual(rate.rate(), 200.0)

    def test_records_without_time_or_examples_are_ignored(self):
        rate = RecentRate()
        for r in ({"t": 1.0}, {"examples": 5}, {"t": True, "examples": 3},
                  {"t": 1.0, "examples": 10}, {"t": 1.0, "examples": 20}):
            rate.add(r)
        self.assertIsNone(rate.rate())


class DisplayTest(unittest.TestCase):

    def test_terminal_line_is_redrawn_with_a_smoothed_eta(self):
        out = FakeTerminal(tty=True)
        display = ProgressDisplay(False, stream=out, columns=lambda: 200)
        # 1000 examples/s on average, but each record's own rate jumps about.
        for i in range(1, 21):
            display.show(record(float(i), 1000 * i, rate=400.0 if i % 2 else 1600.0, epoch=2,
                                epochs=2, total=100_000))
        display.finish()
        text = out.getvalue()
        frames = text.split("\r\x1b[K")[1:]
        self.assertEqual(len(frames), 20)
        self.assertTrue(text.endswith("\n"))
        self.assertEqual(eta_seconds(frames[-1]), (100_000 - 20_000) // 1000)

    def test_terminal_line_is_cut_to_the_width(self):
        out = FakeTerminal(tty=True)
        display = ProgressDisplay(False, stream=out, columns=lambda: 60)
        display.show(record(5.0, 10, rate=2.0, epoch=1, epochs=2))
        frame = out.getvalue().split("\r\x1b[K")[1]
        self.assertEqual(len(frame), 59)
        # Epoch and ETA come before the losses, which are cut first.
        self.assertIn("ETA after epoch 1", frame)

    def test_not_a_terminal_prints_plain_lines_at_most_every_period(self):
        out = FakeTerminal(tty=False)
        clock = FakeClock()
        display = ProgressDisplay(False, stream=out, clock=clock)
        for i in range(12):
            display.show(record(float(i), 100 * i, rate=100.0, epoch=2, epochs=2, total=2000))
            clock.now += PLAIN_PROGRESS_PERIOD_SEC / 4
        display.finish()
        lines = out.getvalue().splitlines()
        self.assertNotIn("\r", out.getvalue())
        # The first record at once, then one per period, and the last at finish.
        self.assertEqual(len(lines), 1 + 12 // 4)
        self.assertIn("examples 1,100", lines[-1])
        self.assertIn("ETA", lines[-1])

    def test_quiet_prints_nothing(self):
        out = FakeTerminal(tty=True)
        display = ProgressDisplay(True, stream=out)
        display.show(record(1.0, 1, rate=1.0))
        display.finish()
        self.assertEqual(out.getvalue(), "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
