"""Per container fault: what the Docker engine did, and how long the server was away.

Read from the journal: the fault's injection, the engine's events for its containers
(`docker_event`, timed by the engine), and the supervisor's `recovered` (the harness's own
health probe answering again). For each fault:

- `shutdown_s`: from the engine signalling the container (`kill`) to its process exiting
  (`die`): how long a graceful stop took, or Docker's stop timeout when it had to SIGKILL;
- `downtime_s`: from the server going away (its container's process exited, or the container
  was frozen) to serving again;
- `startup_s`: from the container running again (`start`, `unpause`) to serving;
- `recovery_s`: from the injection to serving again; failed requests and error kinds come from
  the fault's impact window (`harness.faultimpact`).
"""

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.analysis import RunData
from harness.faultimpact import fault_impacts

PREFIX = "container_"
GONE = ("die", "pause")  # the server stopped serving: its process exited, or it was frozen
BACK = ("start", "unpause")
SIGKILL_EXIT = 137
EARLY_S = 0.05  # engine and journal clocks are read a moment apart


@dataclass
class ContainerOutage:
    fault_id: str
    kind: str
    name: str
    injected_t: float
    containers: list[str]
    actions: list[str] = field(default_factory=list)  # "kill SIGTERM +0.02s", "die 137 +10.10s"
    signalled_t: float | None = None
    gone_t: float | None = None
    started_t: float | None = None
    ready_t: float | None = None
    sigkilled_after_stop: bool = False  # SIGTERM was not enough: Docker's stop timeout ran out
    served_while_stopping: int | None = None  # ok requests in whole seconds between signal and exit
    failed_requests: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    recovery_s: float | None = None

    @property
    def downtime_s(self) -> float | None:
        return _span(self.gone_t, self.ready_t)

    @property
    def shutdown_s(self) -> float | None:
        return _span(self.signalled_t, self.gone_t)

    @property
    def startup_s(self) -> float | None:
        return _span(self.started_t, self.ready_t)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(downtime_s=self.downtime_s, shutdown_s=self.shutdown_s, startup_s=self.startup_s)
        return out


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


def container_outages(data: RunData) -> list[ContainerOutage]:
    impacts = [i for i in fault_impacts(data) if i.kind.startswith(PREFIX)]
    injected = {e["id"]: e for e in data.events if e["event"] == "fault_injected"}
    began = injection_starts(data)
    starts = sorted(began.values())
    # The teardown's own stop (after the supervisor stopped) is not part of any fault.
    teardown = next((e["t"] for e in data.events if e["event"] == "supervisor_stopped"), math.inf)
    docker = [e for e in data.events if e["event"] == "docker_event"]
    outages = []
    for impact in impacts:
        names = [c["name"] for c in injected[impact.id].get("plan", {}).get("containers", [])]
        start = began.get(impact.id, impact.injected_t)
        later = [t for t in starts if t > start]
        until = min(later[0] if later else math.inf, teardown)
        outage = ContainerOutage(impact.id, impact.kind, impact.name, start, names,
                                 failed_requests=impact.failed_requests, errors_by_kind=impact.errors_by_kind)
        events = [e for e in docker if e.get("container") in names and start - EARLY_S <= _at(e) < until]
        _read_engine(outage, sorted(events, key=_at))
        _read_ready(outage, data)
        outage.served_while_stopping = _served_between(data, outage.signalled_t, outage.gone_t)
        if outage.ready_t is not None:
            outage.recovery_s = round(outage.ready_t - start, 3)
        outages.append(outage)
    return outages


def injection_starts(data: RunData) -> dict[str, float]:
    """When the harness began each injection: the fault's window start, written at restore
    (`fault_injected` is written once the engine call returned, a little later)."""
    starts = {e["id"]: e["t"] for e in data.events if e["event"] == "fault_injected"}
    for event in data.events:
        if event["event"] == "window" and event.get("kind") == "fault" and event.get("fault_id") in starts:
            starts[event["fault_id"]] = float(event["start"])
    return starts


def _at(event: dict[str, Any]) -> float:
    return float(event.get("engine_t", event["t"]))


def _read_engine(outage: ContainerOutage, events: list[dict[str, Any]]) -> None:
    sent_sigterm = False
    for event in events:
        action, t = event["action"], _at(event)
        detail = event.get("signal") or event.get("exit_code")
        said = action if detail is None else f"{action} {detail}"
        outage.actions.append(f"{said} {t - outage.injected_t:+.2f}s")
        if action in ("kill", "pause") and outage.signalled_t is None:
            outage.signalled_t = t
            sent_sigterm = str(event.get("signal")) in ("15", "SIGTERM")
        if action in GONE and outage.gone_t is None:
            outage.gone_t = t
            outage.sigkilled_after_stop = sent_sigterm and event.get("exit_code") == SIGKILL_EXIT
        elif action in BACK and outage.gone_t is not None and outage.started_t is None:
            outage.started_t = t


def _served_between(data: RunData, start: float | None, end: float | None) -> int | None:
    """Successful requests in the whole seconds between a stop signal and the exit: a server
    that keeps answering after SIGTERM shows here (per-second records: whole seconds only)."""
    if start is None or end is None or end - start < 1:
        return None
    return sum(r["ok"] for r in data.seconds if r["t"] >= start and r["t"] + 1 <= end)


def _read_ready(outage: ContainerOutage, data: RunData) -> None:
    if outage.gone_t is None:
        return
    after = outage.started_t if outage.started_t is not None else outage.gone_t
    ready = next((e for e in data.events if e["event"] == "recovered" and e["t"] >= after - EARLY_S), None)
    outage.ready_t = ready["t"] if ready is not None else None


def container_metric(data: RunData, metric: str) -> tuple[float | None, int]:
    """`container_downtime_s`: the longest outage; None when one never ended within the run."""
    if metric != "container_downtime_s":
        raise KeyError(metric)
    outages = [o for o in container_outages(data) if o.gone_t is not None]
    if any(o.ready_t is None for o in outages):
        return None, len(outages)
    return max((o.downtime_s or 0.0 for o in outages), default=0.0), len(outages)


def container_summary(data: RunData) -> dict[str, Any] | None:
    """The summary's `containers` section: outages per fault and the engine's event counts."""
    docker = [e for e in data.events if e["event"] == "docker_event"]
    outages = container_outages(data)
    if not docker and not outages:
        return None
    actions: dict[str, int] = {}
    for event in docker:
        actions[event["action"]] = actions.get(event["action"], 0) + 1
    ooms = [{"t": _at(e), "container": e.get("container")} for e in docker if e["action"] == "oom"]
    return {"outages": [o.to_dict() for o in outages], "engine_actions": actions, "oom_events": ooms}
