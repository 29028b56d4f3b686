import pytest

from harness.load.pacer import Pacer, RateSchedule, RateStep


def slots(pacer: Pacer) -> list[float]:
    out = []
    while (slot := pacer.next_slot()) is not None:
        out.append(slot)
    return out


def test_constant_rate_gives_evenly_spaced_slots() -> None:
    pacer = Pacer(RateSchedule([RateStep(2.0, 100.0)]), origin=1000.0)
    got = slots(pacer)
    assert len(got) == 200
    assert got[0] == 1000.0
    assert got[1] - got[0] == pytest.approx(0.01)
    assert pacer.issued == 200 and pacer.unsent() == 0


def test_steps_and_ramp() -> None:
    schedule = RateSchedule([RateStep(1.0, 10.0), RateStep(2.0, 50.0, ramp=True)])
    assert schedule.rate_at(0.5) == 10.0
    assert schedule.rate_at(2.0) == pytest.approx(30.0)
    count = len(slots(Pacer(schedule, origin=0.0)))
    assert 10 + 55 <= count <= 10 + 65  # integral of the ramp is 60


def test_pause_is_skipped() -> None:
    schedule = RateSchedule([RateStep(1.0, 0.0), RateStep(1.0, 20.0)])
    got = slots(Pacer(schedule, origin=0.0))
    assert got[0] == pytest.approx(1.0) and len(got) == 20


def test_unsent_counts_slots_never_taken() -> None:
    pacer = Pacer(RateSchedule([RateStep(1.0, 100.0)]), origin=0.0)
    for _ in range(30):
        pacer.next_slot()
    assert pacer.unsent() == 70
