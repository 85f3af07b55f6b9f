#!/usr/bin/python3
"""Training throughput of mtps beside the PyTorch reference trainer, same run.

  /usr/bin/python3 tests/bench/train_bench.py --model esmm   # ESMM, generated data
  /usr/bin/python3 tests/bench/train_bench.py --model mmoe   # MMOE, generated data
  /usr/bin/python3 tests/bench/train_bench.py --model census # MMOE, census income
  /usr/bin/python3 tests/bench/train_bench.py --model all --pairs 3

The models are at the sizes of the reference code this project reproduces
(configs/bench_esmm.pbtxt, bench_mmoe.pbtxt, census_mmoe_ref.pbtxt): ESMM
towers [128, 128], MMOE 3 experts of [256, 128] with towers [64],
embeddings of width 16. Both sides train the same architecture with the
same optimizers, learning rates, batch size and epochs; PyTorch runs
tests/reference/torch_train.py (plain PyTorch, one process) on OpenBLAS
(Debian's libopenblas0-pthread, found and preloaded here; OPENBLAS_CORETYPE=Zen
on AMD), at --torch-threads (default 1, its fastest on small machines).

Generated data (--rows, default 1,000,000; 90% train, 10% test): 20
categorical columns c0..c19 (cardinalities 3 to 1,000,000, skewed), 4 numeric
d0..d3 ~ N(0, 1), and labels click and conversion from a hidden model (an
effect per categorical value, a low-rank interaction of c10 and c12, a
non-linear term of the numeric columns; conversion effects correlated with
click effects, conversions only on clicks). It is written once to
runs/train-bench/data-ROWS-sSEED and reused.

Runs alternate (mtps first in even pairs, PyTorch first in odd) and each
prints a line; the end prints, per model, the medians of examples/s, every
task's AUC, the peak resident memory (mtps: the sum over its processes,
sampled every 100 ms, and the largest single process; PyTorch: its
getrusage peak), the ratios, and the towers' FLOP bound: the training FLOPs
per example of the dense layers (6 * in * out per linear map: forward,
weight gradient and input gradient) against the single-thread sgemm rate
measured here at the first layer's shape (torch.mm on OpenBLAS), for 1 and
for all cores. --json FILE also writes every run's numbers.

Options: --pairs N (default 1), --servers/--workers (default 1/1),
--epochs N (default: the config's), --set FIELD=VALUE (mtps only, repeatable),
--torch-threads N, --rows N, --seed N, --out DIR (default runs/train-bench).
--scaling ROWS runs mtps alone, alternating between --rows and ROWS
generated rows, and prints how examples/s holds as the data grows.
Every mtps run also prints the CPU seconds its processes spent per 1M
training examples, by role (what a layout on more cores divides up).
Standard library plus numpy (data generation); the numbers in the README
come from this script.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launcher" / "mtps-launch"
TORCH_TRAIN = REPO / "tests" / "reference" / "torch_train.py"
OPENBLAS_DIR = Path("/usr/lib/x86_64-linux-gnu/openblas-pthread")

CATEGORICAL = ["c%d" % i for i in range(20)]
DENSE = ["d%d" % i for i in range(4)]
CARDINALITIES = [3, 8, 20, 50, 100, 300, 1000, 3000, 10000, 30000, 100000, 300000, 1000000, 50,
                 200, 5000, 20000, 200000, 500000, 10]
CTR_TARGET = 0.10
CVR_TARGET = 0.10  # mean conversion probability given a click, over all rows

# Per model: the mtps config, the torch_train.py arguments of the same
# model, and the dense layers (in, out) for the FLOP count.
EMBEDDING_DIM = 16


def esmm_layers(input_dim):
    towers = [128, 128]
    dims = [input_dim] + towers + [1]
    return 2 * list(zip(dims[:-1], dims[1:]))


def mmoe_layers(input_dim, tasks=2):
    experts, expert_hidden, tower_hidden = 3, [256, 128], [64]
    dims = [input_dim] + expert_hidden
    layers = experts * list(zip(dims[:-1], dims[1:]))
    layers += tasks * [(input_dim, experts)]  # gates
    tower = [expert_hidden[-1]] + tower_hidden + [1]
    layers += tasks * list(zip(tower[:-1], tower[1:]))
    return layers


def models(data_dir):
    csv_data = ["--data", "csv", "--train", str(data_dir / "train.csv"), "--test",
                str(data_dir / "test.csv"), "--labels", "click,conversion",
                "--categorical", ",".join(CATEGORICAL), "--dense", ",".join(DENSE)]
    adam = ["--sparse_optimizer", "adam", "--sparse_lr", "0.001", "--dense_lr", "0.001",
            "--embedding_dim", str(EMBEDDING_DIM)]
    generated_input = len(CATEGORICAL) * EMBEDDING_DIM + len(DENSE)
    census_input = 31 * EMBEDDING_DIM + 7
    data_sets = ["--set", "data.train_path=%s" % (data_dir / "train.csv"), "--set",
                 "data.test_path=%s" % (data_dir / "test.csv")]
    return {
        "esmm": {
            "config": REPO / "configs" / "bench_esmm.pbtxt",
            "mtps_sets": data_sets,
            "torch": csv_data + adam + ["--model", "esmm", "--tower_hidden", "128,128",
                                        "--epochs", "1"],
            "layers": esmm_layers(generated_input),
            "generated": True,
        },
        "mmoe": {
            "config": REPO / "configs" / "bench_mmoe.pbtxt",
            "mtps_sets": data_sets,
            "torch": csv_data + adam + ["--model", "mmoe", "--num_experts", "3",
                                        "--expert_hidden", "256,128", "--tower_hidden", "64",
                                        "--epochs", "1"],
            "layers": mmoe_layers(generated_input),
            "generated": True,
        },
        "census": {
            "config": REPO / "configs" / "census_mmoe_ref.pbtxt",
            "mtps_sets": [],
            "torch": ["--data", "census", "--model", "mmoe", "--num_experts", "3",
                      "--expert_hidden", "256,128", "--tower_hidden", "64", "--embedding_dim",
                      str(EMBEDDING_DIM), "--epochs", "10"],
            "layers": mmoe_layers(census_input),
            "generated": False,
        },
    }


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def calibrate(logits, target):
    """The shift b with mean(sigmoid(logits + b)) = target (bisection)."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(logits + mid)))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def generate(data_dir, rows, seed):
    """Writes train.csv and test.csv (see the file comment) unless present."""
    if (data_dir / "test.csv").exists() and (data_dir / "train.csv").exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = np.empty((rows, len(CATEGORICAL)), dtype=np.int64)
    click_logit = np.zeros(rows)
    conv_logit = np.zeros(rows)
    for c, card in enumerate(CARDINALITIES):
        # Skewed popularity: low ids are common (u^3 concentrates near 0).
        ids[:, c] = np.minimum((card * rng.random(rows) ** 3).astype(np.int64), card - 1)
        scale = 0.5 if card > 3 else 0.3
        click_effect = rng.normal(0, scale, card)
        conv_effect = 0.6 * click_effect + 0.8 * rng.normal(0, scale, card)
        click_logit += click_effect[ids[:, c]]
        conv_logit += conv_effect[ids[:, c]]
    # A rank-4 interaction of two large columns (a "user" and an "item").
    user = rng.normal(0, 0.6, (CARDINALITIES[12], 4))
    item = rng.normal(0, 0.6, (CARDINALITIES[10], 4))
    interaction = np.sum(user[ids[:, 12]] * item[ids[:, 10]], axis=1)
    dense = rng.normal(0, 1, (rows, len(DENSE)))
    nonlinear = 0.4 * dense[:, 0] - 0.3 * dense[:, 1] * dense[:, 2] + 0.3 * np.abs(dense[:, 3])
    click_logit += interaction + nonlinear
    conv_logit += 0.5 * interaction - nonlinear
    click_logit += calibrate(click_logit, CTR_TARGET)
    conv_logit += calibrate(conv_logit, CVR_TARGET)
    click = rng.random(rows) < 1 / (1 + np.exp(-click_logit))
    conversion = click & (rng.random(rows) < 1 / (1 + np.exp(-conv_logit)))
    table = np.column_stack([click.astype(np.int64), conversion.astype(np.int64), ids])
    header = ",".join(["click", "conversion"] + CATEGORICAL + DENSE)
    split = int(rows * 0.9)
    for name, lo, hi in (("train.csv", 0, split), ("test.csv", split, rows)):
        tmp = data_dir / (name + ".tmp")
        with open(tmp, "w") as f:
            f.write(header + "\n")
            for start in range(lo, hi, 100000):
                end = min(hi, start + 100000)
                ints = table[start:end].astype(str)
                floats = np.char.mod("%.4f", dense[start:end])
                f.write("\n".join(",".join(r) for r in np.hstack([ints, floats])) + "\n")
        tmp.rename(data_dir / name)
    (data_dir / "README").write_text(
        "Generated by tests/bench/train_bench.py --rows %d --seed %d: %d train and %d test rows, "
        "CTR %.4f, conversions per click %.4f.\n" %
        (rows, seed, split, rows - split, click.mean(), conversion.sum() / max(1, click.sum())))


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def children_usage(parent):
    """{pid: (role, VmHWM bytes, CPU seconds)} of the processes whose parent is `parent`.

    The role is mtps-node's --role (scheduler, server, worker); None for
    any other process (the launcher's helpers).
    """
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) != parent:
                continue
            cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
            rss = 0
            with open("/proc/%s/status" % entry) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        rss = int(line.split()[1]) * 1024
            with open("/proc/%s/cmdline" % entry) as f:
                argv = f.read().split("\0")
            role = None
            for a in argv:
                if a.startswith("--role="):
                    role = a[len("--role="):]
            out[int(entry)] = (role, rss, cpu)
        except (OSError, ValueError, IndexError):
            continue
    return out


