"""Trends across a soak's cycle records: RSS slopes (leak detection), p99 drift, error windows.

Pure functions over the records of `soak.jsonl` (harness.soak.cycle.compact_record).
"""

from dataclasses import asdict, dataclass
from statistics import linear_regression
from typing import Any

Point = tuple[float, float]
HOUR_S = 3600.0


def fit_line(points: list[Point]) -> tuple[float, float] | None:
    """(slope, intercept) of the least-squares line; None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    xs, ys = zip(*points, strict=True)
    line = linear_regression(xs, ys)
    return line.slope, line.intercept


def slope(points: list[Point]) -> float | None:
    """Least-squares slope dy/dx; None with fewer than two distinct x."""
    line = fit_line(points)
    return None if line is None else line[0]


@dataclass
class RssTrend:
    samples: int
    from_s: float | None  # the first sample used (after the warm-up)
    first_mb: float | None
    last_mb: float | None
    min_mb: float | None
    max_mb: float | None
    slope_mb_per_h: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rss_trend(points: list[Point], warmup_s: float) -> RssTrend:
    """The slope in MB/hour over the samples after `warmup_s` (all of them if that leaves < 2).

    Samples of 0 MB (no process of the stack alive at that moment, e.g. mid-restart) are left
    out: they say the server was down, not that it freed its memory.
    """
    live = [(t, mb) for t, mb in points if mb > 0]
    used = [(t, mb) for t, mb in live if t >= warmup_s]
    if len(used) < 2:
        used = live
    per_s = slope(used)
    values = [mb for _, mb in used]
    return RssTrend(
        samples=len(used),
        from_s=used[0][0] if used else None,
        first_mb=values[0] if values else None,
        last_mb=values[-1] if values else None,
        min_mb=min(values, default=None),
        max_mb=max(values, default=None),
        slope_mb_per_h=None if per_s is None else round(per_s * HOUR_S, 3),
    )


def p99_drift(records: list[dict[str, Any]], warmup_s: float = 0.0) -> dict[str, Any]:
    """p99 of the first cycles against the last ones (a quarter of the cycles each, 1 to 5),
    and the least-squares slope of each cycle's p99 in ms/hour. Cycles that start within the
    warm-up are left out (unless that leaves fewer than two): the first one also holds the
    users' start and the server's warm-up. A cut-short last cycle counts like any other."""
    measured = [r for r in records if r.get("p99_ms") is not None]
    settled = [r for r in measured if float(r.get("offset_s") or 0.0) >= warmup_s - 1e-6]
    points = [(_mid(r), float(r["p99_ms"])) for r in (settled if len(settled) >= 2 else measured)]
    if not points:
        return {"cycles": 0, "first_ms": None, "last_ms": None, "drift_ms": None, "drift_pct": None,
                "slope_ms_per_h": None}
    k = max(1, min(5, len(points) // 4))
    first = sum(y for _, y in points[:k]) / k
    last = sum(y for _, y in points[-k:]) / k
    per_s = slope(points)
    return {
        "cycles": len(points),
        "compared": k,
        "first_ms": round(first, 3),
        "last_ms": round(last, 3),
        "drift_ms": round(last - first, 3),
        "drift_pct": round((last - first) / first * 100, 2) if first > 0 else None,
        "slope_ms_per_h": None if per_s is None else round(per_s * HOUR_S, 3),
    }


def _mid(record: dict[str, Any]) -> float:
    return float(record.get("offset_s") or 0.0) + float(record.get("duration_s") or 0.0) / 2


def totals(records: list[dict[str, Any]]) -> dict[str, Any]:
    requests = sum(int(r.get("requests") or 0) for r in records)
    ok = sum(int(r.get("ok") or 0) for r in records)
    by_kind: dict[str, int] = {}
    for record in records:
        for kind, count in (record.get("errors_by_kind") or {}).items():
            by_kind[kind] = by_kind.get(kind, 0) + int(count)
    seconds = sum(float(r.get("duration_s") or 0.0) for r in records)
    return {
        "cycles": len(records),
        "requests": requests,
        "ok": ok,
        "errors": requests - ok,
        "error_rate": round((requests - ok) / requests, 6) if requests else None,
        "throughput_rps": round(ok / seconds, 2) if seconds > 0 else None,
        "duration_s": round(seconds, 3),
        "errors_by_kind": by_kind,
        "faults": sum(len(r.get("faults") or []) for r in records),
        "failed_in_faults": sum(int(r.get("failed_in_faults") or 0) for r in records),
    }


def error_windows(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The largest error window of each cycle, and over the whole soak."""
    per_cycle = [r.get("error_window_s") for r in records]
    seen = [w for w in per_cycle if w is not None]
    recoveries = [r["recovery_s"] for r in records if r.get("recovery_s") is not None]
    return {
        "max_s": max(seen, default=None),
        "mean_s": round(sum(seen) / len(seen), 3) if seen else None,
        "slope_s_per_h": _per_hour(slope([(_mid(r), float(r["error_window_s"])) for r in records
                                          if r.get("error_window_s") is not None])),
        "recovery_max_s": max(recoveries, default=None),
        "unrecovered": sum(int(r.get("unrecovered") or 0) for r in records),
    }


def _per_hour(per_s: float | None) -> float | None:
    return None if per_s is None else round(per_s * HOUR_S, 3)


def rss_points(records: list[dict[str, Any]], key: str) -> list[Point]:
    """Every record's RSS samples (`target_rss` or `harness_rss`) in time order."""
    return [(float(t), float(mb)) for r in records for t, mb in (r.get(key) or [])]


def thin(points: list[Point], most: int = 2000) -> list[Point]:
    """At most `most` points for a chart (every n-th, the last kept)."""
    if len(points) <= most:
        return points
    step = -(-len(points) // most)
    kept = points[::step]
    return kept if kept[-1] == points[-1] else [*kept, points[-1]]
