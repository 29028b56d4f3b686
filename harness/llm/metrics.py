"""LLM metrics for SLOs: TTFT, ITL, TPOT, end-to-end time, tokens and goodput, from the journal.

The openai user records them per request (`harness.load.measures`; where each clock starts and
stops: harness.llm.openai_stream); here they are merged over an SLO's window. Names:
`ttft_p99_ms`, `itl_p50_ms`, `tpot_p99_ms`, `e2e_p50_ms`, `ttft_mean_ms`, `itl_max_ms`,
`output_tokens_p50`, `tokens_per_s_p10` ..., `output_tokens_per_s` (all output tokens of the
window / its length: the stack's token throughput), and goodput (harness.llm.goodput):
`goodput_ratio` (good requests / requests that ended in the window, failed ones included, as
AIPerf's good_request_fraction) and `goodput_per_s` (good requests / the window's length, as
vLLM's request_goodput).
"""

import re
from typing import Any

from harness import stats
from harness.analysis import Measured, RunData, records_in
from harness.llm.goodput import GOOD, GoodputTargets
from harness.load.measures import SCALE, measure_value, merged_measure
from harness.scenario import Window
from harness.sloci import Interval, quantile_interval

THROUGHPUT = "output_tokens_per_s"
GOODPUT_RATIO = "goodput_ratio"
GOODPUT_RATE = "goodput_per_s"
GOODPUT_METRICS = (GOODPUT_RATIO, GOODPUT_RATE)
# What the openai user records, each with its family of SLO names (`good` has none: a count).
MEASURES = ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "output_tokens", "tokens_per_s")
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
    if metric in GOODPUT_METRICS:
        return goodput_measure(records, metric, span)
    name, stat = split(metric)
    hist = merged_measure(records, name)
    value = measure_value(hist, stat)
    return (None if value is None else round(value, 3)), hist.get_total_count()


def goodput_counts(records: list[dict[str, Any]]) -> tuple[int, int]:
    """(good requests, requests that ended): the latter as the core's error_rate counts them, every
    second's `requests` (ok + failed), so a failure lowers the ratio as a slow answer does."""
    good = int(merged_measure(records, GOOD).get_total_count())
    return good, sum(int(r["requests"]) for r in records)


def goodput_measure(records: list[dict[str, Any]], metric: str, span: float) -> tuple[float | None, int]:
    """`goodput_ratio` rests on every request that ended (as error_rate); `goodput_per_s` on the
    good ones (as throughput_rps on the successful ones)."""
    good, requests = goodput_counts(records)
    if metric == GOODPUT_RATIO:
        return (round(good / requests, 6) if requests else None), requests
    if metric == GOODPUT_RATE:
        return (round(good / span, 3) if span > 0 else None), good
    raise KeyError(metric)


def goodput_summary(records: list[dict[str, Any]], span: float, targets: GoodputTargets) -> dict[str, Any]:
    """The run summary's goodput: the targets, how many requests met them, their share and rate."""
    good, requests = goodput_counts(records)
    return {
        "targets": targets.given(),
        "good": good,
        "requests": requests,
        "ratio": goodput_measure(records, GOODPUT_RATIO, span)[0],
        "per_s": goodput_measure(records, GOODPUT_RATE, span)[0],
    }


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


def goodput_interval(data: RunData, metric: str, window: Window | str, confidence: float) -> Interval | None:
    """`goodput_ratio`: Wilson's score interval, a share of the window's requests like error_rate."""
    if metric != GOODPUT_RATIO:
        return None
    records, _ = records_in(data, window)
    good, requests = goodput_counts(records)
    bounds = stats.wilson(good, requests, confidence)
    if bounds is None:
        return None
    return Interval(bounds[0], bounds[1], confidence, "Wilson score", requests)
