"""Integration: any single process of a job can be killed without losing the
run. Through the launcher, on census MMOE with 2 servers and 2 workers:
SIGKILL of each server, of a worker, of the scheduler, of a server while it
writes a checkpoint; a corrupt newest checkpoint on resume; SIGKILL of the
launcher and every node, then --resume. Each run must exit 0 with held-out
AUC within 0.01 of the fault-free run, name the failure and the checkpoint
it resumed from, and pass the exactly-once oracle: train.counter_key's row
gains exactly 1 per push the servers applied (SGD), so after any rollback
it equals the number of batches in the data, no more and no fewer.

Kill points are drawn from MTPS_FAULT_SEED (default 9; printed on failure):
after the k-th committed checkpoint, plus a few milliseconds.
"""

import os
import random
import signal
import subprocess
import sys
import time

import harness
from harness import CONFIGS, RunDirTestCase, describe, read_json

CONFIG = CONFIGS / "census_mmoe.pbtxt"
SEED = int(os.environ.get("MTPS_FAULT_SEED", "9"))
COUNTER_KEY = 987654321
# SGD so that the counter row counts pushes exactly; every case uses it.
JOB = ["--set", "server.sparse_optimizer.sgd.learning_rate=0.05",
       "--set", "train.counter_key=%d" % COUNTER_KEY]
SERVERS, WORKERS = 2, 2
AUC_TOLERANCE = 0.01
# Generous waits for a slow shared CI machine; each ends as soon as its
# event happens.
EVENT_TIMEOUT_SEC = 120
JOB_TIMEOUT_SEC = 300


def expected_work(epochs=None):
    """(examples, batches) of the whole job (harness.expected_work)."""
    return harness.expected_work(CONFIG, WORKERS, epochs)


