"""Network namespaces as hosts, for the multi-host integration tests.

Topology(n) makes n "hosts": network namespaces mtps<pid>-h0..h{n-1}, each
with loopback and one veth interface (eth0) holding 10.<a>.<b>.<k+1>/24,
their peers on a bridge in a namespace of its own (mtps<pid>-br). Every
address lives inside the namespaces: the machine's own network is not
touched. remove() deletes them all (and with them the veths); it runs from
the tests' cleanups, so the namespaces go even when a test fails.
Namespaces of earlier runs whose creating process is gone are removed first.

Needs root and iproute2 (`ip`).
"""

import os
import re
import signal
import subprocess

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "ip"
_NAME = re.compile(r"^mtps(\d+)-(h\d+|br)$")


def _ip(*args, check=True):
    return subprocess.run([IP] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30, check=check)


def available():
    """(True, "") when namespaces can be made here, else (False, why)."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    try:
        _ip("netns", "list")
    except (OSError, subprocess.CalledProcessError) as e:
        return False, "ip netns does not work here: %s" % e
    return True, ""


def list_namespaces():
    out = _ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def remove_stale():
    """Deletes mtps<pid>-* namespaces whose pid is not alive."""
    for name in list_namespaces():
        match = _NAME.match(name)
        if match and not os.path.exists("/proc/%s" % match.group(1)):
            _ip("netns", "del", name, check=False)


class Topology:
    def __init__(self, count, tag=0):
        # The subnet from the pid and a per-test tag: parallel tests do not
        # collide (each namespace set is separate anyway; distinct subnets
        # keep the logs unambiguous).
        self.prefix = "mtps%d" % os.getpid()
        if tag:
            self.prefix += "t%d" % tag
        subnet = (os.getpid() * 7 + tag) % 250
        self.hosts = ["%s-h%d" % (self.prefix, k) for k in range(count)]
        self.addresses = ["10.%d.%d.%d" % (200 + tag % 50, subnet, k + 1) for k in range(count)]
        self.bridge = "%s-br" % self.prefix
        self._made = []

    def create(self):
        remove_stale()
        try:
            self._add(self.bridge)
            _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.bridge, "link", "set", "br0", "up")
            for k, (host, address) in enumerate(zip(self.hosts, self.addresses)):
                self._add(host)
                veth = "v%d" % k
                _ip("-n", self.bridge, "link", "add", veth, "type", "veth", "peer", "name",
                    "eth0", "netns", host)
                _ip("-n", self.bridge, "link", "set", veth, "master", "br0", "up")
                _ip("-n", host, "addr", "add", address + "/24", "dev", "eth0")
                _ip("-n", host, "link", "set", "eth0", "up")
                _ip("-n", host, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as e:
            self.remove()
            raise RuntimeError("cannot make the namespaces: %s: %s" %
                               (" ".join(e.cmd), e.stderr.strip()))
        return self

    def _add(self, name):
        _ip("netns", "add", name)
        self._made.append(name)

    def hostfile(self, slots=None):
        extra = " slots=%d" % slots if slots else ""
        return "".join("%s %s%s\n" % (h, a, extra) for h, a in zip(self.hosts, self.addresses))

    def pids(self, host):
        """Pids of the processes in namespace `host`."""
        out = _ip("netns", "pids", host, check=False).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    def remove(self):
        """Kills whatever still runs in the namespaces, then deletes them
        (a namespace with a process in it would outlive its name)."""
        for name in reversed(self._made):
            for pid in self.pids(name):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _ip("netns", "del", name, check=False)
        self._made = []
