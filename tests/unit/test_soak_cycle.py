"""The soak's cycles on the fake stack (SoakRun end to end), and cycle.py's pure functions.

A soak of three 2 s cycles, with the fake's entry killed 0.5 s into every cycle and a restart
policy of at most one restart: each cycle must get its own journal, its own fault firing
(`cN.f0.0`), its own crash, restart and recovery (the restart budget is per cycle), and its own
index record, and nothing may be left running. How the fake feature is plugged in: see
test_run_orchestrator.py. One more seam here: the soak finishes each ended cycle in a child
process (`python -m harness.soak.cycle`) that reads the scenario file again, where the `fake`
kind is not registered; so the test's finisher does the same work (`finish_cycle`) in process.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import locust  # noqa: F401 - first, so gevent patches the standard library as in `harness soak`
import pytest

from harness.analysis import RunData, measure
from harness.exitcodes import ExitCode
from harness.soak.cycle import _cut_short, _series_points, compact_record, rebase_log_counts
from harness.soak.index import cycle_dir, read_records
from harness.soak.run import SoakRun
from tests.unit.fakes.journal import events
from tests.unit.fakes.soak import in_process_soak
from tests.unit.fakes.stack import ENTRY, FakeStack
from tests.unit.helpers import synthetic_records

SCENARIO = f"""
name: fake-soak
stack:
  kind: fake
  respawn_after: 0.2
  restart: {{policy: on-failure, backoff: 0.1, max_restarts: 1}}
load: {{user: fake_http, users: 2, duration: 2s}}
observe: {{metrics: false, canary: false}}
faults:
  - {{kind: process_kill, role: {ENTRY}, at: 0.5}}
slo:
  - crashes <= 1
  - restarts >= 1
"""


@pytest.fixture
def soak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoakRun]:
    with in_process_soak(SCENARIO, tmp_path, monkeypatch) as run:
        yield run


def test_every_cycle_has_its_own_journal_fault_crash_restart_and_record(soak: SoakRun) -> None:
    verdict, summary = soak.execute()
    assert verdict.word == "pass" and verdict.code == ExitCode.PASS, verdict.reason
    assert summary["cycles_planned"] == 3 and summary["cycles_done"] == 3
    records = read_records(soak.run_dir)
    assert [r["cycle"] for r in records] == [1, 2, 3]
    for number, record in enumerate(records, start=1):
        folder = cycle_dir(soak.run_dir, number)
        data = RunData.from_run_dir(folder)
        assert measure(data, "crashes").value == 1 and measure(data, "restarts").value == 1, number
        (row,) = record["faults"]
        assert row["id"] == f"c{number}.f0.0" and row["detected"]
        assert record["recovery_s"] is not None and 0 < record["recovery_s"] < 1.5
        assert record["complete"] and record["verdict"] == "pass"
        assert record["offset_s"] == pytest.approx(2.0 * (number - 1), abs=0.05)
        journal = folder / "journal.jsonl"
        assert events(journal, "fault_injected", id=f"c{number}.f0.0")
        assert events(journal, "restarted")  # the budget of one restart is each cycle's
        assert events(journal, "run_ended")
        assert (folder / "summary.json").is_file()
    stack = soak.stack
    assert isinstance(stack, FakeStack) and stack.starts == 4  # the first start and one restart a cycle
    assert stack.leftovers() == []


# --- cycle.py's pure functions


def cycle_data(seconds: int = 12, load_start: float = 2.0, **started: Any) -> RunData:
    records = synthetic_records(seconds=seconds, per_second=20, load_start=load_start, failing={4})
    for record in records:
        if record.get("event") == "load_started":
            record.update(started)
    return RunData.from_records(records)


def test_log_counts_are_rebased_to_the_cycle_and_never_negative() -> None:
    data = cycle_data(log_baseline={"oom": 3.0, "segv": 1.0})
    data.series["log_matches"] = [{"type": "series", "name": "log_matches", "t": 5.0,
                                   "values": {"oom": 5.0, "segv": 0.0, "new": 2.0}}]
    data.events.append({"type": "event", "event": "observer_stopped", "t": 9.0, "observer": "logwatch",
                        "summary": {"patterns": {"oom": {"count": 7}, "segv": {"count": 1}}}})
    rebase_log_counts(data)
    assert data.series["log_matches"][0]["values"] == {"oom": 2.0, "segv": 0.0, "new": 2.0}
    assert data.events[-1]["summary"]["patterns"] == {"oom": {"count": 4}, "segv": {"count": 0}}


def test_series_points_keep_one_sample_every_5s_and_the_last() -> None:
    data = cycle_data(seconds=12, load_start=2.0)
    data.series["harness_rss"] = [{"t": 2.0 + s, "values": {"rss_mb": 50.0 + s}} for s in range(12)]
    data.series["harness_rss"].append({"t": 30.0, "values": {"rss_mb": 999.0}})  # after the load
    points = _series_points(data, "harness_rss", 0.0, lambda v: v.get("rss_mb"))
    assert points == [[2.0, 50.0], [7.0, 55.0], [12.0, 60.0], [13.0, 61.0]]


def test_a_last_cycle_cut_at_for_is_partial() -> None:
    assert _cut_short({"cycle_s": 10.0}, 4.0) is True
    assert _cut_short({"cycle_s": 10.0}, 9.995) is False
    assert _cut_short({}, 4.0) is False  # an ordinary run is never partial


def test_compact_record_counts_a_cycle_and_its_faults(tmp_path: Path) -> None:
    data = cycle_data(seconds=10, load_start=22.0, cycle=3, cycle_s=10.0, soak_start=2.0)
    summary = {
        "totals": {"duration_s": 10.0, "requests": 200, "ok": 190, "errors": 10, "error_rate": 0.05,
                   "throughput_rps": 19.0, "latency_ms": {"p50": 5.0, "p99": 9.0, "max": 9.9},
                   "errors_by_kind": {"http_503": 10}},
        "verdict": "fail", "exit_code": 1, "reason": "1 failed", "slos": [{"name": "e", "passed": False}],
        "faults": [{"id": "c3.f0.0", "detected_t": 25.0}, {"id": "c3.f1.0", "detected_t": 26.0}],
        "error_windows": [
            {"fault_id": "c3.f0.0", "name": "kill", "window_s": 1.0, "failed_requests": 10,
             "first_error_after_s": 0.1, "last_error_after_s": 1.1, "recover_s": 1.5},
            {"fault_id": "c3.f1.0", "name": "freeze", "window_s": 0.0, "failed_requests": 0,
             "first_error_after_s": None, "last_error_after_s": None, "recover_s": None},
        ],
    }
    run_dir = tmp_path / "run"
    record = compact_record(cycle_dir(run_dir, 3), run_dir, data, summary)
    assert record["cycle"] == 3 and record["dir"] == "cycles/0003"
    assert record["offset_s"] == 20.0 and record["complete"] and not record["partial"]
    assert record["slos_failed"] == ["e"] and record["failed_in_faults"] == 10
    assert record["error_window_s"] == 1.0
    assert record["recovery_s"] is None and record["unrecovered"] == 1  # one never recovered
