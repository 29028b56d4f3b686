"""Memory pressure against real processes: the kernel's cgroup OOM killer on a model-loading
Triton, limits lowered and raised and removed, the stressor, sidecars, and cleanup after the
harness itself is SIGKILLed. Needs root and a writable memory cgroup (v1 or v2); skipped with
the reason otherwise. cgroup v2 cases run where its memory controller is usable."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.exitcodes import ExitCode
from harness.gpu.observer import load_nvml
from harness.journal import read_journal
from harness.memory.cgroups import CgroupError, hierarchy
from tests.conftest import HARNESS, ROOT, only_run_dir, run_harness
from tests.conftest import journal_events as events
from tests.conftest import wait_for_run as _wait_for

pytestmark = pytest.mark.real
MIB = 1 << 20


def usable(version: str) -> bool:
    try:
        hierarchy(version)  # type: ignore[arg-type]
        return True
    except (CgroupError, OSError):
        return False


def need_cgroup(version: str = "auto") -> None:
    try:
        hierarchy(version)  # type: ignore[arg-type]
    except (CgroupError, OSError) as exc:
        pytest.skip(f"no usable memory cgroup ({version}): {exc}")


VERSIONS = [pytest.param(v, marks=pytest.mark.skipif(not usable(v), reason=f"cgroup {v}: no memory here"))
            for v in ("v1", "v2")]




def run(tmp_path: Path, scenario: Path) -> tuple[subprocess.CompletedProcess[str], Path, dict]:
    result = run_harness("run", str(scenario), "--runs-dir", "runs", "--no-progress", cwd=tmp_path)
    run_dir = only_run_dir(tmp_path / "runs")
    return result, run_dir, json.loads((run_dir / "summary.json").read_text())


def group_dir(rel: str) -> Path:
    return hierarchy().mount / rel.lstrip("/")


def test_large_model_first_start_oom_killed_then_ready(tmp_path: Path) -> None:
    """The repro: the kernel OOM-kills the loading stub (and the agent); the harness starts again."""
    need_cgroup()
    result, run_dir, summary = run(tmp_path, ROOT / "scenarios/repro/triton-large-model-oom-first-start.yaml")
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    assert summary["verdict"] == "reproduced"
    first, second = events(run_dir, "stack_start_attempt")
    assert (first["outcome"], second["outcome"]) == ("failed", "ready")
    assert first["memory"]["oom_kills"] >= 1 and "exited with code" in first["error"]
    assert second["roles"]["stub"]["peak_rss"] > 380 * MIB  # the 400 MiB model, resident
    assert second["roles"]["stub"]["first_seen_s"] >= second["roles"]["server"]["first_seen_s"]  # 10 ms grain
    assert events(run_dir, "cgroup_oom_kill")  # the kernel's own counter, memory.oom_control / events
    kernel = next(e for e in events(run_dir, "observer_stopped") if e["observer"] == "kernel_log")["summary"]
    if kernel["readable"]:
        killed = {e["role"] for e in events(run_dir, "oom_kill") if e["ours"]}
        assert {"stub", "sidecar:config-agent"} <= killed, killed
    deaths = {e["name"]: e for e in events(run_dir, "sidecar_exited")}
    assert deaths["config-agent"]["death"] and deaths["config-agent"]["signal"] == "SIGKILL"
    assert not deaths["deploy-unpack"]["death"]  # it was meant to finish, and did (exit 0)
    assert "the stack was ready only after 2 starts" in " ".join(summary["findings"])
    assert summary["memory"]["startup"]["ready_after_starts"] == 2
    created = events(run_dir, "memory_group_created")[0]["group"]
    assert not group_dir(created).exists()  # removed after the run
    assert "ready after 2 starts" in (run_dir / "report.html").read_text()


@pytest.mark.parametrize("version", VERSIONS)
def test_limit_fault_moves_lowers_raises_and_removes(tmp_path: Path, version: str) -> None:
    scenario = tmp_path / "limits.yaml"
    scenario.write_text(f"""\
name: limits
stack: {{kind: triton, model: large_init, instances: 1, model_file: {{size: 200MiB}}, stop_timeout: 5s}}
startup: {{memory_limit: 1GiB, cgroup: {version}}}
load: {{user: triton_http, users: 2, duration: 10s, request_timeout: 2s}}
faults:
  - {{kind: memory_limit, at: 1s, duration: 2s, role: stub, limit: 512MiB, cgroup: {version}}}
  - kind: memory_limit
    at: 4s
    duration: 4s
    cgroup: {version}
    steps: [{{after: 0s, limit: 700MiB}}, {{after: 2s, limit: 64MiB}}]
