"""Shared pieces of scenario models, and the base every stack kind's settings extend.

A stack kind is a pair: a settings model (a subclass of `StackSpecBase`, validated from the
scenario's `stack:` section) and a `Stack` implementation that its `build` returns. Kinds are
registered in the `harness.stacks` entry-point group, so a package can add its own.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from harness.durations import parse_duration
from harness.roles import Role

if TYPE_CHECKING:
    from harness.stacks.base import Stack

Duration = Annotated[float, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RestartPolicy(Strict):
    """What a supervisor (Kubernetes, systemd) would do when the server dies or hangs."""

    policy: str = Field("never", pattern="^(never|on-failure)$")
    backoff: Duration = 1.0  # first wait before a restart; doubles each time
    max_backoff: Duration = 30.0
    max_restarts: int = Field(5, ge=0)
    liveness_timeout: Duration | None = None  # kill and restart a server unhealthy this long


class StackSpecBase(Strict):
    """Settings every stack kind has. Subclasses set `kind` to a Literal and `ROLES`."""

    ROLES: ClassVar[tuple[Role, ...]] = ()  # what faults select, and what losing each one means
    # Its Stack starts every process through `self.launcher` (a ManagedProcess factory), which is
    # what lets the container stack put each process in a container.
    CONTAINER_READY: ClassVar[bool] = False

    kind: str
    startup_timeout: Duration = 120.0
    stop_timeout: Duration = 10.0
    restart: RestartPolicy = Field(default_factory=RestartPolicy)

    def build(self, workdir: Path, **stack_args: Any) -> "Stack":
        """The Stack that runs these settings (import its module lazily: it may be heavy)."""
        raise NotImplementedError(f"stack kind {self.kind!r} cannot be built")
