"""The progress line: follows RUN_DIR/progress.jsonl (written by the
scheduler, or replayed from its stream) and shows the newest record — on a
terminal one line redrawn in place, otherwise a plain line every few
seconds, nothing with --quiet. Writes to stderr."""

import json
import shutil
import sys
import time

# Progress lines when stderr is not a terminal: at most one per this period.
PLAIN_PROGRESS_PERIOD_SEC = 5.0


class ProgressReader:
    """Follows DIR/progress.jsonl; returns the new complete records."""

    def __init__(self, path):
        self._path = path
        self._offset = 0
        self._partial = b""

    def poll(self):
        try:
            with open(self._path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # An incomplete last line waits.
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


def format_progress(record):
    parts = []
    if isinstance(record.get("t"), (int, float)):
        parts.append("%7.1fs" % record["t"])
    if "examples" in record:
        parts.append("examples %s" % format_count(record["examples"]))
    if isinstance(record.get("examples_per_sec"), (int, float)):
        parts.append("%s ex/s" % format_count(round(record["examples_per_sec"])))
    loss = record.get("loss")
    if isinstance(loss, dict) and loss:
        parts.append("loss " + " ".join(
            "%s=%s" % (task, format_float(value)) for task, value in loss.items()))
    if "workers_done" in record and "num_workers" in record:
        parts.append("workers done %s/%s" % (record["workers_done"], record["num_workers"]))
    return "  ".join(parts)


def format_count(value):
    return "{:,}".format(value) if isinstance(value, int) else str(value)


def format_float(value):
    return "%.4f" % value if isinstance(value, (int, float)) else str(value)


class ProgressDisplay:
    """A `\\r`-updated line on a terminal, a plain line every few seconds
    otherwise, nothing when quiet. Writes to stderr."""

    def __init__(self, quiet):
        self._quiet = quiet
        self._tty = sys.stderr.isatty()
        self._last_plain = 0.0
        self._pending = None
        self._line_open = False

    def show(self, record):
        if self._quiet:
            return
        text = format_progress(record)
        if self._tty:
            # Cut to the terminal width: a wrapped line cannot be redrawn by \r.
            width = shutil.get_terminal_size().columns
            sys.stderr.write("\r\x1b[K" + text[:max(width - 1, 20)])
            sys.stderr.flush()
            self._line_open = True
        else:
            self._pending = text
            self._flush_plain(force=False)

    def _flush_plain(self, force):
        now = time.monotonic()
        if self._pending is not None and (force or now - self._last_plain >= PLAIN_PROGRESS_PERIOD_SEC):
            print(self._pending, file=sys.stderr, flush=True)
            self._pending = None
            self._last_plain = now

    def finish(self):
        """Ends the progress line so that what follows starts on a new one."""
        if self._quiet:
            return
        if self._line_open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._line_open = False
        self._flush_plain(force=True)


