"""A stack's process, run in a container the harness creates, labels and removes.

`ContainerProcess` has `ManagedProcess`'s interface, so a stack that starts its processes
through its `launcher` (Triton does) runs unchanged inside Docker: its health checks, roles,
log watching and stop logic keep working. The process's output goes to the same log file as
on the host (the run folder is mounted), so log patterns see it across container restarts.
"""

import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from harness.containers.engine import KIND_LABEL, ROLE_LABEL, RUN_LABEL
from harness.containers.mounts import container_env, plan_mounts
from harness.procs import (
    REAP_WAIT_S,
    ManagedProcess,
    ProcessId,
    SentSignal,
    StopResult,
    kill_all,
    note_signal,
)

NO_PROCESS = ProcessId(0, -1.0, "")  # never alive: what `ident` is before the command runs
WRAPPER_SHELL = "sh"
# The command's output is appended to its log file in the mounted run folder; `exec` makes the
# server the shell's own process, so signals reach it directly.
_WRAPPER = ["/bin/sh", "-c", 'exec "$@" >>"$0" 2>&1']


def exit_status(code: int) -> int:
    """Docker's exit code in ManagedProcess's terms: 128+N (killed by signal N) becomes -N.

    Docker and its init report a process killed by signal N as 128+N; the harness journals
    signals as negative codes, so a SIGKILL reads as SIGKILL and not as "exit code 137".
    """
    return -(code - 128) if 128 < code <= 128 + 64 else code


@dataclass(frozen=True)
class ContainerSettings:
    """How containers are made: the parts of a container stack's settings the launcher reads."""

    image: str
    init: bool
    shm_size: int  # bytes
    memory: int | None  # bytes
    cpus: float | None
    restart_policy: str
    mounts: list[str]


