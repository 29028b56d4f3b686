"""Journals made with the real recorder, for analysis and report tests."""

from pathlib import Path
from typing import Any

import pytest

from harness.errors import UsageError
from harness.exitcodes import ExitCode
from harness.load.recorder import Recorder


def scenario_error(path: Path) -> str:
    """The one-line error a bad scenario file gets (and its exit code is USAGE_ERROR)."""
    from harness.scenario import load_scenario

    with pytest.raises(UsageError) as info:
        load_scenario(path)
    assert info.value.code == ExitCode.USAGE_ERROR
    return str(info.value)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def synthetic_records(
    seconds: int = 10,
    per_second: int = 100,
    latency_s: float = 0.005,
    failing: set[int] | None = None,
    load_start: float = 2.0,
) -> list[dict[str, Any]]:
    """A journal: load from `load_start` for `seconds`; seconds in `failing` have 50% errors."""
    clock = FakeClock()
    recorder = Recorder(clock)
    records: list[dict[str, Any]] = [
        {"type": "event", "event": "run_started", "t": 0.0},
        {"type": "event", "event": "stack_ready", "t": 1.0, "startup_s": 1.0},
        {"type": "event", "event": "load_started", "t": load_start},
    ]
    for second in range(seconds):
        for i in range(per_second):
            clock.t = load_start + second + i / per_second
            error = "http_503" if failing and second in failing and i % 2 else None
            recorder.record(latency_s * (1 + i / per_second), error)
        records += [{"type": "second", **r} for r in recorder.pop_complete(now=clock.t + 1)]
    records.append({"type": "event", "event": "load_stopped", "t": load_start + seconds})
    records.append({"type": "event", "event": "stack_stopped", "t": load_start + seconds + 1, "report": {}})
    records.append({"type": "event", "event": "run_ended", "t": load_start + seconds + 2})
    return records
