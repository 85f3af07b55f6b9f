"""The training report: RUN_DIR/report.html, one self-contained page (inline
CSS and inline SVG charts, no script, nothing fetched) built from whatever a
run left in its run dir, so that it can be written after a success, a
failure or an interrupt alike, and rebuilt later with
`mtps-launch report --run-dir DIR [--out FILE]`.

Sources, each optional:
  progress.jsonl  the scheduler's progress lines ({"t", "examples",
                  "examples_per_sec", "loss": {task: v}, "workers_done",
                  "num_workers", and on newer runs "epoch", "epochs",
                  "examples_total"}) and its event lines ({"event", "t"});
  metrics.jsonl   one line per progress interval with "auc" per task and
                  per-server ("servers") and per-worker ("workers") counters;
  summary.json    the held-out metrics (eval), train totals, recovery;
  launch.json     the backend, config, nodes, exit codes and result.

A malformed line, a value of the wrong type, NaN, or a missing file is
skipped and named in the page's "Data" section; a chart without data says
so instead of being drawn. build_report() and write_report() never raise
on the content of the files (only write_report() on the output file).
"""

import datetime
import html
import json
import math
import re
from pathlib import Path

from .util import EXIT_FAILED, EXIT_OK, log, write_text_atomically

REPORT_NAME = "report.html"
# Long runs have tens of thousands of progress lines; a chart line keeps at
# most this many points (evenly spaced, the last one always kept).
MAX_POINTS_PER_SERIES = 600
# Colour-blind-safe, distinct on white (Okabe-Ito, plus two of Tol's);
# after these the colours repeat with a dashed line.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#882255",
           "#44AA99")
TOTAL_COLOUR = "#222222"
# A line of at most this many points also shows each point as a dot (a short
# run has a handful of progress lines; a straight line alone hides that).
DOTS_UP_TO = 40
DASHES = ("", "6 3", "2 3")
# Chart geometry in SVG user units; the page scales the SVG to its column.
CHART_W, CHART_H = 480, 280
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 14, 42, 46
# The width of one character of a tick label, in user units, at the largest
# font the page uses for them (16 units, on a phone; 12 on a wide screen):
# x tick labels are thinned with it so that none overlaps its neighbour.
TICK_CHAR_WIDTH = 9.8
TICK_TARGET = 5
# ModelConfig's oneof kind (proto/config.proto), for a run without summary.json.
MODEL_KINDS = ("esmm", "mmoe", "shared_bottom", "ple", "single_task")
# Marker labels (epoch 2, event numbers) go on the first of this many rows,
# MARKER_ROW_STEP user units apart (a label's height at the phone font), where
# they do not overlap the one before; with no row free, the line goes
# unlabelled (its tooltip and the legend still say what it is).
MARKER_ROWS = 3
MARKER_ROW_STEP = 18
MARKER_CHAR_WIDTH = 8.6  # at 14 units, the phone's marker font
# More events than this are listed once, under Recovery, not under each chart.
MAX_EVENTS_IN_LEGEND = 4


# --- Reading the run dir ----------------------------------------------------


def number(value):
    """value if it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


class JsonlFile:
    """The JSON objects of one .jsonl file, in order, and what was skipped:
    `bad_lines` (1-based line numbers), `error` (why the file could not be
    read), `missing`."""

    def __init__(self, path):
        self.path = Path(path)
        self.records = []
        self.bad_lines = []
        self.missing = False
        self.error = None
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self.missing = True
            return
        except OSError as e:
            self.error = e.strerror or str(e)
            return
        lines = data.split(b"\n")
        if lines and lines[-1].strip() == b"":
            lines.pop()
        for line_number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                record = None
            if isinstance(record, dict):
                self.records.append(record)
            else:
                self.bad_lines.append(line_number)

    def describe(self):
        """One line for the page's Data section."""
        name = self.path.name
        if self.missing:
            return "%s: not in the run dir" % name
        if self.error is not None:
            return "%s: cannot be read (%s)" % (name, self.error)
        text = "%s: %s" % (name, plural(len(self.records), "record"))
        if self.bad_lines:
            shown = ", ".join(str(n) for n in self.bad_lines[:5])
            more = ", ..." if len(self.bad_lines) > 5 else ""
            text += "; %s skipped (line%s %s%s)" % (
                plural(len(self.bad_lines), "malformed line"),
                "" if len(self.bad_lines) == 1 else "s", shown, more)
        return text


