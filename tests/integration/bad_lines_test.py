"""Integration: the data error budget (data.max_bad_lines) through the launcher.

Census MMOE with 1 server and 2 workers on a copy of the first census lines
with five malformed lines put in at known places: three in the training file,
two in the test file. Worker w reads the data lines i with i % 2 == w of both
files, so worker 0 meets three of them (two while training, one while
evaluating) and worker 1 two. Within the budget the job completes and
summary.json counts exactly five, every epoch reading them again; with a
budget of two, worker 0 fails at its third one, in the test file, and the
launcher shows the error naming that file, line and budget."""

import itertools

import harness
from harness import CONFIGS, RunDirTestCase, describe, read_json

CONFIG = CONFIGS / "census_mmoe.pbtxt"
TRAIN_LINES = 2000
TEST_LINES = 600
EPOCHS = 2


def first_lines(path, n):
    with harness.open_text(path) as f:
        return [line.rstrip("\n") for line in itertools.islice(f, n)]


def with_bad_lines(good, bad):
    """`good` with bad[index] put in so that it is data line `index`."""
    lines = list(good)
    for index in sorted(bad):
        lines.insert(index, bad[index])
    return lines


class BadLinesTest(RunDirTestCase):
    def setUp(self):
        super().setUp()
        train = first_lines(harness.config_data_path(CONFIG, "train_path"), TRAIN_LINES)
        test = first_lines(harness.config_data_path(CONFIG, "test_path"), TEST_LINES)
        self.assertEqual((len(train), len(test)), (TRAIN_LINES, TEST_LINES))
        age_bad = "4x2" + train[7][train[7].index(","):]  # a dense column that is no number
        # Data line index -> malformed line. Even indexes are worker 0's.
        self.train_bad = {100: "73, Not in universe, 0",  # 3 values of 42
                          251: age_bad,
                          600: train[9] + ", extra"}  # 43 values
        self.test_bad = {40: test[3].rsplit(", ", 1)[0],  # 41 values
                         91: "garbage"}
        self.train = self.tmp / "census_bad_train.txt"
        self.test = self.tmp / "census_bad_test.txt"
        self.train.write_text("\n".join(with_bad_lines(train, self.train_bad)) + "\n")
        self.test.write_text("\n".join(with_bad_lines(test, self.test_bad)) + "\n")

    def run_job(self, run_dir, max_bad_lines):
        return self.run_launcher(
            CONFIG, servers=1, workers=2, run_dir=run_dir, timeout=300,
            extra=["--set", "data.train_path=%s" % self.train,
                   "--set", "data.test_path=%s" % self.test,
                   "--set", "train.epochs=%d" % EPOCHS,
                   "--set", "data.max_bad_lines=%d" % max_bad_lines])

    def test_within_the_budget_the_job_completes_and_counts_each_line_once(self):
        run_dir = self.tmp / "run"
        result = self.run_job(run_dir, max_bad_lines=3)
        info = describe(result, run_dir)
        self.assertEqual(result.returncode, 0, info)
        summary = read_json(run_dir / "summary.json")
        self.assertIsInstance(summary["bad_lines_skipped"], int, info)
        self.assertEqual(summary["bad_lines_skipped"], 5, info)
        # Every good line trained every epoch, every good test line scored.
        self.assertEqual(summary["train"]["examples"], EPOCHS * TRAIN_LINES, info)
        for task, metrics in summary["eval"].items():
            self.assertEqual(metrics["examples"], TEST_LINES, task)
        # Each worker logs each of its lines once (file and line) and its count.
        logs = {w: (run_dir / "logs" / ("worker-%d.log" % w)).read_text() for w in (0, 1)}
        for path, bad in ((self.train, self.train_bad), (self.test, self.test_bad)):
            for index in bad:
                where = "%s:%d: " % (path, index + 1)
                self.assertEqual(logs[index % 2].count(where), 1, "%s\n%s" % (where, info))
                self.assertNotIn(where, logs[1 - index % 2])
        self.assertIn("skipped 3 malformed data lines (data.max_bad_lines = 3)", logs[0])
        self.assertIn("skipped 2 malformed data lines (data.max_bad_lines = 3)", logs[1])
        self.assert_nothing_left(run_dir)

    def test_beyond_the_budget_the_job_fails_naming_file_line_and_budget(self):
        run_dir = self.tmp / "run"
        result = self.run_job(run_dir, max_bad_lines=2)
        info = describe(result, run_dir)
        self.assertEqual(result.returncode, 1, info)
        self.assertIn("FAILED: worker-0", result.stderr, info)
        # Worker 0's third malformed line: test data line 40, file line 41.
        self.assertIn("%s:41: expected 42 census-income values" % self.test, result.stderr, info)
        self.assertIn("(malformed line 3, beyond the data error budget: data.max_bad_lines = 2)",
                      result.stderr, info)
        launch = read_json(run_dir / "launch.json")
        self.assertEqual(launch["result"], "failed", info)
        worker0 = [n for n in launch["nodes"] if n["role"] == "worker" and n["rank"] == 0]
        self.assertEqual([n["exit_code"] for n in worker0], [3], info)  # no restart
        self.assertFalse((run_dir / "summary.json").exists(), info)
        self.assert_nothing_left(run_dir)


if __name__ == "__main__":
    harness.main()
