"""Scrape a Prometheus text endpoint (the stack's metrics port) a few times a second.

What is kept and derived is the stack's `ScrapeProfile` (`harness/observers/scrape_profile.py`,
declared by `Stack.scrape_profile()`); this module knows Prometheus, not any server. Each
successful scrape writes one `metrics` series sample holding:

- the selected families as they are, cumulative counters included, keyed `name{label=value,...}`
  (labels sorted, the profile's `dropped_labels` left out: `nv_inference_request_success{model=m}`);
  a histogram or summary as its `_sum` and `_count` (and a summary's quantiles), never its buckets;
- values derived from this scrape and the previous one, so a plot is meaningful: `<counter>:per_s`
  (a rate), the profile's ratios (e.g. `<duration>:per_request`), and `<histogram>:mean` (the mean
  of what was observed in the interval: increase of `_sum` over increase of `_count`);
- `scrape_ms`, how long the scrape took: the server's answer plus any wait for the harness's
  own event loop (under heavy in-process load the second part dominates: 50-150 ms seen).

At start the journal gets `metrics_profile` (the profile's name and the charts the report draws
from the series). A failed scrape (refused, timed out, HTTP error, unparsable text) is counted,
never fatal; the journal gets `metrics_scrape_failed` when scraping starts failing and
`metrics_scrape_recovered` when it works again, so a hung or dead server shows as a window rather
than thousands of events. `stop()` scrapes once more and returns scrapes, scrape_failures,
last_error, longest_gap_s, `final` (each key's last value seen) and `increase` (each rated
counter's increase while watched, across server restarts).

Counters are keyed by their family name: `prometheus_client`'s parser reports a counter exposed
as `nv_inference_count` as family `nv_inference_count` with sample name `nv_inference_count_total`,
and one exposed as `x_total` (what prometheus_client itself writes: vLLM's
`vllm:num_preemptions_total`) as family `x` too; the family name is the one stable spelling.
prometheus_client also exposes `x_created` (a Unix timestamp) as a gauge family beside each
counter and histogram; those are left out.
"""

import http.client
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent import Greenlet
from prometheus_client.parser import text_string_to_metric_families

from harness.observers.base import Observer, ObserverContext
from harness.observers.scrape_profile import (
    GENERIC_PROFILE,
    PROFILE_EVENT,
    SERIES_NAME,
    Ratio,
    ScrapeProfile,
    selected,
)

CUMULATIVE_TYPES = frozenset({"counter", "histogram", "summary"})  # those that get `_created`
MEAN_TYPES = frozenset({"histogram", "summary"})  # those with `_sum` and `_count`
CREATED = "_created"

Fetch = Callable[[str, float], str]


@dataclass(frozen=True)
class Snapshot:
    """One scrape: run-clock time, flat values, and each kept family's Prometheus type."""

    t: float
    values: dict[str, float]
    kinds: dict[str, str] = field(default_factory=dict)


def metric_key(name: str, labels: dict[str, str], drop: Collection[str] = ()) -> str:
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


def parse_scrape(text: str, profile: ScrapeProfile = GENERIC_PROFILE) -> Snapshot:
    """Prometheus text -> the profile's families as flat `{key: value}` and their types (t=0).

    Samples that collide once `dropped_labels` are removed are summed (two versions of a model).
    Non-finite values (NaN, +Inf) are left out so the journal stays plain JSON.
    Raises ValueError on text the parser rejects.
    """
    families = list(text_string_to_metric_families(text))  # parse it all: a bad line raises here
    cumulative = {family.name for family in families if family.type in CUMULATIVE_TYPES}
    wanted = selected(profile.select)
    values: dict[str, float] = {}
    kinds: dict[str, str] = {}
    for family in families:
        if not wanted(family.name) or _is_created_family(family.name, cumulative):
            continue
        kinds[family.name] = family.type
        for sample in family.samples:
            value = float(sample.value)
            if not math.isfinite(value) or not _journaled(family.name, family.type, sample.name):
                continue
            name = family.name if family.type == "counter" else sample.name
            key = metric_key(name, sample.labels, profile.dropped_labels)
            values[key] = values.get(key, 0.0) + value
    return Snapshot(0.0, values, kinds)


