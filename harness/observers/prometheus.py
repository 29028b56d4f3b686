"""Scrape a Prometheus text endpoint (Triton's metrics port) a few times a second.

Each successful scrape writes one `metrics` series sample holding:

- the selected metrics as they are, cumulative counters included, keyed `name{label=value,...}`
  (labels sorted, `version` dropped: `nv_inference_request_success{model=identity}`);
- values derived from this scrape and the previous one, so a plot is meaningful:
  `<counter>:per_s{...}` (a rate), `<duration>_us:per_request{...}` (mean microseconds per
  successful request over the interval), `nv_inference_batch_size:mean{...}`;
- `scrape_ms`, how long the scrape took: the server's answer plus any wait for the harness's
  own event loop (under heavy in-process load the second part dominates: 50-150 ms seen).

A failed scrape (refused, timed out, HTTP error, unparsable text) is counted, never fatal; the
journal gets `metrics_scrape_failed` when scraping starts failing and `metrics_scrape_recovered`
when it works again, so a hung or dead server shows as a window rather than thousands of events.
`stop()` scrapes once more and returns scrapes, scrape_failures, last_error, longest_gap_s,
`final` (each key's last value seen) and `increase` (each request counter's increase while
watched, across server restarts).

Counters are keyed by their family name: `prometheus_client`'s parser reports a counter that
Triton exposes as `nv_inference_count` as family `nv_inference_count` with sample name
`nv_inference_count_total`, and one exposed as `x_total` as family `x` too; the family name is
the one stable spelling.
"""

import http.client
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent import Greenlet
from prometheus_client.parser import text_string_to_metric_families

from harness.observers.base import Observer, ObserverContext

SERIES_NAME = "metrics"

# What matters in Triton 2.5x (CPU or GPU): per-model request outcomes and where time goes,
# queue depth, and the host's CPU and memory. GPU families appear only where NVML works.
TRITON_METRICS: frozenset[str] = frozenset(
    {
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_compute_output_duration_us",
        "nv_inference_pending_request_count",
        "nv_cpu_utilization",
        "nv_cpu_memory_used_bytes",
        "nv_gpu_utilization",
        "nv_gpu_memory_used_bytes",
    }
)

# Counters turned into per-second rates; `reason` (failure reasons) is summed away.
RATE_COUNTERS: tuple[str, ...] = (
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
)
# Cumulative microsecond counters turned into a mean per successful request over the interval.
DURATION_SUFFIX = "_duration_us"
REQUESTS_COUNTER = "nv_inference_request_success"
DROPPED_LABELS: frozenset[str] = frozenset({"version"})

Selector = Callable[[str], bool] | Collection[str] | None
Fetch = Callable[[str, float], str]


@dataclass(frozen=True)
class Snapshot:
    """One scrape: run-clock time and flat values."""

    t: float
    values: dict[str, float]


def metric_key(name: str, labels: dict[str, str], drop: Collection[str] = DROPPED_LABELS) -> str:
    """`name{a=1,b=2}` with labels sorted and `drop` left out; plain `name` without labels."""
    kept = sorted((k, v) for k, v in labels.items() if k not in drop)
    if not kept:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in kept) + "}"


def split_key(key: str) -> tuple[str, dict[str, str]]:
    """The inverse of `metric_key` (for label values without `,` `=` `}`)."""
    if "{" not in key:
        return key, {}
    name, _, rest = key.partition("{")
    labels = dict(pair.split("=", 1) for pair in rest.rstrip("}").split(",") if "=" in pair)
    return name, labels


def _selected(select: Selector) -> Callable[[str], bool]:
    if select is None:
        return lambda _name: True
    if callable(select):
        return select
    names = frozenset([select] if isinstance(select, str) else select)
    return names.__contains__


