"""What every self-contained report page shares (run, series, soak): the stylesheet each adds its
own rules after, and how a value is written in a cell."""

from html import escape
from typing import Any

from reports.charts import chart_assets, uses_charts

CHART_HELP = ("Drag across a chart to zoom (the charts on the run's time axis follow), double-click "
              "to zoom out, Ctrl+wheel zooms, Shift+wheel pans; hover for values; click a legend "
              "entry to hide or show its line.")

BASE_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:960px}
h1{font-size:20px;margin-bottom:4px} h2{font-size:16px;margin-top:28px}
.verdict{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:600}
.pass,.reproduced{background:#2a7d2a} .fail,.not_reproduced,.stack_failed,.error,.usage_error{background:#b22}
.interrupted,.incomplete{background:#b77a00}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
td.ok{color:#2a7d2a;font-weight:600} td.bad{color:#b22;font-weight:600} td.num{text-align:right}
.muted{color:#666;font-size:13px}
table.events td{vertical-align:top} details pre{white-space:pre-wrap;margin:2px 0;font-size:12px}
summary{cursor:pointer} p.files{font-size:13px}
"""


def fmt(value: Any) -> str:
    """A value as plain text: an en dash for none, four significant digits for a float."""
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def kv_table(rows: list[tuple[str, Any]]) -> str:
    """A two-column table of names and values."""
    cells = "".join(f"<tr><td>{escape(k)}</td><td>{escape(fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def page(title: str, css: str, body: str) -> str:
    """A whole self-contained page; the chart library comes along only where a chart is drawn."""
    assets = chart_assets() if uses_charts(body) else ""
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{css}</style></head><body>{body}{assets}</body></html>")