def parse_metrics(text: str, profile: ScrapeProfile = GENERIC_PROFILE) -> dict[str, float]:
    """Prometheus text -> flat `{key: value}` for the profile's families (see `parse_scrape`)."""
    return parse_scrape(text, profile).values


def _is_created_family(name: str, cumulative: Collection[str]) -> bool:
    """prometheus_client's `x_created` gauge beside counter or histogram `x`: when it was made."""
    return name.endswith(CREATED) and name.removesuffix(CREATED) in cumulative


def _journaled(family: str, kind: str, sample: str) -> bool:
    """Buckets are too many keys to journal four times a second; `_created` is a timestamp."""
    if kind == "histogram" and sample.endswith("_bucket"):
        return False
    return sample != family + CREATED


def _increase(before: float, after: float) -> float:
    """A counter's increase; a drop means the server restarted and counts from zero again."""
    return after if after < before else after - before


class _Rules:
    """The profile's selections as predicates, for one pair of snapshots (types are per scrape)."""

    def __init__(self, profile: ScrapeProfile, kinds: dict[str, str]):
        self.profile = profile
        self.kinds = kinds
        self._rated = None if profile.rates is None else selected(profile.rates)
        self.numerators: list[tuple[Ratio, Callable[[str], bool]]] = [
            (ratio, selected(ratio.numerator)) for ratio in profile.ratios
        ]
        self._denominators = {ratio.denominator for ratio in profile.ratios}

    def rated(self, name: str) -> bool:
        if self._rated is None:
            return self.kinds.get(name) == "counter"
        return self._rated(name)

    def histogram_of(self, name: str) -> str | None:
        """`h` for the `h_sum` or `h_count` key of a histogram (or summary) `h`."""
        if not self.profile.histogram_means:
            return None
        for suffix in ("_sum", "_count"):
            base = name.removesuffix(suffix)
            if base != name and self.kinds.get(base) in MEAN_TYPES:
                return base
        return None

    def tracked(self, name: str) -> bool:
        """Whether anything is derived from this key's increase."""
        return (
            self.rated(name)
            or name in self._denominators
            or any(matches(name) for _, matches in self.numerators)
            or self.histogram_of(name) is not None
        )


def derive(
    previous: Snapshot, current: Snapshot, profile: ScrapeProfile = GENERIC_PROFILE
) -> dict[str, float]:
    """Rates, the profile's ratios and histogram means over the interval between two snapshots.

    Only keys present in both snapshots count (a model that appears later starts next time).
    The profile's `summed_labels` are summed away first (Triton's failure `reason`).
    """
    interval = current.t - previous.t
    if interval <= 0:
        return {}
    rules = _Rules(profile, {**previous.kinds, **current.kinds})
    increases = _increases(previous, current, rules)
    return {
        **_rates(increases, interval, rules),
        **_ratios(increases, rules),
        **_histogram_means(increases, rules),
    }


def _increases(previous: Snapshot, current: Snapshot, rules: _Rules) -> dict[str, float]:
    summed_labels = rules.profile.summed_labels
    increases: dict[str, float] = {}
    for key, after in current.values.items():
        before = previous.values.get(key)
        if before is None:
            continue
        name, labels = split_key(key)
        if not rules.tracked(name):
            continue
        summed = metric_key(name, labels, summed_labels)
        increases[summed] = increases.get(summed, 0.0) + _increase(before, after)
    return increases


def _rates(increases: dict[str, float], interval: float, rules: _Rules) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, increase in increases.items():
        name, labels = split_key(key)
        if rules.rated(name):
            out[metric_key(f"{name}:per_s", labels)] = round(increase / interval, 3)
    return out


def _ratios(increases: dict[str, float], rules: _Rules) -> dict[str, float]:
    out: dict[str, float] = {}
    for ratio, matches in rules.numerators:
        for key, increase in increases.items():
            name, labels = split_key(key)
            if not matches(name):
                continue
            denominator = increases.get(metric_key(ratio.denominator, labels), 0.0)
            if denominator > 0:
                out[metric_key(ratio.result_name(name), labels)] = round(increase / denominator, ratio.digits)
    return out


