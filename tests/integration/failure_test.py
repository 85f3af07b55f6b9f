"""Integration: a node that fails makes the launcher fail, name that node and
leave nothing running."""

import itertools

import harness
from harness import CONFIGS, RunDirTestCase, describe, read_json

CONFIG = CONFIGS / "census_mmoe.pbtxt"
FAILED_NODE = r"FAILED: (scheduler|server|worker)-\d+ \(pid \d+\)"


class FailureTest(RunDirTestCase):
    def assert_failed_cleanly(self, result, run_dir):
        info = describe(result, run_dir)
        self.assertEqual(result.returncode, 1, info)
        self.assertRegex(result.stderr, FAILED_NODE, info)
        launch = read_json(run_dir / "launch.json")
        self.assertEqual(launch["result"], "failed", info)
        failed = [n for n in launch["nodes"] if n["exit_code"] != 0 and not n["stopped_by_launcher"]]
        self.assertTrue(failed, "no node recorded as failed: %s" % launch["nodes"])
        self.assert_nothing_left(run_dir)
        return info

    def test_malformed_training_line_fails_the_job(self):
        # A copy of the first training lines with one line of 3 fields (the
        # census format has 42) in the middle.
        train = harness.config_data_path(CONFIG, "train_path")
        with harness.open_text(train) as f:
            lines = [line.rstrip("\n") for line in itertools.islice(f, 400)]
        self.assertEqual(len(lines), 400)
        bad = self.tmp / "census_malformed_train.txt"
        bad.write_text("\n".join(lines[:201] + ["73, Not in universe, 0"] + lines[201:]) + "\n")

        run_dir = self.tmp / "run"
        result = self.run_launcher(CONFIG, servers=1, workers=2, run_dir=run_dir,
                                   extra=["--set", "data.train_path=%s" % bad], timeout=300)
        info = self.assert_failed_cleanly(result, run_dir)
        # The node's error names the file; the launcher shows its log tail.
        self.assertIn(bad.name, result.stderr, info)

    def test_diverging_training_names_the_batch_and_task(self):
        # A dense learning rate of 1e30 overflows the towers within a few
        # batches; the worker stops before pushing a non-finite gradient.
        run_dir = self.tmp / "run"
        result = self.run_launcher(
            CONFIG, servers=1, workers=1, run_dir=run_dir,
            extra=["--set", "server.dense_optimizer.adam.learning_rate=1e30"], timeout=300)
        info = self.assert_failed_cleanly(result, run_dir)
        self.assertRegex(result.stderr, r"worker 0, epoch 1, batch \d+ \(examples \d+ to \d+",
                         info)
        self.assertRegex(result.stderr, r"the loss of task (income|marital)\w* is -?(nan|inf)",
                         info)
        self.assertIn("nothing pushed (server.nonfinite_gradients: REJECT)", result.stderr, info)

    def test_unknown_config_field_fails_in_the_scheduler(self):
        run_dir = self.tmp / "run"
        result = self.run_launcher(CONFIG, servers=1, workers=1, run_dir=run_dir,
                                   extra=["--set", "train.no_such_field=1"], timeout=120)
        info = self.assert_failed_cleanly(result, run_dir)
        self.assertIn("FAILED: scheduler-0", result.stderr, info)
        self.assertIn("no_such_field", result.stderr, info)
        self.assertFalse((run_dir / "scheduler.addr").exists(), info)


if __name__ == "__main__":
    harness.main()
