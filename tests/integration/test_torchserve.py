"""TorchServe 0.12 for real (Java frontend, Python workers) through `harness run`: worker kills
under load, a handler that can never load, and the retry back-off TorchServe really uses."""

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from harness.exitcodes import ExitCode
from harness.journal import read_journal
from tests.conftest import HARNESS, ROOT, only_run_dir, run_harness
from tests.conftest import journal_events as events
from tests.conftest import wait_for_event as _wait_for_event

pytestmark = pytest.mark.real

MISSING = "ModuleNotFoundError: No module named 'harness_torchserve_missing_module'"


Ran = tuple[subprocess.CompletedProcess[str], Path, dict, float]


def run_scenario(tmp_path: Path, scenario: Path) -> Ran:
    started = time.monotonic()
    result = run_harness("run", str(scenario), "--runs-dir", "runs", "--no-progress", cwd=tmp_path)
    took = time.monotonic() - started
    run_dir = only_run_dir(tmp_path / "runs")
    return result, run_dir, json.loads((run_dir / "summary.json").read_text()), took




def test_worker_kills_under_load_are_healed_and_measured(tmp_path: Path) -> None:
    result, run_dir, summary, _ = run_scenario(tmp_path, ROOT / "scenarios/repro/torchserve-worker-kill.yaml")
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    assert summary["totals"]["ok"] > 1000  # real traffic, checked against the echo
    assert "wrong_answer" not in summary["totals"]["errors_by_kind"]
    injected = events(run_dir, "fault_injected")
    assert [len(e["plan"]["targets"]) for e in injected] == [1, 2]  # one worker, then all
    killed = {t["pid"] for e in injected for t in e["plan"]["targets"]}
    exited = {e["pid"] for e in events(run_dir, "process_exited") if e["role"] == "worker"}
    assert killed <= exited

    ts = summary["torchserve"]
    for fault in ts["faults"]:
        # The management API saw a worker leave READY, and all READY again after the 1 s back-off
        # plus a worker start (TorchServe's worker imports torch: seconds on this machine).
        assert fault["down_t"] is not None and fault["down_t"] - fault["injected_t"] < 3
        assert 1.0 < fault["ready_s"] < 25
    final = [e for e in events(run_dir, "ts_workers") if "ready" in e][-1]
    assert final["ready"] == 2 and not {w["pid"] for w in final["workers"]} & killed  # new processes
    # One retry per killed worker, each after the 1 s TorchServe announced.
    assert [(r["announced_s"], r["n"]) for r in ts["retries"]] == [(1, 1)] * 3
    assert all(abs(r["waited_s"] - 1.0) < 0.5 for r in ts["retries"])
    assert ts["storm"] is None and ts["not_recoverable"] is None
    # With both workers gone the model serves nothing: one outage, after the second fault only.
    (outage,) = ts["no_worker_ready"]
    assert outage["from_t"] >= injected[1]["t"] and outage["seconds"] > 1.0
    assert not summary["stack"]["stop"]["leaks"]
    html = (run_dir / "report.html").read_text()
    assert "TorchServe: workers and retries" in html and "Workers READY (management API" in html


