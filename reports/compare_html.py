"""The comparison page of `harness compare --html`: one row per run, one self-contained file."""

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.compare import RunRow

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
td.num{text-align:right} .muted{color:#666;font-size:13px} code{font-size:12px}
"""


def build_compare_html(rows: "list[RunRow]") -> str:
    body = "".join(_row(row) for row in rows)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>harness compare</title>"
        f"<style>{_CSS}</style></head><body><h1>Runs side by side</h1>"
        "<p class='muted'>Error window: first to last failed request after the fault. Last failure: "
        "how long after the injection the clients still saw failures. Recovery: the harness's "
        "recovery time for the fault (to the second).</p>"
        "<table><tr><th>run</th><th>verdict</th><th>settings</th><th>fault</th><th>requests</th>"
        "<th>failed</th><th>error window (s)</th><th>first failure</th><th>last failure</th>"
        "<th>recovery (s)</th><th>TTFT p99 (ms)</th><th>errors seen</th></tr>"
        f"{body}</table></body></html>"
    )


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
