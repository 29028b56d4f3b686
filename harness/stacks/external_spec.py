"""Scenario settings of the `external` stack kind: a server that already runs."""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import field_validator

from harness.loopback import is_loopback
from harness.specbase import Duration, StackSpecBase

if TYPE_CHECKING:
    from harness.stacks.base import Stack


class ExternalSpec(StackSpecBase):
    """The harness points load at `url` and starts and stops nothing."""

    kind: Literal["external"]
    url: str
    grpc_url: str | None = None
    model: str
    ready_path: str = "/v2/health/ready"
    startup_timeout: Duration = 30.0

    @field_validator("url")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        host = urlsplit(value).hostname
        if host is None:
            raise ValueError(f"not a URL: {value!r}")
        if not is_loopback(host):
            raise ValueError(f"{host} is not a loopback address; load goes to 127.0.0.0/8 or ::1")
        return value.rstrip("/")

    @field_validator("grpc_url")
    @classmethod
    def _grpc_loopback_only(cls, value: str | None) -> str | None:
        if value is not None and not is_loopback(value.rsplit(":", 1)[0].strip("[]")):
            raise ValueError(f"{value} is not a loopback address")
        return value

    def build(self, workdir: Path, **stack_args: Any) -> "Stack":
        from harness.stacks.external import ExternalStack

        return ExternalStack(self)
