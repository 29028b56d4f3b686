from pathlib import Path

from harness.cli import main
from harness.exitcodes import ExitCode

GOOD = """\
name: demo
stack: {kind: triton}
load: {user: triton_http, users: 2, duration: 5s}
"""


def test_validate_ok(scenario_file, capsys) -> None:
    assert main(["validate", str(scenario_file(GOOD))]) == ExitCode.PASS
    assert "ok:" in capsys.readouterr().out


def test_validate_error_is_one_line(scenario_file, capsys) -> None:
    path = scenario_file(GOOD.replace("5s", "5x"))
    assert main(["validate", str(path)]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"{path}:3: load.duration")


def test_run_with_bad_scenario_starts_nothing(scenario_file, tmp_path: Path, capsys) -> None:
    path = scenario_file(GOOD.replace("triton_http", "nope"))
    runs = tmp_path / "runs"
    assert main(["run", str(path), "--runs-dir", str(runs)]) == ExitCode.USAGE_ERROR
    assert "load.user: unknown user class" in capsys.readouterr().err
    assert not runs.exists()


def test_report_on_non_run_folder(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == ExitCode.USAGE_ERROR
    assert "not a run folder" in capsys.readouterr().err


def test_list_exit_codes(capsys) -> None:
    assert main(["list", "exit-codes"]) == 0
    out = capsys.readouterr().out
    assert "2  USAGE_ERROR" in out and "3  STACK_FAILED" in out


def test_list_shows_reproductions_with_source_and_expectation(capsys) -> None:
    assert main(["list", "scenarios"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "repro/triton-otel-signal11.yaml" in ln)
    assert "[expect reproduced; seeds/000]" in line
    quick = next(ln for ln in out.splitlines() if "quickstart.yaml" in ln)
    assert "[" not in quick.split("quickstart.yaml")[1][:4]  # no tags where there is nothing to say


def test_scenario_source_refuses_what_is_not_a_reference(tmp_path: Path, capsys) -> None:
    text = Path("scenarios/quickstart.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\nsource: [see the forum]\n")
    assert main(["validate", str(bad)]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert "source" in err and "bad.yaml" in err
    good = tmp_path / "good.yaml"
    good.write_text(text + "\nsource: [triton-inference-server/server#8604, found-here]\n")
    assert main(["validate", str(good)]) == 0
