"""The `gpu` part of summary.json, its findings, story lines and metrics, from the journal alone.

What it reads: the GPU observer's `gpu` series, `gpu_devices`, `gpu_throttle`, `gpu_xid` and its
`observer_stopped` summary (harness.gpu.observer), and the `gpu_memory_stress` fault's
`gpu_memory_stress_step`, `gpu_memory_step` windows and `gpu_memory_stress_ended`
(harness.gpu.stress_fault).
"""

from collections.abc import Callable
from typing import Any

from harness.analysis import RunData, merged_histogram
from harness.gpu.nvml import BENIGN_THROTTLE
from harness.sizes import format_size

MIB = float(1 << 20)


def _events(data: RunData, name: str) -> list[dict[str, Any]]:
    return [e for e in data.events if e["event"] == name]


def observer_summary(data: RunData) -> dict[str, Any] | None:
    return next((e.get("summary") or {} for e in data.events
                 if e["event"] == "observer_stopped" and e.get("observer") == "gpu"), None)


def _label(key: str) -> tuple[str, str]:
    """`mem_used{gpu=0}` -> (`mem_used`, `gpu=0`)."""
    name, _, rest = key.partition("{")
    return name, rest.rstrip("}")


def series_maxima(data: RunData) -> dict[str, float]:
    """The largest value of each key of the `gpu` series (memory, temperature, power...)."""
    out: dict[str, float] = {}
    for sample in data.series.get("gpu", []):
        for key, value in sample["values"].items():
            out[key] = max(out.get(key, float(value)), float(value))
    return out


def mem_peak_mb(data: RunData) -> float | None:
    """The most device memory in use on any one GPU during the run, in MiB (what NVML saw)."""
    used = [v for k, v in series_maxima(data).items() if _label(k)[0] == "mem_used"]
    return round(max(used) / MIB, 1) if used else None


def xid_watched(data: RunData) -> bool:
    stopped = observer_summary(data) or {}
    return bool((stopped.get("xid") or {}).get("watching")) or bool(_events(data, "gpu_xid"))


def measure_gpu(data: RunData, metric: str) -> tuple[float | None, int]:
    """(value, what it rests on) for a name in harness.gpu.feature.METRICS."""
    samples = len(data.series.get("gpu", []))
    if metric == "gpu_xid_errors":
        # No count where nobody listened: zero would claim a clean GPU nobody watched.
        return (float(len(_events(data, "gpu_xid"))) if xid_watched(data) else None), samples
    if metric == "gpu_mem_peak_mb":
        return mem_peak_mb(data), samples
    if metric == "gpu_stress_oom":
        steps = _events(data, "gpu_memory_stress_step")
        return (float(sum(int(s.get("oom") or 0) for s in steps)) if steps else None), len(steps)
    raise KeyError(metric)


def stress_steps(data: RunData) -> list[dict[str, Any]]:
    """Each stressor step with its window and what the load saw in it."""
    windows = [e for e in data.events if e["event"] == "window" and e.get("kind") == "gpu_memory_step"]
    rows = []
    for step in _events(data, "gpu_memory_stress_step"):
        window = next((w for w in windows if abs(w["start"] - step["t"]) < 1e-3), None)
        start, end = step["t"], (window["end"] if window else data.load_end or step["t"])
        records = data.seconds_in(start, end)
        requests = sum(r["requests"] for r in records)
        ok = sum(r["ok"] for r in records)
        hist = merged_histogram(records)
        has = hist.get_total_count() > 0
        rows.append({
            **{k: step.get(k) for k in ("step", "device", "pid", "asked", "target", "target_text", "held",
                                        "held_text", "oom", "capped", "error", "free")},
            "start": start, "end": end, "requests": requests,
            "error_rate": round((requests - ok) / requests, 6) if requests else None,
            "p50_ms": round(hist.get_value_at_percentile(50) / 1000, 3) if has else None,
            "p99_ms": round(hist.get_value_at_percentile(99) / 1000, 3) if has else None,
            "throughput_rps": round(ok / (end - start), 1) if end > start else None,
        })
    return rows


