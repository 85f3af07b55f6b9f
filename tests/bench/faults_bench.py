#!/usr/bin/python3
"""faults_bench: the table of README.md "### Exactly-once over a faulty network".

Runs census MMOE (2 servers, 2 workers, SGD sparse optimizer with the
exactly-once counter) through the launcher once without faults and once
per network-fault case (cluster.faults on every process), and prints a
Markdown table: the case, the training time, held-out AUC against the
fault-free run, the counter row against the batches the workers were told
were acknowledged, and summary.json "updates" (push requests acknowledged
and applied, copies the servers dropped, resends). A benchmark, not a test
(tests/integration/faults_test.py asserts the same properties).

  /usr/bin/python3 tests/bench/faults_bench.py [--binary build/bin/mtps-node] [--seed 9]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "launcher" / "mtps-launch"
CONFIG = REPO / "configs" / "census_mmoe.pbtxt"
JOB = ["--set", "server.sparse_optimizer.sgd.learning_rate=0.05",
       "--set", "train.counter_key=987654321"]


def faults(seed, **fields):
    out = ["--set", "cluster.faults.seed=%d" % seed]
    for key, value in fields.items():
        out += ["--set", "cluster.faults.%s=%s" % (key, value)]
    return out


def cases(seed):
    return [
        ("no faults", []),
        ("20 ms delays", faults(seed, delay_ms_max=20)),
        ("5% drop", faults(seed, drop=0.05)),
        ("5% drop + 5% duplicate + 20 ms delays", faults(seed, drop=0.05, duplicate=0.05,
                                                         delay_ms_max=20)),
        ("pushes: 30% duplicate + 30% reorder", faults(seed, duplicate=0.3, reorder=0.3,
                                                       ops="PUSH_SPARSE,PUSH_DENSE")),
    ]


def run(args, run_dir, extra):
    argv = [sys.executable, str(LAUNCHER), "local", "--config", str(CONFIG), "--servers", "2",
            "--workers", "2", "--run-dir", str(run_dir), "--binary", args.binary, "--quiet",
            "--timeout", "1200", "--max-restarts", "0"] + JOB + extra
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        sys.exit("%s failed:\n%s" % (" ".join(argv), result.stdout[-3000:]))
    return json.loads((run_dir / "summary.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(REPO / "build" / "bin" / "mtps-node"))
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="faults-bench-"))
    try:
        rows = []
        baseline = None
        for i, (name, extra) in enumerate(cases(args.seed)):
            s = run(args, tmp / ("case-%d" % i), extra)
            baseline = baseline or s
            u = s["updates"]
            auc = " / ".join("%.4f (%.4f)" % (s["eval"][t]["auc"], baseline["eval"][t]["auc"])
                             for t in s["eval"])
            counter = "%d of %d%s" % (s["counter"], s["counter_acknowledged"],
                                      ", exact" if s["counter"] == s["counter_acknowledged"] else "")
            rows.append("| %s | %.1f s | %s | %s | %d / %d | %d | %d |" % (
                name, s["train"]["seconds"], auc, counter, u["applied"], u["acknowledged"],
                u["duplicates_dropped"], u["resent"]))
        print("| case | training | AUC income / never_married (no faults) | counter of acknowledged "
              "batches | push requests applied / acknowledged | copies dropped | resent |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        print("\n".join(rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
