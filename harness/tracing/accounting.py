"""Span accounting: spans the load implies against spans the collector received.

Triton traces one request in `rate` (deterministically, by count), and each traced request gives
three spans: the request span, the model span and the compute span. The requests the server
handled come from its own Prometheus counters, else from the client's count.
"""

from typing import Any

from harness.analysis import RunData, log_count, totals

SPAN_KINDS = ("request", "model", "compute")
TRITON_DEFAULT_RATE = 1000


def observer_summary(data: RunData, name: str) -> dict[str, Any] | None:
    for event in data.events:
        if event["event"] == "observer_stopped" and event.get("observer") == name:
            summary: dict[str, Any] = event["summary"]
            return summary
    return None


def server_requests(data: RunData) -> tuple[int, str]:
    """Inference requests the server handled, and where that figure comes from."""
    prometheus = observer_summary(data, "prometheus")
    if prometheus and prometheus.get("increase"):
        handled = sum(
            value for key, value in prometheus["increase"].items()
            if key.startswith(("nv_inference_request_success", "nv_inference_request_failure"))
        )
        if handled:
            return int(handled), "server metrics"
    return int(totals(data)["requests"]), "client count"


def span_accounting(data: RunData, trace: dict[str, Any]) -> dict[str, Any] | None:
    """None unless spans went to the harness's own collector."""
    traces = observer_summary(data, "traces")
    if trace.get("mode") != "opentelemetry" or not traces or "collector" not in traces:
        return None
    collector = traces["collector"]
    handled, source = server_requests(data)
    expected = handled // int(trace.get("rate") or TRITON_DEFAULT_RATE)
    count = trace.get("count")
    if count is not None and count > 0:
        expected = min(expected, int(count))
    received = {kind: int(collector["spans_by_kind"].get(kind, 0)) for kind in SPAN_KINDS}
    rejected = int(collector.get("spans_rejected", 0))
    lost_total = sum(max(expected - n, 0) for n in received.values())
    dropped = log_count(data, "dropped_span")
    return {
        "server_requests": handled,
        "requests_from": source,
        "rate": trace.get("rate") or TRITON_DEFAULT_RATE,
        "expected_per_kind": expected,
        "received": received,
        "lost": {kind: max(expected - n, 0) for kind, n in received.items()},
        "lost_fraction": round(1 - received["request"] / expected, 4) if expected else None,
        "lost_total": lost_total,
        "rejected_by_collector": rejected,
        "dropped_span_warnings": dropped,
        # Each `queue is full - dropping span` line is one span of any kind, so with a clean
        # shutdown (the exporter flushes its queue and its log) lost == dropped + refused.
        "unexplained_loss": lost_total - dropped - rejected,
        "exports": collector.get("exports"),
        "note": "assumes the trace rate did not change during the run",
    }


def trace_breakdown(data: RunData) -> dict[str, Any] | None:
    """Per model and protocol: where time went, from traces, beside the client's latency."""
    traces = observer_summary(data, "traces")
    if not traces:
        return None
    return {
        "traces": traces.get("traces", 0),
        "models": traces.get("models", []),
        "slowest_timeline": traces.get("slowest_timeline"),
        "client_latency_ms": totals(data)["latency_ms"],
    }
