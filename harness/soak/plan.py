"""Cycle planning: the load shape and fault timeline of one scenario, repeated for `--for`.

Pure functions (no gevent, no I/O), so they are unit-tested on their own.
"""

import math
import random
from dataclasses import dataclass

from harness.load.pacer import RateSchedule, RateStep
from harness.scenario import FaultSpec, LoadSpec, Stage
from harness.timeline import PlannedFault, plan_timeline


@dataclass(frozen=True)
class SoakPlan:
    for_s: float  # the whole soak
    cycle_s: float  # one pass of the scenario's load shape

    @property
    def cycles(self) -> int:
        """Cycles started; the last one may be cut short at `for_s`."""
        return max(1, math.ceil(self.for_s / self.cycle_s - 1e-9))

    def start_of(self, index: int) -> float:
        """Seconds from the start of the load to cycle `index` (0-based)."""
        return index * self.cycle_s

    def end_of(self, index: int) -> float:
        return min(self.for_s, (index + 1) * self.cycle_s)


def soak_load(spec: LoadSpec, plan: SoakPlan) -> LoadSpec:
    """The scenario's load for the whole soak: the same users or rate, its stages repeated.

    Stages are repeated by reference (a soak of thousands of cycles costs a list of pointers), and
    the last copy is cut at `for_s`. From the second cycle on a ramp starts from the level the
    previous cycle ended at, as the load never stops between cycles.
    """
    if not spec.stages:
        return spec.model_copy(update={"duration": plan.for_s})
    stages: list[Stage] = []
    elapsed = 0.0
    while elapsed < plan.for_s - 1e-9:
        for stage in spec.stages:
            left = plan.for_s - elapsed
            if left <= 1e-9:
                break
            stages.append(stage if stage.duration <= left else stage.model_copy(update={"duration": left}))
            elapsed += min(stage.duration, left)
    return spec.model_copy(update={"stages": stages})


class CyclicSchedule(RateSchedule):
    """An open-model rate schedule that repeats one cycle's steps until `total`.

    Looking a rate up costs one cycle's steps, not the whole soak's. A ramp at the start of cycle
    k > 0 begins at the rate the previous cycle ended with, as `soak_load`'s stages do.
    """

    def __init__(self, steps: list[RateStep], total: float):
        super().__init__(steps)
        self.period = sum(step.duration for step in steps)
        self.total = total
        self._last_rate = steps[-1].rate if steps else 0.0

    def rate_at(self, t: float) -> float:
        if t >= self.total or self.period <= 0:
            return 0.0
        cycle, offset = divmod(t, self.period)
        begin = 0.0
        previous = 0.0 if cycle == 0 else self._last_rate
        for step in self.steps:
            if offset < begin + step.duration:
                if not step.ramp:
                    return step.rate
                return previous + (step.rate - previous) * (offset - begin) / step.duration
            begin += step.duration
            previous = step.rate
        return self._last_rate

    def next_boundary(self, t: float) -> float:
        if self.period <= 0:
            return self.total
        base = (t // self.period) * self.period
        for _ in range(2):  # the next cycle's first step, when t sits on this one's last edge
            end = base
            for step in self.steps:
                end += step.duration
                if end > t + 1e-9:  # strictly ahead, whatever the rounding of `t // period`
                    return min(end, self.total)
            base += self.period
        return min(base, self.total)

    def end_at(self, t: float) -> None:
        """Cut the schedule at `t` (the soak stopped): slots after it are not `unsent`."""
        self.total = min(self.total, max(t, 0.0))


def one_cycle_steps(spec: LoadSpec) -> list[RateStep]:
    """One cycle of an open-model load as rate steps (the scenario's own, not the soak's)."""
    if spec.stages:
        return [RateStep(s.duration, s.rate or 0.0, s.ramp) for s in spec.stages]
    assert spec.rate is not None and spec.duration is not None
    return [RateStep(spec.duration, spec.rate)]


def cycle_faults(faults: list[FaultSpec], plan: SoakPlan, index: int, rng: random.Random,
                 first: list[PlannedFault] | None = None) -> list[PlannedFault]:
    """Cycle `index`'s faults: the scenario's timeline (jitter drawn again) shifted by `index` cycles.

    Ids carry the cycle number (`c3.f0.0`), so the restore record and the reports tell firings
    of different cycles apart. A firing at or after `for_s` is dropped. `first`: a timeline
    planned already (the one validated before the load) to use instead of drawing a new one.
    """
    timeline = first if first is not None else plan_timeline(faults, plan.cycle_s, rng)
    shift = plan.start_of(index)
    out = []
    for planned in timeline:
        start = round(planned.start + shift, 3)
        if start < plan.for_s:
            out.append(PlannedFault(f"c{index + 1}.{planned.id}", planned.index, planned.spec, start))
    return out


def first_fault_offset(faults: list[PlannedFault], plan: SoakPlan, index: int) -> float | None:
    """Seconds from the start of cycle `index` to its first fault (None: it has none)."""
    starts = [p.start - plan.start_of(index) for p in faults]
    return min(starts) if starts else None