def parse_metrics(
    text: str, select: Selector = TRITON_METRICS, drop_labels: Collection[str] = DROPPED_LABELS
) -> dict[str, float]:
    """Prometheus text -> flat `{key: value}` for the selected families.

    `select` is a set of family names, a predicate on the family name, or None for everything.
    Samples that collide once `drop_labels` are removed are summed (two versions of a model).
    Non-finite values (NaN, +Inf) are left out so the journal stays plain JSON.
    Raises ValueError on text the parser rejects.
    """
    wanted = _selected(select)
    flat: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if not wanted(family.name):
            continue
        for sample in family.samples:
            value = float(sample.value)
            if not math.isfinite(value):
                continue
            name = family.name if family.type == "counter" else sample.name
            key = metric_key(name, sample.labels, drop_labels)
            flat[key] = flat.get(key, 0.0) + value
    return flat


def _increase(before: float, after: float) -> float:
    """A counter's increase; a drop means the server restarted and counts from zero again."""
    return after if after < before else after - before


def derive(previous: Snapshot, current: Snapshot) -> dict[str, float]:
    """Rates and per-request means over the interval between two snapshots.

    Only keys present in both snapshots count (a model that appears later starts next time).
    `nv_inference_request_failure` is summed over its `reason` label.
    """
    interval = current.t - previous.t
    if interval <= 0:
        return {}
    increases: dict[str, float] = {}
    for key, after in current.values.items():
        before = previous.values.get(key)
        if before is None:
            continue
        name, labels = split_key(key)
        if name in RATE_COUNTERS or name.endswith(DURATION_SUFFIX):
            summed = metric_key(name, {k: v for k, v in labels.items() if k != "reason"}, ())
            increases[summed] = increases.get(summed, 0.0) + _increase(before, after)
    derived: dict[str, float] = {}
    for key, increase in increases.items():
        name, labels = split_key(key)
        if name in RATE_COUNTERS:
            derived[metric_key(f"{name}:per_s", labels, ())] = round(increase / interval, 3)
        elif name.endswith(DURATION_SUFFIX):
            requests = increases.get(metric_key(REQUESTS_COUNTER, labels, ()), 0.0)
            if requests > 0:
                derived[metric_key(f"{name}:per_request", labels, ())] = round(increase / requests, 2)
    for key, executions in increases.items():
        name, labels = split_key(key)
        if name == "nv_inference_exec_count" and executions > 0:
            inferences = increases.get(metric_key("nv_inference_count", labels, ()), 0.0)
            derived[metric_key("nv_inference_batch_size:mean", labels, ())] = round(
                inferences / executions, 3
            )
    return derived


