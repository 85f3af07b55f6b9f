"""Integration: the consistency modes hold their bound under a deliberately
slow worker (train.throttle_rank sleeps before every batch): with 2 workers on
census, ASYNC lets the fast worker run far ahead, BOUNDED_STALENESS keeps it
at most `staleness` batches ahead of the slow worker's acknowledged clock,
BSP keeps them in lockstep. The scheduler records the largest gap it saw
(summary.json "consistency".max_clock_gap); every mode still trains.

That ASYNC has no bound is shown by construction, not by a race between the
two workers' speeds: the slow worker is held before its first batch (its
throttle outlasts the test), and the fast one must still finish its whole
epoch, an event the scheduler records (progress.jsonl "workers_done")."""

import os
import signal
import subprocess

import harness
from harness import CONFIGS, RunDirTestCase, describe, read_json, read_progress

CONFIG = CONFIGS / "census_mmoe.pbtxt"
STALENESS = 3
# Longer than any wait of this test: a worker throttled so never starts a batch.
HELD_MS = 3600 * 1000
# Hang guards only: a job that is not stuck reaches these events in seconds.
EVENT_TIMEOUT_SEC = 300
STOP_TIMEOUT_SEC = 30


class ConsistencyTest(RunDirTestCase):
    def run_mode(self, mode):
        run_dir = self.tmp / mode.lower()
        result = self.run_launcher(
            CONFIG, servers=1, workers=2, run_dir=run_dir, timeout=300,
            extra=["--set", "train.epochs=1", "--set", "train.consistency=" + mode,
                   "--set", "train.staleness=%d" % STALENESS,
                   "--set", "train.throttle_rank=1", "--set", "train.throttle_ms=5"])
        info = describe(result, run_dir)
        self.assertEqual(result.returncode, 0, info)
        summary = read_json(run_dir / "summary.json")
        self.assertEqual(summary["consistency"]["mode"], mode, info)
        # Every mode still learns (one epoch reaches ~0.91 income AUC).
        self.assertGreater(summary["eval"]["income"]["auc"], 0.85, info)
        self.assert_nothing_left(run_dir)
        return summary["consistency"]["max_clock_gap"], info

    def test_async_lets_the_fast_worker_run_ahead(self):
        # Worker 1 sleeps HELD_MS before its first batch, so its clock stays
        # 0 for the whole test. Under ASYNC worker 0 must still train its
        # whole share and reach the "trained" barrier: the scheduler then
        # writes workers_done 1. Any bound (BOUNDED_STALENESS, BSP, or ASYNC
        # secretly bounded) stops worker 0 at batch staleness + 1 for good,
        # and the wait below fails at its deadline.
        run_dir = self.tmp / "async-held"
        out = open(self.tmp / "launcher.out", "w")
        self.addCleanup(out.close)
        argv = self.launch_argv(
            CONFIG, 1, 2, run_dir,
            ["--set", "train.epochs=1", "--set", "train.consistency=ASYNC",
             "--set", "train.staleness=%d" % STALENESS,
             "--set", "train.throttle_rank=1", "--set", "train.throttle_ms=%d" % HELD_MS,
             "--set", "train.progress_interval_sec=0.1",
             "--timeout", str(EVENT_TIMEOUT_SEC + 60)])
        launcher = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(self._kill_group, launcher)
        progress = run_dir / "progress.jsonl"

        def records():
            return read_progress(progress) if progress.exists() else []

        def fast_worker_done():
            return launcher.poll() is not None or any(
                r["workers_done"] >= 1 for r in records())

        done = harness.wait_for(fast_worker_done, EVENT_TIMEOUT_SEC)
        self.assertIsNone(launcher.poll(), "the job ended early:\n" + self.launcher_output())
        self.assertTrue(done, "worker 0 did not finish its epoch while worker 1 was held "
                        "before its first batch: ASYNC is bounded\n%s" % records()[-3:])
        record = next(r for r in records() if r["workers_done"] >= 1)
        self.assertEqual(record["workers_done"], 1, record)
        self.assertGreater(record["examples"], 0, record)
        # The job cannot end by itself (worker 1 is held): stop it.
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(timeout=STOP_TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            self.fail("launcher still running %d s after SIGTERM" % STOP_TIMEOUT_SEC)
        self.assertEqual(launcher.returncode, 143, self.launcher_output())
        self.assert_nothing_left(run_dir)

    def launcher_output(self):
        return (self.tmp / "launcher.out").read_text(errors="replace")

    def _kill_group(self, launcher):
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()

    def test_async_trains_with_a_slow_worker(self):
        # The bound itself is shown above; here the whole job runs.
        gap, info = self.run_mode("ASYNC")
        self.assertGreaterEqual(gap, 0, info)

    def test_bounded_staleness_holds_its_bound(self):
        gap, info = self.run_mode("BOUNDED_STALENESS")
        self.assertLessEqual(gap, STALENESS, info)
        self.assertGreaterEqual(gap, 1, info)  # the bound was actually reached

    def test_bsp_keeps_workers_in_lockstep(self):
        gap, info = self.run_mode("BSP")
        self.assertEqual(gap, 0, info)


if __name__ == "__main__":
    harness.main()
