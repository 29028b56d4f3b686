"""Reading a run back from its journal: series, windows and the metrics SLOs assert on."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.faultimpact import fault_intervals
from harness.features import metric_def
from harness.journal import JOURNAL_NAME, read_journal
from harness.journal_compat import upgrade
from harness.load.percentiles import value_at_percentile
from harness.load.recorder import decode_histogram, latency_summary, new_histogram
from harness.logpatterns import HARNESS, HarnessSignals
from harness.scenario import Window

# `p99_ms`, `p99.9_ms`: a percentile strictly between 0 and 100 (2 digits before the point).
PERCENTILE = re.compile(r"^p(?!0+(?:\.0*)?_ms$)(\d{1,2}(?:\.\d+)?)_ms$")


@dataclass
class RunData:
    events: list[dict[str, Any]]
    seconds: list[dict[str, Any]]
    load_start: float | None = None
    load_end: float | None = None
    load_summary: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> "RunData":
        # In time order: an event can be written a moment after its time (a process exit is
        # journaled once its exit code is read, with the time it was noticed).
        events = sorted((upgrade(r) for r in records if r.get("type") == "event"), key=lambda r: r["t"])
        seconds = sorted((r for r in records if r.get("type") == "second"), key=lambda r: r["t"])
        data = cls(events=events, seconds=seconds)
        for record in records:
            if record.get("type") == "series":
                data.series.setdefault(record["name"], []).append(record)
        for event in events:
            if event["event"] == "load_started":
                data.load_start = event["t"]
            elif event["event"] == "load_stopped":
                data.load_end = event["t"]
                data.load_summary = event
        if data.load_start is not None and data.load_end is None and seconds:
            data.load_end = float(seconds[-1]["t"] + 1)  # the run died while load ran
        return data

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> "RunData":
        return cls.from_records(read_journal(run_dir / JOURNAL_NAME))

    def first_event(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e["event"] == name), None)

    def bounds(self, window: Window | str) -> tuple[float, float]:
        """A window as [start, end) on the run clock, clipped to the load phase."""
        if self.load_start is None or self.load_end is None:
            return (0.0, 0.0)
        if not isinstance(window, Window):
            return (self.load_start, self.load_end)
        start = self.load_start + window.start
        end = self.load_end if window.end is None else min(self.load_end, self.load_start + window.end)
        return (start, max(start, end))

    def seconds_in(self, start: float, end: float) -> list[dict[str, Any]]:
        """Per-second records whose second overlaps [start, end).

        Overlaps, not begins inside: the load starts mid-second, and that first partial second's
        requests belong to the run as much as the last partial second's do.
        """
        return [r for r in self.seconds if r["t"] + 1 > start + 1e-9 and r["t"] < end]


@dataclass(frozen=True)
class Measured:
    value: float | None  # None: no data to measure
    samples: int  # requests the value rests on


def records_in(data: RunData, window: Window | str) -> tuple[list[dict[str, Any]], float]:
    """The per-second records of a window, and the window's length in seconds."""
    start, end = data.bounds(window)
    records = data.seconds_in(start, end)
    if window not in ("faults", "outside_faults"):
        return records, end - start

    intervals = fault_intervals(data)

    def overlaps(record: dict[str, Any]) -> bool:
        return any(a < record["t"] + 1 and record["t"] < b for a, b in intervals)

    chosen = [r for r in records if overlaps(r) == (window == "faults")]
    return chosen, float(len(chosen))


def log_count(data: RunData, name: str) -> int:
    """Matches of a log pattern: the watcher's final count, else the last count it wrote."""
    for event in data.events:
        if event["event"] == "observer_stopped" and event.get("observer") == "logwatch":
            return int(event["summary"]["patterns"].get(name, {}).get("count", 0))
    samples = data.series.get("log_matches", [])
    return int(samples[-1]["values"].get(name, 0)) if samples else 0


def log_patterns_seen(data: RunData) -> dict[str, Any]:
    """Per pattern: count, first/last time and first line (patterns that matched only)."""
    for event in data.events:
        if event["event"] == "observer_stopped" and event.get("observer") == "logwatch":
            patterns = event["summary"]["patterns"]
            return {name: stats for name, stats in patterns.items() if stats.get("count")}
    return {}


def measure(data: RunData, metric: str, window: Window | str = "all") -> Measured:
    """The value of an SLO metric over a window, by its declaration (the core's or a feature's)."""
    definition = metric_def(metric)
    if definition is None:
        raise KeyError(metric)
    return definition.measure(data, metric, window)


def whole_run(
    compute: Callable[[RunData, str], tuple[float | None, int]],
) -> Callable[[RunData, str, Window | str], Measured]:
    """A metric of the whole run from `compute` -> (value, what it rests on): no window applies."""

    def measured(data: RunData, metric: str, window: Window | str) -> Measured:
        return Measured(*compute(data, metric))

    return measured