""", encoding="utf-8")
    result, run_dir, summary = run(tmp_path, scenario)
    assert result.returncode in (ExitCode.PASS, ExitCode.SLO_FAILED), result.stdout + result.stderr
    moved, adjusted = events(run_dir, "fault_injected")
    assert moved["mode"] == "move" and moved["moved"] and "harness-limit-" in moved["group"]
    assert adjusted["mode"] == "adjust" and adjusted["limit"] == 700 * MIB
    assert not group_dir(moved["group"]).exists()  # the fault's own group is gone
    run_group = adjusted["group"].rsplit("/", 1)[-1]
    limits = [s["values"].get(f"limit{{group={run_group}}}") for s in _series(run_dir, "memory_cgroup")]
    limits = [v for i, v in enumerate(limits) if v is not None and (i == 0 or v != limits[i - 1])]
    assert limits[:2] == [1024 * MIB, 700 * MIB] and limits[-1] == 1024 * MIB  # lowered, raised back
    (step,) = events(run_dir, "memory_limit_step")
    if version == "v1":  # v1 will not lower a limit below what it cannot reclaim: refused, said so
        assert "EBUSY" in step["error"]
        assert any("refused" in f for f in summary["findings"])
    else:  # v2 reclaims, then OOM-kills
        assert step["error"] is None and summary["memory"]["oom_kills"] >= 1
    assert [e["error"] for e in events(run_dir, "fault_restored")] == [None, None]


def _series(run_dir: Path, name: str) -> list[dict]:
    return [r for r in read_journal(run_dir / "journal.jsonl") if r["type"] == "series" and r["name"] == name]


def test_stressor_process_holds_and_releases_memory() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "harness.memory.stressor", "--stdin"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert json.loads(proc.stdout.readline())["held"] == 0
        for target, low, high in ((192 * MIB, 190, 260), (32 * MIB, 30, 90)):
            proc.stdin.write(f"{target}\n")
            proc.stdin.flush()
            reply = json.loads(proc.stdout.readline())
            assert reply["held"] == target and not reply["capped"]
            rss = psutil.Process(proc.pid).memory_info().rss / MIB
            assert low <= rss <= high, rss  # really resident, and really given back
        assert psutil.Process(proc.pid).name() == "harness-stress"  # how the kernel log names it
        assert Path(f"/proc/{proc.pid}/oom_score_adj").read_text().strip() == "1000"
        proc.stdin.close()
        assert proc.wait(10) == 0
    finally:
        proc.kill()


def test_stressor_keeps_the_floor() -> None:
    """Asked for more than the host can spare above the floor, it stops short and says so."""
    available = psutil.virtual_memory().available
    argv = [sys.executable, "-m", "harness.memory.stressor", "--take", "256MiB", "--hold", "0.1",
            "--floor", str(available + 64 * MIB)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    reply = json.loads(out.stdout.splitlines()[0])
    assert reply == {**reply, "held": 0, "capped": True}


def test_memory_stress_fault_in_a_run(tmp_path: Path) -> None:
    scenario = tmp_path / "stress.yaml"
    scenario.write_text("""\
name: stress
stack: {kind: triton, stop_timeout: 5s}
load: {user: triton_http, users: 2, duration: 9s, request_timeout: 2s}
faults:
  - kind: memory_stress
    at: 1s
    duration: 6s
    steps: [{after: 0s, amount: 128MiB}, {after: 3s, amount: 256MiB}]
""", encoding="utf-8")
    proc = subprocess.Popen([*HARNESS, "run", str(scenario), "--runs-dir", "runs", "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = _wait_for(tmp_path / "runs", lambda d: len(events(d, "memory_stress_step")) == 2)
    second = events(run_dir, "memory_stress_step")[1]
    rss = psutil.Process(second["pid"]).memory_info().rss
    assert second["held"] == 256 * MIB and rss >= 250 * MIB  # held, resident, while load runs
    assert proc.wait(120) == ExitCode.PASS
    (injected,) = events(run_dir, "fault_injected")
    assert not psutil.pid_exists(second["pid"]) or psutil.Process(second["pid"]).name() != "harness-stress"
    assert events(run_dir, "fault_restored")[0]["error"] is None
    assert not list(Path("/tmp").glob(f"harness-stressor-*{injected['plan']['pidfile'][-16:]}"))
    steps = json.loads((run_dir / "summary.json").read_text())["memory"]["stress_steps"]
    assert [s["target"] for s in steps] == [128 * MIB, 256 * MIB] and all(s["requests"] > 0 for s in steps)


def test_stressor_that_would_starve_the_harness_is_refused(tmp_path: Path) -> None:
    scenario = tmp_path / "greedy.yaml"
    scenario.write_text("""\
