"""Integration: a faulty network or a dead server loses nothing and applies
nothing twice.

Through the launcher, census MMOE with 2 servers and 2 workers, every
process's outgoing messages go through the seeded fault injector
(cluster.faults). Each case checks the exactly-once oracle: train.counter_key's
row gains exactly 1 per applied push (SGD) and every batch pushes it once,
so at the end it must equal the batches in the data and the batches the
workers were told were acknowledged; and summary.json "updates" must show
applied == acknowledged (each push applied once, none lost) with the
duplicates the servers dropped and the resends the workers made.

Cases: 5% drop + 5% duplicate + delays up to 20 ms on every link, with
checkpoints taken meanwhile (AUC within 0.01 of the fault-free run); pushes
alone duplicated and reordered heavily; and the control: the same loss with
resends turned off fails the job, naming the lost request. With
server.replicas 1: each server SIGKILLed once mid-training (separately, at
a seeded point after training began) under 2% drop and duplicate and 5 ms
delays: the backups take over without a rollback (no restart, one failover
in summary.json), the killed server is restarted by the launcher and
rejoins as the backup of both partitions, AUC within 0.01, and the oracle
still exact.

The fault schedule is drawn from MTPS_FAULT_SEED (default 9; printed on failure).
"""

import os
import random
import signal
import time

import harness
from harness import CONFIGS, RunDirTestCase, describe, read_json

CONFIG = CONFIGS / "census_mmoe.pbtxt"
SEED = int(os.environ.get("MTPS_FAULT_SEED", "9"))
SERVERS, WORKERS = 2, 2
EPOCHS = 3  # the lossy run is ~10x slower (every message waits up to 20 ms)
JOB = ["--set", "train.epochs=%d" % EPOCHS,
       "--set", "server.sparse_optimizer.sgd.learning_rate=0.05",
       "--set", "train.counter_key=987654321"]
LOSSY = ["--set", "cluster.faults.seed=%d" % SEED,
         "--set", "cluster.faults.drop=0.05",
         "--set", "cluster.faults.duplicate=0.05",
         "--set", "cluster.faults.delay_ms_max=20"]
AUC_TOLERANCE = 0.01
JOB_TIMEOUT_SEC = 400
EVENT_TIMEOUT_SEC = 120
# Replication: the launcher's restart of the killed server tells the
# scheduler at once (the heartbeat timeout is only the fallback, generous so
# that a loaded CI machine raises no false alarm); milder message faults, so
# that training outlasts the kill and the failover.
REPLICATED = ["--set", "server.replicas=1",
              "--set", "cluster.heartbeat_interval_ms=200",
              "--set", "cluster.heartbeat_timeout_ms=5000",
              "--set", "train.epochs=10"]
MILD = ["--set", "cluster.faults.seed=%d" % SEED,
        "--set", "cluster.faults.drop=0.02",
        "--set", "cluster.faults.duplicate=0.02",
        "--set", "cluster.faults.delay_ms_max=5"]


def faults(**fields):
    return sum((["--set", "cluster.faults.%s=%s" % kv] for kv in fields.items()), [])


