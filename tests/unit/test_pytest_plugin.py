"""The pytest plugin without a server: collection, result reading, item outcomes, ending the child."""

import json
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness.exitcodes import ExitCode
from harness.pytest_plugin import Launch, end_child, launch_for, run_child, run_dir_of
from harness.pytest_results import HarnessResult, read_result
from harness.scenario import load_scenario

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """\
name: quick
stack: {kind: triton, model: identity, instances: 2}
load: {user: triton_http, users: 4, duration: 5s}
slo:
  - "error_rate < 0.01"
  - "p50_ms < 0.001"
  - {metric: p99_ms, max: 250, window: {from: 1s, to: 4s}}
"""


def slo_row(name: str, metric: str, passed: bool, **extra: object) -> dict:
    return {"name": name, "metric": metric, "op": "<", "threshold": 0.01, "measured": 0.5, "passed": passed,
            "samples": 1234, "window": "all", "detail": "measured 0.5 breaks < 0.01", **extra}


def write_summary(run_dir: Path, verdict: str, code: ExitCode, slos: list[dict], reason: str = "") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = {"verdict": verdict, "exit_code": int(code), "reason": reason or verdict, "slos": slos,
               "totals": {"requests": 1234, "errors": 0}, "run_dir": str(run_dir), "seed": 3}
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return run_dir