def read_json_object(path):
    """(the JSON object in path or None, a line for the Data section)."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(errors="replace"))
    except FileNotFoundError:
        return None, "%s: not in the run dir" % path.name
    except OSError as e:
        return None, "%s: cannot be read (%s)" % (path.name, e.strerror or e)
    except (ValueError, RecursionError) as e:
        return None, "%s: not valid JSON (%s); ignored" % (path.name, e)
    if not isinstance(value, dict):
        return None, "%s: not a JSON object; ignored" % path.name
    return value, "%s: read" % path.name


class RunData:
    """What a run dir holds, read once; every field may be empty.

    progress: [(run time, attempt, record)] of progress.jsonl's progress
              lines (see with_run_times);
    events:   the same of its event lines;
    metrics:  the same of metrics.jsonl;
    summary, launch: the JSON objects or None; notes: the Data section;
    outcome, recovery: what the launcher passed (dicts, maybe empty).
    """

    def __init__(self, run_dir, outcome=None, recovery=None):
        run_dir = Path(run_dir)
        self.run_dir = run_dir
        progress_file = JsonlFile(run_dir / "progress.jsonl")
        metrics_file = JsonlFile(run_dir / "metrics.jsonl")
        self.summary, summary_note = read_json_object(run_dir / "summary.json")
        self.launch, launch_note = read_json_object(run_dir / "launch.json")
        timed = with_run_times(progress_file.records)
        self.progress = [p for p in timed if "event" not in p[2]]
        self.events = [p for p in timed if "event" in p[2]]
        self.metrics = with_run_times(metrics_file.records)
        self.notes = [progress_file.describe(), metrics_file.describe(), summary_note,
                      launch_note]
        untimed = (len(progress_file.records) - len(timed), len(metrics_file.records) -
                   len(self.metrics))
        for name, count in zip(("progress.jsonl", "metrics.jsonl"), untimed):
            if count:
                self.notes.append("%s: %s without a numeric \"t\" skipped" %
                                  (name, plural(count, "record")))
        self.outcome = outcome if isinstance(outcome, dict) else {}
        if recovery is None and self.summary is not None:
            recovery = self.summary.get("recovery")
        self.recovery = recovery if isinstance(recovery, dict) else {}


def with_run_times(records):
    """[(run time, attempt, record)] for the records with a numeric "t".
    Run time is the scheduler's "t" made continuous over restarts: a new
    scheduler (attempt) starts its clock at 0, and its times are put after
    the last one of the attempt before."""
    out = []
    offset, last, attempt = 0.0, None, 0
    for record in records:
        t = number(record.get("t"))
        if t is None:
            continue
        if last is not None and t < last:
            offset += last
            attempt += 1
        last = t
        out.append((offset + t, attempt, record))
    return out


# --- Formatting -------------------------------------------------------------


def plural(count, noun):
    return "%s %s%s" % ("{:,}".format(count), noun, "" if count == 1 else "s")


def decimals_for(step):
    """Decimal places that show multiples of `step` exactly (at most 12)."""
    for d in range(13):
        if abs(round(step, d) - step) <= abs(step) * 1e-6:
            return d
    return 12


def short_count(value, step=None):
    """1234567 -> "1.2M", 45000 -> "45k", 999 -> "999", 0 -> "0"; with
    `step` (tick spacing), enough decimals to tell neighbouring ticks apart
    (trailing zeros dropped: 750k, 1M, 1.25M)."""
    if value == 0:
        return "0"
    for unit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= unit * (1 - 1e-9):
            d = min(decimals_for(step / unit), 3) if step else (1 if abs(value) < 10 * unit else 0)
            return trim_zeros("%.*f" % (d, value / unit)) + suffix
    if step:
        return trim_zeros("%.*f" % (decimals_for(step), value))
    if float(value).is_integer():
        return "%d" % value
    return "%.3g" % value


def trim_zeros(text):
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_duration(seconds):
    """h:mm:ss (or m:ss under an hour); "—" for a span too long to be one."""
    if not math.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return "%d:%02d:%02d" % (h, m, s) if h else "%d:%02d" % (m, s)


def esc(value):
    return html.escape(str(value), quote=True)


def fmt_metric(value, digits=4):
    value = number(value)
    return "—" if value is None else "%.*f" % (digits, value)


def fmt_int(value):
    value = number(value)
    if value is None:
        return "—"
    return "{:,}".format(int(value)) if float(value).is_integer() else "{:,.1f}".format(value)


# --- Scales and ticks -------------------------------------------------------


def nice_ticks(lo, hi, target=TICK_TARGET):
    """(low, high, step, ticks): a domain covering [lo, hi] that starts and
    ends on a tick, with about `target` steps of 1, 2, 2.5 or 5 x 10^k."""
    if hi < lo:
        lo, hi = hi, lo
    if not math.isfinite(hi - lo):
        raise ValueError("a range too wide to draw: %g to %g" % (lo, hi))
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = magnitude * 10
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw * (1 - 1e-9):
            step = m * magnitude
            break
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    count = int(round((end - start) / step))
    d = decimals_for(step) + 2
    ticks = [round(start + i * step, d) for i in range(count + 1)]
    return ticks[0], ticks[-1], step, ticks


class Axis:
    """How one axis shows its values. kind: "count" (1.2M), "number" (0.35)
    or "time" (seconds, shown in s, min or h by the span)."""

    def __init__(self, label, kind, from_zero=False, clamp=None):
        self.label = label
        self.kind = kind
        self.from_zero = from_zero
        self.clamp = clamp  # (min, max) the domain may not leave, e.g. AUC's [0, 1]

    def domain(self, values):
        lo, hi = min(values), max(values)
        if self.from_zero:
            lo = min(lo, 0.0)
        elif hi > lo:
            pad = (hi - lo) * 0.05
            lo, hi = lo - pad, hi + pad
        scale = self.time_scale(hi - lo)[0] if self.kind == "time" else 1.0
        low, high, step, ticks = nice_ticks(lo / scale, hi / scale)
        ticks = [t * scale for t in ticks]
        low, high, step = low * scale, high * scale, step * scale
        if self.clamp is not None:
            ticks = [t for t in ticks if self.clamp[0] - 1e-9 <= t <= self.clamp[1] + 1e-9]
            low, high = max(low, self.clamp[0]), min(high, self.clamp[1])
        return low, high, step, ticks

    @staticmethod
    def time_scale(span):
        if span > 3 * 3600:
            return 3600.0, "h"
        if span > 180:
            return 60.0, "min"
        return 1.0, "s"

    def title(self, span):
        if self.kind == "time":
            return "%s (%s)" % (self.label, self.time_scale(span)[1])
        return self.label

    def tick_text(self, value, step, span):
        if self.kind == "count":
            return short_count(value, step)
        if self.kind == "time":
            scale = self.time_scale(span)[0]
            return "%.*f" % (decimals_for(step / scale), value / scale)
        return "%.*f" % (decimals_for(step), value)


# --- Charts -----------------------------------------------------------------


class Series:
    """One line of a chart: a name, a style, and its segments (lists of
    (x, y); a restart starts a new segment rather than a line back)."""

    def __init__(self, name, colour, dash=""):
        self.name = name
        self.colour = colour
        self.dash = dash
        self.segments = []

    def add(self, x, y, new_segment=False):
        if new_segment or not self.segments:
            self.segments.append([])
        self.segments[-1].append((x, y))

    def points(self):
        return sum(len(s) for s in self.segments)


def style(index):
    """(colour, dash) of the index-th series."""
    return PALETTE[index % len(PALETTE)], DASHES[(index // len(PALETTE)) % len(DASHES)]


def thin(points, limit=MAX_POINTS_PER_SERIES):
    """At most `limit` of `points`, evenly spaced, first and last kept."""
    if len(points) <= limit:
        return points
    stride = (len(points) - 1) / (limit - 1)
    return [points[int(round(i * stride))] for i in range(limit)]


class Marker:
    """A vertical line across a chart at x, labelled `tag` (the legend says
    what it is)."""

    def __init__(self, x, tag, text, kind):
        self.x = x
        self.tag = tag
        self.text = text
        self.kind = kind  # "event" or "epoch"


def render_chart(chart_id, title, x_axis, y_axis, series, markers=(), source="", empty=None):
    """A <figure> with the chart's title, legend, inline SVG and source
    line, or, when no series has a point, the `empty` text instead."""
    series = [s for s in series if s.points()]
    head = '<figure class="chart" id="%s"><figcaption><h3>%s</h3>' % (esc(chart_id), esc(title))
    if not series:
        return (head + '</figcaption><div class="empty" role="note">%s</div></figure>' %
                esc(empty or "No data."))
    xs = [x for s in series for seg in s.segments for x, _ in seg]
    ys = [y for s in series for seg in s.segments for _, y in seg]
    markers = [m for m in markers if m.x is not None]
    try:
        x_low, x_high, x_step, x_ticks = x_axis.domain(xs + [m.x for m in markers])
        y_low, y_high, y_step, y_ticks = y_axis.domain(ys)
    except (ValueError, OverflowError) as e:  # values near the float limit
        return (head + '</figcaption><div class="empty" role="note">Cannot draw this chart: '
                '%s.</div></figure>' % esc(e))
    plot_w = CHART_W - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = CHART_H - MARGIN_TOP - MARGIN_BOTTOM

    def px(x):
        return MARGIN_LEFT + (x - x_low) / ((x_high - x_low) or 1) * plot_w

    def py(y):
        return MARGIN_TOP + plot_h - (y - y_low) / ((y_high - y_low) or 1) * plot_h

    parts = ['<svg class="plot" viewBox="0 0 %d %d" role="img" aria-label="%s">' %
             (CHART_W, CHART_H, esc(title)), "<title>%s</title>" % esc(title)]
    # Grid and y ticks.
    for t in y_ticks:
        y = py(t)
        parts.append('<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>' %
                     (MARGIN_LEFT, y, MARGIN_LEFT + plot_w, y))
        parts.append('<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%s</text>' %
                     (MARGIN_LEFT - 6, y + 4, esc(y_axis.tick_text(t, y_step, y_high - y_low))))
    # x ticks: labels thinned so that none overlaps its neighbour.
    x_span = x_high - x_low
    labels = [x_axis.tick_text(t, x_step, x_span) for t in x_ticks]
    widest = max(len(text) for text in labels) * TICK_CHAR_WIDTH + 10
    gap = plot_w / max(len(x_ticks) - 1, 1)
    every = max(1, int(math.ceil(widest / gap)))
    for i, (t, text) in enumerate(zip(x_ticks, labels)):
        x = px(t)
        parts.append('<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>' %
                     (x, MARGIN_TOP + plot_h, x, MARGIN_TOP + plot_h + 4))
        if i % every == 0:
            # The last label is kept inside the chart: right-aligned if centring
            # it would cut it.
            anchor = "middle"
            if x + len(text) * TICK_CHAR_WIDTH / 2 > CHART_W - 1:
                anchor, x = "end", CHART_W - 1
            parts.append('<text class="tick" x="%.1f" y="%.1f" text-anchor="%s">%s</text>' %
                         (x, MARGIN_TOP + plot_h + 19, anchor, esc(text)))
    parts.append('<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>' %
                 (MARGIN_LEFT, MARGIN_TOP, MARGIN_LEFT, MARGIN_TOP + plot_h))
    parts.append('<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>' %
                 (MARGIN_LEFT, MARGIN_TOP + plot_h, MARGIN_LEFT + plot_w, MARGIN_TOP + plot_h))
    parts.append('<text class="label" x="%.1f" y="%d" text-anchor="middle">%s</text>' %
                 (MARGIN_LEFT + plot_w / 2, CHART_H - 6, esc(x_axis.title(x_span))))
    parts.append('<text class="label" x="%d" y="%d" text-anchor="start">%s</text>' %
                 (4, 18, esc(y_axis.title(y_high - y_low))))
    # Markers (epochs, events) under the lines.
    row_ends = [-1.0] * MARKER_ROWS  # where each row's last label ends
    for m in sorted(markers, key=lambda m: m.x):
        x = px(m.x)
        if not MARGIN_LEFT <= x <= MARGIN_LEFT + plot_w + 0.5:
            continue
        parts.append('<line class="marker %s" x1="%.1f" y1="%d" x2="%.1f" y2="%d"><title>%s</title>'
                     '</line>' % (m.kind, x, MARGIN_TOP, x, MARGIN_TOP + plot_h, esc(m.text)))
        width = len(m.tag) * MARKER_CHAR_WIDTH + 3
        left = x + 3
        anchor = "start"
        if left + width > CHART_W - 1:  # no room on the right: label left of the line
            left, anchor = x - 3 - width, "end"
        row = next((r for r in range(MARKER_ROWS) if row_ends[r] < left), None)
        if row is None:
            continue
        row_ends[row] = left + width + 2
        parts.append('<text class="mtag %s" x="%.1f" y="%d" text-anchor="%s">%s</text>' %
                     (m.kind, x + 3 if anchor == "start" else x - 3,
                      MARGIN_TOP + 14 + MARKER_ROW_STEP * row, anchor, esc(m.tag)))
    for s in series:
        for segment in s.segments:
            points = thin(segment)
            coords = " ".join("%.1f,%.1f" % (px(x), py(y)) for x, y in points)
            dash = ' stroke-dasharray="%s"' % s.dash if s.dash else ""
            if len(points) == 1:
                x, y = points[0]
                parts.append('<circle class="series" cx="%.1f" cy="%.1f" r="3" fill="%s">'
                             '<title>%s</title></circle>' % (px(x), py(y), s.colour, esc(s.name)))
            else:
                parts.append('<polyline class="series" points="%s" stroke="%s"%s>'
                             '<title>%s</title></polyline>' % (coords, s.colour, dash, esc(s.name)))
                if len(points) <= DOTS_UP_TO:
                    parts.extend('<circle class="dot" cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>' %
                                 (px(x), py(y), s.colour) for x, y in points)
    parts.append("</svg>")
    legend = ['<ul class="legend">']
    for s in series:
        dash = ' stroke-dasharray="%s"' % s.dash if s.dash else ""
        legend.append('<li><svg width="22" height="10" aria-hidden="true"><line x1="1" y1="5" '
                      'x2="21" y2="5" stroke="%s" stroke-width="3"%s/></svg>%s</li>' %
                      (s.colour, dash, esc(s.name)))
    tagged = [m for m in markers if m.kind == "event"]
    if len(tagged) > MAX_EVENTS_IN_LEGEND:
        legend.append('<li class="mleg"><span class="mtagbox">1-%d</span>the scheduler\'s events, '
                      'listed under Recovery</li>' % len(tagged))
    else:
        for m in tagged:
            legend.append('<li class="mleg"><span class="mtagbox">%s</span>%s</li>' %
                          (esc(m.tag), esc(m.text)))
    legend.append("</ul>")
    foot = '<p class="source">%s</p>' % esc(source) if source else ""
    return head + "".join(legend) + "</figcaption>" + "".join(parts) + foot + "</figure>"


# --- What the charts show ---------------------------------------------------


def task_series(timed, field, colours):
    """One series per task of record[field] ({task: value}) against
    examples; a new segment where examples go down (a restart)."""
    by_task = {}
    last_examples, last_attempt = None, None
    for _, attempt, record in timed:
        examples = number(record.get("examples"))
        values = record.get(field)
        if examples is None or not isinstance(values, dict):
            continue
        restart = last_examples is not None and (examples < last_examples or
                                                 attempt != last_attempt)
        last_examples, last_attempt = examples, attempt
        for task, value in values.items():
            value = number(value)
            if value is None:
                continue
            if task not in by_task:
                colour, dash = colours(str(task))
                by_task[task] = Series(str(task), colour, dash)
            by_task[task].add(examples, value, new_segment=restart)
    return list(by_task.values())


class Colours:
    """Gives each name the next style the first time it is asked for, the
    same one after (a task has one colour on every chart)."""

    def __init__(self):
        self._given = {}

    def __call__(self, name):
        if name not in self._given:
            self._given[name] = style(len(self._given))
        return self._given[name]


def epoch_markers(timed):
    """Where the epoch changes, on the examples axis ("epoch" of newer runs)."""
    markers, last = [], None
    for _, _, record in timed:
        epoch, examples = number(record.get("epoch")), number(record.get("examples"))
        if epoch is None or examples is None:
            continue
        if last is not None and epoch > last:
            markers.append(Marker(examples, "epoch %d" % epoch, "epoch %d begins" % epoch,
                                  "epoch"))
        last = epoch
    return markers


def describe_event(record):
    kind = str(record.get("event"))
    if kind == "training":
        if record.get("resumed_from_checkpoint") is not None:
            return "training resumed from checkpoint %s (step %s)" % (
                record.get("resumed_from_checkpoint"), record.get("checkpoint_step"))
        return "training started"
    if kind == "failover":
        promoted = record.get("promoted_partitions")
        return "%s failed over%s" % (record.get("server", "a server"), (
            " (partitions %s promoted)" % ", ".join(str(p) for p in promoted)
            if isinstance(promoted, list) and promoted else ""))
    if kind == "rejoined":
        return "%s rejoined as backup of partition %s" % (record.get("server", "a server"),
                                                          record.get("partition", "?"))
    return kind


def event_markers(events):
    """Markers on the time axis: events other than the first start."""
    markers = []
    for t, attempt, record in events:
        if record.get("event") == "training" and attempt == 0 and record.get(
                "resumed_from_checkpoint") is None:
            continue  # The start of the run is the axis' 0, not news.
        markers.append(Marker(t, str(len(markers) + 1), "%s at %s" % (
            describe_event(record), format_duration(t)), "event"))
    return markers


def time_series(timed, name, colour, value, dash=""):
    """A series of value(record) against run time (None values skipped)."""
    series = Series(name, colour, dash)
    last_attempt = None
    for t, attempt, record in timed:
        y = value(record)
        if y is None:
            continue
        series.add(t, y, new_segment=last_attempt is not None and attempt != last_attempt)
        last_attempt = attempt
    return series


def per_rank(timed, field):
    """{rank: [(run time, attempt, entry)]} of record[field] lists of
    {"rank": r, ...} (metrics.jsonl's servers and workers)."""
    out = {}
    for t, attempt, record in timed:
        entries = record.get(field)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if isinstance(entry, dict) and number(entry.get("rank")) is not None:
                out.setdefault(int(entry["rank"]), []).append((t, attempt, entry))
    return dict(sorted(out.items()))


def rate_series(rows, name, colour, field):
    """entry[field] (a counter) per second between neighbouring entries; a
    counter that goes down (a restarted node) starts a new segment. A value
    the same as the one before is taken as no new snapshot yet (nodes send
    theirs with each heartbeat, less often than metrics.jsonl lines): the
    rate then spans to the next change, instead of a zero and a spike."""
    series = Series(name, colour)
    previous, broken = None, True
    for t, attempt, entry in rows:
        value = number(entry.get(field))
        if value is None or value < 0:  # not a counter
            previous, broken = None, True
            continue
        if previous is not None:
            pt, pattempt, pvalue = previous
            if attempt == pattempt and value == pvalue and value > 0:
                continue
            if attempt == pattempt and t > pt and value >= pvalue:
                series.add(t, (value - pvalue) / (t - pt), new_segment=broken)
                broken = False
            else:
                broken = True
        previous = (t, attempt, value)
    return series


def charts(data):
    """The page's charts, in order, as HTML."""
    colours = Colours()
    progress_loss = [p for p in data.progress if isinstance(p[2].get("loss"), dict)]
    metrics_loss = [p for p in data.metrics if isinstance(p[2].get("loss"), dict)]
    loss_source, loss_name = ((progress_loss, "progress.jsonl") if progress_loss else
                              (metrics_loss, "metrics.jsonl"))
    examples_axis = Axis("examples trained", "count", from_zero=True)
    restarted = any(p[1] > 0 for p in data.progress + data.metrics + data.events)
    time_axis = Axis("time since training began, attempts end to end" if restarted else
                     "time since the scheduler started", "time", from_zero=True)
    epochs = epoch_markers(data.progress or data.metrics)
    loss = task_series(loss_source, "loss", colours)
    out = [render_chart(
        "loss", "Training loss per task", examples_axis,
        Axis("loss", "number"), loss, epochs,
        source="From %s: %s, each the mean of the workers' latest reports." % (
            loss_name, plural(len(loss_source), "line")),
        empty="No training loss: progress.jsonl has no progress line with a loss.")]

    auc = task_series(data.metrics, "auc", colours)
    out.append(render_chart(
        "auc", "AUC per task during training", examples_axis, Axis("AUC", "number",
                                                                    clamp=(0.0, 1.0)),
        auc, epochs, source="From metrics.jsonl: %s." % plural(
            sum(1 for p in data.metrics if isinstance(p[2].get("auc"), dict)), "line"),
        empty=("No AUC data: this run has no metrics.jsonl, so there is no AUC over time "
               "(the held-out AUC of a finished run is in the table above)."
               if not data.metrics else "No AUC data: metrics.jsonl has no \"auc\" values.")))

    events = event_markers(data.events)
    rate_source = data.progress if any(number(p[2].get("examples_per_sec")) is not None
                                       for p in data.progress) else data.metrics
    throughput = [time_series(rate_source, "all workers", TOTAL_COLOUR,
                              lambda r: number(r.get("examples_per_sec")))]
    worker_colours = Colours()
    for rank, rows in per_rank(data.metrics, "workers").items():
        colour, dash = worker_colours("worker %d" % rank)
        throughput.append(time_series(rows, "worker %d" % rank, colour,
                                      lambda e: number(e.get("examples_per_sec")), dash))
    out.append(render_chart(
        "throughput", "Training throughput", time_axis,
        Axis("examples/s", "count", from_zero=True), throughput, events,
        source="All workers from %s%s." % (
            "progress.jsonl" if rate_source is data.progress else "metrics.jsonl",
            "; each worker from metrics.jsonl" if len(throughput) > 1 else ""),
        empty="No throughput data: neither progress.jsonl nor metrics.jsonl has examples/s."))

    servers = per_rank(data.metrics, "servers")
    server_colours = Colours()
    rows, requests = [], []
    for rank, entries in servers.items():
        colour, dash = server_colours("server %d" % rank)
        rows.append(time_series(entries, "server %d" % rank, colour,
                                lambda e: number(e.get("rows")), dash))
        series = rate_series(entries, "server %d" % rank, colour, "requests_total")
        series.dash = dash
        requests.append(series)
    no_servers = ("No per-server data: this run has no metrics.jsonl (per-server rows and "
                  "requests come from it)." if not data.metrics else
                  "No per-server data: metrics.jsonl has no \"servers\" counters.")
    out.append(render_chart(
        "server-rows", "Rows held per server", time_axis,
        Axis("rows (sparse table entries)", "count", from_zero=True), rows, events,
        source="From metrics.jsonl.", empty=no_servers))
    out.append(render_chart(
        "server-requests", "Requests served per server", time_axis,
        Axis("requests/s", "count", from_zero=True), requests, events,
        source="From metrics.jsonl: the change of requests_total between lines.",
        empty=no_servers))
    return out


def cluster_size(data):
    """"2 servers, 2 workers" from summary.json, else launch.json's nodes."""
    cluster = (data.summary or {}).get("cluster")
    servers = workers = None
    if isinstance(cluster, dict):
        servers, workers = number(cluster.get("servers")), number(cluster.get("workers"))
    nodes = (data.launch or {}).get("nodes")
    if (servers is None or workers is None) and isinstance(nodes, list):
        ranks = {}
        for node in nodes:
            if isinstance(node, dict) and number(node.get("rank")) is not None:
                ranks.setdefault(str(node.get("role")), set()).add(node["rank"])
        servers, workers = len(ranks.get("server", ())), len(ranks.get("worker", ()))
    if servers is None or workers is None:
        counts = [number(p[2].get("num_workers")) for p in data.progress]
        counts = [c for c in counts if c is not None]
        return "%s workers" % fmt_int(counts[-1]) if counts else "—"
    return "%s, %s" % (plural(int(servers), "server"), plural(int(workers), "worker"))


def result_of(data):
    """(result, detail) — the launcher's word, else launch.json's."""
    result = data.outcome.get("result") or (data.launch or {}).get("result")
    detail = data.outcome.get("reason")
    if not result:
        return "unknown", "launch.json has no result: the launcher may still be running or " \
            "have been killed"
    return str(result), detail


def model_in_config(path):
    """The model kind (mmoe, esmm, ...) of a resolved config.pbtxt, or None."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    block = re.search(r"^model\s*\{(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    kind = block and re.search(r"^\s*(%s)\s*\{" % "|".join(MODEL_KINDS), block.group(1),
                               re.MULTILINE)
    return kind.group(1) if kind else None


def header(data):
    """(the page's heading, the Job card)."""
    summary = data.summary or {}
    launch = data.launch or {}
    model = summary.get("model") or model_in_config(data.run_dir / "config.pbtxt")
    config = launch.get("config")
    result, detail = result_of(data)
    facts = [("Result", '<span class="badge %s">%s</span>%s' % (
        esc(result if result in ("success", "failed", "timeout", "interrupted") else "unknown"),
        esc(result), " " + esc(detail) if detail else ""))]
    facts.append(("Model", esc(model or "—")))
    facts.append(("Cluster", esc(cluster_size(data))))
    facts.append(("Backend", esc(launch.get("backend", "—"))))
    if isinstance(config, str):
        facts.append(("Config", "<code>%s</code>" % esc(config)))
    start, end = number(launch.get("start_time")), number(launch.get("end_time"))
    if start is not None:
        try:
            started = datetime.datetime.fromtimestamp(start, datetime.timezone.utc)
            facts.append(("Started", esc(started.strftime("%Y-%m-%d %H:%M:%S UTC"))))
        except (OverflowError, OSError, ValueError):
            pass  # Not a time this machine can show.
    if start is not None and end is not None and end >= start:
        facts.append(("Wall time", esc(format_duration(end - start))))
    train = summary.get("train")
    if isinstance(train, dict):
        facts.append(("Training", esc("%s examples in %s s, %s examples/s" % (
            fmt_int(train.get("examples")), fmt_metric(train.get("seconds"), 2),
            fmt_int(round(train["examples_per_sec"]) if number(train.get(
                "examples_per_sec")) is not None else None)))))
    elif data.progress:
        last = data.progress[-1][2]
        facts.append(("Trained so far", esc("%s examples (last progress line)" %
                                            fmt_int(last.get("examples")))))
    epochs = [number(p[2].get("epochs")) for p in data.progress]
    epochs = [e for e in epochs if e is not None]
    if epochs:
        facts.append(("Epochs", esc(fmt_int(epochs[-1]))))
    restarts = number(data.recovery.get("restarts"))
    if restarts is None:
        restarts = number(launch.get("restarts"))
    facts.append(("Restarts", esc(fmt_int(restarts) if restarts is not None else "—")))
    nodes = launch.get("nodes")
    failed = [n for n in (nodes if isinstance(nodes, list) else []) if isinstance(n, dict) and
              number(n.get("exit_code")) not in (None, 0) and not n.get("stopped_by_launcher")]
    if failed:
        facts.append(("Failed nodes", esc(", ".join("%s-%s (exit %s)" % (
            n.get("role"), n.get("rank"), n.get("exit_code")) for n in failed))))
    rows = "".join("<dt>%s</dt><dd>%s</dd>" % (k, v) for k, v in facts)
    title = "Training report: %s" % (model or "mtps run")
    return ('<header><h1>%s</h1><p class="sub">%s</p></header>' % (esc(title), esc(
        str(data.run_dir))), '<section class="card"><h2>Job</h2><dl class="facts">%s</dl>'
            '</section>' % rows)


def eval_table(data):
    evals = (data.summary or {}).get("eval")
    if not isinstance(evals, dict) or not evals:
        text = ("No held-out evaluation: summary.json is not in the run dir (the run did not "
                "finish)." if data.summary is None else
                "No held-out evaluation in summary.json.")
        return '<section class="card"><h2>Held-out evaluation</h2><p>%s</p></section>' % esc(text)
    rows = []
    for task, metrics in evals.items():
        metrics = metrics if isinstance(metrics, dict) else {}
        rows.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
            esc(task), fmt_metric(metrics.get("auc")), fmt_metric(metrics.get("logloss")),
            fmt_int(metrics.get("examples"))))
    return ('<section class="card"><h2>Held-out evaluation</h2><div class="scroll"><table>'
            '<thead><tr><th>task</th><th>AUC</th><th>logloss</th><th>examples</th></tr></thead>'
            '<tbody>%s</tbody></table></div></section>' % "".join(rows))


