"""The GPU stressor's pidfile: how `harness cleanup` finds and ends it after a SIGKILLed harness.

The stressor writes its PID and the kernel's start time for it (`/proc/PID/stat` field 22, clock
ticks since boot) before it touches the driver, so even a stressor stuck in `cuInit` can be
found. Ending it checks the start time first: a PID reused by another process is left alone.
SIGTERM first, since the stressor then frees its memory and says so; SIGKILL if it does not end
(the driver frees a killed process's device memory too, only less visibly).

Standard library only: the device check uses it on a machine without the harness's packages.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

TERM_WAIT_S = 5.0
KILL_WAIT_S = 3.0
POLL_S = 0.05


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parens)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None  # field 22, `starttime`


def running(pid: int, ticks: int) -> bool:
    """That exact process exists and has not exited (a zombie has ended: its memory is freed)."""
    fields = _stat(pid)
    return fields is not None and int(fields[19]) == ticks and fields[0] not in ("Z", "X")


def write_pidfile(path: str, what: str = "harness.gpu.stressor") -> dict[str, Any]:
    pid = os.getpid()
    record = {"pid": pid, "start_ticks": start_ticks(pid), "what": what}
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="ascii") as handle:
        json.dump(record, handle)
    os.replace(tmp, path)  # never a half-written file for cleanup to misread
    return record


def read_pidfile(path: str) -> dict[str, Any] | None:
    try:
        record = json.loads(Path(path).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return None
    return record


def _wait_gone(pid: int, ticks: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while running(pid, ticks):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def end_recorded(path: str, term_wait_s: float = TERM_WAIT_S) -> str | None:
    """End the process a pidfile names if it still runs; remove the file. Returns what was done
    (None: nothing was running). Idempotent, as `harness cleanup` must be."""
    record = read_pidfile(path)
    if record is None:
        Path(path).unlink(missing_ok=True)
        return None
    pid, ticks = record["pid"], record.get("start_ticks")
    if pid in (0, 1, os.getpid()) or not isinstance(ticks, int) or not running(pid, ticks):
        Path(path).unlink(missing_ok=True)
        return None
    how = "SIGTERM"
    try:
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, ticks, term_wait_s):
            how = "SIGKILL"
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, ticks, KILL_WAIT_S)
    except ProcessLookupError:
        pass
    Path(path).unlink(missing_ok=True)
    return f"ended GPU stressor pid {pid} ({how})"
