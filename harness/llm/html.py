"""The report's LLM section: TTFT, ITL, TPOT, end-to-end time, tokens and goodput, and each
fault's error window."""

from html import escape
from typing import Any

from harness.analysis import RunData
from reports.charts import Chart, render

_LABELS = {
    "ttft_ms": "time to first token (ms)",
    "itl_ms": "inter-token latency (ms)",
    "tpot_ms": "time per output token (ms)",
    "e2e_ms": "end-to-end time (ms)",
    "output_tokens": "output tokens per response",
    "tokens_per_s": "tokens/s per request",
}


def llm_section(llm: dict[str, Any] | None, data: RunData) -> str:
    parts = [_llm_totals(llm or {}), *_llm_charts(data)]
    return "".join(p for p in parts if p)


def error_windows_section(windows: list[dict[str, Any]] | None, data: RunData) -> str:
    return error_window_table(windows or [], data.load_start or 0.0)


def _llm_totals(llm: dict[str, Any]) -> str:
    if not llm:
        return ""
    rows = "".join(
        f"<tr><td>{escape(_LABELS.get(name, name))}</td>"
        + "".join(f"<td>{stats.get(s, '-')}</td>" for s in ("p50", "p90", "p99", "mean", "max", "count"))
        + "</tr>"
        for name, stats in llm.items()
        if isinstance(stats, dict) and name != "goodput"
    )
    throughput = llm.get("output_tokens_per_s")
    table = (
        "<table><tr><th>measure</th><th>p50</th><th>p90</th><th>p99</th><th>mean</th><th>max</th>"
        f"<th>requests</th></tr>{rows}</table>" if rows else ""
    )
    return (
        "<h2>LLM: tokens and timing</h2><p class='muted'>Successful requests only. ITL is per request: "
        "(last text chunk &minus; first text chunk) / tokens between them; TPOT: (response complete "
        "&minus; first text chunk) / tokens after the first chunk; tokens counted one per chunk unless "
        "the server reports usage in every chunk. Stack token throughput: "
        f"{escape(str(throughput))} output tokens/s.</p>{_goodput(llm.get('goodput'))}{table}"
    )


def _goodput(goodput: dict[str, Any] | None) -> str:
    """One line: how many requests met every target, their share and their rate."""
    if not goodput:
        return ""
    targets = ", ".join(f"{escape(name)} &le; {value:g}" for name, value in goodput["targets"].items())
    ratio = goodput.get("ratio")
    share = "-" if ratio is None else f"{ratio:.1%}"
    return (
        f"<p><b>Goodput</b> ({targets}): {goodput['good']} of {goodput['requests']} requests good "
        f"({share}, failed requests count as not good), {escape(str(goodput.get('per_s')))} good "
        "requests/s.</p>"
    )


def _llm_charts(data: RunData) -> list[str]:
    seconds = [s for s in data.seconds if s.get("measures")]
    if not seconds:
        return []
    origin = data.load_start or 0.0
    x_range = (0.0, max(s["t"] for s in data.seconds) + 1 - origin)
    markers = [(e["t"] - origin, e["event"]) for e in data.events if e["event"] == "fault_injected"]

    def points(name: str, stat: str) -> list[tuple[float, float]]:
        return [(s["t"] - origin + 0.5, float(s["measures"][name][stat]))
                for s in seconds if stat in s["measures"].get(name, {})]

    charts = [("Time to first token", "ttft_ms"), ("Inter-token latency", "itl_ms"),
              ("Time per output token", "tpot_ms")]
    return [
        render(Chart(title, "ms", x_range, {"p50": points(name, "p50"), "p99": points(name, "p99")},
                     markers=markers))
        for title, name in charts
        # TTFT and ITL always (an empty chart says the answers were not streamed); TPOT where the
        # journal has it (journals from before it was measured do not).
        if name != "tpot_ms" or points(name, "p50")
    ]


def error_window_table(windows: list[dict[str, Any]], origin: float) -> str:
    if not windows:
        return ""
    rows = "".join(
        f"<tr><td>{escape(w['fault_id'])}</td><td>{escape(w['name'])}</td>"
        f"<td>{w['injected_t'] - origin:+.2f}s</td><td>{w['failed_requests']}</td>"
        f"<td>{_after(w['first_error_after_s'])}</td><td>{_after(w['last_error_after_s'])}</td>"
        f"<td>{w['window_s']:.3f}</td><td>{_messages(w)}</td></tr>"
        for w in windows
    )
    return (
        "<h2>Error window per fault</h2><p class='muted'>Failed requests from the fault's injection "
        "to the next fault or the end of the load, timed to the millisecond when they completed.</p>"
        "<table><tr><th>id</th><th>fault</th><th>at</th><th>failed</th><th>first failure</th>"
        f"<th>last failure</th><th>window (s)</th><th>errors seen</th></tr>{rows}</table>"
    )


def _after(value: float | None) -> str:
    return "-" if value is None else f"+{value:.3f}s"


def _messages(window: dict[str, Any]) -> str:
    kinds = window.get("errors_by_kind", {})
    messages = window.get("error_messages", {})
    return "<br>".join(
        f"{escape(kind)} &times;{count}: <code>{escape(str(messages.get(kind, ''))[:160])}</code>"
        for kind, count in kinds.items()
    ) or "-"
