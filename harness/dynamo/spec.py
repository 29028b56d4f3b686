"""Scenario settings of the `dynamo` stack kind: NVIDIA Dynamo's frontend and mocker workers.

The mocker is Dynamo's simulated engine: it schedules and times tokens like a real engine but
needs no GPU and no weights, only a tokenizer folder, which the harness generates.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from harness.roles import Loss, Role
from harness.specbase import Duration, StackSpecBase

if TYPE_CHECKING:
    from harness.stacks.base import Stack


class DynamoSpec(StackSpecBase):
    """NVIDIA Dynamo: an OpenAI frontend routing to N mocker workers, discovery by etcd or files."""

    # What `harness matrix --versions` installs at each version (without their dependencies).
    SERVER_PACKAGES: ClassVar[tuple[str, ...]] = ("ai-dynamo", "ai-dynamo-runtime")
    ROLES: ClassVar[tuple[Role, ...]] = (
        Role("frontend", Loss.ENTRY, "the OpenAI-compatible HTTP frontend and router"),
        Role("worker", Loss.REPLICA, "an engine worker (mocker) registered through discovery"),
        Role("etcd", Loss.DEPENDENCY, "the discovery store holding worker leases"),
    )

    kind: Literal["dynamo"]
    workers: int = Field(2, ge=1, le=16)
    discovery: Literal["etcd", "file"] = "etcd"
    # Seconds a dead worker's etcd lease outlives it (ETCD_LEASE_TTL); None: Dynamo's default.
    lease_ttl: int | None = Field(None, ge=1, le=3600)
    # Times the frontend may move a request to another worker when its worker fails (0: never).
    migration_limit: int = Field(0, ge=0, le=100)
    # Seconds the frontend shuns a worker a request failed on before it takes the worker back from
    # discovery (DYN_RUNTIME_INHIBITED_DURATION_SECS); None: Dynamo's default, 5 s. A dead worker
    # still registered is retried after each such interval, so this sets how often it fails.
    reconcile_s: int | None = Field(None, ge=1, le=600)
    router_mode: Literal["round-robin", "random", "kv"] | None = None
    model_name: str = Field("tiny-mock", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")
    speedup_ratio: float = Field(10.0, gt=0, le=10_000)
    # Tokens in every response: the mocker replays this many known token ids (see dynamo.py).
    output_tokens: int = Field(32, ge=1, le=4096)
    # Seconds a SIGTERMed process gets to drain before the stack's stop sends SIGKILL.
    stop_timeout: Duration = 10.0
    startup_timeout: Duration = 90.0
    python: str | None = None  # interpreter with ai-dynamo installed; default: the harness's own

    @model_validator(mode="after")
    def _lease_needs_etcd(self) -> "DynamoSpec":
        if self.lease_ttl is not None and not self.uses_etcd:
            raise ValueError("at lease_ttl: an etcd lease TTL needs `discovery: etcd`")
        return self

    @property
    def uses_etcd(self) -> bool:
        """Discovery through an etcd the stack starts (else through files)."""
        return self.discovery == "etcd"

    def build(self, workdir: Path, **stack_args: Any) -> "Stack":
        from harness.dynamo.stack import DynamoStack

        return DynamoStack(self, workdir)
