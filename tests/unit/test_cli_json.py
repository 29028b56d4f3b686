"""The command line a serving engineer expects: --version, --help, --json, HARNESS_* defaults.

`parse_run_json` reads what `harness run --json` (or `soak --json`) printed; other tests (the real
runs in tests/integration) reuse it.
"""

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from harness import __version__
from harness import cli as cli_module
from harness.cli import _parser, main
from harness.clienv import apply_env
from harness.clihelp import COMMAND_EXITS, EXIT_MEANINGS
from harness.clijson import RUN_KEYS, SCHEMA
from harness.errors import UsageError
from harness.exitcodes import ExitCode

GOOD = """\
name: demo
stack: {kind: triton}
load: {user: triton_http, users: 2, duration: 5s}
slo:
  - "p99_ms < 250"
"""
BAD = GOOD.replace("5s", "5x")  # line 3: load.duration


def parse_run_json(stdout: str) -> dict[str, Any]:
    """The one object `harness run --json` printed, checked: nothing else on stdout, every key there.

    Raises AssertionError naming what is wrong, so a failing test says why.
    """
    try:
        obj = json.loads(stdout)  # refuses anything before or after the one object
    except ValueError as exc:
        raise AssertionError(f"stdout is not exactly one JSON object ({exc}):\n{stdout[:2000]}") from None
    assert isinstance(obj, dict), f"stdout holds a JSON {type(obj).__name__}, not an object"
    assert obj.get("schema") == SCHEMA, obj.get("schema")
    if "error" in obj:  # stopped before a verdict: the error object
        assert {"error", "errors", "exit_code", "exit_name"} <= set(obj), obj
    else:
        missing = [key for key in RUN_KEYS if key not in obj]
        assert not missing, f"the run object lacks {missing}: {obj}"
        assert isinstance(obj["slos"], list) and isinstance(obj["reports"], dict)
    assert obj["exit_name"] == ExitCode(obj["exit_code"]).name, obj
    return obj


@pytest.fixture(autouse=True)
def _no_harness_env(monkeypatch) -> None:
    """A developer's or CI's own HARNESS_* variables must not change what these tests see."""
    for name in list(os.environ):
        if name.startswith("HARNESS_"):
            monkeypatch.delenv(name)


# --- --version and --help


def test_version(capsys) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    pattern = rf"harness {re.escape(__version__)} \(Python \d+\.\d+\.\d+\S*, Locust \S+\)"
    assert re.fullmatch(pattern, out), out


def test_every_command_has_its_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The core's commands; plugins' (harness.commands) bring their own help and are tested with them.
    monkeypatch.setattr(cli_module, "_plugin_commands", lambda sub: None)
    sub = next(a for a in _parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMAND_EXITS)
    assert set(EXIT_MEANINGS) == set(ExitCode)


