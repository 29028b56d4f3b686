"""Per-second request records with HDR latency histograms, never a list of every sample."""

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from harness.load.failures import MESSAGE_CHARS
from harness.load.measures import measures_record, new_measure_histogram, record_measures
from harness.load.percentiles import values_at_percentiles

# Latency is recorded in microseconds, 1 us .. 1 h, 3 significant digits.
LOWEST_US = 1
HIGHEST_US = 3_600_000_000
DIGITS = 3
REPORTED_PERCENTILES = (50, 90, 99, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def decode_histogram(encoded: str) -> HdrHistogram:
    return HdrHistogram.decode(encoded)


def latency_summary(hist: HdrHistogram, sum_us: float | None = None) -> dict[str, float]:
    """Percentiles, mean and max in milliseconds (empty when the histogram is).

    Pass `sum_us` where it is known: hdrh's mean walks the whole histogram in Python (about
    30 ms a bucket), which would stall every user once a second; its percentiles do too, so they
    come from harness.load.percentiles.
    """
    count = hist.get_total_count()
    if count == 0:
        return {}
    values = values_at_percentiles(hist, REPORTED_PERCENTILES)
    summary = {f"p{p:g}": values[p] / 1000 for p in REPORTED_PERCENTILES}
    mean_us = sum_us / count if sum_us is not None else hist.get_mean_value()
    summary["mean"] = mean_us / 1000
    summary["max"] = hist.get_max_value() / 1000
    return {key: round(value, 3) for key, value in summary.items()}


@dataclass
class Bucket:
    """One second of completed requests."""

    requests: int = 0
    ok: int = 0
    late: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    messages: dict[str, str] = field(default_factory=dict)  # first message of each error kind
    hist: HdrHistogram = field(default_factory=new_histogram)
    sum_us: int = 0  # of successful latencies, for an exact and cheap mean
    measures: dict[str, HdrHistogram] = field(default_factory=dict)  # see harness.load.measures
    measure_sums: dict[str, float] = field(default_factory=dict)  # scaled, for each measure's mean
    error_span: list[float] = field(default_factory=list)  # run-clock times of first and last failure

    def to_record(self, second: int) -> dict[str, Any]:
        record: dict[str, Any] = {
            "t": second,
            "requests": self.requests,
            "ok": self.ok,
            "errors": dict(self.errors),
            "late": self.late,
            "latency_ms": latency_summary(self.hist, self.sum_us),
        }
        if self.messages:
            record["error_messages"] = dict(self.messages)
        if self.hist.get_total_count():
            record["hdr"] = self.hist.encode().decode("ascii")
            record["sum_us"] = self.sum_us  # lets a master merge workers' seconds with an exact mean
        if self.measures:
            record["measures"] = measures_record(self.measures, self.measure_sums)
        if self.error_span:
            record["error_span"] = [round(t, 4) for t in self.error_span]
        return record

    def release(self) -> None:
        """Free the histograms now. An hdrh histogram and its encoder refer to each other, so
        without this each written second (about 190 kB) waits for Python's full garbage
        collection, which a busy process seldom reaches: the harness's RSS grew ~20 MB an hour."""
        for hist in [self.hist, *self.measures.values()]:
            _free(hist)

    def add_record(self, record: dict[str, Any]) -> None:
        """Merge a second's journal record (from `to_record`) into this bucket."""
        self.requests += int(record["requests"])
        self.ok += int(record["ok"])
        self.late += int(record.get("late", 0))
        self.errors.update(record.get("errors", {}))
        for kind, message in record.get("error_messages", {}).items():
            self.messages.setdefault(kind, message)
        if record.get("hdr"):
            _add_and_free(self.hist, decode_histogram(record["hdr"]))
            self.sum_us += int(record.get("sum_us", 0))
        for name, measure in record.get("measures", {}).items():
            hist = self.measures.get(name)
            if hist is None:
                hist = self.measures[name] = new_measure_histogram()
            _add_and_free(hist, HdrHistogram.decode(measure["hdr"]))
            if "sum" in measure:
                self.measure_sums[name] = self.measure_sums.get(name, 0.0) + float(measure["sum"])
        self.error_span = _merge_span(self.error_span, record.get("error_span", []))


def _free(hist: HdrHistogram) -> None:
    """Break the histogram <-> encoder cycle (see Bucket.release); the histogram is done with."""
    hist.encoder = None


def _add_and_free(into: HdrHistogram, other: HdrHistogram) -> None:
    into.add(other)  # hdrh adds through `other.encoder`: free it only afterwards
    _free(other)


def _merge_span(span: list[float], other: list[float]) -> list[float]:
    if not span:
        return list(other)
    if not other:
        return span
    return [min(span[0], other[0]), max(span[1], other[1])]


class Recorder:
    """Collects request outcomes into one bucket per second of the run clock.

    Latency histograms hold successful requests only: a refused connection answers in
    microseconds and would make a failing server look fast. Failures are counted by kind.
    """

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.buckets: dict[int, Bucket] = {}

    def record(
        self, latency_s: float, error_kind: str | None, late: bool = False, message: str = "",
        measures: dict[str, float] | None = None,
    ) -> None:
        now = self.clock()
        second = math.floor(now)
        bucket = self.buckets.get(second)
        if bucket is None:
            bucket = self.buckets[second] = Bucket()
        bucket.requests += 1
        bucket.late += late
        if error_kind is None:
            latency_us = max(LOWEST_US, int(latency_s * 1_000_000))
            bucket.ok += 1
            bucket.sum_us += latency_us
            bucket.hist.record_value(latency_us)
            if measures:
                record_measures(bucket.measures, measures, bucket.measure_sums)
            return
        if bucket.error_span:  # when failures ended, to the millisecond (not the second)
            bucket.error_span[1] = now
        else:
            bucket.error_span = [now, now]
        bucket.errors[error_kind] += 1
        if message and error_kind not in bucket.messages:
            bucket.messages[error_kind] = message[:MESSAGE_CHARS]

    def merge(self, record: dict[str, Any]) -> None:
        """Add a second recorded elsewhere (a load worker) into this recorder's bucket for it."""
        second = int(record["t"])
        bucket = self.buckets.get(second)
        if bucket is None:
            bucket = self.buckets[second] = Bucket()
        bucket.add_record(record)

    def pop_complete(self, now: float | None = None, everything: bool = False) -> list[dict[str, Any]]:
        """Records of the seconds that are over (all of them if `everything`), oldest first."""
        current = math.floor(self.clock() if now is None else now)
        done = sorted(s for s in self.buckets if everything or s < current)
        records = []
        for second in done:
            bucket = self.buckets.pop(second)
            records.append(bucket.to_record(second))
            bucket.release()
        return records
