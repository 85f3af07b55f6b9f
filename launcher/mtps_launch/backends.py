"""Backends: where and how node processes run.

A backend starts a node from a NodeSpec and returns a handle with poll(),
returncode, signal(signum) and pid; it also says which flags its nodes need,
where their files go, and which of the job's processes are still running on
its hosts after a run (leftovers). The Job (job.py) does the rest the same
way for every backend.

  LocalBackend   children of the launcher on this machine, on 127.0.0.1,
                 writing into the run dir itself.
  RemoteBackend  each node started through a remote-exec command template
                 ({host} replaced; default `ssh -o BatchMode=yes {host}`,
                 tests use `ip netns exec {host}`, Slurm `srun ... -w {host}`).
                 No filesystem is assumed shared with the launcher: a node's
                 files go to its remote dir on its host, its stderr is
                 streamed into RUN_DIR/logs/NAME.log, and the scheduler
                 reports its result files on stdout (records.py). The config
                 and, with --secure, the node's keys travel with the start
                 command (the keys on stdin, never on a command line).
"""

import os
import shlex
import signal
import subprocess
import threading
import time

from .hosts import Host
from .records import RecordSink, copy_stream, replay
from .util import log

# How long a remote-exec helper (a signal, a leftover check) may take.
HELPER_TIMEOUT_SEC = 30.0
# After a node's process exits, how long its stdout may take to reach its end
# (its last records, e.g. summary.json, are still in the pipe).
STREAM_DRAIN_SEC = 10.0


class NodeSpec:
    """What to run for one node: its role, rank, host, argv and log file.

    argv[0] is the mtps-node binary. For a remote node, `work_dir` is its
    directory on its host, `files` maps file names (relative to work_dir) to
    text written there before it starts, `secret_files` the same for files
    that must not appear on a command line (sent on stdin), and `clean`
    paths (relative to work_dir) removed first.
    """

    def __init__(self, role, rank, argv, log_path, host=None, work_dir=None, files=None,
                 secret_files=None, clean=None):
        self.role = role
        self.rank = rank
        self.argv = argv
        self.log_path = log_path
        self.host = host
        self.work_dir = work_dir
        self.files = files or {}
        self.secret_files = secret_files or {}
        self.clean = clean or []

    @property
    def name(self):
        return "%s-%d" % (self.role, self.rank)


def leftover_pattern(job_id):
    # pgrep/pkill -f match this regex against whole command lines; the
    # bracket keeps the pattern from matching the shell that runs pgrep.
    return "[-]-job_id=%s( |$)" % job_id


# ---------------------------------------------------------------------------
# Local.
# ---------------------------------------------------------------------------


