"""Runs the planned faults on the load's clock: plan, record, inject, hold, restore, always.

Each firing runs in its own greenlet. Stopping sets an event that wakes every sleeping firing:
those not yet injected give up, those holding restore at once, and anything still active after
that is restored directly. A fault that fails is recorded as `fault_failed`; the run goes on.
"""

from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event

from faults.base import Fault, FaultContext, FaultError, fault_class
from harness.journal import Journal
from harness.restore import RestoreLog
from harness.timeline import PlannedFault

STOP_GRACE_S = 30.0


@dataclass
class Active:
    fault: Fault
    plan: dict[str, Any]
    injected_t: float
    planned: PlannedFault


def build_fault(planned: PlannedFault) -> Fault:
    cls = fault_class(planned.spec.kind)
    return cls(cls.params_model.model_validate(planned.spec.params))


class FaultRunner:
    def __init__(self, planned: list[PlannedFault], ctx: FaultContext, journal: Journal, restore: RestoreLog):
        self.planned = planned
        self.ctx = ctx
        self.journal = journal
        self.restore_log = restore
        self.active: dict[str, Active] = {}
        self.stopping = Event()
        self.origin = 0.0
        self._greenlets: list[gevent.Greenlet] = []

    def validate(self) -> None:
        """Before any traffic: every distinct fault entry checks it can run. Raises FaultError."""
        seen: set[int] = set()
        for planned in self.planned:
            if planned.index not in seen:
                seen.add(planned.index)
                build_fault(planned).validate(self.ctx)

    def start(self, origin: float) -> None:
        """`origin`: the run-clock time the load started; `at` counts from there."""
        self.origin = origin
        for planned in self.planned:
            self.journal.event("fault_scheduled", id=planned.id, kind=planned.spec.kind,
                               name=planned.spec.label, at=planned.start)
        self._greenlets = [gevent.spawn(self._fire, planned) for planned in self.planned]

    def _fire(self, planned: PlannedFault) -> None:
        delay = self.origin + planned.start - self.journal.now()
        if self.stopping.wait(max(0.0, delay)):
            return
        fault = build_fault(planned)
        try:
            plan = fault.plan(self.ctx)
        except FaultError as exc:
            self.journal.event("fault_failed", id=planned.id, kind=planned.spec.kind, error=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is a finding, not a silent greenlet death
            self.journal.event("fault_failed", id=planned.id, kind=planned.spec.kind, error=repr(exc))
            return
        self.restore_log.fault_planned(planned.id, planned.spec.kind, plan)
        active = Active(fault, plan, self.journal.now(), planned)
        self.active[planned.id] = active
        try:
            details = fault.inject(self.ctx, plan)
            self.journal.event("fault_injected", id=planned.id, kind=planned.spec.kind,
                               name=planned.spec.label, plan=plan, **details)
        except Exception as exc:  # noqa: BLE001 - recorded; restore still runs below
            self.journal.event("fault_failed", id=planned.id, kind=planned.spec.kind, error=repr(exc))
        self.stopping.wait(planned.spec.duration)
        self._restore(planned.id)

    def _restore(self, fault_id: str) -> None:
        active = self.active.pop(fault_id, None)
        if active is None:
            return
        try:
            active.fault.restore(self.ctx, active.plan)
            error = None
        except Exception as exc:  # noqa: BLE001 - recorded: `harness cleanup` can retry
            error = repr(exc)
        if error is None:
            self.restore_log.fault_restored(fault_id)
        now = self.journal.now()
        self.journal.event("fault_restored", id=fault_id, kind=active.planned.spec.kind, error=error)
        self.journal.event("window", kind="fault", fault_id=fault_id, name=active.planned.spec.label,
                           start=round(active.injected_t, 4), end=round(now, 4))

    def stop(self) -> None:
        self.stopping.set()
        gevent.joinall(self._greenlets, timeout=STOP_GRACE_S)
        stragglers = [g for g in self._greenlets if not g.dead]
        for greenlet in stragglers:
            greenlet.kill(block=False)
        gevent.joinall(stragglers, timeout=5)
        for fault_id in list(self.active):
            self._restore(fault_id)
