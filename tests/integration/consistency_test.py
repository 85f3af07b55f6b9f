"""Integration: the consistency modes hold their bound under a deliberately
slow worker (train.throttle_rank sleeps before every batch): with 2 workers on
census, ASYNC lets the fast worker run far ahead, BOUNDED_STALENESS keeps it
at most `staleness` batches ahead of the slow worker's acknowledged clock,
BSP keeps them in lockstep. The scheduler records the largest gap it saw
(summary.json "consistency".max_clock_gap); every mode still trains."""

import harness
from harness import CONFIGS, RunDirTestCase, describe, read_json

CONFIG = CONFIGS / "census_mmoe.pbtxt"
STALENESS = 3


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
        gap, info = self.run_mode("ASYNC")
        # ~109 batches per worker; the slow one takes >= 5 ms each, the fast
        # one far less, so the fast one gets well past the bound.
        self.assertGreater(gap, 4 * STALENESS, info)

    def test_bounded_staleness_holds_its_bound(self):
        gap, info = self.run_mode("BOUNDED_STALENESS")
        self.assertLessEqual(gap, STALENESS, info)
        self.assertGreaterEqual(gap, 1, info)  # the bound was actually reached

    def test_bsp_keeps_workers_in_lockstep(self):
        gap, info = self.run_mode("BSP")
        self.assertEqual(gap, 0, info)


if __name__ == "__main__":
    harness.main()
