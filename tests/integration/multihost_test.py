"""Integration: a job on three "hosts" through `mtps-launch ssh`.

The hosts are network namespaces joined by veth pairs to a bridge, each with
its own address (netns.py), and the remote-exec command is
`ip netns exec {host}`: every node binds and advertises its namespace's
address and shares nothing with the launcher but that command's pipes (its
files go to RUN_DIR/hosts/HOST; the launcher replays the scheduler's result
stream and the logs into the run dir). Census MMOE with a scheduler, 2
servers and 2 workers spread over the three:
  - trained to completion, with CURVE (the backend's default; the keys sent
    to each node on its stdin) and with --insecure; then new data scored
    from its checkpoint on the scheduler's host (mtps-launch predict);
  - again with every process of one namespace SIGKILLed mid-training: the
    job restarts from its newest checkpoint and finishes;
  - the launcher SIGKILLed: the remote nodes see their stdin close and exit;
    `--resume` then continues from the checkpoints on the scheduler's host.
After each run nothing of the job is left on any host (launch.json's
"leftovers", checked by the launcher itself, and checked here).
"""

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import harness
import netns
from harness import CONFIGS, RunDirTestCase, describe, read_json, wait_for

CONFIG = CONFIGS / "census_mmoe.pbtxt"
SERVERS, WORKERS = 2, 2
JOB_TIMEOUT_SEC = 300
EVENT_TIMEOUT_SEC = 120
# Enough epochs that a kill lands mid-training, checkpoints often enough
# that the restart has one.
EPOCHS = ["--set", "train.epochs=4", "--set", "checkpoint.interval_seconds=0.3"]


