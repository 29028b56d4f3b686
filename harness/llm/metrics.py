"""LLM metrics for SLOs: TTFT, inter-token latency, output tokens, tokens/s, from the journal.

The openai user records them per request (`harness.load.measures`); here they are merged over
an SLO's window. Names: `ttft_p99_ms`, `itl_p50_ms`, `ttft_mean_ms`, `itl_max_ms`,
`output_tokens_p50`, `tokens_per_s_p10` ... and `output_tokens_per_s` (all output tokens of the
window / its length: the stack's token throughput).
"""

import re
from typing import Any

from harness.analysis import Measured, RunData, records_in
from harness.load.measures import SCALE, measure_value, merged_measure
from harness.scenario import Window
from harness.sloci import Interval, quantile_interval

THROUGHPUT = "output_tokens_per_s"
MEASURES = ("ttft_ms", "itl_ms", "output_tokens", "tokens_per_s")  # what the openai user records
_STAT = r"(p\d{1,2}(?:\.\d+)?|mean|max)"


def family(measure: str) -> re.Pattern[str]:
    """The SLO names of one measure: `ttft_ms` -> `ttft_p99_ms`, `ttft_mean_ms`, `ttft_max_ms`;
    `output_tokens` -> `output_tokens_p50`, `output_tokens_mean`, ..."""
    base, unit = (measure.removesuffix("_ms"), "_ms") if measure.endswith("_ms") else (measure, "")
    return re.compile(rf"^{base}_{_STAT}{unit}$")


FAMILIES = {measure: family(measure) for measure in MEASURES}


def split(metric: str) -> tuple[str, str]:
    """`ttft_p99_ms` -> (`ttft_ms`, `p99`); `tokens_per_s_mean` -> (`tokens_per_s`, `mean`)."""
    for measure, pattern in FAMILIES.items():
        match = pattern.match(metric)
        if match is not None:
            return measure, match.group(1)
    raise KeyError(metric)


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
    for name in MEASURES:
        hist = merged_measure(records, name)
        if hist.get_total_count() == 0:
            continue
        out[name] = {stat: round(measure_value(hist, stat) or 0.0, 3)
                     for stat in ("p50", "p90", "p99", "mean", "max")}
        out[name]["count"] = hist.get_total_count()
    if out:
        out[THROUGHPUT] = llm_measure(records, THROUGHPUT, span)[0]
    return out


def window_measure(data: RunData, metric: str, window: Window | str) -> Measured:
    """An LLM metric over an SLO's window."""
    records, span = records_in(data, window)
    return Measured(*llm_measure(records, metric, span))


def percentile_interval(
    data: RunData, metric: str, window: Window | str, confidence: float,
) -> Interval | None:
    """`ttft_p99_ms`, `output_tokens_p50`, ...: the order-statistic interval, read off the same
    histogram as the value (means and maxima have none)."""
    measure, stat = split(metric)
    if not stat.startswith("p") or not 0 < float(stat[1:]) < 100:
        return None
    records, _ = records_in(data, window)
    return quantile_interval(merged_measure(records, measure), float(stat[1:]) / 100, confidence, SCALE)