def recovery_section(data):
    events = data.recovery.get("events")
    events = [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []
    scheduler = [(t, r) for t, a, r in data.events if not (
        r.get("event") == "training" and a == 0 and r.get("resumed_from_checkpoint") is None)]
    if not events and not scheduler:
        return ('<section class="card"><h2>Recovery</h2><p>No node failed: no restart, '
                'failover or rejoin.</p></section>')
    parts = ['<section class="card"><h2>Recovery</h2>']
    if events:
        rows = []
        for e in events:
            if e.get("failover"):
                action = "failed over to backups" + (", restarted to rejoin" if e.get(
                    "restarted") else "")
            else:
                action = "job restarted from %s" % ("checkpoint %s (step %s)" % (
                    e.get("checkpoint_id"), e.get("checkpoint_step"))
                    if e.get("checkpoint_id") is not None else "the start")
            rows.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                esc(e.get("node", "?")), esc(e.get("exit", "?")), esc(action),
                fmt_metric(e.get("detected_after_s"), 2), fmt_metric(
                    e.get("training_again_after_s"), 2)))
        parts.append('<div class="scroll"><table><thead><tr><th>node</th><th>how it ended</th>'
                     '<th>what followed</th><th>detected after (s)</th>'
                     '<th>training again after (s)</th></tr></thead><tbody>%s</tbody></table>'
                     '</div>' % "".join(rows))
    if scheduler:
        parts.append("<p>The scheduler's events (numbered as on the time charts):</p><ol>%s</ol>" %
                     "".join("<li>%s</li>" % esc("%s at %s" % (describe_event(r),
                                                               format_duration(t)))
                             for t, r in scheduler))
    parts.append("</section>")
    return "".join(parts)


