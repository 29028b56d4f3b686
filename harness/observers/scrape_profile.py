"""What the Prometheus scraper keeps and derives from a stack's /metrics, declared by the stack.

The core's scraper knows Prometheus, not any server: each stack kind says, in a `ScrapeProfile`
(`Stack.scrape_profile()`), which families matter, which counters become per-second rates,
which ratios of counters are worth a mean per interval, and which charts the report draws from
the result. A stack that declares nothing gets `ScrapeProfile()`: every family, every counter as
a rate, every histogram as a mean, one chart of the rates.

This module is plain data and stdlib only: `harness.stacks.base` imports it, and the scenario
model imports the stacks' settings without gevent or prometheus_client.
"""

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

# The journal event in which the scraper records the profile it scrapes with and its charts.
PROFILE_EVENT = "metrics_profile"
# The journal series the scraper writes its samples to (here, not in the scraper's module, so
# metrics read from the journal need no gevent).
SERIES_NAME = "metrics"


def family_of(key: str) -> str:
    """`name{label=value,...}` -> `name`: the family of a journaled key."""
    return key.partition("{")[0]

# A family selection: a set of family names, one name, a predicate on the name, or None (all).
Selector = Callable[[str], bool] | Collection[str] | None


def selected(select: Selector) -> Callable[[str], bool]:
    """The selection as a predicate on a family name."""
    if select is None:
        return lambda _name: True
    if callable(select):
        return select
    names = frozenset([select] if isinstance(select, str) else select)
    return names.__contains__


@dataclass(frozen=True)
class Ratio:
    """Over each scrape interval: the increase of a `numerator` counter divided by the increase of
    the `denominator` counter with the same labels (after `summed_labels` are summed away).

    `output` names the result; `{numerator}` in it is replaced by the numerator's family name, so
    one Ratio can serve a family of numerators (every `..._duration_us` per successful request).
    Nothing is written for an interval in which the denominator did not grow.
    """

    output: str
    numerator: Selector
    denominator: str
    digits: int = 3

    def result_name(self, numerator: str) -> str:
        return self.output.replace("{numerator}", numerator)


@dataclass(frozen=True)
class MetricChart:
    """One chart of the report drawn from the `metrics` series.

    The lines are the keys whose name (labels aside) is one of `names`, or, with no `names`,
    starts with `prefix` and ends with `suffix`. A line's legend is its name without `strip` in
    front and `suffix` behind (plus its labels where one name has several label sets). Values
    are multiplied by `scale` (seconds drawn as ms: 1000). The scraper writes its profile's
    charts into the journal, so `harness report` draws them from the journal alone.
    """

    title: str
    unit: str
    names: tuple[str, ...] = ()
    prefix: str = ""
    suffix: str = ""
    strip: str = ""
    scale: float = 1.0

    def draws(self, name: str) -> bool:
        if self.names:
            return name in self.names
        return name.startswith(self.prefix) and name.endswith(self.suffix)

    def legend(self, name: str) -> str:
        return name.removeprefix(self.strip).removesuffix(self.suffix) or name

    def to_record(self) -> dict[str, Any]:
        return {"title": self.title, "unit": self.unit, "names": list(self.names), "prefix": self.prefix,
                "suffix": self.suffix, "strip": self.strip, "scale": self.scale}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "MetricChart":
        """Read back from the journal; tolerant of missing fields (a hand-edited or older record)."""
        return cls(
            title=str(record.get("title", "Server metrics")),
            unit=str(record.get("unit", "")),
            names=tuple(str(n) for n in record.get("names") or ()),
            prefix=str(record.get("prefix", "")),
            suffix=str(record.get("suffix", "")),
            strip=str(record.get("strip", "")),
            scale=float(record.get("scale", 1.0)),
        )


# What a report draws for a stack that declares no charts, and for a journal written before the
# scraper wrote its profile's charts: every rate, and every per-request mean, by its full name.
GENERIC_CHARTS: tuple[MetricChart, ...] = (
    MetricChart("Server: counters per second (Prometheus)", "1/s", suffix=":per_s"),
    MetricChart("Server: mean per request (Prometheus)", "per request", suffix=":per_request"),
)


@dataclass(frozen=True)
class ScrapeProfile:
    """Which families the scraper keeps and what it derives from two scrapes.

    - `select`: the families kept (histograms by their family name, without `_bucket`/`_sum`/
      `_count`; counters by the name without `_total`); None keeps every family.
    - `rates`: the counters written as `<name>:per_s`; None rates every family of type counter.
      A family named here is rated whatever its declared type (the profile knows its server).
    - `summed_labels`: labels summed away before deriving (`reason` of Triton's failures), so a
      rate counts every reason; the cumulative values keep them.
    - `dropped_labels`: labels left out of every key, samples that then collide summed (Triton's
      model `version`).
    - `ratios`: means of one counter per another over each interval (`Ratio`).
    - `histogram_means`: `<histogram>:mean` per interval, from the increase of `_sum` over the
      increase of `_count` (summaries too). Buckets never go to the journal: dozens of keys per
      histogram, four samples a second; `_sum` and `_count` do.
    - `charts`: what the report draws (`MetricChart`).
    """

    name: str = "generic"
    select: Selector = None
    rates: Selector = None
    summed_labels: frozenset[str] = frozenset()
    dropped_labels: frozenset[str] = frozenset()
    ratios: tuple[Ratio, ...] = ()
    histogram_means: bool = True
    mean_digits: int = 6
    charts: tuple[MetricChart, ...] = GENERIC_CHARTS

    def chart_records(self) -> list[dict[str, Any]]:
        return [chart.to_record() for chart in self.charts]


# The profile of a stack that declares none: keep everything, rate every counter.
GENERIC_PROFILE = ScrapeProfile()
