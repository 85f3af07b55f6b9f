#!/usr/bin/python3
"""failover_bench: the failover table of README.md "### Replication and failover".

Runs census MMOE (2 servers with server.replicas 1, 2 workers, SGD with the
exactly-once counter, heartbeats every 200 ms, a server silent for
--heartbeat-timeout-ms declared dead) through the launcher, SIGKILLs each
server once (separately) two progress lines into training, and prints a
Markdown table: the server killed, the time from the kill to the backup's
promotion and to the first push the new primary acknowledged (from the
surviving server's log), to the restarted server backing up both partitions
again (from the scheduler's log), training time, held-out AUC against the fault-free
replicated run, and the exactly-once counts. A benchmark, not a test
(tests/integration/faults_test.py asserts the same properties).

  /usr/bin/python3 tests/bench/failover_bench.py [--binary build/bin/mtps-node] [--heartbeat-timeout-ms 2000]
"""

import argparse
import datetime
import json
import os
import re
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
       "--set", "train.counter_key=987654321", "--set", "server.replicas=1",
       "--set", "cluster.heartbeat_interval_ms=200"]
GLOG_TIME = re.compile(r"^[IWE](\d{8} \d\d:\d\d:\d\d\.\d{6})")


def log_time(path, needle):
    """Wall time (seconds since the epoch) of the first line of a glog file containing needle."""
    for line in path.read_text(errors="replace").splitlines():
        match = GLOG_TIME.match(line)
        if match and needle in line:
            return datetime.datetime.strptime(match.group(1), "%Y%m%d %H:%M:%S.%f").timestamp()
    return None


def log_time_nth(path, needle, n):
    """Wall time of the n-th (1-based) line of a glog file containing needle."""
    seen = 0
    for line in path.read_text(errors="replace").splitlines():
        match = GLOG_TIME.match(line)
        if match and needle in line:
            seen += 1
            if seen == n:
                return datetime.datetime.strptime(match.group(1),
                                                  "%Y%m%d %H:%M:%S.%f").timestamp()
    return None


def progress_lines(path):
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip() and '"event"' not in line)


def run(args, run_dir, kill=None):
    argv = [sys.executable, str(LAUNCHER), "local", "--config", str(CONFIG), "--servers", "2",
            "--workers", "2", "--run-dir", str(run_dir), "--binary", args.binary, "--quiet",
            "--timeout", "600", "--max-restarts", "0",
            "--set", "cluster.heartbeat_timeout_ms=%d" % args.heartbeat_timeout_ms] + JOB
    launcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed_at = None
    if kill is not None:
        while progress_lines(run_dir / "progress.jsonl") < 2 and launcher.poll() is None:
            time.sleep(0.01)
        nodes = json.loads((run_dir / "launch.json").read_text())["nodes"]
        pid = [n["pid"] for n in nodes if n["role"] == "server" and n["rank"] == kill][-1]
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
    out, _ = launcher.communicate()
    if launcher.returncode != 0:
        sys.exit("%s failed:\n%s" % (" ".join(argv), out[-3000:]))
    return json.loads((run_dir / "summary.json").read_text()), killed_at


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(REPO / "build" / "bin" / "mtps-node"))
    parser.add_argument("--heartbeat-timeout-ms", type=int, default=2000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="failover-bench-"))
    try:
        base, _ = run(args, tmp / "fault-free")
        rows = []
        for rank in (0, 1):
            run_dir = tmp / ("kill-%d" % rank)
            s, killed_at = run(args, run_dir, kill=rank)
            survivor = run_dir / "logs" / ("server-%d.log" % (1 - rank))
            promoted = log_time(survivor, "now its primary")
            first_ack = log_time(survivor, "first update acknowledged as its primary")
            scheduler_log = (run_dir / "logs" / "scheduler-0.log").read_text(errors="replace")
            rejoined = None
            if scheduler_log.count("is the backup of partition") >= 2:
                rejoined = log_time_nth(run_dir / "logs" / "scheduler-0.log",
                                        "is the backup of partition", 2)
            u = s["updates"]
            auc = " / ".join("%.4f (%.4f)" % (s["eval"][t]["auc"], base["eval"][t]["auc"])
                             for t in s["eval"])
            rows.append("| server-%d | %.2f s | %s | %s | %.1f s (%.1f s) | %s | %d of %d | %d / %d | %d |"
                        % (rank, promoted - killed_at,
                           "%.2f s" % (first_ack - killed_at) if first_ack else "none",
                           "%.2f s" % (rejoined - killed_at) if rejoined else "no",
                           s["train"]["seconds"], base["train"]["seconds"], auc, s["counter"],
                           s["counter_acknowledged"], u["applied"], u["acknowledged"],
                           s["recovery"]["restarts"]))
        print("| killed | kill to promotion | kill to first push acknowledged by the new primary | "
              "kill to both partitions backed up again | training (no kill) | AUC income / never_married (no kill) | counter of "
              "acknowledged batches | applied / acknowledged | restarts |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        print("\n".join(rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