STYLE = """
:root{--fg:#1b1f24;--muted:#59636e;--line:#d8dee4;--bg:#f5f6f8}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:15px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:16px}
header h1{font-size:1.5rem;margin:.2rem 0}
.sub{color:var(--muted);margin:0 0 12px;word-break:break-all}
h2{font-size:1.1rem;margin:0 0 8px}
h3{font-size:1rem;margin:0 0 4px}
.card,figure.chart{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px;
margin:0 0 16px}
.top{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,380px),1fr));gap:16px}
.top{margin-bottom:16px}.top .card{margin:0}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}
.facts dt{color:var(--muted)}.facts dd{margin:0;word-break:break-word}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-weight:600;color:#fff;
background:#6a737d}
.badge.success{background:#1a7f37}.badge.failed{background:#cf222e}
.badge.timeout,.badge.interrupted{background:#9a6700}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:right}
th:first-child,td:first-child{text-align:left}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,520px),1fr));gap:16px;
margin-top:16px}
.charts figure.chart{margin:0}
svg.plot{display:block;width:100%;height:auto}
svg.plot text{font-size:12px;fill:#3d4550}
svg.plot text.label{fill:var(--muted)}
svg.plot .grid{stroke:#e7eaee;stroke-width:1}
svg.plot .axis{stroke:#8c959f;stroke-width:1}
svg.plot .series{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
svg.plot circle.series{stroke:none}
svg.plot .marker{stroke:#8c959f;stroke-width:1;stroke-dasharray:3 3}
svg.plot .marker.epoch{stroke:#b6bec7}
svg.plot text.mtag{font-size:11px;fill:#59636e}
figure.chart{display:flex;flex-direction:column}
.empty{flex:1}
@media (max-width:600px){
main{padding:8px}
.card,figure.chart{padding:10px}
th,td{padding:4px 6px}
svg.plot text{font-size:16px}
svg.plot text.mtag{font-size:14px}
}
.legend{list-style:none;margin:2px 0 6px;padding:0;display:flex;flex-wrap:wrap;gap:2px 14px;
font-size:.9rem}
.legend li{display:flex;align-items:center;gap:5px}
.mtagbox{display:inline-block;min-width:1.3em;text-align:center;border:1px solid #8c959f;
border-radius:3px;font-size:.75rem;line-height:1.2}
.empty{min-height:120px;display:flex;align-items:center;justify-content:center;text-align:center;
color:var(--muted);background:repeating-linear-gradient(135deg,#fafbfc 0 10px,#f3f4f6 10px 20px);
border-radius:6px;padding:16px}
.source{color:var(--muted);font-size:.8rem;margin:4px 0 0}
footer{color:var(--muted);font-size:.85rem}
footer ul{margin:4px 0;padding-left:20px}
"""


