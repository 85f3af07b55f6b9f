"""Integration: train.dense_sync_batches > 1, the workers' local dense steps.

With one server and one worker (census single task, prefetch off, so that
train.dense_sync_batches 1 has no staleness either) the local steps are the
servers' steps: the held-out metrics of dense_sync_batches 4 equal those of 1
to 1e-5 (rounding), and the evaluation, which scores with the servers' copy,
would be far off if a sync lost or doubled the worker's changes. With two
servers and two workers on census MMOE the job trains to the quality of
dense_sync_batches 1, with about 5/8 of its push requests (the dense block
travels every 4th batch), and a worker killed mid-training is recovered from
a checkpoint, which waits for the worker's next sync."""

import os
import signal

import harness
from harness import CONFIGS, RunDirTestCase, describe, read_json

SINGLE = CONFIGS / "census_single_task.pbtxt"
MMOE = CONFIGS / "census_mmoe.pbtxt"
SYNC4 = ["--set", "train.dense_sync_batches=4"]
EVENT_TIMEOUT_SEC = 120


class DenseSyncTest(RunDirTestCase):
    def run_job(self, name, config, servers, workers, extra):
        run_dir = self.tmp / name
        result = self.run_launcher(config, servers, workers, run_dir, extra)
        self.assertEqual(result.returncode, 0, describe(result, run_dir))
        self.assert_nothing_left(run_dir)
        return run_dir, read_json(run_dir / "summary.json")

    def test_one_worker_local_steps_are_the_servers_steps(self):
        no_prefetch = ["--set", "train.prefetch=false"]
        _, servers = self.run_job("k1", SINGLE, 1, 1, no_prefetch)
        run_dir, local = self.run_job("k4", SINGLE, 1, 1, no_prefetch + SYNC4)
        log = (run_dir / "logs" / "worker-0.log").read_text()
        self.assertIn("dense parameters stepped here, synced every 4 batches", log)
        for key in ("auc", "logloss"):
            self.assertAlmostEqual(local["eval"]["income"][key], servers["eval"]["income"][key],
                                   delta=1e-5, msg="income %s: %s against %s" % (
                                       key, local["eval"], servers["eval"]))

    def test_two_workers_train_as_well_with_fewer_pushes(self):
        _, servers = self.run_job("mmoe-k1", MMOE, 2, 2, [])
        _, local = self.run_job("mmoe-k4", MMOE, 2, 2, SYNC4)
        for task in ("income", "never_married"):
            self.assertAlmostEqual(local["eval"][task]["auc"], servers["eval"][task]["auc"],
                                   delta=0.01, msg=task)
        # Per batch and server: one sparse push, and a dense one every 4th
        # batch (plus the syncs before checkpoints and after the last batch).
        ratio = local["updates"]["acknowledged"] / servers["updates"]["acknowledged"]
        self.assertGreater(ratio, 0.6, local["updates"])
        self.assertLess(ratio, 0.7, local["updates"])

    def test_a_killed_worker_is_recovered(self):
        run_dir = self.tmp / "kill"
        launcher = self.start_launcher(MMOE, 2, 2, run_dir, SYNC4)
        root = run_dir / "checkpoints"

        def checkpoints():
            return root.is_dir() and any((d / "MANIFEST").exists() for d in root.glob("ckpt-*"))

        ok = harness.wait_for(lambda: checkpoints() or launcher.poll() is not None,
                              EVENT_TIMEOUT_SEC, interval=0.01)
        self.assertTrue(ok and checkpoints(), self.launcher_output(run_dir))
        os.kill(harness.node_pid(run_dir, "worker-1"), signal.SIGKILL)
        launcher.wait(timeout=600)
        output = self.launcher_output(run_dir)
        self.assertEqual(launcher.returncode, 0, output)
        summary = read_json(run_dir / "summary.json")
        self.assertEqual(summary["recovery"]["restarts"], 1, output)
        self.assertEqual(summary["train"]["examples"], harness.expected_work(MMOE, 2)[0], output)
        self.assertGreater(summary["eval"]["income"]["auc"], 0.92, output)
        self.assert_nothing_left(run_dir)


if __name__ == "__main__":
    harness.main()
