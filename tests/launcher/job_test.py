"""The job logic of the launcher (launcher/mtps_launch/job.py) against a fake
backend: start order, success, restarts from checkpoints (and when not to
restart), a scheduler that never listens, --timeout, leftovers after the run,
and what launch.json and summary.json record. No process is started: each
fake node follows a script of (seconds after start, exit status)."""

import argparse
import contextlib
import io
import json
import shutil
import signal
import tempfile
import time
import unittest
from pathlib import Path

import launcher_path  # noqa: F401
from mtps_launch import job as job_module
from mtps_launch.hosts import Host
from mtps_launch.job import Job

SUMMARY = {"model": "mmoe", "eval": {"income": {"auc": 0.93, "logloss": 0.2, "examples": 10}},
           "train": {"examples": 100, "seconds": 1.0, "examples_per_sec": 100.0}}


class FakeNode:
    """Exits with `status` `after` seconds after it starts (None: runs until
    signalled). The scheduler writes scheduler.addr at once and summary.json
    when it exits 0."""

    def __init__(self, backend, spec, after, status):
        self.spec = spec
        self.pid = 1000 + len(backend.started)
        self.pgid = self.pid
        self.stopped_by_launcher = False
        self.returncode = None
        self.signals = []
        self._backend = backend
        self._end = None if after is None else time.monotonic() + after
        self._status = status
        if spec.role == "scheduler" and backend.scheduler_listens:
            (backend.run_dir / "scheduler.addr").write_text("tcp://127.0.0.1:5555\n")

    def poll(self):
        if self.returncode is None and self._end is not None and time.monotonic() >= self._end:
            self._exit(self._status)
        return self.returncode

    def _exit(self, status):
        if (status == 0 and self.spec.role == "scheduler" and
                self._backend.writes_summary):
            (self._backend.run_dir / "summary.json").write_text(json.dumps(SUMMARY))
        self.returncode = status

    def signal(self, signum):
        self.signals.append(signum)
        if self.returncode is None:
            self._exit(-signum)


class FakeBackend:
    name = "fake"
    shared_run_dir = True

    def __init__(self, run_dir, plan):
        self.run_dir = run_dir
        # (role, rank, attempt) -> (after, status); anything else: exits 0
        # 0.3 s after start (servers and workers), 0.4 s (the scheduler).
        self.plan = plan
        self.started = []
        self.scheduler_listens = True
        self.writes_summary = True
        self.leftover = {}
        self.killed_leftovers = []
        self._attempt = -1

    def hosts(self):
        return [Host("localhost", "127.0.0.1")]

    def node_flags(self, host):
        return ["--host=%s" % host.address]

    def start(self, spec):
        if spec.role == "scheduler":
            self._attempt += 1
        default = (0.4, 0) if spec.role == "scheduler" else (0.3, 0)
        after, status = self.plan.get((spec.role, spec.rank, self._attempt), default)
        node = FakeNode(self, spec, after, status)
        self.started.append((self._attempt, node))
        return node

    def leftovers(self, job_id):
        return self.leftover

    def kill_leftovers(self, job_id):
        self.killed_leftovers.append(job_id)
        self.leftover = {}


