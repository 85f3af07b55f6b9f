"""Replays a node's stdout record stream into the launcher's run dir.

A node started on another host shares no filesystem with the launcher, so it
reports on stdout, one JSON object per line (launcher/node_main.cc and
ps/scheduler/result_files.h):

  {"node": {"pid": P, "pgid": G, "host": H}}   first, with --new_session;
  {"file": NAME, "write": TEXT}                the scheduler replaced NAME;
  {"file": NAME, "append": LINE}               it appended LINE to NAME.

Only the result files the scheduler writes are accepted (RESULT_FILES); any
other name, a malformed line, or text that is not a record is logged once
per kind and skipped: a confused node cannot write outside the run dir.
"""

import json

from .util import log, write_text_atomically

RESULT_FILES = ("scheduler.addr", "config.pbtxt", "cluster.json", "progress.jsonl",
                "summary.json", "metrics.jsonl")


class RecordSink:
    """Applies one node's records. `on_node` is called with the "node"
    object; `on_file` (optional) after each file record with its name.
    Called from one reader thread per node."""

    def __init__(self, run_dir, node_name, on_node, on_file=None, accept_files=False):
        self._run_dir = run_dir
        self._name = node_name
        self._on_node = on_node
        self._on_file = on_file
        self._accept_files = accept_files
        self._warned = set()

    def _warn(self, kind, message):
        if kind not in self._warned:
            self._warned.add(kind)
            log("%s: %s (further ones not shown)" % (self._name, message))

    def feed(self, line):
        text = line.decode("utf-8", "replace").strip()
        if not text:
            return
        try:
            record = json.loads(text)
        except ValueError:
            self._warn("text", "stdout line that is not a record: %r" % text[:200])
            return
        if not isinstance(record, dict):
            self._warn("shape", "stdout record that is not an object: %r" % text[:200])
            return
        if isinstance(record.get("node"), dict):
            self._on_node(record["node"])
            return
        name = record.get("file")
        if name is None:
            self._warn("unknown", "stdout record of no known kind: %r" % text[:200])
            return
        if not self._accept_files or name not in RESULT_FILES:
            self._warn("file", "refused a record for file %r" % (name,))
            return
        path = self._run_dir / name
        if isinstance(record.get("write"), str):
            write_text_atomically(path, record["write"])
        elif isinstance(record.get("append"), str):
            with open(path, "a") as f:
                f.write(record["append"] + "\n")
        else:
            self._warn("mode", "file record for %s with neither write nor append text" % name)
            return
        if self._on_file is not None:
            self._on_file(name)


def replay(stream, sink):
    """Feeds every line of a binary stream to `sink` until its end."""
    for line in iter(stream.readline, b""):
        try:
            sink.feed(line)
        except OSError as e:
            log("cannot write a record into the run dir: %s" % e)
    stream.close()


def copy_stream(stream, path):
    """Copies a binary stream into the file at `path` (appending) until its
    end, flushing every line: a node's log, streamed back."""
    with open(path, "ab") as out:
        for line in iter(stream.readline, b""):
            out.write(line)
            out.flush()
    stream.close()
