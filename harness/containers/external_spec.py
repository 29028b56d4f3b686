"""Scenario settings of the `container_external` stack kind: containers that already run.

```yaml
stack:
  kind: container_external
  containers: [triton-prod-like]          # by name (or id); and/or
  label: app=triton                       # every running container with this label
  url: http://127.0.0.1:8000              # where load goes (loopback only)
  model: identity
```
The harness starts and removes nothing; container faults act on these containers only.
"""

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from harness.containers.spec import docker_host_setting
from harness.roles import Loss, Role
from harness.stacks.external_spec import ExternalSpec

if TYPE_CHECKING:
    from harness.stacks.base import Stack

_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_LABEL = re.compile(r"^[^=\s]+(=[^\s]*)?$")


class ContainerExternalSpec(ExternalSpec):
    """Containers that already run, found by name or label; load goes to `url`."""

    ROLES: ClassVar[tuple[Role, ...]] = (Role("server", Loss.ENTRY, "each named container's main process"),)

    # The same settings as `external` (url, grpc_url, model, ready_path), under its own kind.
    kind: Literal["container_external"]  # type: ignore[assignment]
    containers: list[str] = Field(default_factory=list)
    label: str | None = None  # `key=value` or `key`
    docker_host: str | None = None

    @field_validator("containers")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for i, name in enumerate(value):
            if not _NAME.match(name):
                raise ValueError(f"at {i}: {name!r} is not a container name or id")
        return value

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL.match(value):
            raise ValueError(f"{value!r}: write `key=value` or `key`")
        return value

    @field_validator("docker_host")
    @classmethod
    def _loopback_engine(cls, value: str | None) -> str | None:
        return docker_host_setting(value)

    @model_validator(mode="after")
    def _something_to_attach_to(self) -> "ContainerExternalSpec":
        if not self.containers and self.label is None:
            raise ValueError("at containers: name the containers, or give a `label` that selects them")
        return self

    def build(self, workdir: Path, **stack_args: Any) -> "Stack":
        from harness.containers.external_stack import ContainerExternalStack

        return ContainerExternalStack(self)
