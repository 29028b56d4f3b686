"""LLM metrics for SLOs: TTFT, inter-token latency, output tokens, tokens/s, from the journal.

The openai user records them per request (`harness.load.measures`); here they are merged over
an SLO's window. Names: `ttft_p99_ms`, `itl_p50_ms`, `ttft_mean_ms`, `itl_max_ms`,
`output_tokens_p50`, `tokens_per_s_p10` ... and `output_tokens_per_s` (all output tokens of the
window / its length: the stack's token throughput).
"""

from typing import Any

from harness.load.measures import SCALE, measure_value, merged_measure
from harness.metrics import LLM_METRIC

THROUGHPUT = "output_tokens_per_s"


def split(metric: str) -> tuple[str, str]:
    """`ttft_p99_ms` -> (`ttft_ms`, `p99`); `tokens_per_s_mean` -> (`tokens_per_s`, `mean`)."""
    match = LLM_METRIC.match(metric)
    if match is None:
        raise KeyError(metric)
    if match.group(1):
        return f"{match.group(1)}_ms", match.group(2)
    return match.group(3), match.group(4)


def llm_measure(records: list[dict[str, Any]], metric: str, span: float) -> tuple[float | None, int]:
    """The metric over these per-second records, and how many requests it rests on."""
    if metric == THROUGHPUT:
        hist = merged_measure(records, "output_tokens")
        count = hist.get_total_count()
        if count == 0 or span <= 0:
            return None, count
        total_tokens = hist.get_mean_value() * count / SCALE
        return round(total_tokens / span, 3), count
    name, stat = split(metric)
    hist = merged_measure(records, name)
    value = measure_value(hist, stat)
    return (None if value is None else round(value, 3)), hist.get_total_count()


def llm_totals(records: list[dict[str, Any]], span: float) -> dict[str, Any]:
    """Whole-run LLM figures for the summary (empty when no request recorded any)."""
    out: dict[str, Any] = {}
    for name in ("ttft_ms", "itl_ms", "output_tokens", "tokens_per_s"):
        hist = merged_measure(records, name)
        if hist.get_total_count() == 0:
            continue
        out[name] = {stat: round(measure_value(hist, stat) or 0.0, 3)
                     for stat in ("p50", "p90", "p99", "mean", "max")}
        out[name]["count"] = hist.get_total_count()
    if out:
        out[THROUGHPUT] = llm_measure(records, THROUGHPUT, span)[0]
    return out


def measure_named(data: Any, metric: str, window: Any) -> tuple[float | None, int]:
    """Entry point from `harness.analysis.measure` for the names in `metrics.LLM_NAMED` and LLM_METRIC."""
    if metric in ("error_window_s", "last_error_s"):
        from harness.errorwindow import window_metric

        return window_metric(data, metric)
    from harness.analysis import records_in

    records, span = records_in(data, window)
    return llm_measure(records, metric, span)
