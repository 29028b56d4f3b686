"""Scenario settings of the `torchserve` stack kind: a real TorchServe with a built-in handler."""

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from harness.roles import Loss, Role
from harness.specbase import Duration, StackSpecBase

if TYPE_CHECKING:
    from harness.stacks.base import Stack


class TorchServeSpec(StackSpecBase):
    """TorchServe (Java frontend + Python workers) serving one model the harness archives.

    `handler`: `echo` (answers with the request body), `delay` (echo after `delay_ms`),
    `broken_import` (its module cannot be imported), `broken_init` (fails while loading).
    `max_retry_timeout`: the model's `maxRetryTimeoutInSec`; unset leaves TorchServe's default
    (300 in 0.12). `storm_after`: failures with the same error (a retry among them) after which
    the harness calls the model not recoverable; with `stop_on_storm` it stops waiting then
    instead of sitting out TorchServe's whole back-off. `exit_at_request`: the worker process of the
    `echo` or `delay` handler exits (code 1) at its Nth inference: a model that loads but dies serving,
    as a native crash in the model would, which TorchServe's retry can never heal.
    """

    # What `harness matrix --versions` installs at each version (`harness/matrix/`): released together.
    SERVER_PACKAGES: ClassVar[tuple[str, ...]] = ("torchserve", "torch-model-archiver")
    ROLES: ClassVar[tuple[Role, ...]] = (
        Role("frontend", Loss.ENTRY, "the Java frontend: HTTP endpoints, worker management"),
        Role("worker", Loss.REPLICA, "a Python model worker the frontend starts and retries"),
    )

    kind: Literal["torchserve"]
    handler: Literal["echo", "delay", "broken_import", "broken_init"] = "echo"
    model: str = Field("echo", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    workers: int = Field(2, ge=1, le=32)
    delay_ms: float = Field(0.0, ge=0, le=60_000)
    max_retry_timeout: int | None = Field(None, ge=0, le=86_400)
    response_timeout: Duration = Field(120.0, ge=1, le=3600)
    storm_after: int = Field(3, ge=2, le=100)
    stop_on_storm: bool = True
    exit_at_request: int | None = Field(None, ge=1, le=1_000_000)
    startup_timeout: Duration = 60.0

    @model_validator(mode="after")
    def _exit_needs_a_serving_handler(self) -> "TorchServeSpec":
        if self.exit_at_request is not None and self.handler not in ("echo", "delay"):
            raise ValueError(f"at exit_at_request: the {self.handler} handler never serves a request; "
                             "use handler echo or delay")
        return self

    def build(self, workdir: Path, **stack_args: Any) -> "Stack":
        from harness.torchserve.stack import TorchServeStack

        return TorchServeStack(self, workdir)