class FaultsTest(RunDirTestCase):
    baseline = None  # the fault-free run's eval metrics

    def setUp(self):
        super().setUp()
        if FaultsTest.baseline is None:
            summary = self.run_ok("fault-free", [])
            FaultsTest.baseline = summary["eval"]

    def run_ok(self, name, extra, max_restarts=0):
        run_dir = self.tmp / name
        result = self.run_launcher(CONFIG, SERVERS, WORKERS, run_dir,
                                   JOB + list(extra) + ["--max-restarts", str(max_restarts)],
                                   timeout=JOB_TIMEOUT_SEC)
        info = "MTPS_FAULT_SEED=%d\n%s" % (SEED, describe(result, run_dir))
        self.assertEqual(result.returncode, 0, info)
        summary = read_json(run_dir / "summary.json")
        self.assert_exactly_once(summary, info)
        self.assertEqual(summary["recovery"]["restarts"], 0, info)  # no rollback
        self.assert_nothing_left(run_dir)
        summary["_info"] = info
        return summary

    def assert_exactly_once(self, summary, info, epochs=EPOCHS, live_servers=SERVERS):
        examples, batches = harness.expected_work(CONFIG, WORKERS, epochs)
        self.assertEqual(summary["train"]["examples"], examples, info)
        self.assertEqual(summary["counter"], batches, info)
        self.assertEqual(summary["counter_acknowledged"], batches, info)
        u = summary["updates"]
        self.assertEqual(u["servers_counted"], live_servers, info)
        self.assertEqual(u["applied"], u["acknowledged"], info)
        # One sparse and one dense push request per partition (server) and batch.
        self.assertEqual(u["acknowledged"], 2 * SERVERS * batches, info)

    def test_drop_duplicate_and_delay_on_every_link(self):
        summary = self.run_ok("lossy", LOSSY + ["--set", "checkpoint.interval_steps=300"])
        info = summary["_info"]
        u = summary["updates"]
        self.assertGreater(u["resent"], 0, info)
        self.assertGreater(u["duplicates_dropped"], 0, info)
        # Checkpoints were cut and committed through the same faults
        # (SNAPSHOT, CHECKPOINT_READY and CHECKPOINT_FILES resent and deduplicated).
        self.assertGreater(summary["checkpoints"]["committed"], 0, info)
        self.assert_auc_near(summary, FaultsTest.baseline, info)

    def test_pushes_duplicated_and_reordered(self):
        summary = self.run_ok("reordered", faults(seed=SEED, duplicate=0.3, reorder=0.3,
                                                  ops="PUSH_SPARSE,PUSH_DENSE"))
        # Only requests were faulted (replies are of the same ops, so both):
        # the servers saw copies and answered or dropped every one.
        self.assertGreater(summary["updates"]["duplicates_dropped"], 0, summary["_info"])

    def test_without_resends_a_lost_message_fails_the_job(self):
        # The control: the same injector, nothing to recover with.
        run_dir = self.tmp / "no-resends"
        result = self.run_launcher(
            CONFIG, SERVERS, WORKERS, run_dir,
            JOB + faults(seed=SEED, drop=0.05) + [
                "--set", "cluster.retry.max_resends=0",
                "--set", "cluster.request_timeout_ms=2000",
                # A lost barrier message would otherwise wait out the
                # default 10 minutes (the slowest worker arrives in seconds).
                "--set", "cluster.barrier_timeout_ms=20000",
                "--max-restarts", "0"], timeout=120)
        info = "MTPS_FAULT_SEED=%d\n%s" % (SEED, describe(result, run_dir))
        self.assertNotEqual(result.returncode, 0, info)
        self.assertRegex(result.stdout + result.stderr,
                         r"request \d+ to node \d+ got no response before its deadline", info)
        self.assert_nothing_left(run_dir)


    def kill_server_case(self, rank):
        rng = random.Random("%d-%d" % (SEED, rank))
        run_dir = self.tmp / ("replicated-%d" % rank)
        launcher = self.start_launcher(CONFIG, SERVERS, WORKERS, run_dir,
                                       JOB + REPLICATED + MILD + ["--max-restarts", "0"],
                                       timeout=JOB_TIMEOUT_SEC)
        progress = run_dir / "progress.jsonl"
        # A seeded point after training began: 1-3 progress lines in.
        lines = rng.randint(1, 3)
        began = harness.wait_for(
            lambda: launcher.poll() is not None or (
                progress.exists() and len(harness.read_progress(progress)) >= lines),
            EVENT_TIMEOUT_SEC, interval=0.01)
        info = lambda: "MTPS_FAULT_SEED=%d, run dir %s\n%s" % (
            SEED, run_dir, self.launcher_output(run_dir))
        self.assertTrue(began and launcher.poll() is None, "training never began\n" + info())
        time.sleep(rng.uniform(0, 0.3))
        os.kill(harness.node_pid(run_dir, "server-%d" % rank), signal.SIGKILL)
        launcher.wait(timeout=JOB_TIMEOUT_SEC + 60)
        self.assertEqual(launcher.returncode, 0, info())
        summary = read_json(run_dir / "summary.json")
        # Both count: the rejoined server serves no partition (it adds 0).
        self.assert_exactly_once(summary, info(), epochs=10)
        # No rollback: the launcher restarted nothing; the scheduler promoted.
        self.assertEqual(summary["recovery"]["restarts"], 0, info())
        self.assertEqual([e["node"] for e in summary["recovery"]["events"]],
                         ["server-%d" % rank], info())
        failovers = summary["failovers"]
        self.assertEqual([f["server"] for f in failovers], ["server-%d" % rank], info())
        self.assertEqual(failovers[0]["promoted_partitions"], [rank], info())
        self.assertIn("its partitions fail over to their backups", self.launcher_output(run_dir))
        # The killed server came back at its old address, copied both
        # partitions (each lacked a backup) and backs them up again.
        self.assertIn("restarted server-%d to rejoin as a backup" % rank,
                      self.launcher_output(run_dir))
        self.assertTrue(summary["recovery"]["events"][0]["restarted"], info())
        rejoins = summary["rejoins"]
        self.assertEqual(sorted(r["partition"] for r in rejoins), [0, 1], info())
        self.assertEqual({r["server"] for r in rejoins}, {"server-%d" % rank}, info())
        self.assert_nothing_left(run_dir)
        return summary, info()

    def test_replicated_server_0_killed(self):
        summary, info = self.kill_server_case(0)
        self.assert_auc_near(summary, FaultsTest.replicated_baseline(self), info)

    def test_replicated_server_1_killed(self):
        summary, info = self.kill_server_case(1)
        self.assert_auc_near(summary, FaultsTest.replicated_baseline(self), info)

    _replicated_baseline = None

    @staticmethod
    def replicated_baseline(case):
        """The fault-free run of the replicated (10 epoch) job: eval metrics."""
        if FaultsTest._replicated_baseline is None:
            run_dir = case.tmp / "replicated-fault-free"
            result = case.run_launcher(CONFIG, SERVERS, WORKERS, run_dir, JOB + REPLICATED,
                                       timeout=JOB_TIMEOUT_SEC)
            info = describe(result, run_dir)
            case.assertEqual(result.returncode, 0, info)
            summary = read_json(run_dir / "summary.json")
            case.assert_exactly_once(summary, info, epochs=10)
            case.assertEqual(summary["failovers"], [], info)
            FaultsTest._replicated_baseline = summary["eval"]
        return FaultsTest._replicated_baseline

    def assert_auc_near(self, summary, baseline, info):
        for task, metrics in baseline.items():
            self.assertAlmostEqual(summary["eval"][task]["auc"], metrics["auc"],
                                   delta=AUC_TOLERANCE, msg="%s AUC\n%s" % (task, info))


if __name__ == "__main__":
    harness.main()
