"""The tracing feature: Triton's request tracing, watched while the run goes and reported after.

Before the stack starts it starts the harness's own OTLP collector (OpenTelemetry mode with
`collector: harness`) or picks a port nobody serves (`collector: absent`), and hands the stack
the URL through `build(collector_url=...)`. Its observer follows the trace files (triton mode)
or the collector's spans; the report's `tracing` section accounts for the spans and breaks the
time per model and protocol down.

Observer and collector run under gevent: they are imported when a run needs them, so that
validating a scenario (which discovers every feature) loads no gevent.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from harness.analysis import RunData
from harness.features import Feature, ObserverSetup, ReportSection, RunHooksContext, SectionContext
from harness.observers.base import Observer
from harness.scenario import Scenario
from harness.stacks.ports import free_ports
from harness.tracing import COLLECTOR
from harness.tracing.accounting import span_accounting, trace_breakdown
from harness.tracing.html import tracing_section
from harness.tracing.summary import SummaryBuilder

if TYPE_CHECKING:
    from harness.triton.spec import TraceSpec

# Where this feature leaves what it started, in the run's services (COLLECTOR: the receiver,
# which the `collector` faults of harness/tracing/faults.py find in FaultContext.services).
OBSERVER = "tracing.observer"
KEEP_SPANS = 20_000


@runtime_checkable
class TracedSpec(Protocol):
    """Stack settings with Triton's tracing (`triton`, and a `container` running one)."""

    @property
    def trace(self) -> "TraceSpec | None": ...


@runtime_checkable
class TraceFiles(Protocol):
    """A stack that writes triton-mode trace files where the harness can read them."""

    @property
    def trace_file(self) -> Path: ...


def trace_of(scenario: Scenario) -> "TraceSpec | None":
    spec = scenario.stack
    return spec.trace if isinstance(spec, TracedSpec) else None


def _before_start(ctx: RunHooksContext) -> None:
    """OpenTelemetry mode: a collector for the spans, or a URL nobody answers."""
    trace = trace_of(ctx.scenario)
    if trace is None or trace.mode != "opentelemetry":
        return
    if trace.collector == "absent":
        ctx.stack_args["collector_url"] = f"127.0.0.1:{free_ports(1)[0]}/v1/traces"
    elif trace.collector == "harness":
        # In a process of its own: decoding Triton's spans must not take CPU from the load.
        from harness.tracing.receiver_process import ReceiverProcess

        receiver = ReceiverProcess(keep_spans=KEEP_SPANS)
        receiver.start()
        ctx.services[COLLECTOR] = receiver
        ctx.journal.event("collector_started", url=receiver.url)
        ctx.stack_args["collector_url"] = str(receiver.url)


def _after_stop(ctx: RunHooksContext) -> None:
    receiver = ctx.services.pop(COLLECTOR, None)
    if receiver is not None:
        receiver.close()  # the observer has read its counts by now; this ends its process


def _observers(setup: ObserverSetup) -> list[Observer]:
    trace = trace_of(setup.scenario)
    if trace is None:
        return []
    from harness.tracing.observer import TraceObserver

    stack = setup.stack
    trace_file = stack.trace_file if trace.mode == "triton" and isinstance(stack, TraceFiles) else None
    observer = TraceObserver(trace_file, setup.services.get(COLLECTOR))
    setup.services[OBSERVER] = observer
    return [observer]


def _per_soak_cycle(ctx: RunHooksContext) -> None:
    """Per-trace values would grow for the whole soak: each cycle's breakdown is its own."""
    observer = ctx.services.get(OBSERVER)
    if observer is not None:
        observer.builder = SummaryBuilder()


def _summary(ctx: SectionContext) -> Any:
    trace = trace_of(ctx.scenario)
    if trace is None:
        return None
    settings = trace.model_dump(exclude_none=True)
    return {
        "settings": settings,
        "spans": span_accounting(ctx.data, settings),
        "breakdown": trace_breakdown(ctx.data),
    }


def _html(tracing: Any, data: RunData) -> str:
    return tracing_section(tracing)


FEATURE = Feature(
    name="tracing",
    sections=[ReportSection("tracing", _summary, html=_html, after="story")],
    observers=_observers,
    before_start=_before_start,
    after_stop=_after_stop,
    per_soak_cycle=_per_soak_cycle,
)