def test_broken_handler_is_found_not_recoverable_early(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios/repro/torchserve-broken-handler-storm.yaml"
    result, run_dir, summary, took = run_scenario(tmp_path, scenario)
    assert result.returncode == ExitCode.STACK_FAILED, result.stdout + result.stderr
    assert "not recoverable: retry storm" in summary["reason"] and summary["reason"].endswith(MISSING)
    assert "maxRetryTimeoutInSec=300" in summary["reason"]  # TorchServe's default, as its API says
    assert took < 90  # the scenario allows 300 s: the harness did not wait out the back-off
    ts = summary["torchserve"]
    assert ts["storm"]["error"] == MISSING and ts["storm"]["failures"] >= 3
    assert ts["settings"]["effective_max_retry_timeout_s"] == 300
    assert ts["settings"]["configured_max_retry_timeout_s"] is None
    assert ts["retries"] and all(r["matches"] for r in ts["retries"])
    assert not summary["stack"]["stop"]["leaks"]  # the frontend took its workers down with it
    html = (run_dir / "report.html").read_text()
    assert "NOT RECOVERABLE" in html and "harness_torchserve_missing_module" in html


def test_retry_timeout_zero_fails_at_the_first_failure(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios/repro/torchserve-retry-timeout-zero.yaml"
    result, run_dir, summary, _ = run_scenario(tmp_path, scenario)
    assert result.returncode == ExitCode.STACK_FAILED, result.stdout + result.stderr
    assert "TorchServe stopped retrying worker(s) 9000 (maxRetryTimeoutInSec=0)" in summary["reason"]
    assert summary["reason"].endswith(MISSING)
    ts = summary["torchserve"]
    assert ts["retries"] == [] and ts["settings"]["effective_max_retry_timeout_s"] == 0
    (attempt,) = ts["attempts"]
    # The harness gave up about one grace second after the only failure, not after a timeout.
    records = read_journal(run_dir / "journal.jsonl")
    verdicts = [r for r in records if "not recoverable" in str(r.get("error"))]
    assert attempt["stopped_t"] is not None and verdicts[0]["t"] - attempt["stopped_t"] < 2.5
    assert "Retry worker" not in (run_dir / "stack/logs/torchserve.log").read_text()


@pytest.mark.nightly  # CI sees TorchServe's retries in the broken-handler storm
def test_retry_intervals_follow_fibonacci(tmp_path: Path) -> None:
    scenario = tmp_path / "fibonacci.yaml"
    scenario.write_text(
        "name: ts-fibonacci\n"
        "stack: {kind: torchserve, handler: broken_import, model: broken, workers: 1,\n"
        "        stop_on_storm: false, startup_timeout: 24s}\n"
        "load: {user: torchserve_http, users: 1, duration: 5s}\n", encoding="utf-8")
    result, _, summary, _ = run_scenario(tmp_path, scenario)
    assert result.returncode == ExitCode.STACK_FAILED, result.stdout + result.stderr
    assert "not ready after 24s" in summary["reason"]  # it waited: stop_on_storm is off
    retries = summary["torchserve"]["retries"]
    announced = [r["announced_s"] for r in retries]
    assert len(announced) >= 4, retries
    # 1, 1, 2, 3 (5, 8): Fibonacci, where doubling would give 1, 2, 4, 8.
    assert announced == [1, 1, 2, 3, 5, 8, 13][: len(announced)]
    waited = [r["waited_s"] for r in retries if r["waited_s"] is not None]
    assert len(waited) >= 4
    for r in retries:
        if r["waited_s"] is not None:  # measured: the retry line to the worker's next launch
            assert abs(r["waited_s"] - r["announced_s"]) <= 0.5, r
    assert summary["torchserve"]["fibonacci"] is True


def test_frozen_worker_stays_ready_and_costs_its_requests(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios/faults/torchserve-worker-freeze.yaml"
    result, run_dir, summary, _ = run_scenario(tmp_path, scenario)
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    (injected,) = events(run_dir, "fault_injected")
    (frozen,) = injected["stopped"]
    # What TorchServe 0.12 does: the frontend never notices. The API keeps the stopped worker READY
    # with the same pid, nothing is retried, and only the request it held is lost (client timeout).
    samples = [e for e in events(run_dir, "ts_workers") if "ready" in e]
    assert all(s["ready"] == 2 for s in samples)
    assert frozen in {w["pid"] for w in samples[-1]["workers"]}
    ts = summary["torchserve"]
    assert ts["faults"][0]["down_t"] is None and ts["retries"] == []
    (fault,) = summary["faults"]
    assert 1 <= fault["errors_by_kind"].get("timeout", 0) <= 8  # at most one in flight per user
    assert summary["totals"]["ok"] > 1000  # the other worker served on


def test_sigkilled_harness_leaves_nothing_after_cleanup(tmp_path: Path) -> None:
    """Frontend, workers (grandchildren of the harness) and a frozen worker: all undone from the record."""
    scenario = tmp_path / "freeze-long.yaml"
    scenario.write_text(
        "name: ts-freeze-long\nstack: {kind: torchserve, workers: 2}\n"
        "load: {user: torchserve_http, users: 2, duration: 60s, request_timeout: 1s}\n"
        "faults: [{kind: process_freeze, at: 1s, duration: 50s, role: worker}]\n", encoding="utf-8")
    proc = subprocess.Popen([*HARNESS, "run", str(scenario), "--runs-dir", "runs", "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = _wait_for_event(tmp_path / "runs", "fault_injected")
    frontend = psutil.Process(events(run_dir, "stack_ready")[0]["stack"]["pid"])
    family = [frontend, *frontend.children(recursive=True)]
    (frozen,) = events(run_dir, "fault_injected")[0]["stopped"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert psutil.Process(frozen).status() == psutil.STATUS_STOPPED  # left frozen by the dead harness
    result = run_harness("cleanup", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "undid fault f0.0 (process_freeze)" in result.stdout
    _, alive = psutil.wait_procs(family, timeout=15)
    assert not alive, alive
    assert len(family) == 3  # the java frontend and its two Python workers

