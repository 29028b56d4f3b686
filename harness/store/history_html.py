"""The history page: one chart per metric (values, intervals, verdicts, change points), drawn
with the report's charts (reports.charts), and the runs' table. Self-contained: it opens offline."""

from __future__ import annotations

from html import escape

from harness.store.history import Marked, cell, describe_change, run_label
from harness.store.points import History
from reports.charts import Chart, Point, render
from reports.style import BASE_CSS, CHART_HELP, page

_CSS = BASE_CSS + """
body{max-width:1100px} table{font-size:12px} td,th{padding:2px 6px}
td.num{text-align:right;white-space:nowrap}
.pass{color:#1a7f37} .fail,.error{color:#c62828} td.worse{background:#fde2e2} td.better{background:#e3f5e6}
"""
MAX_TICKS = 12  # run numbers written under the x axis; hover names every run


def build_history_html(history: History, marks: dict[str, list[Marked]]) -> str:
    runs = history.runs
    changes = [m for ms in marks.values() for m in ms]
    listed = "".join(f"<li>{escape(describe_change(m, runs))}</li>"
                     for m in sorted(changes, key=lambda m: (m.run_index, m.metric)))
    charts = "".join(_chart(name, history, marks.get(name, [])) for name in history.metrics)
    return page(f"history: {history.scenario}", _CSS, (
        f"<h1>History of {escape(history.scenario)}</h1>"
        f"<p class='muted'>{len(runs)} run(s), oldest first, {escape(run_label(runs[0]))} to "
        f"{escape(run_label(runs[-1]))} (UTC). Dots: each run's value (red where the run failed), "
        "with its interval's ends where its SLO has one. Dashed lines: change points (Apache Otava, "
        f"E-divisive means), named under the chart at the cursor. {CHART_HELP}</p>"
        f"<h2>Change points</h2><ul>{listed or '<li>none</li>'}</ul>"
        f"<h2>Metrics</h2>{charts}<h2>Runs</h2>{_table(history, marks)}"))


def _chart(name: str, history: History, marks: list[Marked]) -> str:
    """x is the run's number (1 = oldest); a run without the metric is a hole in the line."""
    points = history.metrics[name]
    if not any(p is not None for p in points):
        return ""
    line: list[Point] = [(i + 1.0, None if p is None else p.value) for i, p in enumerate(points)]
    failed: list[Point] = [(i + 1.0, p.value) for i, p in enumerate(points)
                           if p is not None and history.runs[i].verdict != "pass"]
    low: list[Point] = [(i + 1.0, p.low) for i, p in enumerate(points) if p is not None and p.low is not None]
    high: list[Point] = [(i + 1.0, p.high) for i, p in enumerate(points)
                         if p is not None and p.high is not None]
    n = len(points)
    step = max(1, -(-n // MAX_TICKS))
    ticks = [(float(i), f"#{i}") for i in range(1, n + 1, step)]
    markers = [(m.run_index + 0.5, ("worse: " if m.worse else "better: ") + describe_change(m, history.runs))
               for m in marks]
    lines = {"value": line, "failed run": failed, "interval low": low, "interval high": high}
    chart = Chart(name, _unit(name), (0.5, n + 0.5), lines, markers=markers, x_unit="", x_kind="index",
                  x_label="run (1 = oldest)", sync=False, x_ticks=ticks, height=220,
                  dots=("failed run", "interval low", "interval high"))
    return render(chart)


def _unit(metric: str) -> str:
    """The metric's unit where its name says it (`p99_ms`, `recovery_s`, `throughput_rps`)."""
    for suffix, unit in (("_ms", "ms"), ("_s", "s"), ("_rps", "req/s"), ("_per_s", "1/s"), ("_mb", "MB")):
        if metric.endswith(suffix):
            return unit
    return "ratio" if "rate" in metric or "ratio" in metric else "value"


def _table(history: History, marks: dict[str, list[Marked]]) -> str:
    at = {(m.metric, m.run_index): m for ms in marks.values() for m in ms}
    headers = ("#", "started (UTC)", "verdict", "stack", "harness", "seed", "scenario sha256",
               *history.metrics)
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    rows = []
    for i, run in enumerate(history.runs):
        verdict = escape(run.verdict)
        cells = [str(i + 1), escape(run_label(run)), f"<span class='{verdict}'>{verdict}</span>",
                 escape(f"{run.stack_kind or '?'} {run.stack_version or ''}"),
                 escape(run.harness_version or "-"),
                 escape(str(run.seed) if run.seed is not None else "-"),
                 f"<code title='{escape(run.run_dir)}'>{escape((run.scenario_sha256 or '-')[:12])}</code>"]
        row = "".join(f"<td>{c}</td>" for c in cells)
        for name, points in history.metrics.items():
            mark = at.get((name, i))
            css = "num" if mark is None else f"num {'worse' if mark.worse else 'better'}"
            row += f"<td class='{css}'>{escape(cell(points[i]))}</td>"
        rows.append(f"<tr>{row}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"
