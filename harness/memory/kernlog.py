"""The kernel log, where readable: OOM kills and other kernel lines a serving engineer needs.

Reads /dev/kmsg from the moment the watcher starts (not the boot history). Each OOM kill
(`Killed process PID (NAME)` with the `oom-kill:` context line before it) becomes an `oom_kill`
event naming the process, its memory cgroup and whether it was ours: a PID of this run's stack,
sidecars or stressors, or a group this harness made. The host is shared, so another tenant's
OOM kill is recorded as `ours: false` and never counted against the stack. Other lines that
matter (segfaults, hung tasks, kernel BUGs, GPU Xid errors) become `kernel_log` events.
Where /dev/kmsg cannot be read (no privilege, a container) the watcher says so once in its
summary and stays silent; the cgroup's own OOM counter (observers/memory.py) still works.
"""

import errno
import os
import re
from collections.abc import Callable
from typing import Any

import gevent

from harness.observers.base import Observer, ObserverContext

KMSG = "/dev/kmsg"
POLL_S = 0.25
MAX_EVENTS = 200
KILLED = re.compile(r"(?:Memory cgroup out of memory|Out of memory).*?: Killed process (\d+) \(([^)]*)\)"
                    r"(?:.*?anon-rss:(\d+)kB)?")
CONTEXT = re.compile(r"oom-kill:.*?oom_memcg=([^,]*),task_memcg=([^,]*),task=([^,]*),pid=(\d+)")
OTHER: dict[str, re.Pattern[str]] = {
    "oom_invoked": re.compile(r"invoked oom-killer"),
    "segfault": re.compile(r"segfault at|general protection fault"),
    "hung_task": re.compile(r"blocked for more than \d+ seconds"),
    "kernel_bug": re.compile(r"\bBUG:|Oops|Kernel panic"),
    "gpu_xid": re.compile(r"NVRM: Xid"),
}


class KernelLogWatcher(Observer):
    name = "kernel_log"

    def __init__(self, is_ours: Callable[[int, str, str], str | None], path: str = KMSG):
        """`is_ours(pid, name, memcg)`: a label (role) for this run's processes and groups, else None."""
        self.is_ours = is_ours
        self.path = path
        self.fd: int | None = None
        self.unreadable: str | None = None
        self.counts: dict[str, int] = {}
        self.events = 0
        self._context: dict[int, tuple[str, str]] = {}
        self.ctx: ObserverContext | None = None
        self.greenlet: gevent.Greenlet | None = None

    def start(self, ctx: ObserverContext) -> None:
        self.ctx = ctx
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)  # from now on, not the boot history
        except OSError as exc:
            self.unreadable = f"{self.path}: {exc.strerror}"
            return
        self.greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            self.poll()
            gevent.sleep(POLL_S)

    def poll(self) -> None:
        """Read every record waiting (one per read on /dev/kmsg)."""
        while self.fd is not None:
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue  # records overwritten before we read them: go on with the next
                raise
            if not record:
                return
            self.handle(record.decode("utf-8", "replace"))

    def handle(self, record: str) -> None:
        header, _, message = record.partition(";")
        message = message.split("\n", 1)[0]
        context = CONTEXT.search(message)
        if context:
            self._context[int(context.group(4))] = (context.group(1), context.group(2))
            return
        killed = KILLED.search(message)
        if killed:
            self._on_kill(int(killed.group(1)), killed.group(2), killed.group(3), message)
            return
        for kind, pattern in OTHER.items():
            if pattern.search(message):
                self._emit("kernel_log", kind=kind, line=message[:500])
                return

    def _on_kill(self, pid: int, name: str, anon_kb: str | None, line: str) -> None:
        oom_memcg, task_memcg = self._context.pop(pid, ("", ""))
        label = self.is_ours(pid, name, task_memcg or oom_memcg)
        self._emit("oom_kill", pid=pid, process=name, ours=label is not None, role=label,
                   memcg=task_memcg or None, oom_memcg=oom_memcg or None,
                   anon_rss=int(anon_kb) * 1024 if anon_kb else None, line=line[:500])

    def _emit(self, event: str, **fields: Any) -> None:
        key = event if event != "kernel_log" else f"kernel_log.{fields['kind']}"
        if event == "oom_kill":
            key = "oom_kill.ours" if fields["ours"] else "oom_kill.other"
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.ctx is not None and self.events < MAX_EVENTS:
            self.events += 1
            self.ctx.journal.event(event, **fields)

    def stop(self) -> dict[str, Any]:
        if self.greenlet is not None:
            self.greenlet.kill()
        if self.fd is not None:
            self.poll()  # what the kernel wrote while the stack stopped
            os.close(self.fd)
            self.fd = None
        return {"readable": self.unreadable is None, "reason": self.unreadable, "counts": self.counts}
