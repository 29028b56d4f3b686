"""junit.xml: the suite's counts (tests, failures, errors, skipped) match its test cases, for every
verdict of a run, a series and a soak. CI systems trust the counts; an interrupted run's suite
once said tests="1" and held two cases."""

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from harness.exitcodes import ExitCode
from harness.repeat import Repetition, judge_series
from harness.scenario import Scenario
from harness.soak.report import build_soak_junit
from reports.build import write_reports
from reports.junit import build_junit
from reports.series_junit import build_series_junit
from tests.unit.helpers import synthetic_records

OUTCOMES = {"failure": "failures", "error": "errors", "skipped": "skipped"}
TWO_SLOS = ["error_rate < 0.01", "p99_ms < 100"]


def checked(xml: bytes) -> dict[str, int]:
    """The suite's counts, once they are shown to be the cases' own."""
    suite = ET.fromstring(xml)
    cases = suite.findall("testcase")
    assert suite.get("tests") == str(len(cases))
    counts = {"tests": len(cases)}
    for child, attribute in OUTCOMES.items():
        counts[attribute] = sum(1 for case in cases if case.find(child) is not None)
        assert suite.get(attribute) == str(counts[attribute]), (attribute, xml.decode())
    assert all(sum(case.find(child) is not None for child in OUTCOMES) <= 1 for case in cases)
    return counts


def scenario(expect: str = "pass", slo: list[Any] | None = None) -> Scenario:
    return Scenario.model_validate({
        "name": "unit", "stack": {"kind": "external", "url": "http://127.0.0.1:1", "model": "m"},
        "load": {"user": "triton_http", "duration": 10},
        "slo": TWO_SLOS if slo is None else slo, "expect": expect,
    })


def event(name: str, t: float, **fields: Any) -> dict[str, Any]:
    return {"type": "event", "event": name, "t": t, **fields}


