"""Features: everything one kind of thing adds to the core, found through one entry-point group.

A feature (containers, memory, TorchServe, LLM load, tracing, or a user's package) is one
`Feature` object: the metrics it measures from the journal, its report sections (a part of
`summary.json`, an HTML section, findings, story lines), the observers it adds to a run, and
hooks at the run's turning points. The core asks this module, never a feature by name.

Features come from the `harness.features` entry-point group; each entry point names a `Feature`
or a zero-argument callable returning one. The built-in ones are registered in pyproject.toml
the same way a user's package adds its own; the fallback map below only serves a checkout that
was never installed. The core's own metrics are declared the same way (`harness.metrics`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from harness.errors import UsageError
from harness.plugins import load, registered

if TYPE_CHECKING:
    from harness.analysis import Measured, RunData
    from harness.journal import Journal
    from harness.observers.base import Observer
    from harness.scenario import Scenario, Window
    from harness.sloci import Interval
    from harness.stacks.base import Stack

GROUP = "harness.features"
_BUILTIN = {  # also the order of their report sections in report.html
    "memory": "harness.memory.feature:FEATURE",
    "containers": "harness.containers.feature:FEATURE",
    "llm": "harness.llm.feature:FEATURE",
    "tracing": "harness.tracing.feature:FEATURE",
    "torchserve": "harness.torchserve.feature:FEATURE",
    "vllm": "harness.vllm.feature:FEATURE",
    "gpu": "harness.gpu.feature:FEATURE",
    "store": "harness.store.feature:FEATURE",
    "exporter": "harness.exporter.feature:FEATURE",
}
# Loaded by name, like a feature: its declarations use harness.analysis, which looks metrics up here.
_CORE_METRICS = "harness.metrics:CORE_METRICS"

MeasureFn = Callable[["RunData", str, "Window | str"], "Measured"]
IntervalFn = Callable[["RunData", str, "Window | str", float], "Interval | None"]
Phrase = Callable[[dict[str, Any]], "str | None"]


@dataclass(frozen=True)
class MetricDef:
    """One metric an SLO can assert on: an exact `name`, or a `pattern` for a family of names."""

    meaning: str  # one line, for `harness list` and validation messages
    measure: MeasureFn  # (run, metric name, window) -> value and what it rests on
    name: str | None = None
    pattern: re.Pattern[str] | None = None
    display: str | None = None  # how a family is written in lists: `ttft_pNN_ms`
    interval: IntervalFn | None = None  # its confidence interval, where it has one

    def __post_init__(self) -> None:
        if (self.name is None) == (self.pattern is None):
            raise ValueError("a MetricDef has exactly one of `name` or `pattern`")

    def matches(self, metric: str) -> bool:
        if self.name is not None:
            return metric == self.name
        assert self.pattern is not None
        return self.pattern.fullmatch(metric) is not None

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        assert self.pattern is not None
        return self.display or self.pattern.pattern


@dataclass(frozen=True)
class SectionContext:
    """What a report section's summary is made from."""

    run_dir: Path
    scenario: Scenario
    data: RunData
    totals: dict[str, Any]  # harness.analysis.totals of the run


@dataclass(frozen=True)
class ReportSection:
    """A feature's part of summary.json (under `key`), its HTML section, findings and story lines."""

    key: str
    summary: Callable[[SectionContext], Any]  # None (JSON null) where the run has nothing of it
    html: Callable[[Any, RunData], str] | None = None  # (its summary part, the run) -> HTML
    findings: Callable[[RunData], list[str]] | None = None
    story_phrases: Mapping[str, Phrase] = field(default_factory=dict)  # event name -> story line
    # The summary.json key this one follows (older summaries' order); None or absent: at the end.
    after: str | None = None


@dataclass(frozen=True)
class ObserverSetup:
    """What a feature's observer factory sees: the run's scenario and its built stack."""

    scenario: Scenario
    stack: Stack
    journal: Journal
    run_dir: Path
    services: dict[str, Any]  # what hooks started (RunHooksContext.services), to watch or keep


@dataclass
class RunHooksContext:
    """Shared by every hook of one run. Hooks may leave things for later hooks and observers in
    `services`, and keyword arguments for the stack's `build` in `stack_args` (before_start)."""

    scenario: Scenario
    run_dir: Path
    journal: Journal
    services: dict[str, Any] = field(default_factory=dict)
    stack_args: dict[str, Any] = field(default_factory=dict)
    stack: Stack | None = None  # from after_ready on


Hook = Callable[[RunHooksContext], None]


