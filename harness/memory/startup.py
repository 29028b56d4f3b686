"""Start-up as a measured phase: attempts, time to ready per role, memory at start.

    startup:
      attempts: 3            # the harness starts the stack up to 3 times before giving up
      backoff: 5s            # wait between attempts
      memory_limit: 700MiB   # the stack runs in a memory cgroup with this limit from its first
                             # start to the end of the run (like a container's or pod's limit)
      cgroup: auto           # auto | v1 | v2

Each attempt ends in one `stack_start_attempt` event: outcome (`ready` or `failed`), seconds,
the error, per role when its first process appeared and its peak RSS during the start, and the
memory group's OOM kills during the attempt. "Ready after 2 starts" is a finding in the report.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import psutil
from gevent.event import Event

from harness.errors import StackFailed
from harness.journal import Journal
from harness.memory.cgroups import MemoryGroup
from harness.memory.startup_spec import StartupSpec
from harness.sizes import format_size
from harness.stacks.base import Stack

SAMPLE_S = 0.1


@dataclass
class RoleStart:
    first_seen_s: float | None = None  # from the attempt's start to the role's first process
    processes: int = 0
    peak_rss: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"first_seen_s": self.first_seen_s, "processes": self.processes, "peak_rss": self.peak_rss,
                "peak_rss_text": format_size(self.peak_rss)}


@dataclass
class StartSampler:
    """Polls the stack's roles while it starts: when each appears, how much memory it takes."""

    stack: Stack
    started: float  # time.monotonic() when the attempt began
    seen: Callable[[int, str], None]
    roles: dict[str, RoleStart] = field(default_factory=dict)
    pids: dict[str, set[int]] = field(default_factory=dict)

    def run(self) -> None:
        while True:
            self.sample()
            gevent.sleep(SAMPLE_S)

    def sample(self) -> None:
        for role, idents in self.stack.roles().items():
            stats = self.roles.setdefault(role, RoleStart())
            pids = self.pids.setdefault(role, set())
            rss = 0
            for ident in idents:
                self.seen(ident.pid, role)
                pids.add(ident.pid)
                if stats.first_seen_s is None:  # to the sampling interval: start times in /proc
                    stats.first_seen_s = round(time.monotonic() - self.started, 2)  # are coarser
                rss += _rss(ident.pid)
            stats.processes = len(pids)
            stats.peak_rss = max(stats.peak_rss, rss)


def _wait_ready(stack: Stack, timeout: float) -> float | StackFailed:
    """The failure as a value: a greenlet that raises gets a traceback printed on the terminal."""
    try:
        return stack.wait_ready(timeout)
    except StackFailed as exc:
        return exc


def _rss(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


@dataclass
class Attempts:
    """Starts the stack up to `spec.attempts` times; the runner calls `run` once."""

    spec: StartupSpec
    journal: Journal
    stack: Stack
    startup_timeout: float
    stop_requested: Event
    after_start: Callable[[], None]  # put new processes in the memory group, record them
    after_stop: Callable[[], None]  # the restore record: the stack's processes are gone
    seen: Callable[[int, str], None]  # every PID the stack showed (kernel-log attribution)
    group: MemoryGroup | None = None

    def run(self) -> float | None:
        """Seconds the successful attempt took; None if interrupted; StackFailed after the last."""
        error = ""
        for attempt in range(1, self.spec.attempts + 1):
            try:
                ready = self._one(attempt)
            except StackFailed as exc:
                error = str(exc)
                if attempt < self.spec.attempts and self.stop_requested.wait(self.spec.backoff):
                    return None
                continue
            return ready
        raise StackFailed(f"not ready after {self.spec.attempts} start(s); last: {error}")

    def _one(self, attempt: int) -> float | None:
        oom_before = self._oom_kills()
        started = time.monotonic()
        sampler = StartSampler(self.stack, started, self.seen)
        self.stack.start()
        self.after_start()
        watcher = gevent.spawn(sampler.run)
        waiter = gevent.spawn(_wait_ready, self.stack, self.startup_timeout)
        gevent.wait([waiter, self.stop_requested], count=1)
        watcher.kill()
        sampler.sample()
        if not waiter.ready():
            waiter.kill()
            return None
        fields = {"attempt": attempt, "of": self.spec.attempts,
                  "roles": {role: stats.as_dict() for role, stats in sampler.roles.items()}}
        ready = waiter.get()
        if isinstance(ready, StackFailed):
            fields.update(self._memory(oom_before))
            self.journal.event("stack_start_attempt", outcome="failed",
                               seconds=round(time.monotonic() - started, 3), error=str(ready), **fields)
            self._stop_failed()
            raise ready
        fields.update(self._memory(oom_before))
        self.journal.event("stack_start_attempt", outcome="ready", seconds=round(ready, 3), **fields)
        return ready

    def _stop_failed(self) -> None:
        report = self.stack.stop(graceful=True)
        self.after_stop()
        self.journal.event("stack_stopped", report={"exits": report.exits, "leaks": report.leaks},
                           failed_start=True)

    def _oom_kills(self) -> int:
        if self.group is not None and self.group.exists():
            self.group.reset_peak()
        return self.group.stats().oom_kill if self.group is not None and self.group.exists() else 0

    def _memory(self, oom_before: int) -> dict[str, Any]:
        if self.group is None or not self.group.exists():
            return {}
        stats = self.group.stats()
        return {"memory": {"group": self.group.rel, "limit": stats.limit, "peak": stats.peak,
                           "oom_kills": stats.oom_kill - oom_before, "limit_hits": stats.limit_hits}}
