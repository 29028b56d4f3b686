"""The report's tracing section: span accounting, and where time goes per model and protocol."""

from html import escape
from typing import Any


def tracing_section(tracing: dict[str, Any] | None) -> str:
    if not tracing:
        return ""
    parts = ["<h2>Tracing</h2>", f"<p class='muted'>settings: {escape(str(tracing['settings']))}</p>"]
    if tracing.get("spans"):
        parts.append(_spans(tracing["spans"]))
    breakdown = tracing.get("breakdown")
    if breakdown and breakdown.get("models"):
        parts.append(_breakdown(breakdown))
    if breakdown and breakdown.get("slowest_timeline"):
        parts.append("<h3>Slowest traced request</h3>")
        parts.append(f"<pre>{escape(breakdown['slowest_timeline'])}</pre>")
    return "".join(parts)


def _spans(spans: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{kind}</td><td>{spans['expected_per_kind']}</td><td>{received}</td>"
        f"<td>{spans['lost'][kind]}</td></tr>"
        for kind, received in spans["received"].items()
    )
    return (
        f"<p>Server handled {spans['server_requests']} requests ({escape(spans['requests_from'])}); "
        f"at rate 1/{spans['rate']} that is {spans['expected_per_kind']} traced requests. "
        f"Lost: {_pct(spans['lost_fraction'])}. Dropped-span warnings in the server log: "
        f"{spans['dropped_span_warnings']}. Spans the collector refused: {spans['rejected_by_collector']}."
        f" <span class='muted'>({escape(spans['note'])})</span></p>"
        "<table><tr><th>span kind</th><th>expected</th><th>received</th><th>lost</th></tr>"
        f"{rows}</table>"
    )


def _breakdown(breakdown: dict[str, Any]) -> str:
    client = breakdown["client_latency_ms"]
    out = [
        f"<p>{breakdown['traces']} traces. Client-side latency for the same run (Locust): "
        f"p50 {client.get('p50', '-')} ms, p90 {client.get('p90', '-')} ms, "
        f"p99 {client.get('p99', '-')} ms.</p>"
    ]
    for model in breakdown["models"]:
        rows = "".join(
            f"<tr><td>{escape(key)}</td><td>{s['count']}</td><td>{s['avg']:.0f}</td><td>{s['p50']:.0f}</td>"
            f"<td>{s['p90']:.0f}</td><td>{s['p99']:.0f}</td></tr>"
            for key, s in model["us"].items()
        )
        out.append(
            f"<h3>{escape(model['model'])} over {escape(model['protocol'])}: "
            f"{model['trace_count']} traces</h3>"
            "<table><tr><th>component</th><th>n</th><th>avg us</th><th>p50 us</th><th>p90 us</th>"
            f"<th>p99 us</th></tr>{rows}</table>"
        )
    return "".join(out)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"
