import random

from harness.scenario import FaultSpec, load_scenario
from harness.timeline import plan_timeline
from tests.unit.helpers import scenario_error

SCENARIO = """\
name: f
stack: {kind: triton}
load: {user: triton_http, duration: 60s}
faults:
  - {kind: process_kill, at: 5s, role: server, signal: SIGKILL}
  - kind: process_freeze
    at: 10s
    every: 20s
    duration: 2s
    role: stub
"""


def test_faults_parse_with_plugin_params(scenario_file) -> None:
    scenario = load_scenario(scenario_file(SCENARIO))
    kill, freeze = scenario.faults
    assert kill.params == {"role": "server", "signal": "SIGKILL"} and kill.at == 5
    assert freeze.every == 20 and freeze.duration == 2 and freeze.params == {"role": "stub"}


def error_of(scenario_file, text: str) -> str:
    return scenario_error(scenario_file(text))


def test_role_the_stack_does_not_have(scenario_file) -> None:
    message = error_of(scenario_file, SCENARIO.replace("role: stub", "role: worker"))
    assert ":10: faults.1.role: stack kind 'triton' has no role 'worker' (roles: server, stub)" in message


def test_external_stack_has_no_roles(scenario_file) -> None:
    external = "stack: {kind: external, url: 'http://127.0.0.1:9', model: m}"
    text = SCENARIO.replace("stack: {kind: triton}", external)
    assert "has no role 'server' (roles: none" in error_of(scenario_file, text)


def test_unknown_fault_kind(scenario_file) -> None:
    message = error_of(scenario_file, SCENARIO.replace("kind: process_freeze", "kind: cosmic_ray"))
    assert ":6: faults.1.kind: unknown fault 'cosmic_ray'" in message


def test_bad_signal_and_unknown_param(scenario_file) -> None:
    bad_signal = error_of(scenario_file, SCENARIO.replace("SIGKILL", "SIGFOO"))
    assert ":5: faults.0.signal: unknown signal 'SIGFOO'" in bad_signal
    typo = error_of(scenario_file, SCENARIO.replace("signal:", "sginal:"))
    assert ":5: faults.0.sginal: unknown key" in typo


def spec(**fields: object) -> FaultSpec:
    return FaultSpec.model_validate({"kind": "process_kill", "role": "server", **fields})


def test_timeline_every_and_count() -> None:
    planned = plan_timeline([spec(at=5, every=10)], 40, random.Random(1))
    assert [p.start for p in planned] == [5, 15, 25, 35]
    planned = plan_timeline([spec(at=5, every=10, count=2), spec(at=1)], 40, random.Random(1))
    assert [(p.id, p.start) for p in planned] == [("f1.0", 1), ("f0.0", 5), ("f0.1", 15)]


def test_jitter_is_replayable_from_the_seed() -> None:
    faults = [spec(at=10, every=10, jitter=3)]
    first = [p.start for p in plan_timeline(faults, 60, random.Random(42))]
    again = [p.start for p in plan_timeline(faults, 60, random.Random(42))]
    other = [p.start for p in plan_timeline(faults, 60, random.Random(43))]
    assert first == again and first != other
    assert all(abs(s - b) <= 3 for s, b in zip(first, [10, 20, 30, 40, 50], strict=False))


def test_faults_after_the_load_are_dropped() -> None:
    assert plan_timeline([spec(at=100)], 60, random.Random(0)) == []
