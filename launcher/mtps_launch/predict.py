"""`mtps-launch predict` and `mtps-launch export`: a finished job's model
scores a data file, or is written out for serving.

Both run the C++ tool build/bin/mtps-predict (launcher/predict_main.cc),
which reads the run dir's config.pbtxt and its newest intact checkpoint;
this module checks the arguments first so that a mistake gets a plain
message (and exit code 2) before anything is loaded, then passes the
tool's output and exit code through. README.md "Predict and export"
documents the output formats.
"""

import argparse
import os
import subprocess
from pathlib import Path

from .util import EXIT_FAILED, EXIT_USAGE, log

COMMANDS = ("predict", "export")


def default_binary():
    return Path(__file__).resolve().parent.parent.parent / "build" / "bin" / "mtps-predict"


def checkpoint_id(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a checkpoint id (an integer)" % text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0, got %d" % value)
    return value


def worker_rank(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a worker rank" % text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0, got %d" % value)
    return value


def add_parsers(subparsers):
    """Adds the predict and export subcommands to mtps-launch's parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--run-dir", required=True,
                        help="the finished job's run dir (mtps-launch --run-dir)")
    common.add_argument("--checkpoint", type=checkpoint_id, metavar="ID",
                        help="use checkpoint ID (default: the newest intact one)")
    common.add_argument("--binary", help="mtps-predict binary (default: %s)" % default_binary())
    common.add_argument("--model-state-worker", type=worker_rank, default=0, metavar="RANK",
                        help="whose batch-norm running statistics to use (each worker keeps "
                        "its own; default 0)")
    predict = subparsers.add_parser(
        "predict", parents=[common], help="score a data file with a finished job's model",
        description="Score every example of a data file (in the job's data format, plain or "
        "gzip) with the model of the run's newest intact checkpoint; write one row of "
        "per-task probabilities per example (TSV) and print each task's AUC and logloss when "
        "the file has labels.")
    predict.add_argument("--data", required=True, metavar="FILE", help="the data file to score")
    predict.add_argument("--out", required=True, metavar="FILE",
                         help="the TSV to write: a header naming the tasks (and label:NAME "
                         "columns when the data has labels), then one row per example")
    predict.add_argument("--common-data", metavar="FILE",
                         help="ALICCP_RAW data: the common_features file joined with --data")
    predict.add_argument("--dump-inputs", metavar="DIR",
                         help="also write each example's keys, dense features and input row "
                         "as .npy arrays into DIR (a testing aid)")
    export = subparsers.add_parser(
        "export", parents=[common], help="write a finished job's model for serving",
        description="Write the embeddings, the dense parameters and model.json (the model "
        "config, tasks, input layout and key hashing rule) of the run's newest intact "
        "checkpoint as NumPy arrays into --out; mtps_launch.torch_export rebuilds the model "
        "in PyTorch from them.")
    export.add_argument("--out", required=True, metavar="DIR",
                        help="directory to write (created if missing)")


def _usage(message):
    log("error: " + message)
    return EXIT_USAGE


def run(args):
    """Runs mtps-predict for a parsed predict or export command; returns the
    exit code (the tool's own, or 2 for arguments it would refuse)."""
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        return _usage("--run-dir %s: no such directory" % run_dir)
    if not (run_dir / "config.pbtxt").is_file():
        return _usage("--run-dir %s has no config.pbtxt: not the run dir of a job that "
                      "started (the scheduler writes it)" % run_dir)
    binary = Path(args.binary) if args.binary else default_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        if args.binary:
            return _usage("--binary %s: not an executable file" % binary)
        repo = default_binary().parent.parent.parent
        return _usage("%s not found; build first: cmake -S %s -B %s/build "
                      "-DCMAKE_BUILD_TYPE=Release && cmake --build %s/build" %
                      (binary, repo, repo, repo))
    argv = [str(binary), "--run_dir", str(run_dir)]
    if args.checkpoint is not None:
        argv += ["--checkpoint", str(args.checkpoint)]
    argv += ["--model_state_worker", str(args.model_state_worker)]
    if args.backend == "predict":
        data = Path(args.data)
        if not data.is_file():
            return _usage("--data %s: no such file" % data)
        if args.common_data and not Path(args.common_data).is_file():
            return _usage("--common-data %s: no such file" % args.common_data)
        out = Path(args.out)
        if out.is_dir():
            return _usage("--out %s is a directory; give the TSV file to write" % out)
        if not out.parent.is_dir():
            return _usage("--out %s: no directory %s" % (out, out.parent))
        argv += ["--data", str(data), "--out", str(out)]
        if args.common_data:
            argv += ["--common_data", args.common_data]
        if args.dump_inputs:
            argv += ["--dump_inputs", args.dump_inputs]
    else:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            return _usage("--out %s exists and is not a directory" % out)
        argv += ["--export_dir", str(out)]
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL).returncode
    except OSError as e:
        log("error: cannot run %s: %s" % (binary, e))
        return EXIT_FAILED
