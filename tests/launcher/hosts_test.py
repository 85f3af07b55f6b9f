"""Hostfiles, placement and the Slurm environment (launcher/mtps_launch/hosts.py)."""

import subprocess
import unittest

import launcher_path  # noqa: F401
from mtps_launch.hosts import (Host, HostfileError, SlurmError, expand_hostnames, format_placement,
                               parse_hostfile, place, slurm_nodelist, slurm_task, task_role,
                               tasks_per_node, worker_threads_flag)


class HostfileTest(unittest.TestCase):

    def test_names_addresses_slots_and_comments(self):
        hosts = parse_hostfile("# cluster\nnode-a 10.0.0.1 slots=2\n\nnode-b  # no address\n"
                               "node-c slots=1\n", "hf")
        self.assertEqual([(h.name, h.address, h.slots) for h in hosts],
                         [("node-a", "10.0.0.1", 2), ("node-b", "node-b", None),
                          ("node-c", "node-c", 1)])

    def test_errors_name_the_line(self):
        cases = {
            "a\nb slots=0\n": "hf:2: slots must be a positive integer",
            "a slots=x\n": "hf:1: slots must be a positive integer",
            "a 10.0.0.1 10.0.0.2\n": "hf:1: unexpected '10.0.0.2'",
            "a gpus=2\n": "hf:1: unknown option 'gpus=2'",
            "a\na\n": "hf:2: host a is listed twice",
            "a slots=1 slots=2\n": "hf:1: slots given twice",
            "a;rm\n": "hf:1: 'a;rm' is not a host name",
            "# nothing\n\n": "hf: no hosts",
        }
        for text, message in cases.items():
            with self.subTest(text=text):
                with self.assertRaises(HostfileError) as caught:
                    parse_hostfile(text, "hf")
                self.assertIn(message, str(caught.exception))


class PlacementTest(unittest.TestCase):

    def names(self, placement):
        return {"%s-%d" % key: host.name for key, host in placement.items()}

    def test_three_hosts_spread_servers_then_workers(self):
        hosts = [Host("h0"), Host("h1"), Host("h2")]
        self.assertEqual(self.names(place(hosts, 2, 2)), {
            "scheduler-0": "h0", "server-0": "h1", "server-1": "h2", "worker-0": "h0",
            "worker-1": "h1"})

    def test_one_host_takes_everything(self):
        self.assertEqual(set(self.names(place([Host("h")], 3, 4)).values()), {"h"})

    def test_slots_are_respected_and_checked(self):
        hosts = [Host("h0", slots=1), Host("h1", slots=3)]
        names = self.names(place(hosts, 2, 2))
        self.assertEqual(sum(1 for n, h in names.items() if h == "h0" and n != "scheduler-0"), 1)
        with self.assertRaisesRegex(ValueError, "4 slots for 3 servers and 2 workers"):
            place(hosts, 3, 2)

    def test_format_placement_groups_by_host(self):
        lines = format_placement(place([Host("h0", "10.0.0.1"), Host("h1")], 1, 1))
        self.assertEqual(lines, ["h0 (10.0.0.1): scheduler, worker-0", "h1: server-0"])


class SlurmTest(unittest.TestCase):

    def test_nodelist_from_the_environment(self):
        self.assertEqual(slurm_nodelist({"SLURM_JOB_NODELIST": "n[1-2]"}), "n[1-2]")
        self.assertEqual(slurm_nodelist({"SLURM_NODELIST": "n1"}), "n1")
        with self.assertRaisesRegex(SlurmError, "not inside a Slurm allocation"):
            slurm_nodelist({})

    def test_hostnames_through_scontrol(self):
        calls = []

        def run(argv, **kwargs):
            calls.append(argv)
            return subprocess.CompletedProcess(argv, 0, stdout="n1\nn2\nn3\n", stderr="")
        self.assertEqual(expand_hostnames("n[1-3]", run=run), ["n1", "n2", "n3"])
        self.assertEqual(calls, [["scontrol", "show", "hostnames", "n[1-3]"]])

        def failing(argv, **kwargs):
            return subprocess.CompletedProcess(argv, 1, stdout="", stderr="Invalid node name")
        with self.assertRaisesRegex(SlurmError, "Invalid node name"):
            expand_hostnames("n[", run=failing)

        def missing(argv, **kwargs):
            raise FileNotFoundError(argv[0])
        with self.assertRaisesRegex(SlurmError, "scontrol is not on PATH"):
            expand_hostnames("n1", run=missing)

    def test_task_of_a_step(self):
        self.assertIsNone(slurm_task({}))
        self.assertIsNone(slurm_task({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}))  # batch
        task = slurm_task({"SLURM_PROCID": "3", "SLURM_NTASKS": "5", "SLURM_STEP_ID": "0"})
        self.assertEqual((task.procid, task.ntasks), (3, 5))
        with self.assertRaisesRegex(SlurmError, "not below"):
            slurm_task({"SLURM_PROCID": "5", "SLURM_NTASKS": "5", "SLURM_STEP_ID": "0"})
        with self.assertRaisesRegex(SlurmError, "not integers"):
            slurm_task({"SLURM_PROCID": "x", "SLURM_NTASKS": "5", "SLURM_STEP_ID": "0"})

    def test_tasks_per_node_and_the_workers_threads(self):
        self.assertEqual(tasks_per_node("2(x3),1"), [2, 2, 2, 1])
        self.assertEqual(tasks_per_node("5"), [5])
        with self.assertRaisesRegex(SlurmError, "'2x' is not N or N\\(xK\\)"):
            tasks_per_node("1,2x")
        nodes = ["n1", "n2"]
        # The scheduler's task on n1 is not counted.
        self.assertEqual(worker_threads_flag({"SLURM_STEP_TASKS_PER_NODE": "3(x2)"}, nodes, "n1"),
                         "--host_processes=2")
        self.assertEqual(worker_threads_flag({"SLURM_STEP_TASKS_PER_NODE": "3(x2)"}, nodes, "n2"),
                         "--host_processes=3")
        self.assertEqual(worker_threads_flag({"SLURM_CPUS_PER_TASK": "4",
                                              "SLURM_STEP_TASKS_PER_NODE": "3(x2)"}, nodes, "n2"),
                         "--compute_threads=4")
        self.assertEqual(worker_threads_flag({}, nodes, "n2"), "--host_processes=1")
        with self.assertRaisesRegex(SlurmError, "does not match the step's nodes n1,n2"):
            worker_threads_flag({"SLURM_TASKS_PER_NODE": "3"}, nodes, "n2")
        with self.assertRaisesRegex(SlurmError, "SLURM_CPUS_PER_TASK='0'"):
            worker_threads_flag({"SLURM_CPUS_PER_TASK": "0"}, nodes, "n2")

    def test_roles_by_task(self):
        self.assertEqual([task_role(i, 2, 2) for i in range(5)], [
            ("scheduler", 0), ("server", 0), ("server", 1), ("worker", 0), ("worker", 1)])
        with self.assertRaisesRegex(SlurmError, "task 5 has no role"):
            task_role(5, 2, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
