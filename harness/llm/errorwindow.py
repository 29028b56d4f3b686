"""The error window of each fault, to the millisecond: first and last failed request, count, messages.

`harness.faultimpact` counts a fault's failures per second of the journal; this refines the
window with each second's `error_span` (run-clock times of its first and last failure, written
by the recorder), which is what a worker-kill comparison turns on: 4 s or 13 s of failures.
"""

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.analysis import RunData
from harness.faultimpact import fault_impacts


@dataclass
class ErrorWindow:
    fault_id: str
    name: str
    injected_t: float
    failed_requests: int = 0
    first_error_t: float | None = None
    last_error_t: float | None = None
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    error_messages: dict[str, str] = field(default_factory=dict)
    recover_s: float | None = None  # from harness.faultimpact: the stack serving cleanly again
    detected_by: str | None = None

    @property
    def window_s(self) -> float:
        if self.first_error_t is None or self.last_error_t is None:
            return 0.0
        return round(self.last_error_t - self.first_error_t, 3)

    @property
    def first_error_after_s(self) -> float | None:
        return None if self.first_error_t is None else round(self.first_error_t - self.injected_t, 3)

    @property
    def last_error_after_s(self) -> float | None:
        return None if self.last_error_t is None else round(self.last_error_t - self.injected_t, 3)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(window_s=self.window_s, first_error_after_s=self.first_error_after_s,
                   last_error_after_s=self.last_error_after_s)
        return out


def error_windows(data: RunData) -> list[ErrorWindow]:
    """One window per injected fault: its failures from injection to the next fault (or the end)."""
    impacts = fault_impacts(data)
    windows = []
    for i, impact in enumerate(impacts):
        end = impacts[i + 1].injected_t if i + 1 < len(impacts) else (data.load_end or math.inf)
        window = ErrorWindow(impact.id, impact.name, impact.injected_t, recover_s=impact.recover_s,
                             detected_by=impact.detected_by)
        for record in data.seconds_in(math.floor(impact.injected_t), end):
            _add_second(window, record, impact.injected_t, end)
        windows.append(window)
    return windows


def _add_second(window: ErrorWindow, record: dict[str, Any], start: float, end: float) -> None:
    errors = record["requests"] - record["ok"]
    if not errors:
        return
    span = record.get("error_span") or [float(record["t"]), float(record["t"]) + 1]
    first, last = max(span[0], start), min(span[1], end)
    if last < start:
        return  # this second's failures all came before the fault was injected
    window.failed_requests += errors
    window.first_error_t = first if window.first_error_t is None else min(window.first_error_t, first)
    window.last_error_t = last if window.last_error_t is None else max(window.last_error_t, last)
    for kind, count in record.get("errors", {}).items():
        window.errors_by_kind[kind] = window.errors_by_kind.get(kind, 0) + count
    for kind, message in record.get("error_messages", {}).items():
        window.error_messages.setdefault(kind, message)


def window_metric(data: RunData, metric: str) -> tuple[float | None, int]:
    """`error_window_s` or `last_error_s` over every fault (0 when no fault saw a failure)."""
    windows = error_windows(data)
    if not windows:
        return None, 0
    if metric == "error_window_s":
        return max(w.window_s for w in windows), len(windows)
    if metric == "last_error_s":
        return max((w.last_error_after_s or 0.0) for w in windows), len(windows)
    raise KeyError(metric)
