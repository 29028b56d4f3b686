"""The harness's side of the GPU stressor process: start it, send it targets, end it and check it ended.

`gpu_memory_stress` (harness.gpu.stress_fault) drives it from a greenlet; the device check drives
it from plain Python. Both read its JSON lines (see harness.gpu.stressor). Standard library only.

Ending it is checked, not assumed: end of input first (it frees everything, reports `freed` and
exits 0), SIGTERM if it has not ended after `wait_s` (it frees and exits too), SIGKILL last. The
result says which it took, the exit code, and what the stressor said it freed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from harness.gpu.stressor import CHUNK

STRESSOR = (sys.executable, "-m", "harness.gpu.stressor")
READY_TIMEOUT_S = 60.0  # a first cuInit on a big machine can take tens of seconds
PROBE_TIMEOUT_S = 60.0
END_WAIT_S = 15.0  # freeing a hundred GiB in 256 MiB chunks takes a few seconds
KILL_AFTER_S = 5.0


class StressorFailed(Exception):
    """The stressor could not start (no driver, no device, no context): its `failed` record."""

    def __init__(self, record: dict[str, Any]):
        super().__init__(str(record.get("error") or record))
        self.record = record


def _records(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def probe(device: int, command: Sequence[str] = STRESSOR, timeout_s: float = PROBE_TIMEOUT_S
          ) -> dict[str, Any]:
    """The stressor's `--probe` record for one device, run in its own process so the harness itself
    never loads the driver. `ok: false` with a `reason` when it cannot run there."""
    try:
        done = subprocess.run([*command, "--probe", "--device", str(device)], capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "reason": "cuda_error", "error": f"the driver did not answer in {timeout_s:g}s"}
    except OSError as exc:
        return {"ok": False, "reason": "cuda_error", "error": f"could not start the stressor: {exc}"}
    found = [r for r in _records(done.stdout) if r.get("event") == "probe"]
    if not found:
        tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {"ok": False, "reason": "cuda_error", "error": f"the stressor's probe failed: {tail}"}
    return found[-1]


class StressChild:
    def __init__(self, device: int, pidfile: str, chunk: int = CHUNK, command: Sequence[str] = STRESSOR):
        self.device = device
        self.pidfile = pidfile
        self.chunk = chunk
        self.command = tuple(command)
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] | None = None
        self._how = "end of input"
        self._timers: list[threading.Timer] = []

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self, ready_timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Start it and wait for its `ready` record; StressorFailed if it could not get a context."""
        argv = [*self.command, "--stdin", "--device", str(self.device), "--pidfile", self.pidfile,
                "--chunk", str(self.chunk)]
        # Its own session: a Ctrl-C at the terminal reaches the harness, which then ends it in order.
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        stdout = self._stdout()
        timer = self._after(ready_timeout_s, self._signal, signal.SIGKILL)
        line = stdout.readline()
        timer.cancel()
        record = next(iter(_records(line)), None)
        if record is None or record.get("event") != "ready":
            self.end(wait_s=1.0)
            raise StressorFailed(record or {"reason": "cuda_error",
                                            "error": f"the stressor said nothing in {ready_timeout_s:g}s"})
        self.ready = record
        return record

    def ask(self, target: dict[str, Any]) -> dict[str, Any]:
        """One target (`{"amount": N}` or `{"fraction": F}`); its `step` answer once held (or refused)."""
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(target) + "\n")
            self.proc.stdin.flush()
            line = self._stdout().readline()
        except (OSError, ValueError) as exc:  # ValueError: the pipe was closed under us (restore)
            return {"held": None, "error": f"stressor gone: {exc}"}
        if not line:
            return {"held": None, "error": "stressor gone (killed?)"}
        record = next(iter(_records(line)), None)
        return record if record is not None else {"held": None, "error": f"stressor said {line.strip()!r}"}

    def end(self, wait_s: float = END_WAIT_S) -> dict[str, Any]:
        """End of input, then SIGTERM after `wait_s`, then SIGKILL; returns how it ended."""
        started = time.monotonic()
        if self.proc is None:
            return {"ended": True, "how": "never started", "exit_code": None, "freed": None}
        proc = self.proc
        if proc.poll() is not None:
            self._how = "had already exited"
        try:
            assert proc.stdin is not None
            proc.stdin.close()  # end of input: it frees everything and exits
        except (OSError, ValueError):
            pass
        self._after(wait_s, self._escalate)
        rest = _records(self._stdout().read())  # until it exits (or is made to)
        try:
            exit_code: int | None = proc.wait(KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            exit_code = None
        for timer in self._timers:
            timer.cancel()
        freed = next((r for r in rest if r.get("event") == "freed"), None)
        return {"ended": exit_code is not None, "how": self._how, "exit_code": exit_code,
                "freed": None if freed is None else freed.get("freed"),
                "held_at_end": None if freed is None else freed.get("held"),
                "free_after": None if freed is None else freed.get("free"),
                "free_refused": None if freed is None else freed.get("free_refused"),
                "seconds": round(time.monotonic() - started, 3)}

    def _stdout(self) -> IO[str]:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout

    def _after(self, seconds: float, fn: Any, *args: Any) -> threading.Timer:
        # A timer, so a read that would wait forever ends: killing the process closes its stdout.
        # Under gevent's monkey-patching this is a greenlet; without it, a daemon thread.
        timer = threading.Timer(seconds, fn, args)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)
        return timer

    def _escalate(self) -> None:
        self._how = "SIGTERM"
        self._signal(signal.SIGTERM)
        self._after(KILL_AFTER_S, self._kill)

    def _kill(self) -> None:
        self._how = "SIGKILL"
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except OSError:
                pass
