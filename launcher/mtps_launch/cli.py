"""The command line of mtps-launch (launcher/mtps-launch).

Usage:
  mtps-launch local --config FILE --servers N --workers M --run-dir DIR
                    [--set a.b=v ...] [--binary PATH] [--timeout SECONDS]
                    [--quiet] [--secure] [--resume] [--max-restarts N]
  mtps-launch ssh   --hostfile FILE [--remote-exec TEMPLATE] [--remote-dir DIR]
                    [--remote-binary PATH] (and local's options)
  mtps-launch slurm [--remote-exec TEMPLATE] ... (inside a Slurm allocation: salloc, sbatch)
  srun -n 1+N+M mtps-launch slurm [--scheduler-port PORT] ... (one node per task)
  mtps-launch checkpoint --run-dir DIR
  mtps-launch predict --run-dir DIR --data FILE --out FILE [--checkpoint ID]
  mtps-launch export  --run-dir DIR --out DIR [--checkpoint ID]
  mtps-launch report --run-dir DIR [--out FILE]   (re)builds DIR/report.html

Supervision: when a node dies (a non-zero exit or a signal), the launcher
stops the others and starts the whole job again from its newest intact
checkpoint, up to --max-restarts times (default 3); summary.json's
"recovery" records each restart. --resume continues a run whose processes
all died (launcher killed, machine rebooted) from the checkpoints in DIR.
SIGUSR1 to the launcher (or `mtps-launch checkpoint --run-dir DIR`) takes a
checkpoint now; SIGINT/SIGTERM take one and then stop the job.

Exit codes: 0 success, 1 a node failed (or the job produced no result),
2 bad arguments or missing binary, 124 --timeout expired,
128+signal when the launcher was interrupted (130 Ctrl-C, 143 SIGTERM).
"""

import argparse
import json
import os
import re
import signal
import sys
from pathlib import Path

from . import predict
from .backends import LocalBackend, RemoteBackend
from .hosts import HostfileError, SlurmError, parse_hostfile, place, slurm_hosts, slurm_task
from .job import DEFAULT_MAX_RESTARTS, Job, config_asks_curve
from .report import report_command
from .slurm_task import DEFAULT_SCHEDULER_PORT, run_task
from .util import EXIT_FAILED, EXIT_OK, EXIT_USAGE, log

DEFAULT_SSH_EXEC = "ssh -o BatchMode=yes {host}"
DEFAULT_SRUN_EXEC = ("srun --nodes=1 --ntasks=1 --nodelist={host} --overlap --quiet "
                     "--kill-on-bad-exit=1")
SET_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*=")


def default_binary():
    return Path(__file__).resolve().parent.parent.parent / "build" / "bin" / "mtps-node"


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %d" % value)
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be at least 0, got %d" % value)
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds, got %r" % text)
    return value


def override(text):
    if not SET_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            "%r is not of the form field.path=value (e.g. train.epochs=2)" % text)
    if ";" in text or "\n" in text:
        raise argparse.ArgumentTypeError("%r: values may not contain ';' or newlines" % text)
    return text


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mtps-launch",
        description="Start an mtps cluster (scheduler, servers, workers), show its progress "
        "and report the held-out metrics.")
    job = argparse.ArgumentParser(add_help=False)
    job.add_argument("--config", required=True, help="job configuration (.pbtxt)")
    job.add_argument("--servers", type=positive_int, required=True,
                     help="number of parameter servers")
    job.add_argument("--workers", type=positive_int, required=True, help="number of workers")
    job.add_argument("--run-dir", required=True,
                     help="directory for logs and results (created; outputs of an earlier run "
                     "there are replaced)")
    job.add_argument("--set", action="append", type=override, default=[], metavar="FIELD=VALUE",
                     help="override a config field, e.g. --set train.epochs=2 (repeatable)")
    job.add_argument("--binary", help="mtps-node binary (default: %s)" % default_binary())
    job.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                     help="stop everything and fail after this many seconds")
    job.add_argument("--quiet", action="store_true", help="no progress line")
    job.add_argument("--secure", action="store_true",
                     help="CURVE on every socket: a key pair per node in RUN_DIR/keys, links "
                     "encrypted and authenticated, only the job's keys admitted (also turned on "
                     "by cluster.curve: true in the config)")
    job.add_argument("--resume", action="store_true",
                     help="continue the run in --run-dir from its newest intact checkpoint "
                     "(after the launcher or the machine died)")
    job.add_argument("--max-restarts", type=non_negative_int, default=DEFAULT_MAX_RESTARTS,
                     metavar="N",
                     help="restart the job from its latest checkpoint at most N times when a "
                     "node dies (default %d; 0: fail at once)" % DEFAULT_MAX_RESTARTS)
    backends = parser.add_subparsers(dest="backend", metavar="BACKEND", required=True)
    backends.add_parser("local", parents=[job], help="run every node on this machine",
                        description="Run every node as a child process on this machine.")
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("--remote-dir", metavar="DIR",
                        help="each node's directory on its host, {host} replaced (default "
                        "RUN_DIR/hosts/{host}); checkpoints go under the scheduler's unless "
                        "checkpoint.dir says otherwise")
    remote.add_argument("--remote-binary", metavar="PATH",
                        help="mtps-node's path on the hosts (default: --binary's)")
    remote.add_argument("--insecure", action="store_true",
                        help="plain TCP between the hosts (default for this backend: CURVE, as "
                        "--secure, each node's key sent to it on its stdin)")
    ssh = backends.add_parser(
        "ssh", parents=[job, remote], help="run the nodes on the hosts of a hostfile",
        description="Run the nodes on the hosts of --hostfile, each started through "
        "--remote-exec: the scheduler on the first host, servers and workers spread over them.")
    ssh.add_argument("--hostfile", required=True, metavar="FILE",
                     help="one host per line: HOST [ADDRESS] [slots=N] (ADDRESS: where the "
                     "other nodes reach HOST, default HOST)")
    ssh.add_argument("--remote-exec", default=DEFAULT_SSH_EXEC, metavar="TEMPLATE",
                     help="command that runs a shell script on {host} (default %r; e.g. "
                     "'ip netns exec {host}')" % DEFAULT_SSH_EXEC)
    slurm = backends.add_parser(
        "slurm", parents=[job, remote], help="run the nodes on a Slurm allocation's hosts",
        description="Inside a Slurm allocation (salloc, sbatch): the hosts are the "
        "allocation's (scontrol show hostnames $SLURM_JOB_NODELIST), each node started as a "
        "job step on its host with --remote-exec; the scheduler on the first host.")
    slurm.add_argument("--remote-exec", default=DEFAULT_SRUN_EXEC, metavar="TEMPLATE",
                       help="command that runs a shell script on {host} (default %r)" %
                       DEFAULT_SRUN_EXEC)
    slurm.add_argument("--scheduler-port", type=positive_int, default=DEFAULT_SCHEDULER_PORT,
                       metavar="PORT",
                       help="under srun (one node per task): the scheduler's port on the first "
                       "node (default %d)" % DEFAULT_SCHEDULER_PORT)
    ckpt = backends.add_parser(
        "checkpoint", help="take a checkpoint of a running job now",
        description="Ask the launcher running in --run-dir for a checkpoint (SIGUSR1).")
    ckpt.add_argument("--run-dir", required=True, help="the running job's run dir")
    page = backends.add_parser(
        "report", help="(re)build a run's report.html",
        description="Build the training report of the run in --run-dir (what every run "
        "writes at its end) from its progress.jsonl, metrics.jsonl, summary.json and "
        "launch.json.")
    page.add_argument("--run-dir", required=True, help="the run dir")
    page.add_argument("--out", metavar="FILE", help="where to write it (default "
                      "RUN_DIR/report.html)")
    predict.add_parsers(backends)
    return parser


