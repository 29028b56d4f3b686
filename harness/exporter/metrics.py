"""The exporter's metrics: one prometheus_client collector over a run's `RunFigures`.

Every series carries `scenario` and `run_id` (the run folder's name). Latency is in seconds,
of successful requests only, as the journal records it (a refused connection answers in
microseconds and would make a failing server look fast).

Latency comes two ways, because Grafana users ask two questions:
- `harness_latency_seconds{quantile}`: the newest complete second's p50/p90/p99/p99.9, exact
  (the journal's HDR percentiles, the same numbers as the report's chart). A plain query
  plots them; a second with no successful request has no latency, and the series is absent
  then, so a frozen server shows as a gap, not as its last good value.
- `harness_request_duration_seconds` (a histogram, cumulative over the run): for windows the
  scrape interval does not resolve and for adding runs up, `histogram_quantile(0.99,
  rate(..._bucket[5m]))`. Its buckets are counted from the same HDR histograms.
At the end (`RunFigures.finish`): `harness_slo_*`, `harness_verdict`, `harness_exit_code`, and
the whole load's percentiles from summary.json.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from harness import __version__
from harness.exporter.state import BUCKETS_S, QUANTILES, STATES, RunFigures

BASE_LABELS = ("scenario", "run_id")
SLO_LABELS = ("index", "slo", "metric", "op", "window")
FAULT_LABELS = ("fault", "kind", "name")


@dataclass(frozen=True)
class MetricInfo:
    name: str  # the family's name as exposed (counters with `_total`)
    kind: str  # counter, gauge, histogram, info
    labels: tuple[str, ...]  # besides scenario and run_id
    meaning: str
    final: bool = False  # only once the verdict is known
    live: bool = False  # the newest second's: not pushed at the end, where it means nothing

    @property
    def family(self) -> str:
        """The name prometheus_client's family has (a counter's and an info's without the suffix)."""
        suffix = {"counter": "_total", "info": "_info"}.get(self.kind, "")
        return self.name.removesuffix(suffix)

    @property
    def samples(self) -> tuple[str, ...]:
        """The sample names Prometheus stores for it (what a query names)."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


METRICS = (
    MetricInfo("harness_run_info", "info", ("stack", "harness_version", "seed"), "1 for the run"),
    MetricInfo("harness_run_state", "gauge", ("state",),
               f"1 for the run's state, 0 for the others ({', '.join(STATES)})"),
    MetricInfo("harness_run_clock_seconds", "gauge", (), "the run-clock second of the newest complete second",
               live=True),
    MetricInfo("harness_requests_total", "counter", (), "completed requests of the load, successful or not"),
    MetricInfo("harness_request_errors_total", "counter", ("kind",), "failed requests by error kind"),
    MetricInfo("harness_requests_late_total", "counter", (), "open model: requests sent late"),
    MetricInfo("harness_second_requests", "gauge", (), "completed requests in the newest complete second",
               live=True),
    MetricInfo("harness_second_errors", "gauge", (), "failed requests in the newest complete second",
               live=True),
    MetricInfo("harness_latency_seconds", "gauge", ("quantile",),
               "the newest complete second's latency percentiles (successful requests)", live=True),
    MetricInfo("harness_latency_mean_seconds", "gauge", (), "the newest complete second's mean latency",
               live=True),
    MetricInfo("harness_latency_max_seconds", "gauge", (), "the newest complete second's highest latency",
               live=True),
    MetricInfo("harness_request_duration_seconds", "histogram", (),
               "latency of successful requests, cumulative over the run"),
    MetricInfo("harness_fault_active", "gauge", FAULT_LABELS, "1 while the fault's window is open"),
    MetricInfo("harness_fault_injections_total", "counter", FAULT_LABELS,
               "times the fault was injected (a kill's window may fall between two scrapes)"),
    MetricInfo("harness_events_total", "counter", ("event",), "journal events by name"),
    MetricInfo("harness_slo_measured", "gauge", SLO_LABELS, "the SLO's measured value (absent: no data)",
               final=True),
    MetricInfo("harness_slo_threshold", "gauge", SLO_LABELS, "the SLO's threshold", final=True),
    MetricInfo("harness_slo_passed", "gauge", SLO_LABELS, "1 if the SLO held, else 0", final=True),
    MetricInfo("harness_verdict", "gauge", ("verdict",),
               "1, labelled with the verdict word (pass, fail, stack_failed, ...)", final=True),
    MetricInfo("harness_exit_code", "gauge", (), "the run's exit code (harness.exitcodes)", final=True),
    MetricInfo("harness_run_latency_seconds", "gauge", ("quantile",),
               "the whole load's latency percentiles, as summary.json has them", final=True),
    MetricInfo("harness_load_duration_seconds", "gauge", (), "how long the load ran", final=True),
)
BY_NAME = {m.name: m for m in METRICS}
_BY_FAMILY = {m.family: m for m in METRICS}


def exported_samples() -> set[str]:
    """Every sample name a query may use (the dashboard's test checks its expressions against it)."""
    return {sample for metric in METRICS for sample in metric.samples}


class FiguresCollector:
    """A prometheus_client collector: each scrape reads the figures as they are now."""

    def __init__(self, figures: RunFigures, live: bool = True):
        self.figures = figures
        self.live = live  # False (the push): without the newest second's figures and the run clock

    def collect(self) -> Iterator[Metric]:
        with self.figures.lock:
            families = [f for f in _families(self.figures) if self.live or not _BY_FAMILY[f.name].live]
        yield from families


def _family(name: str) -> Any:  # a *MetricFamily: each class's add_metric takes other arguments
    info = BY_NAME[name]
    labels = [*BASE_LABELS, *info.labels]
    documentation = info.meaning
    if info.kind == "counter":
        return CounterMetricFamily(info.family, documentation, labels=labels)
    if info.kind == "histogram":
        return HistogramMetricFamily(name, documentation, labels=labels)
    if info.kind == "info":  # OpenMetrics' info type: exposed as `<name>_info`, value 1
        return InfoMetricFamily(info.family, documentation, labels=BASE_LABELS)
    return GaugeMetricFamily(name, documentation, labels=labels)


def _families(f: RunFigures) -> Iterator[Metric]:
    base = [f.scenario, f.run_id]
    family = _family("harness_run_info")
    family.add_metric(base, {"stack": f.stack, "harness_version": __version__, "seed": f.seed})
    yield family
    family = _family("harness_run_state")
    for state in STATES:
        family.add_metric([*base, state], 1 if state == f.state else 0)
    yield family
    family = _family("harness_run_clock_seconds")
    if f.clock_s is not None:
        family.add_metric(base, f.clock_s)
    yield family
    for name, value in (("harness_requests_total", f.requests), ("harness_requests_late_total", f.late)):
        family = _family(name)
        family.add_metric(base, value)
        yield family
    family = _family("harness_request_errors_total")
    for kind in sorted(f.errors):
        family.add_metric([*base, kind], f.errors[kind])
    yield family
    yield from _second_families(f, base)
    family = _family("harness_request_duration_seconds")
    buckets = [(f"{bound:g}", count) for bound, count in zip(BUCKETS_S, f.bucket_counts, strict=True)]
    family.add_metric(base, [*buckets, ("+Inf", f.latency_count)], f.latency_sum_s)
    yield family
    yield from _fault_families(f, base)
    family = _family("harness_events_total")
    for event in sorted(f.events):
        family.add_metric([*base, event], f.events[event])
    yield family
    if f.verdict is not None:
        yield from _final_families(f, base)


def _second_families(f: RunFigures, base: list[str]) -> Iterator[Metric]:
    for name, value in (("harness_second_requests", f.second_requests),
                        ("harness_second_errors", f.second_errors)):
        family = _family(name)
        if f.seconds:
            family.add_metric(base, value)
        yield family
    yield _quantiles("harness_latency_seconds", base, f.second_latency_ms)
    for name, key in (("harness_latency_mean_seconds", "mean"), ("harness_latency_max_seconds", "max")):
        family = _family(name)
        if key in f.second_latency_ms:
            family.add_metric(base, _seconds(f.second_latency_ms[key]))
        yield family


def _quantiles(name: str, base: list[str], latency_ms: dict[str, float]) -> Metric:
    family = _family(name)
    for key, quantile in QUANTILES.items():
        if key in latency_ms:
            family.add_metric([*base, quantile], _seconds(latency_ms[key]))
    return family


def _fault_families(f: RunFigures, base: list[str]) -> Iterator[Metric]:
    active = _family("harness_fault_active")
    injections = _family("harness_fault_injections_total")
    for fault_id in sorted(f.faults):
        fault = f.faults[fault_id]
        labels = [*base, fault_id, fault.kind, fault.name]
        active.add_metric(labels, 1 if fault.active else 0)
        injections.add_metric(labels, fault.injections)
    yield active
    yield injections


def _final_families(f: RunFigures, base: list[str]) -> Iterator[Metric]:
    measured, threshold, passed = (_family(f"harness_slo_{n}") for n in ("measured", "threshold", "passed"))
    for slo in f.slos:
        labels = [*base, str(slo.index), slo.name, slo.metric, slo.op, slo.window]
        if slo.measured is not None and math.isfinite(slo.measured):
            measured.add_metric(labels, slo.measured)
        threshold.add_metric(labels, slo.threshold)
        passed.add_metric(labels, 1 if slo.passed else 0)
    yield from (measured, threshold, passed)
    family = _family("harness_verdict")
    family.add_metric([*base, f.verdict or ""], 1)
    yield family
    family = _family("harness_exit_code")
    if f.exit_code is not None:
        family.add_metric(base, f.exit_code)
    yield family
    yield _quantiles("harness_run_latency_seconds", base, f.run_latency_ms)
    family = _family("harness_load_duration_seconds")
    if f.load_duration_s is not None:
        family.add_metric(base, f.load_duration_s)
    yield family


def _seconds(ms: float) -> float:
    return round(ms / 1000, 9)  # the journal's milliseconds have 3 decimals: nanoseconds, no float dust
