import json
from pathlib import Path
from xml.etree import ElementTree as ET

from harness.analysis import RunData
from harness.exitcodes import ExitCode
from harness.scenario import Scenario
from harness.verdict import decide
from reports.build import write_reports
from tests.reportpage import time_charts
from tests.unit.helpers import synthetic_records


def scenario(expect: str = "pass", slo: list[object] | None = None) -> Scenario:
    return Scenario.model_validate({
        "name": "unit",
        "stack": {"kind": "external", "url": "http://127.0.0.1:1", "model": "m"},
        "load": {"user": "triton_http", "duration": 10},
        "slo": slo if slo is not None else ["error_rate < 0.01", "p99_ms < 100"],
        "expect": expect,
    })


def test_pass_and_fail() -> None:
    good = RunData.from_records(synthetic_records())
    assert decide(scenario(), good).code == ExitCode.PASS
    bad = RunData.from_records(synthetic_records(failing={3}))
    verdict = decide(scenario(), bad)
    assert verdict.word == "fail" and verdict.code == ExitCode.SLO_FAILED
    assert "error_rate" in verdict.reason


def test_reproduction_passes_when_the_failure_shows() -> None:
    repro = scenario("reproduced", ["error_rate > 0.01"])
    assert decide(repro, RunData.from_records(synthetic_records(failing={3}))).word == "reproduced"
    missed = decide(repro, RunData.from_records(synthetic_records()))
    assert missed.word == "not_reproduced" and missed.code == ExitCode.SLO_FAILED


def test_stack_failure_and_incomplete_runs() -> None:
    failed = RunData.from_records([{"type": "event", "event": "stack_failed", "t": 1, "error": "boom"}])
    assert decide(scenario(), failed).code == ExitCode.STACK_FAILED
    cut = [r for r in synthetic_records() if r.get("event") != "run_ended"]
    verdict = decide(scenario(), RunData.from_records(cut))
    assert verdict.word == "incomplete" and verdict.code == ExitCode.INTERRUPTED


def test_reports_written(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    records = synthetic_records(failing={3})
    records.insert(3, {"type": "event", "event": "window", "t": 5, "name": "fault", "start": 5.0, "end": 6.0})
    journal.write_text("\n".join(json.dumps(r) for r in records) + "\n{torn", encoding="utf-8")
    verdict, summary = write_reports(tmp_path, scenario())
    assert verdict.word == "fail"
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["schema"] == "serving-harness/summary/v1"
    assert saved["totals"]["requests"] == 1000 and saved["totals"]["errors_by_kind"] == {"http_503": 50}
    assert [s["passed"] for s in saved["slos"]] == [False, True]
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["error_rate < 0.01", "p99_ms < 100"]
    assert cases[0].find("failure") is not None and cases[1].find("failure") is None
    html = (tmp_path / "report.html").read_text()
    charts = time_charts(html)
    assert len(charts) == 2 and "class='verdict fail'" in html
    assert all(chart["bands"] for chart in charts)  # the window is shaded
    assert "<script src" not in html and "<link" not in html  # no external assets: it opens offline


def test_a_run_that_completed_no_request_does_not_pass() -> None:
    records = [r for r in synthetic_records() if r["type"] != "second"]
    verdict = decide(scenario(slo=[]), RunData.from_records(records))
    assert verdict.word == "fail" and "no request" in verdict.reason
