"""Stopping a run early once an SLO marked `abort: true` is decided by the data so far (k6's
`abortOnFail`).

While the load runs, the run loop asks `AbortWatch.check()` about once a second. It reads what the
journal's current file gained since the last look (never the whole file again), builds a
`RunData` of the records so far, and judges each abort SLO on it, once `abort_grace` seconds of
load have passed and the SLO's window has begun. How far a value so far decides the verdict
depends on how the metric can still move (`movement`):

- a count, a maximum or a longest time (`errors`, `requests`, `crashes`, `max_ms`, `recovery_s`,
  `log.NAME`, ...) only grows: past a ceiling (`<`, `<=`) it fails for good; a floor (`>`, `>=`)
  it has reached it holds for good. A floor not reached yet decides nothing: more may come.
  `recovery_s <= X` also fails once a fault has gone unrecovered for longer than X;
- a rate, a mean or a percentile (`error_rate`, `throughput_rps`, `p99_ms`, ...) moves either
  way: as k6 does, it aborts when it fails on the data so far, either direction;
- a feature's metric (TTFT, memory, ...) declares no such thing: it aborts a ceiling that fails
  so far, never a floor (a feature may only know its figure at the end);
- `unsent` is known only once the load stopped: it never aborts;
- a `{from, to}` window whose end has passed holds its final value: any outcome of a metric
  counted over windows (the per-second series, latency) is then decided.

With `expect: reproduced` the SLOs are the conditions of the failure, and only final outcomes
count (a rate that holds so far may not hold at the end): a condition that fails for good stops
the run (not reproduced), and once every abort condition holds for good the run stops too (the
failure was reproduced: no need to load it any longer); the verdict is then the usual one.

The decision is journaled as `run_aborted` and the run loop ends the load as at its end: the
same teardown restores every fault, and the reports are written from the journal as always
(harness.verdict turns a failed abort into SLO_FAILED with `abort_reason`).
"""

from __future__ import annotations

import json
import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from harness.analysis import RunData, measure, percentile_of, records_in
from harness.faultimpact import fault_impacts
from harness.journal import Journal, RotatingJournal
from harness.load.percentiles import value_at_percentile
from harness.load.recorder import decode_histogram, new_histogram
from harness.metrics import (
    ERROR_KIND_METRIC,
    LATENCY_METRICS,
    LOG_METRIC,
    PER_ROLE_METRIC,
    RECOVERY_METRICS,
    SERIES_METRICS,
)
from harness.scenario import Scenario, Slo, Window

log = logging.getLogger(__name__)

ABORT_EVENT = "run_aborted"
FAILED, HELD = "failed", "held"
FINAL, SO_FAR = "final", "so far"  # cannot change any more / k6: fails on the data so far
# The load's seconds reach the journal once a second: looking more often finds nothing new.
CHECK_EVERY_S = 1.0
# The checks run in the event loop the users run in: a long run's check (percentiles over many
# seconds) must not take more than this share of it, or the harness would stall its own load.
MAX_LOOP_SHARE = 0.05
# The series the core's metrics read live; a feature's metric may read any (then all are kept).
CORE_SERIES = {"log_matches"}

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_CEILINGS = ("<", "<=")


class Movement(Enum):
    """How a metric's value over an open window can move as the load goes on."""

    GROWS = "grows"  # never decreases: counts, maxima, longest times
    ESTIMATE = "estimate"  # a rate, mean or percentile of the data so far: either way
    FEATURE = "feature"  # a feature's metric: not declared
    AT_END = "at_end"  # known only once the load stopped


_GROWS = {"requests", "ok", "errors", "late", "max_ms", *RECOVERY_METRICS}
_ESTIMATES = {"error_rate", "late_rate", "throughput_rps", "mean_ms"}
_AT_END = {"unsent"}
# Grow, but a fault (a replica) never recovered from leaves them unmeasured at the end, which
# fails any SLO on them: reaching a floor is not final for these.
_MAY_END_UNMEASURED = {"recovery_s", "replica_recovery_s"}


def movement(metric: str) -> Movement:
    if metric in _AT_END:
        return Movement.AT_END
    by_kind = ERROR_KIND_METRIC.fullmatch(metric)
    if metric in _GROWS or LOG_METRIC.fullmatch(metric) or PER_ROLE_METRIC.fullmatch(metric) or (
            by_kind and by_kind[1] == "errors"):
        return Movement.GROWS
    if metric in _ESTIMATES or percentile_of(metric) is not None or by_kind:
        return Movement.ESTIMATE
    return Movement.FEATURE


