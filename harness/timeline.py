"""When each fault fires: `at`, `every`, `count` and seeded `jitter`, fixed before the run starts.

The same seed gives the same schedule and the same random choices, so a failing nightly run can
be replayed exactly (`harness run --seed N`).
"""

import random
from dataclasses import dataclass

from harness.scenario import FaultSpec


@dataclass(frozen=True)
class PlannedFault:
    id: str  # e.g. `f0.2`: the first fault entry, third firing
    index: int  # position in the scenario's `faults`
    spec: FaultSpec
    start: float  # seconds from the start of the load


def plan_timeline(faults: list[FaultSpec], load_seconds: float, rng: random.Random) -> list[PlannedFault]:
    planned = []
    for index, spec in enumerate(faults):
        for repeat, start in enumerate(_starts(spec, load_seconds)):
            if spec.jitter:
                start = max(0.0, start + rng.uniform(-spec.jitter, spec.jitter))
            if start < load_seconds:
                planned.append(PlannedFault(f"f{index}.{repeat}", index, spec, round(start, 3)))
    return sorted(planned, key=lambda p: (p.start, p.id))


def _starts(spec: FaultSpec, load_seconds: float) -> list[float]:
    if spec.every is None:
        return [spec.at] * (spec.count or 1)
    count = spec.count if spec.count is not None else int((load_seconds - spec.at) // spec.every) + 1
    return [spec.at + i * spec.every for i in range(max(count, 0))]
