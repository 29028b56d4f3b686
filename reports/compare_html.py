"""The comparison page of `harness compare --html`: one row per run, one self-contained file,
and each run's throughput and p99 on one time axis that starts at each run's first fault."""

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from reports.charts import Chart, Point, render
from reports.html import latency_lines, throughput_lines
from reports.style import BASE_CSS, CHART_HELP, page

if TYPE_CHECKING:
    from harness.compare import RunRow

_CSS = BASE_CSS + """
body{max-width:1200px} td.num{text-align:right} code{font-size:12px}
"""


def build_compare_html(rows: "list[RunRow]") -> str:
    body = "".join(_row(row) for row in rows)
    return page("harness compare", _CSS, (
        "<h1>Runs side by side</h1>"
        "<p class='muted'>Error window: first to last failed request after the fault. Last failure: "
        "how long after the injection the clients still saw failures. Recovery: the harness's "
        "recovery time for the fault (to the second).</p>"
        "<table><tr><th>run</th><th>verdict</th><th>settings</th><th>fault</th><th>requests</th>"
        "<th>failed</th><th>error window (s)</th><th>first failure</th><th>last failure</th>"
        "<th>recovery (s)</th><th>TTFT p99 (ms)</th><th>errors seen</th></tr>"
        f"{body}</table>" + _charts(rows)))


def _charts(rows: "list[RunRow]") -> str:
    """One line per run, its time counted from its first fault (or its load's start)."""
    ok: dict[str, list[Point]] = {}
    p99: dict[str, list[Point]] = {}
    for index, row in enumerate(rows):
        data = row.data
        if data is None or not data.seconds:
            continue
        fault = data.first_event("fault_injected")
        origin = float(fault["t"]) if fault else (data.load_start or 0.0)
        name = f"{index + 1}: {Path(row.run_dir).name}"
        ok[name] = throughput_lines(data, origin)["ok/s"]
        p99[name] = latency_lines(data, origin)["p99"]
    xs = [x for lines in ok.values() for x, _ in lines]
    if not xs:
        return ""
    x_range = (min(xs) - 0.5, max(xs) + 0.5)
    label = "s from the run's first fault (its load's start where it had none)"
    return ("<h2>Each run around its fault</h2>"
            f"<p class='muted'>{CHART_HELP}</p>"
            + render(Chart("Successful requests per second", "req/s", x_range, ok, x_label=label))
            + render(Chart("Latency p99 of successful requests", "ms", x_range, p99, x_label=label)))


def _row(row: "RunRow") -> str:
    settings = "<br>".join(f"{escape(k)}: {escape(str(v))}" for k, v in row.settings.items()) or "-"
    errors = "<br>".join(
        f"{escape(kind)} &times;{count}: <code>{escape(row.messages.get(kind, '')[:140])}</code>"
        for kind, count in row.errors.items()
    ) or "-"
    cells = [
        f"{escape(row.scenario)}<br><span class='muted'>{escape(row.run_dir)}</span>",
        escape(row.verdict), settings, escape(row.fault),
    ]
    numbers = [row.requests, row.failed, row.window_s, row.first_error_after_s, row.last_error_after_s,
               row.recover_s, row.ttft_p99_ms]
    return (
        "<tr>" + "".join(f"<td>{c}</td>" for c in cells)
        + "".join(f"<td class='num'>{'-' if n is None else n}</td>" for n in numbers)
        + f"<td>{errors}</td></tr>"
    )