class LocalNode:
    """A node running as a child process of the launcher.

    Each child leads its own session (so its own process group): a Ctrl-C on
    the terminal reaches only the launcher, which then stops the nodes in
    order instead of all of them dying at once and reporting each other as
    failed. Signals go to the child's whole process group. As a second guard,
    nodes run with --exit_with_parent (PR_SET_PDEATHSIG), so even a SIGKILLed
    launcher leaves nothing behind.
    """

    def __init__(self, spec):
        self.spec = spec
        with open(spec.log_path, "wb") as log_file:
            self._popen = subprocess.Popen(
                spec.argv, stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self._popen.pid
        self.pgid = self.pid
        self.stopped_by_launcher = False

    def poll(self):
        """The exit status (negative: killed by that signal), or None."""
        return self._popen.poll()

    @property
    def returncode(self):
        return self._popen.returncode

    def signal(self, signum):
        # Safe against pid reuse: the process is not reaped until poll() sees
        # it exit, so its pid (and group id) still belong to it.
        if self._popen.poll() is not None:
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass


class LocalBackend:
    """Runs every node on this machine, on loopback addresses."""

    name = "local"
    shared_run_dir = True

    def __init__(self):
        self._host = Host("localhost", "127.0.0.1")

    def hosts(self):
        return [self._host]

    def node_flags(self, host):
        return ["--host=%s" % host.address, "--exit_with_parent"]

    def start(self, spec):
        return LocalNode(spec)

    def leftovers(self, job_id):
        return {self._host.name: _pgrep(["sh", "-c", _pgrep_script(job_id)])}

    def kill_leftovers(self, job_id):
        _run_helper(["sh", "-c", _pkill_script(job_id)])


# ---------------------------------------------------------------------------
# Remote.
# ---------------------------------------------------------------------------


def _pgrep_script(job_id):
    return "pgrep -a -f -- %s || true" % shlex.quote(leftover_pattern(job_id))


def _pkill_script(job_id):
    return "pkill -KILL -f -- %s || true" % shlex.quote(leftover_pattern(job_id))


def _run_helper(argv):
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=HELPER_TIMEOUT_SEC, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        log("%s: %s" % (" ".join(argv[:6]), e))
        return None


def _pgrep(argv):
    result = _run_helper(argv)
    if result is None:
        return ["(cannot check: %s did not run)" % argv[0]]
    return [line for line in result.stdout.splitlines() if line.strip()]


class RemoteExec:
    """A remote-exec command template: how to run a shell script on a host.

    The template is split like a shell command line and {host} replaced in
    each word. The script then goes after it as `sh -c SCRIPT` (for commands
    that run their arguments, like `ip netns exec {host}` or `srun`), except
    that after `ssh` it goes as one word, which ssh hands to the remote
    shell. A template with a {command} word puts the script, quoted as one
    shell word, exactly there instead.
    """

    def __init__(self, template):
        self.template = template
        words = shlex.split(template)
        if not words:
            raise ValueError("--remote-exec is empty")
        self._words = words

    def argv(self, host, script):
        words = [w.replace("{host}", host.name) for w in self._words]
        if any("{command}" in w for w in words):
            return [w.replace("{command}", shlex.quote(script)) for w in words]
        if os.path.basename(words[0]) == "ssh":
            return words + [script]
        return words + ["sh", "-c", script]


class RemoteNode:
    """A node started through a remote-exec command.

    The local process (the ssh client, ip netns exec, srun) lives as long as
    the node; its stdin stays open and is never written after the secret
    files, so the node (--exit_on_stdin_eof) exits when the launcher or its
    connection goes. The node leads its own session on its host and reports
    its process group first thing on stdout; signals go to that group
    through a second remote-exec (`kill -s SIG -- -PGID`), SIGKILL also to
    the local process.
    """

    def __init__(self, backend, spec, on_file):
        self.spec = spec
        self._backend = backend
        self.pgid = None
        self.remote_pid = None
        self.stopped_by_launcher = False
        self._drained = False
        self._helpers = []
        script = self._script()
        argv = backend.remote_exec.argv(spec.host, script)
        self.launch_argv = argv
        self._popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, start_new_session=True)
        self.pid = self._popen.pid
        sink = RecordSink(spec.log_path.parent.parent, spec.name, self._on_node,
                          on_file=on_file, accept_files=spec.role == "scheduler")
        self._stdout = threading.Thread(target=replay, args=(self._popen.stdout, sink),
                                        daemon=True)
        self._stderr = threading.Thread(target=copy_stream,
                                        args=(self._popen.stderr, spec.log_path), daemon=True)
        self._stdout.start()
        self._stderr.start()
        try:
            for name in sorted(spec.secret_files):
                self._popen.stdin.write(spec.secret_files[name].encode())
            self._popen.stdin.flush()
        except OSError:
            pass  # The node died at once; poll() tells.

    def _script(self):
        spec = self.spec
        q = shlex.quote
        lines = ["set -e", "umask 077", "mkdir -p %s" % q(spec.work_dir), "cd %s" % q(spec.work_dir)]
        for name in spec.clean:
            lines.append("rm -rf -- %s" % q(name))
        for name, text in sorted(spec.files.items()):
            lines.append("mkdir -p %s" % q(os.path.dirname(name) or "."))
            lines.append("printf '%%s' %s > %s" % (q(text), q(name)))
        for name in sorted(spec.secret_files):
            size = len(spec.secret_files[name].encode())
            lines.append("mkdir -p %s" % q(os.path.dirname(name) or "."))
            # head -c reads exactly these bytes: the rest of stdin stays open
            # for the node.
            lines.append("head -c %d > %s" % (size, q(name)))
        lines.append("exec " + " ".join(q(a) for a in spec.argv))
        return "\n".join(lines)

    def _on_node(self, node):
        try:
            self.remote_pid = int(node.get("pid"))
            self.pgid = int(node.get("pgid"))
        except (TypeError, ValueError):
            log("%s: a node record without a pid/pgid: %r" % (self.spec.name, node))

    def poll(self):
        self._helpers = [h for h in self._helpers if h.poll() is None]
        rc = self._popen.poll()
        if rc is None:
            return None
        if not self._drained:
            # The last records (the summary) and log lines are in the pipes.
            self._stdout.join(STREAM_DRAIN_SEC)
            self._stderr.join(STREAM_DRAIN_SEC)
            self._drained = True
            try:
                self._popen.stdin.close()
            except OSError:
                pass
        return rc

    @property
    def returncode(self):
        return self._popen.returncode if self._drained else None

    def signal(self, signum):
        if self._popen.poll() is not None:
            return
        if self.pgid is not None:
            script = "kill -s %s -- -%d 2>/dev/null || true" % (
                signal.Signals(signum).name[3:], self.pgid)
            try:
                self._helpers.append(subprocess.Popen(
                    self._backend.remote_exec.argv(self.spec.host, script),
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True))
            except OSError as e:
                log("cannot signal %s: %s" % (self.spec.name, e))
        if self.pgid is None or signum == signal.SIGKILL:
            # Not known yet, or no more grace: end the local process, which
            # closes the node's stdin (it exits by itself).
            try:
                os.killpg(self.pid, signal.SIGKILL if signum == signal.SIGKILL else signum)
            except ProcessLookupError:
                pass

    def wait_helpers(self, limit):
        for helper in self._helpers:
            try:
                helper.wait(max(0.0, limit - time.monotonic()))
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait()
        self._helpers = []


