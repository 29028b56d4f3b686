"""summary.json: the machine-readable result of a run. Its schema is versioned and stable."""

from pathlib import Path
from typing import Any

from harness.abort import aborted_summary
from harness.analysis import RunData, log_patterns_seen, signal_lines, totals
from harness.faultimpact import fault_impacts
from harness.features import ReportSection, SectionContext, report_sections
from harness.logpatterns import signal_name
from harness.scenario import Scenario
from harness.verdict import Verdict
from reports.story import story

SCHEMA = "serving-harness/summary/v1"
_SERIES_EVENTS = {"second"}


def build_summary(run_dir: Path, scenario: Scenario, data: RunData, verdict: Verdict) -> dict[str, Any]:
    ready = data.first_event("stack_ready") or {}
    started = data.first_event("run_started") or {}
    stopped: dict[str, Any] = next(
        (e for e in reversed(data.events) if e["event"] == "stack_stopped"), {}
    )
    run_totals = totals(data)
    sections = report_sections()
    core: dict[str, Any] = {
        "schema": SCHEMA,
        "scenario": scenario.name,
        "description": scenario.description,
        "expect": scenario.expect,
        "run_dir": str(run_dir),
        "started": started.get("wall"),
        "verdict": verdict.word,
        "exit_code": int(verdict.code),
        "exit_name": verdict.code.name,
        "reason": verdict.reason,
        "aborted": aborted_summary(data),  # null, or why and when an abort SLO stopped the run
        "stack": {
            "kind": scenario.stack.kind,
            "startup_s": ready.get("startup_s"),
            "info": ready.get("stack", {}),
            "stop": stopped.get("report", {}),
        },
        "load": {
            "user": scenario.load.user,
            "model": "open" if scenario.load.open_model else "closed",
            "users": scenario.load.users,
            "rate": scenario.load.rate,
            "planned_s": scenario.load.total_duration,
            "started_t": data.load_start,
            "stopped_t": data.load_end,
            "workers": _workers(data),
        },
        "totals": run_totals,
        "slos": [result.to_dict() for result in verdict.slos],
        "faults": [impact.to_dict() for impact in fault_impacts(data)],
        "log_patterns": log_patterns_seen(data),
        "story": story(data, [s.story_phrases for s in sections]),
        "seed": started.get("seed"),
        "findings": findings(data) + [line for s in sections if s.findings for line in s.findings(data)],
        "events": [_event_row(e) for e in data.events],
    }
    ctx = SectionContext(run_dir, scenario, data, run_totals)
    return _placed(core, [(section, section.summary(ctx)) for section in sections])


def _placed(core: dict[str, Any], parts: list[tuple[ReportSection, Any]]) -> dict[str, Any]:
    """The core's keys with each feature's part after the key it names (the order summaries have
    always had); a part whose key is missing goes at the end."""
    out: dict[str, Any] = {}
    pending = list(parts)

    def put(key: str, value: Any) -> None:
        out[key] = value
        following = [part for part in pending if part[0].after == key]
        for part in following:
            pending.remove(part)
        for section, part_value in following:
            put(section.key, part_value)

    for key, value in core.items():
        put(key, value)
    for section, value in pending:
        out[section.key] = value
    return out


def findings(data: RunData) -> list[str]:
    """Things worth a person's attention even when every SLO held."""
    found = []
    for stopped in (e for e in data.events if e["event"] == "stack_stopped"):
        found += [f"stack stop: {leak}" for leak in stopped.get("report", {}).get("leaks", [])]
        for role, info in stopped.get("report", {}).get("exits", {}).items():
            if info.get("forced_kill"):
                found.append(f"{role} (pid {info.get('pid')}) ignored SIGTERM and was killed")
    for event in data.events:
        if event["event"] == "hang_detected":
            found.append(f"t={event['t']:.1f}s: {event['role']} pid {event['pid']} alive"
                         f" ({event['process_status']}) but not answering its health probe")
        elif event["event"] == "process_exited" and not event.get("planned") and not event.get("consequence"):
            found.append(f"t={event['t']:.1f}s: {_exit_line(event)}")
        elif event["event"] == "not_serving":
            found.append(f"t={event['t']:.1f}s: health says ready, inference fails: the canary got"
                         f" {event.get('status') or event.get('detail')} ({event.get('detail')})")
        elif event["event"] == "canary_slow":
            found.append(f"t={event['t']:.1f}s: alive and slow: the canary took {event['latency_s']}s"
                         f" (slow above {event.get('slow_s')}s)")
        elif event["event"] in ("fault_failed", "restart_failed"):
            found.append(f"t={event['t']:.1f}s: {event['event']}: {event.get('error')}")
        elif event["event"] == "load_worker_lost":
            found.append(f"t={event['t']:.1f}s: load worker {event['index']} stopped answering; its users"
                         " and its last unsent second are missing from then on, so the load was lower")
    return found + _signal_findings(data)


def _signal_findings(data: RunData) -> list[str]:
    """Log lines reporting a signal the harness did not send, one finding per log and signal. A
    line several patterns match (`signal_11`, `signal_any`) counts once; the harness's own
    signals (its SIGTERM at the stop) are no finding at all."""
    seen: set[tuple[float, str, str]] = set()
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for event, by_harness in signal_lines(data):
        key = (float(event["t"]), str(event.get("role")), str(event.get("line")))
        if by_harness or key in seen:
            continue
        seen.add(key)
        groups.setdefault((key[1], int(event["signal"])), []).append(event)
    found = []
    for (role, number), events in groups.items():
        times = f" ({len(events)} lines)" if len(events) > 1 else ""
        found.append(f"t={events[0]['t']:.1f}s: the {role} log reports {signal_name(number)}, which the"
                     f" harness did not send: {str(events[0].get('line'))[:120]}{times}")
    return found


_LOSS_MEANING = {
    "entry": "the stack's entry process: a crash",
    "replica": "a replica: a partial failure",
    "dependency": "a dependency of the stack",
}


def _exit_line(event: dict[str, Any]) -> str:
    """Journals since roles were declared say how it ended (`ended`) and what the loss means."""
    if "ended" not in event:  # an older journal: its finding reads as it always did
        how = event.get("signal") or f"exit code {event.get('exit_code')}"
        return f"{event['role']} pid {event['pid']} exited ({how})"
    meaning = _LOSS_MEANING.get(str(event.get("loss")), str(event.get("loss")))
    return f"{event['role']} pid {event['pid']} exited ({event['ended']}; {meaning})"


def _event_row(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("type", "wall")}


def _workers(data: RunData) -> list[dict[str, Any]]:
    """Distributed load: each worker's own totals (empty when the users ran in the harness itself)."""
    return [
        {key: report.get(key) for key in ("host", "pid", "requests", "ok", "intended_sent", "unsent")}
        for report in data.load_summary.get("worker_reports", [])
    ]
