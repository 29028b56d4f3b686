"""TorchServe metrics for SLOs, from the worker observer's journal events."""

from dataclasses import dataclass
from typing import Any

from harness.analysis import RunData


@dataclass(frozen=True)
class WorkersBack:
    """After one fault: when a worker was first seen not READY, and when all were READY again."""

    fault_id: str
    name: str
    injected_t: float
    down_t: float | None  # None: the API never showed a worker leave READY
    ready_t: float | None  # None: not all READY again before the next fault or the end

    @property
    def ready_s(self) -> float | None:
        if self.down_t is None:
            return 0.0
        return None if self.ready_t is None else round(self.ready_t - self.injected_t, 3)


def worker_samples(data: RunData) -> list[dict[str, Any]]:
    """The management API's worker lists (not the api_error markers)."""
    return [e for e in data.events if e["event"] == "ts_workers" and "ready" in e]


def workers_back(data: RunData) -> list[WorkersBack]:
    faults = [e for e in data.events if e["event"] == "fault_injected"]
    samples = worker_samples(data)
    out = []
    for i, fault in enumerate(faults):
        until = faults[i + 1]["t"] if i + 1 < len(faults) else float("inf")
        after = [s for s in samples if fault["t"] <= s["t"] < until]
        down = next((s for s in after if s["ready"] < s["expected"]), None)
        back = None
        if down is not None:
            back = next((s for s in after if s["t"] > down["t"] and s["ready"] >= s["expected"]), None)
        out.append(WorkersBack(fault["id"], fault.get("name", fault["kind"]), fault["t"],
                               None if down is None else down["t"], None if back is None else back["t"]))
    return out


def no_worker_ready(data: RunData) -> list[tuple[float, float]]:
    """Spans when the API listed no READY worker: the model could serve nothing (requests queue)."""
    spans = []
    start: float | None = None
    for sample in worker_samples(data):
        if sample["ready"] == 0 and start is None:
            start = sample["t"]
        elif sample["ready"] > 0 and start is not None:
            spans.append((start, sample["t"]))
            start = None
    if start is not None:
        spans.append((start, data.load_end if data.load_end is not None else start))
    return spans


def measure_torchserve(data: RunData, metric: str) -> tuple[float | None, int]:
    """(value, how many events it rests on); None when a fault's workers never came back."""
    names = [e["event"] for e in data.events]
    if metric == "ts.retry_storms":
        return float(names.count("ts_retry_storm")), 1
    if metric == "ts.workers_given_up":
        return float(names.count("ts_worker_given_up")), 1
    if metric == "ts.worker_retries":
        retries = [e for e in data.events if e["event"] == "ts_worker_log" and e.get("kind") == "retry"]
        return float(len(retries)), 1
    if metric == "ts.no_worker_ready_s":
        spans = no_worker_ready(data)
        return max((round(b - a, 3) for a, b in spans), default=0.0), len(worker_samples(data))
    if metric == "ts.workers_ready_s":
        backs = workers_back(data)
        values = [b.ready_s for b in backs]
        if any(v is None for v in values):
            return None, len(backs)
        return max((v for v in values if v is not None), default=0.0), len(backs)
    raise KeyError(metric)