def build_report(run_dir, outcome=None, recovery=None, now=None):
    """The page for the run in run_dir, as text. outcome: {"result",
    "reason"} from the launcher (else launch.json's result); recovery:
    summary.json's "recovery" shape (else summary.json's own)."""
    data = RunData(run_dir, outcome, recovery)
    now = now if now is not None else datetime.datetime.now(datetime.timezone.utc)
    heading, job = header(data)
    body = ["<main>", heading, '<div class="top">', job, eval_table(data), "</div>",
            recovery_section(data),
            '<section class="charts">%s</section>' % "".join(charts(data)),
            '<footer><p>Data read from the run dir:</p><ul>%s</ul><p>Built by mtps-launch at %s.'
            '</p></footer>' % ("".join("<li>%s</li>" % esc(n) for n in data.notes),
                               esc(now.strftime("%Y-%m-%d %H:%M:%S UTC"))),
            "</main>"]
    title = "mtps report: %s" % ((data.summary or {}).get("model") or Path(run_dir).name)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>%s</title><style>%s</style></head><body>%s</body></html>\n' %
            (esc(title), STYLE, "".join(body)))


def write_report(run_dir, out=None, outcome=None, recovery=None):
    """Writes the page (to out, default RUN_DIR/report.html) atomically and
    returns its path. Raises OSError only when it cannot be written."""
    path = Path(out) if out is not None else Path(run_dir) / REPORT_NAME
    write_text_atomically(path, build_report(run_dir, outcome, recovery))
    return path


