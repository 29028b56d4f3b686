"""summary.json: the machine-readable result of a run. Its schema is versioned and stable."""

from pathlib import Path
from typing import Any

from harness.analysis import RunData, log_patterns_seen, totals
from harness.containerimpact import container_summary
from harness.errorwindow import error_windows
from harness.faultimpact import fault_impacts
from harness.llmmetrics import llm_totals
from harness.memory.report_data import memory_findings, memory_summary
from harness.scenario import Scenario
from harness.torchserve.report_data import torchserve_summary
from harness.tracing.accounting import span_accounting, trace_breakdown
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
    return {
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
        "totals": totals(data),
        "slos": [result.to_dict() for result in verdict.slos],
        "faults": [impact.to_dict() for impact in fault_impacts(data)],
        "containers": container_summary(data),
        "error_windows": [w.to_dict() for w in error_windows(data)],
        "llm": llm_totals(data.seconds_in(*data.bounds("all")), totals(data)["duration_s"]),
        "log_patterns": log_patterns_seen(data),
        "memory": memory_summary(data),
        "story": story(data),
        "tracing": _tracing(scenario, data),
        "torchserve": torchserve_summary(run_dir, scenario.stack, data),
        "seed": started.get("seed"),
        "findings": findings(data) + memory_findings(data),
        "events": [_event_row(e) for e in data.events],
    }


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
            found.append(f"t={event['t']:.1f}s: server pid {event['pid']} alive ({event['process_status']})"
                         " but not answering its health probe")
        elif event["event"] == "process_exited" and not event.get("planned"):
            how = event.get("signal") or f"exit code {event.get('exit_code')}"
            found.append(f"t={event['t']:.1f}s: {event['role']} pid {event['pid']} exited ({how})")
        elif event["event"] in ("fault_failed", "restart_failed"):
            found.append(f"t={event['t']:.1f}s: {event['event']}: {event.get('error')}")
        elif event["event"] == "load_worker_lost":
            found.append(f"t={event['t']:.1f}s: load worker {event['index']} stopped answering; its users"
                         " and its last unsent second are missing from then on, so the load was lower")
    return found


def _event_row(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ("type", "wall")}


def _tracing(scenario: Scenario, data: RunData) -> dict[str, Any] | None:
    trace = getattr(scenario.stack, "trace", None)
    if trace is None:
        return None
    settings = trace.model_dump(exclude_none=True)
    return {
        "settings": settings,
        "spans": span_accounting(data, settings),
        "breakdown": trace_breakdown(data),
    }


def _workers(data: RunData) -> list[dict[str, Any]]:
    """Distributed load: each worker's own totals (empty when the users ran in the harness itself)."""
    return [
        {key: report.get(key) for key in ("host", "pid", "requests", "ok", "intended_sent", "unsent")}
        for report in data.load_summary.get("worker_reports", [])
    ]
