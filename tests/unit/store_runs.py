"""Finished run folders for the store's tests, made by the real report writer from synthetic
journals: the summary.json is the one a real run writes, with no server started."""

import json
import random
from pathlib import Path
from typing import Any

from harness.scenario import load_scenario
from reports.build import write_reports
from tests.unit.helpers import synthetic_records

SCENARIO = """\
name: {name}
stack: {{kind: external, url: "http://127.0.0.1:1", model: m}}
load: {{user: triton_http, duration: 10}}
slo:
  - "p99_ms < 250"
  - "error_rate < 0.2"
"""
WALL = 1_800_000_000.0  # the first run's start: 2027-01-15


def make_run(folder: Path, *, name: str = "unit", index: int = 0, latency_ms: float = 5.0,
             version: str = "2.51.0", seed: int = 7, failing: set[int] | None = None,
             fault: bool = True, scenario_text: str | None = None) -> Path:
    """One finished run in `folder` (made here): journal, scenario copy, summary.json, report."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scenario.yaml").write_text(scenario_text or SCENARIO.format(name=name), encoding="utf-8")
    records = synthetic_records(latency_s=latency_ms / 1000, failing=failing)
    wall = WALL + index * 86_400
    records[0].update(wall=wall, scenario=name, harness="0.1.0", pid=1000 + index, seed=seed)
    records[1]["stack"] = {"kind": "external", "version": version, "pid": 4242,
                           "endpoints": {"http": "http://127.0.0.1:1"}}
    if fault:
        records[3:3] = [
            {"type": "event", "event": "fault_injected", "t": 4.0, "id": "f0.0", "kind": "process_kill",
             "name": "process_kill"},
            {"type": "event", "event": "fault_restored", "t": 4.1, "id": "f0.0"},
        ]
    write_journal(folder, records)
    write_reports(folder, load_scenario(folder / "scenario.yaml"))
    return folder


def make_history(root: Path, latencies_ms: list[float], name: str = "nightly", noise: float = 0.0,
                 seed: int = 1) -> list[Path]:
    """One run per night, each with its latency (plus a little noise: real nights differ)."""
    rng = random.Random(seed)
    return [make_run(root / f"{name}-{i:03d}", name=name, index=i,
                     latency_ms=value * (1 + rng.uniform(-noise, noise)), fault=False)
            for i, value in enumerate(latencies_ms)]


def make_series(folder: Path, repetitions: int = 2, name: str = "unit") -> Path:
    """A series' folder: its repetitions' folders, the scenario copy and series.json."""
    folder.mkdir(parents=True)
    (folder / "scenario.yaml").write_text(SCENARIO.format(name=name), encoding="utf-8")
    reps = []
    for i in range(repetitions):
        rep = make_run(folder / f"{name}-rep{i + 1}", name=name, index=i)
        reps.append({"index": i + 1, "run_dir": str(rep), "verdict": "pass"})
    (folder / "series.json").write_text(json.dumps({"repetitions": reps}), encoding="utf-8")
    return folder


def make_soak(folder: Path, cycles: int = 3, name: str = "soaky") -> Path:
    """A soak's folder: the main journal, the scenario copy, and a finished run per cycle."""
    folder.mkdir(parents=True)
    (folder / "scenario.yaml").write_text(SCENARIO.format(name=name), encoding="utf-8")
    write_journal(folder, [{"type": "event", "event": "soak_started", "t": 0.0}])
    for number in range(1, cycles + 1):
        cycle = make_run(folder / "cycles" / f"{number:04d}", name=name, index=0)
        (cycle / "scenario.yaml").unlink()  # a cycle's folder has none: the soak's is the one
    return folder


def write_journal(folder: Path, records: list[dict[str, Any]]) -> None:
    with (folder / "journal.jsonl").open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


def tree_digest(folder: Path, but: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file's bytes under `folder` (less those named in `but`): to show that recording
    changed none."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in but}
