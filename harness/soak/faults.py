"""The fault runner of a soak: one cycle's firings scheduled at a time, so nothing grows with `--for`."""

import random

import gevent

from faults.base import FaultContext
from harness.faultrun import FaultRunner
from harness.journal import Journal
from harness.restore import RestoreLog
from harness.scenario import FaultSpec
from harness.soak.plan import SoakPlan, cycle_faults
from harness.timeline import plan_timeline


class CyclicFaultRunner(FaultRunner):
    """`planned` holds the current cycle's firings only; the soak calls `schedule(index)` as each
    cycle begins. Finished firings' greenlets are dropped then, and `stop()` (inherited) wakes and
    restores whatever is still pending or held."""

    def __init__(self, faults: list[FaultSpec], plan: SoakPlan, rng: random.Random, ctx: FaultContext,
                 journal: Journal, restore: RestoreLog):
        self.specs = faults
        self.plan = plan
        self.rng = rng
        # Cycle 1's timeline is drawn now, so `validate()` checks what will actually run first.
        self._first = plan_timeline(faults, plan.cycle_s, rng)
        super().__init__(cycle_faults(faults, plan, 0, rng, self._first), ctx, journal, restore)
        self.cycle = 0

    def start(self, origin: float) -> None:
        self.origin = origin
        self.schedule(0)

    def schedule(self, index: int) -> None:
        """Plan and arm cycle `index` (0-based); its `at` times count from the soak's origin."""
        if self.stopping.is_set():
            return
        self.cycle = index
        self.planned = cycle_faults(self.specs, self.plan, index, self.rng,
                                    self._first if index == 0 else None)
        self._greenlets = [g for g in self._greenlets if not g.dead]
        for planned in self.planned:
            self.journal.event("fault_scheduled", id=planned.id, kind=planned.spec.kind,
                               name=planned.spec.label, at=planned.start, cycle=index + 1)
            self._greenlets.append(gevent.spawn(self._fire, planned))

    def active_in(self, index: int) -> bool:
        """Whether a firing of cycle `index` is still injected (held, not yet restored)."""
        prefix = f"c{index + 1}."
        return any(fault_id.startswith(prefix) for fault_id in self.active)

    def pending_in(self, index: int) -> bool:
        """Whether cycle `index` still has a firing to come or held."""
        return self.active_in(index) or (self.cycle == index and any(not g.dead for g in self._greenlets))
