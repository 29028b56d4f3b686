"""Confidence intervals of SLO values, read off the run's merged HDR histograms and counts.

Each metric's declaration (harness.features.MetricDef) says which interval it has. Percentiles
(`p99_ms`, and features' ones such as `ttft_p99_ms`) get the order-statistic interval of
harness.stats, read at its ranks from the histogram the value itself comes from; rates
(`error_rate`, `late_rate`) get Wilson's interval. Other metrics (counts, maxima, recovery
times) carry no interval: they are not an estimate of a population figure from a sample, or
(mean, throughput) not one we bound here.
"""

from dataclasses import dataclass
from typing import Any

from harness import stats
from harness.analysis import RunData, merged_histogram, percentile_of, records_in
from harness.features import metric_def
from harness.scenario import Window

_MS_PER_US = 1000.0


@dataclass(frozen=True)
class Interval:
    low: float | None  # None: the sample cannot bound the value on this side
    high: float | None
    confidence: float
    method: str
    samples: int
    note: str = ""  # why a side is open: too few samples

    def contains(self, value: float) -> bool:
        return (self.low is None or self.low <= value) and (self.high is None or value <= self.high)

    def describe(self) -> str:
        low = "unbounded" if self.low is None else f"{self.low:g}"
        high = "unbounded" if self.high is None else f"{self.high:g}"
        return f"{self.confidence:.0%} CI [{low}, {high}] from {self.samples} samples"


def interval_for(data: RunData, metric: str, window: Window | str, confidence: float) -> Interval | None:
    """The interval of `metric` over `window`, or None for a metric without one (its declaration's)."""
    definition = metric_def(metric)
    if definition is None or definition.interval is None:
        return None
    return definition.interval(data, metric, window, confidence)


def percentile_interval(
    data: RunData, metric: str, window: Window | str, confidence: float,
) -> Interval | None:
    """`pNN_ms`: the order-statistic interval, read off the latency histogram the value comes from."""
    pct = percentile_of(metric)
    if pct is None:
        return None
    records, _ = records_in(data, window)
    return quantile_interval(merged_histogram(records), pct / 100, confidence, _MS_PER_US)


def rate_interval(data: RunData, metric: str, window: Window | str, confidence: float) -> Interval | None:
    """`error_rate`, `late_rate`: Wilson's interval of a share of the window's requests."""
    records, _ = records_in(data, window)
    requests = sum(r["requests"] for r in records)
    if metric == "error_rate":
        hits = sum(r["requests"] - r["ok"] for r in records)
    elif metric == "late_rate":
        hits = sum(r.get("late", 0) for r in records)
    else:
        raise KeyError(metric)
    bounds = stats.wilson(hits, requests, confidence)
    if bounds is None:
        return None
    return Interval(bounds[0], bounds[1], confidence, "Wilson score", requests)


def quantile_interval(hist: Any, q: float, confidence: float, scale: float) -> Interval | None:
    """The interval of the q-quantile of the values in an HDR histogram, in units of 1/scale."""
    n = int(hist.get_total_count())
    if n == 0:
        return None
    ranks = stats.quantile_ranks(n, q, confidence)
    wanted = [r for r in (ranks.lower, ranks.upper) if 1 <= r <= n]
    found = values_at_ranks(hist, wanted)
    low = found[ranks.lower][0] / scale if ranks.bounded_below else None
    high = found[ranks.upper][1] / scale if ranks.bounded_above else None
    note = ""
    if not (ranks.bounded_below and ranks.bounded_above):
        needed = stats.min_samples(q, confidence)
        side = "above" if not ranks.bounded_above else "below"
        note = (f"too few samples for the p{q * 100:g}: {n} cannot bound it from {side} at "
                f"{confidence:.0%} (needs at least {needed})")
    return Interval(low, high, confidence, f"order statistics ({ranks.method})", n, note)


def values_at_ranks(hist: Any, ranks: list[int]) -> dict[int, tuple[float, float]]:
    """For each 1-based rank, the lowest and highest value of the HDR bucket holding that sample.

    The bucket's ends (not hdrh's one representative value) keep the interval conservative
    at the histogram's resolution (3 significant digits).
    """
    out: dict[int, tuple[float, float]] = {}
    pending = sorted(set(ranks))
    seen = 0
    for index in range(hist.counts_len):
        if not pending:
            break
        count = hist.get_count_at_index(index)
        if count == 0:
            continue
        seen += count
        value = hist.get_value_from_index(index)
        while pending and pending[0] <= seen:
            out[pending.pop(0)] = (float(hist.get_lowest_equivalent_value(value)),
                                   float(hist.get_highest_equivalent_value(value)))
    return out
