#!/usr/bin/python3
"""Accuracy report: trains every model of the family through the launcher,
several seeds each, and prints held-out AUC (mean and spread) as Markdown.

  tests/bench/accuracy_report.py census     # MMOE, Shared-Bottom, PLE, single-task on census
  tests/bench/accuracy_report.py synthetic  # ESMM vs ESMM-NS vs BASE on generated Ali-CCP data
  tests/bench/accuracy_report.py all

Options: --seeds 1,2,3  --servers 2 --workers 2  --out DIR (run dirs, data; default
runs/accuracy)  --impressions N --cvr R (synthetic data size and conversion rate)
--datagen "--cvr_ctr_correlation 0.9 ..." (more mtps-datagen flags).

The synthetic part generates Ali-CCP raw-format data with build/bin/mtps-datagen
(selection bias built in) and reports, as the ESMM paper's Table 2 does, CVR AUC
on clicked impressions and CTCVR AUC on all impressions, beside the AUCs of the
generator's true probabilities (the ceiling any model can reach).

Standard library only; the numbers in the README come from this script.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launcher" / "mtps-launch"


def run_job(config, run_dir, servers, workers, overrides):
    cmd = [str(LAUNCH), "local", "--config", str(config), "--servers", str(servers),
           "--workers", str(workers), "--run-dir", str(run_dir), "--quiet"]
    for o in overrides:
        cmd += ["--set", o]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("job failed (%d): %s\n%s%s" % (result.returncode, " ".join(cmd), result.stdout,
                                                result.stderr[-3000:]))
    return json.loads((Path(run_dir) / "summary.json").read_text())


def spread(values):
    mean = statistics.mean(values)
    half = (max(values) - min(values)) / 2
    return "%.4f ± %.4f" % (mean, half)


def census(args):
    experiments = [
        ("MMOE", "census_mmoe.pbtxt", []),
        ("Shared-Bottom", "census_shared_bottom.pbtxt", []),
        ("PLE", "census_ple.pbtxt", []),
        ("single-task (one model per task)", "census_single_task.pbtxt", None),
    ]
    rows = []
    for name, config, extra in experiments:
        per_task = {"income": [], "never_married": []}
        rates = []
        for seed in args.seeds:
            base = ["train.seed=%d" % seed]
            jobs = [extra] if extra is not None else [["model.single_task.label=income"],
                                                       ["model.single_task.label=never_married"]]
            for job in jobs:
                tag = "%s-%s-%d" % (config.split(".")[0], "-".join(j.split("=")[-1] for j in job), seed)
                s = run_job(REPO / "configs" / config, args.out / tag, args.servers, args.workers,
                            base + job)
                for task, metrics in s["eval"].items():
                    per_task[task].append(metrics["auc"])
                rates.append(s["train"]["examples_per_sec"])
            print("  %s seed %d done" % (name, seed), file=sys.stderr)
        rows.append((name, config, per_task, rates))
    print("| model (config) | income AUC | never-married AUC | training examples/s |")
    print("| --- | --- | --- | --- |")
    for name, config, per_task, rates in rows:
        print("| %s (`configs/%s`) | %s | %s | %.0f |" % (name, config, spread(per_task["income"]),
                                                        spread(per_task["never_married"]),
                                                        statistics.mean(rates)))
    print()
    print("Seeds %s; `tests/bench/accuracy_report.py census --servers %d --workers %d`." %
          (",".join(map(str, args.seeds)), args.servers, args.workers))


def synthetic(args):
    data = args.out / "synthetic-data"
    truth_file = data / "ground_truth.json"
    if not truth_file.exists():
        cmd = [str(REPO / "build" / "bin" / "mtps-datagen"), "--out", str(data), "--impressions",
               str(args.impressions), "--seed", "1", "--cvr", str(args.cvr)] + args.datagen.split()
        print("  generating: " + " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
    truth = json.loads(truth_file.read_text())
    paths = ["data.train_path=%s/sample_skeleton_train.csv" % data,
             "data.train_common_path=%s/common_features_train.csv" % data,
             "data.test_path=%s/sample_skeleton_test.csv" % data,
             "data.test_common_path=%s/common_features_test.csv" % data]
    variants = [("BASE (naive CVR on clicked impressions; separate CTR model)", "NAIVE"),
                ("ESMM-NS (entire space, no shared embeddings)", "NO_SHARING"),
                ("ESMM", "ESMM")]
    rows = []
    for name, variant in variants:
        aucs = {"ctr": [], "cvr": [], "ctcvr": []}
        for seed in args.seeds:
            s = run_job(REPO / "configs" / "synthetic_esmm.pbtxt",
                        args.out / ("synthetic-%s-%d" % (variant.lower(), seed)), args.servers,
                        args.workers, paths + ["train.seed=%d" % seed, "model.esmm.variant=" + variant])
            for task in aucs:
                aucs[task].append(s["eval"][task]["auc"])
            print("  %s seed %d done" % (variant, seed), file=sys.stderr)
        rows.append((name, aucs))
    ceiling = truth["test_auc"]
    print("| model | CVR AUC (clicked impressions) | CTCVR AUC (all impressions) | CTR AUC |")
    print("| --- | --- | --- | --- |")
    for name, aucs in rows:
        print("| %s | %s | %s | %s |" % (name, spread(aucs["cvr"]), spread(aucs["ctcvr"]),
                                         spread(aucs["ctr"])))
    if ceiling:
        print("| ground truth (the generator's true probabilities) | %.4f | %.4f | %.4f |" %
              (ceiling.get("cvr", float("nan")), ceiling.get("ctcvr", float("nan")),
               ceiling.get("ctr", float("nan"))))
    print()
    extra = (" " + args.datagen) if args.datagen else ""
    print("Data: `build/bin/mtps-datagen --out %s --impressions %d --seed 1 --cvr %g%s`; seeds %s; "
          "`tests/bench/accuracy_report.py synthetic --impressions %d --cvr %g%s --servers %d "
          "--workers %d`." % (data, args.impressions, args.cvr, extra, ",".join(map(str, args.seeds)),
                              args.impressions, args.cvr,
                              ' --datagen "%s"' % args.datagen if args.datagen else "",
                              args.servers, args.workers))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["census", "synthetic", "all"])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "runs" / "accuracy"))
    parser.add_argument("--impressions", type=int, default=2000000)
    parser.add_argument("--cvr", type=float, default=0.05)
    parser.add_argument("--datagen", default="", help="more mtps-datagen flags")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.out = Path(args.out).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.which in ("census", "all"):
        census(args)
    if args.which in ("synthetic", "all"):
        synthetic(args)


if __name__ == "__main__":
    main()
