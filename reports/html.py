"""report.html: one self-contained file (inline SVG and CSS) that opens offline."""

from collections import Counter
from html import escape
from typing import Any

from harness.analysis import RunData
from harness.faultimpact import fault_impacts, fault_intervals
from harness.features import report_sections
from harness.observers.scrape_profile import GENERIC_CHARTS, PROFILE_EVENT, MetricChart
from reports.style import BASE_CSS, fmt, kv_table
from reports.svgplot import Chart, render

_CSS = BASE_CSS

SERIES = "metrics"  # the Prometheus scraper's series, unless its `metrics_profile` event names another
Lines = dict[str, list[tuple[float, float]]]  # a chart's lines by legend

# Events drawn as vertical lines on every chart.
_MARKED = {
    "stack_ready", "load_started", "load_stopped", "interrupted", "stack_failed", "fault_injected",
    "process_exited", "hang_detected", "not_serving", "degraded", "recovered", "restarted",
}


def build_html(summary: dict[str, Any], data: RunData) -> str:
    origin = data.load_start or 0.0
    body = [
        f"<h1>{escape(summary['scenario'])}</h1>",
        f"<p class='muted'>{escape(summary['description'])}</p>",
        f"<p><span class='verdict {escape(summary['verdict'])}'>{escape(summary['verdict'].upper())}</span>"
        f" &nbsp;exit {summary['exit_code']} ({escape(summary['exit_name'])}) &mdash; "
        f"{escape(summary['reason'])}</p>",
        _slo_table(summary["slos"]),
        _story(summary.get("story", [])),
        "<h2>What happened when</h2>",
        "<p class='muted'>Time in seconds from the start of the load; dashed lines are events "
        "(hover for names), shaded bands are windows such as faults.</p>",
        *_charts(data, origin),
        _faults_table(summary.get("faults", []), origin),
        *_feature_sections(summary, data),
        "<h2>Totals</h2>",
        _totals_table(summary["totals"]) + _workers_table(summary["load"].get("workers", [])),
        _findings(summary["findings"]),
        _log_table(summary.get("log_patterns", {}), origin),
        "<h2>Events</h2>",
        _events_table(summary["events"], origin),
    ]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{escape(summary['scenario'])}: {escape(summary['verdict'])}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )


def _feature_sections(summary: dict[str, Any], data: RunData) -> list[str]:
    """Each feature's HTML section, from its part of the summary, in feature order."""
    return [section.html(summary.get(section.key), data) for section in report_sections() if section.html]


def _charts(data: RunData, origin: float) -> list[str]:
    seconds = data.seconds
    if not seconds:
        return ["<p class='muted'>No requests were recorded.</p>"]
    x_range = (min(0.0, seconds[0]["t"] - origin), max(s["t"] for s in seconds) + 1 - origin)
    bands = _bands(data, origin)
    markers = [(e["t"] - origin, e["event"]) for e in data.events if e["event"] in _MARKED]

    def chart(title: str, y_label: str, series: dict[str, list[tuple[float, float]]]) -> str:
        return render(Chart(title, y_label, x_range, series, bands, markers))

    def points(pick: Any) -> list[tuple[float, float]]:
        out = []
        for s in seconds:
            value = pick(s)
            if value is not None:
                out.append((s["t"] - origin + 0.5, float(value)))
        return out

    return [
        *_server_charts(data, origin, chart),
        chart("Throughput", "req/s", {
            "ok/s": points(lambda s: s["ok"]),
            "errors/s": points(lambda s: s["requests"] - s["ok"]),
        }),
        chart("Latency of successful requests", "ms", {
            "p50": points(lambda s: s["latency_ms"].get("p50")),
            "p99": points(lambda s: s["latency_ms"].get("p99")),
        }),
    ]


def _story(lines: list[str]) -> str:
    if not lines:
        return ""
    return f"<h2>What was seen</h2><pre>{escape(chr(10).join(lines))}</pre>"


def _bands(data: RunData, origin: float) -> list[tuple[float, float, str]]:
    """Each fault's impact (injection to recovery), and any other window the journal names."""
    impacts = fault_impacts(data)
    bands = [
        (start - origin, end - origin, f"{impact.id} {impact.name}")
        for impact, (start, end) in zip(impacts, fault_intervals(data), strict=True)
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
    rows = []
    for event in events:
        details = {k: v for k, v in event.items() if k not in ("t", "event")}
        text = ", ".join(f"{k}={v}" for k, v in details.items())
        rows.append(
            f"<tr><td>{event['t'] - origin:+.2f}s</td><td>{escape(event['event'])}</td>"
            f"<td>{escape(text[:400])}</td></tr>"
        )
    return f"<table><tr><th>t</th><th>event</th><th>details</th></tr>{''.join(rows)}</table>"


def _fmt(value: Any) -> str:
    return escape(fmt(value))
