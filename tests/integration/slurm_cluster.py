"""A real Slurm cluster on network namespaces, for the Slurm integration test.

SlurmCluster(topology, dir) runs slurmctld in the first namespace and one
slurmd per namespace (slurmd -N NAME; node NAME at the namespace's address),
all from Debian's slurm-wlm, with a slurm.conf of its own in `dir`
(SLURM_CONF; auth/none, so no munge; proctrack/pgid; nothing outside dir).
The ports are Slurm's defaults: each namespace has its own, so parallel tests
cannot collide. `ip netns exec` gives each command a fresh /sys without the
machine's cgroup mounts, which slurmd needs: they are mounted again first
(the same hierarchies, as /proc/mounts lists them). The daemons die with the
namespaces (netns.Topology.remove kills what runs in them).
"""

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import netns

DAEMONS = ("slurmctld", "slurmd", "salloc", "srun", "sinfo", "scontrol")


def available():
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        return False, "Slurm (slurm-wlm) is not installed: no %s" % ", ".join(missing)
    return netns.available()


def cgroup_script():
    """Shell lines that mount this machine's cgroup hierarchies again."""
    lines = []
    with open("/proc/mounts") as f:
        mounts = [line.split() for line in f]
    for device, point, kind, options, *_ in mounts:
        if not point.startswith("/sys/fs/cgroup"):
            continue
        if kind == "tmpfs" and point == "/sys/fs/cgroup":
            lines.append("mount -t tmpfs tmpfs /sys/fs/cgroup")
        elif kind == "cgroup":
            keep = ",".join(o for o in options.split(",")
                            if o not in ("rw", "ro", "relatime", "nosuid", "nodev", "noexec"))
            lines.append("mkdir -p %s && mount -t cgroup -o %s cgroup %s" %
                         (shlex.quote(point), shlex.quote(keep or "none"), shlex.quote(point)))
        elif kind == "cgroup2":
            lines.append("mkdir -p %s && mount -t cgroup2 none %s" %
                         (shlex.quote(point), shlex.quote(point)))
    return "\n".join(lines)


class SlurmCluster:
    def __init__(self, topology, directory):
        self.topology = topology
        self.dir = directory
        self.conf = directory / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        # slurmd's step sockets live in its spool dir and a Unix socket path
        # has at most 108 bytes: the spools get a short dir of their own.
        self.spool = Path(tempfile.mkdtemp(prefix="mtps-sl-", dir="/tmp"))

    def remove(self):
        shutil.rmtree(self.spool, ignore_errors=True)

    def write_conf(self):
        d = self.dir
        controller = socket.gethostname()
        lines = [
            "ClusterName=mtps",
            "SlurmctldHost=%s(%s)" % (controller, self.topology.addresses[0]),
            "AuthType=auth/none", "CredType=cred/none",
            "SlurmUser=root", "SlurmdUser=root",
            "StateSaveLocation=%s/state" % d,
            "SlurmdSpoolDir=%s/%%n" % self.spool,
            "SlurmctldPidFile=%s/slurmctld.pid" % d,
            "SlurmdPidFile=%s/slurmd-%%n.pid" % d,
            "SlurmctldLogFile=%s/slurmctld.log" % d,
            "SlurmdLogFile=%s/slurmd-%%n.log" % d,
            "ProctrackType=proctrack/pgid", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "ReturnToService=2", "MpiDefault=none", "MailProg=/bin/true",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
        ]
        for host, address in zip(self.topology.hosts, self.topology.addresses):
            lines.append("NodeName=%s NodeAddr=%s CPUs=2 State=UNKNOWN" % (host, address))
        lines.append("PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP "
                     "OverSubscribe=FORCE:8")
        self.conf.write_text("\n".join(lines) + "\n")
        (d / "state").mkdir(exist_ok=True)
        for host in self.topology.hosts:
            (self.spool / host).mkdir(exist_ok=True)

    def exec_argv(self, host, argv):
        """argv run in namespace `host` with the cgroups mounted and SLURM_CONF."""
        script = cgroup_script() + "\nexec " + " ".join(shlex.quote(a) for a in argv)
        return [netns.IP, "netns", "exec", host, "sh", "-c", script]

    def start(self, timeout=60):
        self.write_conf()
        subprocess.run(self.exec_argv(self.topology.hosts[0],
                                      ["slurmctld", "-c", "-f", str(self.conf)]),
                       env=self.env, check=True, timeout=60, capture_output=True)
        for host in self.topology.hosts:
            subprocess.run(self.exec_argv(host, ["slurmd", "-f", str(self.conf), "-N", host]),
                           env=self.env, check=True, timeout=60, capture_output=True)
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            if self.idle_nodes() == len(self.topology.hosts):
                return
            time.sleep(0.2)
        raise RuntimeError("the Slurm nodes did not come up within %d s: %s\n%s" % (
            timeout, self.sinfo(), self.logs()))

    def sinfo(self):
        result = subprocess.run(self.exec_argv(self.topology.hosts[0],
                                               ["sinfo", "-h", "-N", "-o", "%N %t"]),
                                env=self.env, capture_output=True, text=True, timeout=20)
        return result.stdout + result.stderr

    def idle_nodes(self):
        return sum(1 for line in self.sinfo().splitlines() if line.split()[-1:] == ["idle"])

    def logs(self):
        parts = []
        for log in sorted(self.dir.glob("*.log")):
            parts.append("--- %s\n%s" % (log.name, "\n".join(
                log.read_text(errors="replace").splitlines()[-10:])))
        return "\n".join(parts)
