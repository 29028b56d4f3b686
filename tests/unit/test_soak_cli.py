"""`harness soak` on bad input: one line naming the flag or file, exit 2, nothing started."""

from pathlib import Path

import pytest

from harness.cli import main
from harness.exitcodes import ExitCode

GOOD = """\
name: demo
stack: {kind: triton}
load: {user: triton_http, users: 2, duration: 5s}
"""


BAD_FOR = [("8x", "--for: bad duration '8x'"), ("0s", "--for: must be longer")]


@pytest.mark.parametrize(("value", "message"), BAD_FOR)
def test_bad_for_is_a_usage_error(scenario_file, tmp_path: Path, capsys, value: str, message: str) -> None:
    runs = tmp_path / "runs"
    code = main(["soak", str(scenario_file(GOOD)), "--for", value, "--runs-dir", str(runs)])
    assert code == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not runs.exists()


def test_bad_scenario_names_file_and_line(scenario_file, tmp_path: Path, capsys) -> None:
    path = scenario_file(GOOD.replace("5s", "5x"))
    code = main(["soak", str(path), "--for", "1h", "--runs-dir", str(tmp_path / "runs")])
    assert code == ExitCode.USAGE_ERROR
    assert capsys.readouterr().err.strip().startswith(f"harness: {path}:3: load.duration")
