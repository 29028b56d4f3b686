"""Container faults through the Docker engine: restart, kill with any signal, stop then start,
pause then unpause, and a memory limit change on the running container (`docker update`).

    - {kind: container_restart, at: 10s, timeout: 10s}                  # docker restart -t 10
    - {kind: container_kill, at: 10s, signal: SIGKILL, duration: 5s}    # down 5 s, then started
    - {kind: container_stop, at: 10s, duration: 5s, timeout: 10s}       # docker stop; start after 5 s
    - {kind: container_pause, at: 10s, duration: 3s}                    # cgroup freezer: a hang
    - {kind: container_update, at: 10s, duration: 20s, memory: 300Mi}  # limit, then the old one back

Targets are the stack's own containers: those it created and labelled, or those a
`container_external` scenario names. `container: NAME` picks one of them and is refused for any
other; `pick: all` takes every one. Each fault is restored afterwards (the container running,
unpaused, with its old memory limit), also by `harness cleanup` from the plan alone.

Engine calls that take time (restart, stop) run in the background, so the fault's injection
time is when the engine was asked, and the engine's own events (kill, die, start) say when it
acted. Docker treats `docker kill` as a deliberate stop: its restart policy does not bring the
container back (seen with Docker 20.10); to test a restart policy, kill the process
(`process_kill`) instead.
"""

import math
import signal
import time
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import gevent
from pydantic import AfterValidator, Field, field_validator

from faults.base import Fault, FaultContext, FaultError, FaultParams
from harness.containers.capability import RunsContainers
from harness.containers.engine import connect
from harness.containers.sizes import memory_size, show_size
from harness.process_faults.faults import signal_number
from harness.procs import SentSignal, note_signal
from harness.sizes import Size
from harness.specbase import Duration

PENDING_TIMEOUT_S = 120.0  # a restart or stop the engine has not finished by then is a failure
EXIT_WAIT_POLL_S = 0.1
# Signals Docker's init (tini) does not pass on: it leaves them to their default action, which
# the kernel ignores for a namespace's PID 1. Sent with `docker kill`, they are lost.
INIT_DROPS = {signal.SIGFPE, signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGTRAP,
              signal.SIGSYS, signal.SIGTTIN, signal.SIGTTOU}
# What cgroups read as "no limit" (v1's largest page-aligned value): Docker 20.10 cannot remove a
# memory limit once set (`update` ignores 0 and refuses -1), so an unlimited container gets this.
UNLIMITED = 9223372036854771712


class ContainerParams(FaultParams):
    container: str | None = None  # a name (or id) of one of the stack's containers
    pick: Literal["one", "all"] = "one"  # one: chosen by the run's seeded random source


class StopParams(ContainerParams):
    timeout: Duration = Field(10.0, ge=0)  # Docker's wait between SIGTERM and SIGKILL


class KillParams(ContainerParams):
    signal: str | int = "SIGKILL"
    start_after: bool = True  # after `duration`, start the container again if the signal ended it
    exit_wait: Duration = Field(10.0, ge=0)  # how long restore waits for the signal to end it

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str | int) -> str | int:
        try:
            signal_number(value)
        except (KeyError, ValueError):
            raise ValueError(f"unknown signal {value!r} (e.g. SIGKILL, SIGTERM, SIGSEGV, 9)") from None
        return value


class UpdateParams(ContainerParams):
    # The new limit in bytes, e.g. 300Mi (no swap: the same value is the memory+swap limit). The SDK
    # takes integer bytes as they are.
    memory: Annotated[Size, AfterValidator(memory_size)]


def _stack_containers(ctx: FaultContext) -> list[dict[str, str]]:
    if not isinstance(ctx.stack, RunsContainers):
        raise FaultError("container faults need a container stack (kind: container or container_external)")
    return list(ctx.stack.containers())


def choose(ctx: FaultContext, params: ContainerParams) -> list[dict[str, str]]:
    """The containers to act on, only ever among the stack's own."""
    known = _stack_containers(ctx)
    if params.container is not None:
        wanted = params.container.lstrip("/")
        chosen = [c for c in known
                  if wanted == c["name"] or (len(wanted) >= 12 and c["id"].startswith(wanted))]
        if not chosen:
            names = ", ".join(c["name"] for c in known) or "none"
            raise FaultError(f"container {params.container!r} is not one of this stack's ({names}); "
                             "the harness acts only on containers it made or the scenario names")
        return chosen
    if not known:
        raise FaultError("the stack has no container right now")
    if params.pick == "all":
        return known
    return [ctx.rng.choice(sorted(known, key=lambda c: c["name"]))]


