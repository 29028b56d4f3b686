"""The vLLM feature: SLO metrics read from vLLM's own /metrics, as the scraper journaled them.

The client's view (TTFT, ITL, errors) says what users saw; these say why: requests waiting for
KV-cache room, the cache filling up, running requests preempted (their KV blocks thrown away and
prefilled again), and vLLM's own time to first token and queue time over the same window.

Each is computed from the `metrics` series (harness.observers.prometheus with VLLM_PROFILE),
summed over label sets (data-parallel engines) for counters and the largest value for gauges;
its sample count is the number of scrapes in the window.
"""

from collections.abc import Callable
from typing import Any

from harness.analysis import Measured, RunData
from harness.features import Feature, MetricDef, ReportSection, SectionContext
from harness.observers.scrape_profile import SERIES_NAME, family_of
from harness.scenario import Window
from harness.vllm.metrics_profile import (
    KV_CACHE_USAGE,
    KV_CACHE_USAGE_OLD,
    PREEMPTIONS,
    RUNNING,
    TTFT,
    WAITING,
)

QUEUE_TIME = "vllm:request_queue_time_seconds"

Scrape = tuple[float, dict[str, float]]


def scrapes_in(data: RunData, window: Window | str) -> tuple[list[Scrape], Scrape | None]:
    """The window's scrapes, and the last one before it (the baseline for counter increases)."""
    start, end = data.bounds(window)
    before: Scrape | None = None
    inside: list[Scrape] = []
    for record in data.series.get(SERIES_NAME, []):
        sample = (float(record["t"]), record.get("values", {}))
        if sample[0] < start:
            before = sample
        elif sample[0] <= end:
            inside.append(sample)
    return inside, before


def _family_total(values: dict[str, float], family: str) -> float | None:
    found = [v for k, v in values.items() if family_of(k) == family]
    return sum(found) if found else None


def _family_max(values: dict[str, float], families: tuple[str, ...]) -> float | None:
    found = [v for k, v in values.items() if family_of(k) in families]
    return max(found) if found else None


def counter_increase(scrapes: list[Scrape], before: Scrape | None, family: str) -> float | None:
    """How much a counter grew over the window; a drop is a server restart counting from zero."""
    chain = ([before] if before is not None else []) + scrapes
    totals = [t for t in (_family_total(values, family) for _, values in chain) if t is not None]
    if len(totals) < 2:
        return None
    grown = 0.0
    for earlier, later in zip(totals, totals[1:], strict=False):
        grown += later if later < earlier else later - earlier
    return grown


def _gauge_max(families: tuple[str, ...]) -> Callable[[RunData, str, Window | str], Measured]:
    def measure(data: RunData, metric: str, window: Window | str) -> Measured:
        scrapes, _ = scrapes_in(data, window)
        seen = [v for v in (_family_max(values, families) for _, values in scrapes) if v is not None]
        return Measured(max(seen) if seen else None, len(seen))

    return measure


def _increase(family: str) -> Callable[[RunData, str, Window | str], Measured]:
    def measure(data: RunData, metric: str, window: Window | str) -> Measured:
        scrapes, before = scrapes_in(data, window)
        return Measured(counter_increase(scrapes, before, family), len(scrapes))

    return measure


def _server_mean_ms(histogram: str) -> Callable[[RunData, str, Window | str], Measured]:
    """vLLM's own mean over the window: the increase of `_sum` over the increase of `_count`."""
    def measure(data: RunData, metric: str, window: Window | str) -> Measured:
        scrapes, before = scrapes_in(data, window)
        total = counter_increase(scrapes, before, f"{histogram}_sum")
        count = counter_increase(scrapes, before, f"{histogram}_count")
        if total is None or not count:
            return Measured(None, int(count or 0))
        return Measured(round(total / count * 1000.0, 3), int(count))

    return measure


METRICS: tuple[tuple[str, str, Callable[[RunData, str, Window | str], Measured]], ...] = (
    ("vllm.preemptions", "requests vLLM preempted in the window (KV blocks freed, prefilled again)",
     _increase(PREEMPTIONS)),
    ("vllm.waiting_max", "most requests waiting in vLLM's queue at one scrape", _gauge_max((WAITING,))),
    ("vllm.running_max", "most requests vLLM ran at once (its batch) at one scrape", _gauge_max((RUNNING,))),
    ("vllm.kv_cache_usage_max", "highest KV-cache usage at one scrape, a fraction (1 = full)",
     _gauge_max((KV_CACHE_USAGE, KV_CACHE_USAGE_OLD))),
    ("vllm.ttft_mean_ms", "vLLM's own mean time to first token over the window (its histogram)",
     _server_mean_ms(TTFT)),
    ("vllm.queue_time_mean_ms", "vLLM's own mean time requests waited in its queue over the window",
     _server_mean_ms(QUEUE_TIME)),
)


def _server_view(ctx: SectionContext) -> dict[str, Any] | None:
    """The summary's `vllm` part: the whole load's server-side figures, where vLLM was scraped."""
    if not ctx.data.series.get(SERIES_NAME):
        return None
    out = {name: measure(ctx.data, name, "all").value for name, _, measure in METRICS}
    return out if any(v is not None for v in out.values()) else None


FEATURE = Feature(
    name="vllm",
    metrics=[MetricDef(meaning, measure, name=name) for name, meaning, measure in METRICS],
    sections=[ReportSection("vllm", _server_view, after="torchserve")],
)