def request_checkpoint(run_dir):
    """`mtps-launch checkpoint`: SIGUSR1 to the launcher of run_dir's job."""
    path = Path(run_dir) / "launch.json"
    try:
        launch = json.loads(path.read_text())
        pid = int(launch["launcher_pid"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        log("error: cannot read the launcher's pid from %s: %s" % (path, e))
        return EXIT_FAILED
    if "result" in launch:
        log("error: the job in %s is over (%s)" % (run_dir, launch["result"]))
        return EXIT_FAILED
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        log("error: the launcher (pid %d) of %s is not running" % (pid, run_dir))
        return EXIT_FAILED
    log("checkpoint requested from the launcher (pid %d); see %s/logs/scheduler-0.log" %
        (pid, run_dir))
    return EXIT_OK


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend in ("checkpoint", "report") or args.backend in predict.COMMANDS:
        return args
    if not Path(args.config).is_file():
        parser.error("--config %s: no such file" % args.config)
    binary = Path(args.binary) if args.binary else default_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        if args.binary:
            parser.error("--binary %s: not an executable file" % binary)
        repo = default_binary().parent.parent.parent
        parser.error("node binary %s not found; build first: cmake -S %s -B %s/build "
                     "-DCMAKE_BUILD_TYPE=Release && cmake --build %s/build" %
                     (binary, repo, repo, repo))
    args.binary = str(binary.resolve())
    run_dir = Path(args.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        parser.error("--run-dir %s exists and is not a directory" % run_dir)
    return args


def make_backend(args):
    """The backend the command line asks for; exits with a usage error when
    its hosts cannot be read."""
    if args.backend == "local":
        return LocalBackend()
    try:
        if args.backend == "ssh":
            path = Path(args.hostfile)
            try:
                text = path.read_text()
            except OSError as e:
                raise HostfileError("--hostfile %s: %s" % (path, e.strerror or e))
            hosts = parse_hostfile(text, str(path))
        else:
            hosts = slurm_hosts(os.environ)
        place(hosts, args.servers, args.workers)
        return RemoteBackend(args.backend, args.remote_exec, hosts, remote_dir=args.remote_dir,
                             remote_binary=args.remote_binary)
    except (HostfileError, SlurmError, ValueError) as e:
        log("error: %s" % e)
        sys.exit(EXIT_USAGE)


def main(argv):
    args = parse_args(argv)
    if args.backend == "checkpoint":
        return request_checkpoint(args.run_dir)
    if args.backend in predict.COMMANDS:
        return predict.run(args)
    if args.backend == "report":
        return report_command(args.run_dir, args.out)
    if args.backend == "slurm":
        try:
            task = slurm_task(os.environ)
        except SlurmError as e:
            log("error: %s" % e)
            return EXIT_USAGE
        if task is not None:
            return run_task(args, task, os.environ)
    if args.backend in ("ssh", "slurm"):
        if args.insecure and (args.secure or config_asks_curve(args)):
            log("error: --insecure contradicts --secure / cluster.curve: true")
            return EXIT_USAGE
        # Between hosts, links are encrypted and authenticated unless asked not to be.
        args.secure = not args.insecure
    backend = make_backend(args)
    if (args.resume and backend.shared_run_dir and
            not (Path(args.run_dir) / "checkpoints").is_dir()):
        log("--resume: %s/checkpoints does not exist: unless checkpoint.dir points elsewhere, "
            "the job starts afresh" % args.run_dir)
    try:
        return Job(backend, args).run()
    except OSError as e:
        log("error: %s" % e)
        return EXIT_FAILED
