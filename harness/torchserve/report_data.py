"""The TorchServe part of summary.json: retry settings, the observed retry schedule, storms,
give-ups, each worker's states over time, and how long worker faults kept workers down.

The retry schedule comes from the frontend log in the run folder (so a run that never got
ready, or was killed, still shows it); worker states from the observer's journal events.
Times are on the run clock; log lines carry wall-clock times, mapped through `run_started`.
"""

import json
from pathlib import Path
from typing import Any

from harness.analysis import RunData
from harness.roles import entry_roles, role_table
from harness.torchserve.logparse import WorkerEvent, parse_lines
from harness.torchserve.measures import no_worker_ready, worker_samples, workers_back
from harness.torchserve.retries import RetryTracker
from harness.torchserve.spec import TorchServeSpec

LOG_NAME = Path("stack") / "logs" / "torchserve.log"
SETTINGS_PATH = Path("stack") / "model_settings.json"  # written by the stack
WAIT_TOLERANCE_S = 0.5  # a measured back-off within this of the announced one matches
MAX_STATE_ROWS = 500  # summary.json keeps this many state changes, the first ones


def torchserve_summary(run_dir: Path, stack_spec: Any, data: RunData) -> dict[str, Any] | None:
    if getattr(stack_spec, "kind", None) != "torchserve":
        return None
    offset = _wall_offset(data)
    events = _log_events(run_dir / LOG_NAME, offset, _stop_began(data))
    tracker = RetryTracker(storm_after=stack_spec.storm_after)
    tracker.feed_all(events)
    steps = [_step_row(step, offset) for step in tracker.steps()]
    settings = retry_settings(stack_spec, run_dir)
    storm = tracker.storm()
    given_up = tracker.given_up(tracker.last_t) if events else []
    return {
        "model": stack_spec.model,
        "handler": stack_spec.handler,
        "settings": settings,
        "retries": steps,
        "fibonacci": _fibonacci_verdict(steps),
        "storm": None if storm is None else {
            "error": storm.error, "failures": storm.failures, "workers": list(storm.workers),
            "first_t": _run_t(storm.first_t, offset), "detected_t": _run_t(storm.detected_t, offset),
            "last_t": _run_t(storm.last_t, offset),
        },
        "given_up": [{"worker": a.worker, "stopped_t": _run_t(a.stopped_t, offset), "error": a.error}
                     for a in given_up],
        "not_recoverable": _not_recoverable(data, tracker, settings["effective_max_retry_timeout_s"]),
        "attempts": _attempts(tracker, offset),
        "states": worker_states(data, events, offset),
        "faults": [_fault_row(b) for b in workers_back(data)],
        "no_worker_ready": [{"from_t": a, "to_t": b, "seconds": round(b - a, 3)}
                            for a, b in no_worker_ready(data)],
    }


def retry_settings(stack_spec: Any, run_dir: Path) -> dict[str, Any]:
    """What the scenario asked for beside what TorchServe says it uses (management API)."""
    effective = _model_settings(run_dir)
    return {
        "configured_max_retry_timeout_s": stack_spec.max_retry_timeout,
        "effective_max_retry_timeout_s": effective.get("maxRetryTimeoutInSec"),
        "response_timeout_s": effective.get("responseTimeout", int(stack_spec.response_timeout)),
        "workers": stack_spec.workers,
        "storm_after": stack_spec.storm_after,
        "backoff": "Fibonacci 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, ... s (TorchServe 0.12 WorkerThread)",
    }


