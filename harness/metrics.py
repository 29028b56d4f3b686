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

# LLM metrics from the openai user's per-request measures (computed in harness.llmmetrics),
# and the error window of worker faults (harness.errorwindow).
_STAT = r"(p\d{1,2}(?:\.\d+)?|mean|max)"
LLM_METRIC = re.compile(rf"^(ttft|itl)_{_STAT}_ms$|^(output_tokens|tokens_per_s)_{_STAT}$")
LLM_METRICS = {
    "ttft_pNN_ms": "time to first token of streamed responses (also ttft_mean_ms, ttft_max_ms)",
    "itl_pNN_ms": "inter-token latency per request: (last token - first token) / (tokens - 1)",
    "output_tokens_pNN": "output tokens per response (also _mean, _max)",
    "tokens_per_s_pNN": "output tokens / request time, per request (also _mean, _max)",
    "output_tokens_per_s": "output tokens of the window / its length",
    "error_window_s": "longest span from a fault's first failed request to its last",
    "last_error_s": "longest time from a fault's injection to its last failed request",
}
LLM_NAMED = frozenset({"output_tokens_per_s", "error_window_s", "last_error_s"})

# TorchServe worker states and retries (observer events; computed in harness.torchserve.measures).
TORCHSERVE_METRICS = {
    "ts.workers_ready_s": "longest time from a fault's injection until every worker is READY again (API)",
    "ts.no_worker_ready_s": "longest span with no worker READY (API): the model served nothing",
    "ts.worker_retries": "worker restarts TorchServe announced (`Retry worker: ID in N seconds`)",
    "ts.retry_storms": "retry storms: the same error ended several worker starts in a row (not recoverable)",
    "ts.workers_given_up": "workers TorchServe stopped retrying (maxRetryTimeoutInSec spent)",
}

# Start-up, memory and sidecars (journal events; computed in harness.memory.measures).
MEMORY_METRICS = {
    "start_attempts": "stack starts the harness made until it was ready (all of them if it never was)",
    "startup_s": "seconds from the first start attempt to ready, backoffs and failed attempts included",
    "oom_kills": "OOM kills of this run's processes (kernel log) or in its memory groups (cgroup counter)",
    "sidecar_deaths": "sidecars that died during the run (`expect: exit` ones only with a non-zero code)",
    "rss_peak_mb": "largest summed RSS of one stack role during the run, in MiB",
    "memory_psi_some_max": "highest 10 s memory pressure (PSI some avg10, percent) seen during the load",
}

# Container faults: the Docker engine's events and the health probe (harness.containerimpact).
CONTAINER_METRICS = {
    "container_downtime_s": "longest time from a container's server going away (exit, freeze) to serving",
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
        or metric in LLM_NAMED
        or metric in TORCHSERVE_METRICS
        or metric in MEMORY_METRICS
        or metric in CONTAINER_METRICS
        or LLM_METRIC.match(metric) is not None
    )


def describe_known() -> str:
    names = sorted([*SERIES_METRICS, *RECOVERY_METRICS, *LLM_METRICS, *TORCHSERVE_METRICS, *MEMORY_METRICS,
                    *CONTAINER_METRICS])
    return ", ".join(names) + ", pNN_ms (e.g. p99_ms, p99.9_ms), log.NAME (log pattern matches)"
