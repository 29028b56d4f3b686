"""The pytest plugin against a real Triton: a scenario file as tests, and the `harness_run` fixture.

Each test runs a pytest of its own (pytester, in a subprocess: the plugin must work from a clean
interpreter, and the harness's child must not share the outer test run's process).
"""

import json
from xml.etree import ElementTree as ET

import pytest

pytestmark = pytest.mark.real
pytest_plugins = ["pytester"]

SCENARIO = """\
name: plugin-{name}
stack: {{kind: triton, model: identity, instances: 2}}
load: {{user: triton_http, users: 4, duration: 5s}}
slo:
  - "error_rate < 0.01"
  - "p50_ms < 0.001"      # fails on purpose: no real request is that fast
"""


def test_a_scenario_file_runs_once_with_one_junit_case_per_slo(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", scenario_short=SCENARIO.format(name="file"))
    result = pytester.runpytest_subprocess("--junitxml=junit.xml", "--harness-runs-dir=runs", "-rf",
                                           timeout=240)
    result.assert_outcomes(passed=2, failed=1)
    run_dirs = list((pytester.path / "runs").iterdir())
    assert len(run_dirs) == 1, run_dirs  # one run serves every item
    summary = json.loads((run_dirs[0] / "summary.json").read_text())
    assert summary["verdict"] == "fail" and summary["totals"]["requests"] > 100
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    assert list(cases) == ["run", "slo[error_rate < 0.01]", "slo[p50_ms < 0.001]"]
    assert cases["run"].find("failure") is None and cases["slo[error_rate < 0.01]"].find("failure") is None
    failure = cases["slo[p50_ms < 0.001]"].find("failure")
    assert failure is not None
    measured = summary["slos"][1]["measured"]
    message = failure.get("message", "")
    assert f"SLO p50_ms < 0.001 FAILED: measured {measured:g}, threshold < 0.001" in message
    assert f"samples {summary['slos'][1]['samples']}" in message and f"run folder {run_dirs[0]}" in message
    if summary["slos"][1].get("ci"):  # present once the harness reports confidence intervals
        assert "CI [" in message
    summary_line = "FAILED scenario_short.yaml::slo[p50_ms < 0.001] - SLO p50_ms < 0.001 FAILED"
    assert any(line.startswith(summary_line) for line in result.outlines), result.outlines


TEST_WITH_FIXTURE = """
import sys

def test_load_meets_its_slos(harness_run):
    result = harness_run("load.yaml")
    assert result.verdict == "fail" and result.exit_code == 1 and result.reached_verdict, result.describe()
    assert result.slo("error_rate").passed and not result.slo("p50").passed
    assert result.slo("p50").measured > 0.001 and result.slo("p50").samples > 100
    assert result.totals["requests"] > 100 and result.summary["seed"] == 42
    assert result.run_dir.parent.name == "harness-runs" and (result.run_dir / "journal.jsonl").is_file()
    assert result.junit_xml.is_file()
    # The run happened in a child process: this interpreter never imported Locust.
    from gevent import monkey
    assert "locust" not in sys.modules and not monkey.is_module_patched("socket")
"""


def test_the_fixture_returns_results_a_test_can_assert_on(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", load=SCENARIO.format(name="fixture"))  # not a scenario_* name: not collected
    pytester.makepyfile(test_fixture=TEST_WITH_FIXTURE)
    result = pytester.runpytest_subprocess("--harness-seed=42", timeout=240)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*harness run folders*", "*harness-runs/plugin-fixture-*"])
