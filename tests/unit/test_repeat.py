"""Series: `repeat` and `pass_in` validation, the N-of-M judgement, and the series loop's reports."""

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from harness.errors import UsageError
from harness.exitcodes import ExitCode
from harness.repeat import Repetition, cis_overlap, judge_series
from harness.scenario import Scenario, load_scenario
from harness.series_run import run_series, series_length
from tests.reportpage import chart_specs
from tests.unit.helpers import scenario_error

BASE = """\
name: demo
stack:
  kind: triton
  model: identity
load:
  user: triton_http
  duration: 5s
repeat: 3
slo:
  - "error_rate < 0.01"
  - {metric: p99_ms, max: 50, pass_in: 2 of 3}
"""


def test_pass_in_in_both_forms(scenario_file) -> None:
    scenario = load_scenario(scenario_file(BASE))
    assert scenario.repeat == 3 and scenario.slo[0].pass_in is None
    assert scenario.slo[1].pass_in is not None and scenario.slo[1].pass_in.text == "2 of 3"
    other = load_scenario(scenario_file(BASE.replace("pass_in: 2 of 3", "pass_in: {passes: 1, of: 3}")))
    assert other.slo[1].pass_in is not None and other.slo[1].pass_in.passes == 1


@pytest.mark.parametrize(("change", "expected"), [
    ("pass_in: two of 3", ":11: slo.1.pass_in: cannot read pass_in 'two of 3'; write `N of M`"),
    ("pass_in: 4 of 3", ":11: slo.1.pass_in: pass_in 4 of 3: N must not exceed M"),
    ("pass_in: 0 of 3", ":11: slo.1.pass_in.passes: Input should be greater than or equal to 1"),
    ("pass_in: 2 of 4", ":11: slo.1.pass_in: 2 of 4 counts 4 repetitions but the scenario runs 3"),
    ("pass_in: {passes: 2, of: 3, tries: 3}", ":11: slo.1.pass_in.tries: unknown key"),
])
def test_pass_in_errors_name_file_line_and_field(scenario_file, change: str, expected: str) -> None:
    path = scenario_file(BASE.replace("pass_in: 2 of 3", change))
    message = scenario_error(path)
    assert message.startswith(f"{path}{expected}"), message
    assert "\n" not in message


def test_repeat_must_be_positive(scenario_file) -> None:
    path = scenario_file(BASE.replace("repeat: 3", "repeat: 0"))
    assert scenario_error(path).startswith(f"{path}:8: repeat: Input should be greater than or equal to 1")


def test_repeat_flag_must_agree_with_pass_in(scenario_file) -> None:
    path = scenario_file(BASE)
    scenario = load_scenario(path)
    assert series_length(scenario, path, None) == 3
    assert series_length(scenario, path, 1) == 1  # one plain run: pass_in does not apply
    with pytest.raises(UsageError, match=rf"^{path}:11: slo.1.pass_in: 2 of 3 counts 3 .* asks for 5"):
        series_length(scenario, path, 5)
    with pytest.raises(UsageError, match="--repeat 0"):
        series_length(scenario, path, 0)
    plain = scenario_file(BASE.replace("pass_in: 2 of 3", "name: p99"), "plain.yaml")
    assert series_length(load_scenario(plain), plain, 5) == 5


def unit_scenario(expect: str = "pass") -> Scenario:
    return Scenario.model_validate({
        "name": "unit", "stack": {"kind": "external", "url": "http://127.0.0.1:1", "model": "m"},
        "load": {"user": "triton_http", "duration": 1}, "repeat": 3, "expect": expect,
        "slo": ["error_rate < 0.01", {"metric": "p99_ms", "max": 50, "pass_in": "2 of 3"}],
    })


def slo_result(passed: bool, measured: float, ci: list[float | None] | None = None) -> dict[str, Any]:
    return {"passed": passed, "measured": measured, "samples": 100, "ci": ci, "confidence": 0.95,
            "marginal": False}


