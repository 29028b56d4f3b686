"""Every stack judged the same way, through the roles it declares (harness.roles).

One run per stack kind: SIGKILL of one replica (a partial failure, not a crash), SIGSTOP of the
entry process (a hang, seen in under 2 s), SIGKILL of the entry process under `restart:
on-failure` (a crash, noticed within 100 ms, read as SIGKILL after the reap, restarted, recovery
measured). And the canary: Triton whose only stub died keeps saying ready while inference fails.
"""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.exitcodes import ExitCode
from harness.restore import read_restore
from tests.conftest import ROOT, only_run_dir, run_harness
from tests.conftest import journal_events as events
from tests.integration.test_containers import docker_host  # noqa: F401 - the fixture

pytestmark = pytest.mark.real
# CI judges the roles on Triton (entry and replica, a hang and a crash); the same judgement on the
# other stacks runs nightly (tox -e nightly): each of those stacks has its own real tests in CI.
NIGHTLY = pytest.mark.nightly

ENTRY_KILL_NOTICED_S = 0.1
HANG_SEEN_S = 2.0


def run_scenario(tmp_path: Path, scenario: Path) -> tuple[subprocess.CompletedProcess[str], Path, dict]:
    result = run_harness("run", str(scenario), "--runs-dir", "runs", "--no-progress", cwd=tmp_path,
                         timeout=240)
    run_dir = only_run_dir(tmp_path / "runs")
    return result, run_dir, json.loads((run_dir / "summary.json").read_text())


def measured(summary: dict[str, Any], metric: str) -> Any:
    return next(s["measured"] for s in summary["slos"] if s["metric"] == metric)


def check_roles_run(tmp_path: Path, scenario: str, entry: str, replica: str) -> tuple[Path, dict]:
    result, run_dir, summary = run_scenario(tmp_path, ROOT / "scenarios/roles" / scenario)
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    replica_fault, freeze, kill = summary["faults"]

    assert replica_fault["detected_by"] == f"process_exited ({replica})"
    lost = [e for e in events(run_dir, "process_exited") if e["role"] == replica and not e["planned"]]
    assert lost[0]["loss"] == "replica" and "ended" in lost[0]

    assert freeze["detected_by"] == f"hang_detected ({entry})"
    assert freeze["detect_s"] < HANG_SEEN_S
    assert 2.5 < freeze["recover_s"] < 10  # thawed after the 3 s hold
    (hang,) = events(run_dir, "hang_detected")
    assert hang["process_status"] == "stopped" and hang["role"] == entry

    assert kill["detected_by"] == f"process_exited ({entry})"
    assert kill["detect_s"] < ENTRY_KILL_NOTICED_S
    assert kill["recover_s"] is not None and kill["recover_s"] > 1.0  # 1 s back-off + a real start
    (crash,) = [e for e in events(run_dir, "process_exited") if e["loss"] == "entry" and not e["planned"]]
    assert crash["signal"] == "SIGKILL" and crash["exit_code"] == -9  # read after the reap, never null
    assert [e["attempt"] for e in events(run_dir, "restarted")] == [1]

    assert measured(summary, "crashes") == 1  # the replica's loss is not a crash
    assert measured(summary, "hangs") == 1
    assert measured(summary, "replicas_lost") >= 1
    (stopped,) = events(run_dir, "supervisor_stopped")
    assert stopped["canary"]["sent"] > 10 and stopped["canary"]["ok"] > 0
    return run_dir, summary


def test_triton_roles(tmp_path: Path) -> None:
    run_dir, summary = check_roles_run(tmp_path, "triton-roles.yaml", entry="server", replica="stub")
    stub, freeze, kill = summary["faults"]
    # What Triton 2.51 does (seen here): the server keeps answering health, the dead instance's
    # requests fail with HTTP 500; it does not start a new stub until the stack restarts.
    assert stub["errors_by_kind"].get("http_500", 0) >= 1
    assert freeze["errors_by_kind"].get("timeout", 0) > 0  # the users' 2 s timeouts
    assert kill["failed_requests"] > 0
    ready = events(run_dir, "stack_ready")  # the restart keeps its ports: clients keep their URLs
    assert len(ready) == 2 and ready[0]["stack"]["endpoints"] == ready[1]["stack"]["endpoints"]
    ops = [r["op"] for r in read_restore(run_dir)]
    assert ops.index("fault") < ops.index("restored")  # the plan is on disk before the injection


@NIGHTLY
def test_torchserve_roles(tmp_path: Path) -> None:
    run_dir, summary = check_roles_run(tmp_path, "torchserve-roles.yaml", entry="frontend", replica="worker")
    # TorchServe starts a new worker itself: the replica role is back at full strength.
    restored = [e for e in events(run_dir, "replicas_restored") if e["role"] == "worker"]
    assert restored and restored[0]["after_s"] < 15
    assert measured(summary, "error_rate") == 0  # outside the faults' windows


@NIGHTLY
def test_dynamo_roles(tmp_path: Path) -> None:
    _, summary = check_roles_run(tmp_path, "dynamo-roles.yaml", entry="frontend", replica="worker")
    assert measured(summary, "error_rate") == 0  # outside the faults' windows


@NIGHTLY
def test_container_roles(tmp_path: Path, docker_host: str) -> None:  # noqa: F811 - the fixture
    check_roles_run(tmp_path, "container-roles.yaml", entry="server", replica="stub")


def test_triton_dead_stub_health_says_ready_inference_fails(tmp_path: Path) -> None:
    scenario = tmp_path / "stub.yaml"
    scenario.write_text(
        "name: dead-stub\nstack: {kind: triton, instances: 1, stop_timeout: 5s}\n"
        "load: {user: triton_http, users: 4, duration: 12s, request_timeout: 2s}\n"
        "faults: [{kind: process_kill, at: 3s, role: stub, signal: SIGKILL}]\n"
        "slo: [{metric: not_serving, max: 0}]\n", encoding="utf-8")
    result, run_dir, summary = run_scenario(tmp_path, scenario)
    assert result.returncode == ExitCode.SLO_FAILED, result.stdout + result.stderr
    (not_serving,) = events(run_dir, "not_serving")
    # Triton 2.51 answers such requests with HTTP 500 or not at all (they wait until the timeout).
    assert not_serving["health"] == "ready" and not_serving["status"] in (500, None)
    assert not events(run_dir, "hang_detected")  # health kept answering: not a hang
    (fault,) = summary["faults"]
    assert fault["detected_by"] == "process_exited (stub)"
    assert any("health says ready" in line for line in summary["findings"]), summary["findings"]
    assert measured(summary, "not_serving") == 1
