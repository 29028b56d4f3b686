"""series.html: a series' verdict on one self-contained page (inline SVG and CSS, no script).

Per SLO: how many repetitions it held in against how many it needs, and a plot of each
repetition's value with its confidence interval against the threshold.
"""

from html import escape
from typing import Any

from reports.style import BASE_CSS

_CSS = BASE_CSS + """
.held{color:#2a7d2a;font-weight:600} .failed{color:#b22;font-weight:600} .undecided{color:#b77a00}
svg{font-size:11px}
"""
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 640, 170, 70, 20, 14, 26


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
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{escape(series['scenario'])} series: {escape(series['verdict'])}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )


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
    """Each repetition's value (dot) and interval (whisker; open sides reach the edge) vs the threshold."""
    runs = [r for r in slo["runs"] if r["measured"] is not None]
    if not runs:
        return ""
    values = [slo["threshold"], *(r["measured"] for r in runs)]
    values += [v for r in runs for v in (r.get("ci") or []) if v is not None]
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    low, high = (max(0.0, low - pad) if low >= 0 else low - pad), high + pad  # no negative latencies
    slots = max(slo["of"], len(runs))

    def sx(rep: int) -> float:
        return _LEFT + (rep - 0.5) / slots * (_W - _LEFT - _RIGHT)

    def sy(value: float | None, open_end: float) -> float:
        value = open_end if value is None else value
        return _H - _BOTTOM - (value - low) / (high - low) * (_H - _TOP - _BOTTOM)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}">',
             f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{sy(slo["threshold"], 0):.1f}" '
             f'y2="{sy(slo["threshold"], 0):.1f}" stroke="#b22" stroke-dasharray="5 3"/>',
             f'<text x="{_LEFT - 6}" y="{sy(slo["threshold"], 0) + 4:.1f}" text-anchor="end">'
             f'{slo["op"]} {slo["threshold"]:g}</text>']
    for value in (low, high):  # the scale: the plot's bottom and top
        parts.append(f'<text x="{_W - _RIGHT}" y="{sy(value, 0) + (0 if value == low else 10):.1f}" '
                     f'text-anchor="end" fill="#888">{value:.4g}</text>')
    for run in runs:
        x, ci = sx(run["repetition"]), run.get("ci")
        colour = "#2a7d2a" if run["passed"] else "#b22"
        if ci is not None:
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{sy(ci[0], low):.1f}" '
                         f'y2="{sy(ci[1], high):.1f}" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{sy(run["measured"], 0):.1f}" r="4" fill="{colour}">'
                     f'<title>repetition {run["repetition"]}: {run["measured"]}</title></circle>')
        parts.append(f'<text x="{x:.1f}" y="{_H - 8}" text-anchor="middle">run {run["repetition"]}</text>')
    parts.append("</svg>")
    return f"<h2>{escape(slo['name'])}</h2>" + "".join(parts)


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
