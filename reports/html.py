"""report.html: one self-contained file (inline script, styles and data) that opens offline."""

import json
import math
from collections import Counter
from collections.abc import Callable
from html import escape
from typing import Any

from harness.analysis import RunData, merged_histogram
from harness.faultimpact import fault_impacts, fault_intervals
from harness.features import report_sections
from harness.load.percentiles import value_at_percentile
from harness.observers.scrape_profile import GENERIC_CHARTS, PROFILE_EVENT, MetricChart
from reports.charts import Chart, Point, distribution_points, fill_zeros, percentile_ticks, render
from reports.style import BASE_CSS, CHART_HELP, fmt, kv_table, page

_CSS = BASE_CSS

SERIES = "metrics"  # the Prometheus scraper's series, unless its `metrics_profile` event names another
Lines = dict[str, list[tuple[float, float]]]  # a chart's lines by legend

# Events drawn as vertical lines on every chart.
_MARKED = {
    "stack_ready", "load_started", "load_stopped", "interrupted", "stack_failed", "fault_injected",
    "process_exited", "hang_detected", "not_serving", "degraded", "recovered", "restarted",
}


def build_html(summary: dict[str, Any], data: RunData, files: list[tuple[str, int]] | None = None) -> str:
    """The page; `files` ((path relative to the run folder, bytes)) are linked from it."""
    origin = data.load_start or 0.0
    body = [
        f"<h1>{escape(summary['scenario'])}</h1>",
        f"<p class='muted'>{escape(summary['description'])}</p>",
        f"<p><span class='verdict {escape(summary['verdict'])}'>{escape(summary['verdict'].upper())}</span>"
        f" &nbsp;exit {summary['exit_code']} ({escape(summary['exit_name'])}) &mdash; "
        f"{escape(summary['reason'])}</p>",
        _file_links(files or []),
        _slo_table(summary["slos"]),
        _story(summary.get("story", [])),
        "<h2>What happened when</h2>",
        "<p class='muted'>Time in seconds from the start of the load; dashed lines are events, "
        "shaded bands are windows such as faults (the line under a chart names those at the "
        f"cursor). {CHART_HELP}</p>",
        *_charts(data, origin),
        _latency_distribution(data),
        _faults_table(summary.get("faults", []), origin),
        *_fault_panels(data, origin),
        *_feature_sections(summary, data),
        "<h2>Totals</h2>",
        _totals_table(summary["totals"]) + _workers_table(summary["load"].get("workers", [])),
        _findings(summary["findings"]),
        _log_table(summary.get("log_patterns", {}), origin),
        "<h2>Events</h2>",
        _events_table(summary["events"], origin),
    ]
    return page(f"{summary['scenario']}: {summary['verdict']}", _CSS, "".join(body))


def live_charts(data: RunData) -> str:
    """The report's time charts and latency distribution for the journal so far (the live page)."""
    origin = data.load_start or 0.0
    return "".join([*_charts(data, origin), _latency_distribution(data)])


def _feature_sections(summary: dict[str, Any], data: RunData) -> list[str]:
    """Each feature's HTML section, from its part of the summary, in feature order."""
    return [section.html(summary.get(section.key), data) for section in report_sections() if section.html]


def _charts(data: RunData, origin: float) -> list[str]:
    seconds = data.seconds
    if not seconds:
        return ["<p class='muted'>No requests were recorded.</p>"]
    x_range = (min(0.0, seconds[0]["t"] - origin), max(s["t"] for s in seconds) + 1 - origin)
    bands = _bands(data, origin)
    markers = _markers(data, origin)

    def chart(title: str, y_label: str, series: dict[str, list[Point]]) -> str:
        return render(Chart(title, y_label, x_range, series, bands, markers))

    return [
        *_server_charts(data, origin, chart),
        chart("Throughput", "req/s", throughput_lines(data, origin)),
        chart("Latency of successful requests", "ms", latency_lines(data, origin)),
    ]


def _markers(data: RunData, origin: float) -> list[tuple[float, str]]:
    return [(e["t"] - origin, _marker_label(e)) for e in data.events if e["event"] in _MARKED]


def _marker_label(event: dict[str, Any]) -> str:
    """`fault_injected f0.0 process_kill`, `process_exited engine_core`: what a reader looks for."""
    extra = [str(event[k]) for k in ("id", "kind", "role", "after") if event.get(k) not in (None, "")]
    return " ".join([event["event"], *extra])


