"""Process faults against a real Triton under load, through `harness run`."""

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from harness.exitcodes import ExitCode
from harness.restore import read_restore
from tests.conftest import HARNESS, only_run_dir, run_harness
from tests.conftest import journal_events as events
from tests.conftest import wait_for_event as _wait_for_event

pytestmark = pytest.mark.real


def run_scenario(tmp_path: Path, scenario: Path) -> tuple[subprocess.CompletedProcess[str], Path, dict]:
    result = run_harness("run", str(scenario), "--runs-dir", "runs", "--no-progress", cwd=tmp_path)
    run_dir = only_run_dir(tmp_path / "runs")
    return result, run_dir, json.loads((run_dir / "summary.json").read_text())




# SIGKILL of the server with a restart, SIGSTOP of the server and SIGKILL of one stub are one run
# of scenarios/roles/triton-roles.yaml in tests/integration/test_roles.py.


def test_sigkilled_harness_mid_freeze_then_cleanup(tmp_path: Path) -> None:
    scenario = tmp_path / "freeze.yaml"
    scenario.write_text(
        "name: freeze\nstack: {kind: triton}\n"
        "load: {user: triton_http, users: 4, duration: 60s, request_timeout: 1s}\n"
        "faults: [{kind: process_freeze, at: 2s, duration: 50s, role: server}]\n", encoding="utf-8")
    proc = subprocess.Popen([*HARNESS, "run", str(scenario), "--runs-dir", "runs", "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = _wait_for_event(tmp_path / "runs", "fault_injected")
    server = psutil.Process(next(e for e in events(run_dir, "stack_ready"))["stack"]["pid"])
    family = [server, *server.children(recursive=True)]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert server.status() == psutil.STATUS_STOPPED  # left frozen by the dead harness
    result = run_harness("cleanup", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "undid fault f0.0 (process_freeze)" in result.stdout
    gone, alive = psutil.wait_procs(family, timeout=15)
    assert not alive, alive
    again = run_harness("cleanup", str(run_dir), cwd=tmp_path)
    assert "0 action(s)" in again.stdout




def test_sigterm_mid_freeze_restores_before_exit(tmp_path: Path) -> None:
    scenario = tmp_path / "freeze-term.yaml"
    scenario.write_text(
        "name: freeze-term\nstack: {kind: triton}\n"
        "load: {user: triton_http, users: 4, duration: 60s, request_timeout: 1s}\n"
        "faults: [{kind: process_freeze, at: 2s, duration: 50s, role: server}]\n", encoding="utf-8")
    proc = subprocess.Popen([*HARNESS, "run", str(scenario), "--runs-dir", "runs", "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = _wait_for_event(tmp_path / "runs", "fault_injected")
    server = psutil.Process(next(e for e in events(run_dir, "stack_ready"))["stack"]["pid"])
    assert server.status() == psutil.STATUS_STOPPED
    time.sleep(2)  # long enough for the supervisor to call it a hang
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == ExitCode.INTERRUPTED
    restored = events(run_dir, "fault_restored")
    assert restored and restored[0]["error"] is None
    ops = [r["op"] for r in read_restore(run_dir)]
    assert "restored" in ops and ops[-1] == "processes_stopped"
    stopped = events(run_dir, "stack_stopped")[-1]["report"]["exits"]["server"]
    assert stopped["exit_code"] is not None and not server.is_running()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "interrupted"
    assert summary["faults"][0]["detected_by"] == "hang_detected (server)"