class RemoteBackend:
    """Runs each node on its host through a remote-exec template (see the
    module comment). `hosts`: the Host list; `remote_dir`: a node's directory
    on its host, {host} replaced (default RUN_DIR/hosts/{host});
    `remote_binary`: mtps-node's path on the hosts."""

    shared_run_dir = False

    def __init__(self, name, template, hosts, remote_dir=None, remote_binary=None):
        self.name = name
        self.remote_exec = RemoteExec(template)
        self._hosts = hosts
        self._remote_dir = remote_dir
        self.remote_binary = remote_binary
        self._on_file = None

    def hosts(self):
        return self._hosts

    def set_file_listener(self, on_file):
        self._on_file = on_file

    def node_dir(self, run_dir, host):
        template = self._remote_dir or str(run_dir / "hosts" / "{host}")
        return template.replace("{host}", host.name)

    def node_flags(self, host):
        return ["--bind=%s" % host.address, "--advertise=%s" % host.address, "--new_session",
                "--exit_on_stdin_eof"]

    def start(self, spec):
        return RemoteNode(self, spec, self._on_file)

    def leftovers(self, job_id):
        found = {}
        for host in self._hosts:
            found[host.name] = _pgrep(self.remote_exec.argv(host, _pgrep_script(job_id)))
        return found

    def kill_leftovers(self, job_id):
        for host in self._hosts:
            _run_helper(self.remote_exec.argv(host, _pkill_script(job_id)))