def run_mtps(spec, args, run_dir):
    cmd = [str(LAUNCH), "local", "--config", str(spec["config"]), "--servers", str(args.servers),
           "--workers", str(args.workers), "--run-dir", str(run_dir), "--quiet"]
    cmd += spec["mtps_sets"]
    if args.epochs:
        cmd += ["--set", "train.epochs=%d" % args.epochs]
    for s in args.set:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {}
    cpu = {}  # pid -> (role, CPU seconds at its last sample)
    peak_sum = 0
    done = threading.Event()

    def sample():
        nonlocal peak_sum
        while not done.wait(0.1):
            now = children_usage(proc.pid)
            for pid, (role, rss, seconds) in now.items():
                peaks[pid] = max(peaks.get(pid, 0), rss)
                # A process that has exited but is not yet reaped has no
                # command line any more: keep the role seen before.
                if pid in cpu:
                    cpu[pid] = (cpu[pid][0], seconds)
                elif role:
                    cpu[pid] = (role, seconds)
            peak_sum = max(peak_sum, sum(rss for _, rss, _ in now.values()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit("mtps failed (%d): %s\n%s%s" % (proc.returncode, " ".join(cmd), out, err[-3000:]))
    summary = json.loads((run_dir / "summary.json").read_text())
    aucs = {task: m["auc"] for task, m in summary["eval"].items()}
    # CPU seconds per 1M training examples by role, summed over the role's
    # processes (sampled every 100 ms, so the last 100 ms and the held-out
    # evaluation are included, roughly).
    per_role = {}
    for role, seconds in cpu.values():
        per_role[role] = per_role.get(role, 0.0) + seconds
    examples = max(1, summary["train"]["examples"])
    return {"examples_per_sec": summary["train"]["examples_per_sec"], "auc": aucs,
            "rss_sum": peak_sum, "rss_max": max(peaks.values(), default=0),
            "cpu_per_million": {r: s * 1e6 / examples for r, s in sorted(per_role.items())}}


def torch_env():
    env = dict(os.environ)
    if OPENBLAS_DIR.is_dir():
        env["LD_LIBRARY_PATH"] = str(OPENBLAS_DIR) + (
            ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    with open("/proc/cpuinfo") as f:
        if "AuthenticAMD" in f.read():
            env.setdefault("OPENBLAS_CORETYPE", "Zen")
    return env


def run_torch(spec, args):
    cmd = ["/usr/bin/python3", str(TORCH_TRAIN), "--seed", str(args.seed), "--threads",
           str(args.torch_threads)] + spec["torch"]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=torch_env())
    if result.returncode != 0:
        sys.exit("PyTorch failed (%d): %s\n%s" % (result.returncode, " ".join(cmd),
                                                 result.stderr[-3000:]))
    r = json.loads(result.stdout.strip().splitlines()[-1])
    if not r["settings"]["blas"] or "openblas" not in r["settings"]["blas"]:
        print("warning: PyTorch ran on %s, not OpenBLAS (install libopenblas0-pthread)" %
              r["settings"]["blas"], file=sys.stderr)
    return {"examples_per_sec": r["train"]["examples_per_sec"],
            "auc": {task: m["auc"] for task, m in r["eval"].items()},
            "rss_sum": r["peak_rss_bytes"], "rss_max": r["peak_rss_bytes"], "blas": r["settings"]["blas"]}


SGEMM_PROBE = """
import time, torch
torch.set_num_threads(1)
m, k, n = %d, %d, %d
a, b = torch.rand(m, k), torch.rand(k, n)
for _ in range(20): torch.mm(a, b)
best = 0
for _ in range(5):
    t = time.perf_counter(); reps = 200
    for _ in range(reps): torch.mm(a, b)
    best = max(best, 2 * m * k * n * reps / (time.perf_counter() - t))
print(best / 1e9)
"""


def sgemm_gflops(batch, k, n):
    """Single-thread torch.mm GFLOP/s on OpenBLAS at batch x k x n."""
    result = subprocess.run(["/usr/bin/python3", "-c", SGEMM_PROBE % (batch, k, n)],
                            capture_output=True, text=True, env=dict(torch_env(),
                                                                     OPENBLAS_NUM_THREADS="1",
                                                                     OMP_NUM_THREADS="1"))
    if result.returncode != 0:
        return None
    return float(result.stdout.strip())


def mb(n):
    return "%.0f MB" % (n / 1e6)


def print_run(label, r):
    line = "%s %9.0f examples/s  AUC %s  peak RSS %s (largest process %s)" % (
        label, r["examples_per_sec"], " ".join("%s %.4f" % kv for kv in sorted(r["auc"].items())),
        mb(r["rss_sum"]), mb(r["rss_max"]))
    if "cpu_per_million" in r:
        line += "  CPU s/1M %s" % " ".join(
            "%s %.1f" % kv for kv in r["cpu_per_million"].items())
    print(line, flush=True)


def cpu_medians(runs):
    roles = sorted({role for r in runs for role in r["cpu_per_million"]})
    return ", ".join("%s %.1f" % (role, statistics.median(
        r["cpu_per_million"].get(role, 0.0) for r in runs)) for role in roles)


def scaling(args):
    """mtps on --rows and on --scaling generated rows, alternating: examples/s should hold."""
    sizes = [args.rows, args.scaling]
    chosen = ["esmm", "mmoe"] if args.model == "all" else [args.model]
    if "census" in chosen:
        sys.exit("--scaling needs generated data: --model esmm or mmoe")
    for rows in sizes:
        data_dir = args.out / ("data-%d-s%d" % (rows, args.seed))
        t = time.time()
        generate(data_dir, rows, args.seed)
        print("data: %s (%s)" % (data_dir, (data_dir / "README").read_text().strip()))
        if time.time() - t > 1:
            print("  generated in %.0f s" % (time.time() - t))
    for model in chosen:
        runs = {rows: [] for rows in sizes}
        for pair in range(args.pairs):
            for rows in (sizes if pair % 2 == 0 else sizes[::-1]):
                spec = models(args.out / ("data-%d-s%d" % (rows, args.seed)))[model]
                r = run_mtps(spec, args, args.out / "runs" / ("%s-%d-rows-%d" % (model, pair, rows)))
                runs[rows].append(r)
                print_run("%s pair %d %9d rows" % (model, pair, rows), r)
        med = {rows: statistics.median(r["examples_per_sec"] for r in runs[rows]) for rows in sizes}
        print("\n%s: %d rows %.0f examples/s, %d rows %.0f: ratio %.3f" %
              (model, sizes[0], med[sizes[0]], sizes[1], med[sizes[1]],
               med[sizes[1]] / med[sizes[0]]))
        for rows in sizes:
            print("  %d rows: peak RSS %s; CPU s per 1M training examples: %s" %
                  (rows, mb(statistics.median(r["rss_sum"] for r in runs[rows])),
                   cpu_medians(runs[rows])))
        print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("esmm", "mmoe", "census", "all"), default="all")
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=1000000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "train-bench")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--scaling", type=int, metavar="ROWS",
                        help="mtps only: alternate runs on --rows and on ROWS generated rows")
    args = parser.parse_args()
    if args.scaling:
        scaling(args)
        return

    data_dir = args.out / ("data-%d-s%d" % (args.rows, args.seed))
    specs = models(data_dir)
    chosen = list(specs) if args.model == "all" else [args.model]
    if any(specs[m]["generated"] for m in chosen):
        t = time.time()
        generate(data_dir, args.rows, args.seed)
        print("data: %s (%s)" % (data_dir, (data_dir / "README").read_text().strip()))
        if time.time() - t > 1:
            print("  generated in %.0f s" % (time.time() - t))
    cores = os.cpu_count()
    print("machine: %s, %d cores; mtps %d server(s) + %d worker(s), PyTorch %d thread(s)" %
          (platform.processor() or platform.machine(), cores, args.servers, args.workers,
           args.torch_threads))
    results = {}
    for model in chosen:
        spec = specs[model]
        runs = {"mtps": [], "torch": []}
        for pair in range(args.pairs):
            order = ["mtps", "torch"] if pair % 2 == 0 else ["torch", "mtps"]
            for side in order:
                if side == "mtps":
                    r = run_mtps(spec, args, args.out / "runs" / ("%s-%d" % (model, pair)))
                else:
                    r = run_torch(spec, args)
                runs[side].append(r)
                print_run("%s pair %d %-5s" % (model, pair, side), r)
        layers = spec["layers"]
        flops = sum(6 * i * o for i, o in layers)
        first_in, first_out = layers[0]
        gflops = sgemm_gflops(256, first_in, first_out)
        med = lambda side, key: statistics.median(r[key] for r in runs[side])  # noqa: E731
        m_rate, t_rate = med("mtps", "examples_per_sec"), med("torch", "examples_per_sec")
        print("\n%s: mtps %.0f examples/s, PyTorch %.0f: ratio %.2f" %
              (model, m_rate, t_rate, m_rate / t_rate))
        for task in sorted(runs["mtps"][0]["auc"]):
            if task in runs["torch"][0]["auc"]:
                a = statistics.median(r["auc"][task] for r in runs["mtps"])
                b = statistics.median(r["auc"][task] for r in runs["torch"])
                print("  AUC %-14s mtps %.4f  PyTorch %.4f  (%+.4f)" % (task, a, b, a - b))
        print("  peak RSS: mtps %s (largest process %s), PyTorch %s" %
              (mb(med("mtps", "rss_sum")), mb(med("mtps", "rss_max")), mb(med("torch", "rss_sum"))))
        print("  mtps CPU s per 1M training examples: %s" % cpu_medians(runs["mtps"]))
        bound = None
        if gflops:
            bound = gflops * 1e9 / flops
            print("  towers: %.2f MFLOP per training example; sgemm %.0f GFLOP/s per core at "
                  "256x%dx%d: FLOP bound %.0f examples/s on 1 core, %.0f on %d" %
                  (flops / 1e6, gflops, first_in, first_out, bound, bound * cores, cores))
            print("  mtps at %.0f%% of the %d-core bound, PyTorch at %.0f%% of the 1-core bound" %
                  (100 * m_rate / (bound * cores), cores, 100 * t_rate / bound))
        print()
        results[model] = {"runs": runs, "mflop_per_example": flops / 1e6, "sgemm_gflops": gflops,
                          "flop_bound_per_core": bound, "ratio": m_rate / t_rate}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