def gpu_summary(data: RunData) -> dict[str, Any] | None:
    """None for a run with nothing of the GPU in its journal (an older harness, a unit journal)."""
    stopped = observer_summary(data)
    devices = next((e.get("devices") for e in data.events if e["event"] == "gpu_devices"), None)
    series = data.series.get("gpu", [])
    steps = stress_steps(data)
    if stopped is None and devices is None and not series and not steps:
        return None
    stopped = stopped or {}
    maxima = series_maxima(data)
    return {
        "available": stopped.get("available", bool(series or devices)),
        "devices": stopped.get("devices") or devices or [],
        "samples": len(series),
        "peak_mem_used": {_label(k)[1]: v for k, v in maxima.items() if _label(k)[0] == "mem_used"},
        "peak_mem_by_role": {_label(k)[1].removeprefix("role="): v for k, v in maxima.items()
                             if _label(k)[0] == "mem"},
        "max_temp_c": {_label(k)[1]: v for k, v in maxima.items() if _label(k)[0] == "temp_c"},
        "max_power_w": {_label(k)[1]: v for k, v in maxima.items() if _label(k)[0] == "power_w"},
        "unsupported": stopped.get("unsupported") or {},
        "errors": stopped.get("errors"),
        "xid_watch": stopped.get("xid"),
        "xid_events": [{k: e.get(k) for k in ("t", "device", "xid", "meaning")}
                       for e in _events(data, "gpu_xid")],
        "throttle": [{k: e.get(k) for k in ("t", "device", "mask", "reasons")}
                     for e in _events(data, "gpu_throttle")],
        "stress_steps": steps,
        "stress_ended": [{k: e.get(k) for k in ("t", "device", "pid", "ended", "how", "exit_code", "freed",
                                                "freed_text", "held_at_end", "free_after", "free_refused")}
                         for e in _events(data, "gpu_memory_stress_ended")],
    }


def notable_reasons(reasons: list[str] | None) -> list[str]:
    return [r for r in reasons or [] if r not in BENIGN_THROTTLE]


def gpu_findings(data: RunData) -> list[str]:
    found = []
    for e in _events(data, "gpu_xid"):
        meaning = f" ({e['meaning']})" if e.get("meaning") else ""
        found.append(f"t={e['t']:.1f}s: GPU {e.get('device')} reported critical Xid {e.get('xid')}{meaning}")
    seen: set[tuple[Any, str]] = set()
    for e in _events(data, "gpu_throttle"):
        new = [r for r in notable_reasons(e.get("reasons")) if (e.get("device"), r) not in seen]
        seen.update((e.get("device"), r) for r in new)
        if new:
            found.append(f"t={e['t']:.1f}s: GPU {e.get('device')} clocks held back: {', '.join(new)}")
    for e in _events(data, "gpu_memory_stress_step"):
        if e.get("error"):
            found.append(f"t={e['t']:.1f}s: the GPU stressor's step {e.get('step')} failed: {e['error']}")
        elif e.get("capped"):
            found.append(f"t={e['t']:.1f}s: the GPU stressor asked for {e.get('target_text')} on GPU "
                         f"{e.get('device')} and got {e.get('held_text')} (the driver refused "
                         f"{e.get('oom')} allocation(s): CUDA_ERROR_OUT_OF_MEMORY)")
    for e in _events(data, "gpu_memory_stress_ended"):
        if not e.get("ended"):
            found.append(f"t={e['t']:.1f}s: the GPU stressor (pid {e.get('pid')}) did not end; "
                         "`harness cleanup RUN_DIR` ends it")
        elif e.get("how") in ("SIGTERM", "SIGKILL"):
            found.append(f"t={e['t']:.1f}s: the GPU stressor (pid {e.get('pid')}) needed {e['how']} to end")
        if e.get("free_refused"):
            found.append(f"t={e['t']:.1f}s: the driver refused to free {e['free_refused']} of the GPU "
                         "stressor's chunks (they went when it exited)")
    for e in _events(data, "gpu_xid_watch_stopped"):
        found.append(f"t={e['t']:.1f}s: NVML's Xid events stopped coming ({e.get('error')})")
    return found


def _step_phrase(e: dict[str, Any]) -> str:
    if e.get("held") is None:
        return f"GPU stressor asked for {e.get('asked')}: {e.get('error')}"
    refused = f", {e.get('oom')} allocation(s) refused" if e.get("oom") else ""
    return (f"GPU stressor holds {format_size(e.get('held'))} on GPU {e.get('device')} "
            f"(asked {e.get('asked')}{refused})")


def _throttle_phrase(e: dict[str, Any]) -> str | None:
    notable = notable_reasons(e.get("reasons"))
    return f"GPU {e.get('device')} clocks held back: {', '.join(notable)}" if notable else None


STORY_PHRASES: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "gpu_xid": lambda e: f"GPU {e.get('device')}: critical Xid {e.get('xid')}"
                         + (f" ({e['meaning']})" if e.get("meaning") else ""),
    "gpu_memory_stress_step": _step_phrase,
    "gpu_memory_stress_ended": lambda e: (f"GPU stressor ended ({e.get('how')}), freed {e.get('freed_text')}"
                                          if e.get("ended") else "GPU stressor did NOT end"),
    "gpu_throttle": _throttle_phrase,
}
