"""Start-up, memory and sidecar metrics, read back from a run's journal."""

from typing import Any

from harness.analysis import RunData

MIB = 1 << 20


def start_attempts(data: RunData) -> list[dict[str, Any]]:
    return [e for e in data.events if e["event"] == "stack_start_attempt"]


def oom_kills(data: RunData) -> int:
    """This run's OOM kills: the kernel log's (ours only), or the cgroup counters' if more.

    The kernel log can be unreadable and the counters miss processes outside harness groups,
    so each is a lower bound; the larger is reported.
    """
    from_log = sum(1 for e in data.events if e["event"] == "oom_kill" and e.get("ours"))
    per_group: dict[str, int] = {}
    for event in data.events:
        if event["event"] == "cgroup_oom_kill":
            per_group[event["group"]] = max(per_group.get(event["group"], 0), int(event["oom_kill"]))
    return max(from_log, sum(per_group.values()))


def sidecar_deaths(data: RunData) -> list[dict[str, Any]]:
    return [e for e in data.events if e["event"] == "sidecar_exited" and e.get("death")]


def startup_seconds(data: RunData) -> float | None:
    attempts = start_attempts(data)
    ready = next((e for e in attempts if e["outcome"] == "ready"), None)
    if ready is None:
        return None
    first_start = attempts[0]["t"] - attempts[0]["seconds"]
    return round(ready["t"] - first_start, 3)


def rss_peak_mb(data: RunData) -> float | None:
    peaks = [v for s in data.series.get("memory_rss", []) for k, v in s["values"].items()
             if not k.startswith("sidecar:")]
    return round(max(peaks) / MIB, 1) if peaks else None


def psi_some_max(data: RunData) -> float | None:
    start, end = data.bounds("all")
    values = [s["values"]["psi_some_avg10"] for s in data.series.get("memory_host", [])
              if start <= s["t"] <= end and "psi_some_avg10" in s["values"]]
    return max(values) if values else None


def measure_memory(data: RunData, metric: str) -> tuple[float | None, int]:
    """(value, what it rests on) for a name in `harness.memory.feature.METRICS`."""
    attempts = start_attempts(data)
    if metric == "start_attempts":
        return (float(len(attempts)) if attempts else None), len(attempts)
    if metric == "startup_s":
        return startup_seconds(data), len(attempts)
    if metric == "oom_kills":
        return float(oom_kills(data)), 1
    if metric == "sidecar_deaths":
        exited = [e for e in data.events if e["event"] == "sidecar_started"]
        return float(len(sidecar_deaths(data))), len(exited)
    if metric == "rss_peak_mb":
        return rss_peak_mb(data), len(data.series.get("memory_rss", []))
    if metric == "memory_psi_some_max":
        return psi_some_max(data), len(data.series.get("memory_host", []))
    raise KeyError(metric)
