"""The memory side of one run, from before the stack starts to after it stopped.

The runner calls four hooks:
- `begin(stack)`: the stack's memory group (`startup.memory_limit`), sidecars, and the memory,
  kernel-log and GPU watchers, all before the first start, so an OOM kill while the model
  loads is seen;
- `start_stack(...)`: start attempts (harness.memory.startup);
- `after_restart(stack)`: a restarted stack goes back into its group;
- `end()`: after the stack stopped: sidecars stop, watchers drain and stop, the group goes.
The group's plan is in the restore record before it exists, as a `memory_limit` fault named
`startup.memory`, so `harness cleanup` removes it after a SIGKILLed run.
"""

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gevent.event import Event

from harness.gpu.observer import GpuObserver
from harness.journal import Journal
from harness.memory.cgroups import CgroupError, MemoryGroup, hierarchy
from harness.memory.kernlog import KernelLogWatcher
from harness.memory.observer import MemoryObserver
from harness.memory.startup import Attempts, StartupSpec
from harness.observers.base import Observer, ObserverContext
from harness.restore import RestoreLog
from harness.sidecars import Sidecars, SidecarSpec
from harness.sizes import format_size
from harness.stacks.base import Stack

GROUP_FAULT_ID = "startup.memory"


class MemoryRun:
    def __init__(self, startup: StartupSpec, sidecars: list[SidecarSpec], run_dir: Path, journal: Journal,
                 restore: RestoreLog, stop_requested: Event):
        self.spec = startup
        self.journal = journal
        self.restore = restore
        self.stop_requested = stop_requested
        self.sidecars = Sidecars(sidecars, run_dir, journal, restore)
        self.group: MemoryGroup | None = None
        self.group_plan: dict[str, Any] | None = None
        self.known: dict[int, str] = {}  # every PID this run's stack and sidecars showed, by role
        self.base: str | None = None  # where this harness makes its memory groups
        self.observers: list[Observer] = []

    def seen(self, pid: int, role: str = "stack") -> None:
        self.known.setdefault(pid, role)

    def is_ours(self, pid: int, name: str, memcg: str) -> str | None:
        """A label for a killed process of this run: its role, else `memory stressor` or `in a
        harness memory group` when it was in a group this harness made."""
        if pid in self.known:
            return self.known[pid]
        if memcg and self.base is not None and memcg.startswith(self.base.rstrip("/") + "/harness-"):
            return "memory stressor" if name.startswith("harness-stress") else "in a harness memory group"
        return None

    def begin(self, stack: Stack) -> None:
        try:
            self.base = hierarchy(self.spec.cgroup).base
        except CgroupError:
            self.base = None
        if self.spec.memory_limit is not None:
            self._make_group(self.spec.memory_limit)
        self.sidecars.start(self._place_sidecar)
        for ident_list in self.sidecars.processes().items():
            for ident in ident_list[1]:
                self.seen(ident.pid, ident_list[0])
        self.observers = [
            KernelLogWatcher(self.is_ours),
            MemoryObserver(extra=self.sidecars.processes, seen=self.seen, cgroup=self.spec.cgroup),
            GpuObserver(roles=stack.roles),
        ]
        ctx = ObserverContext(self.journal, stack)
        for observer in self.observers:
            observer.start(ctx)

    def _make_group(self, limit: int) -> None:
        try:
            hier = hierarchy(self.spec.cgroup)
        except CgroupError as exc:
            from harness.errors import StackFailed

            raise StackFailed(f"startup.memory_limit: {exc}") from None
        group = hier.group(f"harness-run-{uuid.uuid4().hex[:10]}")
        self.group_plan = {**hier.describe(), "mode": "move", "group": group.rel, "targets": [],
                           "steps": [[0.0, limit]]}
        self.restore.fault_planned(GROUP_FAULT_ID, "memory_limit", self.group_plan)
        self.group = group  # from here on `end()` removes it, whatever happens next
        try:
            group.create()
            group.set_limit(limit)
        except CgroupError as exc:
            from harness.errors import StackFailed

            raise StackFailed(f"startup.memory_limit: {exc}") from None
        self.journal.event("memory_group_created", group=group.rel, cgroup=hier.version, limit=limit,
                           limit_text=format_size(limit))

    def _place_sidecar(self, spec: SidecarSpec, pid: int) -> None:
        if spec.memory == "stack" and self.group is not None:
            self.group.add(pid)

    def start_stack(self, stack: Stack, timeout: float, record_processes: Callable[[], None]) -> float | None:
        def after_start() -> None:
            self.after_restart(stack)
            record_processes()

        attempts = Attempts(self.spec, self.journal, stack, timeout, self.stop_requested,
                            after_start=after_start, after_stop=self._after_stop, seen=self.seen,
                            group=self.group)
        return attempts.run()

    def _after_stop(self) -> None:
        self.restore.processes_stopped()
        self.sidecars.record()

    def after_restart(self, stack: Stack) -> None:
        """New stack processes into the group (their children follow); sidecars re-recorded."""
        for role, idents in stack.roles().items():
            for ident in idents:
                self.seen(ident.pid, role)
                if self.group is not None:
                    self.group.add(ident.pid)
        self.sidecars.record()

    def end(self) -> None:
        self.sidecars.stop()
        for observer in self.observers:
            self.journal.event("observer_stopped", observer=observer.name, summary=observer.stop())
        self.observers = []
        if self.group is not None:
            home = self.group_plan["base"] if self.group_plan else "/"
            self.group.remove(move_to=MemoryGroup(self.group.version, self.group.mount, home))
            self.restore.fault_restored(GROUP_FAULT_ID)
            self.journal.event("memory_group_removed", group=self.group.rel)
            self.group = None