def _histogram_means(increases: dict[str, float], rules: _Rules) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, increase in increases.items():
        name, labels = split_key(key)
        base = rules.histogram_of(name)
        if base is None or not name.endswith("_sum"):
            continue
        count = increases.get(metric_key(f"{base}_count", labels), 0.0)
        if count > 0:  # nothing observed in the interval: no mean, rather than a made-up 0
            out[metric_key(f"{base}:mean", labels)] = round(increase / count, rules.profile.mean_digits)
    return out


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

    `url` None means the stack's `endpoints.metrics`, `profile` None the stack's
    `scrape_profile()`, both read at start (the stack is built by then). `fetch(url, timeout)`
    is injectable for tests.
    """

    name = "prometheus"

    def __init__(
        self,
        url: str | None = None,
        interval_s: float = 0.25,
        profile: ScrapeProfile | None = None,
        timeout_s: float = 1.0,
        series: str = SERIES_NAME,
        fetch: Fetch = http_get_text,
    ):
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.url = url
        self.interval_s = interval_s
        self.profile = profile
        self.timeout_s = timeout_s
        self.series = series
        self.fetch = fetch
        self.ctx: ObserverContext | None = None
        self.greenlet: Greenlet | None = None
        self.previous: Snapshot | None = None
        self.last_seen: dict[str, float] = {}  # every key's latest value, vanished ones too
        self.increases: dict[str, float] = {}  # of each rated counter while watched
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
        if self.profile is None:
            self.profile = ctx.stack.scrape_profile()
        if self.url is None:
            self.url = ctx.stack.endpoints.metrics
        if self.url is None:
            self.skipped = "the stack has no metrics endpoint"
            return
        # The charts go into the journal so that `harness report` draws them from it alone.
        ctx.journal.event(PROFILE_EVENT, profile=self.profile.name, series=self.series,
                          charts=self.profile.chart_records())
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
        assert self.ctx is not None and self.url is not None and self.profile is not None, "start() first"
        journal = self.ctx.journal
        started = time.monotonic()
        try:
            parsed = parse_scrape(self.fetch(self.url, self.timeout_s), self.profile)
        except Exception as exc:  # noqa: BLE001 - refused, timed out, HTTP error, bad text
            self._failed(_describe(exc))
            return None
        elapsed_ms = (time.monotonic() - started) * 1000.0
        now = journal.now()
        current = Snapshot(now, parsed.values, parsed.kinds)
        sample = dict(current.values)
        if self.previous is not None:
            sample.update(derive(self.previous, current, self.profile))
            self.longest_gap_s = max(self.longest_gap_s, now - self.previous.t)
        sample["scrape_ms"] = round(elapsed_ms, 2)
        journal.series(self.series, sample, t=now)
        if self.failing:
            self.failing = False
            journal.event("metrics_scrape_recovered", url=self.url, failures=self.failures)
        self.scrapes += 1
        self.scrape_ms_max = max(self.scrape_ms_max, elapsed_ms)
        self.previous = current
        self._accumulate(current)
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
            "profile": self.profile.name if self.profile is not None else None,
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

    def _accumulate(self, current: Snapshot) -> None:
        """Keep each key's last value and each rated counter's increase since the first scrape.

        Compared with the last value seen, not the last scrape: a server may drop a series from
        /metrics (Triton drops a model's once the model unloads, seen during shutdown), and a
        counter that comes back after a restart counts again from zero.
        """
        assert self.profile is not None
        rules = _Rules(self.profile, current.kinds)
        for key, after in current.values.items():
            if not rules.rated(split_key(key)[0]):
                continue
            before = self.last_seen.get(key)
            self.increases[key] = self.increases.get(key, 0.0) + (
                0.0 if before is None else _increase(before, after)
            )
        self.last_seen.update(current.values)


def scrape(url: str, timeout: float = 1.0, profile: ScrapeProfile = GENERIC_PROFILE) -> dict[str, float]:
    """One synchronous scrape, for scripts and tests."""
    return parse_metrics(http_get_text(url, timeout), profile)
