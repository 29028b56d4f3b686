"""Open-model pacing: arrival times fixed in advance by a rate schedule.

Latency is measured from each request's *intended* send time, so when the server stalls and
users fall behind, the waiting shows up in the latency instead of quietly lowering the load
(coordinated omission). A request sent more than `late_after` after its slot counts as late.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class RateStep:
    duration: float
    rate: float  # arrivals per second at the end of the step
    ramp: bool = False  # linear from the previous step's rate


class RateSchedule:
    def __init__(self, steps: list[RateStep]):
        self.steps = steps
        self.total = sum(step.duration for step in steps)

    def rate_at(self, t: float) -> float:
        begin = 0.0
        previous = 0.0
        for step in self.steps:
            if t < begin + step.duration:
                if not step.ramp:
                    return step.rate
                fraction = (t - begin) / step.duration
                return previous + (step.rate - previous) * fraction
            begin += step.duration
            previous = step.rate
        return 0.0

    def next_boundary(self, t: float) -> float:
        begin = 0.0
        for step in self.steps:
            begin += step.duration
            if t < begin:
                return begin
        return self.total


# A rate below this is treated as a pause until the next step.
_MIN_RATE = 1e-3
# Slots are sums of 1/rate: 500 steps of 0.01 s fall short of 5.0 by rounding, which would add a
# 501st arrival. A slot this close to the end belongs past it.
_EPSILON_S = 1e-9


class Pacer:
    """Hands out intended send times (monotonic clock) from `origin` to the schedule's end."""

    def __init__(self, schedule: RateSchedule, origin: float):
        self.schedule = schedule
        self.origin = origin
        self._next = 0.0  # seconds from origin
        self.issued = 0
        self._end = schedule.total - _EPSILON_S

    def replace_schedule(self, schedule: RateSchedule) -> None:
        """Pace by another schedule from now on (a soak repeats one cycle's steps)."""
        self.schedule = schedule
        self._end = schedule.total - _EPSILON_S

    def end_at(self, t: float) -> None:
        """No slot at or after `t` seconds from the origin (the load was stopped early): slots after
        it are neither sent nor counted as `unsent`."""
        self._end = min(self._end, max(t, 0.0))

    def next_slot(self) -> float | None:
        """The next intended send time, or None once the schedule is over."""
        slot = self._advance_past_pauses(self._next)
        if slot >= self._end:
            self._next = slot
            return None
        self._next = slot + 1.0 / self.schedule.rate_at(slot)
        self.issued += 1
        return self.origin + slot

    def _advance_past_pauses(self, t: float) -> float:
        while t < self._end and self.schedule.rate_at(t) < _MIN_RATE:
            t = self.schedule.next_boundary(t)
        return t

    def unsent(self) -> int:
        """Slots the schedule still holds: requests that were due but never sent."""
        count = 0
        t = self._advance_past_pauses(self._next)
        while t < self._end:
            count += 1
            t = self._advance_past_pauses(t + 1.0 / self.schedule.rate_at(t))
        return count
