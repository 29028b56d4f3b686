"""`harness soak` against a real Triton: cycles, rotating journals, the trend report, early stops."""

import json
import signal
import subprocess
from pathlib import Path

import pytest

from harness.exitcodes import ExitCode
from harness.journal import read_journal
from harness.soak.index import read_records
from tests.conftest import HARNESS, ROOT, only_run_dir, run_harness, wait_for_run

pytestmark = pytest.mark.real

SCENARIO = ROOT / "scenarios/soak/triton-freeze-cycle.yaml"  # 6 s cycles, the server frozen 1.5 s in each


def seconds_in(journal: Path) -> list[dict]:
    return [r for r in read_journal(journal) if r.get("type") == "second"]


def test_three_cycles_with_a_fault_each_and_the_trend_report(tmp_path: Path) -> None:
    result = run_harness("soak", str(SCENARIO), "--for", "18s", "--max-rss-slope-mb-per-h", "100000",
                         "--runs-dir", "runs", "--no-progress", cwd=tmp_path)
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    records = read_records(run_dir)
    assert [r["cycle"] for r in records] == [1, 2, 3]
    for record in records:  # each cycle: its own freeze, its error window to the ms, its recovery
        (fault,) = record["faults"]
        assert fault["id"] == f"c{record['cycle']}.f0.0" and fault["detected_by"] == "hang_detected (server)"
        assert fault["failed_requests"] > 0 and fault["window_s"] is not None
        assert 1.0 < fault["recover_s"] < 4
        assert record["verdict"] == "pass" and record["target_rss_mb"] > 10 and record["harness_rss_mb"] > 10
        cycle = run_dir / record["dir"]
        summary = json.loads((cycle / "summary.json").read_text())  # the ordinary per-cycle report
        assert summary["totals"]["requests"] == record["requests"] and (cycle / "report.html").is_file()
        assert sum(s["requests"] for s in seconds_in(cycle / "journal.jsonl")) == record["requests"]
    assert not seconds_in(run_dir / "journal.jsonl")  # the main journal holds the start-up only
    soak = json.loads((run_dir / "soak.json").read_text())
    assert soak["totals"]["requests"] == sum(r["requests"] for r in records) > 1000
    assert soak["totals"]["faults"] == 3 and soak["cycles_done"] == 3
    assert soak["target_rss"]["slope_mb_per_h"] is not None and soak["limits"][0]["passed"]
    html = (run_dir / "soak.html").read_text()
    for record in records:
        assert f"process_freeze (c{record['cycle']}.f0.0): window" in html
    assert "Error window per cycle" in html and "least squares" in html
    again = run_harness("report", str(run_dir), cwd=tmp_path)  # rebuilt from the folder alone
    assert again.returncode == ExitCode.PASS, again.stdout + again.stderr
    assert json.loads((run_dir / "soak.json").read_text())["totals"] == soak["totals"]


def start_soak(tmp_path: Path, length: str) -> tuple[subprocess.Popen[bytes], Path]:
    command = [*HARNESS, "soak", str(SCENARIO), "--for", length, "--runs-dir", "runs", "--no-progress"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = wait_for_run(tmp_path / "runs", lambda d: len(read_records(d)) >= 1, timeout=60)
    return proc, run_dir


def test_sigterm_mid_soak_still_reports_the_cycles_done(tmp_path: Path) -> None:
    proc, run_dir = start_soak(tmp_path, "10m")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(90) == ExitCode.INTERRUPTED
    records = read_records(run_dir)
    assert len(records) >= 2 and records[0]["verdict"] == "pass"
    assert records[-1]["verdict"] == "interrupted"
    soak = json.loads((run_dir / "soak.json").read_text())
    assert soak["verdict"] == "interrupted" and soak["cycles_done"] == len(records) - 1
    assert "SIGTERM" in soak["reason"] and (run_dir / "soak.html").is_file()
    assert soak["totals"]["requests"] == sum(r["requests"] for r in records)


@pytest.mark.nightly  # CI runs a soak's cycles and its SIGTERM
def test_killed_soak_is_rebuilt_by_report(tmp_path: Path) -> None:
    proc, run_dir = start_soak(tmp_path, "10m")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    cleanup = run_harness("cleanup", str(run_dir), cwd=tmp_path)  # the server the dead harness left
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert not (run_dir / "soak.json").exists()
    result = run_harness("report", str(run_dir), cwd=tmp_path)
    assert result.returncode == ExitCode.INTERRUPTED, result.stdout + result.stderr
    soak = json.loads((run_dir / "soak.json").read_text())
    assert soak["verdict"] == "incomplete" and soak["cycles_done"] >= 1
    assert read_records(run_dir)[-1]["verdict"] == "incomplete"  # the cycle it died in, finished now


@pytest.mark.nightly  # CI runs a soak's cycles and its SIGTERM
def test_a_soak_with_two_load_workers_keeps_every_request_in_its_cycle(tmp_path: Path) -> None:
    scenario = tmp_path / "soak-workers.yaml"
    scenario.write_text("name: soak-workers\nstack: {kind: triton, model: identity}\n"
                        "load: {user: triton_http, users: 8, duration: 5s}\nslo: ['error_rate < 0.01']\n")
    result = run_harness("soak", str(scenario), "--for", "10s", "--workers", "2", "--runs-dir", "runs",
                         "--no-progress", cwd=tmp_path)
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    records = read_records(run_dir)
    assert [r["cycle"] for r in records] == [1, 2]
    for record in records:
        written = seconds_in(run_dir / record["dir"] / "journal.jsonl")
        assert sum(s["requests"] for s in written) == record["requests"] > 1000
    stopped = [r for r in read_journal(run_dir / records[-1]["dir"] / "journal.jsonl")
               if r.get("event") == "load_stopped" and "worker_reports" in r]
    (last,) = stopped
    assert len(last["worker_reports"]) == 2
    assert sum(w["requests"] for w in last["worker_reports"]) == sum(r["requests"] for r in records)
