"""One finished cycle: its reports (the ordinary ones, from its own journal) and its index record.

Run as `python -m harness.soak.cycle CYCLE_DIR RUN_DIR` by the soak, in a process of its own, so
reading the journal and rendering report.html never stall the load's event loop; `harness
report` calls `finish_cycle` directly for cycles a killed soak left without a record.
"""

import os
import sys
from pathlib import Path
from typing import Any

from harness.analysis import RunData
from harness.rundir import SCENARIO_COPY
from harness.scenario import Scenario
from harness.soak.index import append_record
from reports.build import write_reports

SAMPLE_EVERY_S = 5.0  # RSS samples kept in the index: enough for a slope, small for 8 h
MIB = 1024 * 1024


def finish_cycle(cycle_path: Path, run_dir: Path, scenario: Scenario) -> dict[str, Any]:
    """Write the cycle's report.html, summary.json and junit.xml; append and return its record."""
    data = RunData.from_run_dir(cycle_path)
    rebase_log_counts(data)
    verdict, summary = write_reports(cycle_path, scenario, data)
    record = compact_record(cycle_path, run_dir, data, summary)
    append_record(run_dir, record)
    return record


def rebase_log_counts(data: RunData) -> None:
    """Log-pattern counts are the watcher's running totals; make them this cycle's own.

    The cycle's `load_started` event carries the totals at its start (`log_baseline`).
    """
    started = data.first_event("load_started") or {}
    base: dict[str, float] = started.get("log_baseline") or {}
    if not base:
        return
    for sample in data.series.get("log_matches", []):
        sample["values"] = {k: max(0.0, v - base.get(k, 0.0)) for k, v in sample["values"].items()}
    for event in data.events:
        if event["event"] == "observer_stopped" and event.get("observer") == "logwatch":
            for name, stats in event.get("summary", {}).get("patterns", {}).items():
                stats["count"] = max(0, int(stats.get("count", 0)) - int(base.get(name, 0)))


def compact_record(cycle_path: Path, run_dir: Path, data: RunData, summary: dict[str, Any]) -> dict[str, Any]:
    started = data.first_event("load_started") or {}
    origin = float(started.get("soak_start", data.load_start or 0.0))
    totals = summary["totals"]
    latency = totals.get("latency_ms", {})
    faults = _fault_rows(summary)
    detected = [f for f in faults if f["detected"]]
    recover = [f["recover_s"] for f in detected if f["recover_s"] is not None]
    target = _target_rss(data, origin)
    harness = _series_points(data, "harness_rss", origin, lambda v: v.get("rss_mb"))
    return {
        "cycle": int(started.get("cycle", int(cycle_path.name) if cycle_path.name.isdigit() else 0)),
        "dir": _relative(cycle_path, run_dir),
        "offset_s": None if data.load_start is None else round(data.load_start - origin, 3),
        "duration_s": totals.get("duration_s"),
        "wall": started.get("wall"),
        "complete": data.first_event("run_ended") is not None,
        "partial": _cut_short(started, totals.get("duration_s")),
        "verdict": summary["verdict"],
        "exit_code": summary["exit_code"],
        "reason": summary["reason"],
        "slos_failed": [s["name"] for s in summary["slos"] if not s["passed"]],
        "aborted": summary.get("aborted"),  # an abort SLO ended the soak in this cycle (harness.abort)
        "requests": totals["requests"],
        "ok": totals["ok"],
        "errors": totals["errors"],
        "error_rate": totals["error_rate"],
        "throughput_rps": totals["throughput_rps"],
        "p50_ms": latency.get("p50"),
        "p99_ms": latency.get("p99"),
        "max_ms": latency.get("max"),
        "errors_by_kind": totals["errors_by_kind"],
        "faults": faults,
        "error_window_s": max((f["window_s"] for f in faults), default=None),
        "failed_in_faults": sum(f["failed_requests"] for f in faults),
        "recovery_s": max(recover) if recover and len(recover) == len(detected) else None,
        "unrecovered": len(detected) - len(recover),
        "target_rss_mb": target[-1][1] if target else None,
        "target_rss_by_role_mb": _last_by_role(data),
        "target_rss": target,
        "harness_rss_mb": harness[-1][1] if harness else None,
        "harness_rss": harness,
    }


def _cut_short(started: dict[str, Any], duration_s: float | None) -> bool:
    """The soak's last cycle, cut at `--for` before its load shape was over."""
    planned = started.get("cycle_s")
    return planned is not None and duration_s is not None and duration_s < float(planned) - 0.01


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _fault_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each injected fault's error window (to the ms) and recovery, compactly."""
    impacts = {f["id"]: f for f in summary.get("faults", [])}
    rows = []
    for window in summary.get("error_windows", []):
        impact = impacts.get(window["fault_id"], {})
        rows.append({
            "id": window["fault_id"],
            "name": window["name"],
            "window_s": window["window_s"],
            "failed_requests": window["failed_requests"],
            "first_error_after_s": window["first_error_after_s"],
            "last_error_after_s": window["last_error_after_s"],
            "detected": impact.get("detected_t") is not None,
            "detected_by": window.get("detected_by"),
            "recover_s": window.get("recover_s"),
            "errors_by_kind": window.get("errors_by_kind", {}),
        })
    return rows


def _stack_mb(values: dict[str, float]) -> float:
    """The stack's RSS: every role's, sidecars (`sidecar:NAME`) left out."""
    return sum(v for k, v in values.items() if not k.startswith("sidecar:")) / MIB


def _target_rss(data: RunData, origin: float) -> list[list[float]]:
    return _series_points(data, "memory_rss", origin, _stack_mb)


def _series_points(data: RunData, name: str, origin: float, value: Any) -> list[list[float]]:
    """[t from the soak's start, value] every SAMPLE_EVERY_S of the load (and its last sample)."""
    start, end = data.load_start, data.load_end
    samples = [s for s in data.series.get(name, [])
               if start is not None and end is not None and start <= s["t"] <= end]
    points: list[list[float]] = []
    for i, sample in enumerate(samples):
        y = value(sample["values"])
        if y is None:
            continue
        due = not points or sample["t"] - origin - points[-1][0] >= SAMPLE_EVERY_S - 1e-6
        if due or i == len(samples) - 1:
            points.append([round(sample["t"] - origin, 3), round(float(y), 3)])
    return points


def _last_by_role(data: RunData) -> dict[str, float]:
    samples = data.series.get("memory_rss", [])
    if not samples:
        return {}
    return {k: round(v / MIB, 3) for k, v in samples[-1]["values"].items()}


def main(argv: list[str]) -> int:
    from harness.scenario import load_scenario

    try:
        os.nice(10)  # beside a running load: the load generator comes first
    except OSError:
        pass
    cycle_path, run_dir = Path(argv[0]), Path(argv[1])
    finish_cycle(cycle_path, run_dir, load_scenario(run_dir / SCENARIO_COPY))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
