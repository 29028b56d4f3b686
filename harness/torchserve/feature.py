"""The TorchServe feature: worker states and retries as metrics (`ts.*`), the report's
`torchserve` section, and the worker observer of a TorchServe stack."""

from typing import Any

from harness.analysis import whole_run
from harness.features import BringsObservers, Feature, MetricDef, ObserverSetup, ReportSection, SectionContext
from harness.observers.base import Observer
from harness.torchserve.html import torchserve_section
from harness.torchserve.measures import measure_torchserve
from harness.torchserve.report_data import torchserve_summary

KIND = "torchserve"
METRICS = {
    "ts.workers_ready_s": "longest time from a fault's injection until every worker is READY again (API)",
    "ts.no_worker_ready_s": "longest span with no worker READY (API): the model served nothing",
    "ts.worker_retries": "worker restarts TorchServe announced (`Retry worker: ID in N seconds`)",
    "ts.retry_storms": "retry storms: the same error ended several worker starts in a row (not recoverable)",
    "ts.workers_given_up": "workers TorchServe stopped retrying (maxRetryTimeoutInSec spent)",
}


def _summary(ctx: SectionContext) -> Any:
    return torchserve_summary(ctx.run_dir, ctx.scenario.stack, ctx.data)


def _observers(setup: ObserverSetup) -> list[Observer]:
    """Worker states from the management API and retries from the log (the stack builds them)."""
    if setup.scenario.stack.kind != KIND or not isinstance(setup.stack, BringsObservers):
        return []
    return setup.stack.extra_observers()


FEATURE = Feature(
    name="torchserve",
    metrics=[MetricDef(meaning, whole_run(measure_torchserve), name=name)
             for name, meaning in METRICS.items()],
    sections=[ReportSection("torchserve", _summary, html=torchserve_section, after="story")],
    observers=_observers,
)
