"""Hosts and placement: which host each node of a job runs on.

A hostfile (mtps-launch ssh --hostfile FILE) has one host per line:

    HOST [ADDRESS] [slots=N]     # comments and blank lines are ignored

HOST is what the remote-exec command is given ({host}: an ssh destination, a
network namespace, a Slurm node name). ADDRESS, default HOST, is where the
other nodes reach that host: nodes there bind and advertise it. slots=N
caps the servers and workers placed there (the scheduler, which is light,
is not counted); without it a host takes any number.

Placement: the scheduler on the first host; servers, then workers, dealt
round-robin over the hosts starting from the second (so with three or more
hosts the scheduler's host is the last to get a server), skipping full ones.
"""

import re
import subprocess


class HostfileError(ValueError):
    """A hostfile line that cannot be used; the message names the line."""


class Host:
    def __init__(self, name, address=None, slots=None):
        self.name = name
        self.address = address or name
        self.slots = slots  # None: no limit

    def __repr__(self):
        return "Host(%r, %r, %r)" % (self.name, self.address, self.slots)

    def to_json(self):
        return {"host": self.name, "address": self.address, "slots": self.slots}


_NAME = re.compile(r"^[A-Za-z0-9_.@:\[\]%-]+$")


def parse_hostfile(text, source="hostfile"):
    """The hosts of a hostfile's text, in order; HostfileError names the
    line (source:N) and what is wrong with it."""
    hosts = []
    seen = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = "%s:%d" % (source, number)
        words = line.split()
        name, rest = words[0], words[1:]
        if "=" in name or not _NAME.match(name):
            raise HostfileError("%s: %r is not a host name" % (where, name))
        address, slots = None, None
        for word in rest:
            if word.startswith("slots="):
                value = word[len("slots="):]
                if not value.isdigit() or int(value) < 1:
                    raise HostfileError("%s: slots must be a positive integer, got %r" %
                                        (where, value))
                if slots is not None:
                    raise HostfileError("%s: slots given twice" % where)
                slots = int(value)
            elif "=" in word:
                raise HostfileError("%s: unknown option %r (expected slots=N)" % (where, word))
            elif address is None and slots is None:
                if not _NAME.match(word):
                    raise HostfileError("%s: %r is not an address" % (where, word))
                address = word
            else:
                raise HostfileError("%s: unexpected %r (expected HOST [ADDRESS] [slots=N])" %
                                    (where, word))
        if name in seen:
            raise HostfileError("%s: host %s is listed twice" % (where, name))
        seen.add(name)
        hosts.append(Host(name, address, slots))
    if not hosts:
        raise HostfileError("%s: no hosts" % source)
    return hosts


def place(hosts, servers, workers):
    """{(role, rank): Host} for a scheduler, `servers` servers and `workers`
    workers (see the module comment); ValueError when the slots are too few."""
    capacity = sum(h.slots for h in hosts) if all(h.slots is not None for h in hosts) else None
    if capacity is not None and capacity < servers + workers:
        raise ValueError("the hosts have %d slots for %d servers and %d workers" %
                         (capacity, servers, workers))
    placement = {("scheduler", 0): hosts[0]}
    used = [0] * len(hosts)
    cursor = 1 % len(hosts)
    for role, count in (("server", servers), ("worker", workers)):
        for rank in range(count):
            while hosts[cursor].slots is not None and used[cursor] >= hosts[cursor].slots:
                cursor = (cursor + 1) % len(hosts)
            placement[(role, rank)] = hosts[cursor]
            used[cursor] += 1
            cursor = (cursor + 1) % len(hosts)
    return placement


def format_placement(placement):
    """One line per host: 'HOST (ADDRESS): scheduler, server-0, worker-1'."""
    by_host = {}
    for (role, rank), host in placement.items():
        by_host.setdefault(host.name, (host, []))[1].append("%s-%d" % (role, rank))
    lines = []
    for host, names in by_host.values():
        where = host.name if host.address == host.name else "%s (%s)" % (host.name, host.address)
        lines.append("%s: %s" % (where, ", ".join(n.replace("scheduler-0", "scheduler")
                                                   for n in names)))
    return lines


# ---------------------------------------------------------------------------
# Slurm.
# ---------------------------------------------------------------------------


class SlurmError(ValueError):
    """The Slurm environment is missing or inconsistent; the message says what."""


def slurm_nodelist(env):
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise SlurmError("not inside a Slurm allocation: SLURM_JOB_NODELIST is not set "
                         "(run under salloc, sbatch or srun)")
    return nodelist


