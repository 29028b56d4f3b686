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

# Computed from fault windows and supervisor events.
RECOVERY_METRICS = {
    "recovery_s": "longest time from a fault's injection to the stack serving again",
    "detect_s": "longest time from a fault's injection to the harness noticing a failure",
    "failed_per_fault": "most failed requests in one fault's impact window",
    "crashes": "server processes that exited during the run",
    "hangs": "times a live server stopped answering its health probe",
    "crashes_or_hangs": "crashes + hangs: a crash can end either way (exit, or a live deadlock)",
    "restarts": "restarts made by the restart policy",
    "faults_injected": "faults injected",
}

LOG_METRIC = re.compile(r"^log\.[A-Za-z0-9_]+$")
PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)_ms$")


def percentile_of(metric: str) -> float | None:
    """50.0 for `p50_ms`, 99.9 for `p99.9_ms`, None for other names."""
    match = PERCENTILE.match(metric)
    if match is None:
        return None
    value = float(match.group(1))
    return value if 0 < value < 100 else None


def is_known(metric: str, extra: frozenset[str] = frozenset()) -> bool:
    return (
        metric in SERIES_METRICS
        or metric in RECOVERY_METRICS
        or metric in extra
        or LOG_METRIC.match(metric) is not None
        or percentile_of(metric) is not None
    )


def describe_known() -> str:
    names = sorted([*SERIES_METRICS, *RECOVERY_METRICS])
    return ", ".join(names) + ", pNN_ms (e.g. p99_ms, p99.9_ms), log.NAME (log pattern matches)"
