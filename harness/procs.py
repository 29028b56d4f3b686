"""Processes the harness starts, and the only ones it ever signals.

A process is identified by PID *and* creation time, so a recycled PID is never signalled.
Every signal sent is told to the listeners of `listen_for_signals` (the log watcher journals
it), so a log line saying "signal received" can be told apart from one the harness caused.
"""

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REAP_WAIT_S = 2.0  # longest wait for the reap of a child seen gone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentSignal:
    """A signal the harness sent to a process (or had an engine send, e.g. `docker stop`)."""

    number: int
    pid: int = 0  # 0: not known on the host
    name: str = ""  # the process's (or container's) name, where known


SignalListener = Callable[[SentSignal], None]
_signal_listeners: list[SignalListener] = []


def listen_for_signals(listener: SignalListener) -> Callable[[], None]:
    """Call `listener` for every signal the harness sends from now on; returns the unsubscribe."""
    _signal_listeners.append(listener)

    def unsubscribe() -> None:
        if listener in _signal_listeners:
            _signal_listeners.remove(listener)

    return unsubscribe


def note_signal(sent: SentSignal) -> None:
    """Tell the listeners a signal is sent. Call it before anything the signal can cause is read
    (just after `kill`, or before a blocking `docker stop`): attribution relies on that order."""
    for listener in list(_signal_listeners):
        try:
            listener(sent)
        except Exception:  # noqa: BLE001 - recording a signal must never keep it from being sent
            log.exception("signal listener failed")


@dataclass(frozen=True)
class ProcessId:
    pid: int
    create_time: float
    name: str = ""

    @classmethod
    def of(cls, proc: psutil.Process) -> "ProcessId":
        return cls(proc.pid, proc.create_time(), proc.name())

    def alive(self) -> psutil.Process | None:
        """The live process this id names, or None if it exited or the PID was reused."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.01:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def send(self, sig: int) -> bool:
        """Signal this exact process; False if it is already gone."""
        if self.pid in _protected_pids():
            raise PermissionError(f"refusing to signal protected PID {self.pid}")
        proc = self.alive()
        if proc is None:
            return False
        try:
            proc.send_signal(sig)
        except psutil.Error:
            return False
        note_signal(SentSignal(int(sig), self.pid, self.name))
        return True


def _protected_pids() -> set[int]:
    """PID 1, the harness itself and all its ancestors."""
    pids = {0, 1, os.getpid()}
    try:
        pids.update(parent.pid for parent in psutil.Process().parents())
    except psutil.Error:
        pass
    return pids


@dataclass
class StopResult:
    exit_code: int | None  # negative: killed by that signal number
    forced: bool  # needed SIGKILL
    seconds: float
    leftovers_killed: list[ProcessId] = field(default_factory=list)

    def as_exit(self, pid: int) -> dict[str, Any]:
        """What a stack's StopReport records for the process it stopped."""
        return {
            "pid": pid,
            "exit_code": self.exit_code,
            "forced_kill": self.forced,
            "seconds": round(self.seconds, 3),
        }


class ManagedProcess:
    """A child started in its own session, its output in a log file, its descendants tracked.

    Descendants are remembered as they are seen, because when the parent dies they are
    re-parented to PID 1 and can no longer be found through the tree.
    """

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.argv = argv
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.ident = ProcessId(self.popen.pid, psutil.Process(self.popen.pid).create_time())
        self.descendants: dict[int, ProcessId] = {}

    @property
    def pid(self) -> int:
        return self.popen.pid

    def returncode(self) -> int | None:
        return self.popen.poll()

    def exit_code_after_reap(self, wait: float = REAP_WAIT_S) -> int | None:
        """The exit code of a process seen gone, read once it is reaped.

        Under gevent the event loop reaps children (SIGCHLD) and fills in the code a moment
        later, and a process seen gone by psutil may still be exiting: right after the death
        `poll()` can say None. Waiting for the reap keeps how it ended (code or signal) from
        being lost to that race.
        """
        code = self.popen.poll()
        if code is None and self.ident.alive() is None:
            try:
                code = self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                return None
        return code

    def refresh_descendants(self) -> list[ProcessId]:
        """Record every current descendant; returns the live ones."""
        proc = self.ident.alive()
        if proc is not None:
            try:
                for child in proc.children(recursive=True):
                    try:
                        known = self.descendants.get(child.pid)
                        # A PID seen before but with another start time was reused (PIDs wrap fast
                        # on busy hosts): the old process is gone, this is a new descendant.
                        if known is None or abs(known.create_time - child.create_time()) > 0.01:
                            self.descendants[child.pid] = ProcessId.of(child)
                    except psutil.Error:
                        continue
            except psutil.Error:
                pass
        return [d for d in self.descendants.values() if d.alive() is not None]

    def stop(self, timeout: float, settle: float = 0.0) -> StopResult:
        """SIGTERM, then SIGKILL after `timeout`; then SIGKILL any descendant left behind.

        `settle`: seconds descendants get to exit by themselves once the process is gone (a
        helper that ends when its parent's pipe closes is not left behind, only slower).
        """
        started = time.monotonic()
        self.refresh_descendants()
        forced = False
        if self.popen.poll() is None:
            self.ident.send(signal.SIGTERM if timeout > 0 else signal.SIGKILL)
            try:
                self.popen.wait(max(timeout, 0.001))
            except subprocess.TimeoutExpired:
                forced = timeout > 0
                self.ident.send(signal.SIGKILL)
                self.popen.wait(10)
        _wait_gone(list(self.descendants.values()), settle)
        leftovers = kill_all(list(self.descendants.values()))
        return StopResult(self.popen.returncode, forced, time.monotonic() - started, leftovers)


def _wait_gone(idents: list[ProcessId], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(i.alive() is not None for i in idents):
        time.sleep(0.05)


def kill_all(idents: list[ProcessId], grace: float = 2.0) -> list[ProcessId]:
    """SIGTERM the live ones, SIGKILL those still alive after `grace`; returns those found alive."""
    live = [ident for ident in idents if ident.alive() is not None]
    for ident in live:
        ident.send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(i.alive() is not None for i in live):
        time.sleep(0.05)
    for ident in live:
        ident.send(signal.SIGKILL)
    return live


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log, for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
