"""Reads the report page back (tests of launcher/mtps_launch/report.py):
each chart's figure with its SVG lines, legend, ticks, markers and "no data"
note, parsed with html.parser as the tests see them."""

from html.parser import HTMLParser

CHART_IDS = ("loss", "auc", "throughput", "server-rows", "server-requests")


class Figure:
    def __init__(self, figure_id):
        self.id = figure_id
        self.svg = False
        self.lines = []  # [[(x, y)...]] of each polyline (a circle: one point)
        self.line_names = []
        self.legend = []
        self.empty = None
        self.x_ticks = []  # [(x, anchor, text)]
        self.y_ticks = []  # [(y, text)]
        self.markers = []  # x of each marker line
        self.marker_tags = []
        self.labels = []


class PageParser(HTMLParser):
    """The page's figures, as Figure objects in page order."""

    def __init__(self):
        super().__init__()
        self.figures = []
        self._text_target = None
        self._in_legend = False
        self._in_series = False
        self._tick = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "").split()
        fig = self.figures[-1] if self.figures else None
        if tag == "figure":
            self.figures.append(Figure(a.get("id")))
        elif fig is None:
            return
        elif tag == "svg" and "plot" in cls:
            fig.svg = True
        elif tag == "ul" and "legend" in cls:
            self._in_legend = True
        elif tag == "li" and self._in_legend:
            fig.legend.append("")
            self._text_target = ("legend", fig)
        elif tag == "div" and "empty" in cls:
            fig.empty = ""
            self._text_target = ("empty", fig)
        elif tag == "polyline":
            fig.lines.append([tuple(float(v) for v in p.split(","))
                              for p in a["points"].split()])
            self._in_series = True
        elif tag == "circle" and "series" in cls:
            fig.lines.append([(float(a["cx"]), float(a["cy"]))])
            self._in_series = True
        elif tag == "title" and self._in_series:
            fig.line_names.append("")
            self._text_target = ("line_name", fig)
        elif tag == "text" and "tick" in cls:
            self._tick = (a, fig)
        elif tag == "text" and "mtag" in cls:
            fig.marker_tags.append("")
            self._text_target = ("tag", fig)
        elif tag == "text" and "label" in cls:
            fig.labels.append("")
            self._text_target = ("label", fig)
        elif tag == "line" and "marker" in cls:
            fig.markers.append(float(a["x1"]))

    def handle_endtag(self, tag):
        if tag == "ul":
            self._in_legend = False
        if tag in ("polyline", "circle"):
            self._in_series = False
        if tag in ("li", "div", "title", "text"):
            self._text_target = None
        if tag == "text":
            self._tick = None

    def handle_data(self, data):
        if self._tick is not None:
            a, fig = self._tick
            if a.get("text-anchor") == "end" and "y" in a and float(a["x"]) < 100:
                fig.y_ticks.append((float(a["y"]), data))
            else:
                fig.x_ticks.append((float(a["x"]), a.get("text-anchor"), data))
            return
        if self._text_target is None:
            return
        kind, fig = self._text_target
        if kind == "legend":
            fig.legend[-1] += data
        elif kind == "empty":
            fig.empty += data
        elif kind == "line_name":
            fig.line_names[-1] += data
        elif kind == "tag":
            fig.marker_tags[-1] += data
        elif kind == "label":
            fig.labels[-1] += data


def figures(page):
    parser = PageParser()
    parser.feed(page)
    return {f.id: f for f in parser.figures}