class JobTest(unittest.TestCase):

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="mtps-job-test-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.run_dir = self.tmp / "run"
        self.config = self.tmp / "job.pbtxt"
        self.config.write_text("model { mmoe {} }\n")
        for name, value in (("SCHEDULER_ADDR_TIMEOUT_SEC", 1.0), ("FINISH_GRACE_SEC", 1.0),
                            ("KILL_GRACE_SEC", 1.0), ("POLL_INTERVAL_SEC", 0.01)):
            old = getattr(job_module, name)
            setattr(job_module, name, value)
            self.addCleanup(setattr, job_module, name, old)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1,
                       signal.SIGCHLD):
            self.addCleanup(signal.signal, signum, signal.getsignal(signum))

    def args(self, **overrides):
        values = dict(config=str(self.config), servers=2, workers=2, run_dir=str(self.run_dir),
                      set=[], binary="/nonexistent/mtps-node", timeout=None, quiet=True,
                      secure=False, resume=False, max_restarts=3)
        values.update(overrides)
        return argparse.Namespace(**values)

    def run_job(self, backend, **overrides):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = Job(backend, self.args(**overrides)).run()
        self.stdout, self.stderr = out.getvalue(), err.getvalue()
        return code

    def launch_json(self):
        return json.loads((self.run_dir / "launch.json").read_text())

    def test_success_starts_the_scheduler_first_and_reports(self):
        backend = FakeBackend(self.run_dir, {})
        self.assertEqual(self.run_job(backend), 0, self.stderr)
        names = [node.spec.name for _, node in backend.started]
        self.assertEqual(names, ["scheduler-0", "server-0", "server-1", "worker-0", "worker-1"])
        scheduler = backend.started[0][1].spec.argv
        self.assertIn("--num_servers=2", scheduler)
        self.assertNotIn("--resume", scheduler)
        worker = backend.started[3][1].spec.argv
        self.assertIn("--scheduler=tcp://127.0.0.1:5555", worker)
        self.assertIn("--rank=0", worker)
        # Its share of the host's cores: 2 servers and 2 workers on one host.
        self.assertIn("--host_processes=4", worker)
        job_ids = {a for _, n in backend.started for a in n.spec.argv if a.startswith("--job_id=")}
        self.assertEqual(len(job_ids), 1)
        self.assertIn("income", self.stdout)
        launch = self.launch_json()
        self.assertEqual(launch["result"], "success")
        self.assertEqual(launch["leftovers"], {})
        self.assertEqual(len(launch["nodes"]), 5)
        summary = json.loads((self.run_dir / "summary.json").read_text())
        self.assertEqual(summary["recovery"], {"restarts": 0, "events": []})

    def test_a_dead_worker_restarts_the_job_from_its_checkpoint(self):
        backend = FakeBackend(self.run_dir, {("worker", 1, 0): (0.1, -signal.SIGKILL),
                                             ("scheduler", 0, 0): (None, None),
                                             ("server", 0, 0): (None, None)})
        self.assertEqual(self.run_job(backend), 0, self.stderr)
        attempts = [attempt for attempt, _ in backend.started]
        self.assertEqual(attempts, [0] * 5 + [1] * 5)
        # The survivors of the first attempt were stopped by the launcher.
        first = [node for attempt, node in backend.started if attempt == 0]
        self.assertTrue(all(n.returncode is not None for n in first))
        self.assertTrue(first[0].stopped_by_launcher)
        self.assertIn("--resume", backend.started[5][1].spec.argv)
        # The scheduler learns how many attempts came before (mtps_job_restarts).
        self.assertIn("--restarts=0", backend.started[0][1].spec.argv)
        self.assertIn("--restarts=1", backend.started[5][1].spec.argv)
        summary = json.loads((self.run_dir / "summary.json").read_text())
        self.assertEqual(summary["recovery"]["restarts"], 1)
        self.assertEqual(summary["recovery"]["events"][0]["node"], "worker-1")
        self.assertEqual(summary["recovery"]["events"][0]["exit"], "killed by SIGKILL")
        self.assertIn("restarting the job from its latest checkpoint", self.stderr)

    def test_a_permanent_error_is_not_restarted(self):
        backend = FakeBackend(self.run_dir, {("worker", 0, 0): (0.05, 3),
                                             ("scheduler", 0, 0): (None, None)})
        self.assertEqual(self.run_job(backend), 1)
        self.assertEqual({attempt for attempt, _ in backend.started}, {0})
        self.assertIn("a restart would repeat", self.stderr)
        self.assertIn("FAILED: worker-0", self.stderr)

    def test_restarts_stop_at_max_restarts(self):
        plan = {}
        for attempt in range(3):
            plan[("server", 1, attempt)] = (0.05, 1)
            plan[("scheduler", 0, attempt)] = (None, None)
        backend = FakeBackend(self.run_dir, plan)
        self.assertEqual(self.run_job(backend, max_restarts=2), 1)
        self.assertEqual(max(attempt for attempt, _ in backend.started), 2)
        self.assertIn("no restart left (--max-restarts 2)", self.stderr)
        self.assertEqual(self.launch_json()["restarts"], 2)

    def test_a_scheduler_that_never_listens_fails_the_job(self):
        backend = FakeBackend(self.run_dir, {("scheduler", 0, 0): (None, None)})
        backend.scheduler_listens = False
        self.assertEqual(self.run_job(backend, max_restarts=0), 1)
        self.assertIn("did not write", self.stderr)
        self.assertEqual([n.spec.name for _, n in backend.started], ["scheduler-0"])

    def test_timeout_stops_everything(self):
        backend = FakeBackend(self.run_dir, {(role, rank, 0): (None, None)
                                             for role, rank in (("scheduler", 0), ("server", 0),
                                                                ("server", 1), ("worker", 0),
                                                                ("worker", 1))})
        self.assertEqual(self.run_job(backend, timeout=0.3), 124)
        self.assertTrue(all(n.returncode is not None for _, n in backend.started))
        self.assertEqual(self.launch_json()["result"], "timeout")

    def test_leftovers_are_reported_and_killed(self):
        backend = FakeBackend(self.run_dir, {})
        backend.leftover = {"h1": ["4242 mtps-node --role=worker --job_id=x"]}
        self.assertEqual(self.run_job(backend), 0)
        self.assertEqual(len(backend.killed_leftovers), 1)
        self.assertIn("left running on h1 after the run", self.stderr)
        self.assertEqual(self.launch_json()["leftovers"],
                         {"h1": ["4242 mtps-node --role=worker --job_id=x"]})

    def test_exit_zero_without_a_summary_is_a_failure(self):
        backend = FakeBackend(self.run_dir, {})
        backend.writes_summary = False
        self.assertEqual(self.run_job(backend), 1)
        self.assertIn("summary.json is missing or malformed", self.stderr)

    def test_a_replicated_server_fails_over_and_rejoins(self):
        backend = FakeBackend(self.run_dir, {("server", 0, 0): (0.05, -signal.SIGKILL),
                                             ("scheduler", 0, 0): (0.6, 0),
                                             ("worker", 0, 0): (0.5, 0),
                                             ("worker", 1, 0): (0.5, 0),
                                             ("server", 1, 0): (0.5, 0)})
        self.run_dir.mkdir()
        orig_start = backend.start

        def start(spec):
            node = orig_start(spec)
            if spec.name == "server-0":
                backend.plan[("server", 0, 0)] = (0.4, 0)  # The rejoined one lives.
            if spec.role == "scheduler":
                # What the scheduler writes once everyone registered.
                (self.run_dir / "config.pbtxt").write_text("server {\n  replicas: 1\n}\n")
                (self.run_dir / "cluster.json").write_text(json.dumps({"nodes": [
                    {"role": "server", "rank": 0, "port": 4100}]}))
            return node
        backend.start = start
        self.assertEqual(self.run_job(backend), 0, self.stderr)
        rejoined = [n for _, n in backend.started if n.spec.name == "server-0"]
        self.assertEqual(len(rejoined), 2)
        self.assertIn("--port=4100", rejoined[1].spec.argv)
        summary = json.loads((self.run_dir / "summary.json").read_text())
        self.assertEqual(summary["recovery"]["restarts"], 0)
        self.assertTrue(summary["recovery"]["events"][0]["failover"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
