"""`harness run FOLDER`: the library's own logic, with a stand-in for the runs (the real runs of a
library are in tests/integration/test_library_real.py)."""

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness.errors import UsageError
from harness.exitcodes import ExitCode
from harness.library_run import _entry, run_library, scenario_files, table_lines
from harness.scenario import Scenario, load_scenario

QUICKSTART = Path("scenarios/quickstart.yaml")


def _library(tmp_path: Path, names: list[str], source: str = "") -> Path:
    folder = tmp_path / "lib"
    (folder / "sub").mkdir(parents=True)
    for name in names:
        text = QUICKSTART.read_text().replace("name: quickstart", f"name: {name}") + source
        (folder / f"{name}.yaml").write_text(text)
    return folder


def test_every_scenario_runs_in_name_order_and_the_worst_code_wins(tmp_path: Path) -> None:
    folder = _library(tmp_path, ["a-one", "b-two", "c-three"], "source: [found-here]\n")
    codes = {"a-one": ExitCode.PASS, "b-two": ExitCode.SLO_FAILED, "c-three": ExitCode.PASS}
    shutil.copy(folder / "a-one.yaml", folder / "sub" / "z-not-run.yaml")  # a library of its own
    ran: list[str] = []

    def run_file(path: Path, scenario: Scenario, root: Path) -> tuple[int, Path | None, str]:
        ran.append(scenario.name)
        assert root.parent == tmp_path / "runs"  # each run goes under the library's folder
        return int(codes[scenario.name]), root / scenario.name, "because"

    code, library_dir = run_library(folder, tmp_path / "runs", run_file)
    assert ran == ["a-one", "b-two", "c-three"]
    assert code == ExitCode.SLO_FAILED
    data = json.loads((library_dir / "library.json").read_text())
    assert data["planned"] == data["completed"] == 3
    assert [e["exit_name"] for e in data["scenarios"]] == ["PASS", "SLO_FAILED", "PASS"]
    assert data["scenarios"][0]["source"] == ["found-here"]
    suite = ET.fromstring((library_dir / "junit.xml").read_bytes())
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["b-two"]


def test_an_interrupted_scenario_stops_the_library(tmp_path: Path) -> None:
    folder = _library(tmp_path, ["a-one", "b-two", "c-three"])
    ran: list[str] = []

    def run_file(path: Path, scenario: Scenario, root: Path) -> tuple[int, Path | None, str]:
        ran.append(scenario.name)
        return int(ExitCode.INTERRUPTED), None, "SIGTERM"

    code, library_dir = run_library(folder, tmp_path / "runs", run_file)
    assert ran == ["a-one"] and code == ExitCode.INTERRUPTED
    data = json.loads((library_dir / "library.json").read_text())
    assert data["planned"] == 3 and data["completed"] == 1


def test_a_bad_file_is_named_and_nothing_runs(tmp_path: Path) -> None:
    folder = _library(tmp_path, ["a-one", "b-two"])
    (folder / "broken.yaml").write_text(QUICKSTART.read_text().replace("duration:", "duraton:"))

    def run_file(path: Path, scenario: Scenario, root: Path) -> tuple[int, Path | None, str]:
        raise AssertionError("no scenario may start while a file is bad")

    with pytest.raises(UsageError) as err:
        run_library(folder, tmp_path / "runs", run_file)
    assert "broken.yaml" in str(err.value) and "duraton" in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_an_empty_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no scenario files"):
        scenario_files(tmp_path)


def test_the_table_says_expectation_source_and_outcome() -> None:
    path = Path("scenarios/repro/triton-otel-signal11.yaml")
    lines = table_lines([_entry(path, load_scenario(path), 1, None, "not reproduced", 12.3)])
    assert lines[0].split() == ["scenario", "expect", "source", "result", "s"]
    assert lines[1].split()[:3] == ["triton-otel-signal11", "reproduced", "seeds/000"]
    assert "exit 1 SLO_FAILED" in lines[1] and lines[1].endswith("12")
