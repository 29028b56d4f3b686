"""A finished run's folder as the store's rows: summary.json for what was judged, the journal for
who ran it (its identity, the harness version) and its seconds.

Only the files are read: a run recorded a year later, on another machine, gives the same rows.
"""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.journal import JOURNAL_NAME
from harness.store.folders import SUMMARY, RunFolder
from harness.store.models import FaultImpact, RunRecord, RunSecond, SloResult

MAX_SECONDS = 3600  # rows per run; a longer run's seconds are merged into buckets this many in all
_VOLATILE_INFO = ("endpoints", "pid")  # ports and process ids: different every run, meaning nothing


class NotARun(UsageError):
    """A folder that is not a finished run (no summary.json, or one that does not read)."""


@dataclass(frozen=True)
class Identity:
    """Who the run was: from the journal's `run_started`, so a copied or moved folder is the same run."""

    key: str
    started: float  # wall clock, seconds since the epoch
    harness_version: str | None


def build_record(folder: RunFolder, now: datetime | None = None) -> RunRecord:
    summary = _summary(folder.path)
    identity = read_identity(folder, summary)
    info = dict((summary.get("stack") or {}).get("info") or {})
    totals = summary.get("totals") or {}
    latency = totals.get("latency_ms") or {}
    return RunRecord(
        run_key=identity.key,
        scenario=str(summary.get("scenario") or folder.path.name),
        scenario_sha256=_sha256(folder.scenario_file),
        kind=folder.kind,
        group_name=folder.group.name if folder.group is not None else None,
        position=folder.position,
        started_at=_utc(identity.started),
        recorded_at=now or datetime.now(UTC).replace(tzinfo=None),
        run_dir=str(folder.path),
        stack_kind=_text((summary.get("stack") or {}).get("kind") or info.get("kind")),
        stack_version=_text(info.get("version")),
        stack_info=_clean({k: v for k, v in info.items() if k not in _VOLATILE_INFO}),
        harness_version=identity.harness_version,
        seed=_int(summary.get("seed")),
        expect=_text(summary.get("expect")),
        verdict=str(summary.get("verdict") or "unknown"),
        exit_code=_int(summary.get("exit_code")) or 0,
        reason=str(summary.get("reason") or ""),
        requests=_int(totals.get("requests")),
        ok=_int(totals.get("ok")),
        errors=_int(totals.get("errors")),
        error_rate=_float(totals.get("error_rate")),
        throughput_rps=_float(totals.get("throughput_rps")),
        duration_s=_float(totals.get("duration_s")),
        p50_ms=_float(latency.get("p50")),
        p99_ms=_float(latency.get("p99")),
        totals=_clean(totals),
        findings=_clean(list(summary.get("findings") or [])),
        slos=[_slo(i, slo) for i, slo in enumerate(summary.get("slos") or []) if isinstance(slo, dict)],
        faults=_faults(summary),
        seconds=[RunSecond(**row) for row in coarse_seconds(read_seconds(folder.path / JOURNAL_NAME))],
    )


def read_identity(folder: RunFolder, summary: dict[str, Any] | None = None) -> Identity:
    summary = _summary(folder.path) if summary is None else summary
    scenario = str(summary.get("scenario") or folder.path.name)
    started = _run_started(folder.path / JOURNAL_NAME)
    if started is not None and isinstance(started.get("wall"), int | float):
        key = f"{scenario}@{float(started['wall']):.6f}#{started.get('pid', '')}"
        harness_version = _text(started.get("harness"))
        wall = float(started["wall"])
    else:  # a journal without its first event: the summary's start and the folder's name
        wall = _float(summary.get("started")) or (folder.path / SUMMARY).stat().st_mtime
        key = f"{scenario}@{wall:.6f}/{folder.path.name}"
        harness_version = None
    if folder.kind == "soak_cycle":  # every cycle's journal repeats the soak's own start
        key += f"/cycle-{folder.position}"
    return Identity(key, wall, harness_version)


def read_seconds(journal: Path) -> Iterator[dict[str, Any]]:
    """The journal's per-second records as rows (t, requests, ok, errors, p50_ms, p99_ms)."""
    with journal.open(encoding="utf-8") as handle:
        for line in handle:
            if '"second"' not in line:  # most lines are series samples: skip them unparsed
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if record.get("type") != "second" or not isinstance(record.get("t"), int | float):
                continue
            errors = record.get("errors")
            latency = record.get("latency_ms") or {}
            yield {
                "t": int(record["t"]),
                "requests": _int(record.get("requests")) or 0,
                "ok": _int(record.get("ok")) or 0,
                "errors": sum(v for v in errors.values() if isinstance(v, int)) if isinstance(errors, dict)
                else _int(errors) or 0,
                "p50_ms": _float(latency.get("p50")),
                "p99_ms": _float(latency.get("p99")),
            }


