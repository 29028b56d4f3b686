"""A scenario's recorded runs as metric histories: one value (and interval) per run per metric.

The metrics of one run, named as the harness names them:
- each SLO's metric (`p99_ms`, `recovery_s`; `error_rate in outside_faults` for a window other
  than the whole run), with its interval and samples;
- the run's totals where no SLO of the whole run measured them: `p50_ms`, `p99_ms`,
  `error_rate`, `throughput_rps`;
- each fault's impact: `recover_s (process_kill)`, `detect_s (...)`, `error_window_s (...)`,
  `failed_requests (...)`, by the fault's name (a soak cycle's fault ids differ from cycle to
  cycle, its names do not); a second fault of the same name is `(process_kill #2)`.
Each metric also says which way is worse, for `regress`: from its SLO's operator, else by kind.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.store.db import Store, StoreError

if TYPE_CHECKING:
    from harness.store.models import RunRecord

LOWER, HIGHER = -1, 1  # which way is better
_TOTALS = (("p50_ms", LOWER), ("p99_ms", LOWER), ("error_rate", LOWER), ("throughput_rps", HIGHER))
_FAULT_FIELDS = ("recover_s", "detect_s", "error_window_s", "failed_requests")


@dataclass(frozen=True)
class Point:
    value: float
    low: float | None = None
    high: float | None = None
    samples: int | None = None


@dataclass
class History:
    scenario: str
    runs: list[RunRecord]  # oldest first
    metrics: dict[str, list[Point | None]] = field(default_factory=dict)  # aligned with runs
    better: dict[str, int] = field(default_factory=dict)

    def values(self, metric: str) -> tuple[list[int], list[float]]:
        """The runs (indices) that have the metric, and its values there."""
        pairs = [(i, p.value) for i, p in enumerate(self.metrics[metric]) if p is not None]
        return [i for i, _ in pairs], [v for _, v in pairs]


def run_points(run: RunRecord) -> dict[str, tuple[Point, int]]:
    """The metrics of one run: name -> (value, which way is better)."""
    out: dict[str, tuple[Point, int]] = {}
    for name, better in _TOTALS:
        value = getattr(run, name)
        if value is not None:
            out[name] = (Point(value, samples=run.requests), better)
    for slo in run.slos:
        if slo.measured is None:
            continue
        name = slo.metric if slo.window == "all" else f"{slo.metric} in {slo.window}"
        better = LOWER if slo.op in ("<", "<=") else HIGHER
        out[name] = (Point(slo.measured, slo.ci_low, slo.ci_high, slo.samples), better)
    seen: dict[str, int] = {}
    for fault in run.faults:
        seen[fault.name] = seen.get(fault.name, 0) + 1
        label = fault.name if seen[fault.name] == 1 else f"{fault.name} #{seen[fault.name]}"
        for attr in _FAULT_FIELDS:
            value = getattr(fault, attr)
            if value is not None:
                out[f"{attr} ({label})"] = (Point(float(value)), LOWER)
    return out


def load_history(store: Store, scenario: str, patterns: Sequence[str] = (), last: int | None = None,
                 flag: str = "--metric") -> History:
    """The scenario's runs, oldest first (the newest `last` of them), and the metrics asked for
    (shell patterns: `recover_s*`; none: all). Unknown scenario or metric: StoreError naming it."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from harness.store.models import RunRecord

    with store.session() as session:
        query = (select(RunRecord).where(RunRecord.scenario == scenario)
                 .options(selectinload(RunRecord.slos), selectinload(RunRecord.faults))
                 # A soak's cycles share its start: their number orders them.
                 .order_by(RunRecord.started_at.desc(), RunRecord.position.desc(), RunRecord.id.desc()))
        if last is not None:
            query = query.limit(last)
        runs = list(reversed(session.scalars(query).all()))
        if not runs:
            known = session.scalars(select(RunRecord.scenario).distinct().order_by(RunRecord.scenario)).all()
            listed = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "") if known else "none yet"
            raise StoreError(f"scenario {scenario!r}: no runs of it in store {store.shown} "
                             f"(scenarios there: {listed})")
    history = History(scenario, runs)
    per_run = [run_points(run) for run in runs]
    names: list[str] = []
    for points in per_run:
        names.extend(name for name in points if name not in names)
    chosen = [n for n in names if not patterns or any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise StoreError(f"{flag} {pattern!r}: no such metric in {scenario!r}'s runs "
                             f"(there: {', '.join(names)})")
    for name in chosen:
        history.metrics[name] = [points[name][0] if name in points else None for points in per_run]
        history.better[name] = next(points[name][1] for points in per_run if name in points)
    return history
