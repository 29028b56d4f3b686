"""The core's metrics, declared as `MetricDef`s like every feature's (harness.features).

These are the ones every run has: counters, rates and latency from the load's per-second
series, recovery from fault windows and supervisor events, and log pattern matches. Features
declare theirs in their own `feature.py`; lookups go through `harness.features`.
"""

import re

from harness.analysis import PERCENTILE, Measured, RunData, latency_metric, log_metric, series_metric
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


def _per_role(data: RunData, metric: str, window: Window | str) -> Measured:
    return Measured(*per_role_replica_metric(data, metric))


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
    MetricDef("replicas_lost and replica_recovery_s of one replica role (e.g. replicas_lost.worker)",
              _per_role, pattern=PER_ROLE_METRIC, display="replicas_lost.ROLE, replica_recovery_s.ROLE"),
]


def is_known(metric: str) -> bool:
    """A name some declaration (the core's or a feature's) measures."""
    return metric_def(metric) is not None
