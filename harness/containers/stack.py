"""Any stack kind that starts its processes through a launcher, run inside Docker.

The inner stack (Triton) does everything it does on the host: it writes its model repository,
picks its ports, builds its command line and checks its health. Only the step that starts a
process changes: each process becomes a container made from the local host-runtime image,
labelled with the run's id, on the host's network, with the host's programs mounted read-only
at the same paths. Stopping the stack stops and removes its containers; any other container
still carrying the run's label is a leak, reported and removed.
"""

import hashlib
import time
from pathlib import Path
from typing import Any

from harness.containers.capability import StartsThroughLauncher
from harness.containers.engine import connect, resolve_host, run_filter
from harness.containers.events_observer import DockerEvents
from harness.containers.image import ensure_image
from harness.containers.process import ContainerLauncher, ContainerSettings
from harness.containers.spec import ContainerSpec
from harness.errors import StackFailed
from harness.features import BringsObservers
from harness.load.target import Target
from harness.observers.base import Observer
from harness.observers.scrape_profile import ScrapeProfile
from harness.procs import ManagedProcess, ProcessId
from harness.stacks.base import Endpoints, Health, Stack, StopReport
from harness.tracing import TakesTraceOverrides

CLEANUP = "harness.containers.cleanup:remove_run_containers"


def run_id_for(workdir: Path) -> str:
    """The run folder's name, plus a hash of its full path: two runs started in the same second
    from different folders (parallel test sessions) must not share a label."""
    run_dir = workdir.resolve().parent
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:6]
    return f"{run_dir.name}-{digest}"


class ContainerStack(Stack):
    kind = "container"

    def __init__(self, spec: ContainerSpec, workdir: Path, collector_url: str | None = None):
        self.spec = spec
        self.workdir = workdir
        inner_spec = spec.inner.model_copy(update={"stop_timeout": spec.stop_timeout})
        self.inner = inner_spec.build(workdir, collector_url=collector_url)
        if not isinstance(self.inner, StartsThroughLauncher):
            raise StackFailed(f"stack kind {spec.inner.kind!r} does not start processes through a launcher")
        self.run_id = run_id_for(workdir)
        self.docker_host, self.host_source = resolve_host(spec.docker_host)
        self.client: Any = None
        self.launcher: ContainerLauncher | None = None
        self.started_wall: float | None = None  # when the first container was asked for (events since)
        self.engine_version = ""

    # --- what the harness records and what container faults and observers use

    def resources(self) -> list[tuple[str, dict[str, Any]]]:
        return [(CLEANUP, {"docker_host": self.docker_host, "run_id": self.run_id})]

    def containers(self) -> list[dict[str, str]]:
        """This stack's containers that exist now: name and id."""
        if self.launcher is None:
            return []
        return [{"name": c.name, "id": c.id} for c in self.launcher.live()]

    def event_filters(self) -> dict[str, Any]:
        return run_filter(self.run_id)

    def extra_observers(self) -> list[Observer]:
        """The engine's events for this run's containers, and whatever the inner stack watches."""
        inner = self.inner.extra_observers() if isinstance(self.inner, BringsObservers) else []
        return [DockerEvents(), *inner]

    # --- the Stack interface, delegated to the inner stack

    def start(self) -> None:
        if self.launcher is None:
            self.started_wall = time.time()
            self.client = connect(self.spec.docker_host)
            self.engine_version = str(self.client.version().get("Version", ""))
            spec = self.spec
            settings = ContainerSettings(ensure_image(self.client), spec.init, spec.shm_size, spec.memory,
                                         spec.cpus, spec.docker_restart, spec.mounts)
            self.launcher = ContainerLauncher(self.client, settings, self.run_id, spec.inner.kind,
                                              self.workdir)
            self.inner.launcher = self.launcher  # type: ignore[attr-defined]
        self.inner.start()

    def wait_ready(self, timeout: float) -> float:
        return self.inner.wait_ready(timeout)

    def stop(self, graceful: bool = True) -> StopReport:
        report = self.inner.stop(graceful)
        if self.launcher is not None:
            leaked = self.launcher.live()
            for container in leaked:
                container.remove(force=True)
            if leaked:
                names = ", ".join(c.name for c in leaked)
                report.leaks.append(f"{len(leaked)} container(s) left after the stop: {names}; removed")
        return report

    def roles(self) -> dict[str, list[ProcessId]]:
        return self.inner.roles()

    def log_files(self) -> dict[str, Path]:
        return self.inner.log_files()

    def health(self, timeout: float = 0.5) -> Health:
        return self.inner.health(timeout)

    @property
    def endpoints(self) -> Endpoints:
        return self.inner.endpoints

    def scrape_profile(self) -> ScrapeProfile:
        """The inner stack's: the same server answers on the same metrics port, in a container."""
        return self.inner.scrape_profile()

    def target(self, request_timeout: float) -> Target:
        return self.inner.target(request_timeout)

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    def canary(self, timeout: float) -> Health | None:
        """The inner stack's canary (the container shares the host's network)."""
        return self.inner.canary(timeout)

    def owned_processes(self) -> list[ManagedProcess]:
        return self.inner.owned_processes()

    def describe(self) -> dict[str, Any]:
        info = self.inner.describe()
        info.update(
            kind=self.kind, inner_kind=self.spec.inner.kind, docker_host=self.docker_host,
            docker_host_from=self.host_source, engine_version=self.engine_version, run_label=self.run_id,
            containers=self.containers(),
            image=self.launcher.settings.image if self.launcher else None,
        )
        return info

    # Tracing and other stack-specific parts (trace file, trace overrides) are the inner stack's.
    @property
    def trace_overrides(self) -> dict[str, Any]:
        return dict(self.inner.trace_overrides) if isinstance(self.inner, TakesTraceOverrides) else {}

    @trace_overrides.setter
    def trace_overrides(self, value: dict[str, Any]) -> None:
        if not isinstance(self.inner, TakesTraceOverrides):
            raise TypeError(f"stack kind {self.inner.kind!r} takes no trace settings")
        self.inner.trace_overrides = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