def _second_span(data: RunData) -> range:
    """Every second of the load, as the recorder numbers them (the run clock, floored)."""
    first = min(int(s["t"]) for s in data.seconds)
    last = max(int(s["t"]) for s in data.seconds)
    if data.load_start is not None:
        first = min(first, math.floor(data.load_start))
    if data.load_end is not None:
        last = max(last, math.ceil(data.load_end) - 1)
    return range(first, last + 1)


def throughput_lines(data: RunData, origin: float) -> dict[str, list[Point]]:
    """A second with no record completed nothing: its counts are zeros, not a hole."""
    span = _second_span(data)
    start, end = span.start - origin + 0.5, span.stop - origin + 0.5
    ok = [(s["t"] - origin + 0.5, float(s["ok"])) for s in data.seconds]
    errors = [(s["t"] - origin + 0.5, float(s["requests"] - s["ok"])) for s in data.seconds]
    return {"ok/s": fill_zeros(ok, start, end), "errors/s": fill_zeros(errors, start, end)}


def latency_lines(data: RunData, origin: float) -> dict[str, list[Point]]:
    """A second with no successful request has no latency: a hole in the line, never a slope."""
    by_second = {int(s["t"]): s for s in data.seconds}

    def line(percentile: str) -> list[Point]:
        out: list[Point] = []
        for second in _second_span(data):
            value = (by_second.get(second) or {}).get("latency_ms", {}).get(percentile)
            out.append((second - origin + 0.5, None if value is None else float(value)))
        return out

    return {"p50": line("p50"), "p99": line("p99")}


def _latency_distribution(data: RunData) -> str:
    """The whole load's latency by percentile, from the merged HDR histograms (log scale); with
    faults, also the seconds inside and outside their windows, so the tail they add shows."""
    curves = {"all successful requests": data.seconds}
    windows = fault_intervals(data)
    if windows:
        def inside(record: dict[str, Any]) -> bool:
            return any(start < record["t"] + 1 and record["t"] < end for start, end in windows)
        curves["seconds inside fault windows"] = [s for s in data.seconds if inside(s)]
        curves["seconds outside fault windows"] = [s for s in data.seconds if not inside(s)]
    lines: dict[str, list[Point]] = {}
    top = 0.0
    for name, records in curves.items():
        hist = merged_histogram(records)
        count = hist.get_total_count()
        if count:
            lines[name] = distribution_points(_scaled(hist), count)
            top = max(top, math.log10(count))
    if not lines:
        return ""
    ticks = [t for t in percentile_ticks() if t[0] <= math.ceil(top)]
    chart = Chart("Latency by percentile (successful requests)", "ms", (0.0, max(1.0, top)), lines,
                  x_unit="", x_kind="nines", x_label="percentile (log scale of 1 / (1 - p))",
                  sync=False, log_y=True, x_ticks=ticks, height=260)
    return "<h2>Latency distribution</h2>" + render(chart)


def _scaled(hist: Any) -> Callable[[float], float]:
    return lambda percentile: value_at_percentile(hist, percentile) / 1000.0  # µs to ms


def _fault_panels(data: RunData, origin: float) -> list[str]:
    """Per fault, its window zoomed: throughput and p99 from 5 s before to 10 s after."""
    if not data.seconds:
        return []
    panels = []
    throughput, latency = throughput_lines(data, origin), latency_lines(data, origin)
    markers = _markers(data, origin)
    impacts = fault_impacts(data)
    for impact, (start, end) in zip(impacts, fault_intervals(data, impacts), strict=True):
        x_range = (start - origin - 5.0, end - origin + 10.0)
        band = [(start - origin, end - origin, f"{impact.id} {impact.name}")]

        def near(points: list[Point], lo: float = x_range[0], hi: float = x_range[1]) -> list[Point]:
            return [p for p in points if lo - 1 <= p[0] <= hi + 1]

        lines = {k: near(v) for k, v in throughput.items()}
        panels.append(render(Chart(f"{impact.id} {impact.name}: throughput", "req/s", x_range, lines, band,
                                   markers, sync=False, height=170)))
        panels.append(render(Chart(f"{impact.id} {impact.name}: latency p99", "ms", x_range,
                                   {"p99": near(latency["p99"])}, band, markers, sync=False, height=170)))
    return (["<h3>Each fault's window, zoomed</h3>"] + panels) if panels else []


def _story(lines: list[str]) -> str:
    if not lines:
        return ""
    return f"<h2>What was seen</h2><pre>{escape(chr(10).join(lines))}</pre>"


def _bands(data: RunData, origin: float) -> list[tuple[float, float, str]]:
    """Each fault's impact (injection to recovery), and any other window the journal names."""
    impacts = fault_impacts(data)
    bands = [
        (start - origin, end - origin, f"{impact.id} {impact.name}")
        for impact, (start, end) in zip(impacts, fault_intervals(data, impacts), strict=True)
    ]
    bands += [
        (e["start"] - origin, e["end"] - origin, e.get("name", "window"))
        for e in data.events
        if e["event"] == "window" and e.get("kind") != "fault"
    ]
    return bands


