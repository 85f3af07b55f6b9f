"""Integration: MMOE on UCI census-income through the launcher, 2 servers (2
shard threads each) and 2 workers; checks held-out AUCs, the run-dir records and that every process
exited 0 and none is left."""

import math

import harness
from harness import CONFIGS, RunDirTestCase, describe, read_json, read_progress

CONFIG = CONFIGS / "census_mmoe.pbtxt"

# Held-out AUC floors. The MMoE paper's census setup reports ~0.94 (income)
# and ~0.993 (never married). Measured with configs/census_mmoe.pbtxt (10
# epochs), 2 servers, 2 workers, train.seed 1..5: income 0.9309-0.9349,
# never_married 0.9947-0.9948. What the floors rule out, measured the same way:
# embeddings that never learn (sparse learning rate 1e-9) give 0.9296 / 0.9908,
# frozen towers (dense learning rate 1e-9) 0.774 / 0.980, a single epoch
# 0.912 / 0.9937. So never_married > 0.993 fails when the sparse path is broken
# and income > 0.925 when the towers or training length are; both leave about
# 0.002-0.006 below the weakest healthy run for asynchronous timing noise.
MIN_AUC = {"income": 0.925, "never_married": 0.993}


class CensusMmoeTest(RunDirTestCase):
    def test_trains_to_published_quality(self):
        run_dir = self.tmp / "run"
        # Two shard threads per server: the default is one, which every other
        # integration test runs.
        result = self.run_launcher(CONFIG, servers=2, workers=2, run_dir=run_dir,
                                   extra=["--set", "server.shard_threads=2"])
        info = describe(result, run_dir)
        self.assertEqual(result.returncode, 0, info)

        summary = read_json(run_dir / "summary.json")
        self.assertEqual(summary["model"], "mmoe")
        test_rows = len(harness.data_lines(harness.config_data_path(CONFIG, "test_path")))
        self.assertEqual(set(summary["eval"]), set(MIN_AUC), info)
        for task, floor in MIN_AUC.items():
            metrics = summary["eval"][task]
            self.assertGreater(metrics["auc"], floor, "%s AUC\n%s" % (task, info))
            self.assertTrue(math.isfinite(metrics["logloss"]) and metrics["logloss"] > 0, task)
            self.assertEqual(metrics["examples"], test_rows, task)
        self.assertGreater(summary["train"]["examples"], 0)
        # The launcher printed the table from summary.json.
        for task in MIN_AUC:
            self.assertIn(task, result.stdout)

        # cluster.json: scheduler + 2 servers + 2 workers, distinct ports and
        # pids, the ranks the launcher asked for, the pids it started.
        cluster = read_json(run_dir / "cluster.json")
        nodes = cluster["nodes"]
        self.assertEqual(len(nodes), 5, cluster)
        self.assertEqual(len({n["port"] for n in nodes}), 5, cluster)
        self.assertEqual(len({n["pid"] for n in nodes}), 5, cluster)
        self.assertEqual(len({n["node_id"] for n in nodes}), 5, cluster)
        for role, count in (("scheduler", 1), ("server", 2), ("worker", 2)):
            ranks = sorted(n["rank"] for n in nodes if n["role"] == role)
            self.assertEqual(ranks, list(range(count)), "%s ranks in %s" % (role, cluster))
        launch = read_json(run_dir / "launch.json")
        self.assertEqual({n["pid"] for n in nodes}, {n["pid"] for n in launch["nodes"]})

        # Every process exited 0, and none is alive.
        self.assertEqual(launch["result"], "success")
        for node in launch["nodes"]:
            self.assertEqual(node["exit_code"], 0, node)
        self.assert_nothing_left(run_dir)

        # progress.jsonl is well formed and its examples never go down.
        records = read_progress(run_dir / "progress.jsonl")
        self.assertTrue(records, "no progress reported")
        examples = [r["examples"] for r in records]
        self.assertEqual(examples, sorted(examples))
        for record in records:
            self.assertEqual(set(record["loss"]), set(MIN_AUC), record)
            self.assertEqual(record["num_workers"], 2)


if __name__ == "__main__":
    harness.main()
