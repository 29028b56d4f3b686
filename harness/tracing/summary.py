"""Where the time of a traced request went: per-model breakdown and per-trace timeline.

The breakdown has the shape of the report of Triton's trace summary tool (HTTP and gRPC
reported separately), computed here from the documented timestamps, and with percentiles as
well as averages. All durations are in microseconds.

For one trace (start -> end, both Triton timestamps):

- request (whole endpoint time): HTTP: HTTP_RECV_START -> HTTP_SEND_END;
  gRPC: GRPC_WAITREAD_END -> GRPC_SEND_END (gRPC gives no hook for the time spent reading the
  message, and GRPC_WAITREAD_START is when the server began *waiting*, idle time included);
- receive (HTTP only): HTTP_RECV_START -> HTTP_RECV_END;
- send: *_SEND_START -> *_SEND_END;
- handler: REQUEST_START -> REQUEST_END, the core's handling without the endpoint;
- overhead (endpoint): request - receive - send - handler;
- queue: QUEUE_START -> COMPUTE_START;
- compute: COMPUTE_START -> COMPUTE_END, split into
  input (COMPUTE_START -> COMPUTE_INPUT_END), infer (COMPUTE_INPUT_END -> COMPUTE_OUTPUT_START)
  and output (COMPUTE_OUTPUT_START -> COMPUTE_END);
- handler overhead: handler - queue - compute;
- response: REQUEST_START -> INFER_RESPONSE_COMPLETE (not in Triton's tool: when the response
  was ready, which is what the client waits for).

A component is left out for a trace that lacks one of its timestamps. Seen with the Python
backend (HTTP and gRPC): the response goes out before the backend's `execute` returns, so
COMPUTE_END and REQUEST_END can come after *_SEND_START or even *_SEND_END. Send and handler
then overlap and the endpoint overhead (request - receive - send - handler) comes out too small,
even negative; Triton's own tool has the same artefact (its documented gRPC example shows a
handler longer than the whole request). Such traces are counted as `sent_before_release`.
"""

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.tracing.trace_files import Trace

PERCENTILES = (50.0, 90.0, 99.0)


@dataclass(frozen=True)
class Component:
    key: str
    label: str
    depth: int  # indentation in the text report


COMPONENTS: tuple[Component, ...] = (
    Component("request", "infer request", 0),
    Component("receive", "Receive", 1),
    Component("send", "Send", 1),
    Component("overhead", "Overhead", 1),
    Component("handler", "Handler", 1),
    Component("handler_overhead", "Overhead", 2),
    Component("queue", "Queue", 2),
    Component("compute", "Compute", 2),
    Component("compute_input", "Input", 3),
    Component("compute_infer", "Infer", 3),
    Component("compute_output", "Output", 3),
    Component("response", "Response ready (REQUEST_START -> INFER_RESPONSE_COMPLETE)", 1),
)
COMPONENT_KEYS = tuple(c.key for c in COMPONENTS)


def _span(trace: Trace, start: str, end: str) -> float | None:
    """Microseconds from the first `start` to the last `end`, None when either is missing."""
    first = trace.first(start)
    last = trace.last(end)
    if first is None or last is None:
        return None
    return (last - first) / 1000.0


def components(trace: Trace) -> dict[str, float]:
    """The breakdown of one trace, microseconds per component key (missing parts left out)."""
    out: dict[str, float] = {}

    def put(key: str, value: float | None) -> None:
        if value is not None:
            out[key] = value

    protocol = trace.protocol
    if protocol == "http":
        put("request", _span(trace, "HTTP_RECV_START", "HTTP_SEND_END"))
        put("receive", _span(trace, "HTTP_RECV_START", "HTTP_RECV_END"))
        put("send", _span(trace, "HTTP_SEND_START", "HTTP_SEND_END"))
    elif protocol == "grpc":
        put("request", _span(trace, "GRPC_WAITREAD_END", "GRPC_SEND_END"))
        put("send", _span(trace, "GRPC_SEND_START", "GRPC_SEND_END"))
    put("handler", _span(trace, "REQUEST_START", "REQUEST_END"))
    put("queue", _span(trace, "QUEUE_START", "COMPUTE_START"))
    put("compute", _span(trace, "COMPUTE_START", "COMPUTE_END"))
    put("compute_input", _span(trace, "COMPUTE_START", "COMPUTE_INPUT_END"))
    put("compute_infer", _span(trace, "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START"))
    put("compute_output", _span(trace, "COMPUTE_OUTPUT_START", "COMPUTE_END"))
    put("response", _span(trace, "REQUEST_START", "INFER_RESPONSE_COMPLETE"))
    if "request" in out and "send" in out and "handler" in out:
        out["overhead"] = out["request"] - out.get("receive", 0.0) - out["send"] - out["handler"]
    if "handler" in out and "queue" in out and "compute" in out:
        out["handler_overhead"] = out["handler"] - out["queue"] - out["compute"]
    return out


def sent_before_release(trace: Trace) -> bool:
    """True when the response started going out before Triton released the request."""
    end = trace.last("REQUEST_END")
    sending = trace.first("HTTP_SEND_START") or trace.first("GRPC_SEND_START")
    return end is not None and sending is not None and end > sending


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); values sorted ascending."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    rank = (q / 100.0) * (len(sorted_values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    frac = rank - low
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * frac)


