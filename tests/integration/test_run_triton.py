"""`harness run` against a real tritonserver, through the CLI, as a user runs it."""

import json
import signal
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import psutil
import pytest

from harness.exitcodes import ExitCode
from harness.journal import read_journal
from tests.conftest import HARNESS, only_run_dir, run_harness
from tests.reportpage import time_charts

pytestmark = pytest.mark.real

BASE = """\
name: {name}
stack: {{kind: triton, model: identity, instances: 2}}
load: {load}
slo: {slo}
"""


def scenario(tmp_path: Path, name: str, load: str, slo: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(BASE.format(name=name, load=load, slo=slo), encoding="utf-8")
    return path


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_passing_run_writes_journal_verdict_and_reports(tmp_path: Path) -> None:
    # `log.signal_any <= 0`: Triton logs `Signal (15) received.` at the harness's own stop; that is
    # no server event, and must neither fail the SLO nor read as one in the story or findings.
    path = scenario(tmp_path, "ok", "{user: triton_http, users: 8, duration: 6s}",
                    '["error_rate < 0.001", "p99_ms < 500", {metric: throughput_rps, min: 50},'
                    ' "log.signal_any <= 0"]')
    result = run_harness("run", str(path), "--runs-dir", "runs", cwd=tmp_path)
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    assert "verdict: PASS" in result.stdout
    run_dir = only_run_dir(tmp_path / "runs")
    records = read_journal(run_dir / "journal.jsonl")
    events = [r["event"] for r in records if r["type"] == "event"]
    for name in ("run_started", "stack_starting", "stack_ready", "load_started", "load_stopped",
                 "stack_stopped", "run_ended"):
        assert name in events
    seconds = [r for r in records if r["type"] == "second"]
    assert len(seconds) >= 5 and all("hdr" in s for s in seconds if s["ok"])
    summary = summary_of(run_dir)
    assert summary["verdict"] == "pass" and summary["exit_code"] == 0
    assert summary["totals"]["requests"] > 300 and summary["totals"]["errors"] == 0
    assert summary["stack"]["startup_s"] > 0
    assert summary["stack"]["stop"]["exits"]["server"]["exit_code"] == 0
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert len(suite.findall("testcase")) == 4 and suite.get("tests") == "4" and suite.get("failures") == "0"
    assert time_charts((run_dir / "report.html").read_text())
    signal_slo = next(s for s in summary["slos"] if s["metric"] == "log.signal_any")
    assert signal_slo["passed"] and signal_slo["measured"] == 0
    assert not any("Signal (15)" in line for line in summary["story"] + summary["findings"])
    # The line itself is kept, attributed to the SIGTERM the harness sent the server at the stop.
    (term,) = [r for r in records if r.get("event") == "signal_sent" and r["signal"] == "SIGTERM"]
    assert term["pid"] == summary["stack"]["stop"]["exits"]["server"]["pid"]
    lines = [r for r in records if r.get("event") == "log_match" and r["pattern"] == "signal_any"]
    assert [(r["line"], r["attribution"], r["sent_t"]) for r in lines] == [
        ("Signal (15) received.", "harness", term["t"])]
    assert (run_dir / "stack" / "logs" / "tritonserver.log").stat().st_size > 0


def test_failing_slo_exits_1_and_names_it(tmp_path: Path) -> None:
    path = scenario(tmp_path, "strict", "{user: triton_http, users: 4, duration: 4s}",
                    '["p50_ms < 0.001", "error_rate < 0.5"]')
    result = run_harness("run", str(path), "--runs-dir", "runs", cwd=tmp_path)
    assert result.returncode == ExitCode.SLO_FAILED, result.stdout + result.stderr
    assert "p50_ms < 0.001" in result.stdout
    run_dir = only_run_dir(tmp_path / "runs")
    cases = ET.parse(run_dir / "junit.xml").getroot().findall("testcase")
    assert [c.find("failure") is not None for c in cases] == [True, False]


def test_open_model_grpc_with_step_stages(tmp_path: Path) -> None:
    load = "{user: triton_grpc, users: 16, stages: [{duration: 3s, rate: 100}, {duration: 3s, rate: 300}]}"
    path = scenario(tmp_path, "open", load, '["error_rate < 0.01"]')
    result = run_harness("run", str(path), "--runs-dir", "runs", cwd=tmp_path)
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    totals = summary_of(run_dir)["totals"]
    # 3 s at 100/s + 3 s at 300/s = 1200 intended; the harness sends them all on time
    assert 1100 <= totals["requests"] <= 1210
    seconds = [r for r in read_journal(run_dir / "journal.jsonl") if r["type"] == "second" and r["requests"]]
    rates = [s["requests"] for s in seconds[1:-1]]
    assert min(rates) < 150 and max(rates) > 250  # the step is visible per second


def test_stack_that_never_gets_ready_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(
        "name: slow\nstack: {kind: triton, startup_timeout: 50ms}\n"
        "load: {user: triton_http, duration: 2s}\n", encoding="utf-8")
    result = run_harness("run", str(path), "--runs-dir", "runs", cwd=tmp_path)
    assert result.returncode == ExitCode.STACK_FAILED, result.stdout + result.stderr
    summary = summary_of(only_run_dir(tmp_path / "runs"))
    assert summary["verdict"] == "stack_failed" and "startup_timeout" in summary["reason"]
    pid = summary["stack"]["stop"]["exits"]["server"]["pid"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_sigterm_stops_cleanly_and_reports(tmp_path: Path) -> None:
    path = scenario(tmp_path, "term", "{user: triton_http, users: 4, duration: 60s}", "[]")
    proc = subprocess.Popen([*HARNESS, "run", str(path), "--runs-dir", "runs", "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = wait_for_load(tmp_path / "runs")
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, out
    summary = summary_of(run_dir)
    assert summary["verdict"] == "interrupted" and "SIGTERM" in summary["reason"]
    assert summary["totals"]["requests"] > 0
    server = summary["stack"]["stop"]["exits"]["server"]
    assert server["exit_code"] is not None and not _alive(server["pid"])


def test_killed_harness_leaves_a_journal_that_reports(tmp_path: Path) -> None:
    load = "{user: triton_http, users: 4, duration: 60s}"
    path = scenario(tmp_path, "killed", load, '["error_rate < 0.01"]')
    proc = subprocess.Popen([*HARNESS, "run", str(path), "--runs-dir", "runs", "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = wait_for_load(tmp_path / "runs")
    time.sleep(3)
    server_pid = _server_pid(run_dir)
    try:
        proc.kill()
        proc.wait(10)
        result = run_harness("report", str(run_dir), cwd=tmp_path)
        assert result.returncode == ExitCode.INTERRUPTED, result.stdout + result.stderr
        summary = summary_of(run_dir)
        assert summary["verdict"] == "incomplete"
        assert summary["totals"]["requests"] > 100
        assert summary["slos"][0]["passed"]
        charts = {c["title"]: c for c in time_charts((run_dir / "report.html").read_text())}
        ok = next(s for s in charts["Throughput"]["series"] if s["label"] == "ok/s")["points"]
        assert sum(y or 0 for _, y in ok) == summary["totals"]["ok"]  # drawn from the torn journal
    finally:
        _kill_tree(server_pid)


def wait_for_load(runs: Path, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runs.exists():
            for run_dir in runs.iterdir():
                journal = run_dir / "journal.jsonl"
                if journal.exists() and any(r.get("type") == "second" for r in read_journal(journal)):
                    return run_dir
        time.sleep(0.2)
    raise AssertionError("load never started")


def _server_pid(run_dir: Path) -> int:
    ready = next(r for r in read_journal(run_dir / "journal.jsonl") if r.get("event") == "stack_ready")
    return int(ready["stack"]["pid"])


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_tree(pid: int) -> None:
    """The harness was SIGKILLed, so its server is ours to end (by PID, with its children)."""
    try:
        proc = psutil.Process(pid)
        family = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


def test_external_stack_is_loaded_but_not_started_or_stopped(tmp_path: Path) -> None:
    from harness.triton.spec import TritonSpec
    from harness.triton.stack import TritonStack

    stack = TritonStack(TritonSpec(kind="triton"), tmp_path / "own")
    stack.start()
    try:
        stack.wait_ready(60)
        path = tmp_path / "ext.yaml"
        path.write_text(
            "name: ext\n"
            f"stack: {{kind: external, url: '{stack.endpoints.http}', model: identity}}\n"
            "load: {user: triton_http, users: 2, duration: 3s}\nslo: ['error_rate < 0.01']\n",
            encoding="utf-8")
        result = run_harness("run", str(path), "--runs-dir", "runs", cwd=tmp_path)
        assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
        assert summary_of(only_run_dir(tmp_path / "runs"))["totals"]["ok"] > 50
        assert stack.process is not None and stack.process.returncode() is None  # still ours, running
    finally:
        stack.stop()
