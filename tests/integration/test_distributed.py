"""Distributed load against a real Triton: Locust master here, users in worker processes."""

import json
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
    """Triton's own count of successful inferences of the load, from the metrics the master scraped:
    less the supervisor's canary inferences, which Triton counts too but the load does not."""
    stopped = [e for e in journal_events(run_dir, "observer_stopped") if e["observer"] == "prometheus"]
    served = float(stopped[0]["summary"]["increase"]["nv_inference_request_success{model=identity}"])
    canary = journal_events(run_dir, "supervisor_stopped")[0].get("canary", {})
    return served - canary.get("ok", 0)


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
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["totals"]["requests"] == journal_total
    assert sorted(w["requests"] for w in summary["load"]["workers"]) == sorted(r["requests"] for r in reports)
    assert "<h3>Load workers</h3>" in (run_dir / "report.html").read_text()


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


@pytest.mark.nightly  # CI runs local and namespaced workers
def test_a_worker_started_separately_joins_and_faults_stay_on_the_master(tmp_path: Path) -> None:
    """`harness worker --master` as on another machine; the fault is injected by the master only."""
    path = write(tmp_path, "remote-worker", "{user: triton_http, users: 4, duration: 8s}",
                 "[{kind: process_freeze, at: 3s, duration: 1.5s, role: server}]")
    master = f"127.0.0.1:{free_ports(1)[0]}"
    run = _start([*HARNESS, "run", str(path), "--runs-dir", "runs", "--no-progress",
                  "--remote-workers", "1", "--master-bind", master], tmp_path)
    worker = _start([*HARNESS, "worker", "--master", master], tmp_path)
    run_out, worker_out = _outputs(run, worker)
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


def _start(argv: list[str], cwd: Path) -> "subprocess.Popen[str]":
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(argv, cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _outputs(run: "subprocess.Popen[str]", worker: "subprocess.Popen[str]") -> tuple[str, str]:
    """Both outputs once the run ended (and its worker with it); kills what is left on a timeout."""
    try:
        return run.communicate(timeout=120)[0], worker.communicate(timeout=30)[0]
    finally:
        for proc in (run, worker):
            if proc.poll() is None:
                proc.kill()


def _worker_pids(run_dir: Path) -> list[int]:
    for line in (run_dir / "restore.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("undo") == "harness.load.distributed:stop_workers":
            return [w["pid"] for w in record["plan"]["workers"]]
    return []


@pytest.fixture
def namespace() -> Any:
    """A network namespace joined to this host by a veth pair: (namespace, host-side address)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tag = os.getpid() % 10_000
    name, host_if, ns_if = f"hxns{tag}", f"hxh{tag}", f"hxn{tag}"
    subnet = 16 + tag % 200
    host_ip, ns_ip = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    setup = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["ip", "link", "set", ns_if, "netns", name],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "netns", "exec", name, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if],
        ["ip", "netns", "exec", name, "ip", "link", "set", ns_if, "up"],
        ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
    ]
    try:
        for argv in setup:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            if done.returncode != 0:
                pytest.skip(f"cannot make a network namespace here: {' '.join(argv)}: {done.stderr.strip()}")
        yield name, host_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def test_a_worker_in_a_network_namespace_joins_over_a_veth_link(tmp_path: Path, namespace: Any) -> None:
    """One local worker and one in a namespace, reaching the master and Triton over a real link."""
    ns_name, host_ip = namespace
    path = tmp_path / "netns.yaml"
    path.write_text(SCENARIO.format(name="netns", load="{user: triton_http, users: 8, duration: 6s}",
                                    faults="[]").replace("instances: 2", f"instances: 2, listen: {host_ip}"),
                    encoding="utf-8")
    master = f"{host_ip}:{free_ports(1, host_ip)[0]}"
    run = _start([*HARNESS, "run", str(path), "--runs-dir", "runs", "--no-progress", "--workers", "1",
                  "--remote-workers", "1", "--master-bind", master], tmp_path)
    worker = _start(["ip", "netns", "exec", ns_name, *HARNESS, "worker", "--master", master], tmp_path)
    run_out, worker_out = _outputs(run, worker)
    assert run.returncode == ExitCode.PASS, run_out + worker_out
    assert worker.returncode == 0, worker_out
    run_dir = only_run_dir(tmp_path / "runs")
    assert journal_events(run_dir, "stack_ready")[0]["stack"]["endpoints"]["http"].startswith(f"http://{host_ip}:")
    stopped = journal_events(run_dir, "load_stopped")[0]
    total = sum(r["requests"] for r in seconds_of(run_dir))
    assert len(stopped["worker_reports"]) == 2
    assert all(r["requests"] > 0.1 * total for r in stopped["worker_reports"])
    assert sum(r["requests"] for r in stopped["worker_reports"]) == total
    assert server_successes(run_dir) == pytest.approx(total, rel=0.005)


@pytest.mark.nightly  # CI runs local and namespaced workers
def test_a_worker_killed_mid_run_is_journaled_and_the_rest_goes_on(tmp_path: Path) -> None:
    path = write(tmp_path, "lost-worker", "{user: triton_http, users: 8, duration: 12s}")
    argv = [*HARNESS, "run", str(path), "--runs-dir", "runs", "--no-progress", "--workers", "2"]
    run = _start(argv, tmp_path)
    try:
        run_dir = wait_for_event(tmp_path / "runs", "load_started", timeout=90)
        time.sleep(3.0)
        victim = psutil.Process(_worker_pids(run_dir)[0])
        victim.kill()
        out, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode in (ExitCode.PASS, ExitCode.SLO_FAILED), out  # a verdict, not a crash or a hang
    lost = journal_events(run_dir, "load_worker_lost")
    started = journal_events(run_dir, "load_started")[0]["t"]
    assert len(lost) == 1 and lost[0]["t"] - started < 3.0 + 6.0  # Locust's heartbeat: about 3 s
    stopped = journal_events(run_dir, "load_stopped")[0]
    assert len(stopped["workers_without_final"]) == 1
    seconds = seconds_of(run_dir)
    after_loss = [r for r in seconds if lost[0]["t"] + 1 < r["t"] < started + 11]
    assert after_loss and all(r["requests"] > 0 for r in after_loss)  # the other worker goes on
    summary = json.loads((run_dir / "summary.json").read_text())
    assert any("load worker" in finding for finding in summary["findings"])
