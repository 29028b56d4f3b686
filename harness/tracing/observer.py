"""Watching Triton's traces while the run goes: trace files (triton mode) or spans (OTLP).

Triton mode: the trace files are parsed as they are written and summarised per model and
protocol. OpenTelemetry mode with the harness's collector: span counts by kind, once a second.
"""

from typing import Any

import gevent

from harness.observers.base import Observer, ObserverContext
from harness.tracing.otlp_receiver import OtlpReceiver, spans_to_traces
from harness.tracing.receiver_process import ReceiverError, ReceiverProcess
from harness.tracing.summary import SummaryBuilder, format_timeline
from harness.tracing.trace_files import Trace, TraceFileTailer

POLL_S = 1.0


class TraceObserver(Observer):
    name = "traces"

    def __init__(self, trace_file: Any = None, receiver: OtlpReceiver | ReceiverProcess | None = None):
        self.tailer = TraceFileTailer(trace_file) if trace_file is not None else None
        self.receiver = receiver
        self.receiver_error = ""
        self.builder = SummaryBuilder()
        self.traces = 0
        self.slowest: Trace | None = None
        self._slowest_ns = -1
        self.ctx: ObserverContext | None = None
        self.greenlet: gevent.Greenlet | None = None

    def start(self, ctx: ObserverContext) -> None:
        self.ctx = ctx
        self.greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(POLL_S)
            self._poll()

    def _poll(self, final: bool = False) -> None:
        assert self.ctx is not None
        if self.tailer is not None:
            traces = self.tailer.drain() if final else self.tailer.poll()
            self._add(traces)
            self.ctx.journal.series("traces", {"traces": self.traces})
        if self.receiver is not None:
            try:
                snap = self.receiver.snapshot()
            except ReceiverError as exc:  # its process died: the run goes on, the report says so
                self.receiver_error = str(exc)
                return
            values = {f"spans_{kind}": count for kind, count in snap["spans_by_kind"].items()}
            values.update(exports=snap["exports"], exports_rejected=snap["exports_rejected"])
            self.ctx.journal.series("spans", values)

    def _add(self, traces: list[Trace]) -> None:
        self.builder.add_all(traces)
        self.traces += len(traces)
        for trace in traces:
            times = [ns for _, ns in trace.events()]
            if times and max(times) - min(times) > self._slowest_ns:
                self._slowest_ns = max(times) - min(times)
                self.slowest = trace

    def stop(self) -> dict[str, Any]:
        if self.greenlet is not None:
            self.greenlet.kill()
        if self.ctx is not None:
            self._poll(final=True)
        summary: dict[str, Any] = {}
        if self.receiver is not None:
            try:
                summary["collector"] = self.receiver.snapshot()
                self._add(spans_to_traces(self.receiver.spans()))
            except ReceiverError as exc:
                self.receiver_error = str(exc)
                summary.pop("collector", None)  # no counts: the accounting is left out, not wrong
        if self.receiver_error:
            summary["collector_error"] = self.receiver_error
        summary["traces"] = self.traces
        summary["models"] = [model.as_dict() for model in self.builder.result()]
        if self.slowest is not None:
            summary["slowest_timeline"] = format_timeline(self.slowest)
        return summary
