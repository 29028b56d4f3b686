from pathlib import Path

from harness.scenario import Window, load_scenario
from tests.unit.helpers import scenario_error

GOOD = """\
name: demo
stack:
  kind: triton
  model: identity
load:
  user: triton_http
  users: 4
  duration: 10s
slo:
  - {metric: error_rate, max: 0.01}
  - "p99_ms < 50"
  - {metric: throughput_rps, min: 10, window: {from: 2s, to: 8s}}
"""


def test_good_scenario_loads(scenario_file) -> None:
    scenario = load_scenario(scenario_file(GOOD))
    assert scenario.load.total_duration == 10
    assert [s.metric for s in scenario.slo] == ["error_rate", "p99_ms", "throughput_rps"]
    assert scenario.slo[0].op == "<=" and scenario.slo[0].threshold == 0.01
    assert scenario.slo[1].op == "<" and scenario.slo[1].threshold == 50
    assert scenario.slo[2].op == ">="
    assert scenario.slo[2].window == Window.model_validate({"from": 2, "to": 8})


def test_unknown_key_names_file_field_and_line(scenario_file) -> None:
    path = scenario_file(GOOD.replace("  users: 4\n", "  users: 4\n  userz: 5\n"))
    message = scenario_error(path)
    assert message == f"{path}:8: load.userz: unknown key"


def test_bad_duration(scenario_file) -> None:
    path = scenario_file(GOOD.replace("duration: 10s", "duration: 90x"))
    message = scenario_error(path)
    assert message.startswith(f"{path}:8: load.duration: bad duration '90x'")
    assert "\n" not in message


def test_unknown_model(scenario_file) -> None:
    message = scenario_error(scenario_file(GOOD.replace("model: identity", "model: resnet50")))
    assert ":4: stack.model: unknown model 'resnet50'" in message


def test_external_stack_without_model(scenario_file) -> None:
    text = GOOD.replace("  kind: triton\n  model: identity\n", "  kind: external\n  url: http://127.0.0.1:8000\n")
    message = scenario_error(scenario_file(text))
    assert ":2: stack.model: Field required" in message


def test_unknown_user_class(scenario_file) -> None:
    message = scenario_error(scenario_file(GOOD.replace("triton_http", "triton_carrier_pigeon")))
    assert ":6: load.user: unknown user class 'triton_carrier_pigeon'" in message
    assert "triton_http" in message  # lists the known ones


def test_unknown_metric(scenario_file) -> None:
    message = scenario_error(scenario_file(GOOD.replace('"p99_ms < 50"', '"p99_seconds < 50"')))
    assert ":11: slo.1.metric: unknown metric 'p99_seconds'" in message


def test_unreadable_slo_text(scenario_file) -> None:
    message = scenario_error(scenario_file(GOOD.replace('"p99_ms < 50"', '"p99_ms is small"')))
    assert "slo.1" in message and "metric op threshold" in message


def test_remote_url_refused(scenario_file) -> None:
    remote = "  kind: external\n  url: http://10.1.2.3:8000\n  model: m\n"
    text = GOOD.replace("  kind: triton\n  model: identity\n", remote)
    assert "not a loopback address" in scenario_error(scenario_file(text))


def test_stages_and_duration_are_exclusive(scenario_file) -> None:
    text = GOOD.replace("  duration: 10s\n", "  duration: 10s\n  stages: [{duration: 5s, users: 2}]\n")
    assert "exactly one of `duration` or `stages`" in scenario_error(scenario_file(text))


def test_stage_needs_users_or_rate(scenario_file) -> None:
    text = GOOD.replace("  duration: 10s\n", "  stages: [{duration: 5s}]\n")
    assert "exactly one of `users`" in scenario_error(scenario_file(text))


def test_open_model_stages(scenario_file) -> None:
    stages = "  stages: [{duration: 5s, rate: 10}, {duration: 5s, rate: 50, ramp: true}]\n"
    text = GOOD.replace("  duration: 10s\n", stages)
    scenario = load_scenario(scenario_file(text))
    assert scenario.load.open_model and scenario.load.total_duration == 10


def test_yaml_syntax_error_has_line(scenario_file) -> None:
    path = scenario_file("name: x\nstack: [unclosed\n")
    assert scenario_error(path).startswith(f"{path}:")


def test_missing_file(tmp_path: Path) -> None:
    assert "no such scenario file" in scenario_error(tmp_path / "nope.yaml")


def test_bundled_scenarios_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "scenarios"
    for path in root.rglob("*.yaml"):
        load_scenario(path)
