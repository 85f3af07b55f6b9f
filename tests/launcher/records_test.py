"""The record stream of a remote node (launcher/mtps_launch/records.py): result
files replayed into the run dir, the node record, and what is refused."""

import io
import json
import shutil
import tempfile
import unittest
from pathlib import Path

import launcher_path  # noqa: F401
from mtps_launch.records import RecordSink, copy_stream, replay


class RecordSinkTest(unittest.TestCase):

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="mtps-records-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.nodes = []
        self.files = []

    def sink(self, accept_files=True):
        return RecordSink(self.dir, "scheduler-0", self.nodes.append, self.files.append,
                          accept_files=accept_files)

    def stream(self, *records):
        return io.BytesIO(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n"
                                   for r in records))

    def test_writes_and_appends_are_replayed(self):
        replay(self.stream({"node": {"pid": 7, "pgid": 7, "host": "h"}},
                           {"file": "summary.json", "write": "{\"a\": 1}\n"},
                           {"file": "progress.jsonl", "append": "{\"t\": 1}"},
                           {"file": "progress.jsonl", "append": "{\"t\": 2}"},
                           {"file": "summary.json", "write": "{\"a\": 2}\n"}), self.sink())
        self.assertEqual(self.nodes, [{"pid": 7, "pgid": 7, "host": "h"}])
        self.assertEqual((self.dir / "summary.json").read_text(), "{\"a\": 2}\n")
        self.assertEqual((self.dir / "progress.jsonl").read_text(), "{\"t\": 1}\n{\"t\": 2}\n")
        self.assertEqual(self.files, ["summary.json", "progress.jsonl", "progress.jsonl",
                                      "summary.json"])

    def test_refuses_names_outside_the_result_files_and_garbage(self):
        replay(self.stream({"file": "../escape", "write": "x"},
                           {"file": "/etc/passwd", "append": "x"},
                           {"file": "notes.txt", "write": "x"},
                           {"file": "summary.json"},  # neither write nor append
                           [1, 2], b"not json \xff", {"other": 1}), self.sink())
        self.assertEqual(sorted(p.name for p in self.dir.iterdir()), [])
        self.assertFalse((self.dir.parent / "escape").exists())
        self.assertEqual(self.files, [])

    def test_only_the_scheduler_writes_files(self):
        replay(self.stream({"file": "summary.json", "write": "x"}), self.sink(accept_files=False))
        self.assertFalse((self.dir / "summary.json").exists())

    def test_copy_stream_appends_a_log(self):
        log = self.dir / "node.log"
        log.write_bytes(b"earlier\n")
        copy_stream(io.BytesIO(b"line 1\nline 2 without newline"), log)
        self.assertEqual(log.read_bytes(), b"earlier\nline 1\nline 2 without newline")


if __name__ == "__main__":
    unittest.main(verbosity=2)
