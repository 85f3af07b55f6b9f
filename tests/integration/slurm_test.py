"""Integration: `mtps-launch slurm` inside a real Slurm allocation.

A Slurm cluster of three nodes — slurmctld and three slurmd from Debian's
slurm-wlm, each slurmd in a network namespace of its own with its own
address (slurm_cluster.py, netns.py) — and the launcher run under
`salloc -N3` in the first namespace. The launcher reads the allocation's
hosts (scontrol show hostnames, NodeAddr from scontrol show node), places the
nodes, and starts each as a job step on its host through
`srun --nodes=1 --nodelist=HOST --overlap`. Census MMOE, 2 servers and 2
workers:
  - trained to completion; every node on its placed host's address, no step
    and no process of the job left afterwards;
  - the job's processes on one node SIGKILLed mid-training: the launcher
    starts the job again from its newest checkpoint (new steps) and finishes.
"""

import os
import signal
import subprocess

import harness
import netns
import slurm_cluster
from harness import CONFIGS, RunDirTestCase, read_json, wait_for

CONFIG = CONFIGS / "census_mmoe.pbtxt"
SERVERS, WORKERS = 2, 2
JOB_TIMEOUT_SEC = 300
EVENT_TIMEOUT_SEC = 120


class SlurmTest(RunDirTestCase):

    def setUp(self):
        super().setUp()
        ok, why = slurm_cluster.available()
        if not ok:
            self.skipTest(why)
        self.topology = netns.Topology(3, tag=abs(hash(self._testMethodName)) % 40 + 41)
        self.addCleanup(self.topology.remove)
        self.topology.create()
        self.cluster = slurm_cluster.SlurmCluster(self.topology, self.tmp)
        self.addCleanup(self.cluster.remove)
        self.cluster.start()

    def start_job(self, run_dir, extra):
        argv = [netns.IP, "netns", "exec", self.topology.hosts[0], "salloc", "-N3", "--quiet"]
        argv += self.launch_argv(CONFIG, SERVERS, WORKERS, run_dir,
                                 list(extra) + ["--timeout", str(JOB_TIMEOUT_SEC)],
                                 backend=("slurm",))
        out = open(self.tmp / "launcher.out", "w")
        self.addCleanup(out.close)
        job = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, env=self.cluster.env,
                               start_new_session=True)
        self.addCleanup(lambda: job.poll() is None and (os.killpg(job.pid, signal.SIGKILL),
                                                        job.wait()))
        return job

    def output(self):
        return (self.tmp / "launcher.out").read_text(errors="replace") + self.cluster.logs()

    def wait_job(self, job):
        try:
            return job.wait(JOB_TIMEOUT_SEC + 60)
        except subprocess.TimeoutExpired:
            self.fail("salloc did not finish\n" + self.output())

    def job_pids(self, run_dir, host):
        tag = ("--job_id=%s" % read_json(run_dir / "launch.json")["job_id"]).encode()
        found = []
        for pid in self.topology.pids(host):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if tag in f.read():
                        found.append(pid)
            except OSError:
                pass
        return found

    def assert_finished_cleanly(self, run_dir):
        launch = read_json(run_dir / "launch.json")
        self.assertEqual(launch["backend"], "slurm")
        self.assertEqual(launch.get("leftovers"), {}, self.output())
        for host in self.topology.hosts:
            self.assertEqual(self.job_pids(run_dir, host), [], host)
        cluster = read_json(run_dir / "cluster.json")
        by_name = {p["node"]: p for p in cluster["placement"]}
        self.assertEqual({p["host"] for p in by_name.values()}, set(self.topology.hosts))
        for node in cluster["nodes"]:
            placed = by_name["%s-%d" % (node["role"], node["rank"])]
            self.assertEqual(node["host"], placed["address"])
            self.assertEqual(placed["address"],
                             self.topology.addresses[self.topology.hosts.index(placed["host"])])

    def test_census_on_a_slurm_allocation(self):
        run_dir = self.tmp / "run"
        code = self.wait_job(self.start_job(run_dir, ["--set", "train.epochs=1"]))
        self.assertEqual(code, 0, self.output())
        summary = read_json(run_dir / "summary.json")
        self.assertGreater(summary["eval"]["income"]["auc"], 0.85)
        self.assertEqual(summary["recovery"]["restarts"], 0)
        self.assert_finished_cleanly(run_dir)

    def test_one_node_per_task_under_srun(self):
        run_dir = self.tmp / "run"
        argv = [netns.IP, "netns", "exec", self.topology.hosts[0], "srun", "-N3", "-n5",
                "--kill-on-bad-exit=1", "--label"]
        argv += self.launch_argv(CONFIG, SERVERS, WORKERS, run_dir,
                                 ["--set", "train.epochs=1", "--scheduler-port", "7300"],
                                 backend=("slurm",))
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                env=self.cluster.env, timeout=JOB_TIMEOUT_SEC)
        output = result.stdout + result.stderr + self.cluster.logs()
        self.assertEqual(result.returncode, 0, output)
        self.assertIn("held-out evaluation", result.stdout)
        summary = read_json(run_dir / "summary.json")
        self.assertGreater(summary["eval"]["income"]["auc"], 0.85)
        cluster = read_json(run_dir / "cluster.json")
        self.assertEqual(read_json(run_dir / "cluster.json")["nodes"][0]["host"],
                         self.topology.addresses[0], "the scheduler on the first node")
        self.assertEqual({n["host"] for n in cluster["nodes"]}, set(self.topology.addresses))
        # A step of the wrong size is refused by every task, with the reason.
        bad = subprocess.run(argv[:6] + ["-n4"] + argv[7:], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, env=self.cluster.env,
                             timeout=JOB_TIMEOUT_SEC)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("the step has 4 tasks", bad.stderr)

    def test_a_node_killed_mid_training_is_recovered(self):
        run_dir = self.tmp / "run"
        job = self.start_job(run_dir, ["--set", "train.epochs=4",
                                       "--set", "checkpoint.interval_seconds=0.3"])
        checkpoints = run_dir / "hosts" / self.topology.hosts[0] / "checkpoints"
        self.assertTrue(wait_for(lambda: any(checkpoints.glob("ckpt-*/MANIFEST")) or
                                 job.poll() is not None, EVENT_TIMEOUT_SEC), self.output())
        self.assertIsNone(job.poll(), "the job ended before the kill\n" + self.output())
        victims = self.job_pids(run_dir, self.topology.hosts[1])  # server-0, worker-1
        self.assertTrue(victims, self.output())
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.assertEqual(self.wait_job(job), 0, self.output())
        summary = read_json(run_dir / "summary.json")
        self.assertGreaterEqual(summary["recovery"]["restarts"], 1, self.output())
        self.assertIsNotNone(summary["recovery"]["events"][0]["checkpoint_id"], self.output())
        self.assertGreater(summary["eval"]["income"]["auc"], 0.85)
        self.assert_finished_cleanly(run_dir)


if __name__ == "__main__":
    harness.main()
