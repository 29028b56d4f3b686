"""What each fault did: when it was noticed, when the stack recovered, what requests failed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # analysis imports this module: the type only, to keep the import one way
    from harness.analysis import RunData

# Journal events that mean "the stack is failing" (written by the supervisor).
FAILURE_EVENTS = ("process_exited", "hang_detected", "not_serving", "degraded")
# Failures of the stack as a whole: it is recovered when the supervisor says so. The loss of a
# replica or a dependency is partial: recovered when the load's errors stop.
ENTRY_LOSS = "entry"


def is_failure(event: dict[str, Any]) -> bool:
    """An unplanned failure the supervisor saw (a replica that died with the entry is not one)."""
    return event["event"] in FAILURE_EVENTS and not event.get("planned") and not event.get("consequence")


def is_stack_level(event: dict[str, Any]) -> bool:
    return event["event"] != "process_exited" or event.get("loss") == ENTRY_LOSS


@dataclass
class FaultImpact:
    id: str
    kind: str
    name: str
    injected_t: float
    restored_t: float | None
    detected_t: float | None = None
    detected_by: str | None = None
    recovered_t: float | None = None
    failed_requests: int = 0
    first_error_t: float | None = None
    last_error_t: float | None = None
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    error_messages: dict[str, str] = field(default_factory=dict)

    @property
    def detect_s(self) -> float | None:
        return None if self.detected_t is None else round(self.detected_t - self.injected_t, 3)

    @property
    def recover_s(self) -> float | None:
        return None if self.recovered_t is None else round(self.recovered_t - self.injected_t, 3)

    @property
    def impact_end(self) -> float:
        candidates = [t for t in (self.recovered_t, self.restored_t) if t is not None]
        return max(candidates) if candidates else self.injected_t

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(detect_s=self.detect_s, recover_s=self.recover_s)
        return out


def fault_impacts(data: RunData) -> list[FaultImpact]:
    injected = [e for e in data.events if e["event"] == "fault_injected"]
    restored = {e["id"]: e["t"] for e in data.events if e["event"] == "fault_restored"}
    impacts = []
    for i, event in enumerate(injected):
        next_t = injected[i + 1]["t"] if i + 1 < len(injected) else math.inf
        impact = FaultImpact(event["id"], event["kind"], event.get("name", event["kind"]), event["t"],
                             restored.get(event["id"]))
        _detect_and_recover(data, impact, next_t)
        _count_errors(data, impact)
        impacts.append(impact)
    return impacts


def _detect_and_recover(data: RunData, impact: FaultImpact, next_t: float) -> None:
    failure = next(
        (e for e in data.events if is_failure(e) and impact.injected_t <= e["t"] < next_t), None
    )
    if failure is None:
        return
    impact.detected_t = failure["t"]
    impact.detected_by = failure["event"] + (f" ({failure['role']})" if "role" in failure else "")
    if is_stack_level(failure):
        impact.recovered_t = _stack_recovery(data, failure["t"], next_t)
    else:
        impact.recovered_t = _client_recovery(data, impact, next_t)


def _stack_recovery(data: RunData, failed_t: float, next_t: float) -> float | None:
    """The supervisor's first `recovered` after the failure, and again after each relapse before
    the next fault: a frontend that answers health for a moment and then fails its requests for
    7 s more has not recovered at the first healthy probe."""
    recovered: float | None = None
    for event in data.events:
        if event["t"] < failed_t:
            continue
        if recovered is not None:
            if event["t"] >= next_t:
                break
            if is_failure(event) and is_stack_level(event):
                recovered = None  # relapsed: wait for the next recovery
        elif event["event"] == "recovered":
            recovered = event["t"]
    return recovered


def _client_recovery(data: RunData, impact: FaultImpact, next_t: float) -> float | None:
    """A helper process died but the server kept answering: recovered when errors stop.

    Errors that go on into the last second of the load mean it never recovered.
    """
    end = min(next_t, data.load_end or next_t)
    failing = [r["t"] for r in data.seconds_in(math.floor(impact.injected_t), end) if r["requests"] > r["ok"]]
    if not failing:
        return impact.detected_t
    last_error_end = failing[-1] + 1
    if data.load_end is not None and last_error_end >= data.load_end - 1e-6:
        return None
    return float(max(last_error_end, impact.detected_t or impact.injected_t))


def _count_errors(data: RunData, impact: FaultImpact) -> None:
    end = impact.impact_end if impact.recovered_t is not None or impact.detected_t is None else None
    end_t = end if end is not None else (data.load_end or impact.injected_t)
    for record in data.seconds_in(math.floor(impact.injected_t), math.ceil(end_t) + 1e-9):
        errors = record["requests"] - record["ok"]
        if not errors:
            continue
        impact.failed_requests += errors
        impact.first_error_t = record["t"] if impact.first_error_t is None else impact.first_error_t
        impact.last_error_t = record["t"] + 1
        for kind, count in record.get("errors", {}).items():
            impact.errors_by_kind[kind] = impact.errors_by_kind.get(kind, 0) + count
        for kind, message in record.get("error_messages", {}).items():
            impact.error_messages.setdefault(kind, message)


def fault_intervals(data: RunData, impacts: list[FaultImpact] | None = None) -> list[tuple[float, float]]:
    """Each fault's impact, from injection to recovery (or the end of the load if never); pass
    `impacts` where the caller has them already (finding them walks the whole run)."""
    out = []
    for impact in fault_impacts(data) if impacts is None else impacts:
        if impact.detected_t is not None and impact.recovered_t is None:
            out.append((impact.injected_t, data.load_end or impact.injected_t))
        else:
            end = impact.impact_end
            if impact.last_error_t is not None:
                end = max(end, impact.last_error_t)
            out.append((impact.injected_t, end))
    return out


def recovery_metric(data: RunData, metric: str) -> tuple[float | None, int]:
    """The value of a recovery metric over the whole run, and how many faults it rests on."""
    impacts = fault_impacts(data)
    events = [e["event"] for e in data.events]
    exits = [e for e in data.events if e["event"] == "process_exited" and is_failure(e)]
    counts = {
        "crashes": sum(1 for e in exits if e.get("loss") == ENTRY_LOSS),
        "replicas_lost": sum(1 for e in exits if e.get("loss") == "replica"),
        "dependencies_lost": sum(1 for e in exits if e.get("loss") == "dependency"),
        "not_serving": events.count("not_serving"),
        "canary_failures": sum(1 for e in data.events if e["event"] == "canary_failed"),
        "hangs": events.count("hang_detected"),
        "restarts": events.count("restarted"),
        "faults_injected": len(impacts),
    }
    counts["crashes_or_hangs"] = counts["crashes"] + counts["hangs"]
    if metric in counts:
        return float(counts[metric]), len(impacts)
    if metric == "replica_recovery_s":
        return _replica_recovery(data, exits)
    if metric == "failed_per_fault":
        return float(max((i.failed_requests for i in impacts), default=0)), len(impacts)
    detected = [i for i in impacts if i.detected_t is not None]
    if metric == "detect_s":
        return (max((i.detect_s or 0.0 for i in detected), default=0.0), len(detected))
    if metric == "recovery_s":
        if any(i.recovered_t is None for i in detected):
            return None, len(detected)  # a fault the stack never recovered from
        return (max((i.recover_s or 0.0 for i in detected), default=0.0), len(detected))
    raise KeyError(metric)


def per_role_replica_metric(data: RunData, metric: str) -> tuple[float | None, int]:
    """`replicas_lost.ROLE` and `replica_recovery_s.ROLE`: the same, for one replica role."""
    name, _, role = metric.partition(".")
    exits = [e for e in data.events if e["event"] == "process_exited" and is_failure(e)
             and e.get("role") == role]
    if name == "replicas_lost":
        return float(sum(1 for e in exits if e.get("loss") == "replica")), len(exits)
    if name == "replica_recovery_s":
        return _replica_recovery(data, exits)
    raise KeyError(metric)


def _replica_recovery(data: RunData, exits: list[dict[str, Any]]) -> tuple[float | None, int]:
    """Longest time from a replica's loss until its role was back at full strength (None: a role
    never got back before the run ended)."""
    lost = [e for e in exits if e.get("loss") == "replica"]
    longest = 0.0
    for event in lost:
        back = next((r for r in data.events if r["event"] == "replicas_restored"
                     and r.get("role") == event["role"] and r["t"] >= event["t"]), None)
        if back is None:
            return None, len(lost)
        longest = max(longest, back["t"] - event["t"])
    return round(longest, 3), len(lost)