def _containers(plan: dict[str, Any], client: Any = None) -> list[Any]:
    """The plan's containers that still exist (one removed meanwhile has nothing to restore)."""
    from docker.errors import NotFound

    client = client or connect(plan["docker_host"])
    found = []
    for ref in plan["containers"]:
        try:
            found.append(client.containers.get(ref["id"]))
        except NotFound:
            continue
    return found


def ensure_running(container: Any) -> str:
    """Unpause or start it as needed; returns what was done ('' when it was running)."""
    container.reload()
    state = container.attrs["State"]
    if state.get("Paused"):
        container.unpause()
        return "unpaused"
    if not state.get("Running") and not state.get("Restarting"):
        container.start()
        return "started"
    return ""


class ContainerFault(Fault):
    """Shared parts: choose targets, plan them with the engine address, run slow calls aside."""

    params_model: ClassVar[type[FaultParams]] = ContainerParams
    _pending: gevent.Greenlet | None = None
    _client: Any = None  # connected in `plan`, so `inject` does not wait for a new connection

    def _targets(self, plan: dict[str, Any]) -> list[Any]:
        if self._client is None:
            self._client = connect(plan["docker_host"])
        return _containers(plan, self._client)

    def validate(self, ctx: FaultContext) -> None:
        params = self.params
        assert isinstance(params, ContainerParams)
        choose(ctx, params)

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        params = self.params
        assert isinstance(params, ContainerParams)
        targets = choose(ctx, params)
        self._client = connect(ctx.stack.docker_host)
        return {"docker_host": ctx.stack.docker_host, "containers": targets, **self.settings()}

    def settings(self) -> dict[str, Any]:
        """This fault's own parameters, as the plan records them."""
        return {}

    def _in_background(self, plan: dict[str, Any], call: Callable[[Any], Any]) -> list[str]:
        containers = self._targets(plan)
        if not containers:
            raise FaultError("none of the planned containers exists any more")
        self._pending = gevent.spawn(lambda: [call(c) for c in containers])
        return [c.name for c in containers]

    def _finish_background(self) -> None:
        """Wait for the engine call; its error, if any, becomes the restore's error."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        pending.join(timeout=PENDING_TIMEOUT_S)
        if not pending.ready():
            pending.kill(block=False)
            raise FaultError(f"the engine had not finished after {PENDING_TIMEOUT_S:.0f}s")
        pending.get()

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        self._finish_background()
        self.undo(plan)

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:
        for container in _containers(plan):
            ensure_running(container)


class ContainerRestart(ContainerFault):
    """`docker restart`: SIGTERM, SIGKILL after `timeout`, start again."""

    kind = "container_restart"
    params_model = StopParams

    def settings(self) -> dict[str, Any]:
        assert isinstance(self.params, StopParams)
        return {"timeout": self.params.timeout}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        timeout = math.ceil(plan["timeout"])
        _note_engine_signal(self._targets(plan), signal.SIGTERM)  # what `docker restart` sends first
        names = self._in_background(plan, lambda c: c.restart(timeout=timeout))
        return {"restarting": names, "stop_timeout_s": timeout}


def _note_engine_signal(containers: list[Any], number: int) -> None:
    """Before the engine signals: the server's log line about it must find the harness as sender."""
    for container in containers:
        note_signal(SentSignal(int(number), 0, str(getattr(container, "name", ""))))


class ContainerStop(ContainerFault):
    """`docker stop` now, `docker start` after the fault's `duration`."""

    kind = "container_stop"
    params_model = StopParams

    def settings(self) -> dict[str, Any]:
        assert isinstance(self.params, StopParams)
        return {"timeout": self.params.timeout}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        timeout = math.ceil(plan["timeout"])
        _note_engine_signal(self._targets(plan), signal.SIGTERM)  # what `docker stop` sends first
        names = self._in_background(plan, lambda c: c.stop(timeout=timeout))
        return {"stopping": names, "stop_timeout_s": timeout}


