"""Small helpers shared by the launcher's modules: logging, exit codes,
atomic JSON files, exit-status text, log tails."""

import json
import os
import signal
import sys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 124
# mtps-node's exit code for an error that would repeat (launcher/node_main.cc).
NODE_EXIT_PERMANENT = 3


def log(message):
    print("mtps-launch: " + message, file=sys.stderr, flush=True)


def write_json_atomically(path, value):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def write_text_atomically(path, text):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def describe_exit(returncode):
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "signal %d" % -returncode
        return "killed by %s" % name
    return "exit code %d" % returncode


def tail(path, lines):
    """The last `lines` lines of a text file (empty list if unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]
