"""Scenario files with memory settings: what is accepted, and one clear line for what is not."""

import pytest

from harness.scenario import load_scenario
from tests.unit.helpers import scenario_error

BASE = """\
name: m
stack:
  kind: triton
  model: large_init
  model_file: {size: 400MiB, load_s: 2s}
startup:
  attempts: 3
  memory_limit: 900MiB
load: {user: triton_http, duration: 10s}
"""


def error_of(scenario_file, text: str) -> str:
    return scenario_error(scenario_file(text))


def test_memory_scenario_parses(scenario_file) -> None:
    scenario = load_scenario(scenario_file(BASE + """\
sidecars:
  - {name: agent, command: ["{python}", "-m", "harness.sidecar_agent"], memory: stack, oom_score_adj: 1000}
faults:
  - {kind: memory_limit, at: 1s, duration: 5s, steps: [{after: 0s, limit: 1GiB}, {after: 2s, limit: 500MiB}]}
  - {kind: memory_stress, at: 1s, duration: 5s, fraction: 0.1, group: stack}
slo: [{metric: start_attempts, max: 1}, "oom_kills < 1", "sidecar_deaths < 1"]
"""))
    assert scenario.startup.attempts == 3 and scenario.startup.memory_limit == 900 << 20
    assert scenario.stack.model_file.size == 400 << 20  # type: ignore[attr-defined]
    assert scenario.sidecars[0].memory == "stack"
    assert scenario.faults[0].params["steps"][1]["limit"] == "500MiB"


@pytest.mark.parametrize(("extra", "expected"), [
    ("faults: [{kind: memory_limit, at: 1s, limit: 1GiB, steps: [{limit: 1GiB}]}]",
     ":10: faults.0: set exactly one of `limit` or `steps`"),
    ("faults: [{kind: memory_limit, at: 1s, limit: 1MiB}]",
     "faults.0.limit: Input should be greater than or equal"),
    ("faults: [{kind: memory_limit, at: 1s, limit: 12 parsecs}]", "bad size '12 parsecs'"),
    ("faults: [{kind: memory_stress, amount: 1GiB, fraction: 0.5}]",
     "faults.0: set exactly one of `amount`, `fraction` or `steps`"),
    ("faults: [{kind: memory_stress, fraction: 1.5}]", "faults.0.fraction: Input should be less than 1"),
    ("faults: [{kind: memory_stress, amount: 1GiB, group: pod}]",
     "faults.0.group: Input should be 'host' or 'stack'"),
    ("faults: [{kind: memory_limit, limit: 1GiB, role: worker}]", "stack kind 'triton' has no role 'worker'"),
    ("sidecars: [{name: a, command: [x]}, {name: a, command: [y]}]",
     "sidecars.1.name: two sidecars are named 'a'"),
    ("sidecars: [{name: a, command: []}]", "sidecars.0.command: List should have at least 1 item"),
    ("sidecars: [{name: a, command: [x], restart: always}]", "sidecars.0.restart: unknown key"),
])
def test_bad_memory_settings_are_one_line_each(scenario_file, extra: str, expected: str) -> None:
    message = error_of(scenario_file, BASE + extra + "\n")
    assert expected in message and len(message.splitlines()) == 1, message


def test_sidecar_in_the_stack_group_needs_a_stack_group(scenario_file) -> None:
    text = BASE.replace("  memory_limit: 900MiB\n", "")
    text += "sidecars: [{name: a, command: [x], memory: stack}]\n"
    assert ":9: sidecars.0.memory: `stack` shares the stack's memory group; set startup.memory_limit" in \
        error_of(scenario_file, text)


def test_model_file_only_with_large_init(scenario_file) -> None:
    assert "stack.model_file: `model_file: {size: ...}` goes with model large_init" in error_of(
        scenario_file, BASE.replace("model: large_init", "model: identity"))
    without = BASE.replace("  model_file: {size: 400MiB, load_s: 2s}\n", "")
    assert "model_file" in error_of(scenario_file, without)


def test_startup_keys_are_checked(scenario_file) -> None:
    assert ":7: startup.attempts: Input should be greater than or equal to 1" in error_of(
        scenario_file, BASE.replace("attempts: 3", "attempts: 0"))
    renamed = BASE.replace("attempts: 3", "retries: 3")
    assert "startup.retries: unknown key" in error_of(scenario_file, renamed)
