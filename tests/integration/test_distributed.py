"""Distributed load against a real Triton: Locust master here, users in worker processes."""

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.exitcodes import ExitCode
from harness.journal import read_journal
from harness.stacks.ports import free_ports
from tests.conftest import HARNESS, journal_events, only_run_dir, run_harness, wait_for_event

pytestmark = pytest.mark.real

SCENARIO = """\
name: {name}
stack: {{kind: triton, model: identity, instances: 2}}
load: {load}
faults: {faults}
slo: ["error_rate < 0.01"]
"""


def write(tmp_path: Path, name: str, load: str, faults: str = "[]") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SCENARIO.format(name=name, load=load, faults=faults), encoding="utf-8")
    return path


def seconds_of(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_journal(run_dir / "journal.jsonl") if r["type"] == "second"]


def server_successes(run_dir: Path) -> float:
    """Triton's own count of successful inferences, from the metrics the master scraped."""
    stopped = [e for e in journal_events(run_dir, "observer_stopped") if e["observer"] == "prometheus"]
    return float(stopped[0]["summary"]["increase"]["nv_inference_request_success{model=identity}"])


def test_two_local_workers_share_the_load_and_every_count_agrees(tmp_path: Path) -> None:
    path = write(tmp_path, "two-workers", "{user: triton_http, users: 8, duration: 8s}")
    result = run_harness("run", str(path), "--runs-dir", "runs", "--no-progress", "--workers", "2",
                         cwd=tmp_path)
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    seconds = seconds_of(run_dir)
    journal_total = sum(r["requests"] for r in seconds)
    stopped = journal_events(run_dir, "load_stopped")[0]
    reports = stopped["worker_reports"]
    assert len(reports) == 2 and stopped["workers_without_final"] == []
    assert len({r["pid"] for r in reports} | {os.getpid()}) == 3  # two processes, neither the test
    assert sum(r["requests"] for r in reports) == journal_total  # what workers sent = what was written
    assert stopped["locust_requests"] == journal_total  # Locust's own statistics path agrees
    assert server_successes(run_dir) == pytest.approx(journal_total, rel=0.005)  # and so does Triton
    assert all(r["requests"] > 0.2 * journal_total for r in reports)  # both workers carried load
    times = [r["t"] for r in seconds]
    assert len(times) == len(set(times)) and len(times) >= 8  # one record per second, no duplicates
    assert all(r.get("hdr") for r in seconds if r["ok"])  # merged latency histograms, not counts only


def test_open_model_rate_is_split_between_workers_exactly(tmp_path: Path) -> None:
    path = write(tmp_path, "open-workers", "{user: triton_http, users: 16, rate: 200, duration: 5s}")
    result = run_harness("run", str(path), "--runs-dir", "runs", "--no-progress", "--workers", "2",
                         cwd=tmp_path)
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    stopped = journal_events(run_dir, "load_stopped")[0]
    assert [r["intended_sent"] + r["unsent"] for r in stopped["worker_reports"]] == [500, 500]
    assert stopped["intended_sent"] + stopped["unsent"] == 1000
    sent = sum(r["requests"] for r in seconds_of(run_dir))
    assert sent == stopped["intended_sent"] >= 990
    assert server_successes(run_dir) == pytest.approx(sent, abs=2)


def test_a_worker_started_separately_joins_and_faults_stay_on_the_master(tmp_path: Path) -> None:
    """`harness worker --master` as on another machine; the fault is injected by the master only."""
    path = write(tmp_path, "remote-worker", "{user: triton_http, users: 4, duration: 8s}",
                 "[{kind: process_freeze, at: 3s, duration: 1.5s, role: server}]")
    master = f"127.0.0.1:{free_ports(1)[0]}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    run = subprocess.Popen([*HARNESS, "run", str(path), "--runs-dir", "runs", "--no-progress",
                            "--remote-workers", "1", "--master-bind", master],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = subprocess.Popen([*HARNESS, "worker", "--master", master], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_out, _ = run.communicate(timeout=120)
        worker_out, _ = worker.communicate(timeout=30)
    finally:
        for proc in (run, worker):
            if proc.poll() is None:
                proc.kill()
    assert run.returncode == ExitCode.PASS, run_out
    assert f"join with: harness worker --master HOST:{master.split(':')[1]}" in run_out
    assert worker.returncode == 0, worker_out
    run_dir = only_run_dir(tmp_path / "runs")
    assert [e["index"] for e in journal_events(run_dir, "load_worker_joined")] == [0]
    injected = journal_events(run_dir, "fault_injected")
    assert len(injected) == 1 and len(journal_events(run_dir, "fault_restored")) == 1
    assert "fault" not in worker_out.lower()
    start = injected[0]["t"]
    frozen = [r for r in seconds_of(run_dir) if start - 1 < r["t"] < start + 3 and r["ok"]]
    assert max(r["latency_ms"]["max"] for r in frozen) > 1000  # the worker's requests waited out the freeze


def test_a_sigkilled_master_leaves_workers_that_cleanup_stops(tmp_path: Path) -> None:
    path = write(tmp_path, "killed-master", "{user: triton_http, users: 4, duration: 60s}")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    run = subprocess.Popen([*HARNESS, "run", str(path), "--runs-dir", "runs", "--no-progress",
                            "--workers", "2"], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_dir = wait_for_event(tmp_path / "runs", "load_started", timeout=90)
        time.sleep(1.0)
        workers = [psutil.Process(p) for p in _worker_pids(run_dir)]
        assert len(workers) == 2 and all(w.is_running() for w in workers)
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        result = run_harness("cleanup", str(run_dir), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("stopped load worker pid") == 2
        psutil.wait_procs(workers, timeout=5)
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    finally:
        if run.poll() is None:
            run.kill()


def _worker_pids(run_dir: Path) -> list[int]:
    import json

    for line in (run_dir / "restore.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("undo") == "harness.load.distributed:stop_workers":
            return [w["pid"] for w in record["plan"]["workers"]]
    return []
