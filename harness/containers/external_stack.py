"""Containers that already run: the harness attaches by name or label and starts nothing.

Their main processes are the `server` role (so the supervisor sees a container restart as the
server exiting), and container faults may act on them because the scenario names them.
Stopping the stack leaves them as they are.
"""

import time
from typing import Any

import psutil

from harness.containers.engine import connect, resolve_host
from harness.containers.events_observer import DockerEvents
from harness.containers.external_spec import ContainerExternalSpec
from harness.errors import StackFailed
from harness.observers.base import Observer
from harness.procs import ProcessId
from harness.stacks.external import ExternalStack

INIT_NAMES = ("docker-init", "tini")


class ContainerExternalStack(ExternalStack):
    kind = "container_external"

    def __init__(self, spec: ContainerExternalSpec):
        super().__init__(spec)
        self.cspec = spec
        self.docker_host, self.host_source = resolve_host(spec.docker_host)
        self.client: Any = None
        self.attached: list[Any] = []
        self.started_wall: float | None = None

    def start(self) -> None:
        if self.client is None:
            self.started_wall = time.time()
            self.client = connect(self.cspec.docker_host)
        self.attached = self._find()

    def _find(self) -> list[Any]:
        from docker.errors import NotFound

        found: dict[str, Any] = {}
        for name in self.cspec.containers:
            try:
                container = self.client.containers.get(name)
            except NotFound:
                raise StackFailed(f"no container named {name!r} at {self.docker_host}") from None
            found[container.id] = container
        if self.cspec.label is not None:
            labelled = self.client.containers.list(filters={"label": self.cspec.label})
            if not labelled:
                label = self.cspec.label
                raise StackFailed(f"no running container has label {label!r} at {self.docker_host}")
            found.update((c.id, c) for c in labelled)
        return sorted(found.values(), key=lambda c: c.name)

    def containers(self) -> list[dict[str, str]]:
        return [{"name": c.name, "id": c.id} for c in self.attached]

    def event_filters(self) -> dict[str, Any]:
        return {"container": [c.id for c in self.attached]}

    def extra_observers(self) -> list[Observer]:
        return [DockerEvents()]

    def roles(self) -> dict[str, list[ProcessId]]:
        servers = []
        for container in self.attached:
            ident = _main_process(container)
            if ident is not None:
                servers.append(ident)
        return {"server": servers}

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(docker_host=self.docker_host, docker_host_from=self.host_source,
                    containers=self.containers())
        return info


def _main_process(container: Any) -> ProcessId | None:
    """The container's command on the host: its first process, or that one's child under an init."""
    from docker.errors import NotFound

    try:
        container.reload()
    except NotFound:
        return None
    pid = container.attrs["State"].get("Pid") or 0
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.name() in INIT_NAMES:
            children = proc.children()
            if not children:
                return None
            proc = children[0]
        return ProcessId.of(proc)
    except psutil.Error:
        return None
