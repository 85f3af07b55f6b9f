#!/usr/bin/python3
"""recovery_bench: the fault table of README.md "### Recovery, measured".

Runs census MMOE (2 servers, 2 workers, SGD sparse optimizer with the
exactly-once counter) once without faults and once per fault case, through
the launcher, and prints a Markdown table: the case, the time from the kill
to training again (summary.json's recovery event: detected_after_s, the
launcher seeing the exit, within one 50 ms poll of it, plus
training_again_after_s, to the resumed job's "training" event), the
checkpoint resumed from,
held-out AUC against the fault-free run, and whether the counter and the
example count are exact. A benchmark, not a test (tests/integration/
recovery_test.py asserts the same properties).

  /usr/bin/python3 tests/bench/recovery_bench.py [--binary build/bin/mtps-node] [--seed 1]
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "launcher" / "mtps-launch"
CONFIG = REPO / "configs" / "census_mmoe.pbtxt"
JOB = ["--set", "server.sparse_optimizer.sgd.learning_rate=0.05",
       "--set", "train.counter_key=987654321"]
CASES = ["server-0", "server-1", "worker-1", "scheduler-0"]


def committed(run_dir):
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(d for d in root.glob("ckpt-*") if (d / "MANIFEST").exists())


def run(args, run_dir, kill=None, rng=None):
    argv = [sys.executable, str(LAUNCHER), "local", "--config", str(CONFIG), "--servers", "2",
            "--workers", "2", "--run-dir", str(run_dir), "--binary", args.binary, "--quiet",
            "--timeout", "600"] + JOB
    launcher = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill is not None:
        k = rng.randint(1, 3)
        while len(committed(run_dir)) < k and launcher.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.2))
        role, rank = kill.rsplit("-", 1)
        nodes = json.loads((run_dir / "launch.json").read_text())["nodes"]
        pid = [n["pid"] for n in nodes if n["role"] == role and n["rank"] == int(rank)][-1]
        os.kill(pid, signal.SIGKILL)
    launcher.wait()
    if launcher.returncode != 0:
        sys.exit("%s: the launcher exited %d (run dir %s)" % (kill, launcher.returncode, run_dir))
    return json.loads((run_dir / "summary.json").read_text())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(REPO / "build" / "bin" / "mtps-node"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="mtps-recovery-bench-"))
    try:
        base = run(args, tmp / "fault-free")
        ckpt = base["checkpoints"]
        print("fault-free: counter %d, examples %d, %d checkpoints, max pause %.1f ms" % (
            base["counter"], base["train"]["examples"], ckpt["committed"],
            1e3 * ckpt["max_pause_s"]), file=sys.stderr)
        print("| killed | kill to training again | resumed from | income AUC (fault-free) "
              "| never_married AUC (fault-free) | pushes applied | examples |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for case in CASES:
            summary = run(args, tmp / case, kill=case, rng=rng)
            event = summary["recovery"]["events"][0]
            recovery = event["detected_after_s"] + event["training_again_after_s"]
            auc = lambda s, t: "%.4f" % s["eval"][t]["auc"]
            print("| %s | %.2f s | checkpoint %s (step %s) | %s (%s) | %s (%s) | %s | %s |" % (
                case, recovery, event["checkpoint_id"], event["checkpoint_step"],
                auc(summary, "income"), auc(base, "income"), auc(summary, "never_married"),
                auc(base, "never_married"),
                "%d, exact" % summary["counter"] if summary["counter"] == base["counter"]
                else "%d, expected %d" % (summary["counter"], base["counter"]),
                "exact" if summary["train"]["examples"] == base["train"]["examples"] else
                "%d, expected %d" % (summary["train"]["examples"], base["train"]["examples"])))
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
