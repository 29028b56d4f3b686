"""What the exporter knows of one run: its journal's records summed as they come, then its verdict.

`RunFigures.add(record)` takes every journal record (`second`, `event`; `series` are the
server's own metrics and are left to the server's own exporter) in the order they were
written; `finish(summary)` takes the run's summary.json object. The collector reads it under
`lock`: records arrive in the run's greenlet (or thread) while the HTTP server's reads it.
"""

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from hdrh.histogram import HdrHistogram

# The per-second latency percentiles the journal holds (harness.load.recorder), as quantiles.
QUANTILES = {"p50": "0.5", "p90": "0.9", "p99": "0.99", "p99.9": "0.999"}
# The cumulative latency histogram's upper bounds in seconds: 0.5 ms (an identity model on
# loopback) to a minute (a long LLM generation); +Inf is added by the collector.
BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
             30.0, 60.0)
# The run's states, in order: a state is only ever left for a later one (a stack restarted under
# load says `stack_ready` again, and the run is still in `load`).
STATES = ("starting", "ready", "load", "stopping", "ended", "judged")
_STATE_OF_EVENT = {"run_started": "starting", "stack_ready": "ready", "load_started": "load",
                   "load_stopped": "stopping", "run_ended": "ended"}


@dataclass
class FaultState:
    kind: str
    name: str
    active: bool = False
    injections: int = 0


@dataclass(frozen=True)
class SloFigure:
    index: int
    name: str
    metric: str
    op: str
    window: str
    threshold: float
    measured: float | None  # None: nothing was measured in the window
    passed: bool


@dataclass
class RunFigures:
    scenario: str
    run_id: str
    stack: str = ""
    seed: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    state: str = STATES[0]
    requests: int = 0
    late: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    seconds: int = 0  # `second` records read
    clock_s: float | None = None  # run-clock second of the newest record
    second_requests: int = 0  # that second's figures
    second_errors: int = 0
    second_latency_ms: dict[str, float] = field(default_factory=dict)  # {} when it had no success
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS_S))
    latency_count: int = 0  # successful requests in the latency histogram
    latency_sum_s: float = 0.0
    faults: dict[str, FaultState] = field(default_factory=dict)  # by fault id (`f0.0`: entry, firing)
    slos: list[SloFigure] = field(default_factory=list)
    verdict: str | None = None
    exit_code: int | None = None
    run_latency_ms: dict[str, float] = field(default_factory=dict)  # the whole load's, from summary.json
    load_duration_s: float | None = None

    def add(self, record: Mapping[str, Any]) -> None:
        with self.lock:
            if record.get("type") == "second":
                self._second(record)
            elif record.get("type") == "event":
                self._event(str(record.get("event", "")), record)

    def add_all(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            self.add(record)

    def _second(self, record: Mapping[str, Any]) -> None:
        requests, ok = int(record["requests"]), int(record["ok"])
        self.seconds += 1
        self.requests += requests
        self.late += int(record.get("late", 0))
        self.errors.update({str(kind): int(n) for kind, n in (record.get("errors") or {}).items()})
        self.clock_s = float(record["t"])
        self.second_requests, self.second_errors = requests, requests - ok
        self.second_latency_ms = dict(record.get("latency_ms") or {})
        if record.get("hdr"):
            counts, total = bucket_counts(HdrHistogram.decode(record["hdr"]), BUCKETS_S)
            self.bucket_counts = [a + b for a, b in zip(self.bucket_counts, counts, strict=True)]
            self.latency_count += total
            self.latency_sum_s += int(record.get("sum_us", 0)) / 1_000_000

    def _event(self, name: str, record: Mapping[str, Any]) -> None:
        self.events[name] += 1
        state = _STATE_OF_EVENT.get(name)
        if state is not None:
            self._advance(state)
        if name == "run_started":
            self.seed = str(record.get("seed", ""))
        elif name == "stack_starting":
            self.stack = str(record.get("kind", "")) or self.stack
        elif name.startswith("fault_") and record.get("id") is not None:
            self._fault(name, record)

    def _fault(self, name: str, record: Mapping[str, Any]) -> None:
        fault_id = str(record["id"])
        fault = self.faults.get(fault_id)
        if fault is None:  # `fault_restored` names no `name`: it always follows `fault_scheduled`
            fault = self.faults[fault_id] = FaultState(str(record.get("kind", "")),
                                                       str(record.get("name") or record.get("kind", "")))
        if name == "fault_injected":
            fault.active = True
            fault.injections += 1
        elif name in ("fault_restored", "fault_failed"):
            fault.active = False

    def _advance(self, state: str) -> None:
        if STATES.index(state) > STATES.index(self.state):
            self.state = state

    def finish(self, summary: Mapping[str, Any]) -> None:
        """The verdict and SLO results (a summary.json object): the figures are final."""
        with self.lock:
            self.verdict = str(summary.get("verdict", "")) or None
            code = summary.get("exit_code")
            self.exit_code = int(code) if code is not None else None
            self.slos = [_slo(i, s) for i, s in enumerate(summary.get("slos") or [])]
            totals = summary.get("totals") or {}
            self.run_latency_ms = dict(totals.get("latency_ms") or {})
            duration = totals.get("duration_s")
            self.load_duration_s = float(duration) if duration is not None else None
            for fault in self.faults.values():  # every fault was restored by the teardown
                fault.active = False
            self._advance("judged")


def bucket_counts(hist: HdrHistogram, bounds_s: Sequence[float]) -> tuple[list[int], int]:
    """(values <= each bound, all values) of a decoded latency histogram in microseconds.

    A bound counts the whole HDR bucket it falls in (3 significant digits: up to 0.1% above it).
    The counts are summed in one pass at C speed (as harness.load.percentiles does): walking
    hdrh's iterators in Python would cost milliseconds a second on the load's own loop.
    """
    total = hist.get_total_count()
    try:
        if total == 0:
            return [0] * len(bounds_s), 0
        highest = hist._counts_index_for(hist.max_value)  # nothing is counted above it
        end = min(hist.counts_len, hist.encoder.payload.counts_len, highest + 1)
        cumulative = list(accumulate(hist.counts[:end]))
        out = []
        for bound in bounds_s:
            index = hist._counts_index_for(max(1, int(bound * 1_000_000)))
            out.append(cumulative[index] if index < len(cumulative) else total)
        return out, total
    finally:
        hist.encoder = None  # break hdrh's histogram <-> encoder cycle now (see recorder.Bucket.release)


def window_label(window: Any) -> str:
    """An SLO's window as a label: `all`, `faults`, `outside_faults`, or `10s..30s` (`10s..end`)."""
    if isinstance(window, Mapping):
        start = float(window.get("from") or 0.0)
        end = window.get("to")
        return f"{start:g}s..{'end' if end is None else f'{float(end):g}s'}"
    return str(window)


def _slo(index: int, slo: Mapping[str, Any]) -> SloFigure:
    measured = slo.get("measured")
    return SloFigure(index, str(slo.get("name", "")), str(slo.get("metric", "")), str(slo.get("op", "")),
                     window_label(slo.get("window", "all")), float(slo.get("threshold", 0.0)),
                     float(measured) if measured is not None else None, bool(slo.get("passed")))
