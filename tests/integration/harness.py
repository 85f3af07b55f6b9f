"""Shared helpers of the multi-process integration tests.

Each test script is run by CTest as
  /usr/bin/python3 <script> <path of launcher/mtps-launch> <path of mtps-node>
and starts real clusters through the launcher, each in its own temporary run
directory. Set MTPS_KEEP_RUN_DIRS=1 to keep the run directories for debugging.
"""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"

# Filled in by main() from the command line.
LAUNCHER = None
BINARY = None


def main():
    """unittest.main() after taking the launcher and binary paths off argv."""
    global LAUNCHER, BINARY
    if len(sys.argv) < 3:
        sys.exit("usage: %s LAUNCHER MTPS_NODE [unittest args]" % sys.argv[0])
    LAUNCHER, BINARY = sys.argv[1], sys.argv[2]
    del sys.argv[1:3]
    unittest.main(verbosity=2)


class RunDirTestCase(unittest.TestCase):
    """A test case with a fresh temporary directory in self.tmp."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="mtps-it-%s-" % self._testMethodName))
        self.addCleanup(self._remove_tmp)

    def _remove_tmp(self):
        if os.environ.get("MTPS_KEEP_RUN_DIRS"):
            print("kept %s" % self.tmp, file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def launch_argv(self, config, servers, workers, run_dir, extra=(), backend=("local",)):
        """mtps-launch BACKEND... with the job's arguments; `backend` is the
        subcommand and its own options (e.g. ("ssh", "--hostfile", FILE))."""
        return [sys.executable, LAUNCHER] + list(backend) + ["--config", str(config), "--servers",
                str(servers), "--workers", str(workers), "--run-dir", str(run_dir),
                "--binary", BINARY, "--quiet"] + list(extra)

    def run_launcher(self, config, servers, workers, run_dir, extra=(), timeout=600,
                     backend=("local",)):
        """Runs a job to its end; returns the CompletedProcess (text output).

        The launcher gets --timeout so that it, not this test, stops the
        nodes if the job hangs; the subprocess timeout is a last guard.
        """
        argv = self.launch_argv(config, servers, workers, run_dir,
                                list(extra) + ["--timeout", str(timeout)], backend)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout + 60)

    def start_launcher(self, config, servers, workers, run_dir, extra=(), timeout=600,
                       backend=("local",)):
        """Starts a job in the background (its own session, output to
        self.tmp/<run dir name>.out); the cleanup SIGKILLs whatever is left."""
        out = open(self.tmp / ("%s.out" % run_dir.name), "w")
        self.addCleanup(out.close)
        argv = self.launch_argv(config, servers, workers, run_dir,
                                list(extra) + ["--timeout", str(timeout)], backend)
        launcher = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(self._kill_launcher, launcher)
        return launcher

    def _kill_launcher(self, launcher):
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()

    def launcher_output(self, run_dir):
        """What a start_launcher job printed so far."""
        return (self.tmp / ("%s.out" % run_dir.name)).read_text(errors="replace")

    def assert_nothing_left(self, run_dir):
        """No node of this run is alive: neither a pid from launch.json nor
        any process whose command line names the run dir."""
        launch = read_json(run_dir / "launch.json")
        pids = [node["pid"] for node in launch["nodes"]]
        self.assertTrue(pids, "launch.json lists no nodes")
        alive = [pid for pid in pids if process_alive(pid)]
        self.assertEqual(alive, [], "nodes still alive after the launcher exited")
        self.assertEqual(processes_mentioning(str(run_dir)), [],
                         "processes naming the run dir still alive")


def describe(result, run_dir):
    """Launcher output and log tails, for assertion messages."""
    parts = ["launcher exit code %s" % result.returncode,
             "--- launcher stdout:\n" + (result.stdout or ""),
             "--- launcher stderr:\n" + (result.stderr or "")]
    logs = Path(run_dir) / "logs"
    if logs.is_dir():
        for log in sorted(logs.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            parts.append("--- %s (last lines):\n%s" % (log.name, "\n".join(lines)))
    return "\n".join(parts)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_progress(path, events=False):
    """The progress records of a progress.jsonl (every line must be a JSON
    object); with events=True, the event lines ({"event": ...}) instead."""
    records = []
    with open(path) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                if ("event" in record) == events:
                    records.append(record)
    return records


def node_pid(run_dir, name):
    """The pid of node `name` ("server-1") of the run's latest attempt."""
    role, rank = name.rsplit("-", 1)
    nodes = read_json(Path(run_dir) / "launch.json")["nodes"]
    return [n["pid"] for n in nodes if n["role"] == role and n["rank"] == int(rank)][-1]


def process_alive(pid):
    """True if pid is a live (not zombie) mtps-node process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X") and b"mtps-node" in cmdline


def processes_mentioning(text):
    """Pids of live processes (other than this one) whose argv contains text."""
    needle = text.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmdline = f.read()
            with open("/proc/%s/stat" % entry) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in cmdline and state not in ("Z", "X"):
            found.append(int(entry))
    return found


def wait_for(predicate, timeout, interval=0.1):
    """Polls predicate until it is true or timeout seconds pass."""
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- Reading configs and data files (as the nodes do, independently) -------


def config_text(config_path):
    """A .pbtxt without its whole-line comments."""
    return re.sub(r"^\s*#.*$", "", Path(config_path).read_text(), flags=re.M)


def config_string(config_path, field):
    """The string value of `field: "..."` in a .pbtxt (first occurrence)."""
    text = config_text(config_path)
    match = re.search(r'\b%s\s*:\s*"((?:[^"\\]|\\.)*)"' % re.escape(field), text)
    return match.group(1) if match else None


def config_int(config_path, field):
    """The integer value of `field: N` in the config (first occurrence)."""
    match = re.search(r"\b%s\s*:\s*(\d+)" % field, config_text(config_path))
    if match is None:
        raise AssertionError("%s has no %s" % (config_path, field))
    return int(match.group(1))


def expected_work(config_path, workers, epochs=None):
    """(examples, batches) of a whole job, from the data itself: worker w
    trains the lines i with i % workers == w, in batches of
    train.batch_size, every epoch (the config's train.epochs unless given).
    With train.counter_key set, batches is also the counter's exact value."""
    path = config_data_path(config_path, "train_path")
    with open_text(path) as f:
        lines = sum(1 for line in f if line.strip())
    batch = config_int(config_path, "batch_size")
    epochs = config_int(config_path, "epochs") if epochs is None else epochs
    shares = [len(range(w, lines, workers)) for w in range(workers)]
    return epochs * lines, epochs * sum((n + batch - 1) // batch for n in shares)


def config_data_path(config_path, field):
    """data.<field> of a config, resolved against the config's directory."""
    value = config_string(config_path, field)
    if value is None:
        raise AssertionError("%s has no %s" % (config_path, field))
    path = Path(value)
    return path if path.is_absolute() else Path(config_path).resolve().parent / path


def config_labels(config_path):
    """{label name: column} of a config's data.labels blocks."""
    text = config_text(config_path)
    labels = {}
    for block in re.findall(r"\blabels\s*\{([^}]*)\}", text):
        name = re.search(r'\bname\s*:\s*"([^"]*)"', block)
        column = re.search(r'\bcolumn\s*:\s*"([^"]*)"', block)
        if name and column:
            labels[name.group(1)] = column.group(1)
    return labels


def open_text(path):
    """Opens a plain or gzip text file (told apart by content, like the readers)."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt")
    return open(path)


def data_lines(path):
    """The non-empty lines of a data file."""
    with open_text(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]