def write_for_job(run_dir, outcome, recovery):
    """The launcher's hook at the end of every run: writes report.html and
    logs where. Never raises: a report that cannot be built must not change
    the job's result, so even an unexpected error is logged, not raised."""
    try:
        path = write_report(run_dir, outcome=outcome, recovery=recovery)
    except Exception as e:  # noqa: BLE001 — see the docstring.
        log("cannot write %s: %s: %s" % (Path(run_dir) / REPORT_NAME, type(e).__name__, e))
        return None
    log("report: %s" % path)
    return path


def report_command(run_dir, out=None):
    """`mtps-launch report --run-dir DIR [--out FILE]`: an exit code."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        log("error: --run-dir %s: no such directory" % run_dir)
        return EXIT_FAILED
    if not any((run_dir / name).exists() for name in (
            "progress.jsonl", "metrics.jsonl", "summary.json", "launch.json")):
        log("error: %s has none of progress.jsonl, metrics.jsonl, summary.json, launch.json: "
            "not a run dir?" % run_dir)
        return EXIT_FAILED
    try:
        path = write_report(run_dir, out)
    except OSError as e:
        log("error: cannot write %s: %s" % (out or run_dir / REPORT_NAME, e.strerror or e))
        return EXIT_FAILED
    print(path)
    return EXIT_OK
