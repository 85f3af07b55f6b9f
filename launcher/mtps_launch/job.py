"""One mtps job: start its nodes on a backend, watch them, restart the job
from its newest checkpoint when a node dies (or let a replicated server fail
over), stop everything, and report. See cli.py for the command line."""

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .backends import NodeSpec
from .hosts import format_placement, place
from .progress import ProgressDisplay, ProgressReader, format_count, format_float
from .report import write_for_job
from .util import (EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, NODE_EXIT_PERMANENT, describe_exit, log,
                   tail, write_json_atomically)

# How long the scheduler may take to start listening.
SCHEDULER_ADDR_TIMEOUT_SEC = 30.0
# After SIGTERM, how long a node may take to exit before it gets SIGKILL.
KILL_GRACE_SEC = 5.0
# After the scheduler exits 0 (the job is over), how long servers and workers
# may take to exit on their own before the job counts as failed.
FINISH_GRACE_SEC = 30.0
POLL_INTERVAL_SEC = 0.05
LOG_TAIL_LINES = 20

# A replicated job's dead server is restarted to rejoin as a backup at most
# this many times (separately from --max-restarts, which bounds restarts of
# the whole job).
MAX_REJOINS_PER_SERVER = 3
# Files a previous run may have left in the run dir; removed before a new run
# so that nothing stale (above all scheduler.addr) is mistaken for this run's.
RUN_DIR_OUTPUTS = ("scheduler.addr", "config.pbtxt", "cluster.json",
                   "progress.jsonl", "metrics.jsonl", "summary.json", "launch.json", "report.html")
# Kept when a run resumes: its progress goes on in the same file.
RESUME_KEEPS = ("progress.jsonl", "metrics.jsonl")
# After SIGINT/SIGTERM, how long the scheduler may take to write its last
# checkpoint and stop the job before everything is stopped.
CHECKPOINT_GRACE_SEC = 120.0
DEFAULT_MAX_RESTARTS = 3


def config_asks_curve(args):
    """cluster.curve: true in the config file or a --set."""
    for item in args.set:
        field, _, value = item.partition("=")
        if field.strip() == "cluster.curve":
            return value.strip().lower() in ("true", "1")
    try:
        text = Path(args.config).read_text()
    except OSError:
        return False
    # The field is only in ClusterConfig; a commented line does not count.
    return re.search(r"^[^#\n]*\bcurve\s*:\s*true\b", text, re.MULTILINE) is not None


def read_summary(path):
    """summary.json as a dict with "eval" and "train", or None (logged)."""
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary["eval"], dict) or not isinstance(summary["train"], dict):
            raise TypeError("eval and train must be objects")
    except (OSError, ValueError, KeyError, TypeError) as e:
        log("FAILED: every node exited 0 but %s is missing or malformed: %s" % (path, e))
        return None
    return summary


def print_summary(summary):
    """The held-out metrics table and the training line, on stdout."""
    rows = [("task", "AUC", "logloss", "examples")]
    for task, metrics in summary["eval"].items():
        rows.append((task, format_float(metrics.get("auc")),
                     format_float(metrics.get("logloss")),
                     format_count(metrics.get("examples"))))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print("%s: held-out evaluation" % summary.get("model", "?"))
    for row in rows:
        print("  " + row[0].ljust(widths[0]) + "".join(
            "  " + cell.rjust(width) for cell, width in zip(row[1:], widths[1:])))
    train = summary["train"]
    seconds = train.get("seconds")
    rate = train.get("examples_per_sec")
    print("train: %s examples in %s s, %s examples/s" % (
        format_count(train.get("examples")),
        "%.2f" % seconds if isinstance(seconds, (int, float)) else seconds,
        format_count(round(rate)) if isinstance(rate, (int, float)) else rate))


class Outcome:
    """How the watch ended. kind: success, failed, timeout or interrupted."""

    def __init__(self, kind, exit_code, failed=None, reason=None):
        self.kind = kind
        self.exit_code = exit_code
        self.failed = failed  # The node blamed, if any.
        self.reason = reason  # Text for failures not tied to an exit status.


