"""Headless Chromium for the report's browser tests (report_browser_test.py,
tests/integration/report_test.py): a page's screenshot (decoded with png.py)
and its laid-out geometry, each under a deadline.

Geometry: the page is copied into the test's temp dir with a probe script
appended (the report itself has no script); the probe measures every chart,
every SVG text box and the page's width in the real layout and writes them
as JSON into the DOM, which --dump-dom returns. Chromium and its helper
processes run in their own session; at the deadline the whole process group
is killed and the test fails, saying so."""

import html
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import png

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
# A cold start on a busy 2-core machine takes a few seconds; this is a hang guard.
DEADLINE_SEC = 120
# Headless Chromium does not lay a window out narrower than about 500 px; a
# phone's width is tested in a frame of that width inside a wider window.
MIN_WINDOW_WIDTH = 800

PROBE = r"""
<script>
(function () {
  function box(el) {
    var b = el.getBoundingClientRect();
    return {left: b.left, right: b.right, top: b.top, bottom: b.bottom,
            width: b.width, height: b.height};
  }
  var out = {innerWidth: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
             figures: []};
  document.querySelectorAll("figure.chart").forEach(function (fig) {
    var svg = fig.querySelector("svg.plot");
    var empty = fig.querySelector(".empty");
    var entry = {id: fig.id, box: box(fig), svg: svg ? box(svg) : null,
                 empty: empty ? {box: box(empty), text: empty.textContent} : null,
                 series: svg ? svg.querySelectorAll(".series").length : 0,
                 texts: [], legend: []};
    if (svg) {
      svg.querySelectorAll("text").forEach(function (t) {
        entry.texts.push({text: t.textContent, cls: t.getAttribute("class"), box: box(t),
                          fontSize: parseFloat(getComputedStyle(t).fontSize)});
      });
    }
    fig.querySelectorAll(".legend li").forEach(function (li) {
      entry.legend.push({text: li.textContent, box: box(li)});
    });
    out.figures.push(entry);
  });
  // Inside the narrow frame (see geometry()), the answer goes to the top page.
  var doc = window.parent.document;
  var pre = doc.createElement("pre");
  pre.id = "mtps-probe";
  pre.textContent = JSON.stringify(out);
  doc.body.appendChild(pre);
})();
</script>
"""


def binary():
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("no Chromium found (%s); launcher/install-deps installs it" %
                         ", ".join(CANDIDATES))


def run(args, tmp, deadline=DEADLINE_SEC):
    """Runs headless Chromium with args; returns its stdout (text). Fails
    (AssertionError) on a non-zero exit or at the deadline."""
    tmp = Path(tmp)
    profile = tmp / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    argv = [binary(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", "--disable-background-networking",
            "--user-data-dir=%s" % profile] + list(args)
    env = dict(os.environ, HOME=str(tmp))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()
        raise AssertionError("chromium did not finish within %d s: %s" % (deadline, argv))
    finally:
        _kill_group(proc.pid)  # helpers left behind, if any
    if proc.returncode != 0:
        raise AssertionError("chromium exited %d: %s\n%s" % (
            proc.returncode, argv, err.decode(errors="replace")[-2000:]))
    return out.decode("utf-8", errors="replace")


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def framed(page_text, width, height):
    """A page that shows page_text in a frame width x height at its top left
    (srcdoc: the frame shares the page's origin, so the probe can answer)."""
    return ('<!DOCTYPE html><html><body style="margin:0"><iframe style="border:0;display:block" '
            'width="%d" height="%d" srcdoc="%s"></iframe></body></html>' %
            (width, height, html.escape(page_text, quote=True)))


def screenshot(page, tmp, width, height):
    """The png.Image of page (a path) rendered at width x height (framed
    below MIN_WINDOW_WIDTH; the image is then the window, wider)."""
    shot = Path(tmp) / ("shot-%dx%d.png" % (width, height))
    shot.unlink(missing_ok=True)
    target, window = Path(page).resolve(), width
    if width < MIN_WINDOW_WIDTH:
        target = Path(tmp).resolve() / ("framed-%d.html" % width)
        target.write_text(framed(Path(page).read_text(), width, height))
        window = MIN_WINDOW_WIDTH
    run(["--screenshot=%s" % shot, "--window-size=%d,%d" % (window, height), target.as_uri()],
        tmp)
    if not shot.is_file():
        raise AssertionError("chromium wrote no screenshot %s" % shot)
    return png.decode(shot.read_bytes())


def geometry(page, tmp, width, height=1600):
    """The probe's measurements of page laid out at width x height (a dict:
    innerWidth, scrollWidth, figures[{id, box, svg, empty, series, texts,
    legend}])."""
    probed = Path(tmp).resolve() / ("probed-%d.html" % width)
    text = Path(page).read_text().replace("</body>", PROBE + "</body>", 1)
    window = width
    if width < MIN_WINDOW_WIDTH:
        text, window = framed(text, width, height), MIN_WINDOW_WIDTH
    probed.write_text(text)
    dom = run(["--dump-dom", "--window-size=%d,%d" % (window, height), probed.as_uri()], tmp)
    start = dom.find('<pre id="mtps-probe">')
    if start < 0:
        raise AssertionError("the probe wrote nothing into the DOM:\n" + dom[-2000:])
    end = dom.index("</pre>", start)
    return json.loads(html.unescape(dom[start + len('<pre id="mtps-probe">'):end]))


def overlapping_texts(figure, slack=0.5):
    """Pairs of SVG text boxes of a probed figure that overlap."""
    texts = figure["texts"]
    pairs = []
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            ab, bb = a["box"], b["box"]
            if (ab["left"] < bb["right"] - slack and bb["left"] < ab["right"] - slack and
                    ab["top"] < bb["bottom"] - slack and bb["top"] < ab["bottom"] - slack):
                pairs.append((a["text"], b["text"]))
    return pairs