def _model_settings(run_dir: Path) -> dict[str, Any]:
    """What the stack saved from the management API (absent if the API never answered)."""
    try:
        settings = json.loads((run_dir / SETTINGS_PATH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def _wall_offset(data: RunData) -> float:
    """wall-clock seconds minus run-clock seconds."""
    started = data.first_event("run_started")
    if started is None or "wall" not in started:
        return 0.0
    return float(started["wall"]) - float(started["t"])


def _stop_began(data: RunData) -> float | None:
    """Run-clock time the harness began stopping the stack (shutdown lines are not failures)."""
    stopped = [e for e in data.events if e["event"] == "stack_stopped" and not e.get("restart")]
    if not stopped:
        return None
    exits = stopped[-1].get("report", {}).get("exits", {})
    # The entry process's stop: TorchServe's declaration says which role that is.
    entry = entry_roles(role_table(TorchServeSpec.ROLES))[0]
    seconds = exits.get(entry, {}).get("seconds", 0.0)
    return float(stopped[-1]["t"]) - float(seconds or 0.0)


def _log_events(path: Path, offset: float, stop_began: float | None) -> list[WorkerEvent]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    events = parse_lines(text)
    if stop_began is None:
        return events
    return [e for e in events if e.t - offset < stop_began]


def _run_t(wall: float | None, offset: float) -> float | None:
    return None if wall is None else round(wall - offset, 3)


def _step_row(step: Any, offset: float) -> dict[str, Any]:
    matches = step.announced_s == step.expected_s and (
        step.waited_s is None or abs(step.waited_s - step.announced_s) <= WAIT_TOLERANCE_S
    )
    return {
        "worker": step.worker, "n": step.n, "t": _run_t(step.t, offset), "announced_s": step.announced_s,
        "expected_s": step.expected_s, "waited_s": step.waited_s, "since_previous_s": step.since_previous_s,
        "matches": matches,
    }


def _fibonacci_verdict(steps: list[dict[str, Any]]) -> bool | None:
    """True when every retry's back-off was the Fibonacci value (None: no retry seen)."""
    if not steps:
        return None
    return all(s["matches"] for s in steps)


def _not_recoverable(data: RunData, tracker: RetryTracker, retry_timeout: int | None) -> str | None:
    """The harness's own words when it stopped early; else what the log shows."""
    failed = data.first_event("stack_failed")
    if failed is not None and "not recoverable" in str(failed.get("error", "")):
        text = str(failed["error"])
        return text[text.index("not recoverable"):]
    reason = tracker.not_recoverable(tracker.last_t, retry_timeout)
    return None if reason is None else f"not recoverable: {reason}"


def _attempts(tracker: RetryTracker, offset: float) -> list[dict[str, Any]]:
    rows = []
    for worker, history in tracker.attempts.items():
        for attempt in history:
            rows.append({
                "worker": worker,
                "launch_t": _run_t(attempt.launch_t, offset),
                "ready_t": _run_t(attempt.ready_t, offset),
                "stopped_t": _run_t(attempt.stopped_t, offset),
                "error": attempt.error,
                "retry_delay_s": attempt.retry_delay_s,
            })
    return sorted(rows, key=lambda r: (r["launch_t"] is None, r["launch_t"] or 0.0))


def worker_states(data: RunData, events: list[WorkerEvent], offset: float) -> list[dict[str, Any]]:
    """Each worker's state changes: from the management API (status, pid) and from the log."""
    rows: list[dict[str, Any]] = []
    last: dict[str, tuple[Any, Any]] = {}
    for sample in worker_samples(data):
        for worker in sample["workers"]:
            state = (worker["pid"], worker["status"])
            if last.get(worker["id"]) != state:
                last[worker["id"]] = state
                rows.append({"t": sample["t"], "source": "api", "worker": worker["id"],
                             "state": worker["status"], "pid": worker["pid"]})
    for event in events:
        if event.kind in ("launch", "ready", "stopped", "retry"):
            words = {"launch": "launched", "ready": "model loaded", "stopped": "stopped",
                     "retry": f"retry in {event.delay_s}s"}
            rows.append({"t": round(event.t - offset, 3), "source": "log", "worker": event.worker,
                         "state": words[event.kind], "pid": None})
    rows.sort(key=lambda r: r["t"])
    return rows[:MAX_STATE_ROWS]


def _fault_row(back: Any) -> dict[str, Any]:
    return {"id": back.fault_id, "name": back.name, "injected_t": back.injected_t, "down_t": back.down_t,
            "ready_t": back.ready_t, "ready_s": back.ready_s}
