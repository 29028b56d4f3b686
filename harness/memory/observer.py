"""Memory as the run goes: per-role RSS, the memory cgroups the stack runs in, the host.

Twice a second it writes three series:
- `memory_rss`: the summed RSS of each role's live processes (sidecars as `sidecar:NAME`);
- `memory_cgroup`: for each harness-made group a process of the stack or a sidecar is in,
  `usage{group=...}`, `limit`, `peak`, `limit_hits` (v1 failcnt, v2 events `max`), `oom_kill`
  and PSI (`psi_some_avg10`...: the group's own on v2, the host's on v1);
- `memory_host`: MemAvailable and the host's PSI.
When a group's OOM-kill counter rises it writes `cgroup_oom_kill` (the kernel's own count, so it
is seen even where the kernel log cannot be read). Groups are remembered once seen, so a group
whose every process was OOM-killed is still read.
"""

from collections.abc import Callable
from typing import Any

import gevent
import psutil

from harness.memory.cgroups import CgroupError, Hierarchy, MemoryGroup, hierarchy
from harness.memory.host import host_memory, read_psi
from harness.observers.base import Observer, ObserverContext
from harness.procs import ProcessId

INTERVAL_S = 0.5
HARNESS_GROUP = "harness-"

Extra = Callable[[], dict[str, list[ProcessId]]]


class MemoryObserver(Observer):
    name = "memory"

    def __init__(self, extra: Extra | None = None, seen: Callable[[int, str], None] | None = None,
                 interval_s: float = INTERVAL_S, cgroup: str = "auto"):
        self.extra = extra or dict
        self.seen = seen or (lambda _pid, _role: None)
        self.interval_s = interval_s
        self.hier: Hierarchy | None = None
        self.cgroup_choice = cgroup
        self.groups: dict[str, MemoryGroup] = {}
        self.oom_kills: dict[str, int] = {}
        self.peak_rss: dict[str, int] = {}
        self.ctx: ObserverContext | None = None
        self.greenlet: gevent.Greenlet | None = None

    def start(self, ctx: ObserverContext) -> None:
        self.ctx = ctx
        try:
            self.hier = hierarchy(self.cgroup_choice)  # type: ignore[arg-type]
        except CgroupError:
            self.hier = None  # no cgroup figures here; RSS and host figures still come
        self.greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            self.sample()
            gevent.sleep(self.interval_s)

    def processes(self) -> dict[str, list[ProcessId]]:
        assert self.ctx is not None
        found = dict(self.ctx.stack.roles())
        found.update(self.extra())
        return found

    def sample(self) -> None:
        assert self.ctx is not None
        journal = self.ctx.journal
        by_role = self.processes()
        rss: dict[str, float] = {}
        for role, idents in by_role.items():
            rss[role] = sum(_rss(ident) for ident in idents)
            self.peak_rss[role] = max(self.peak_rss.get(role, 0), int(rss[role]))
            for ident in idents:
                self.seen(ident.pid, role)
        if rss:
            journal.series("memory_rss", rss)
        self._sample_groups(by_role)
        host = host_memory()
        values: dict[str, float] = {"available": host.available, "total": host.total}
        values.update({f"psi_{k}": v for k, v in (read_psi() or {}).items()})
        journal.series("memory_host", values)

    def _sample_groups(self, by_role: dict[str, list[ProcessId]]) -> None:
        assert self.ctx is not None
        if self.hier is None:
            return
        for idents in by_role.values():
            for ident in idents:
                try:
                    group = self.hier.group_of(ident.pid)
                except (OSError, CgroupError):
                    continue
                if group.rel.rsplit("/", 1)[-1].startswith(HARNESS_GROUP):
                    self.groups.setdefault(group.rel, group)
        values: dict[str, float] = {}
        for rel, group in list(self.groups.items()):
            try:
                stats = group.stats()
            except OSError:
                del self.groups[rel]  # removed (a fault restored)
                continue
            name = rel.rsplit("/", 1)[-1]
            values.update({f"{key}{{group={name}}}": value for key, value in stats.as_series().items()})
            before = self.oom_kills.get(rel, 0)
            if stats.oom_kill > before:
                self.ctx.journal.event("cgroup_oom_kill", group=rel, oom_kill=stats.oom_kill,
                                       new=stats.oom_kill - before)
            self.oom_kills[rel] = stats.oom_kill
        if values:
            self.ctx.journal.series("memory_cgroup", values)

    def stop(self) -> dict[str, Any]:
        if self.greenlet is not None:
            self.greenlet.kill()
        return {
            "cgroup": self.hier.describe() if self.hier else None,
            "peak_rss": self.peak_rss,
            "oom_kills": {rel: n for rel, n in self.oom_kills.items() if n},
        }


def _rss(ident: ProcessId) -> int:
    proc = ident.alive()
    if proc is None:
        return 0
    try:
        return int(proc.memory_info().rss)
    except psutil.Error:
        return 0