def _server_charts(data: RunData, origin: float, chart: Any) -> list[str]:
    """The server's own view from its Prometheus metrics, beside the client's: the charts the
    stack's scrape profile declared (recorded in the journal), so this names no server."""
    series, declared = _declared_charts(data)
    samples = data.series.get(series, [])
    if not samples:
        return []
    charts = []
    for spec in declared:
        lines = _chart_lines(samples, spec, origin)
        if lines:
            charts.append(chart(spec.title, spec.unit, lines))
    return charts


def _declared_charts(data: RunData) -> tuple[str, tuple[MetricChart, ...]]:
    """The series and charts of the scraper's `metrics_profile` event; a journal written before
    the scraper recorded one gets the generic charts (every rate, every per-request mean)."""
    for event in reversed(data.events):
        if event["event"] == PROFILE_EVENT:
            records = [c for c in event.get("charts") or () if isinstance(c, dict)]
            return str(event.get("series") or SERIES), tuple(MetricChart.from_record(c) for c in records)
    return SERIES, GENERIC_CHARTS


def _chart_lines(samples: list[dict[str, Any]], spec: MetricChart, origin: float) -> Lines:
    """One line per key the chart draws; labels join the legend only where one name has several
    label sets (two models, two engines), so each still gets its own line."""
    by_key: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for sample in samples:
        for key, value in sample["values"].items():
            name, _, labels = key.partition("{")
            if spec.draws(name):
                point = (sample["t"] - origin, float(value) * spec.scale)
                by_key.setdefault((name, labels), []).append(point)
    label_sets = Counter(name for name, _ in by_key)
    lines: Lines = {}
    for (name, labels), points in by_key.items():
        legend = spec.legend(name)
        lines[legend + "{" + labels if label_sets[name] > 1 and labels else legend] = points
    return lines


def _log_table(patterns: dict[str, Any], origin: float) -> str:
    if not patterns:
        return ""
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{_log_count(stats)}</td>"
        f"<td>{_rel(stats.get('first_t'), origin)}</td><td>{_rel(stats.get('last_t'), origin)}</td>"
        f"<td><code>{escape(str(stats.get('first_line', ''))[:200])}</code></td></tr>"
        for name, stats in patterns.items()
    )
    return (
        "<h2>Log patterns seen</h2><table><tr><th>pattern</th><th>count</th><th>first</th>"
        f"<th>last</th><th>first line</th></tr>{rows}</table>"
    )


def _log_count(stats: dict[str, Any]) -> str:
    """The count, and how many of those lines the harness's own signals caused (its stop's SIGTERM)."""
    harness = min(int(stats.get("harness") or 0), int(stats["count"]))  # a soak cycle's count is rebased
    return f"{stats['count']} ({harness} from the harness's own signals)" if harness else str(stats["count"])


def _rel(t: Any, origin: float) -> str:
    return "-" if t is None else f"{float(t) - origin:+.2f}s"


def _faults_table(faults: list[dict[str, Any]], origin: float) -> str:
    if not faults:
        return ""
    rows = "".join(
        f"<tr><td>{escape(f['id'])}</td><td>{escape(f['name'])}</td>"
        f"<td>{f['injected_t'] - origin:+.2f}s</td><td>{escape(str(f['detected_by'] or '-'))}</td>"
        f"<td>{_fmt(f['detect_s'])}</td><td>{_recovery(f)}</td><td>{f['failed_requests']}</td>"
        f"<td>{_error_span(f, origin)}</td>"
        f"<td>{escape(', '.join(f'{k}: {v}' for k, v in f['errors_by_kind'].items()))}</td></tr>"
        for f in faults
    )
    return (
        "<h2>Faults and their impact</h2><table><tr><th>id</th><th>fault</th><th>at</th>"
        "<th>noticed as</th><th>detect (s)</th><th>recover (s)</th><th>failed requests</th>"
        f"<th>errors from-to</th><th>errors seen</th></tr>{rows}</table>"
    )


def _recovery(fault: dict[str, Any]) -> str:
    if fault["detected_t"] is None:
        return "no failure seen"
    if fault["recover_s"] is None:
        return "<b>never recovered</b>"
    return _fmt(fault["recover_s"])


def _error_span(fault: dict[str, Any], origin: float) -> str:
    if fault["first_error_t"] is None:
        return "-"
    return f"{fault['first_error_t'] - origin:+.0f}s to {fault['last_error_t'] - origin:+.0f}s"


