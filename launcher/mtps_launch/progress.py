"""The progress line: follows RUN_DIR/progress.jsonl (written by the
scheduler, or replayed from its stream) and shows the newest record — on a
terminal one line redrawn in place, otherwise a plain line every few
seconds, nothing with --quiet. Writes to stderr.

The line: time, examples, examples/s, epoch E/N, ETA, loss per task,
workers done. The ETA is the examples left (examples_total - examples)
over the rate of the last ETA_WINDOW_SEC of progress; records of runs
before "epoch", "epochs" and "examples_total" existed show no epoch and no
ETA, and until the scheduler knows examples_total (after the first epoch)
the line says "ETA after epoch 1". Epoch and ETA come before the losses so
that a narrow terminal, which cuts the line, cuts the losses first."""

import collections
import json
import math
import shutil
import sys
import time

# Progress lines when stderr is not a terminal: at most one per this period.
PLAIN_PROGRESS_PERIOD_SEC = 5.0
# The ETA's rate: examples per second over about this much recent progress
# (smooths the per-interval rate, still follows a job that slows down).
ETA_WINDOW_SEC = 30.0
# An ETA beyond this is shown as ">999:00:00" (a rate near zero).
MAX_ETA_SEC = 999 * 3600


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


def number(value):
    """value if it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


class RecentRate:
    """Examples per second over the last `window` seconds of progress
    records (their "t" and "examples"). A record whose t or examples go
    back (a restarted scheduler) starts the window again."""

    def __init__(self, window=ETA_WINDOW_SEC):
        self._window = window
        self._points = collections.deque()

    def add(self, record):
        t, examples = number(record.get("t")), number(record.get("examples"))
        if t is None or examples is None:
            return
        if self._points:
            last_t, last_examples = self._points[-1]
            if t < last_t or examples < last_examples:
                self._points.clear()
            elif t == last_t:
                return
        self._points.append((t, examples))
        # Keep one point at or before the window's start, so the rate spans
        # the whole window once there is that much history.
        while len(self._points) > 2 and self._points[1][0] <= t - self._window:
            self._points.popleft()

    def rate(self):
        """examples/s, or None with fewer than two records."""
        if len(self._points) < 2:
            return None
        (t0, e0), (t1, e1) = self._points[0], self._points[-1]
        return (e1 - e0) / (t1 - t0)


def format_duration(seconds):
    """h:mm:ss."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return "%d:%02d:%02d" % (hours, rest // 60, rest % 60)


def format_eta(record, rate=None):
    """"ETA h:mm:ss" for `record` at `rate` examples/s (else the record's
    own examples/s); "ETA after epoch 1" before examples_total is known,
    "ETA ?" without a positive rate; None for a record of an older run,
    which has neither epochs nor examples_total."""
    if not any(key in record for key in ("epoch", "epochs", "examples_total")):
        return None
    total, examples = number(record.get("examples_total")), number(record.get("examples"))
    if total is None or total <= 0 or examples is None:
        # The scheduler learns the job's size when the first epoch ends.
        epoch = number(record.get("epoch"))
        return "ETA after epoch 1" if epoch is None or epoch <= 1 else "ETA ?"
    left = max(0, total - examples)
    if left == 0:
        return "ETA " + format_duration(0)
    rate = number(rate)
    if rate is None or rate <= 0:
        rate = number(record.get("examples_per_sec"))
    if rate is None or rate <= 0:
        return "ETA ?"
    seconds = left / rate
    if seconds > MAX_ETA_SEC:
        return "ETA >" + format_duration(MAX_ETA_SEC)
    return "ETA " + format_duration(seconds)


def format_epoch(record):
    """"epoch E/N", "epoch E", or None when the record has no epoch."""
    epoch, epochs = number(record.get("epoch")), number(record.get("epochs"))
    if epoch is None:
        return None
    if epochs is None:
        return "epoch %d" % epoch
    return "epoch %d/%d" % (epoch, epochs)


def format_progress(record, rate=None):
    """The progress line of `record`; `rate` (examples/s, smoothed) for its
    ETA."""
    parts = []
    # number(): a NaN or a string from a confused writer is left out, not
    # raised (json reads NaN).
    if number(record.get("t")) is not None:
        parts.append("%7.1fs" % record["t"])
    if "examples" in record:
        parts.append("examples %s" % format_count(record["examples"]))
    if number(record.get("examples_per_sec")) is not None:
        parts.append("%s ex/s" % format_count(round(record["examples_per_sec"])))
    for part in (format_epoch(record), format_eta(record, rate)):
        if part is not None:
            parts.append(part)
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

    def __init__(self, quiet, stream=None, clock=time.monotonic, columns=None):
        """stream (default sys.stderr), clock and columns (the terminal's
        width) are for tests."""
        self._quiet = quiet
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._columns = columns or (lambda: shutil.get_terminal_size().columns)
        self._tty = self._stream.isatty()
        self._last_plain = None
        self._pending = None
        self._line_open = False
        self._rate = RecentRate()

    def show(self, record):
        if self._quiet:
            return
        self._rate.add(record)
        text = format_progress(record, self._rate.rate())
        if self._tty:
            # Cut to the terminal width: a wrapped line cannot be redrawn by \r.
            width = self._columns()
            self._stream.write("\r\x1b[K" + text[:max(width - 1, 20)])
            self._stream.flush()
            self._line_open = True
        else:
            self._pending = text
            self._flush_plain(force=False)

    def _flush_plain(self, force):
        now = self._clock()
        if self._pending is not None and (force or self._last_plain is None or
                                          now - self._last_plain >= PLAIN_PROGRESS_PERIOD_SEC):
            print(self._pending, file=self._stream, flush=True)
            self._pending = None
            self._last_plain = now

    def finish(self):
        """Ends the progress line so that what follows starts on a new one."""
        if self._quiet:
            return
        if self._line_open:
            self._stream.write("\n")
            self._stream.flush()
            self._line_open = False
        self._flush_plain(force=True)


