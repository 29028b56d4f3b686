"""The core's metrics, declared as `MetricDef`s like every feature's (harness.features).

These are the ones every run has: counters, rates and latency from the load's per-second
series, recovery from fault windows and supervisor events, and log pattern matches. Features
declare theirs in their own `feature.py`; lookups go through `harness.features`.
"""

import re

from harness.analysis import (
    PERCENTILE,
    Measured,
    RunData,
    latency_metric,
    log_metric,
    records_in,
    series_metric,
)
from harness.faultimpact import per_role_replica_metric, recovery_metric
from harness.features import MetricDef, metric_def
from harness.scenario import Window
from harness.sloci import percentile_interval, rate_interval

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
}
LATENCY_METRICS = {
    "mean_ms": "mean latency of successful requests",
    "max_ms": "largest latency of a successful request",
}
RATES = ("error_rate", "late_rate")  # a share of the requests: Wilson's interval

# Computed from fault windows and supervisor events (harness.faultimpact).
RECOVERY_METRICS = {
    "recovery_s": "longest time from a fault's injection to the stack serving again",
    "detect_s": "longest time from a fault's injection to the harness noticing a failure",
    "failed_per_fault": "most failed requests in one fault's impact window",
    "crashes": "unplanned exits of the stack's entry process (its declared entry role)",
    "hangs": "times a live entry process stopped answering its health probe",
    "not_serving": "times health said ready while the canary's inference failed",
    "canary_failures": "episodes of failing canary inferences (health may or may not have noticed)",
    "replicas_lost": "unplanned exits of replica processes (workers, stubs), not counting those that"
                     " went down with the entry process",
    "replica_recovery_s": "longest time from a replica's loss until its role was back at full strength",
    "dependencies_lost": "unplanned exits of a dependency of the stack (e.g. etcd)",
    "crashes_or_hangs": "crashes + hangs: a crash can end either way (exit, or a live deadlock)",
    "restarts": "restarts made by the restart policy",
    "faults_injected": "faults injected",
}

LOG_METRIC = re.compile(r"^log\.[A-Za-z0-9_]+$")
PER_ROLE_METRIC = re.compile(r"^(replicas_lost|replica_recovery_s)\.[A-Za-z0-9_]+$")
ERROR_KIND_METRIC = re.compile(r"^(errors|error_rate)\.(?P<kind>[A-Za-z0-9_]+)$")


def _per_role(data: RunData, metric: str, window: Window | str) -> Measured:
    return Measured(*per_role_replica_metric(data, metric))


def _errors_of_kind(data: RunData, metric: str, window: Window | str) -> Measured:
    """Which failure a reproduction turns on: requests that hung to the client timeout are not the
    503s of a routing window. The recorder keeps each second's failures by kind."""
    match = ERROR_KIND_METRIC.match(metric)
    if match is None:
        raise KeyError(metric)
    records, _ = records_in(data, window)
    requests = sum(r["requests"] for r in records)
    failed = sum(int((r.get("errors") or {}).get(match["kind"], 0)) for r in records)
    if metric.startswith("error_rate."):
        return Measured(failed / requests if requests else None, requests)
    return Measured(failed, requests)


def _recovery(data: RunData, metric: str, window: Window | str) -> Measured:
    value, faults = recovery_metric(data, metric)
    return Measured(value, faults)


CORE_METRICS: list[MetricDef] = [
    *(MetricDef(meaning, series_metric, name=name, interval=rate_interval if name in RATES else None)
      for name, meaning in SERIES_METRICS.items()),
    *(MetricDef(meaning, latency_metric, name=name) for name, meaning in LATENCY_METRICS.items()),
    MetricDef("latency percentile of successful requests (e.g. p99_ms, p99.9_ms)", latency_metric,
              pattern=PERCENTILE, display="pNN_ms", interval=percentile_interval),
    *(MetricDef(meaning, _recovery, name=name) for name, meaning in RECOVERY_METRICS.items()),
    MetricDef("matches of a log pattern (observe.log_patterns and the built-in ones); for a signal pattern "
              "(one with a `signal` group) lines caused by a signal the harness itself sent are not counted",
              log_metric,
              pattern=LOG_METRIC, display="log.NAME"),
    MetricDef("requests that failed with one error kind, and their share of all requests (e.g. "
              "errors.timeout, error_rate.http_503; a run's kinds are in summary.json totals.errors_by_kind)",
              _errors_of_kind, pattern=ERROR_KIND_METRIC, display="errors.KIND, error_rate.KIND"),
    MetricDef("replicas_lost and replica_recovery_s of one replica role (e.g. replicas_lost.worker)",
              _per_role, pattern=PER_ROLE_METRIC, display="replicas_lost.ROLE, replica_recovery_s.ROLE"),
]


def is_known(metric: str) -> bool:
    """A name some declaration (the core's or a feature's) measures."""
    return metric_def(metric) is not None