def test_scenario_files_become_one_run_item_and_one_item_per_slo(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", scenario_quick=SCENARIO, other=SCENARIO)  # other.yaml: not opted in
    pytester.path.joinpath("sub").mkdir()
    pytester.path.joinpath("sub", "edge.scenario.yaml").write_text(SCENARIO.replace("quick", "edge"))
    pytester.makepyfile(test_isolation="""
        import sys

        def test_collecting_scenarios_imports_no_locust():
            from gevent import monkey
            assert "locust" not in sys.modules and not monkey.is_module_patched("socket")
    """)
    result = pytester.runpytest_subprocess("--collect-only", "-q")
    ids = [line for line in result.outlines if "::" in line]
    assert ids == [
        "scenario_quick.yaml::run",
        "scenario_quick.yaml::slo[error_rate < 0.01]",
        "scenario_quick.yaml::slo[p50_ms < 0.001]",
        "scenario_quick.yaml::slo[p99_ms <= 250 in [1s, 4s]]",
        "sub/edge.scenario.yaml::run",
        "sub/edge.scenario.yaml::slo[error_rate < 0.01]",
        "sub/edge.scenario.yaml::slo[p50_ms < 0.001]",
        "sub/edge.scenario.yaml::slo[p99_ms <= 250 in [1s, 4s]]",
        "test_isolation.py::test_collecting_scenarios_imports_no_locust",
    ]
    # Collected, then deselected: proves collection alone leaves the standard library unpatched.
    pytester.runpytest_subprocess("-k", "isolation").assert_outcomes(passed=1, deselected=8)


def test_the_ini_option_chooses_which_files_are_scenarios(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", scenario_quick=SCENARIO, load=SCENARIO)
    pytester.makeini("[pytest]\nharness_scenario_files =\n")
    assert "no tests collected" in pytester.runpytest_subprocess("--collect-only", "-q").stdout.str()
    pytester.makeini("[pytest]\nharness_scenario_files = load.yaml\n")
    result = pytester.runpytest_subprocess("--collect-only", "-q")
    assert "load.yaml::run" in result.outlines and "scenario_quick.yaml::run" not in result.outlines


def test_the_example_folder_collects(pytester: pytest.Pytester) -> None:
    for name in ("scenario_smoke.yaml", "latency.yaml", "test_latency.py"):
        pytester.path.joinpath(name).write_text((ROOT / "examples" / "pytest" / name).read_text())
    result = pytester.runpytest_subprocess("--collect-only", "-q")
    assert [line for line in result.outlines if "::" in line] == [
        "scenario_smoke.yaml::run",
        "scenario_smoke.yaml::slo[error_rate <= 0.001]",
        "scenario_smoke.yaml::slo[p99_ms < 250]",
        "scenario_smoke.yaml::slo[throughput_rps >= 50]",
        "test_latency.py::test_identity_model_latency",
    ]


def test_a_bad_scenario_is_a_collection_error_naming_file_line_and_field(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", scenario_bad=SCENARIO.replace("users: 4,", "users: 4, bogus: 1,"))
    result = pytester.runpytest_subprocess("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*scenario_bad.yaml:3: load.bogus: unknown key (exit 2 USAGE_ERROR)"])


FAKE_RUN = """\
import json
from pathlib import Path

import harness.pytest_plugin as plugin
from harness.pytest_results import read_result

RUN_DIR = Path({run_dir!r})
CODE = {code}


def pytest_configure(config):
    # The run itself is replaced: this checks how items judge a result, not the harness.
    plugin.run_child = lambda launch: read_result(RUN_DIR, CODE, "stack did not start\\n")
"""


def fake_run(pytester: pytest.Pytester, run_dir: Path, code: ExitCode) -> None:
    pytester.makeconftest(FAKE_RUN.format(run_dir=str(run_dir), code=int(code)))
    pytester.makefile(".yaml", scenario_quick=SCENARIO)


def test_slo_items_report_measured_threshold_samples_ci_and_run_folder(pytester: pytest.Pytester) -> None:
    run_dir = write_summary(pytester.path / "runs" / "quick-1", "fail", ExitCode.SLO_FAILED, [
        slo_row("error_rate < 0.01", "error_rate", True),
        slo_row("p50_ms < 0.001", "p50_ms", False, ci=[0.41, None], confidence=0.95, marginal=False),
        slo_row("p99_ms <= 250 in [1s, 4s]", "p99_ms", True),
    ])
    fake_run(pytester, run_dir, ExitCode.SLO_FAILED)
    result = pytester.runpytest_subprocess("--junitxml=junit.xml")
    result.assert_outcomes(passed=3, failed=1)
    cases = ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    failures = {c.get("name"): c.find("failure") for c in cases}
    assert list(failures) == ["run", "slo[error_rate < 0.01]", "slo[p50_ms < 0.001]",
                              "slo[p99_ms <= 250 in [1s, 4s]]"]
    failure = failures["slo[p50_ms < 0.001]"]
    assert failure is not None and failure.get("message") == (
        "SLO p50_ms < 0.001 FAILED: measured 0.5, threshold < 0.01; samples 1234; "
        f"95% CI [0.41, unbounded]; run folder {run_dir}"
    )


def test_a_stack_that_never_started_fails_the_run_and_leaves_slos_unevaluated(
    pytester: pytest.Pytester,
) -> None:
    run_dir = write_summary(pytester.path / "runs" / "quick-1", "stack_failed", ExitCode.STACK_FAILED, [],
                            reason="tritonserver exited with code 1 before ready")
    fake_run(pytester, run_dir, ExitCode.STACK_FAILED)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines([
        "*verdict stack_failed (exit 3 STACK_FAILED): tritonserver exited with code 1 before ready*",
        "*SLO p50_ms < 0.001 was not evaluated: verdict stack_failed*",
    ])


def test_an_idle_load_fails_the_run_item_though_every_slo_held(pytester: pytest.Pytester) -> None:
    names = ("error_rate < 0.01", "p50_ms < 0.001", "p99_ms <= 250 in [1s, 4s]")
    rows = [slo_row(name, "x", True) for name in names]
    run_dir = write_summary(pytester.path / "runs" / "quick-1", "fail", ExitCode.SLO_FAILED, rows,
                            reason="the load completed no request at all")
    fake_run(pytester, run_dir, ExitCode.SLO_FAILED)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["FAILED scenario_quick.yaml::run*"])


def test_result_lookup_by_name_or_prefix(tmp_path: Path) -> None:
    run_dir = write_summary(tmp_path / "r", "pass", ExitCode.PASS, [
        slo_row("p99_ms < 250", "p99_ms", True), slo_row("p99.9_ms < 500", "p99.9_ms", True),
        slo_row("errors", "error_rate", True),
    ])
    result = read_result(run_dir, 0)
    assert result.passed and result.reached_verdict and result.summary["seed"] == 3
    assert result.slo("p99_ms < 250").name == "p99_ms < 250"
    assert result.slo("error").name == "errors"
    assert result.junit_xml == run_dir / "junit.xml"
    with pytest.raises(KeyError, match="matches several SLOs"):
        result.slo("p99")
    with pytest.raises(KeyError, match="matches no SLO"):
        result.slo("ttft")


def test_a_run_without_summary_gets_its_verdict_from_the_exit_code(tmp_path: Path) -> None:
    result = read_result(None, 2, "harness: x.yaml:3: load.users: not an integer\n")
    assert (result.verdict, result.exit_name, result.reason) == (
        "usage_error", "USAGE_ERROR", "harness: x.yaml:3: load.users: not an integer")
    assert not result.reached_verdict and result.slos == []


def test_the_time_budget_covers_start_up_load_and_stop(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO + "startup: {attempts: 2, backoff: 5s}\n")
    launch = launch_for(load_scenario(path), path, tmp_path / "runs", seed=7)
    assert launch.timeout_s == 2 * 120 + 5 + 5 + 2 * 10 + 60
    assert launch.argv()[1:] == ["-m", "harness.cli", "run", str(path), "--runs-dir", str(tmp_path / "runs"),
                                 "--no-progress", "--seed", "7"]
    assert launch_for(load_scenario(path), path, tmp_path, None, timeout_s=9).timeout_s == 9


@dataclass(frozen=True)
class FakeLaunch(Launch):
    """A stand-in child: announces a run folder like `harness run`, then sleeps."""

    ignore_sigterm: bool = False

    def argv(self) -> list[str]:
        return [sys.executable, "-c", textwrap.dedent(f"""
            import signal, sys, time
            from pathlib import Path
            run_dir = Path({str(self.runs_dir)!r})
            def on_term(*_):
                (run_dir / "got_sigterm").write_text("yes")
                sys.exit(5)
            signal.signal(signal.SIGTERM, signal.SIG_IGN if {self.ignore_sigterm} else on_term)
            print("run folder:", run_dir, flush=True)
            time.sleep(60)
        """)]


def test_a_child_past_its_budget_gets_sigterm_and_its_teardown(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_child(FakeLaunch(tmp_path, tmp_path, seed=None, timeout_s=1.5, grace_s=10))
    assert time.monotonic() - started < 8
    assert (tmp_path / "got_sigterm").read_text() == "yes"
    assert result.timed_out and result.exit_code == ExitCode.INTERRUPTED and not result.reached_verdict
    assert result.run_dir == tmp_path and result.reason.startswith("timed out")


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    launch = FakeLaunch(tmp_path, tmp_path, None, timeout_s=1, grace_s=1, ignore_sigterm=True)
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(launch.argv(), stdout=out, start_new_session=True)
        time.sleep(1.0)  # let it install its handler and print
        started = time.monotonic()
        code = end_child(child, launch.grace_s, out)
        assert code == -signal.SIGKILL and 0.9 < time.monotonic() - started < 5
        out.seek(0)
        assert run_dir_of(out.read()) == tmp_path


def test_run_dir_comes_from_the_first_line_of_harness_run() -> None:
    assert run_dir_of("run folder: /tmp/r/quick-1\nverdict: PASS\n") == Path("/tmp/r/quick-1")
    assert run_dir_of("harness: bad file\n") is None
    assert isinstance(read_result(None, 4), HarnessResult)
