"""What `harness list` prints."""

from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError
from harness.exitcodes import ExitCode
from harness.stacks.modelzoo import ZOO
from harness.users import known_users

STACK_KINDS = {
    "triton": "real tritonserver from the nvidia-pytriton wheel, model from the zoo",
    "external": "an already-running server at a loopback URL",
}


def sections(what: str, scenario_dir: Path) -> Iterator[tuple[str, list[str]]]:
    if what in ("all", "scenarios"):
        yield "scenarios", list(_scenarios(scenario_dir))
    if what in ("all", "users"):
        yield "users", [f"{name}  ({target})" for name, target in sorted(known_users().items())]
    if what in ("all", "stacks"):
        yield "stacks", [f"{kind}  {text}" for kind, text in STACK_KINDS.items()]
    if what in ("all", "models"):
        yield "models", [f"{name}  {m.datatype}{list(m.dims)}" for name, m in ZOO.items()]
    if what in ("all", "exit-codes"):
        yield "exit codes", [f"{int(code)}  {code.name}" for code in ExitCode]


def _scenarios(folder: Path) -> Iterator[str]:
    from harness.scenario import load_scenario

    for path in sorted(folder.rglob("*.yaml")):
        try:
            scenario = load_scenario(path)
            yield f"{path}  {scenario.description.strip().splitlines()[0] if scenario.description else ''}"
        except HarnessError as exc:
            yield f"{path}  INVALID: {str(exc).splitlines()[0]}"
