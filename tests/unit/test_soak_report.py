"""The soak's verdict and reports, from cycle folders made with the real recorder (no server)."""

import json
from pathlib import Path
from typing import Any

import pytest

from harness.exitcodes import ExitCode
from harness.journal import read_journal
from harness.scenario import load_scenario
from harness.soak.index import cycle_dir, read_records
from harness.soak.report import SoakSettings, build_soak_junit, read_settings, write_soak_reports
from tests.unit.helpers import synthetic_records

SCENARIO = """\
name: soak-demo
stack: {kind: triton}
load: {user: triton_http, users: 2, duration: 10s}
slo:
  - {metric: error_rate, max: 0.01}
"""
MIB = 1024 * 1024


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def make_soak(tmp_path: Path, cycles: int, failing: set[int] = frozenset(), rss_growth_mb_per_s: float = 0.0,
              last_cut_to: int | None = None, interrupted: bool = False, **limits: float) -> tuple[Path, Any]:
    run_dir = tmp_path / "run"
    (run_dir / "scenario.yaml").parent.mkdir(parents=True)
    (run_dir / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    settings = SoakSettings(for_s=10.0 * cycles, cycle_s=10.0, cycles=cycles, warmup_s=0.0, **limits)
    write_jsonl(run_dir / "journal.jsonl", [{"type": "event", "event": "soak_started", "t": 0.0,
                                             **settings.to_dict()}])
    origin = 2.0
    for index in range(cycles):
        start = origin + 10 * index
        seconds = last_cut_to if last_cut_to and index == cycles - 1 else 10
        records = synthetic_records(seconds=seconds, per_second=50, load_start=start,
                                    failing={3} if index + 1 in failing else None)
        for record in records:
            if record.get("event") == "load_started":
                record.update(cycle=index + 1, cycle_s=10.0, soak_start=origin)
        records += [{"type": "series", "name": "memory_rss", "t": start + s,
                     "values": {"server": (100 + rss_growth_mb_per_s * (10 * index + s)) * MIB}}
                    for s in range(seconds)]
        records += [{"type": "series", "name": "harness_rss", "t": start + s, "values": {"rss_mb": 70.0}}
                    for s in range(0, seconds, 5)]
        if interrupted and index == cycles - 1:
            stop = {"type": "event", "event": "interrupted", "t": start + seconds, "signal": "SIGTERM"}
            records.insert(-1, stop)
        write_jsonl(cycle_dir(run_dir, index + 1) / "journal.jsonl", records)
    return run_dir, settings


def test_every_cycle_holding_is_a_pass_with_per_cycle_reports(tmp_path: Path) -> None:
    run_dir, settings = make_soak(tmp_path, cycles=3)
    assert read_settings(run_dir) == settings
    verdict, soak = write_soak_reports(run_dir, load_scenario(run_dir / "scenario.yaml"), settings)
    assert verdict.code == ExitCode.PASS and soak["cycles_done"] == 3
    records = read_records(run_dir)
    assert [r["cycle"] for r in records] == [1, 2, 3]
    assert sum(r["requests"] for r in records) == soak["totals"]["requests"] == 3 * 10 * 50
    for record in records:
        assert (run_dir / record["dir"] / "report.html").is_file()
        assert json.loads((run_dir / record["dir"] / "summary.json").read_text())["verdict"] == "pass"
        assert record["target_rss_mb"] == pytest.approx(100) and record["harness_rss_mb"] == 70
        assert record["offset_s"] == pytest.approx(10 * (record["cycle"] - 1))
    assert soak["target_rss"]["slope_mb_per_h"] == pytest.approx(0)
    html = (run_dir / "soak.html").read_text()
    assert "Target RSS" in html and "cycles/0002/report.html" in html
    assert b'tests="3"' in (run_dir / "junit.xml").read_bytes()


def test_failed_cycles_are_named_and_a_cut_short_last_cycle_is_not_judged(tmp_path: Path) -> None:
    run_dir, settings = make_soak(tmp_path, cycles=4, failing={2, 4}, last_cut_to=4)
    verdict, soak = write_soak_reports(run_dir, load_scenario(run_dir / "scenario.yaml"), settings)
    assert verdict.code == ExitCode.SLO_FAILED
    assert soak["cycles_failed"] == [2] and soak["cycles_partial"] == [4]
    assert "1 cycle(s) failed their SLOs: 2" in verdict.reason
    junit = build_soak_junit(soak).decode()
    assert junit.count("<failure") == 1 and "not judged" in junit


def test_rss_slope_limit_catches_a_leak(tmp_path: Path) -> None:
    run_dir, settings = make_soak(tmp_path, cycles=3, rss_growth_mb_per_s=0.01, max_rss_slope_mb_per_h=20)
    verdict, soak = write_soak_reports(run_dir, load_scenario(run_dir / "scenario.yaml"), settings)
    assert soak["target_rss"]["slope_mb_per_h"] == pytest.approx(36.0)
    assert verdict.code == ExitCode.SLO_FAILED and "target RSS slope" in verdict.reason
    (limit,) = soak["limits"]
    assert not limit["passed"] and limit["measured"] == pytest.approx(36.0)


def test_interrupted_soak_reports_the_cycles_done(tmp_path: Path) -> None:
    run_dir, settings = make_soak(tmp_path, cycles=3, interrupted=True, last_cut_to=3)
    verdict, soak = write_soak_reports(run_dir, load_scenario(run_dir / "scenario.yaml"), settings)
    assert verdict.code == ExitCode.INTERRUPTED and verdict.word == "interrupted"
    assert "cycle 3 of 3; 2 complete" in verdict.reason
    assert soak["cycles_done"] == 2 and soak["cycles_partial"] == []


def test_a_killed_soak_is_incomplete_and_report_finishes_missing_cycles(tmp_path: Path) -> None:
    run_dir, settings = make_soak(tmp_path, cycles=2)
    journal = cycle_dir(run_dir, 2) / "journal.jsonl"
    kept = [r for r in read_journal(journal) if r.get("event") != "run_ended"]  # killed: never ended
    write_jsonl(journal, kept)
    verdict, soak = write_soak_reports(run_dir, load_scenario(run_dir / "scenario.yaml"), settings)
    assert verdict.code == ExitCode.INTERRUPTED and verdict.word == "incomplete"
    assert len(read_records(run_dir)) == 2
