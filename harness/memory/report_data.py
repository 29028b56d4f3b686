"""The `memory` part of summary.json, its findings and its story lines, from the journal."""

from collections.abc import Callable
from typing import Any

from harness.analysis import RunData, merged_histogram
from harness.memory.measures import oom_kills, sidecar_deaths, start_attempts, startup_seconds
from harness.sizes import format_size


def memory_summary(data: RunData) -> dict[str, Any] | None:
    """None for a run that has no memory events at all (e.g. a journal from an older harness)."""
    attempts = start_attempts(data)
    stopped = {e.get("observer"): e.get("summary", {})
               for e in data.events if e["event"] == "observer_stopped"}
    if not attempts and "memory" not in stopped:
        return None
    ready = next((a for a in attempts if a["outcome"] == "ready"), None)
    return {
        "startup": {
            "attempts": [_attempt_row(a) for a in attempts],
            "ready_after_starts": ready["attempt"] if ready else None,
            "startup_s": startup_seconds(data),
        },
        "oom_kills": oom_kills(data),
        "oom_kill_events": [_kill_row(e) for e in data.events if e["event"] == "oom_kill"],
        "sidecars": _sidecars(data),
        "stress_steps": stress_steps(data),
        "limit_steps": [{k: e.get(k) for k in ("t", "group", "limit", "limit_text", "error")}
                        for e in data.events if e["event"] == "memory_limit_step"],
        "peak_rss": stopped.get("memory", {}).get("peak_rss", {}),
        "cgroup": stopped.get("memory", {}).get("cgroup"),
        "kernel_log": stopped.get("kernel_log"),
        "gpu": stopped.get("gpu"),
    }


def _attempt_row(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event.get(k) for k in ("attempt", "of", "outcome", "seconds", "error", "roles", "memory", "t")}


def _kill_row(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event.get(k) for k in ("t", "pid", "process", "ours", "role", "memcg", "anon_rss")}


def _sidecars(data: RunData) -> list[dict[str, Any]]:
    exits = {e["name"]: e for e in data.events if e["event"] == "sidecar_exited"}
    rows = []
    for started in (e for e in data.events if e["event"] == "sidecar_started"):
        exited = exits.get(started["name"])
        rows.append({
            "name": started["name"], "pid": started["pid"], "memory": started.get("memory"),
            "expect": started.get("expect"), "exited_t": exited["t"] if exited else None,
            "exit": (exited.get("signal") or f"exit code {exited.get('exit_code')}") if exited else None,
            "death": bool(exited and exited.get("death")),
        })
    return rows


def stress_steps(data: RunData) -> list[dict[str, Any]]:
    """Each stressor step's window, with what the load saw in it: the point of a soak."""
    windows = [e for e in data.events if e["event"] == "window" and e.get("kind") == "memory_step"]
    steps = [e for e in data.events if e["event"] == "memory_stress_step"]
    rows = []
    for step, window in zip(steps, windows, strict=False):
        records = data.seconds_in(window["start"], window["end"])
        requests = sum(r["requests"] for r in records)
        ok = sum(r["ok"] for r in records)
        hist = merged_histogram(records)
        has = hist.get_total_count() > 0
        rows.append({
            "step": step.get("step"), "target": step.get("target"), "target_text": step.get("target_text"),
            "held": step.get("held"), "capped": step.get("capped"), "start": window["start"],
            "end": window["end"], "requests": requests,
            "error_rate": round((requests - ok) / requests, 6) if requests else None,
            "p50_ms": round(hist.get_value_at_percentile(50) / 1000, 3) if has else None,
            "p99_ms": round(hist.get_value_at_percentile(99) / 1000, 3) if has else None,
            "throughput_rps": round(ok / (window["end"] - window["start"]), 1)
            if window["end"] > window["start"] else None,
        })
    return rows


def memory_findings(data: RunData) -> list[str]:
    found = []
    attempts = start_attempts(data)
    ready = next((a for a in attempts if a["outcome"] == "ready"), None)
    if ready is not None and ready["attempt"] > 1:
        found.append(f"the stack was ready only after {ready['attempt']} starts "
                     f"({startup_seconds(data)}s from the first start to ready)")
    for attempt in attempts:
        if attempt["outcome"] == "failed":
            kills = (attempt.get("memory") or {}).get("oom_kills")
            why = f"; {kills} OOM kill(s) in its memory group" if kills else ""
            found.append(f"start {attempt['attempt']} failed after {attempt['seconds']}s{why}")
    for kill in (e for e in data.events if e["event"] == "oom_kill" and e.get("ours")):
        found.append(f"t={kill['t']:.1f}s: the kernel OOM-killed {kill['process']} (pid {kill['pid']}, "
                     f"{kill.get('role') or '?'}, {format_size(kill.get('anon_rss'))} anonymous)")
    for death in sidecar_deaths(data):
        how = death.get("signal") or f"exit code {death.get('exit_code')}"
        found.append(f"t={death['t']:.1f}s: sidecar {death['name']} (pid {death['pid']}) died ({how}) "
                     "and nothing restarted it")
    for step in (e for e in data.events if e["event"] == "memory_limit_step" and e.get("error")):
        found.append(f"t={step['t']:.1f}s: memory limit step to {step.get('limit_text')} refused: "
                     f"{step['error']}")
    return found


def _attempt_phrase(e: dict[str, Any]) -> str | None:
    if e.get("outcome") == "ready":
        return f"start {e.get('attempt')}/{e.get('of')} ready after {e.get('seconds')}s"
    kills = (e.get("memory") or {}).get("oom_kills")
    return f"start {e.get('attempt')}/{e.get('of')} failed after {e.get('seconds')}s" + (
        f" ({kills} OOM kill(s))" if kills else "")


def _stress_phrase(e: dict[str, Any]) -> str:
    if e.get("held") is not None:
        return f"memory stressor holds {format_size(e.get('held'))}"
    return f"memory stressor asked for {e.get('target_text')}: {e.get('error')}"


def _limit_phrase(e: dict[str, Any]) -> str:
    return f"memory limit -> {e.get('limit_text')}" + (" REFUSED" if e.get("error") else "")


STORY_PHRASES: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "stack_start_attempt": _attempt_phrase,
    "oom_kill": lambda e: (f"kernel OOM-killed {e.get('process')} pid {e.get('pid')} ({e.get('role')})"
                           if e.get("ours") else None),
    "sidecar_exited": lambda e: (f"sidecar {e.get('name')} died ({e.get('signal') or e.get('exit_code')})"
                                 if e.get("death") else None),
    "memory_stress_step": _stress_phrase,
    "memory_limit_step": _limit_phrase,
}