name: greedy
stack: {kind: triton, stop_timeout: 5s}
load: {user: triton_http, users: 1, duration: 3s}
faults: [{kind: memory_stress, at: 1s, duration: 1s, fraction: 0.99}]
""", encoding="utf-8")
    result, run_dir, summary = run(tmp_path, scenario)
    assert result.returncode == ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "below the harness's floor" in summary["reason"] and "5% of host memory" in summary["reason"]
    assert not events(run_dir, "fault_injected")


def test_sidecar_killed_mid_run_is_reported(tmp_path: Path) -> None:
    scenario = tmp_path / "sidecar.yaml"
    scenario.write_text("""\
name: sidecar
stack: {kind: triton, stop_timeout: 5s}
sidecars:
  - {name: config-agent, command: ["{python}", "-m", "harness.sidecar_agent", "--every", "200ms"]}
  - {name: log-shipper, command: ["{python}", "-m", "harness.sidecar_agent", "--every", "1s"]}
load: {user: triton_http, users: 2, duration: 6s, request_timeout: 2s}
slo:
  - {metric: error_rate, max: 0.001}
  - {metric: sidecar_deaths, max: 0}
""", encoding="utf-8")
    proc = subprocess.Popen([*HARNESS, "run", str(scenario), "--runs-dir", "runs", "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = _wait_for(tmp_path / "runs", lambda d: bool(events(d, "load_started")))
    agent = next(e for e in events(run_dir, "sidecar_started") if e["name"] == "config-agent")
    time.sleep(1.0)
    psutil.Process(agent["pid"]).send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert proc.wait(120) == ExitCode.SLO_FAILED  # the stack was fine; the sidecar was not
    summary = json.loads((run_dir / "summary.json").read_text())
    (death,) = events(run_dir, "sidecar_exited")
    assert death["name"] == "config-agent" and death["signal"] == "SIGKILL" and death["death"]
    assert death["t"] - events(run_dir, "load_started")[0]["t"] < 6  # seen during the load
    assert time.monotonic() - killed_at > 0  # (the run went on to its end)
    slos = {s["metric"]: s for s in summary["slos"]}
    assert slos["error_rate"]["passed"] and not slos["sidecar_deaths"]["passed"]
    assert any("sidecar config-agent" in f and "SIGKILL" in f for f in summary["findings"])
    stopped = events(run_dir, "sidecars_stopped")[0]["sidecars"]
    assert stopped["log-shipper"]["alive_at_end"] and not stopped["config-agent"]["alive_at_end"]
    assert not psutil.pid_exists(stopped["log-shipper"]["pid"]) or not _same(stopped["log-shipper"]["pid"])
    gpu = next(e for e in events(run_dir, "observer_stopped") if e["observer"] == "gpu")["summary"]
    assert gpu["available"] is (load_nvml() is not None)  # where there is no GPU: silently absent
    assert not _series(run_dir, "gpu") or gpu["available"]


def _same(pid: int) -> bool:
    try:
        return "sidecar_agent" in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def test_sigkilled_harness_then_cleanup_removes_limits_stressor_and_sidecar(tmp_path: Path) -> None:
    need_cgroup()
    scenario = tmp_path / "killed.yaml"
    scenario.write_text("""\
name: killed
stack: {kind: triton, stop_timeout: 5s}
startup: {memory_limit: 1GiB}
sidecars: [{name: agent, command: ["{python}", "-m", "harness.sidecar_agent"], memory: stack}]
load: {user: triton_http, users: 2, duration: 60s, request_timeout: 2s}
faults:
  - {kind: memory_stress, at: 1s, duration: 50s, amount: 96MiB}
  - {kind: memory_limit, at: 1s, duration: 50s, role: stub, limit: 512MiB}
""", encoding="utf-8")
    proc = subprocess.Popen([*HARNESS, "run", str(scenario), "--runs-dir", "runs", "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = _wait_for(tmp_path / "runs", lambda d: len(events(d, "fault_injected")) == 2
                        and bool(events(d, "memory_stress_step")))
    stress, limit = sorted(events(run_dir, "fault_injected"), key=lambda e: e["kind"] != "memory_stress")
    run_group = group_dir(events(run_dir, "memory_group_created")[0]["group"])
    fault_group = group_dir(limit["group"])
    server = psutil.Process(events(run_dir, "stack_ready")[0]["stack"]["pid"])
    agent = psutil.Process(events(run_dir, "sidecar_started")[0]["pid"])
    stressor = psutil.Process(stress["pid"])
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert run_group.exists() and fault_group.exists() and stressor.is_running()  # all left behind
    result = run_harness("cleanup", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for needed in ("undid fault startup.memory (memory_limit)", "(memory_stress)", "(memory_limit)"):
        assert needed in result.stdout, result.stdout
    gone, alive = psutil.wait_procs([server, agent, stressor], timeout=15)
    assert not alive, alive
    assert not run_group.exists() and not fault_group.exists()
    assert not Path(stress["plan"]["pidfile"]).exists()
    assert "0 action(s)" in run_harness("cleanup", str(run_dir), cwd=tmp_path).stdout

