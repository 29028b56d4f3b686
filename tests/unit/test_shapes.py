import pytest

from harness.load.driver import users_at
from harness.scenario import Stage


def stages(*specs: dict) -> list[Stage]:
    return [Stage.model_validate(s) for s in specs]


def test_steps_hold_their_user_count() -> None:
    shape = stages({"duration": 5, "users": 4}, {"duration": 5, "users": 16})
    assert users_at(shape, 0, 100) == (4, 100)
    assert users_at(shape, 4.9, 100) == (4, 100)
    assert users_at(shape, 5.0, 100) == (16, 100)
    assert users_at(shape, 10.0, 100) is None  # the shape ends the run


def test_ramp_interpolates_from_the_previous_stage() -> None:
    shape = stages({"duration": 2, "users": 10}, {"duration": 10, "users": 30, "ramp": True})
    assert users_at(shape, 2.0, 50)[0] == 10
    assert users_at(shape, 7.0, 50)[0] == 20
    assert users_at(shape, 11.9, 50)[0] == pytest.approx(30, abs=1)


@pytest.mark.parametrize("load, rate", [
    ({"users": 16, "duration": 5}, 160.0),  # closed: ramped at ten users a second per user
    ({"users": 16, "duration": 5, "spawn_rate": 4}, 4.0),  # the scenario's own, in either model
    ({"users": 64, "rate": 1000, "duration": 5, "spawn_rate": 4}, 4.0),
    ({"users": 64, "rate": 1000, "duration": 5}, 10_000.0),  # open: every user at once
    ({"users": 64, "stages": [{"duration": 5, "rate": 100}]}, 10_000.0),
])
def test_spawn_rate_by_model(load: dict, rate: float) -> None:
    from harness.load.driver import LoadDriver
    from harness.load.recorder import Recorder
    from harness.load.target import Target
    from harness.scenario import LoadSpec

    spec = LoadSpec.model_validate({"user": "triton_http", **load})
    driver = LoadDriver(spec, Target("http://127.0.0.1:1", None, "m"), Recorder(lambda: 0.0))
    assert driver._spawn_rate() == rate