def committed(run_dir):
    """Ids of the committed checkpoints in run_dir."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(int(d.name[5:]) for d in root.glob("ckpt-*") if (d / "MANIFEST").exists())


class RecoveryTest(RunDirTestCase):
    baseline = None  # The fault-free run's eval metrics, shared by the cases.

    def setUp(self):
        super().setUp()
        self.rng = random.Random("%d-%s" % (SEED, self._testMethodName))
        if RecoveryTest.baseline is None:
            run_dir = self.tmp / "fault-free"
            result = self.run_launcher(CONFIG, SERVERS, WORKERS, run_dir, JOB,
                                       timeout=JOB_TIMEOUT_SEC)
            self.assertEqual(result.returncode, 0, describe(result, run_dir))
            summary = read_json(run_dir / "summary.json")
            self.assertEqual((summary["train"]["examples"], summary["counter"]), expected_work(),
                             "fault-free examples and counter")
            self.assertEqual(summary["recovery"], {"restarts": 0, "events": []})
            RecoveryTest.baseline = summary["eval"]

    # --- Helpers -------------------------------------------------------------

    def start(self, run_dir, extra=()):
        return self.start_launcher(CONFIG, SERVERS, WORKERS, run_dir, JOB + list(extra),
                                   timeout=JOB_TIMEOUT_SEC)

    def output(self, run_dir):
        return self.launcher_output(run_dir)

    def info(self, run_dir):
        return "seed %d, run dir %s\n%s" % (SEED, run_dir, self.output(run_dir))

    def wait(self, predicate, what, launcher, run_dir):
        ok = harness.wait_for(lambda: predicate() or launcher.poll() is not None,
                              EVENT_TIMEOUT_SEC, interval=0.01)
        self.assertTrue(ok and predicate(), "waiting for %s\n%s" % (what, self.info(run_dir)))

    def node_pid(self, run_dir, name):
        return harness.node_pid(run_dir, name)

    def kill_after_checkpoints(self, launcher, run_dir, name):
        """SIGKILLs node `name` after a seeded number of committed checkpoints
        (1..3) plus a seeded 0-200 ms; returns the number it waited for."""
        k = self.rng.randint(1, 3)
        self.wait(lambda: len(committed(run_dir)) >= k, "%d checkpoints" % k, launcher, run_dir)
        time.sleep(self.rng.uniform(0, 0.2))  # a seeded point between two events
        os.kill(self.node_pid(run_dir, name), signal.SIGKILL)
        return k

    def finish(self, launcher, run_dir):
        try:
            launcher.wait(timeout=JOB_TIMEOUT_SEC + 60)
        except subprocess.TimeoutExpired:
            self.fail("launcher still running\n" + self.info(run_dir))
        self.assertEqual(launcher.returncode, 0, self.info(run_dir))
        return read_json(run_dir / "summary.json")

    def assert_recovered(self, summary, run_dir, failed_node=None, epochs=None):
        info = self.info(run_dir)
        # Exactly once: every push after the checkpoint was redone once, and
        # no example was skipped or trained twice.
        examples, batches = expected_work(epochs)
        self.assertEqual(summary["counter"], batches, info)
        self.assertEqual(summary["train"]["examples"], examples, info)
        for task, metrics in RecoveryTest.baseline.items():
            if epochs is not None:
                break  # another job than the baseline
            self.assertAlmostEqual(summary["eval"][task]["auc"], metrics["auc"],
                                   delta=AUC_TOLERANCE, msg="%s AUC\n%s" % (task, info))
        if failed_node is not None:
            recovery = summary["recovery"]
            self.assertEqual(recovery["restarts"], 1, info)
            event = recovery["events"][0]
            self.assertEqual(event["node"], failed_node, info)
            self.assertIsNotNone(event["training_again_after_s"], info)
            output = self.output(run_dir)
            self.assertRegex(output, r"%s failed \(killed by SIGKILL\)" % failed_node)
            if event["checkpoint_id"] is not None:
                self.assertIn("from checkpoint %d" % event["checkpoint_id"], output)
        self.assert_nothing_left(run_dir)

    def kill_node_case(self, name, extra=()):
        run_dir = self.tmp / "run"
        launcher = self.start(run_dir, extra)
        self.kill_after_checkpoints(launcher, run_dir, name)
        summary = self.finish(launcher, run_dir)
        self.assert_recovered(summary, run_dir, failed_node=name)
        return summary

    # --- Cases ---------------------------------------------------------------

    def test_kill_server_0(self):
        self.kill_node_case("server-0")

    def test_kill_server_1(self):
        self.kill_node_case("server-1")

    def test_kill_worker(self):
        self.kill_node_case("worker-%d" % self.rng.randrange(WORKERS))

    def test_kill_scheduler(self):
        self.kill_node_case("scheduler-0")

    def test_kill_server_while_writing_a_checkpoint(self):
        # Each server holds every checkpoint file unrenamed for 1 s: kill a
        # server while one of its .tmp files exists and no manifest does.
        run_dir = self.tmp / "run"
        launcher = self.start(run_dir, ["--set", "checkpoint.test_write_delay_ms=1000"])
        name = "server-%d" % self.rng.randrange(SERVERS)
        root = run_dir / "checkpoints"

        def writing():
            for d in root.glob("ckpt-*"):
                if not (d / "MANIFEST").exists() and list(d.glob(name + ".*.tmp")):
                    return True
            return False

        self.wait(lambda: root.is_dir() and writing(), "%s writing a checkpoint" % name,
                  launcher, run_dir)
        os.kill(self.node_pid(run_dir, name), signal.SIGKILL)
        summary = self.finish(launcher, run_dir)
        self.assert_recovered(summary, run_dir, failed_node=name)
        # The checkpoint cut short was skipped (no manifest) if it was newest.
        skipped = summary.get("resumed_from", {}).get("skipped", [])
        for reason in skipped:
            self.assertIn("MANIFEST", reason)

    def kill_everything(self, launcher, run_dir):
        """SIGKILL the launcher's process group and every node: a machine dying."""
        pids = [n["pid"] for n in read_json(run_dir / "launch.json")["nodes"]]
        os.killpg(launcher.pid, signal.SIGKILL)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        launcher.wait()
        self.assertTrue(harness.wait_for(
            lambda: not any(harness.process_alive(p) for p in pids), EVENT_TIMEOUT_SEC),
            "nodes alive after SIGKILL")

    def test_kill_launcher_then_resume(self):
        run_dir = self.tmp / "run"
        launcher = self.start(run_dir)
        k = self.rng.randint(1, 3)
        self.wait(lambda: len(committed(run_dir)) >= k, "%d checkpoints" % k, launcher, run_dir)
        self.kill_everything(launcher, run_dir)
        newest = committed(run_dir)[-1]
        resumed = self.start(run_dir, ["--resume"])
        summary = self.finish(resumed, run_dir)
        self.assertGreaterEqual(summary["resumed_from"]["checkpoint_id"], newest)
        self.assert_recovered(summary, run_dir)

    def test_corrupt_checkpoints_are_skipped_on_resume(self):
        run_dir = self.tmp / "run"
        launcher = self.start(run_dir)
        # keep is 3: wait for three, then truncate a shard file of the newest
        # and flip one byte of a file of the second newest. Files shared by
        # a chain of incremental checkpoints (hard links) are left alone:
        # damaging one damages every checkpoint of the chain at once.
        self.wait(lambda: len(committed(run_dir)) >= 3, "3 checkpoints", launcher, run_dir)
        self.kill_everything(launcher, run_dir)
        ids = committed(run_dir)
        self.assertGreaterEqual(len(ids), 3, ids)
        root = run_dir / "checkpoints"
        newest = root / ("ckpt-%08d" % ids[-1])
        def own_files(d, pattern):
            return sorted(p for p in d.glob(pattern) if p.stat().st_nlink == 1)

        truncated = own_files(newest, "server-*.shard-*")
        self.assertTrue(truncated, "no shard file of its own in %s" % newest)
        truncated = truncated[self.rng.randrange(len(truncated))]
        data = truncated.read_bytes()
        truncated.write_bytes(data[:self.rng.randrange(len(data))])
        second = root / ("ckpt-%08d" % ids[-2])
        flipped = [p for p in own_files(second, "*") if p.name != "MANIFEST"]
        flipped = flipped[self.rng.randrange(len(flipped))]
        data = bytearray(flipped.read_bytes())
        data[self.rng.randrange(len(data))] ^= 0x20
        flipped.write_bytes(bytes(data))

        resumed = self.start(run_dir, ["--resume"])
        summary = self.finish(resumed, run_dir)
        skipped = summary["resumed_from"]["skipped"]
        self.assertTrue(any(truncated.name in s and "truncated" in s for s in skipped), skipped)
        self.assertTrue(any(flipped.name in s and "corrupt" in s for s in skipped), skipped)
        self.assertLess(summary["resumed_from"]["checkpoint_id"], ids[-2])
        log = (run_dir / "logs" / "scheduler-0.log").read_text()
        self.assertIn(truncated.name, log)
        self.assertIn(flipped.name, log)
        self.assert_recovered(summary, run_dir)


    def test_resuming_a_finished_run_evaluates_from_its_final_checkpoint(self):
        # The final checkpoint is taken after training: a resume (as after a
        # crash during evaluation) trains nothing and scores the same model.
        run_dir = self.tmp / "run"
        first = self.finish(self.start(run_dir), run_dir)
        resumed = self.finish(self.start(run_dir, ["--resume"]), run_dir)
        final = first["checkpoints"]["records"][-1]
        self.assertEqual(final["reason"], "trained")
        self.assertEqual(resumed["resumed_from"]["checkpoint_id"], final["id"])
        self.assertEqual(resumed["eval"], first["eval"])
        self.assertEqual(resumed["checkpoints"]["committed"], 0)
        # Training time carries over (plus the resumed attempt's empty training phase).
        self.assertAlmostEqual(resumed["train"]["seconds"], first["train"]["seconds"], delta=0.5)
        self.assert_recovered(resumed, run_dir)

    def test_checkpoint_on_request_then_sigterm_then_resume(self):
        # No automatic checkpoints: only the one asked for and the one taken
        # on SIGTERM. 40 epochs leave time to ask.
        epochs = 40
        run_dir = self.tmp / "run"
        extra = ["--set", "checkpoint.at_epoch_end=false", "--set", "checkpoint.interval_seconds=0",
                 "--set", "train.epochs=%d" % epochs]
        launcher = self.start(run_dir, extra)
        progress = run_dir / "progress.jsonl"
        self.wait(lambda: progress.exists() and harness.read_progress(progress, events=True),
                  "training to start", launcher, run_dir)
        request = subprocess.run([sys.executable, harness.LAUNCHER, "checkpoint",
                                  "--run-dir", str(run_dir)], capture_output=True, text=True,
                                 timeout=60)
        self.assertEqual(request.returncode, 0, request.stderr)
        self.wait(lambda: len(committed(run_dir)) == 1, "the requested checkpoint", launcher,
                  run_dir)
        os.kill(launcher.pid, signal.SIGTERM)
        launcher.wait(timeout=EVENT_TIMEOUT_SEC)
        self.assertEqual(launcher.returncode, 143, self.info(run_dir))
        ids = committed(run_dir)
        self.assertEqual(len(ids), 2, "no checkpoint on SIGTERM: %s\n%s" % (ids, self.info(run_dir)))
        log = (run_dir / "logs" / "scheduler-0.log").read_text()
        self.assertRegex(log, r"\(request(, incremental)?\) committed")
        self.assertRegex(log, r"\(signal(, incremental)?\) committed")
        self.assert_nothing_left(run_dir)

        resumed = self.start(run_dir, ["--resume"] + extra)
        summary = self.finish(resumed, run_dir)
        self.assertEqual(summary["resumed_from"]["checkpoint_id"], ids[-1])
        self.assert_recovered(summary, run_dir, epochs=epochs)


if __name__ == "__main__":
    harness.main()
