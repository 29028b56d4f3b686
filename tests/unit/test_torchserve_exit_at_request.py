"""`stack.exit_at_request`: a TorchServe model that loads but whose worker dies at its Nth inference."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.scenario import load_scenario
from harness.torchserve.files import HANDLERS_DIR, model_config
from harness.torchserve.spec import TorchServeSpec
from tests.unit.helpers import scenario_error

SCENARIO = """\
name: ts
stack:
  kind: torchserve
  handler: echo
  exit_at_request: 3
load: {user: torchserve_http, users: 2, duration: 5s}
"""


def test_setting_reaches_the_archive_config(scenario_file) -> None:
    stack = load_scenario(scenario_file(SCENARIO)).stack
    assert isinstance(stack, TorchServeSpec) and stack.exit_at_request == 3
    assert model_config(stack)["handler"] == {"delay_ms": 0.0, "exit_at_request": 3}
    unset = TorchServeSpec(kind="torchserve")
    assert "exit_at_request" not in model_config(unset)["handler"]  # the archive is as before


@pytest.mark.parametrize(("old", "new", "field"), [
    ("exit_at_request: 3", "exit_at_request: 0", "stack.exit_at_request"),
    ("handler: echo", "handler: broken_import", "stack"),
])
def test_bad_values_name_file_line_and_field(scenario_file, old: str, new: str, field: str) -> None:
    path = scenario_file(SCENARIO.replace(old, new))
    message = scenario_error(path)
    assert message.count("\n") == 0 and f": {field}" in message, message
    if new.startswith("handler"):
        assert "exit_at_request" in message and "never serves a request" in message


_DRIVE = """
import importlib.util, sys
from types import SimpleNamespace
spec = importlib.util.spec_from_file_location("h", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
context = SimpleNamespace(model_yaml_config={"handler": {"exit_at_request": int(sys.argv[2])}})
module.handle(None, context)
for i in range(5):
    assert module.handle([{"body": i}], context) == [i]
    print("served", i + 1, flush=True)
"""


def _drive(path: str, exit_at: int) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", _DRIVE, path, str(exit_at)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("handler", ["echo", "delay"])
def test_worker_process_exits_at_its_nth_inference(handler: str) -> None:
    # The handler ends its own process, so it runs in a child, as TorchServe's worker would run it.
    path = str(HANDLERS_DIR / f"{handler}.py")
    died = _drive(path, 3)
    assert died.returncode == 1 and died.stdout.split("\n")[:-1] == ["served 1", "served 2"], died
    never = _drive(path, 0)
    assert never.returncode == 0 and never.stdout.count("served") == 5, never


def test_echo_without_settings_still_echoes() -> None:
    source = (HANDLERS_DIR / "echo.py").read_text()
    namespace: dict = {}
    exec(compile(source, str(Path(HANDLERS_DIR / "echo.py")), "exec"), namespace)
    assert namespace["handle"](None, SimpleNamespace()) is None
    assert namespace["handle"]([{"data": b"x"}], SimpleNamespace()) == [b"x"]