class MultiHostTest(RunDirTestCase):

    def setUp(self):
        super().setUp()
        ok, why = netns.available()
        if not ok:
            self.skipTest(why)
        self.topology = netns.Topology(3, tag=abs(hash(self._testMethodName)) % 40 + 1)
        self.addCleanup(self.topology.remove)
        self.topology.create()
        self.hostfile = self.tmp / "hosts"
        self.hostfile.write_text(self.topology.hostfile())

    def backend(self):
        return ("ssh", "--hostfile", str(self.hostfile), "--remote-exec", "ip netns exec {host}")

    def run_job(self, run_dir, extra=()):
        return self.run_launcher(CONFIG, SERVERS, WORKERS, run_dir, list(extra),
                                 timeout=JOB_TIMEOUT_SEC, backend=self.backend())

    def start_after_a_checkpoint(self, run_dir):
        """Starts a long job in the background; returns its launcher once the
        job committed a checkpoint and still trains."""
        launcher = self.start_launcher(CONFIG, SERVERS, WORKERS, run_dir, EPOCHS,
                                       timeout=JOB_TIMEOUT_SEC, backend=self.backend())
        checkpoints = run_dir / "hosts" / self.topology.hosts[0] / "checkpoints"
        self.assertTrue(wait_for(lambda: any(checkpoints.glob("ckpt-*/MANIFEST")) or
                                 launcher.poll() is not None, EVENT_TIMEOUT_SEC),
                        "no checkpoint committed\n" + self.launcher_output(run_dir))
        self.assertIsNone(launcher.poll(), "the job ended before the kill\n" +
                          self.launcher_output(run_dir))
        return launcher

    def assert_trained_on_the_hosts(self, run_dir, result):
        self.assertEqual(result.returncode, 0, describe(result, run_dir))
        summary = read_json(run_dir / "summary.json")
        self.assertGreater(summary["eval"]["income"]["auc"], 0.85)
        self.assertGreater(summary["eval"]["never_married"]["auc"], 0.95)
        # Every node advertised its namespace's address, on the placed host.
        cluster = read_json(run_dir / "cluster.json")
        placement = {p["node"]: p for p in cluster["placement"]}
        for node in cluster["nodes"]:
            name = "%s-%d" % (node["role"], node["rank"])
            self.assertEqual(node["host"], placement[name]["address"], name)
            self.assertIn(node["host"], self.topology.addresses)
        self.assertEqual(len({p["host"] for p in placement.values()}), 3,
                         "the nodes are spread over the three hosts")
        self.assertTrue(read_json(run_dir / "launch.json")["nodes"])
        self.assertTrue((run_dir / "scheduler.addr").read_text().startswith(
            "tcp://%s:" % self.topology.addresses[0]))
        # The logs came back through the pipes.
        for name in ("scheduler-0", "server-0", "server-1", "worker-0", "worker-1"):
            log = (run_dir / "logs" / ("%s.log" % name)).read_text(errors="replace")
            self.assertIn("job ", log, name)
        self.assert_nothing_left_on_the_hosts(run_dir)

    def assert_nothing_left_on_the_hosts(self, run_dir):
        launch = read_json(run_dir / "launch.json")
        self.assertEqual(launch.get("leftovers"), {}, "the launcher found leftovers")
        job = "--job_id=%s" % launch["job_id"]
        for host in self.topology.hosts:
            alive = [pid for pid in self.topology.pids(host)
                     if job.encode() in _cmdline(pid)]
            self.assertEqual(alive, [], "processes of the job left in %s" % host)

    def test_census_on_three_hosts(self):
        run_dir = self.tmp / "run"
        result = self.run_job(run_dir, ["--insecure", "--set", "train.epochs=2"])
        self.assert_trained_on_the_hosts(run_dir, result)
        self.assertFalse((run_dir / "keys").exists())
        # The scheduler's own files stayed on its host; the launcher's are
        # replays of its stream.
        remote = run_dir / "hosts" / self.topology.hosts[0]
        self.assertEqual(read_json(remote / "summary.json")["eval"],
                         read_json(run_dir / "summary.json")["eval"])
        self.assertEqual((remote / "progress.jsonl").read_text(),
                         (run_dir / "progress.jsonl").read_text())
        # New data scored from the job's checkpoint on the scheduler's host.
        test_path = harness.config_data_path(CONFIG, "test_path")
        scores = self.tmp / "scores.tsv"
        result = subprocess.run([sys.executable, harness.LAUNCHER, "predict", "--run-dir",
                                 str(run_dir), "--data", str(test_path), "--out", str(scores),
                                 "--binary", str(Path(harness.BINARY).with_name("mtps-predict"))],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = scores.read_text().splitlines()
        self.assertEqual(rows[0].split("\t")[:2], ["income", "never_married"])
        self.assertEqual(len(rows) - 1, len(harness.data_lines(test_path)))

    def test_secure_on_three_hosts(self):
        run_dir = self.tmp / "run"
        # CURVE is the ssh backend's default.
        result = self.run_job(run_dir, ["--set", "train.epochs=1"])
        self.assert_trained_on_the_hosts(run_dir, result)
        self.assertIn("curve: true", (run_dir / "config.pbtxt").read_text())
        # Each host got only its nodes' secret keys, owner-only, and no key
        # was on a command line.
        launch = read_json(run_dir / "launch.json")
        secret = (run_dir / "keys" / "server-1.key").read_text()
        self.assertNotIn(secret.strip().splitlines()[-1], json.dumps(launch))
        for node in launch["nodes"]:
            name = "scheduler" if node["role"] == "scheduler" else "%s-%d" % (
                node["role"], node["rank"])
            keys = run_dir / "hosts" / node["host"] / "keys"
            self.assertEqual(stat.S_IMODE(keys.stat().st_mode), 0o700)
            key = keys / name / ("%s.key" % name)
            self.assertEqual(key.read_text(), (run_dir / "keys" / key.name).read_text())
            self.assertEqual(stat.S_IMODE(key.stat().st_mode), 0o600)
        placement = {p["node"]: p["host"] for p in launch["placement"]}
        on_host = run_dir / "hosts" / placement["server-1"] / "keys"
        for node, host in placement.items():
            short = "scheduler" if node == "scheduler-0" else node
            if host != placement["server-1"]:
                self.assertFalse((on_host / short).exists(),
                                 "%s's secret key was sent to %s" % (node, host))

    def test_a_host_killed_mid_training_is_recovered(self):
        run_dir = self.tmp / "run"
        launcher = self.start_after_a_checkpoint(run_dir)
        victim = self.topology.hosts[1]  # server-0 and worker-1
        killed = self.topology.pids(victim)
        self.assertTrue(killed, "nothing runs in %s" % victim)
        for pid in killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            code = launcher.wait(JOB_TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            self.fail("the launcher did not finish\n" + self.launcher_output(run_dir))
        output = self.launcher_output(run_dir)
        self.assertEqual(code, 0, output)
        summary = read_json(run_dir / "summary.json")
        recovery = summary["recovery"]
        self.assertGreaterEqual(recovery["restarts"], 1, output)
        self.assertIn(recovery["events"][0]["node"], ("server-0", "worker-1"), output)
        self.assertIsNotNone(recovery["events"][0]["checkpoint_id"], output)
        self.assertGreater(summary["eval"]["income"]["auc"], 0.85)
        self.assert_nothing_left_on_the_hosts(run_dir)

    def test_remote_nodes_exit_when_the_launcher_dies_and_resume_continues(self):
        run_dir = self.tmp / "run"
        launcher = self.start_after_a_checkpoint(run_dir)
        job = "--job_id=%s" % read_json(run_dir / "launch.json")["job_id"]

        def job_pids():
            return [pid for host in self.topology.hosts for pid in self.topology.pids(host)
                    if job.encode() in _cmdline(pid)]
        self.assertTrue(job_pids(), "no node of the job runs in the namespaces")
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
        # --exit_with_parent does not reach across hosts: stdin's end does.
        self.assertTrue(wait_for(lambda: not job_pids(), 30),
                        "nodes outlived their launcher: %s" % job_pids())
        # --resume continues from the checkpoints on the scheduler's host.
        result = self.run_job(run_dir, EPOCHS + ["--resume"])
        self.assertEqual(result.returncode, 0, describe(result, run_dir))
        summary = read_json(run_dir / "summary.json")
        self.assertIsNotNone(summary.get("resumed_from"), summary)
        self.assertGreater(summary["eval"]["income"]["auc"], 0.85)
        self.assert_nothing_left_on_the_hosts(run_dir)


    def test_a_quiet_node_exits_when_its_stdin_closes(self):
        # A worker that cannot reach its scheduler would wait for minutes and
        # write nothing (no SIGPIPE to end it): only its stdin's end does.
        host = self.topology.hosts[1]
        log = self.tmp / "worker.log"
        with open(log, "wb") as err:
            node = subprocess.Popen(
                [netns.IP, "netns", "exec", host, harness.BINARY, "--role=worker", "--rank=0",
                 "--scheduler=tcp://%s:9" % self.topology.addresses[0], "--new_session",
                 "--exit_on_stdin_eof"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err)
        self.addCleanup(lambda: node.poll() is None and (node.kill(), node.wait()))
        record = json.loads(node.stdout.readline())
        self.assertEqual(record["node"]["pid"], node.pid)
        self.assertEqual(record["node"]["pgid"], node.pid, "it leads its own process group")
        self.assertIsNone(node.poll())
        node.stdin.close()
        try:
            code = node.wait(30)
        except subprocess.TimeoutExpired:
            self.fail("the node did not exit when its stdin closed")
        self.assertEqual(code, 1)
        self.assertIn("the launcher's connection closed", log.read_text())


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


if __name__ == "__main__":
    harness.main()
