"""Shared pieces of scenario models, and the base every stack kind's settings extend.

A stack kind is a pair: a settings model (a subclass of `StackSpecBase`, validated from the
scenario's `stack:` section) and a `Stack` implementation that its `build` returns. Kinds are
registered in the `harness.stacks` entry-point group, so a package can add its own.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from harness.durations import parse_duration
from harness.limits import MAX_STOP_TIMEOUT_S, MAX_TIMEOUT_S
from harness.roles import Role

if TYPE_CHECKING:
    from harness.stacks.base import Stack

# What `harness schema` says a duration is: what parse_duration reads (seconds, or units: 1m30s).
_DURATION_JSON = {"anyOf": [{"type": "number", "minimum": 0},
                            {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?([mM][sS]|[sSmMhHdD]))+\s*$"}],
                  "description": "seconds, or a duration with units ms/s/m/h/d: 90s, 1m30s, 250ms"}
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_JSON)]


class Strict(BaseModel):
    # `allow_inf_nan`: an SLO threshold or a rate of `.nan` or `inf` can never fail or never end.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RestartPolicy(Strict):
    """What a supervisor (Kubernetes, systemd) would do when the server dies or hangs."""

    policy: str = Field("never", pattern="^(never|on-failure)$")
    backoff: Duration = Field(1.0, le=MAX_TIMEOUT_S)  # first wait before a restart; doubles each time
    max_backoff: Duration = Field(30.0, le=MAX_TIMEOUT_S)
    max_restarts: int = Field(5, ge=0, le=1_000)
    # Kill and restart a server unhealthy this long.
    liveness_timeout: Duration | None = Field(None, gt=0, le=MAX_TIMEOUT_S)

    @model_validator(mode="after")
    def _backoff_order(self) -> "RestartPolicy":
        if self.max_backoff < self.backoff:
            raise ValueError(f"`max_backoff` ({self.max_backoff:g}s) is below `backoff` ({self.backoff:g}s)")
        return self


class StackSpecBase(Strict):
    """Settings every stack kind has. Subclasses set `kind` to a Literal and `ROLES`."""

    ROLES: ClassVar[tuple[Role, ...]] = ()  # what faults select, and what losing each one means
    # The package(s) the harness installs this kind's server from, all at one version (`harness
    # matrix` installs them per version); () for a server the harness does not install.
    SERVER_PACKAGES: ClassVar[tuple[str, ...]] = ()
    # Its Stack starts every process through `self.launcher` (a ManagedProcess factory), which is
    # what lets the container stack put each process in a container.
    CONTAINER_READY: ClassVar[bool] = False

    kind: str
    startup_timeout: Duration = Field(120.0, gt=0, le=MAX_TIMEOUT_S)
    stop_timeout: Duration = Field(10.0, gt=0, le=MAX_STOP_TIMEOUT_S)
    restart: RestartPolicy = Field(default_factory=RestartPolicy)

    @model_validator(mode="after")
    def _timeouts_bounded(self) -> "StackSpecBase":
        # Here rather than on the fields: a kind that changes a default redeclares the field.
        for name, top in (("startup_timeout", MAX_TIMEOUT_S), ("stop_timeout", MAX_STOP_TIMEOUT_S)):
            value = getattr(self, name)
            if not 0 < value <= top:
                raise ValueError(f"at {name}: {value:g}s; it must be above 0 and at most {top}s")
        return self

    def build(self, workdir: Path, **stack_args: Any) -> "Stack":
        """The Stack that runs these settings (import its module lazily: it may be heavy)."""
        raise NotImplementedError(f"stack kind {self.kind!r} cannot be built")