class Job:
    """One cluster run, restarted from its checkpoints when a node dies. Not
    thread-safe; run() is called once.

    Owns the nodes it starts: whatever happens in run(), including
    exceptions, every node has exited when run() returns.
    """

    def __init__(self, backend, args):
        self._backend = backend
        self._args = args
        self._run_dir = Path(args.run_dir).resolve()
        self._nodes = []  # This attempt's nodes.
        self._all_nodes = []  # Every attempt's, for launch.json.
        self._signal = None  # First terminating signal received.
        self._checkpoint_requests = 0  # SIGUSR1s not yet passed on.
        self._stopping = False
        self._start_time = time.time()
        self._start_monotonic = time.monotonic()
        self._display = ProgressDisplay(args.quiet)
        self._progress = ProgressReader(self._run_dir / "progress.jsonl")
        self._resume = args.resume
        self._restarts = 0
        self._events = []  # Recovery events, summary.json's "recovery".
        self._awaiting_training = None  # The event waiting for training to start again.
        self._last_exit_seen = None  # time.monotonic() of the latest SIGCHLD.
        self._failed_over = []  # Servers that died while their backups took over.
        # Names this launch's processes on every host (mtps-node --job_id).
        self._job_id = uuid.uuid4().hex[:16]
        self._placement = place(backend.hosts(), args.servers, args.workers)
        self._resolved_config = None
        self._secure = False
        self._leftovers = None
        if hasattr(backend, "set_file_listener"):
            backend.set_file_listener(self._on_result_file)

    # --- Signals -----------------------------------------------------------

    def _on_signal(self, signum, frame):
        if self._stopping:
            # Ctrl-C again while stopping: no more grace.
            for node in self._nodes:
                node.signal(signal.SIGKILL)
        if self._signal is None:
            self._signal = signum

    def _on_usr1(self, signum, frame):
        self._checkpoint_requests += 1

    def _on_child(self, signum, frame):
        self._last_exit_seen = time.monotonic()

    def _install_signal_handlers(self):
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        signal.signal(signal.SIGCHLD, self._on_child)

    # --- Run ---------------------------------------------------------------

    def run(self):
        self._install_signal_handlers()
        self._prepare_run_dir()
        self._secure = self._args.secure or config_asks_curve(self._args)
        if self._secure:
            failure = self._write_keys()
            if failure is not None:
                return self._report(failure)
        if not self._backend.shared_run_dir:
            self._resolved_config = self._resolve_config()
            if self._resolved_config is None:
                return self._report(Outcome("failed", EXIT_FAILED, reason=(
                    "the config does not load (above); nothing was started")))
        if len(self._backend.hosts()) > 1 or not self._backend.shared_run_dir:
            for line in format_placement(self._placement):
                log("placement: " + line)
        outcome = None
        try:
            while True:
                outcome = self._start_and_watch()
                if not self._should_restart(outcome):
                    break
                self._restart(outcome)
        finally:
            self._show_progress()
            self._display.finish()
            self._stop_all(graceful=outcome is not None and outcome.kind == "interrupted")
            self._check_leftovers()
            self._write_launch_json(outcome)
        return self._report(outcome)

    def _check_leftovers(self):
        """After the run: no process of this job may be left on any host.
        Any found is reported (launch.json's "leftovers") and killed."""
        try:
            found = {host: lines for host, lines in self._backend.leftovers(self._job_id).items()
                     if lines}
        except OSError as e:
            found = {"?": ["cannot check: %s" % e]}
        self._leftovers = found
        if found:
            for host, lines in found.items():
                for line in lines:
                    log("left running on %s after the run: %s" % (host, line))
            log("killing what is left of the job")
            self._backend.kill_leftovers(self._job_id)

    def _should_restart(self, outcome):
        if outcome.kind != "failed" or outcome.failed is None:
            return False
        if outcome.failed.returncode == NODE_EXIT_PERMANENT:
            log("%s failed with an error a restart would repeat (a bad config, data line or "
                "file): not restarting" % outcome.failed.spec.name)
            return False
        if self._restarts >= self._args.max_restarts:
            if self._args.max_restarts > 0:
                log("%s failed; no restart left (--max-restarts %d)" %
                    (outcome.failed.spec.name, self._args.max_restarts))
            return False
        return True

    def _restart(self, outcome):
        """Stops this attempt's nodes and makes the next one resume."""
        now = time.monotonic()
        seen = self._last_exit_seen if self._last_exit_seen is not None else now
        blamed = outcome.failed
        event = {
            "node": blamed.spec.name,
            "exit": describe_exit(blamed.returncode),
            "detected_after_s": round(max(0.0, now - seen), 3),
            "training_again_after_s": None,
            "checkpoint_step": None,
            "checkpoint_id": None,
        }
        self._restarts += 1
        self._events.append(event)
        self._awaiting_training = (event, now)
        self._display.finish()
        log("%s failed (%s); restarting the job from its latest checkpoint (restart %d of %d)" %
            (blamed.spec.name, describe_exit(blamed.returncode), self._restarts,
             self._args.max_restarts))
        # The survivors' state is rolled back anyway: no grace for them.
        self._stop_all(graceful=False, kill=True)
        self._stopping = False
        self._archive_logs()
        self._nodes = []
        self._resume = True
        (self._run_dir / "scheduler.addr").unlink(missing_ok=True)

    def _archive_logs(self):
        """Moves the failed attempt's logs to logs/attempt-K/."""
        logs = self._run_dir / "logs"
        attempt = logs / ("attempt-%d" % self._restarts)
        attempt.mkdir(parents=True, exist_ok=True)
        for node in self._nodes:
            path = node.spec.log_path
            if path.exists():
                target = attempt / path.name
                path.replace(target)
                node.spec.log_path = target

    def _prepare_run_dir(self):
        logs = self._run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name in RUN_DIR_OUTPUTS:
            if self._resume and name in RESUME_KEEPS:
                continue
            (self._run_dir / name).unlink(missing_ok=True)
        if self._resume:
            # Keep the earlier run's logs beside this one's.
            old_logs = [p for p in logs.glob("*.log")
                        if re.fullmatch(r"(scheduler|server|worker)-\d+\.log", p.name)]
            if old_logs:
                k = 1
                while (logs / ("before-resume-%d" % k)).exists():
                    k += 1
                target = logs / ("before-resume-%d" % k)
                target.mkdir()
                for old in old_logs:
                    old.replace(target / old.name)
            return
        for old in logs.glob("*.log"):
            if re.fullmatch(r"(scheduler|server|worker)-\d+\.log", old.name):
                old.unlink()
        for old in logs.glob("attempt-*"):
            shutil.rmtree(old, ignore_errors=True)
        # A fresh run must never resume from an earlier run's checkpoints.
        shutil.rmtree(self._run_dir / "checkpoints", ignore_errors=True)

    def _write_keys(self):
        """CURVE (--secure or cluster.curve): a fresh key pair per node in
        RUN_DIR/keys (owner-only), written by mtps-node --generate_keys. A
        remote node gets its own key and the public keys on stdin."""
        keys = self._run_dir / "keys"
        result = subprocess.run(
            [self._args.binary, "--generate_keys=%s" % keys, "--num_servers=%d" % self._args.servers,
             "--num_workers=%d" % self._args.workers],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            log("cannot write the CURVE keys: %s" % result.stderr.strip())
            return Outcome("failed", EXIT_FAILED, reason="cannot write the CURVE keys")
        log("CURVE on every socket: keys in %s" % keys)
        return None

    def _resolve_config(self):
        """For nodes on other hosts: the config checked here, with every --set
        applied and relative data paths made absolute (mtps-node
        --check_config), shipped with the scheduler's start command. None
        and a logged reason when it does not load."""
        args = self._args
        argv = [args.binary, "--role=scheduler", "--config=%s" % Path(args.config).resolve(),
                "--check_config"]
        overrides = self._overrides()
        if overrides:
            argv.append("--set=" + ";".join(overrides))
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=60)
        if result.returncode != 0:
            for line in result.stderr.strip().splitlines()[-LOG_TAIL_LINES:]:
                log(line)
            return None
        return result.stdout

    def _overrides(self):
        return list(self._args.set) + (["cluster.curve=true"] if self._secure else [])

    def _deadline(self):
        if self._args.timeout is None:
            return None
        return self._start_monotonic + self._args.timeout

    def _node_spec(self, role, rank, flags):
        """The NodeSpec of node (role, rank) on its placed host: mtps-node
        with `flags` and what the backend and the job add."""
        host = self._placement[(role, rank)]
        backend = self._backend
        argv = [self._node_binary(), "--role=%s" % role] + flags + backend.node_flags(host)
        argv.append("--job_id=%s" % self._job_id)
        log_path = self._run_dir / "logs" / ("%s-%d.log" % (role, rank))
        if backend.shared_run_dir:
            argv.append("--run_dir=%s" % self._run_dir)
            if self._secure:
                argv.append("--keys=%s" % (self._run_dir / "keys"))
            return NodeSpec(role, rank, argv, log_path, host=host)
        work_dir = backend.node_dir(self._run_dir, host)
        argv.append("--run_dir=%s" % work_dir)
        secret_files = {}
        if self._secure:
            # A key dir per node: two nodes on one host never write the same file.
            name = "scheduler" if role == "scheduler" else "%s-%d" % (role, rank)
            argv.append("--keys=keys/%s" % name)
            for key_file in (name + ".key", "public.keys"):
                secret_files["keys/%s/%s" % (name, key_file)] = (
                    self._run_dir / "keys" / key_file).read_text()
        return NodeSpec(role, rank, argv, log_path, host=host, work_dir=work_dir,
                        secret_files=secret_files)

    def _host_processes(self, role, rank):
        """The job's servers and workers placed on the host of (role, rank):
        a worker's share of its host's cores for train.compute_threads 0."""
        host = self._placement[(role, rank)]
        return sum(1 for (r, _), h in self._placement.items()
                   if r != "scheduler" and h.name == host.name)

    def _node_binary(self):
        return getattr(self._backend, "remote_binary", None) or self._args.binary

    def _start_and_watch(self):
        args = self._args
        if self._backend.shared_run_dir:
            flags = ["--config=%s" % Path(args.config).resolve()]
            if self._overrides():
                flags.append("--set=" + ";".join(self._overrides()))
            files = {}
        else:
            flags = ["--config=job.pbtxt", "--results_to_stdout"]
            files = {"job.pbtxt": self._resolved_config}
        flags += ["--num_servers=%d" % args.servers, "--num_workers=%d" % args.workers,
                  "--restarts=%d" % self._restarts]
        if self._resume:
            flags.append("--resume")
        spec = self._node_spec("scheduler", 0, flags)
        spec.files = files
        if not self._backend.shared_run_dir and not self._resume:
            # A fresh run never resumes from an earlier run's checkpoints.
            spec.clean = ["checkpoints"]
        self._start_node(spec)

        outcome, address = self._wait_for_scheduler_address()
        if outcome is not None:
            return outcome
        for role, count in (("server", args.servers), ("worker", args.workers)):
            for rank in range(count):
                if self._signal is not None:
                    return self._interrupted()
                self._start_node(self._node_spec(role, rank, [
                    "--scheduler=%s" % address, "--rank=%d" % rank,
                    "--host_processes=%d" % self._host_processes(role, rank)]))
        self._write_launch_json(None)
        return self._watch()

    def _start_node(self, spec):
        node = self._backend.start(spec)
        self._nodes.append(node)
        self._all_nodes.append(node)
        self._write_launch_json(None)

    def _wait_for_scheduler_address(self):
        """Returns (outcome, None) if the job ends here, else (None, address)."""
        path = self._run_dir / "scheduler.addr"
        limit = time.monotonic() + SCHEDULER_ADDR_TIMEOUT_SEC
        scheduler = self._nodes[0]
        while True:
            try:
                address = path.read_text().strip()
            except FileNotFoundError:
                address = ""
            if address:
                if not address.startswith("tcp://"):
                    return Outcome("failed", EXIT_FAILED, reason="%s holds %r, not a tcp:// address" %
                                   (path, address)), None
                return None, address
            outcome = self._check_common()
            if outcome is not None:
                return outcome, None
            if scheduler.poll() is not None:
                return Outcome("failed", EXIT_FAILED, failed=scheduler,
                               reason="the scheduler exited before it wrote %s" % path), None
            if time.monotonic() > limit:
                return Outcome("failed", EXIT_FAILED, failed=scheduler,
                               reason="the scheduler did not write %s within %.0f s" %
                               (path, SCHEDULER_ADDR_TIMEOUT_SEC)), None
            time.sleep(POLL_INTERVAL_SEC)

    def _interrupted(self):
        return Outcome("interrupted", 128 + self._signal)

    def _check_common(self):
        """Signal or --timeout: the checks of every waiting loop."""
        if self._signal is not None:
            return self._interrupted()
        deadline = self._deadline()
        if deadline is not None and time.monotonic() > deadline:
            return Outcome("timeout", EXIT_TIMEOUT,
                           reason="--timeout of %g s expired" % self._args.timeout)
        return None

    def _show_progress(self):
        """Shows the newest progress line; notes the events among the records."""
        newest = None
        for record in self._progress.poll():
            if "event" in record:
                self._on_event(record)
            else:
                newest = record
        if newest is not None:
            self._display.show(newest)

    def _on_event(self, record):
        if record.get("event") != "training" or self._awaiting_training is None:
            return
        event, detected = self._awaiting_training
        self._awaiting_training = None
        event["training_again_after_s"] = round(time.monotonic() - detected, 3)
        event["checkpoint_id"] = record.get("resumed_from_checkpoint")
        event["checkpoint_step"] = record.get("checkpoint_step")
        self._display.finish()
        if event["checkpoint_id"] is None:
            log("training again after %.2f s, from the start (no checkpoint yet)" %
                event["training_again_after_s"])
        else:
            log("training again after %.2f s, from checkpoint %s (step %s)" % (
                event["training_again_after_s"], event["checkpoint_id"], event["checkpoint_step"]))

    def _watch(self):
        scheduler = self._nodes[0]
        scheduler_done_at = None
        while True:
            self._show_progress()
            if self._checkpoint_requests > 0:
                self._checkpoint_requests = 0
                log("checkpoint requested (SIGUSR1); passed on to the scheduler")
                scheduler.signal(signal.SIGUSR1)
            failed = [n for n in self._nodes if n.poll() is not None and n.returncode != 0
                      and n not in self._failed_over]
            for node in [n for n in failed if self._fails_over(n)]:
                failed.remove(node)
            if failed:
                # Several failures seen in one poll: blame a server or worker
                # first, since the scheduler usually fails because of them.
                failed.sort(key=lambda n: n.spec.role == "scheduler")
                return Outcome("failed", EXIT_FAILED, failed=failed[0])
            if all(n.returncode is not None for n in self._nodes):
                return Outcome("success", EXIT_OK)
            outcome = self._check_common()
            if outcome is not None:
                return outcome
            if scheduler.returncode is not None:
                now = time.monotonic()
                if scheduler_done_at is None:
                    scheduler_done_at = now
                elif now - scheduler_done_at > FINISH_GRACE_SEC:
                    stuck = [n.spec.name for n in self._nodes if n.returncode is None]
                    return Outcome("failed", EXIT_FAILED, reason=(
                        "%s still running %.0f s after the scheduler finished" %
                        (", ".join(stuck), FINISH_GRACE_SEC)))
            time.sleep(POLL_INTERVAL_SEC)

    def _replicated(self):
        """server.replicas > 0 in the job's resolved config (RUN_DIR/config.pbtxt,
        written by the scheduler)."""
        try:
            text = (self._run_dir / "config.pbtxt").read_text()
        except OSError:
            return False
        match = re.search(r"^\s*replicas:\s*(\d+)", text, re.MULTILINE)
        return match is not None and int(match.group(1)) > 0

    def _fails_over(self, node):
        """A dead server of a replicated job: the scheduler promotes the backups
        of its partitions and the job goes on (no restart). Records the event."""
        if node.spec.role != "server" or self._stopping or not self._replicated():
            return False
        self._failed_over.append(node)
        event = {"node": node.spec.name, "exit": describe_exit(node.returncode),
                 "failover": True, "restarted": False}
        self._events.append(event)
        self._display.finish()
        log("%s failed (%s); its partitions fail over to their backups (server.replicas)" %
            (node.spec.name, describe_exit(node.returncode)))
        # The server comes back at its old address (its peers' connections
        # reconnect there by themselves), copies the partitions that lack a
        # backup from their primaries and backs them up again.
        port = self._cluster_port(node.spec.role, node.spec.rank)
        times = sum(1 for n in self._failed_over if n.spec.name == node.spec.name)
        if port is None or times > MAX_REJOINS_PER_SERVER:
            log("not restarting %s (%s)" % (node.spec.name, "no port in cluster.json"
                                             if port is None else "it died %d times" % times))
            return True
        if node.spec.log_path.exists():
            node.spec.log_path.replace(node.spec.log_path.with_suffix(
                ".failed-%d.log" % len(self._failed_over)))
        old = node.spec
        argv = [a for a in old.argv if not a.startswith("--port=")] + ["--port=%d" % port]
        self._start_node(NodeSpec(old.role, old.rank, argv, old.log_path, host=old.host,
                                  work_dir=old.work_dir, files=old.files,
                                  secret_files=old.secret_files))
        event["restarted"] = True
        log("restarted %s to rejoin as a backup" % node.spec.name)
        return True

    def _cluster_port(self, role, rank):
        """The port node (role, rank) registered with, from RUN_DIR/cluster.json."""
        try:
            nodes = json.loads((self._run_dir / "cluster.json").read_text())["nodes"]
        except (OSError, ValueError, KeyError):
            return None
        for n in nodes:
            if n.get("role") == role and n.get("rank") == rank:
                return n.get("port")
        return None

    def _stop_all(self, graceful, kill=False):
        """Stops every running node and reaps everything. graceful (after
        SIGINT/SIGTERM): the scheduler gets SIGTERM first and up to
        CHECKPOINT_GRACE_SEC to write a last checkpoint and end the job.
        Then SIGTERM to every node left (SIGKILL when kill), SIGKILL after
        the grace period."""
        self._stopping = True
        if graceful and self._nodes and self._nodes[0].poll() is None:
            scheduler = self._nodes[0]
            log("asking the scheduler for a last checkpoint before stopping")
            # The scheduler ends the job: every node stops because of us.
            for node in self._nodes:
                node.stopped_by_launcher = True
            scheduler.signal(signal.SIGTERM)
            limit = time.monotonic() + CHECKPOINT_GRACE_SEC
            while scheduler.poll() is None and time.monotonic() < limit:
                time.sleep(POLL_INTERVAL_SEC)
        running = [n for n in self._nodes if n.poll() is None]
        for node in running:
            node.stopped_by_launcher = True
            node.signal(signal.SIGKILL if kill else signal.SIGTERM)
        limit = time.monotonic() + KILL_GRACE_SEC
        while any(n.poll() is None for n in running) and time.monotonic() < limit:
            time.sleep(POLL_INTERVAL_SEC)
        for node in running:
            if node.poll() is None:
                node.signal(signal.SIGKILL)
        for node in running:
            while node.poll() is None:
                time.sleep(POLL_INTERVAL_SEC)

    def _on_result_file(self, name):
        """A remote scheduler replaced a result file here (reader thread):
        cluster.json gets the launcher's placement added."""
        if name != "cluster.json":
            return
        path = self._run_dir / "cluster.json"
        try:
            cluster = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        cluster["placement"] = [dict(host.to_json(), node="%s-%d" % key)
                                for key, host in self._placement.items()]
        write_json_atomically(path, cluster)

    # --- Records and reports -----------------------------------------------

    def _write_launch_json(self, outcome):
        record = {
            "backend": self._backend.name,
            "argv": sys.argv,
            "launcher_pid": os.getpid(),
            "start_time": self._start_time,
            "start_time_iso": datetime.datetime.fromtimestamp(
                self._start_time, datetime.timezone.utc).isoformat(),
            "binary": self._args.binary,
            "config": str(Path(self._args.config).resolve()),
            "run_dir": str(self._run_dir),
            "job_id": self._job_id,
            "placement": [dict(host.to_json(), node="%s-%d" % key)
                          for key, host in self._placement.items()],
            "nodes": [{
                "role": n.spec.role,
                "rank": n.spec.rank,
                "host": n.spec.host.name if n.spec.host is not None else None,
                "pid": n.pid,
                "pgid": getattr(n, "pgid", None),
                "argv": n.spec.argv,
                "log": str(n.spec.log_path),
                "exit_code": n.returncode,
                "stopped_by_launcher": n.stopped_by_launcher,
            } for n in self._all_nodes],
            "restarts": self._restarts,
        }
        if self._leftovers is not None:
            record["leftovers"] = self._leftovers
        if outcome is not None:
            record["result"] = outcome.kind
            record["exit_code"] = outcome.exit_code
            record["end_time"] = time.time()
        write_json_atomically(self._run_dir / "launch.json", record)

    def _report(self, outcome):
        # report.html from whatever the run left, however it ended (report.py).
        write_for_job(self._run_dir, {"result": outcome.kind, "reason": outcome.reason},
                      {"restarts": self._restarts, "events": self._events})
        if outcome.kind == "success":
            return self._report_success()
        if outcome.kind == "interrupted":
            log("interrupted by %s; stopped every node (%d)" %
                (signal.Signals(self._signal).name, len(self._nodes)))
        elif outcome.kind == "timeout":
            log("%s; stopped every node (%d)" % (outcome.reason, len(self._nodes)))
        else:
            self._report_failure(outcome)
        log("run dir: %s" % self._run_dir)
        return outcome.exit_code

    def _report_failure(self, outcome):
        blamed = outcome.failed
        if blamed is not None:
            if blamed.stopped_by_launcher:
                what = "stopped by the launcher"
            else:
                what = describe_exit(blamed.returncode)
            if outcome.reason:
                what += ": " + outcome.reason
            log("FAILED: %s (pid %d) %s" % (blamed.spec.name, blamed.pid, what))
            log("last lines of %s:" % blamed.spec.log_path)
            for line in tail(blamed.spec.log_path, LOG_TAIL_LINES):
                print("    " + line, file=sys.stderr)
        else:
            log("FAILED: %s" % outcome.reason)
        # Nodes that failed on their own before the launcher stopped them.
        for node in self._nodes:
            if (node is blamed or node.stopped_by_launcher or node.returncode in (0, None)
                    or node in self._failed_over):
                continue
            log("also failed: %s (pid %d) %s, log %s" % (
                node.spec.name, node.pid, describe_exit(node.returncode), node.spec.log_path))

    def _report_success(self):
        path = self._run_dir / "summary.json"
        summary = read_summary(path)
        if summary is None:
            return EXIT_FAILED
        # What the launcher saw: restarts after node failures.
        summary["recovery"] = {"restarts": self._restarts, "events": self._events}
        write_json_atomically(path, summary)
        print_summary(summary)
        if self._restarts:
            print("recovered from %d failure%s: %s" % (
                self._restarts, "" if self._restarts == 1 else "s",
                ", ".join(e["node"] for e in self._events)))
        print("run dir: %s" % self._run_dir)
        sys.stdout.flush()
        return EXIT_OK