def rep(index: int, errors_ok: bool, p99: float, verdict: str | None = None) -> Repetition:
    slos = [slo_result(errors_ok, 0.0 if errors_ok else 0.2), slo_result(p99 <= 50, p99, [p99 - 2, p99 + 2])]
    word = verdict or ("pass" if errors_ok and p99 <= 50 else "fail")
    code = {"pass": 0, "fail": 1, "stack_failed": 3, "interrupted": 5}[word]
    return Repetition(index, f"runs/s/r{index}", word, code, "why", 7, slos if code < 2 else [])


def test_n_of_m_passes_when_enough_repetitions_hold() -> None:
    series = judge_series(unit_scenario(), [rep(1, True, 40), rep(2, True, 60), rep(3, True, 45)], 3, "s")
    assert (series["verdict"], series["exit_code"]) == ("pass", 0)
    errors, p99 = series["slos"]
    assert (errors["passes"], errors["required"], errors["status"]) == (3, 3, "held")
    assert (p99["passes"], p99["required"], p99["pass_in"], p99["status"]) == (2, 2, "2 of 3", "held")
    assert [r["measured"] for r in p99["runs"]] == [40, 60, 45] and p99["runs"][1]["ci"] == [58, 62]
    assert p99["spread"]["min"] == 40 and p99["spread"]["max"] == 60 and p99["cis_overlap"] is False


def test_an_slo_without_pass_in_must_hold_every_time() -> None:
    series = judge_series(unit_scenario(), [rep(1, True, 40), rep(2, False, 40), rep(3, True, 70)], 3, "s")
    assert (series["verdict"], series["exit_code"]) == ("fail", ExitCode.SLO_FAILED)
    assert series["slos"][0]["status"] == "failed" and series["slos"][1]["status"] == "held"
    assert series["reason"] == "1 failed: error_rate < 0.01 (held in 2 of 3, needs 3)"
    too_few = judge_series(unit_scenario(), [rep(1, True, 60), rep(2, True, 40), rep(3, True, 70)], 3, "s")
    assert too_few["verdict"] == "fail" and too_few["slos"][1]["passes"] == 1


def test_reproduction_in_n_of_m() -> None:
    reps = [rep(i, True, p) for i, p in ((1, 10), (2, 99), (3, 9))]
    series = judge_series(unit_scenario("reproduced"), reps, 3, "s")
    assert (series["verdict"], series["exit_code"]) == ("reproduced", 0)


def test_a_repetition_without_verdict_decides_the_series() -> None:
    series = judge_series(unit_scenario(), [rep(1, True, 40), rep(2, True, 40, "stack_failed")], 3, "s")
    assert (series["verdict"], series["exit_code"]) == ("stack_failed", ExitCode.STACK_FAILED)
    assert series["reason"] == "repetition 2: why" and series["completed"] == 2
    assert series["slos"][1]["status"] == "undecided" and series["slos"][1]["judged"] == 1


def test_stopped_between_repetitions_is_interrupted() -> None:
    series = judge_series(unit_scenario(), [rep(1, False, 40)], 3, "s", stopped_by="SIGINT")
    assert (series["verdict"], series["exit_code"]) == ("interrupted", ExitCode.INTERRUPTED)
    assert series["reason"] == "stopped by SIGINT after 1 of 3 repetitions"
    assert series["slos"][0]["status"] == "failed"  # cannot reach 3 of 3 any more
    assert series["slos"][1]["status"] == "undecided"


def test_a_run_failed_outside_its_slos_counts_against_every_slo() -> None:
    idle = Repetition(2, "r2", "fail", 1, "the load completed no request at all", None,
                      [slo_result(True, 0.0), slo_result(True, 1.0)])
    series = judge_series(unit_scenario(), [rep(1, True, 40), idle, rep(3, True, 40)], 3, "s")
    assert series["verdict"] == "fail" and series["slos"][1]["passes"] == 2
    assert series["slos"][0]["status"] == "failed"


def test_cis_overlap() -> None:
    assert cis_overlap([[1, 3], [2, 4], [2.5, 5]]) is True
    assert cis_overlap([[1, 2], [3, 4]]) is False
    assert cis_overlap([[1, None], [3, 4]]) is True and cis_overlap([[1, 2]]) is None