class ContainerLauncher:
    """Called like ManagedProcess(argv, env, log_path, cwd=...): creates and starts one container."""

    def __init__(self, client: Any, settings: ContainerSettings, run_id: str, kind: str, workdir: Path):
        self.client = client
        self.settings = settings
        self.run_id = run_id
        self.kind = kind
        self.workdir = workdir

    def name_for(self, log_path: Path) -> str:
        return f"sh-{self.run_id}-{log_path.stem}".replace("/", "-")

    def __call__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> "ContainerProcess":
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()
        name = self.name_for(log_path)
        self._remove_stale(name)
        command = [*_WRAPPER, str(log_path.resolve()), *argv]
        container = self.client.containers.create(self.settings.image, command,
                                                  **self._options(argv, env, cwd, name, log_path.stem))
        container.start()
        return ContainerProcess(container, argv, log_path, self.settings.init)

    def _options(self, argv: list[str], env: dict[str, str], cwd: Path, name: str, process: str
                 ) -> dict[str, Any]:
        from docker.types import Mount

        settings = self.settings
        mounts = [Mount(m.path, m.path, type="bind", read_only=not m.writable)
                  for m in plan_mounts(argv, self.workdir, settings.mounts)]
        options: dict[str, Any] = {
            "name": name,
            "labels": {RUN_LABEL: self.run_id, KIND_LABEL: self.kind, ROLE_LABEL: process},
            "environment": container_env(env),
            "working_dir": str(cwd.resolve()),
            "network_mode": "host",  # the server listens on the host's loopback, as without Docker
            "init": settings.init,
            "mounts": mounts,
            "shm_size": settings.shm_size,
            "restart_policy": {"Name": settings.restart_policy},
        }
        if settings.memory is not None:  # no swap: the limit is the limit
            options.update(mem_limit=settings.memory, memswap_limit=settings.memory)
        if settings.cpus is not None:
            options["nano_cpus"] = int(settings.cpus * 1e9)
        return options

    def _remove_stale(self, name: str) -> None:
        """A container of this name from an earlier start of this run (a stack restart) goes first."""
        mine = {"name": name, "label": f"{RUN_LABEL}={self.run_id}"}
        for old in self.client.containers.list(all=True, filters=mine):
            if old.name == name:
                old.remove(force=True)

    def live(self) -> list[Any]:
        """This run's containers that still exist, as the engine lists them."""
        return list(self.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={self.run_id}"}))


class ContainerProcess(ManagedProcess):
    """ManagedProcess's interface over a container; `ident` is the command's process on the host.

    The container is not restarted by this class; when Docker restarts it (a fault, a restart
    policy) the command gets a new host PID, and `ident` follows it.
    """

    def __init__(self, container: Any, argv: list[str], log_path: Path, init: bool):
        # No super().__init__(): nothing is started on the host.
        self.container = container
        self.argv = argv
        self.log_path = log_path
        self.init = init
        self.descendants: dict[int, ProcessId] = {}
        self._main = NO_PROCESS
        self._main_started_at: str | None = None  # the container start `_main` belongs to

    @property
    def ident(self) -> ProcessId:
        if self._main is NO_PROCESS or self._main.name == WRAPPER_SHELL or (
                self._main.alive() is None and self._started_again()):
            found = self._find_main()
            if found is not None:
                self._main, self._main_started_at = found, self._started_at()
        return self._main

    @ident.setter
    def ident(self, value: ProcessId) -> None:
        self._main = value

    def _started_at(self) -> str | None:
        return self.state().get("StartedAt")

    def _started_again(self) -> bool:
        """A dead command is replaced only by the command of a new start of its container: while
        the container goes down its init may still hold other children (Triton's stubs, reparented
        to it), and taking one of those for the command would lose how the command ended."""
        started = self._started_at()
        return started is not None and started != self._main_started_at

    @property
    def pid(self) -> int:
        return self.ident.pid

    @property
    def name(self) -> str:
        return str(self.container.name)

    @property
    def id(self) -> str:
        return str(self.container.id)

    def state(self) -> dict[str, Any]:
        """The engine's view (`docker inspect` .State); an empty dict once the container is gone."""
        from docker.errors import NotFound

        try:
            self.container.reload()
        except NotFound:
            return {}
        return dict(self.container.attrs["State"])

    def _find_main(self) -> ProcessId | None:
        """The command's process: the container's first process, or with an init, its child."""
        pid = self.state().get("Pid") or 0
        if not pid:
            return None
        try:
            proc = psutil.Process(pid)
            if self.init:
                children = proc.children()
                if not children:
                    return None  # the init has not started the command yet
                proc = children[0]
            return ProcessId.of(proc)
        except psutil.Error:
            return None

    def returncode(self) -> int | None:
        state = self.state()
        if not state:
            return 255  # removed behind the harness's back: the process is certainly gone
        if state.get("Running") or state.get("Restarting"):
            return None
        return exit_status(int(state.get("ExitCode", 0)))

    def exit_code_after_reap(self, wait: float = REAP_WAIT_S) -> int | None:
        """The engine says how the command ended once it has noticed the exit (a moment later)."""
        deadline = time.monotonic() + wait
        code = self.returncode()
        while code is None and time.monotonic() < deadline:
            time.sleep(0.02)
            code = self.returncode()
        return code

    def stop(self, timeout: float, settle: float = 0.0) -> StopResult:
        """Docker's stop (SIGTERM, SIGKILL after `timeout`; at once when 0), then remove it.

        `settle` has nothing to wait for: removing the container ends every process in it."""
        from docker.errors import NotFound

        started = time.monotonic()
        self.refresh_descendants()
        code: int | None = None
        forced = False
        try:
            state = self.state()
            if state.get("Paused"):
                self.container.unpause()  # a frozen process cannot act on SIGTERM
            running = bool(state.get("Running") or state.get("Restarting"))
            if running:
                # Before the engine's stop blocks: the server logs the SIGTERM while it waits.
                sent = signal.SIGTERM if timeout > 0 else signal.SIGKILL
                note_signal(SentSignal(int(sent), self.pid, self.name))
                if timeout > 0:
                    self.container.stop(timeout=math.ceil(timeout))
                else:
                    self.container.kill()
            if state:
                raw = int(self.container.wait(timeout=max(timeout, 0) + 30)["StatusCode"])
                code = exit_status(raw)
                forced = running and timeout > 0 and raw == 137  # Docker's SIGKILL after the timeout
            self.container.remove(force=True)
        except NotFound:
            pass
        leftovers = kill_all(list(self.descendants.values()))
        return StopResult(code, forced, time.monotonic() - started, leftovers)
