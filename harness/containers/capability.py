"""What a stack must offer for the container faults and the Docker events observer to act on it.

Typed protocols, checked with isinstance, instead of probing attributes by name.
"""

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class RunsContainers(Protocol):
    """A stack whose processes are containers (`container`, `container_external`)."""

    docker_host: str  # the engine's address
    started_wall: float | None  # when the stack began making or finding its containers (wall clock)

    def containers(self) -> list[dict[str, str]]:
        """Its containers that exist now: name and id."""
        ...

    def event_filters(self) -> dict[str, Any]:
        """The engine's event filters that select its containers."""
        ...


@runtime_checkable
class StartsThroughLauncher(Protocol):
    """A stack that starts each process through `launcher` (a ManagedProcess factory): what lets
    the container stack run the same processes in containers."""

    launcher: Callable[..., Any]