class FakeRun:
    """A stand-in for harness.runner.Run: the series loop's own logic is what is tested here."""

    def __init__(self, root: Path, outcome: dict[str, Any]):
        self.run_dir = root / f"run-{outcome['index']}"
        self.outcome = outcome

    def execute(self) -> tuple[Any, dict[str, Any]]:
        self.run_dir.mkdir()
        word, code = self.outcome["verdict"], self.outcome["code"]
        summary = {"run_dir": str(self.run_dir), "verdict": word, "exit_code": code, "reason": word,
                   "seed": 1, "slos": self.outcome["slos"]}
        verdict = type("V", (), {"word": word, "code": ExitCode(code), "reason": word})()
        return verdict, summary


def test_series_loop_writes_series_json_junit_and_html(tmp_path: Path, scenario_file) -> None:
    path = scenario_file(BASE)
    outcomes = iter([
        {"index": 1, "verdict": "pass", "code": 0, "slos": [slo_result(True, 0.0), slo_result(True, 40)]},
        {"index": 2, "verdict": "fail", "code": 1, "slos": [slo_result(True, 0.0), slo_result(False, 60)]},
        {"index": 3, "verdict": "pass", "code": 0, "slos": [slo_result(True, 0.0), slo_result(True, 45)]},
    ])
    code = run_series(load_scenario(path), path, tmp_path / "runs", lambda r: FakeRun(r, next(outcomes)), 3)
    assert code == ExitCode.PASS
    (series_dir,) = (tmp_path / "runs").iterdir()
    assert series_dir.name.startswith("demo-series-")
    series = json.loads((series_dir / "series.json").read_text())
    assert series["schema"] == "serving-harness/series/v1" and series["completed"] == 3
    assert [r["run_dir"] for r in series["repetitions"]] == [str(series_dir / f"run-{i}") for i in (1, 2, 3)]
    cases = ET.parse(series_dir / "junit.xml").getroot().findall("testcase")
    assert [c.get("name") for c in cases] == ["error_rate < 0.01", "p99_ms <= 50"]
    assert all(c.find("failure") is None for c in cases)
    assert "held in 2 of 3" in (cases[1].findtext("system-out") or "")
    html = (series_dir / "series.html").read_text()
    assert chart_specs(html) and "2 of 3" in html and "run-2/report.html" in html


def test_series_stops_at_an_interrupted_repetition(tmp_path: Path, scenario_file) -> None:
    path = scenario_file(BASE)
    outcomes = iter([
        {"index": 1, "verdict": "pass", "code": 0, "slos": [slo_result(True, 0.0), slo_result(True, 40)]},
        {"index": 2, "verdict": "interrupted", "code": 5, "slos": [
            slo_result(True, 0.0), slo_result(True, 9)]},
    ])
    made: list[int] = []

    def factory(root: Path) -> FakeRun:
        made.append(1)
        return FakeRun(root, next(outcomes))

    assert run_series(load_scenario(path), path, tmp_path, factory, 3) == ExitCode.INTERRUPTED
    assert len(made) == 2
    (series_dir,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    series = json.loads((series_dir / "series.json").read_text())
    assert series["verdict"] == "interrupted" and series["completed"] == 2
    suite = ET.parse(series_dir / "junit.xml").getroot()
    assert suite.get("errors") == "1" and suite.get("skipped") == "2"  # 1 of 3 judged: both open


def test_sigterm_between_repetitions_stops_the_series_and_reports(tmp_path: Path, scenario_file) -> None:
    import os
    import signal

    path = scenario_file(BASE)
    before = signal.getsignal(signal.SIGTERM)

    class SignalledRun(FakeRun):
        def execute(self) -> tuple[Any, dict[str, Any]]:
            os.kill(os.getpid(), signal.SIGTERM)  # lands on the series' handler: no run has its own here
            return super().execute()

    outcome = {"index": 1, "verdict": "pass", "code": 0, "slos": [slo_result(True, 0.0), slo_result(True, 4)]}
    code = run_series(load_scenario(path), path, tmp_path, lambda root: SignalledRun(root, outcome), 3)
    assert code == ExitCode.INTERRUPTED
    (series_dir,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    series = json.loads((series_dir / "series.json").read_text())
    assert series["reason"] == "stopped by SIGTERM after 1 of 3 repetitions" and series["completed"] == 1
    assert signal.getsignal(signal.SIGTERM) is before  # the series puts the old handler back
