"""The containers feature: what the Docker engine did to a container stack during its faults.

Its metric and the report's `containers` section come from the engine's events in the journal
(harness.containers.impact); its observer watches those events while a container stack runs.
"""

from typing import Any

from harness.analysis import RunData, whole_run
from harness.containers.html import containers_section
from harness.containers.impact import container_metric, container_summary
from harness.features import BringsObservers, Feature, MetricDef, ObserverSetup, ReportSection, SectionContext
from harness.observers.base import Observer

KINDS = ("container", "container_external")


def _summary(ctx: SectionContext) -> Any:
    return container_summary(ctx.data)


def _html(containers: Any, data: RunData) -> str:
    return containers_section(containers)


def _observers(setup: ObserverSetup) -> list[Observer]:
    """The engine's events, and what the stack inside the containers watches (the stack composes both)."""
    if setup.scenario.stack.kind not in KINDS or not isinstance(setup.stack, BringsObservers):
        return []
    return setup.stack.extra_observers()


FEATURE = Feature(
    name="containers",
    metrics=[MetricDef("longest time from a container's server going away (exit, freeze) to serving",
                       whole_run(container_metric), name="container_downtime_s")],
    sections=[ReportSection("containers", _summary, html=_html, after="faults")],
    observers=_observers,
)