def counted_over_window(metric: str) -> bool:
    """The per-second series and latency honour an SLO's window; the others are whole-run figures,
    so the end of a window does not fix them."""
    return (metric in SERIES_METRICS or metric in LATENCY_METRICS or percentile_of(metric) is not None
            or ERROR_KIND_METRIC.fullmatch(metric) is not None)


def abort_never_fires(slo: Slo, expect: str) -> str | None:
    """Why `abort: true` on this SLO can never stop a run (None: it can); for validation."""
    if not slo.abort:
        return None
    moves = movement(slo.metric)
    closes = isinstance(slo.window, Window) and slo.window.end is not None and counted_over_window(slo.metric)
    if moves is Movement.AT_END:
        return f"{slo.metric} is known only once the load stopped"
    if closes:
        return None
    ceiling = slo.op in _CEILINGS
    if expect == "reproduced" and moves is not Movement.GROWS:
        return f"{slo.metric} is decided only at the end (a window with `to` would decide it)"
    if expect == "pass" and moves is Movement.GROWS and not ceiling:
        return f"{slo.metric} only grows: `{slo.op}` cannot fail before the end (a window with `to` can)"
    if expect == "pass" and moves is Movement.FEATURE and not ceiling:
        return f"a feature's metric ({slo.metric}) aborts on a ceiling (`<`, `<=`) only"
    return None


@dataclass(frozen=True)
class Finding:
    """One abort SLO's outcome, decided on the data so far."""

    slo: Slo
    measured: float
    outcome: str  # FAILED or HELD
    rule: str  # FINAL or SO_FAR

    def to_dict(self) -> dict[str, Any]:
        slo = self.slo
        window = slo.window if isinstance(slo.window, str) else slo.window.model_dump(by_alias=True)
        return {"name": slo.label, "metric": slo.metric, "op": slo.op, "threshold": slo.threshold,
                "window": window, "measured": self.measured, "rule": self.rule}


@dataclass(frozen=True)
class Abort:
    """The run stops here: an abort SLO failed, or (a reproduction) every abort condition held."""

    outcome: str
    at_s: float  # seconds of load (of the soak's cycle) when it was decided
    findings: tuple[Finding, ...]

    def event_fields(self) -> dict[str, Any]:
        first = self.findings[0]
        return {"outcome": self.outcome, "at_s": round(self.at_s, 3), "rule": first.rule,
                "slo": first.slo.label, "metric": first.slo.metric, "op": first.slo.op,
                "threshold": first.slo.threshold, "measured": first.measured,
                "slos": [f.to_dict() for f in self.findings]}


ValueOf = Callable[[Slo, RunData, float], "float | None"]


def judge(slo: Slo, data: RunData, now: float, expect: str, value_of: ValueOf) -> Finding | None:
    """This SLO's outcome if the data so far decides it (see the module's docstring), else None."""
    if data.load_start is None or data.load_end is None or data.load_summary:
        return None  # no second written yet, or this load (this cycle) is over: the reports judge it
    if now - data.load_start < slo.abort_grace:
        return None
    window = slo.window
    if isinstance(window, Window) and data.load_end <= data.load_start + window.start:
        return None  # its window has not begun: nothing in it to judge
    moves = movement(slo.metric)
    if moves is Movement.AT_END:
        return None
    closed = (isinstance(window, Window) and window.end is not None and counted_over_window(slo.metric)
              and data.load_end >= data.load_start + window.end)
    value = value_of(slo, data, now)
    if value is None:
        return None  # nothing measured yet: no data is not a failure while the load goes on
    passed = _OPERATORS[slo.op](value, slo.threshold)
    decided = _decided(slo, moves, passed, closed, expect)
    if decided is None:
        return None
    return Finding(slo, round(value, 6), decided[0], decided[1])


def _decided(slo: Slo, moves: Movement, passed: bool, closed: bool, expect: str) -> tuple[str, str] | None:
    outcome = HELD if passed else FAILED
    if closed:
        return outcome, FINAL
    ceiling = slo.op in _CEILINGS
    if moves is Movement.GROWS:
        if ceiling and not passed:
            return FAILED, FINAL  # it can only grow further past its ceiling
        if not ceiling and passed and slo.metric.split(".")[0] not in _MAY_END_UNMEASURED:
            return HELD, FINAL  # a floor reached stays reached
        return None
    if expect == "reproduced" or passed:
        return None  # a reproduction's condition counts only once it is final
    if moves is Movement.ESTIMATE or ceiling:
        return FAILED, SO_FAR
    return None