def without(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") != name]


def started(name: str, **fields: Any) -> list[dict[str, Any]]:
    """A run that ended before any load: its start, one event, its end."""
    return [event("run_started", 0.0), event(name, 1.0, **fields), event("run_ended", 2.0)]


# verdict, journal, scenario, expected counts (tests, failures, errors)
RUNS: list[tuple[str, list[dict[str, Any]], Scenario, tuple[int, int, int]]] = [
    ("pass", synthetic_records(), scenario(), (2, 0, 0)),
    ("pass", synthetic_records(), scenario(slo=[]), (1, 0, 0)),  # no SLO: the run's own case
    ("fail", synthetic_records(failing={3}), scenario(), (2, 1, 0)),
    ("fail", [r for r in synthetic_records() if r["type"] != "second"], scenario(slo=[]), (1, 1, 0)),
    ("reproduced", synthetic_records(failing={3}), scenario("reproduced", ["error_rate > 0.01"]), (1, 0, 0)),
    ("not_reproduced", synthetic_records(), scenario("reproduced", ["error_rate > 0.01"]), (1, 1, 0)),
    ("stack_failed", started("stack_failed", error="never ready"), scenario(), (1, 0, 1)),
    ("usage_error", started("scenario_invalid", error="bad field"), scenario(), (1, 0, 1)),
    ("interrupted", synthetic_records() + [event("interrupted", 8.0, signal="SIGTERM")], scenario(),
     (3, 0, 1)),
    ("interrupted", synthetic_records(failing={3}) + [event("interrupted", 8.0, signal="SIGINT")], scenario(),
     (3, 1, 1)),
    ("error", synthetic_records() + [event("internal_error", 8.0, error="boom")], scenario(), (3, 0, 1)),
    ("incomplete", without(synthetic_records(), "run_ended"), scenario(), (3, 0, 1)),
]


@pytest.mark.parametrize("word, records, scene, expected", RUNS,
                         ids=[f"{i}-{r[0]}" for i, r in enumerate(RUNS)])
def test_run_junit_counts_match_its_cases(tmp_path: Path, word: str, records: list[dict[str, Any]],
                                          scene: Scenario, expected: tuple[int, int, int]) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    verdict, _ = write_reports(tmp_path, scene)
    assert verdict.word == word
    counts = checked((tmp_path / "junit.xml").read_bytes())
    assert (counts["tests"], counts["failures"], counts["errors"], counts["skipped"]) == (*expected, 0)


def test_a_verdict_word_the_writer_does_not_know_is_judged_by_its_exit_code() -> None:
    """A new verdict (e.g. a run an SLO aborted) needs no change to the writer."""
    slo = {"name": "error_rate < 0.01", "metric": "error_rate", "op": "<", "threshold": 0.01, "measured": 0.2,
           "passed": False, "samples": 100, "detail": "0.2 breaks < 0.01"}
    base = {"scenario": "unit", "run_dir": "/r", "totals": {}, "reason": "aborted at t=5s"}
    aborted = checked(build_junit({**base, "verdict": "aborted", "exit_code": 1, "exit_name": "SLO_FAILED",
                                   "slos": [slo]}))
    assert (aborted["tests"], aborted["failures"], aborted["errors"]) == (1, 1, 0)
    odd = checked(build_junit({**base, "verdict": "whatever", "exit_code": 4, "exit_name": "INTERNAL_ERROR",
                               "slos": [slo]}))
    assert (odd["tests"], odd["failures"], odd["errors"]) == (2, 1, 1)


def rep(index: int, verdict: str, passed: list[bool], code: int | None = None) -> Repetition:
    slos = [{"passed": p, "measured": 0.0 if p else 1.0, "samples": 100} for p in passed]
    exit_code = code if code is not None else (0 if verdict in ("pass", "reproduced") else 1)
    return Repetition(index, f"/s/run-{index}", verdict, exit_code, f"repetition {verdict}", 1, slos)


# series verdict, repetitions, repeat, SLOs, stopped_by, expected (tests, failures, errors, skipped)
SERIES: list[tuple[str, list[Repetition], int, list[str], str, tuple[int, int, int, int]]] = [
    ("pass", [rep(1, "pass", [True, True]), rep(2, "pass", [True, True])], 2, TWO_SLOS, "", (2, 0, 0, 0)),
    ("fail", [rep(1, "pass", [True, True]), rep(2, "fail", [True, False])], 2, TWO_SLOS, "", (2, 1, 0, 0)),
    ("fail", [rep(1, "pass", []), rep(2, "fail", [])], 2, [], "", (1, 1, 0, 0)),  # failed outside any SLO
    ("pass", [rep(1, "pass", [])], 1, [], "", (1, 0, 0, 0)),
    ("interrupted", [rep(1, "pass", [True, True])], 3, TWO_SLOS, "SIGINT", (3, 0, 1, 2)),
    ("stack_failed", [rep(1, "stack_failed", [], code=int(ExitCode.STACK_FAILED))], 2, TWO_SLOS, "",
     (3, 0, 1, 2)),
    ("error", [rep(1, "pass", [True, True]), rep(2, "error", [True, True], code=4)], 2, TWO_SLOS, "",
     (3, 0, 1, 2)),
]


@pytest.mark.parametrize("word, reps, repeat, slos, stopped_by, expected", SERIES,
                         ids=[f"{i}-{s[0]}" for i, s in enumerate(SERIES)])
def test_series_junit_counts_match_its_cases(word: str, reps: list[Repetition], repeat: int, slos: list[str],
                                             stopped_by: str, expected: tuple[int, int, int, int]) -> None:
    series = judge_series(scenario("pass", slos), reps, repeat, "/s", stopped_by)
    assert series["verdict"] == word
    counts = checked(build_series_junit(series))
    assert (counts["tests"], counts["failures"], counts["errors"], counts["skipped"]) == expected


def cycle(number: int, verdict: str, partial: bool = False) -> dict[str, Any]:
    return {"cycle": number, "verdict": verdict, "reason": f"cycle {verdict}", "partial": partial}


def soak(verdict: str, code: int, cycles: list[dict[str, Any]],
         limits: tuple[bool, ...] = ()) -> dict[str, Any]:
    return {"scenario": "unit", "verdict": verdict, "exit_code": code, "reason": f"soak {verdict}",
            "totals": {"duration_s": 30.0}, "cycles": cycles,
            "limits": [{"name": f"limit {i}", "passed": p, "detail": "d"} for i, p in enumerate(limits)]}


SOAKS: list[tuple[dict[str, Any], tuple[int, int, int, int]]] = [
    (soak("pass", 0, [cycle(1, "pass"), cycle(2, "pass")], (True,)), (3, 0, 0, 0)),
    (soak("fail", 1, [cycle(1, "pass"), cycle(2, "fail"), cycle(3, "fail", partial=True)]), (3, 1, 0, 1)),
    (soak("fail", 1, [cycle(1, "pass")], (False,)), (2, 1, 0, 0)),
    (soak("stack_failed", 3, []), (1, 0, 1, 0)),  # nothing soaked: the soak's own case says why
    (soak("pass", 0, []), (1, 0, 0, 0)),
    (soak("interrupted", 5, [cycle(1, "pass"), cycle(2, "interrupted", partial=True)]), (2, 0, 1, 0)),
    (soak("error", 4, [cycle(1, "pass"), cycle(2, "pass")]), (3, 0, 1, 0)),  # the main journal's error
]


@pytest.mark.parametrize("summary, expected", SOAKS,
                         ids=[f"{i}-{s[0]['verdict']}" for i, s in enumerate(SOAKS)])
def test_soak_junit_counts_match_its_cases(summary: dict[str, Any],
                                           expected: tuple[int, int, int, int]) -> None:
    counts = checked(build_soak_junit(summary))
    assert (counts["tests"], counts["failures"], counts["errors"], counts["skipped"]) == expected