@pytest.mark.parametrize("command", sorted(COMMAND_EXITS))
def test_help_lists_writes_exit_codes_and_examples(command: str, capsys) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    for heading in ("writes:", "exit codes:", "examples:"):
        assert f"\n{heading}\n" in out, (command, heading)
    codes = out.split("\nexit codes:\n", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^  (\d)  ([A-Z_]+) ", codes, re.MULTILINE)
    assert listed == [(str(int(code)), code.name) for code in COMMAND_EXITS[command]], codes


def test_run_help_names_the_run_folder_and_the_environment(capsys) -> None:
    main(["run", "--help"])
    out = capsys.readouterr().out
    for name in ("journal.jsonl", "summary.json", "junit.xml", "report.html", "harness.log",
                 "HARNESS_RUNS_DIR", "HARNESS_SEED", "HARNESS_WORKERS", "HARNESS_NO_PROGRESS"):
        assert name in out, name


def test_top_level_help_lists_every_exit_code(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"{int(code)}  {code.name}" in out for code in ExitCode)


# --- validate --json


def test_validate_json_good_and_bad(scenario_file, capsys) -> None:
    good, bad = scenario_file(GOOD, "good.yaml"), scenario_file(BAD, "bad.yaml")
    assert main(["validate", str(good), str(bad), "--json"]) == ExitCode.USAGE_ERROR
    captured = capsys.readouterr()
    obj = json.loads(captured.out)
    assert obj["command"] == "validate" and obj["ok"] is False
    assert (obj["exit_code"], obj["exit_name"]) == (2, "USAGE_ERROR")
    first, second = obj["files"]
    assert first == {"path": str(good), "ok": True, "name": "demo"}
    assert second["ok"] is False and second["exit_code"] == 2
    assert len(second["errors"]) == 1 and second["errors"][0].startswith(f"{bad}:3: load.duration")
    assert f"ok: {good}" in captured.err and f"{bad}:3:" in captured.err  # the human lines: stderr


def test_validate_json_all_good(scenario_file, capsys) -> None:
    assert main(["validate", "--json", str(scenario_file(GOOD))]) == ExitCode.PASS
    obj = json.loads(capsys.readouterr().out)
    assert obj["ok"] is True and obj["exit_code"] == 0 and obj["files"][0]["ok"] is True


# --- list --json


def test_list_json_has_every_section(capsys) -> None:
    assert main(["list", "--json", "--dir", "scenarios"]) == 0
    obj = json.loads(capsys.readouterr().out)
    sections = obj["sections"]
    assert set(sections) == {"scenarios", "users", "stacks", "models", "metrics", "features", "exit_codes"}
    assert {"kind": "triton"}.items() <= sections["stacks"][0].items()
    assert any(r["path"].endswith("quickstart.yaml") and r["valid"] for r in sections["scenarios"])
    assert [(r["code"], r["name"]) for r in sections["exit_codes"]] == [(int(c), c.name) for c in ExitCode]


def test_list_json_one_section(capsys) -> None:
    assert main(["list", "users", "--json"]) == 0
    sections = json.loads(capsys.readouterr().out)["sections"]
    assert list(sections) == ["users"] and "triton_http" in {r["name"] for r in sections["users"]}


def test_list_text_and_json_say_the_same(capsys) -> None:
    main(["list", "metrics"])
    text = capsys.readouterr().out
    main(["list", "metrics", "--json"])
    records = json.loads(capsys.readouterr().out)["sections"]["metrics"]
    assert all(f"  {r['label']}  {r['meaning']}" in text for r in records)


# --- HARNESS_* environment variables


def _args(argv: list[str], env: dict[str, str]) -> Any:
    args = _parser().parse_args(argv)
    apply_env(args, env)
    return args


def test_env_fills_options_the_command_line_left_unset(tmp_path: Path) -> None:
    env = {"HARNESS_RUNS_DIR": str(tmp_path), "HARNESS_SEED": "7", "HARNESS_WORKERS": "3",
           "HARNESS_NO_PROGRESS": "yes", "HARNESS_JSON": "true"}
    args = _args(["run", "x.yaml"], env)
    got = (args.runs_dir, args.seed, args.workers, args.no_progress, args.json)
    assert got == (tmp_path, 7, 3, True, True)


def test_a_flag_beats_the_environment(tmp_path: Path) -> None:
    env = {"HARNESS_RUNS_DIR": "/elsewhere", "HARNESS_SEED": "7", "HARNESS_WORKERS": "3"}
    argv = ["soak", "x.yaml", "--for", "1h", "--runs-dir", str(tmp_path), "--seed", "1", "--workers", "0"]
    args = _args(argv, env)
    assert (args.runs_dir, args.seed, args.workers) == (tmp_path, 1, 0)


def test_defaults_without_flag_or_variable() -> None:
    args = _args(["run", "x.yaml"], {})
    assert (args.runs_dir, args.seed, args.workers, args.no_progress, args.json) == (Path("runs"), None, 0,
                                                                                      False, False)


@pytest.mark.parametrize(("name", "value"), [("HARNESS_SEED", "abc"), ("HARNESS_WORKERS", "-2"),
                                             ("HARNESS_NO_PROGRESS", "maybe"), ("HARNESS_JSON", "2")])
def test_a_bad_variable_is_one_line_naming_it(name: str, value: str, scenario_file, monkeypatch,
                                              capsys) -> None:
    monkeypatch.setenv(name, value)
    assert main(["run", str(scenario_file(GOOD)), "--runs-dir", "unused"]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and repr(value) in err, err
    with pytest.raises(UsageError, match=name):
        _args(["run", "x.yaml"], {name: value})


def test_a_flag_given_leaves_a_bad_variable_unread(scenario_file, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HARNESS_SEED", "abc")
    path = scenario_file(BAD)
    assert main(["run", str(path), "--seed", "3"]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert "HARNESS_SEED" not in err and "load.duration" in err


def test_a_command_without_the_option_ignores_its_variable(monkeypatch, capsys) -> None:
    monkeypatch.setenv("HARNESS_SEED", "abc")
    assert main(["list", "exit-codes"]) == 0


def test_harness_json_turns_json_on(scenario_file, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HARNESS_JSON", "1")
    assert main(["validate", str(scenario_file(GOOD))]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


# --- run --json


def test_run_json_bad_scenario_is_an_error_object(scenario_file, tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    assert main(["run", str(scenario_file(BAD)), "--json", "--runs-dir", str(runs)]) == ExitCode.USAGE_ERROR
    captured = capsys.readouterr()
    obj = parse_run_json(captured.out)
    assert (obj["command"], obj["exit_code"], obj["exit_name"]) == ("run", 2, "USAGE_ERROR")
    assert "load.duration" in obj["error"]
    assert captured.err.strip().startswith("harness: ") and "load.duration" in captured.err
    assert not runs.exists()


def test_soak_json_bad_flag_is_an_error_object(scenario_file, tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    code = main(["soak", str(scenario_file(GOOD)), "--for", "8x", "--json", "--runs-dir", str(runs)])
    assert code == ExitCode.USAGE_ERROR
    obj = parse_run_json(capsys.readouterr().out)
    assert obj["command"] == "soak" and obj["error"].startswith("--for: bad duration")
    assert not runs.exists()


def test_command_line_error_with_json(capsys) -> None:
    assert main(["run", "--json"]) == ExitCode.USAGE_ERROR
    captured = capsys.readouterr()
    obj = json.loads(captured.out)
    assert obj["exit_code"] == 2 and "scenario" in obj["error"]
    assert "usage: harness run" in captured.err


def test_an_unexpected_exception_exits_internal_error(monkeypatch, capsys) -> None:
    import harness.listing

    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(harness.listing, "section_data", broken)
    assert main(["list", "--json"]) == ExitCode.INTERNAL_ERROR
    captured = capsys.readouterr()
    assert json.loads(captured.out)["exit_name"] == "INTERNAL_ERROR"
    assert "RuntimeError: boom" in captured.err


class _FakeVerdict:
    word, code, reason = "fail", ExitCode.SLO_FAILED, "1 failed: p99_ms < 250 (measured 300)"
    slos: list[dict[str, Any]] = []  # the SLO table printed after the run (none here)


class _FakeRun:
    """Stands in for harness.runner.Run: writes what a finished run writes, and prints as a run does."""

    SLO = {"name": "p99_ms < 250", "metric": "p99_ms", "op": "<", "threshold": 250.0, "measured": 300.0,
           "passed": False, "samples": 100, "window": "all", "detail": "measured 300 breaks < 250"}

    def __init__(self, scenario: Any, scenario_file: Path, runs_root: Path, **_: Any):
        self.run_dir = runs_root / f"demo-{len(list(runs_root.glob('demo-*'))) if runs_root.exists() else 0}"
        self.run_dir.mkdir(parents=True)

    def execute(self) -> tuple[_FakeVerdict, dict[str, Any]]:
        print("progress: 100 requests")  # Python's stdout
        os.write(1, b"a child process writing to fd 1\n")  # the descriptor itself
        summary = {"run_dir": str(self.run_dir), "verdict": "fail", "exit_code": 1, "exit_name": "SLO_FAILED",
                   "reason": _FakeVerdict.reason, "seed": 42, "totals": {"requests": 100}, "slos": [self.SLO]}
        for name in ("summary.json", "journal.jsonl", "junit.xml", "report.html"):
            (self.run_dir / name).write_text(json.dumps(summary), encoding="utf-8")
        return _FakeVerdict(), summary


def test_run_json_reads_the_run_folder(scenario_file, tmp_path: Path, monkeypatch, capfd) -> None:
    import harness.runner

    monkeypatch.setattr(harness.runner, "Run", _FakeRun)
    code = main(["run", str(scenario_file(GOOD)), "--json", "--runs-dir", str(tmp_path / "runs")])
    captured = capfd.readouterr()
    obj = parse_run_json(captured.out)
    assert code == ExitCode.SLO_FAILED
    assert (obj["kind"], obj["verdict"], obj["exit_name"]) == ("run", "fail", "SLO_FAILED")
    assert obj["reason"] == _FakeVerdict.reason and obj["seed"] == 42
    assert obj["slos"] == [_FakeRun.SLO]
    run_dir = Path(obj["run_dir"])
    assert obj["reports"]["summary"] == str(run_dir / "summary.json")
    assert "log" not in obj["reports"]  # only the reports that exist
    for text in ("run folder:", "verdict: FAIL", "progress: 100 requests", "a child process writing"):
        assert text in captured.err, text


def test_run_json_series(scenario_file, tmp_path: Path, monkeypatch, capfd) -> None:
    import harness.runner

    monkeypatch.setattr(harness.runner, "Run", _FakeRun)
    code = main(["run", str(scenario_file(GOOD)), "--json", "--repeat", "2", "--runs-dir", str(tmp_path)])
    obj = parse_run_json(capfd.readouterr().out)
    assert code == obj["exit_code"] == ExitCode.SLO_FAILED
    assert (obj["kind"], obj["repeat"], obj["completed"]) == ("series", 2, 2)
    assert Path(obj["run_dir"]).name.startswith("demo-series-")
    assert {"series", "junit", "html"} <= set(obj["reports"])
    assert obj["slos"][0]["name"] == "p99_ms < 250" and obj["slos"][0]["passes"] == 0
    assert len(obj["repetitions"]) == 2
