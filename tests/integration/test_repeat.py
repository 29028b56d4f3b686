"""`repeat: 2` against a real tritonserver: two full runs in one series folder, judged N of M."""

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness.exitcodes import ExitCode
from tests.conftest import journal_events, only_run_dir, run_harness
from tests.reportpage import chart_specs

pytestmark = pytest.mark.real

SCENARIO = """\
name: series
stack: {kind: triton, model: identity, instances: 2}
load: {user: triton_http, users: 8, duration: 4s}
repeat: 2
slo:
  - "error_rate < 0.01"
  - {metric: p99_ms, max: 1000, pass_in: 1 of 2}
"""


def test_series_of_two_runs_writes_series_json_and_one_junit_case_per_slo(tmp_path: Path) -> None:
    path = tmp_path / "series.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    result = run_harness("run", str(path), "--runs-dir", "runs", "--no-progress", cwd=tmp_path, timeout=240)
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    assert "series verdict: PASS" in result.stdout
    series_dir = only_run_dir(tmp_path / "runs")
    series = json.loads((series_dir / "series.json").read_text())
    assert (series["verdict"], series["repeat"], series["completed"]) == ("pass", 2, 2)
    run_dirs = [tmp_path / r["run_dir"] for r in series["repetitions"]]
    assert len(set(run_dirs)) == 2 and all(d.parent == series_dir for d in run_dirs)
    for run_dir in run_dirs:  # each repetition is a whole run against its own server
        assert journal_events(run_dir, "stack_ready") and journal_events(run_dir, "run_ended")
        assert json.loads((run_dir / "summary.json").read_text())["verdict"] == "pass"
    errors, p99 = series["slos"]
    assert (errors["required"], errors["of"], errors["passes"], errors["status"]) == (2, 2, 2, "held")
    assert (p99["pass_in"], p99["required"], p99["passes"], p99["status"]) == ("1 of 2", 1, 2, "held")
    for run in p99["runs"]:
        low, high = run["ci"]
        assert run["samples"] > 500 and low <= run["measured"] <= high and run["confidence"] == 0.95
    assert all(run["ci"][0] == 0.0 for run in errors["runs"])  # no error: Wilson's low end is 0
    cases = ET.parse(series_dir / "junit.xml").getroot().findall("testcase")
    assert [c.get("name") for c in cases] == ["error_rate < 0.01", "p99_ms <= 1000"]
    assert all(c.find("failure") is None for c in cases)
    assert "held in 2 of 2 repetitions run (needs 1 of 2)" in (cases[1].findtext("system-out") or "")
    assert chart_specs((series_dir / "series.html").read_text())