def decide(findings: list[Finding | None], expect: str, at_s: float) -> Abort | None:
    """The run stops on the first abort SLO that failed; a reproduction also stops once every abort
    condition held (`findings`: one per abort SLO, None where undecided)."""
    failed = next((f for f in findings if f is not None and f.outcome == FAILED), None)
    if failed is not None:
        return Abort(FAILED, at_s, (failed,))
    if expect == "reproduced" and findings and all(f is not None and f.outcome == HELD for f in findings):
        return Abort(HELD, at_s, tuple(f for f in findings if f is not None))
    return None


# --- measuring live


@dataclass
class _Merged:
    """A window's latency histogram, merged as its seconds arrive (each decoded once, not every check)."""

    hist: Any = field(default_factory=new_histogram)
    seen: set[float] = field(default_factory=set)
    sum_us: float = 0.0

    def add(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            if record["t"] in self.seen:
                continue
            self.seen.add(record["t"])
            if record.get("hdr"):
                self.hist.add(decode_histogram(record["hdr"]))
                self.sum_us += record.get("sum_us", 0)

    def value(self, metric: str) -> float | None:
        count = self.hist.get_total_count()
        if count == 0:
            return None
        pct = percentile_of(metric)
        if pct is not None:
            us = value_at_percentile(self.hist, pct)  # checked every second: not hdrh's Python walk
        elif metric == "max_ms":
            us = self.hist.get_max_value()
        else:  # mean_ms: from the exact sums (hdrh's mean walks every bucket in Python)
            us = self.sum_us / count
        return round(us / 1000, 3)


class LiveMeasure:
    """The value of an SLO's metric on the data so far: the final verdict's measure, except
    - latency over `all` or `{from, to}` is merged incrementally: the seconds of those windows only
      ever join them, and re-decoding every second's histogram at every check would stall the load;
    - `log.NAME` reads the watcher's latest count (minus a soak cycle's baseline, as the cycle's
      report does: harness.soak.cycle.rebase_log_counts);
    - `recovery_s` under a ceiling counts a fault not yet recovered from as long as it has lasted."""

    def __init__(self) -> None:
        self._merged: dict[str, _Merged] = {}

    def reset(self) -> None:
        self._merged.clear()

    def __call__(self, slo: Slo, data: RunData, now: float) -> float | None:
        metric = slo.metric
        if LOG_METRIC.fullmatch(metric):
            return _log_count(data, metric.removeprefix("log."))
        if (metric in LATENCY_METRICS or percentile_of(metric) is not None) and slo.window not in (
                "faults", "outside_faults"):
            key = json.dumps(slo.window.model_dump() if isinstance(slo.window, Window) else slo.window)
            merged = self._merged.setdefault(key, _Merged())
            merged.add(records_in(data, slo.window)[0])
            return merged.value(metric)
        value = measure(data, metric, slo.window).value
        if metric == "recovery_s" and slo.op in _CEILINGS:
            open_for = [now - i.injected_t for i in fault_impacts(data)
                        if i.detected_t is not None and i.recovered_t is None]
            if open_for:
                return max([value or 0.0, *open_for])
        return value


def _log_count(data: RunData, name: str) -> float:
    samples = data.series.get("log_matches", [])
    count = float(samples[-1]["values"].get(name, 0.0)) if samples else 0.0
    started = data.first_event("load_started") or {}
    baseline = started.get("log_baseline") or {}
    return max(0.0, count - float(baseline.get(name, 0.0)))


# --- reading the journal as it grows


class JournalTail:
    """The records of the journal's current file, read as it grows: each look reads only what was
    appended since the last. A soak's journal switches files every cycle (`Journal.path`); the
    records then start again from the new file, so each cycle is judged on its own records."""

    def __init__(self, journal: Journal, keep_series: set[str] | None = None):
        self.journal = journal
        self.keep_series = keep_series  # None: every series
        self.path: Path | None = None
        self.offset = 0
        self._partial = b""
        self.records: list[dict[str, Any]] = []

    def read(self) -> bool:
        """Take in what was appended; True when the file changed and the records started again."""
        rotated = self.journal.path != self.path
        if rotated:
            self.path, self.offset, self._partial, self.records = self.journal.path, 0, b"", []
        assert self.path is not None
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return rotated
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # a line still being written (or b"")
        for line in lines:
            self._take(line)
        return rotated

    def _take(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return  # a torn line, as read_journal skips it
        if not isinstance(record, dict):
            return
        if record.get("type") == "series" and self.keep_series is not None \
                and record.get("name") not in self.keep_series:
            return  # e.g. Prometheus samples, 4 a second: no live metric reads them
        self.records.append(record)


class AbortWatch:
    """The run loop's view of its abort SLOs: `check()` says when to stop, having journaled why."""

    def __init__(self, slos: list[Slo], expect: str, journal: Journal):
        self.slos = slos
        self.expect = expect
        self.journal = journal
        core_only = all(movement(s.metric) is not Movement.FEATURE for s in slos)
        self.tail = JournalTail(journal, CORE_SERIES if core_only else None)
        self.measure = LiveMeasure()
        self._held: dict[int, Finding] = {}  # a reproduction's conditions that held for good
        self._broken: set[int] = set()  # SLOs whose live measure raised: left to the final verdict
        self._next = 0.0

    @classmethod
    def for_run(cls, scenario: Scenario, journal: Journal) -> AbortWatch | None:
        """None when no SLO says `abort: true`: the run loop then does nothing more than before."""
        slos = [slo for slo in scenario.slo if slo.abort]
        return cls(slos, scenario.expect, journal) if slos else None

    def check(self) -> Abort | None:
        """At most every CHECK_EVERY_S: the abort decided on the data so far, journaled; else None."""
        now = self.journal.now()
        if now < self._next:
            return None
        began = time.perf_counter()
        decision = self._evaluate(now)
        spent = time.perf_counter() - began
        self._next = now + max(CHECK_EVERY_S, spent / MAX_LOOP_SHARE)
        if decision is not None:
            # A soak's cycle is judged on its own file: the abort is never the previous cycle's tail's.
            journal = self.journal
            write = journal.event_here if isinstance(journal, RotatingJournal) else journal.event
            write(ABORT_EVENT, **decision.event_fields())
        return decision

    def _evaluate(self, now: float) -> Abort | None:
        if self.tail.read():
            self.measure.reset()
            self._held.clear()
        data = RunData.from_records(self.tail.records)
        findings: list[Finding | None] = []
        for index, slo in enumerate(self.slos):
            finding = self._held.get(index)
            if finding is None and index not in self._broken:
                finding = self._judge(index, slo, data, now)
            if finding is not None and finding.outcome == HELD and finding.rule == FINAL:
                self._held[index] = finding
            findings.append(finding)
        at_s = now - data.load_start if data.load_start is not None else 0.0
        return decide(findings, self.expect, at_s)

    def _judge(self, index: int, slo: Slo, data: RunData, now: float) -> Finding | None:
        try:
            return judge(slo, data, now, self.expect, self.measure)
        except Exception:  # noqa: BLE001 - a live look is an early exit only; the final verdict still judges
            log.exception("abort: measuring %s on the data so far failed; it no longer aborts", slo.label)
            self._broken.add(index)
            return None


# --- reading an abort back (verdict, summary, story)


def abort_reason(event: dict[str, Any]) -> str:
    """`aborted at 12.0s: error_rate <= 0.01 failed (measured 0.2)`, from the `run_aborted` event."""
    at = float(event.get("at_s") or 0.0)
    if event.get("outcome") == HELD:
        held = "; ".join(f"{s['name']} held (measured {s['measured']:g})" for s in event.get("slos", []))
        return f"stopped early at {at:.1f}s: {held}"
    return f"aborted at {at:.1f}s: {event.get('slo')} failed (measured {float(event.get('measured', 0)):g})"


def aborted_summary(data: RunData) -> dict[str, Any] | None:
    """summary.json's `aborted`: why and when the run stopped early (None: it did not)."""
    event = data.first_event(ABORT_EVENT)
    if event is None:
        return None
    keep = ("outcome", "at_s", "t", "rule", "slo", "metric", "op", "threshold", "measured", "slos")
    return {"reason": abort_reason(event), **{k: event[k] for k in keep if k in event}}


def story_line(event: dict[str, Any]) -> str:
    if event.get("outcome") == HELD:
        return f"every abort condition held: the run stops early ({abort_reason(event)})"
    return f"abort: {event.get('slo')} failed (measured {float(event.get('measured', 0)):g}): the run stops"
