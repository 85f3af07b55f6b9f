"""Integration: Ctrl-C, SIGTERM and --timeout stop a running job, with the
documented exit codes, and leave no node running."""

import os
import signal
import subprocess

import harness
from harness import CONFIGS, RunDirTestCase, read_json

CONFIG = CONFIGS / "census_mmoe.pbtxt"
# A job far longer than any test: it only ends by being stopped.
ENDLESS = ["--set", "train.epochs=1000"]
# Generous: covers a slow, shared CI machine starting a cluster.
FIRST_PROGRESS_TIMEOUT_SEC = 120
# The launcher gives nodes 5 s after SIGTERM before SIGKILL; a hang guard.
STOP_TIMEOUT_SEC = 30
# --timeout of the first attempt of test_timeout_stops_everything, doubled on
# each retry (5, 10, ..., 160 s: the last one outlasts FIRST_PROGRESS_TIMEOUT_SEC).
TIMEOUT_FIRST_TRY_SEC = 5
TIMEOUT_TRIES = 6


class InterruptTest(RunDirTestCase):
    def start_endless_job(self, run_dir, extra=()):
        """Starts the launcher in its own process group (as a shell would a
        foreground job) and waits for the first progress record."""
        out = open(self.tmp / "launcher.out", "w")
        self.addCleanup(out.close)
        argv = self.launch_argv(CONFIG, 1, 1, run_dir, ENDLESS + list(extra))
        launcher = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(self._kill_group, launcher)
        return launcher

    def _kill_group(self, launcher):
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()

    def launcher_output(self):
        return (self.tmp / "launcher.out").read_text(errors="replace")

    def wait_for_progress(self, launcher, run_dir):
        progress = run_dir / "progress.jsonl"

        def has_record():
            return launcher.poll() is not None or (
                progress.exists() and progress.read_text().strip() != "")

        self.assertTrue(harness.wait_for(has_record, FIRST_PROGRESS_TIMEOUT_SEC),
                        "no progress within %d s" % FIRST_PROGRESS_TIMEOUT_SEC)
        self.assertIsNone(launcher.poll(), "launcher exited early:\n" + self.launcher_output())

    def assert_stopped(self, launcher, run_dir, exit_code, result):
        try:
            launcher.wait(timeout=STOP_TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            self.fail("launcher still running %d s after being stopped" % STOP_TIMEOUT_SEC)
        output = self.launcher_output()
        self.assertEqual(launcher.returncode, exit_code, output)
        launch = read_json(run_dir / "launch.json")
        self.assertEqual(launch["result"], result, output)
        self.assertEqual(len(launch["nodes"]), 3, launch)
        for node in launch["nodes"]:
            # The launcher itself stopped and reaped every node.
            self.assertTrue(node["stopped_by_launcher"], node)
            self.assertIsNotNone(node["exit_code"], node)
        self.assert_nothing_left(run_dir)
        return output

    def test_ctrl_c_stops_everything(self):
        run_dir = self.tmp / "run"
        launcher = self.start_endless_job(run_dir)
        self.wait_for_progress(launcher, run_dir)
        # A terminal's Ctrl-C goes to the whole foreground process group.
        os.killpg(launcher.pid, signal.SIGINT)
        output = self.assert_stopped(launcher, run_dir, 130, "interrupted")
        self.assertIn("SIGINT", output)

    def test_sigterm_stops_everything(self):
        run_dir = self.tmp / "run"
        launcher = self.start_endless_job(run_dir)
        self.wait_for_progress(launcher, run_dir)
        launcher.send_signal(signal.SIGTERM)
        self.assert_stopped(launcher, run_dir, 143, "interrupted")

    def test_timeout_stops_everything(self):
        # --timeout counts from the launcher's start, and how long a cluster
        # takes to start training depends on the machine. So the test does
        # not assume the job is training at any given time: whenever the
        # timeout strikes, the launcher must stop and reap every node it
        # started (checked on every attempt), and an attempt whose timeout
        # struck before the job was training (no progress record, fewer
        # than 3 nodes) is repeated with twice the timeout.
        timeout = TIMEOUT_FIRST_TRY_SEC
        for attempt in range(TIMEOUT_TRIES):
            run_dir = self.tmp / ("run%d" % attempt)
            launcher = self.start_endless_job(run_dir, ["--timeout", str(timeout)])
            try:
                launcher.wait(timeout=timeout + STOP_TIMEOUT_SEC)
            except subprocess.TimeoutExpired:
                self.fail("--timeout %d did not stop the job" % timeout)
            output = self.launcher_output()
            self.assertEqual(launcher.returncode, 124, output)
            launch = read_json(run_dir / "launch.json")
            self.assertEqual(launch["result"], "timeout", output)
            for node in launch["nodes"]:
                self.assertTrue(node["stopped_by_launcher"], node)
                self.assertIsNotNone(node["exit_code"], node)
            self.assert_nothing_left(run_dir)
            progress = run_dir / "progress.jsonl"
            trained = progress.exists() and progress.read_text().strip() != ""
            if trained and len(launch["nodes"]) == 3:
                return  # it stopped a running job
            timeout *= 2
        self.fail("no job reached its first progress record within %d s" % (timeout // 2))

    def test_killed_launcher_leaves_nothing(self):
        # SIGKILL gives the launcher no chance to clean up; the nodes'
        # --exit_with_parent (PR_SET_PDEATHSIG) must end them.
        run_dir = self.tmp / "run"
        launcher = self.start_endless_job(run_dir)
        self.wait_for_progress(launcher, run_dir)
        pids = [node["pid"] for node in read_json(run_dir / "launch.json")["nodes"]]
        launcher.kill()
        launcher.wait()
        gone = harness.wait_for(
            lambda: not any(harness.process_alive(pid) for pid in pids), STOP_TIMEOUT_SEC)
        self.assertTrue(gone, "nodes outlived a SIGKILLed launcher: %s" %
                        [pid for pid in pids if harness.process_alive(pid)])
        self.assert_nothing_left(run_dir)


if __name__ == "__main__":
    harness.main()