@dataclass(frozen=True)
class Feature:
    name: str
    metrics: Sequence[MetricDef] = ()
    sections: Sequence[ReportSection] = ()
    observers: Callable[[ObserverSetup], list[Observer]] | None = None
    before_start: Hook | None = None  # before the stack is built: start what it will talk to
    after_ready: Hook | None = None  # the stack answered ready for the first time
    after_stop: Hook | None = None  # the stack stopped and every observer read its last
    per_soak_cycle: Hook | None = None  # a soak began a new cycle: reset per-cycle state
    # Checks the validated scenario for what only the feature knows (its SLOs need its settings):
    # one line per problem, `at field.path: message` to name the field; [] when it is fine.
    check_scenario: Callable[[Scenario], list[str]] | None = None
    # The run's reports are written (summary.json; a soak's soak.json and each cycle's summary):
    # hand the finished run on (the results store records it). The journal is closed by then.
    after_report: Hook | None = None
    # After every after_report hook: a judgement of the finished run from outside it (the store's
    # `--regress`: has the scenario's history moved?). It may only fail a run that passed: it
    # returns why, in one line, or None. A judge that raises is logged and judges nothing.
    judge_after_report: Callable[[RunHooksContext], str | None] | None = None


@runtime_checkable
class BringsObservers(Protocol):
    """A stack that watches something of its own (TorchServe's workers, Docker's events)."""

    def extra_observers(self) -> list[Observer]: ...


class FeatureError(UsageError):
    """An entry point of `harness.features` that does not load or is not a Feature."""


@dataclass(frozen=True)
class _Registry:
    features: tuple[Feature, ...]
    metrics: tuple[MetricDef, ...]  # the core's, then each feature's, as declared
    by_name: dict[str, MetricDef]
    families: tuple[MetricDef, ...]  # pattern metrics, in the same order


def discover() -> list[Feature]:
    """Every registered feature, built-in ones first (cached: see reset_cache)."""
    return list(_registry().features)


def reset_cache() -> None:
    """Forget what was discovered (tests that register features, a changed environment)."""
    _registry.cache_clear()


def metric_def(metric: str) -> MetricDef | None:
    """The declaration an SLO's metric name refers to: an exact name first, then a family."""
    registry = _registry()
    found = registry.by_name.get(metric)
    if found is not None:
        return found
    return next((d for d in registry.families if d.matches(metric)), None)


def all_metrics() -> list[MetricDef]:
    """The core's metrics, then each feature's, in declaration order."""
    return list(_registry().metrics)


def describe_metrics() -> str:
    """Every metric name and family, for an `unknown metric` message."""
    return ", ".join(sorted(d.label for d in all_metrics()))


def report_sections() -> list[ReportSection]:
    """Every feature's report sections, in feature order."""
    return [section for feature in discover() for section in feature.sections]


def scenario_problems(scenario: Scenario) -> list[str]:
    """Every feature's objections to a scenario (Feature.check_scenario), in feature order."""
    return [problem for feature in discover() if feature.check_scenario is not None
            for problem in feature.check_scenario(scenario)]


def call_hooks(features: Iterable[Feature], pick: Callable[[Feature], Hook | None],
               ctx: RunHooksContext) -> None:
    """Call one hook (chosen by `pick`) of each feature that has it, in feature order."""
    for feature in features:
        hook = pick(feature)
        if hook is not None:
            hook(ctx)


@cache
def _registry() -> _Registry:
    features = tuple(_load_feature(name, target) for name, target in registered(GROUP, _BUILTIN).items())
    core: Sequence[MetricDef] = load(_CORE_METRICS)
    declared = [("the core", d) for d in core]
    declared += [(f"feature {f.name!r}", d) for f in features for d in f.metrics]
    metrics = tuple(d for _, d in declared)
    families = tuple(d for d in metrics if d.pattern is not None)
    return _Registry(features, metrics, _by_name(declared), families)


def _by_name(declared: list[tuple[str, MetricDef]]) -> dict[str, MetricDef]:
    """Exact names -> declarations; one declaration per name, or SLOs on it would be ambiguous."""
    found: dict[str, MetricDef] = {}
    owner: dict[str, str] = {}
    for source, definition in declared:
        if definition.name is None:
            continue
        if definition.name in found:
            raise FeatureError(f"metric {definition.name!r} is declared by both {owner[definition.name]} "
                               f"and {source}")
        found[definition.name] = definition
        owner[definition.name] = source
    return found


def _load_feature(name: str, target: str) -> Feature:
    try:
        obj = load(target)
        feature = obj if isinstance(obj, Feature) else obj() if callable(obj) else obj
    except Exception as exc:  # noqa: BLE001 - a broken plugin is named, not a traceback
        raise FeatureError(f"{GROUP} entry point {name!r} ({target}) failed to load: "
                           f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(feature, Feature):
        raise FeatureError(f"{GROUP} entry point {name!r} ({target}) is not a Feature "
                           f"(got {type(feature).__name__})")
    return feature
