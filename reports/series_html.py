"""series.html: a series' verdict on one self-contained page (inline charts, styles and data).

Per SLO: how many repetitions it held in against how many it needs, and a plot of each
repetition's value with its confidence interval against the threshold.
"""

from html import escape
from typing import Any

from reports.charts import Chart, Point, render
from reports.style import BASE_CSS, page

_CSS = BASE_CSS + """
.held{color:#2a7d2a;font-weight:600} .failed{color:#b22;font-weight:600} .undecided{color:#b77a00}
"""


def build_series_html(series: dict[str, Any]) -> str:
    body = [
        f"<h1>{escape(series['scenario'])}: series of {series['repeat']}</h1>",
        f"<p class='muted'>{escape(series['description'])}</p>",
        f"<p><span class='verdict {escape(series['verdict'])}'>{escape(series['verdict'].upper())}</span>"
        f" &nbsp;exit {series['exit_code']} ({escape(series['exit_name'])}) &mdash; "
        f"{escape(series['reason'])}</p>",
        _slo_table(series),
        *(_slo_plot(slo) for slo in series["slos"]),
        "<h2>Repetitions</h2>",
        _repetitions(series),
    ]
    return page(f"{series['scenario']} series: {series['verdict']}", _CSS, "".join(body))


def _slo_table(series: dict[str, Any]) -> str:
    if not series["slos"]:
        return "<p class='muted'>This scenario sets no SLO.</p>"
    rows = "".join(
        f"<tr><td>{escape(s['name'])}</td><td>{s['required']} of {s['of']}</td>"
        f"<td>{s['passes']} of {s['judged']}</td><td class='{s['status']}'>{s['status']}</td>"
        f"<td>{_spread(s['spread'])}</td><td>{_overlap(s['cis_overlap'])}</td></tr>"
        for s in series["slos"]
    )
    return ("<table><tr><th>SLO</th><th>needs</th><th>held in</th><th>result</th>"
            f"<th>measured min / median / max</th><th>intervals overlap</th></tr>{rows}</table>")


def _spread(spread: dict[str, float] | None) -> str:
    if spread is None:
        return "&ndash;"
    return " / ".join(f"{spread[k]:.4g}" for k in ("min", "median", "max"))


def _overlap(overlap: bool | None) -> str:
    return "&ndash;" if overlap is None else "yes" if overlap else "<b>no</b>"


def _slo_plot(slo: dict[str, Any]) -> str:
    """Each repetition's value and interval (an open side is left out) against the threshold."""
    runs = [r for r in slo["runs"] if r["measured"] is not None]
    if not runs:
        return ""
    slots = max(slo["of"], len(runs))
    held: list[Point] = [(float(r["repetition"]), float(r["measured"])) for r in runs if r["passed"]]
    failed: list[Point] = [(float(r["repetition"]), float(r["measured"])) for r in runs if not r["passed"]]
    low: list[Point] = [(float(r["repetition"]), _side(r, 0)) for r in runs]
    high: list[Point] = [(float(r["repetition"]), _side(r, 1)) for r in runs]
    threshold = f"threshold ({slo['op']} {slo['threshold']:g})"
    lines: dict[str, list[Point]] = {
        "held": held, "failed": failed, "interval low": low, "interval high": high,
        threshold: [(0.5, float(slo["threshold"])), (slots + 0.5, float(slo["threshold"]))]}
    ticks = [(float(n), f"run {n}") for n in range(1, slots + 1)]
    chart = Chart(slo["name"], slo.get("unit") or "value", (0.5, slots + 0.5), lines, x_unit="",
                  x_kind="index", x_label="repetition", sync=False, x_ticks=ticks, height=200,
                  dots=("held", "failed", "interval low", "interval high"))
    return f"<h2>{escape(slo['name'])}</h2>" + render(chart)


def _side(run: dict[str, Any], index: int) -> float | None:
    ci = run.get("ci")
    value = ci[index] if ci else None
    return None if value is None else float(value)


def _repetitions(series: dict[str, Any]) -> str:
    base = series["series_dir"].rstrip("/") + "/"
    rows = []
    for rep in series["repetitions"]:
        folder = rep["run_dir"].removeprefix(base)
        rows.append(
            f"<tr><td>{rep['index']}</td><td>{escape(rep['verdict'])}</td><td>{escape(rep['reason'])}</td>"
            f"<td>{rep.get('seed')}</td>"
            f"<td><a href='{escape(folder)}/report.html'>{escape(folder)}</a></td></tr>"
        )
    if not rows:
        return "<p class='muted'>No repetition ran.</p>"
    return ("<table><tr><th>#</th><th>verdict</th><th>reason</th><th>seed</th><th>run</th></tr>"
            f"{''.join(rows)}</table>")