@dataclass(frozen=True)
class Stat:
    count: int
    avg: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> "Stat":
        ordered = sorted(values)
        if not ordered:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan)
        p50, p90, p99 = (percentile(ordered, q) for q in PERCENTILES)
        avg = math.fsum(ordered) / len(ordered)
        return cls(len(ordered), avg, p50, p90, p99, ordered[0], ordered[-1])


@dataclass
class ModelSummary:
    model: str
    version: int | None
    protocol: str  # http | grpc | internal
    trace_count: int
    stats: dict[str, Stat] = field(default_factory=dict)  # component key -> Stat
    sent_before_release: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the journal (NaN-free: empty stats are left out)."""
        return {
            "model": self.model,
            "version": self.version,
            "protocol": self.protocol,
            "trace_count": self.trace_count,
            "sent_before_release": self.sent_before_release,
            "us": {
                key: {name: round(value, 3) for name, value in asdict(stat).items()}
                for key, stat in self.stats.items()
                if stat.count
            },
        }


class SummaryBuilder:
    """Accumulates traces (e.g. from a tailer's polls) and summarises them on demand."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, int | None, str], dict[str, list[float]]] = {}
        self._counts: dict[tuple[str, int | None, str], int] = {}
        self._late: dict[tuple[str, int | None, str], int] = {}

    def add(self, trace: Trace) -> None:
        key = (trace.model_name or "?", trace.model_version, trace.protocol)
        bucket = self._values.setdefault(key, {})
        for name, value in components(trace).items():
            bucket.setdefault(name, []).append(value)
        self._counts[key] = self._counts.get(key, 0) + 1
        if sent_before_release(trace):
            self._late[key] = self._late.get(key, 0) + 1

    def add_all(self, traces: Iterable[Trace]) -> None:
        for trace in traces:
            self.add(trace)

    def result(self) -> list[ModelSummary]:
        out = []
        for key in sorted(self._values, key=lambda k: (k[0], k[1] or 0, k[2])):
            model, version, protocol = key
            values = self._values[key]
            stats = {name: Stat.of(values[name]) for name in COMPONENT_KEYS if name in values}
            out.append(
                ModelSummary(
                    model, version, protocol, self._counts[key], stats, self._late.get(key, 0)
                )
            )
        return out


def summarize(traces: Iterable[Trace]) -> list[ModelSummary]:
    builder = SummaryBuilder()
    builder.add_all(traces)
    return builder.result()


def _fmt(value: float) -> str:
    return f"{value:.1f}us"


def format_summary(summaries: Iterable[ModelSummary]) -> str:
    """A text report in the layout of Triton's summary tool, with p50/p90/p99 added."""
    lines: list[str] = []
    for summary in summaries:
        version = "?" if summary.version is None else str(summary.version)
        lines.append(
            f"Summary for {summary.model} ({version}): trace count = {summary.trace_count}"
        )
        for component in COMPONENTS:
            stat = summary.stats.get(component.key)
            if stat is None or not stat.count:
                continue
            label = component.label
            if component.key == "request":
                label = f"{summary.protocol.upper()} {label}"
            lines.append(
                "\t" * component.depth
                + f"{label}: avg {_fmt(stat.avg)}  p50 {_fmt(stat.p50)}  p90 {_fmt(stat.p90)}"
                f"  p99 {_fmt(stat.p99)}  (n={stat.count})"
            )
        if summary.sent_before_release:
            lines.append(
                f"\t({summary.sent_before_release} of {summary.trace_count} trace(s) began "
                "sending the response before the request was released: send and handler "
                "overlap, so the endpoint overhead is understated, even negative)"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class TimelineStep:
    name: str  # Triton's timestamp name, e.g. QUEUE_START
    ns: int
    since_prev_us: float
    since_start_us: float

    @property
    def label(self) -> str:
        """`queue start`, as the summary tool's -t view writes it."""
        return self.name.lower().replace("_", " ")


def timeline(trace: Trace) -> list[TimelineStep]:
    """Every timestamp of one trace in time order, with the gaps between them."""
    steps: list[TimelineStep] = []
    events = trace.events()
    if not events:
        return steps
    start = events[0][1]
    previous = start
    for name, ns in events:
        steps.append(TimelineStep(name, ns, (ns - previous) / 1000.0, (ns - start) / 1000.0))
        previous = ns
    return steps


def format_timeline(trace: Trace, skip: Callable[[str], bool] | None = None) -> str:
    """The per-trace view: each point, then the microseconds until the next one."""
    version = "?" if trace.model_version is None else str(trace.model_version)
    lines = [f"{trace.model_name or '?'} ({version}) id={trace.id} [{trace.protocol}]:"]
    steps = [s for s in timeline(trace) if skip is None or not skip(s.name)]
    for index, step in enumerate(steps):
        if index:
            gap = (step.ns - steps[index - 1].ns) / 1000.0
            lines.append(f"\t\t{gap:.0f}us")
        lines.append(f"\t{step.label}")
    return "\n".join(lines)
