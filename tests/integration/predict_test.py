"""Integration: `mtps-launch predict` and `mtps-launch export` on models
trained through the launcher, and the PyTorch loader of the export.

Census MMOE (2 epochs, 2 servers of 2 shard threads, 2 workers: the final
checkpoint is a chain of deltas on two partitions; the workers step the
dense parameters, train.dense_sync_batches 4) and ESMM on the Ali-CCP
sample (1 server, 2 workers; the servers step them). Checks: predict writes a row per data line
with the tasks of summary.json's eval and the data's labels; its
probabilities give summary.json's held-out AUC and logloss when recomputed
here (independently, from the TSV); the export's loader
(launcher/mtps_launch/torch_export.py) rebuilds the same input rows from
the keys predict saw, its own hashing of the raw census lines gives those
keys, and it scores every example within 1e-5 of predict, unseen keys
included (their initial values), for every model kind (PLE with batch
norm and PReLU, Shared-Bottom, single-task, ESMM NAIVE too); ESMM's pCVR is scored for every
impression; a CSV without label columns is scored as with them. Errors: a
missing run dir, a run dir without checkpoints, a corrupt newest
checkpoint (predict names the file, falls back and says so; asked for by
id, it refuses), a malformed data line (named file:line, no output left).

Run as: predict_test.py LAUNCHER MTPS_NODE MTPS_PREDICT [unittest args].
"""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

import harness
from harness import CONFIGS, describe, read_json

sys.path.insert(0, str(harness.REPO / "launcher"))
from mtps_launch import torch_export  # noqa: E402

PREDICT = None  # set from argv in __main__
CENSUS = CONFIGS / "census_mmoe.pbtxt"
ESMM = CONFIGS / "aliccp_esmm.pbtxt"

# The loader against mtps-predict: float32 towers in both, summed in other
# orders (measured: 8e-7 for census, 3e-8 for ESMM, 2026-12-02).
SCORE_TOLERANCE = 1e-5


