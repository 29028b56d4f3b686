"""Scenario settings of the `container` stack kind: another stack kind, run inside Docker.

```yaml
stack:
  kind: container
  inner: {kind: triton, model: identity, instances: 2}   # what runs inside
  docker_host: unix:///run/harness-docker.sock            # else $DOCKER_HOST, else Docker's default
  memory: 2Gi                                             # the container's memory limit (no swap)
```
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SerializeAsAny, ValidationError, field_validator

from harness.containers.sizes import DockerMemory
from harness.plugins import first_error
from harness.roles import Role
from harness.sizes import Size
from harness.specbase import StackSpecBase
from harness.triton.spec import TritonSpec

if TYPE_CHECKING:
    from harness.stacks.base import Stack

# Set on the container stack, not inside: the harness applies the outer stack's values.
_OUTER_ONLY = ("startup_timeout", "stop_timeout", "restart")


def kind_of(cls: type[StackSpecBase]) -> str:
    return str(cls.model_fields["kind"].annotation.__args__[0])  # type: ignore[union-attr]


def _inner_classes() -> dict[str, type[StackSpecBase]]:
    from harness.stacks.registry import stack_spec_classes  # here: the registry imports this module

    return {kind_of(cls): cls for cls in stack_spec_classes()}


def _can_run_inside(kind: str, cls: type[StackSpecBase]) -> bool:
    return cls.CONTAINER_READY  # its processes start through a launcher (StackSpecBase)


def docker_host_setting(value: str | None) -> str | None:
    """A scenario's `docker_host`: a local engine socket only (checked, one-line error)."""
    from harness.containers.engine import check_host
    from harness.errors import UsageError

    if value is None:
        return None
    try:
        return check_host(value)
    except UsageError as exc:
        raise ValueError(str(exc).removeprefix(f"docker host {value!r}: ")) from None


class ContainerSpec(StackSpecBase):
    """Another stack kind (triton) run in Docker containers the harness makes, labels and removes."""

    ROLES: ClassVar[tuple[Role, ...]] = TritonSpec.ROLES

    kind: Literal["container"]
    inner: SerializeAsAny[StackSpecBase]
    docker_host: str | None = None
    # Sizes as harness.sizes reads them (2Gi, 2G), in bytes. memory unset: no limit (a later
    # `container_update` can set one).
    memory: DockerMemory | None = None
    cpus: float | None = Field(None, gt=0, le=1024)
    # /dev/shm in the container; Triton's Python backend lives there. Validated: held as bytes too.
    shm_size: Size = Field(256 << 20, le=1 << 40)
    init: bool = True  # Docker's init as PID 1, so any signal reaches the server (PID 1 ignores most)
    docker_restart: Literal["no", "on-failure", "always", "unless-stopped"] = "no"  # Docker's policy
    mounts: list[str] = Field(default_factory=list)  # more host paths, read-only at the same path

    @field_validator("inner", mode="before")
    @classmethod
    def _inner_spec(cls, value: Any) -> Any:
        if isinstance(value, StackSpecBase):
            return value
        if not isinstance(value, dict) or "kind" not in value:
            raise ValueError("a stack mapping with `kind`, e.g. {kind: triton, model: identity}")
        classes = _inner_classes()
        kind = value["kind"]
        spec_cls = classes.get(kind)
        if spec_cls is None or not _can_run_inside(kind, spec_cls):
            ready = sorted(k for k, c in classes.items() if _can_run_inside(k, c))
            can = ", ".join(ready)
            raise ValueError(f"at kind: stack kind {kind!r} cannot run in a container (can: {can})")
        for key in _OUTER_ONLY:
            if key in value:
                raise ValueError(f"at {key}: set it on the container stack (that one applies), not inside")
        try:
            return spec_cls.model_validate(value)
        except ValidationError as exc:
            raise ValueError(first_error(exc)) from None

    @field_validator("docker_host")
    @classmethod
    def _loopback_engine(cls, value: str | None) -> str | None:
        return docker_host_setting(value)

    @field_validator("mounts")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for i, path in enumerate(value):
            if not path.startswith("/"):
                raise ValueError(f"at {i}: {path!r} is not an absolute path")
        return value

    @property
    def trace(self) -> Any:
        """The inner stack's tracing settings: the harness sets tracing up the same way inside."""
        return getattr(self.inner, "trace", None)

    def build(self, workdir: Path, collector_url: str | None = None, **stack_args: Any) -> "Stack":
        from harness.containers.stack import ContainerStack

        return ContainerStack(self, workdir, collector_url)
