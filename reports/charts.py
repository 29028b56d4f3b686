"""Interactive charts for every report page, drawn in the browser by uPlot (vendored, inlined).

Python decides what is drawn and where the data has holes; `charts.js` only draws. A chart is a
`<figure>` holding its data as JSON; the page carries uPlot and `charts.js` once, inline, so a
page still opens offline from a single file. Charts of one page that share the run's time axis
(`sync=True`) zoom and pan together and show the cursor at the same time.

Gaps: a series' missing stretch is drawn as a gap (a JSON `null` between its neighbours), never
as a straight line across it. Where a count is known to be zero in a missing stretch (a second
with no completed request has no record, and its count was 0), the caller fills the zeros in
itself with `fill_zeros` before it hands the points over.
"""

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from html import escape
from importlib import resources
from statistics import median
from typing import Literal

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]
# A stretch this many times a series' usual spacing without a point is a hole in the data.
GAP_FACTOR = 2.5
# Units as they read: `us` was written for µs in older journals' chart declarations.
_UNIT_SPELLING = {"us": "µs", "": "value"}

Point = tuple[float, float | None]  # None: no value here (drawn as a gap)


@dataclass
class Chart:
    title: str
    y_label: str  # the unit of the y axis: ms, req/s, MiB, ...
    x_range: tuple[float, float]
    series: Mapping[str, Sequence[Point]] = field(default_factory=dict)  # by legend
    bands: list[tuple[float, float, str]] = field(default_factory=list)  # shaded windows
    markers: list[tuple[float, str]] = field(default_factory=list)  # vertical lines (events)
    x_unit: str = "s"
    # what x is: time (in x_unit), nines of a percentile (0 = 0%, 2 = 99%), or a repetition's number
    x_kind: Literal["time", "nines", "index"] = "time"
    x_label: str = "s from the start of the load"
    sync: bool = True  # on the page's shared time axis (zoom one, all follow)
    log_y: bool = False
    # (value, label) ticks for an x axis that is not time (the latency distribution's percentiles)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    height: int = 240
    dots: tuple[str, ...] = ()  # series drawn as dots without a line (one value per repetition)


def render(chart: Chart) -> str:
    """The chart as a `<figure>`; its data travels as JSON for `charts.js` to draw."""
    spec = {
        "title": chart.title,
        "unit": _UNIT_SPELLING.get(chart.y_label, chart.y_label),
        "x_unit": chart.x_unit,
        "x_kind": chart.x_kind,
        "x_label": chart.x_label,
        "x_range": [_finite(chart.x_range[0]), _finite(chart.x_range[1])],
        "series": [{"label": name, "colour": COLOURS[i % len(COLOURS)], "points": _with_gaps(points),
                    "dots": name in chart.dots}
                   for i, (name, points) in enumerate(chart.series.items())],
        "bands": [[_finite(a), _finite(b), label] for a, b, label in chart.bands],
        "markers": [[_finite(x), label] for x, label in chart.markers],
        "sync": chart.sync,
        "log_y": chart.log_y,
        "x_ticks": [[_finite(v), label] for v, label in chart.x_ticks],
        "height": chart.height,
    }
    payload = json.dumps(spec, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (f"<figure class='hchart'><figcaption>{escape(chart.title)}</figcaption>"
            f"<div class='hchart-plot'></div><div class='hchart-note muted'></div>"
            f"<script type='application/json' class='hchart-spec'>{payload}</script></figure>")


def fill_zeros(points: Iterable[Point], start: float, end: float, step: float = 1.0) -> list[Point]:
    """Counts per `step` from `start` to `end`, with a 0 at every step that has no point: for
    counts whose missing step means nothing was counted (not that nothing was seen)."""
    known = {round((x - start) / step): (x, y) for x, y in points}
    count = max(0, math.ceil((end - start) / step - 1e-9))
    filled = [known.get(i, (start + i * step, 0.0)) for i in range(count)]
    filled += [p for i, p in sorted(known.items()) if i >= count or i < 0]
    return sorted(filled, key=lambda p: p[0])


def _with_gaps(points: Sequence[Point]) -> list[list[float | None]]:
    """[[x, y], ...] in x order, a `[x, null]` put into every stretch longer than the usual spacing."""
    ordered = sorted(((x, y) for x, y in points if math.isfinite(x)), key=lambda p: p[0])
    steps = [b[0] - a[0] for a, b in zip(ordered, ordered[1:], strict=False) if b[0] > a[0]]
    usual = median(steps) if steps else 0.0
    out: list[list[float | None]] = []
    for i, (x, y) in enumerate(ordered):
        if i and usual > 0 and x - ordered[i - 1][0] > GAP_FACTOR * usual:
            out.append([(x + ordered[i - 1][0]) / 2, None])
        out.append([x, _finite(y) if y is not None else None])
    return out


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: such a value is no value."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 6)


def chart_assets() -> str:
    """uPlot's stylesheet and script and the harness's `charts.js`, inline, once per page."""
    css, script, ours = _assets()
    return f"<style>{css}{_CSS}</style><script>{script}</script><script>{ours}</script>"


def uses_charts(body: str) -> bool:
    return "hchart-spec" in body


@cache
def _assets() -> tuple[str, str, str]:
    vendor = resources.files("reports") / "vendor" / "uplot"
    return ((vendor / "uPlot.min.css").read_text(encoding="utf-8"),
            (vendor / "uPlot.iife.min.js").read_text(encoding="utf-8").replace("</script", "<\\/script"),
            (resources.files("reports") / "charts.js").read_text(encoding="utf-8"))


# The legend sits under the plot (uPlot's table), never on the data; the note line under it
# names the windows and events at the cursor.
_CSS = """
.hchart{margin:10px 0 18px 0} .hchart figcaption{font-size:13px;font-weight:600;margin-bottom:2px}
.hchart .u-legend{font-size:12px;text-align:left} .hchart .u-legend th{font-weight:500}
.hchart .u-legend td,.hchart .u-legend th{border:0;padding:1px 6px}
.hchart-note{min-height:1.3em;font-size:12px}
.hchart-help{font-size:12px;color:#666}
"""


def percentile_ticks() -> list[tuple[float, str]]:
    """The x axis of a latency distribution: 0, 90, 99, 99.9 ... percent, evenly spaced."""
    return [(0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%"), (5.0, "99.999%")]


def nines(percentile: float) -> float:
    """Where a percentile sits on that axis: -log10(1 - p/100), so 99% is 2 and 99.9% is 3."""
    return -math.log10(max(1e-9, 1.0 - percentile / 100.0))


LADDER = (0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.975, 99.99,
          99.995, 99.999, 99.9995, 99.9999)


def distribution_points(value_at: Callable[[float], float], samples: int) -> list[Point]:
    """(nines, value) along a percentile ladder, from a function that gives the value at a
    percentile (an HDR histogram's, scaled by the caller). Past 1 - 1/samples every percentile is
    the maximum, so the curve ends there, with the maximum."""
    if samples <= 0:
        return []
    limit = math.log10(samples)
    points: list[Point] = [(nines(p), float(value_at(p))) for p in LADDER if nines(p) < limit - 1e-9]
    points.append((limit, float(value_at(100.0))))
    return points