def auc(scores, labels):
    """ROC AUC by Mann-Whitney U with ties counting one half (the definition
    common/eval/metrics.h documents), in float64."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels) > 0.5
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    ranks = np.empty(scores.size)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    positives = labels.sum()
    negatives = labels.size - positives
    return (ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives)


def logloss(scores, labels):
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def read_tsv(path):
    """(header, float64 array of the rows)."""
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in f]
    return header, np.array(rows, dtype=np.float64).reshape(len(rows), len(header))


def load_dump(directory):
    return [np.load(os.path.join(directory, name + ".npy"))
            for name in ("keys", "weights", "offsets", "dense")]


class PredictTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="mtps-it-predict-"))
        cls.census = cls.tmp / "census"
        # Census with the workers' local dense steps (its dense blocks are
        # the servers' added changes, MTPSDENS kind 3), ESMM with the
        # servers' (kind 2, Adam).
        cls.census_result = cls.train(CENSUS, 2, 2, cls.census,
                                      ["--set", "train.epochs=2", "--set",
                                       "server.shard_threads=2", "--set",
                                       "train.dense_sync_batches=4"])
        cls.esmm = cls.tmp / "esmm"
        cls.esmm_result = cls.train(ESMM, 1, 2, cls.esmm)

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("MTPS_KEEP_RUN_DIRS"):
            print("kept %s" % cls.tmp, file=sys.stderr)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def train(cls, config, servers, workers, run_dir, extra=()):
        argv = [sys.executable, harness.LAUNCHER, "local", "--config", str(config),
                "--servers", str(servers), "--workers", str(workers), "--run-dir", str(run_dir),
                "--binary", harness.BINARY, "--quiet", "--timeout", "300"] + list(extra)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=360)

    def setUp(self):
        for result, run_dir in ((self.census_result, self.census),
                                (self.esmm_result, self.esmm)):
            self.assertEqual(result.returncode, 0, describe(result, run_dir))

    def launch(self, command, *args):
        argv = [sys.executable, harness.LAUNCHER, command, "--binary", PREDICT] + [
            str(a) for a in args]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=300)

    def predict(self, run_dir, data, out, *extra):
        result = self.launch("predict", "--run-dir", run_dir, "--data", data, "--out", out,
                             *extra)
        self.assertEqual(result.returncode, 0, "predict failed:\n%s\n%s" %
                         (result.stdout, result.stderr))
        return result

    def export(self, run_dir, out):
        result = self.launch("export", "--run-dir", run_dir, "--out", out)
        self.assertEqual(result.returncode, 0, "export failed:\n%s\n%s" %
                         (result.stdout, result.stderr))
        return torch_export.load(str(out))

    # --- Census MMOE ------------------------------------------------------

    def test_census_predict_reproduces_the_held_out_evaluation(self):
        test_path = harness.config_data_path(CENSUS, "test_path")
        lines = harness.data_lines(test_path)
        out = self.tmp / "census.tsv"
        result = self.predict(self.census, test_path, out)
        summary = read_json(self.census / "summary.json")
        tasks = list(summary["eval"])
        header, rows = read_tsv(out)
        self.assertEqual(header, tasks + ["label:" + t for t in tasks])
        self.assertEqual(len(rows), len(lines))
        # The labels, from the raw lines (census-income.names: income is the
        # last column, marital status the 8th).
        income = [line.split(", ")[-1].strip() == "50000+." for line in lines]
        married = [line.split(", ")[7].strip() == "Never married" for line in lines]
        np.testing.assert_array_equal(rows[:, 2], income)
        np.testing.assert_array_equal(rows[:, 3], married)
        self.assertTrue(np.all((rows[:, :2] > 0) & (rows[:, :2] < 1)))
        for k, task in enumerate(tasks):
            # The workers scored the same examples with the same rows and
            # towers: the same AUC (exact AUC, eval.auc_bins 0; measured equal
            # to the last bit, 2026-12-02) and logloss.
            want = summary["eval"][task]
            self.assertEqual(want["examples"], len(lines))
            self.assertAlmostEqual(auc(rows[:, k], rows[:, 2 + k]), want["auc"], delta=1e-6,
                                   msg=task)
            self.assertAlmostEqual(logloss(rows[:, k], rows[:, 2 + k]), want["logloss"],
                                   delta=1e-6, msg=task)
            self.assertIn("%s  %.4f" % (task.ljust(13), want["auc"]), result.stdout)
        self.assertIn("using checkpoint", result.stderr)
        self.assertIn('"trained"', result.stderr)

    def test_census_export_loader_scores_as_predict_does(self):
        test_path = harness.config_data_path(CENSUS, "test_path")
        lines = harness.data_lines(test_path)[:500]
        # 20 more people with categories training never saw: their keys have
        # no rows, and both sides must give them the servers' initial values.
        for i, line in enumerate(lines[:20]):
            values = line.split(", ")
            values[1] = "Astronaut %d" % i  # class_of_worker
            lines.append(", ".join(values))
        data = self.tmp / "census-sample.txt"
        data.write_text("\n".join(lines) + "\n")
        out = self.tmp / "census-sample.tsv"
        dump = self.tmp / "census-dump"
        self.predict(self.census, data, out, "--dump-inputs", dump)
        model = self.export(self.census, self.tmp / "census-export")

        meta = model.meta
        summary = read_json(self.census / "summary.json")
        self.assertEqual(model.tasks, list(summary["eval"]))
        self.assertEqual(meta["source"]["reason"], "trained")
        blocks = meta["dense_blocks"]
        self.assertEqual(blocks[0]["offset"], 0)
        self.assertEqual(sum(int(np.prod(b["shape"])) for b in blocks),
                         meta["model"]["num_params"])
        self.assertGreater(model.keys.size, 100)

        keys, weights, offsets, dense = load_dump(dump)
        slots = [s["name"] for s in meta["input"]["slots"]]
        columns = meta["input"]["census_columns"]
        self.assertEqual(offsets.size, len(lines) * len(slots) + 1)
        # The documented hashing rule, implemented in the loader, gives the
        # keys the workers' feature extraction gave.
        for i, line in enumerate(lines):
            row = dict(zip(columns, (v.strip(" \t") for v in line.split(", "))))
            mine = [torch_export.feature_key(s, row[s]) for s in slots]
            got = [int(k) for k in keys[offsets[i * len(slots)]:offsets[(i + 1) * len(slots)]]]
            self.assertEqual(mine, got, "line %d" % (i + 1))
        unseen = ~np.isin(keys, model.keys)
        self.assertEqual(int(unseen.sum()), 20, "the astronauts' keys (and only those) are new")
        # The input rows, then the scores.
        rows = model.input_rows(keys, weights, offsets, dense)
        np.testing.assert_allclose(rows, np.load(dump / "input.npy"), rtol=0, atol=1e-6)
        header, predicted = read_tsv(out)
        scores = model.score(keys, weights, offsets, dense)
        self.assertEqual(scores.shape, (len(lines), len(model.tasks)))
        worst = float(np.max(np.abs(scores - predicted[:, :len(model.tasks)])))
        self.assertLessEqual(worst, SCORE_TOLERANCE)
        # The new categories changed the scores (the rows matter).
        self.assertGreater(float(np.max(np.abs(predicted[500:, 0] - predicted[:20, 0]))), 0)

        # The towers as ONNX (torch.onnx needs no onnx package; nothing here
        # can run the file, so only its writing is checked).
        onnx = self.tmp / "towers.onnx"
        torch_export.export_onnx(model, str(onnx))
        self.assertGreater(onnx.stat().st_size, 1000)

    def test_every_model_kind_loads_in_pytorch(self):
        # One short job per other model kind and option the loader rebuilds:
        # PLE with batch norm (running statistics from the checkpoint's
        # worker state) and PReLU, Shared-Bottom, single-task, ESMM's
        # two-group NAIVE variant. One worker, so its model state is the one
        # the job evaluated with: predict gives summary.json's AUC here too.
        census_lines = harness.data_lines(harness.config_data_path(CENSUS, "test_path"))
        census_sample = self.tmp / "kinds-census.txt"
        census_sample.write_text("\n".join(census_lines[:3000]) + "\n")
        cases = [
            ("ple_bn_prelu", CONFIGS / "census_ple.pbtxt",
             ["--set", "model.batch_norm=true", "--set", "model.activation=PRELU"], True),
            ("shared_bottom", CONFIGS / "census_shared_bottom.pbtxt", [], True),
            ("single_task", CONFIGS / "census_single_task.pbtxt", [], True),
            ("esmm_naive", ESMM, ["--set", "model.esmm.variant=NAIVE"], False),
        ]
        for name, config, extra, census in cases:
            with self.subTest(model=name):
                run_dir = self.tmp / ("kind-" + name)
                result = self.train(config, 1, 1, run_dir, ["--set", "train.epochs=1"] + extra)
                self.assertEqual(result.returncode, 0, describe(result, run_dir))
                data = census_sample if census else harness.config_data_path(ESMM, "test_path")
                test_path = harness.config_data_path(config, "test_path")
                out = self.tmp / ("kind-%s.tsv" % name)
                dump = self.tmp / ("kind-%s-dump" % name)
                self.predict(run_dir, data, out, "--dump-inputs", dump)
                model = self.export(run_dir, self.tmp / ("kind-%s-export" % name))
                if name == "ple_bn_prelu":
                    self.assertTrue(model.meta["batch_norms"], "no batch norm exported")
                    state = np.load(self.tmp / "kind-ple_bn_prelu-export" / "model_state.npy")
                    self.assertFalse(np.all(state[:model.meta["batch_norms"][0]["width"]] == 0),
                                     "running means never moved: the state is not the worker's")
                _, rows = read_tsv(out)
                scores = model.score(*load_dump(dump))
                tasks = len(model.tasks)
                worst = float(np.max(np.abs(scores - rows[:, :tasks])))
                self.assertLessEqual(worst, SCORE_TOLERANCE)
                # The whole test file against the job's own evaluation.
                full = self.tmp / ("kind-%s-full.tsv" % name)
                self.predict(run_dir, test_path, full)
                header, rows = read_tsv(full)
                summary = read_json(run_dir / "summary.json")["eval"]
                for k, task in enumerate(model.tasks):
                    if task == "cvr" or math.isnan(summary[task]["auc"]):
                        continue  # cvr: clicked rows only (test_esmm_... checks that)
                    label = header.index("label:" + (task if census else "click"))
                    labels = rows[:, label] if task != "ctcvr" else (
                        rows[:, label] * rows[:, header.index("label:conversion")])
                    self.assertAlmostEqual(auc(rows[:, k], labels), summary[task]["auc"],
                                           delta=1e-6, msg=task)

    # --- Errors -------------------------------------------------------------

    def test_errors_name_the_run_dir_the_checkpoint_and_the_data_line(self):
        test_path = harness.config_data_path(CENSUS, "test_path")
        out = self.tmp / "errors.tsv"
        missing = self.tmp / "no-such-run"
        result = self.launch("predict", "--run-dir", missing, "--data", test_path, "--out", out)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("%s: no such directory" % missing, result.stderr)

        # A run dir whose job took no checkpoint.
        bare = self.tmp / "bare-run"
        bare.mkdir()
        shutil.copy(self.census / "config.pbtxt", bare)
        result = self.launch("export", "--run-dir", bare, "--out", self.tmp / "bare-export")
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("no checkpoint in %s/checkpoints" % bare, result.stderr)

        # The newest checkpoint with a flipped byte in a file of its own (its
        # dense block): predict names it and falls back to the one before.
        copy = self.tmp / "corrupt-run"
        shutil.copytree(self.census, copy)
        newest = sorted((copy / "checkpoints").glob("ckpt-*"))[-1]
        newest_id = int(newest.name[5:])
        self.assertGreater(newest_id, 1)
        dense = newest / "server-0.dense"
        data = bytearray(dense.read_bytes())
        data[len(data) // 2] ^= 0x10
        dense.write_bytes(bytes(data))
        result = self.predict(copy, test_path, out)
        self.assertIn("checkpoint %d is not intact" % newest_id, result.stderr)
        self.assertIn(str(dense), result.stderr)
        self.assertIn("using checkpoint %d " % (newest_id - 1), result.stderr)
        _, rows = read_tsv(out)
        self.assertEqual(len(rows), len(harness.data_lines(test_path)))
        result = self.launch("predict", "--run-dir", copy, "--data", test_path, "--out", out,
                             "--checkpoint", newest_id)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("checkpoint %d is not intact" % newest_id, result.stderr)
        self.assertIn("server-0.dense", result.stderr)

        # A malformed data line: named with its file and line, no output.
        lines = harness.data_lines(test_path)[:10]
        lines[6] = "73, Not in universe, 0"
        bad = self.tmp / "bad-line.txt"
        bad.write_text("\n".join(lines) + "\n")
        bad_out = self.tmp / "bad-line.tsv"
        result = self.launch("predict", "--run-dir", self.census, "--data", bad, "--out",
                             bad_out)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("%s:7: expected 42 census-income values" % bad, result.stderr)
        self.assertFalse(bad_out.exists())
        self.assertEqual(list(self.tmp.glob("bad-line.tsv*")), [])

    # --- ESMM on the Ali-CCP sample ------------------------------------------

    def test_esmm_scores_every_impression_and_the_loader_agrees(self):
        test_path = harness.config_data_path(ESMM, "test_path")
        out = self.tmp / "esmm.tsv"
        dump = self.tmp / "esmm-dump"
        self.predict(self.esmm, test_path, out, "--dump-inputs", dump)
        header, rows = read_tsv(out)
        self.assertEqual(header, ["ctr", "cvr", "ctcvr", "label:click", "label:conversion"])
        with open(test_path) as f:
            records = list(csv.DictReader(f))
        self.assertEqual(len(rows), len(records))
        click = np.array([float(r["click"]) > 0.5 for r in records])
        buy = np.array([float(r["purchase"]) > 0.5 for r in records])
        np.testing.assert_array_equal(rows[:, 3], click)
        np.testing.assert_array_equal(rows[:, 4], buy)
        np.testing.assert_allclose(rows[:, 2], rows[:, 0] * rows[:, 1], rtol=1e-6)
        summary = read_json(self.esmm / "summary.json")["eval"]
        # ctr and ctcvr over every impression, cvr over the clicked ones.
        for task, scores, labels in (("ctr", rows[:, 0], click),
                                     ("ctcvr", rows[:, 2], click & buy),
                                     ("cvr", rows[click, 1], buy[click])):
            self.assertEqual(summary[task]["examples"], len(scores), task)
            self.assertAlmostEqual(logloss(scores, labels), summary[task]["logloss"],
                                   delta=1e-6, msg=task)
            if not math.isnan(summary[task]["auc"]):
                self.assertAlmostEqual(auc(scores, labels), summary[task]["auc"], delta=1e-6,
                                       msg=task)

        model = self.export(self.esmm, self.tmp / "esmm-export")
        keys, weights, offsets, dense = load_dump(dump)
        self.assertGreater(int((~np.isin(keys, model.keys)).sum()), 0,
                           "the test sample has ids training never saw")
        scores = model.score(keys, weights, offsets, dense)
        self.assertLessEqual(float(np.max(np.abs(scores - rows[:, :3]))), SCORE_TOLERANCE)

        # The same impressions without their label columns (data to serve).
        unlabeled = self.tmp / "esmm-unlabeled.csv"
        columns = [c for c in records[0] if c not in ("click", "purchase")]
        with open(unlabeled, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(records)
        out2 = self.tmp / "esmm-unlabeled.tsv"
        result = self.predict(self.esmm, unlabeled, out2)
        self.assertIn("no labels in the data", result.stdout)
        header2, rows2 = read_tsv(out2)
        self.assertEqual(header2, ["ctr", "cvr", "ctcvr"])
        np.testing.assert_array_equal(rows2, rows[:, :3])


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: %s LAUNCHER MTPS_NODE MTPS_PREDICT [unittest args]" % sys.argv[0])
    PREDICT = sys.argv.pop(3)
    harness.main()