def coarse_seconds(rows: Iterator[dict[str, Any]], limit: int = MAX_SECONDS) -> list[dict[str, Any]]:
    """At most `limit` rows: a longer run's seconds merged into equal buckets (t: the bucket's first
    second; counts summed; p50 the requests-weighted mean, p99 the worst second's: percentiles of
    merged seconds cannot be had without the histograms, and the worst is the one that matters)."""
    by_t: dict[int, dict[str, Any]] = {}
    for row in rows:
        by_t[row["t"]] = row  # a second written twice (a rotated journal's overlap): the last wins
    ordered = [by_t[t] for t in sorted(by_t)]
    if len(ordered) <= limit:
        return ordered
    size = -(-len(ordered) // limit)
    return [_merge(ordered[i:i + size]) for i in range(0, len(ordered), size)]


def _merge(rows: list[dict[str, Any]]) -> dict[str, Any]:
    weighted = [(r["p50_ms"], r["ok"]) for r in rows if r["p50_ms"] is not None and r["ok"]]
    p99s = [r["p99_ms"] for r in rows if r["p99_ms"] is not None]
    ok = sum(r["ok"] for r in rows)
    return {
        "t": rows[0]["t"],
        "requests": sum(r["requests"] for r in rows),
        "ok": ok,
        "errors": sum(r["errors"] for r in rows),
        "p50_ms": round(sum(v * n for v, n in weighted) / sum(n for _, n in weighted), 3) if weighted
        else None,
        "p99_ms": max(p99s) if p99s else None,
    }


def _slo(position: int, slo: dict[str, Any]) -> SloResult:
    ci = slo.get("ci")
    low, high = (ci[0], ci[1]) if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None)
    window = slo.get("window", "all")
    passed = slo.get("passed")
    return SloResult(
        position=position,
        name=str(slo.get("name") or slo.get("metric") or ""),
        metric=str(slo.get("metric") or ""),
        op=str(slo.get("op") or ""),
        threshold=_float(slo.get("threshold")),
        window=window if isinstance(window, str) else json.dumps(window, sort_keys=True),
        measured=_float(slo.get("measured")),
        passed=passed if isinstance(passed, bool) else None,
        samples=_int(slo.get("samples")),
        ci_low=_float(low),
        ci_high=_float(high),
        confidence=_float(slo.get("confidence")),
        ci_method=_text(slo.get("ci_method")) or None,
    )


def _faults(summary: dict[str, Any]) -> list[FaultImpact]:
    windows = {w.get("fault_id"): w for w in summary.get("error_windows") or [] if isinstance(w, dict)}
    out = []
    for i, fault in enumerate(f for f in summary.get("faults") or [] if isinstance(f, dict)):
        window = windows.get(fault.get("id"), {})
        out.append(FaultImpact(
            position=i,
            fault_id=str(fault.get("id") or i),
            kind=str(fault.get("kind") or ""),
            name=str(fault.get("name") or fault.get("kind") or ""),
            injected_t=_float(fault.get("injected_t")),
            detect_s=_float(fault.get("detect_s")),
            recover_s=_float(fault.get("recover_s")),
            detected_by=_text(fault.get("detected_by")),
            failed_requests=_int(fault.get("failed_requests")),
            error_window_s=_float(window.get("window_s")),
            errors_by_kind=_clean(dict(fault.get("errors_by_kind") or {})),
        ))
    return out


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotARun(f"{run_dir}: not a finished run folder (no {SUMMARY})") from None
    except (OSError, ValueError) as exc:
        raise NotARun(f"{path}: does not read as JSON: {exc}") from None
    if not isinstance(summary, dict):
        raise NotARun(f"{path}: not a run summary (a JSON object is expected)")
    return summary


def _run_started(journal: Path) -> dict[str, Any] | None:
    """The first `run_started` event: within the first lines (a soak cycle's starts with it)."""
    try:
        with journal.open(encoding="utf-8") as handle:
            for _, line in zip(range(50), handle, strict=False):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("event") == "run_started":
                    return record
    except OSError:
        return None
    return None


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _utc(wall: float) -> datetime:
    return datetime.fromtimestamp(wall, UTC).replace(tzinfo=None)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None  # JSON has no NaN


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _clean(value: Any) -> Any:
    """JSON that every database takes: Python's json reads NaN and Infinity, PostgreSQL's refuses them."""
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
