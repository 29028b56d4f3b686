"""TorchServe scenario settings: what loads, and one clear `file:line: field: message` for bad input."""



from harness.scenario import load_scenario
from harness.torchserve.files import model_config, server_config
from harness.torchserve.spec import TorchServeSpec
from tests.unit.helpers import scenario_error

GOOD = """\
name: ts
stack:
  kind: torchserve
  handler: delay
  delay_ms: 5
  workers: 3
  max_retry_timeout: 0
load: {user: torchserve_http, users: 4, duration: 10s}
faults:
  - {kind: process_kill, at: 2s, role: worker, pick: all, signal: SIGTERM}
  - {kind: process_freeze, at: 5s, duration: 2s, role: frontend}
slo:
  - {metric: ts.workers_ready_s, max: 10}
  - "ts.retry_storms < 1"
"""


def test_good_torchserve_scenario(scenario_file) -> None:
    scenario = load_scenario(scenario_file(GOOD))
    stack = scenario.stack
    assert isinstance(stack, TorchServeSpec)
    assert (stack.handler, stack.workers, stack.max_retry_timeout, stack.storm_after) == ("delay", 3, 0, 3)
    assert [s.metric for s in scenario.slo] == ["ts.workers_ready_s", "ts.retry_storms"]


def test_unknown_handler_names_field_and_line(scenario_file) -> None:
    text = GOOD.replace("handler: delay", "handler: resnet")
    message = scenario_error(scenario_file(text))
    assert message.count("\n") == 0
    assert message.startswith(f"{scenario_file(text)}:4: stack.handler: ")
    assert "'echo', 'delay', 'broken_import' or 'broken_init'" in message


def test_negative_retry_timeout(scenario_file) -> None:
    text = GOOD.replace("max_retry_timeout: 0", "max_retry_timeout: -1")
    assert ":7: stack.max_retry_timeout: " in scenario_error(scenario_file(text))


def test_server_role_does_not_exist_on_torchserve(scenario_file) -> None:
    text = GOOD.replace("role: frontend", "role: server")
    message = scenario_error(scenario_file(text))
    assert ":11: faults.1.role: " in message and "(roles: frontend, worker)" in message


def test_unknown_key(scenario_file) -> None:
    text = GOOD.replace("  workers: 3\n", "  workers: 3\n  retries: 5\n")
    assert ":7: stack.retries: unknown key" in scenario_error(scenario_file(text))


def test_config_is_loopback_only_and_carries_the_retry_timeout() -> None:
    spec = TorchServeSpec.model_validate({"kind": "torchserve", "workers": 2, "max_retry_timeout": 0})
    ports = {"inference": 1, "management": 2, "metrics": 3, "grpc_inference": 4, "grpc_management": 5}
    text = server_config(ports, spec)
    addresses = [line for line in text.splitlines() if "address" in line]
    assert len(addresses) == 5 and all("127.0.0.1" in line for line in addresses)
    assert model_config(spec)["maxRetryTimeoutInSec"] == 0
    unset = TorchServeSpec.model_validate({"kind": "torchserve"})
    assert "maxRetryTimeoutInSec" not in model_config(unset)  # TorchServe's own default stays visible
