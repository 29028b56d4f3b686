"""Scenario settings of the `triton` stack kind: model from the zoo, instances, tracing."""

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from harness.roles import Loss, Role
from harness.specbase import StackSpecBase, Strict
from harness.triton.modelzoo import ZOO
from harness.triton.zoo_large import ModelFile

if TYPE_CHECKING:
    from harness.stacks.base import Stack


class TraceSpec(Strict):
    """Triton's tracing, set at start. The trace file (triton mode) lives in the run folder.

    `collector` (opentelemetry mode): `harness` (the harness's own OTLP receiver, which counts
    spans and can be made slow, failing or absent by faults), `absent` (a loopback port nothing
    listens on), or a loopback `host:port/v1/traces` of your own collector.
    """

    mode: Literal["triton", "opentelemetry"] = "triton"
    level: str | list[str] = "TIMESTAMPS"
    rate: int | None = Field(None, ge=1, le=1_000_000)  # trace 1 of every `rate` requests
    count: int | None = Field(None, ge=-1, le=1_000_000_000)  # -1: no limit (Triton's meaning)
    log_frequency: int | None = Field(None, ge=0, le=1_000_000)
    collector: str = "harness"
    resource: dict[str, str] | None = None
    bsp_max_queue_size: int | None = Field(None, ge=1, le=10_000_000)
    bsp_schedule_delay: int | None = Field(None, ge=0, le=3_600_000)  # ms
    bsp_max_export_batch_size: int | None = Field(None, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _valid_for_triton(self) -> "TraceSpec":
        from harness.tracing.config import parse_trace_config

        parse_trace_config(self.settings(file="/tmp/trace.json", url="127.0.0.1:4318/v1/traces"))
        return self

    def settings(self, file: str, url: str) -> dict[str, Any]:
        """The dict `harness.tracing.config` validates, with the harness's file or URL filled in."""
        values = self.model_dump(exclude_none=True, exclude={"collector"})
        if self.mode == "triton":
            values["file"] = file
            values.setdefault("log_frequency", 100)  # files appear as the run goes, not at exit
        else:
            values["url"] = url if self.collector in ("harness", "absent") else self.collector
        return values


class TritonSpec(StackSpecBase):
    """A real `tritonserver` started by the harness with a model from the built-in zoo."""

    # What `harness matrix --versions` installs at each version: each wheel ships its own Triton release.
    SERVER_PACKAGES: ClassVar[tuple[str, ...]] = ("nvidia-pytriton",)
    ROLES: ClassVar[tuple[Role, ...]] = (
        Role("server", Loss.ENTRY, "tritonserver: its endpoints are the stack's"),
        Role("stub", Loss.REPLICA, "a Python-backend stub process: one model instance"),
    )

    CONTAINER_READY: ClassVar[bool] = True

    kind: Literal["triton"]
    trace: TraceSpec | None = None
    model: str = "identity"
    instances: int = Field(2, ge=1, le=64)
    delay_ms: float = Field(0.0, ge=0, le=60_000)
    max_batch_size: int = Field(8, ge=0, le=4096)
    model_file: ModelFile | None = None  # `large_init`: the file it loads at start (size, load_s)
    # Where the server listens. Loopback unless load workers on other hosts (or in network
    # namespaces) must reach it: then an address of one of this host's own interfaces.
    listen: str = "127.0.0.1"
    # `explicit`: Triton's --model-control-mode=explicit, the model loaded at start with
    # --load-model; only then does it take repository load/unload calls (the model_control fault).
    model_control: Literal["none", "explicit"] = "none"

    @field_validator("listen")
    @classmethod
    def _listen_here(cls, value: str) -> str:
        from harness.stacks.listen import check_listen_address

        return check_listen_address(value)

    @field_validator("model")
    @classmethod
    def _model_in_zoo(cls, value: str) -> str:
        if value not in ZOO:
            raise ValueError(f"unknown model {value!r} (the model zoo has: {', '.join(ZOO)})")
        return value

    @model_validator(mode="after")
    def _model_file_fits_model(self) -> "TritonSpec":
        if (self.model == "large_init") != (self.model_file is not None):
            raise ValueError("at model_file: `model_file: {size: ...}` goes with model large_init, only")
        return self

    def build(self, workdir: Path, collector_url: str | None = None, **stack_args: Any) -> "Stack":
        from harness.triton.stack import TritonStack

        return TritonStack(self, workdir, collector_url=collector_url)
