"""Soak cycle planning: the load shape and fault timeline repeated, cut at `--for`."""

import random

import pytest

from harness.load.pacer import Pacer, RateSchedule, RateStep
from harness.scenario import FaultSpec, LoadSpec
from harness.soak.plan import (
    CyclicSchedule,
    SoakPlan,
    cycle_faults,
    first_fault_offset,
    one_cycle_steps,
    soak_load,
)


def load(**fields: object) -> LoadSpec:
    return LoadSpec.model_validate({"user": "triton_http", **fields})


def test_cycles_and_bounds() -> None:
    plan = SoakPlan(for_s=20, cycle_s=6)
    assert plan.cycles == 4  # 6 + 6 + 6 + a last one cut to 2 s
    assert [plan.start_of(i) for i in range(4)] == [0, 6, 12, 18]
    assert plan.end_of(3) == 20
    assert SoakPlan(for_s=18, cycle_s=6).cycles == 3
    assert SoakPlan(for_s=2, cycle_s=6).cycles == 1


def test_closed_duration_load_runs_for_the_whole_soak() -> None:
    spec = soak_load(load(users=4, duration="6s"), SoakPlan(8 * 3600, 6))
    assert spec.duration == 8 * 3600 and spec.users == 4 and spec.total_duration == 8 * 3600


def test_stages_repeat_by_reference_and_the_last_cycle_is_cut() -> None:
    base = load(stages=[{"duration": "4s", "users": 2}, {"duration": "6s", "users": 8, "ramp": True}])
    spec = soak_load(base, SoakPlan(25, 10))
    assert [s.duration for s in spec.stages or []] == [4, 6, 4, 6, 4, 1]
    assert spec.total_duration == 25
    assert spec.stages is not None and spec.stages[2] is base.stages[0]  # no copies for long soaks
    assert base.total_duration == 10  # the scenario's own load is untouched


def test_cyclic_schedule_repeats_one_cycle_and_ramps_from_where_it_left() -> None:
    steps = [RateStep(2, 10), RateStep(2, 50, ramp=True)]
    sched = CyclicSchedule(steps, total=10)
    assert sched.rate_at(1) == 10 and sched.rate_at(5) == 10
    assert sched.rate_at(3) == pytest.approx(30)  # cycle 1: ramp 10 -> 50
    assert sched.rate_at(7) == pytest.approx(30)
    assert sched.rate_at(10) == 0.0  # the soak is over
    assert [sched.next_boundary(t) for t in (0, 2, 3.5, 4, 9)] == [2, 4, 4, 6, 10]


def test_cyclic_schedule_first_ramp_of_later_cycles_starts_at_the_last_rate() -> None:
    sched = CyclicSchedule([RateStep(2, 100, ramp=True), RateStep(2, 20)], total=8)
    assert sched.rate_at(1) == pytest.approx(50)  # from 0 in the first cycle
    assert sched.rate_at(5) == pytest.approx(60)  # from 20 (where cycle 1 ended) in the next


def test_pacer_over_a_cyclic_schedule_issues_every_cycle_and_end_at_cuts_unsent() -> None:
    sched = CyclicSchedule([RateStep(1, 10), RateStep(1, 0)], total=5)  # pauses every other second
    pacer = Pacer(sched, origin=0.0)
    slots = []
    while (slot := pacer.next_slot()) is not None:
        slots.append(slot)
    assert 30 <= len(slots) <= 33  # seconds 0, 2, 4 at 10/s (the pacer's float steps may add one)
    assert all(int(s) % 2 == 0 for s in slots)
    stopped = Pacer(CyclicSchedule([RateStep(1, 100)], total=3600), origin=0.0)
    stopped.end_at(2.0)
    assert stopped.unsent() == 200  # due by the stop, not the hour still planned


def test_cyclic_schedule_matches_the_expanded_one() -> None:
    steps = [RateStep(1.5, 20), RateStep(2.5, 80, ramp=True), RateStep(1, 0)]
    cyclic = CyclicSchedule(steps, total=14)
    expanded = RateSchedule([s for _ in range(3) for s in steps])
    for i in range(140):
        t = i / 10
        assert cyclic.rate_at(t) == pytest.approx(expanded.rate_at(t)), t


def test_one_cycle_steps() -> None:
    assert one_cycle_steps(load(rate=50, duration="6s")) == [RateStep(6, 50)]
    stages = [{"duration": "2s", "rate": 5}, {"duration": "3s", "rate": 9, "ramp": True}]
    steps = one_cycle_steps(load(stages=stages))
    assert steps == [RateStep(2, 5), RateStep(3, 9, True)]


def fault(**fields: object) -> FaultSpec:
    return FaultSpec.model_validate({"kind": "process_freeze", "role": "server", **fields})


def test_cycle_faults_shift_by_whole_cycles_with_cycle_ids() -> None:
    plan = SoakPlan(for_s=20, cycle_s=6)
    faults = [fault(at="1s", duration="1s"), fault(at="2s", every="3s")]
    rng = random.Random(1)
    third = cycle_faults(faults, plan, 2, rng)
    assert [(p.id, p.start) for p in third] == [("c3.f0.0", 13.0), ("c3.f1.0", 14.0), ("c3.f1.1", 17.0)]
    last = cycle_faults(faults, plan, 3, rng)  # cycle 4 runs 18 s .. 20 s
    assert [(p.id, p.start) for p in last] == [("c4.f0.0", 19.0)]
    assert first_fault_offset(third, plan, 2) == 1.0
    assert first_fault_offset([], plan, 2) is None


def test_jitter_is_drawn_again_each_cycle_and_replays_with_the_seed() -> None:
    plan = SoakPlan(for_s=60, cycle_s=10)
    faults = [fault(at="5s", jitter="2s")]

    def starts(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [p.start - plan.start_of(i) for i in range(6) for p in cycle_faults(faults, plan, i, rng)]

    first = starts(7)
    assert first == starts(7)
    assert len(set(first)) > 1 and all(3 <= s <= 7 for s in first)