class ContainerKill(ContainerFault):
    """`docker kill --signal`: any signal, to the container's first process (its init passes it on)."""

    kind = "container_kill"
    params_model = KillParams

    def settings(self) -> dict[str, Any]:
        params = self.params
        assert isinstance(params, KillParams)
        name = signal.Signals(signal_number(params.signal)).name
        return {"signal": name, "start_after": params.start_after, "exit_wait": params.exit_wait}

    def validate(self, ctx: FaultContext) -> None:
        super().validate(ctx)
        params = self.params
        assert isinstance(params, KillParams)
        number = signal.Signals(signal_number(params.signal))
        if number not in INIT_DROPS:
            return
        client = connect(ctx.stack.docker_host)
        for ref in choose(ctx, params):
            if client.containers.get(ref["id"]).attrs["HostConfig"].get("Init"):
                raise FaultError(f"{number.name} sent with `docker kill` stops at {ref['name']}'s init, "
                                 "which does not pass it on; crash the server with "
                                 f"`process_kill` (role: server, signal: {number.name}) instead")

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        containers = self._targets(plan)
        for container in containers:
            _note_engine_signal([container], signal_number(plan["signal"]))
            container.kill(signal=plan["signal"])
        return {"signalled": [c.name for c in containers], "signal": plan["signal"]}

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        if plan["start_after"]:
            _wait_for_exit(self._targets(plan), plan["exit_wait"])
            self.undo(plan)

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:
        if plan["start_after"]:
            super().undo(plan)


def _wait_for_exit(containers: list[Any], timeout: float) -> None:
    """A SIGTERM takes the server a moment; restarting before it exits would leave it down."""
    deadline = time.monotonic() + timeout
    for container in containers:
        while time.monotonic() < deadline:
            container.reload()
            if not container.attrs["State"].get("Running"):
                break
            gevent.sleep(EXIT_WAIT_POLL_S)


class ContainerPause(ContainerFault):
    """`docker pause` (the cgroup freezer) for the fault's `duration`, then `docker unpause`."""

    kind = "container_pause"

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        containers = self._targets(plan)
        for container in containers:
            container.pause()
        return {"paused": [c.name for c in containers]}

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:
        for container in _containers(plan):
            container.reload()
            if container.attrs["State"].get("Paused"):
                container.unpause()


class ContainerUpdate(ContainerFault):
    """`docker update --memory` on the running container for `duration`, then the old limit back."""

    kind = "container_update"
    params_model = UpdateParams

    def settings(self) -> dict[str, Any]:
        assert isinstance(self.params, UpdateParams)
        return {"memory": self.params.memory}

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        plan = super().plan(ctx)
        previous = {}
        for container in self._targets(plan):
            host = container.attrs["HostConfig"]
            previous[container.id] = {"memory": host.get("Memory") or 0,
                                      "memory_swap": host.get("MemorySwap") or 0}
        return {**plan, "previous": previous}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        limit = plan["memory"]
        now = {}
        for container in self._targets(plan):
            container.update(mem_limit=limit, memswap_limit=limit)
            container.reload()
            now[container.name] = show_size(int(container.attrs["HostConfig"]["Memory"]))
        before = {k: _show(v["memory"]) for k, v in plan["previous"].items()}
        return {"memory_now": now, "memory_before": before}

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        self.undo(plan)
        for container in self._targets(plan):  # read back: a restore that did not take is an error
            previous = plan["previous"].get(container.id)
            container.reload()
            now = int(container.attrs["HostConfig"].get("Memory") or 0)
            if previous is not None and now != (previous["memory"] or UNLIMITED):
                raise FaultError(f"{container.name}: memory limit read back after restore is {_show(now)}, "
                                 f"not {_show(previous['memory'])}")

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:
        for container in _containers(plan):
            previous = plan["previous"].get(container.id)
            if previous is None:
                continue
            memory = previous["memory"] or UNLIMITED
            swap = previous["memory_swap"] if previous["memory"] else UNLIMITED
            container.update(mem_limit=memory, memswap_limit=swap or memory)


def _show(memory: int) -> str:
    return show_size(memory) if memory and memory != UNLIMITED else "unlimited"