def http_get_text(url: str, timeout: float) -> str:
    """GET `url` on a fresh connection; raises OSError / HTTPException / ValueError."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request("GET", path, headers={"Accept": "text/plain", "Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise ValueError(f"HTTP {response.status} {response.reason}")
        return body.decode("utf-8", errors="replace")
    finally:
        conn.close()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PrometheusScraper(Observer):
    """Scrape `url` every `interval_s` seconds into the `metrics` series.

    `url` None means the stack's `endpoints.metrics`, read at start. `select` as in
    `parse_metrics`. `fetch(url, timeout)` is injectable for tests.
    """

    name = "prometheus"

    def __init__(
        self,
        url: str | None = None,
        interval_s: float = 0.25,
        select: Selector = TRITON_METRICS,
        timeout_s: float = 1.0,
        series: str = SERIES_NAME,
        fetch: Fetch = http_get_text,
    ):
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.url = url
        self.interval_s = interval_s
        self.select = select
        self.timeout_s = timeout_s
        self.series = series
        self.fetch = fetch
        self.ctx: ObserverContext | None = None
        self.greenlet: Greenlet | None = None
        self.previous: Snapshot | None = None
        self.last_seen: dict[str, float] = {}  # every key's latest value, vanished ones too
        self.increases: dict[str, float] = {}  # of each rate counter while watched
        self.scrapes = 0
        self.failures = 0
        self.failing = False
        self.last_error: str | None = None
        self.last_error_t: float | None = None
        self.longest_gap_s = 0.0
        self.scrape_ms_max = 0.0
        self.skipped: str | None = None

    def start(self, ctx: ObserverContext) -> None:
        self.ctx = ctx
        if self.url is None:
            self.url = ctx.stack.endpoints.metrics
        if self.url is None:
            self.skipped = "the stack has no metrics endpoint"
            return
        self.greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while True:
            self.scrape_once()
            next_at += self.interval_s
            now = time.monotonic()
            if next_at <= now:  # the scrape overran (slow server, busy loop): skip missed ticks
                next_at += (int((now - next_at) // self.interval_s) + 1) * self.interval_s
            gevent.sleep(next_at - now)

    def scrape_once(self) -> Snapshot | None:
        """One scrape; writes the sample (or counts the failure); returns the snapshot."""
        assert self.ctx is not None and self.url is not None, "start() first"
        journal = self.ctx.journal
        started = time.monotonic()
        try:
            values = parse_metrics(self.fetch(self.url, self.timeout_s), self.select)
        except Exception as exc:  # noqa: BLE001 - refused, timed out, HTTP error, bad text
            self._failed(_describe(exc))
            return None
        elapsed_ms = (time.monotonic() - started) * 1000.0
        now = journal.now()
        current = Snapshot(now, values)
        sample = dict(values)
        if self.previous is not None:
            sample.update(derive(self.previous, current))
            self.longest_gap_s = max(self.longest_gap_s, now - self.previous.t)
        sample["scrape_ms"] = round(elapsed_ms, 2)
        journal.series(self.series, sample, t=now)
        if self.failing:
            self.failing = False
            journal.event("metrics_scrape_recovered", url=self.url, failures=self.failures)
        self.scrapes += 1
        self.scrape_ms_max = max(self.scrape_ms_max, elapsed_ms)
        self.previous = current
        self._accumulate(values)
        return current

    def _failed(self, error: str) -> None:
        assert self.ctx is not None
        self.failures += 1
        self.last_error = error
        self.last_error_t = round(self.ctx.journal.now(), 3)
        if not self.failing:
            self.failing = True
            self.ctx.journal.event("metrics_scrape_failed", url=self.url, error=error)

    def stop(self) -> dict[str, Any]:
        if self.greenlet is not None:
            self.greenlet.kill(block=True, timeout=self.timeout_s + 1.0)
            self.greenlet = None
            self.scrape_once()  # the final totals, while the stack still runs
        if self.failing and self.previous is not None and self.ctx is not None:
            gap = self.ctx.journal.now() - self.previous.t
            self.longest_gap_s = max(self.longest_gap_s, gap)
        summary: dict[str, Any] = {
            "url": self.url,
            "interval_s": self.interval_s,
            "scrapes": self.scrapes,
            "scrape_failures": self.failures,
            "last_error": self.last_error,
            "last_error_t": self.last_error_t,
            "longest_gap_s": round(self.longest_gap_s, 3),
            "scrape_ms_max": round(self.scrape_ms_max, 2),
        }
        if self.skipped:
            summary["skipped"] = self.skipped
        if self.last_seen:
            summary["final"] = dict(self.last_seen)
            summary["increase"] = dict(self.increases)
        return summary

    def _accumulate(self, values: dict[str, float]) -> None:
        """Keep each key's last value and each rate counter's increase since the first scrape.

        Compared with the last value seen, not the last scrape: Triton drops a model's series
        from /metrics once the model unloads (seen during shutdown), and a counter that comes
        back after a restart counts again from zero.
        """
        for key, after in values.items():
            if split_key(key)[0] not in RATE_COUNTERS:
                continue
            before = self.last_seen.get(key)
            self.increases[key] = self.increases.get(key, 0.0) + (
                0.0 if before is None else _increase(before, after)
            )
        self.last_seen.update(values)


def scrape(url: str, timeout: float = 1.0, select: Selector = TRITON_METRICS) -> dict[str, float]:
    """One synchronous scrape, for scripts and tests."""
    return parse_metrics(http_get_text(url, timeout), select)
