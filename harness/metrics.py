"""Names of the metrics an SLO can assert on, shared by validation and evaluation."""

import re

# Counters and rates computed from the per-second series the load recorder writes.
SERIES_METRICS = {
    "requests": "requests completed (ok + failed)",
    "ok": "requests that succeeded",
    "errors": "requests that failed",
    "error_rate": "errors / requests",
    "throughput_rps": "successful requests per second over the window",
    "late": "open model: requests sent later than `late_after` after their intended time",
    "late_rate": "late / requests",
    "unsent": "open model: intended requests never sent before the load ended",
    "mean_ms": "mean latency of successful requests",
    "max_ms": "largest latency of a successful request",
}

PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)_ms$")


def percentile_of(metric: str) -> float | None:
    """50.0 for `p50_ms`, 99.9 for `p99.9_ms`, None for other names."""
    match = PERCENTILE.match(metric)
    if match is None:
        return None
    value = float(match.group(1))
    return value if 0 < value < 100 else None


def is_known(metric: str, extra: frozenset[str] = frozenset()) -> bool:
    return metric in SERIES_METRICS or metric in extra or percentile_of(metric) is not None


def describe_known() -> str:
    return ", ".join(sorted(SERIES_METRICS)) + ", pNN_ms (e.g. p50_ms, p99_ms, p99.9_ms)"