def expand_hostnames(nodelist, run=subprocess.run):
    """The host names of a Slurm node list ('n[1-3],m7'), in order, from
    `scontrol show hostnames`."""
    try:
        result = run(["scontrol", "show", "hostnames", nodelist], stdin=subprocess.DEVNULL,
                     capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise SlurmError("scontrol is not on PATH (needed to expand %r)" % nodelist)
    except subprocess.TimeoutExpired:
        raise SlurmError("scontrol show hostnames %s did not answer within 30 s" % nodelist)
    if result.returncode != 0:
        raise SlurmError("scontrol show hostnames %s failed: %s" %
                         (nodelist, result.stderr.strip()))
    names = result.stdout.split()
    if not names:
        raise SlurmError("scontrol show hostnames %s printed no hosts" % nodelist)
    return names


def node_addresses(names, run=subprocess.run):
    """{name: NodeAddr} of Slurm nodes (`scontrol show node -o NAME`): where
    slurmctld reaches each, which is where the other nodes of the job will.
    A node without a NodeAddr line keeps its name."""
    addresses = {}
    for name in names:
        try:
            result = run(["scontrol", "show", "node", "-o", name], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=30)
        except (FileNotFoundError, subprocess.TimeoutExpired) as e:
            raise SlurmError("scontrol show node %s: %s" % (name, e))
        if result.returncode != 0:
            raise SlurmError("scontrol show node %s failed: %s" % (name, result.stderr.strip()))
        match = re.search(r"(?:^|\s)NodeAddr=(\S+)", result.stdout)
        addresses[name] = match.group(1) if match else name
    return addresses


def slurm_hosts(env, run=subprocess.run):
    """The Hosts of the allocation in `env`, in Slurm's order, each at its
    NodeAddr."""
    names = expand_hostnames(slurm_nodelist(env), run=run)
    addresses = node_addresses(names, run=run)
    return [Host(name, addresses[name]) for name in names]


class SlurmTask:
    """This process's place in an srun step: SLURM_PROCID of SLURM_NTASKS."""

    def __init__(self, procid, ntasks):
        self.procid = procid
        self.ntasks = ntasks


def slurm_task(env):
    """The SlurmTask of an srun step with more than one task, else None
    (the launcher then runs once and starts the nodes itself)."""
    if "SLURM_PROCID" not in env or "SLURM_STEP_ID" not in env and "SLURM_STEPID" not in env:
        return None
    try:
        procid = int(env["SLURM_PROCID"])
        ntasks = int(env.get("SLURM_NTASKS") or env.get("SLURM_NPROCS") or "")
    except ValueError:
        raise SlurmError("SLURM_PROCID=%r / SLURM_NTASKS=%r are not integers" %
                         (env.get("SLURM_PROCID"), env.get("SLURM_NTASKS")))
    if ntasks < 2:
        return None
    if not 0 <= procid < ntasks:
        raise SlurmError("SLURM_PROCID %d is not below SLURM_NTASKS %d" % (procid, ntasks))
    return SlurmTask(procid, ntasks)


def task_role(procid, servers, workers):
    """(role, rank) of task `procid` in a step of 1 + servers + workers tasks:
    task 0 the scheduler, then the servers, then the workers."""
    if procid == 0:
        return ("scheduler", 0)
    if procid <= servers:
        return ("server", procid - 1)
    if procid <= servers + workers:
        return ("worker", procid - 1 - servers)
    raise SlurmError("task %d has no role: the job has 1 + %d + %d nodes" %
                     (procid, servers, workers))


def tasks_per_node(spec):
    """Slurm's tasks-per-node list ('2(x3),1', SLURM_STEP_TASKS_PER_NODE) as
    one count per node of the step: [2, 2, 2, 1]."""
    counts = []
    for item in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", item)
        if not match:
            raise SlurmError("tasks per node %r: %r is not N or N(xK)" % (spec, item))
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def worker_threads_flag(env, nodes, me):
    """The mtps-node flag that sizes the towers' threads of a worker task on
    node `me` (nodes: the step's node names, the scheduler on the first):
    --compute_threads from SLURM_CPUS_PER_TASK when the step sets it, else
    --host_processes, the servers and workers of the step on `me`."""
    cpus = env.get("SLURM_CPUS_PER_TASK")
    if cpus:
        if not cpus.isdigit() or int(cpus) < 1:
            raise SlurmError("SLURM_CPUS_PER_TASK=%r is not a positive integer" % cpus)
        return "--compute_threads=%d" % int(cpus)
    spec = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
    if not spec:
        return "--host_processes=1"
    counts = tasks_per_node(spec)
    if me not in nodes or len(counts) != len(nodes):
        raise SlurmError("tasks per node %r does not match the step's nodes %s" %
                         (spec, ",".join(nodes)))
    here = counts[nodes.index(me)] - (1 if me == nodes[0] else 0)
    return "--host_processes=%d" % max(1, here)