def series_metric(data: RunData, metric: str, window: Window | str) -> Measured:
    """Counters and rates of the per-second series (harness.metrics.SERIES_METRICS)."""
    records, span = records_in(data, window)
    requests = sum(r["requests"] for r in records)
    ok = sum(r["ok"] for r in records)
    errors = requests - ok
    late = sum(r.get("late", 0) for r in records)
    simple: dict[str, float | None] = {
        "requests": requests,
        "ok": ok,
        "errors": errors,
        "late": late,
        "error_rate": errors / requests if requests else None,
        "late_rate": late / requests if requests else None,
        "throughput_rps": ok / span if span > 0 else None,
        "unsent": data.load_summary.get("unsent", 0) if window == "all" else None,
    }
    if metric not in simple:
        raise KeyError(metric)
    # Throughput rests on the successful requests it is made of; the others on every request.
    return Measured(simple[metric], ok if metric == "throughput_rps" else requests)


def latency_metric(data: RunData, metric: str, window: Window | str) -> Measured:
    """`pNN_ms`, `mean_ms`, `max_ms` of the successful requests, from the merged histograms."""
    records, _ = records_in(data, window)
    hist = merged_histogram(records)
    if hist.get_total_count() == 0:
        return Measured(None, 0)
    pct = percentile_of(metric)
    if pct is not None:
        value = value_at_percentile(hist, pct) / 1000  # also read by abort checks while the load runs
    elif metric == "mean_ms":
        value = hist.get_mean_value() / 1000
    elif metric == "max_ms":
        value = hist.get_max_value() / 1000
    else:
        raise KeyError(metric)
    return Measured(round(value, 3), sum(r["ok"] for r in records))


def log_metric(data: RunData, metric: str, window: Window | str) -> Measured:
    """`log.NAME`: the run's matches of a log pattern (the whole run, whatever the window), less
    the lines that report a signal the harness itself sent: its SIGTERM at the stop is no finding."""
    name = metric.removeprefix("log.")
    return Measured(float(max(0, log_count(data, name) - harness_caused(data, name))), 1)


def signal_lines(data: RunData) -> list[tuple[dict[str, Any], bool]]:
    """Each journaled log line that reports a received signal, and whether the harness sent it.

    The watcher's `attribution` decides where the journal has one; otherwise (a journal written
    by other means) the same rule is applied here to the journal's `signal_sent` events.
    """
    sent = HarnessSignals()
    for event in data.events:
        if event["event"] == "signal_sent":
            sent.sent(float(event["t"]), int(event["number"]))
    lines = []
    for event in data.events:
        if event["event"] != "log_match" or event.get("signal") is None:
            continue
        attribution = event.get("attribution")
        if attribution is None:
            explained = sent.explain(str(event["pattern"]), int(event["signal"]), float(event["t"]))
            by_harness = explained is not None
        else:
            by_harness = attribution == HARNESS
        lines.append((event, by_harness))
    return lines


def harness_caused(data: RunData, name: str) -> int:
    """Lines of pattern `name` the harness's own signals caused, counted from this journal's events
    (a soak cycle's journal holds its own; the watcher's summary counts the whole soak)."""
    return sum(1 for event, by_harness in signal_lines(data) if by_harness and event["pattern"] == name)


def percentile_of(metric: str) -> float | None:
    """50.0 for `p50_ms`, 99.9 for `p99.9_ms`, None for other names."""
    match = PERCENTILE.match(metric)
    return None if match is None else float(match.group(1))


def merged_histogram(records: list[dict[str, Any]]) -> Any:
    hist = new_histogram()
    for record in records:
        if record.get("hdr"):
            hist.add(decode_histogram(record["hdr"]))
    return hist


def totals(data: RunData) -> dict[str, Any]:
    """Whole-load figures for the summary."""
    start, end = data.bounds("all")
    records = data.seconds_in(start, end)
    requests = sum(r["requests"] for r in records)
    ok = sum(r["ok"] for r in records)
    by_kind: dict[str, int] = {}
    for record in records:
        for kind, count in record.get("errors", {}).items():
            by_kind[kind] = by_kind.get(kind, 0) + count
    span = end - start
    return {
        "requests": requests,
        "ok": ok,
        "errors": requests - ok,
        "error_rate": round((requests - ok) / requests, 6) if requests else None,
        "throughput_rps": round(ok / span, 2) if span > 0 else None,
        "late": sum(r.get("late", 0) for r in records),
        "unsent": data.load_summary.get("unsent"),
        "duration_s": round(span, 3),
        "errors_by_kind": by_kind,
        "latency_ms": latency_summary(merged_histogram(records)),
    }