def _slo_table(slos: list[dict[str, Any]]) -> str:
    if not slos:
        return "<p class='muted'>This scenario sets no SLO.</p>"
    rows = "".join(
        f"<tr><td>{escape(s['name'])}</td><td>{_fmt(s['measured'])}</td><td>{_ci(s)}</td>"
        f"<td>{escape(s['op'])} {s['threshold']:g}</td><td>{s['samples']}</td>"
        f"<td class='{'ok' if s['passed'] else 'bad'}'>{'held' if s['passed'] else 'FAILED'}"
        f"{' (marginal)' if s.get('marginal') else ''}</td></tr>"
        for s in slos
    )
    notes = "".join(f"<li>{escape(s['name'])}: {escape(s['detail'])}</li>" for s in slos
                    if s.get("marginal") or "too few samples" in s["detail"])
    return (
        "<table><tr><th>SLO</th><th>measured</th><th>confidence interval</th><th>threshold</th>"
        f"<th>samples</th><th>result</th></tr>{rows}</table>"
        + (f"<ul class='muted'>{notes}</ul>" if notes else "")
    )


def _ci(slo: dict[str, Any]) -> str:
    """`95%: 39.8 to 44.1`; a side the sample cannot bound is open."""
    if not slo.get("ci"):
        return "&ndash;"
    low, high = ("open" if v is None else _fmt(float(v)) for v in slo["ci"])
    return f"{slo['confidence']:.0%}: {low} to {high}"


def _totals_table(totals: dict[str, Any]) -> str:
    rows = [
        ("requests", totals["requests"]),
        ("succeeded", totals["ok"]),
        ("failed", totals["errors"]),
        ("error rate", totals["error_rate"]),
        ("throughput (ok/s)", totals["throughput_rps"]),
        ("late (open model)", totals["late"]),
        ("unsent (open model)", totals["unsent"]),
    ]
    rows += [(f"latency {k} (ms)", v) for k, v in totals["latency_ms"].items()]
    rows += [(f"errors: {k}", v) for k, v in totals["errors_by_kind"].items()]
    return kv_table(rows)


def _workers_table(workers: list[dict[str, Any]]) -> str:
    """Distributed load: each worker's own count, so an idle or lost worker stands out."""
    if not workers:
        return ""
    rows = "".join(
        f"<tr><td>{i}</td><td>{escape(str(w['host']))}</td><td>{w['pid']}</td><td>{_fmt(w['requests'])}</td>"
        f"<td>{_fmt(w['ok'])}</td></tr>"
        for i, w in enumerate(workers)
    )
    return ("<h3>Load workers</h3><table><tr><th>worker</th><th>host</th><th>pid</th><th>requests</th>"
            f"<th>succeeded</th></tr>{rows}</table>")


def _findings(findings: list[str]) -> str:
    if not findings:
        return ""
    items = "".join(f"<li>{escape(f)}</li>" for f in findings)
    return f"<h2>Findings</h2><ul>{items}</ul>"


def _events_table(events: list[dict[str, Any]], origin: float) -> str:
    """Each event's details as `name: value`, nested values as JSON; long ones fold open."""
    rows = []
    for event in events:
        details = {k: v for k, v in event.items() if k not in ("t", "event", "type", "wall")}
        rows.append(f"<tr><td>{event['t'] - origin:+.2f}s</td><td>{escape(event['event'])}</td>"
                    f"<td>{_details(details)}</td></tr>")
    return f"<table class='events'><tr><th>t</th><th>event</th><th>details</th></tr>{''.join(rows)}</table>"


def _details(details: dict[str, Any]) -> str:
    parts = []
    for key, value in details.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
        if len(text) > 160:
            pretty = value if isinstance(value, str) else json.dumps(value, default=str, indent=1,
                                                                        ensure_ascii=False)
            parts.append(f"<details><summary><b>{escape(key)}</b>: {escape(text[:100])}&hellip;</summary>"
                         f"<pre>{escape(pretty)}</pre></details>")
        else:
            parts.append(f"<b>{escape(key)}</b>: {escape(text)}")
    return "<br>".join(parts)


def _file_links(files: list[tuple[str, int]]) -> str:
    """Links to the run folder's files, relative: they work wherever the folder is copied."""
    if not files:
        return ""
    links = " &middot; ".join(f"<a href='{escape(path)}'>{escape(path)}</a> <span class='muted'>"
                              f"({_size(size)})</span>" for path, size in files)
    return f"<p class='files'>Files of this run: {links}</p>"


def _size(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _fmt(value: Any) -> str:
    return escape(fmt(value))
