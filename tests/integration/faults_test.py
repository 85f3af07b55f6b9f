"""Integration: a faulty network loses nothing and applies nothing twice.

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
resends turned off fails the job, naming the lost request.

The fault schedule is drawn from MTPS_FAULT_SEED (default 9; printed on failure).
"""

import os

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

    def assert_exactly_once(self, summary, info):
        examples, batches = harness.expected_work(CONFIG, WORKERS, EPOCHS)
        self.assertEqual(summary["train"]["examples"], examples, info)
        self.assertEqual(summary["counter"], batches, info)
        self.assertEqual(summary["counter_acknowledged"], batches, info)
        u = summary["updates"]
        self.assertEqual(u["servers_counted"], SERVERS, info)
        self.assertEqual(u["applied"], u["acknowledged"], info)
        # One sparse and one dense push request per server and batch.
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
        for task, metrics in FaultsTest.baseline.items():
            self.assertAlmostEqual(summary["eval"][task]["auc"], metrics["auc"],
                                   delta=AUC_TOLERANCE, msg="%s AUC\n%s" % (task, info))

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
                "--max-restarts", "0"], timeout=JOB_TIMEOUT_SEC)
        info = "MTPS_FAULT_SEED=%d\n%s" % (SEED, describe(result, run_dir))
        self.assertNotEqual(result.returncode, 0, info)
        self.assertRegex(result.stdout + result.stderr,
                         r"request \d+ to node \d+ got no response before its deadline", info)
        self.assert_nothing_left(run_dir)


if __name__ == "__main__":
    harness.main()
