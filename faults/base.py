"""The fault interface: validate before traffic, plan, inject, hold, restore; undo from a record.

The harness writes a fault's plan (what it is about to do and how to undo it) to the run's
restore record *before* calling `inject`, so `harness cleanup` can undo it even after the
harness itself was SIGKILLed. `undo` therefore works from the plan alone, with no live stack.
"""

import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from harness.plugins import load, registered

GROUP = "harness.faults"
_BUILTIN = {
    "process_kill": "harness.process_faults.faults:ProcessKill",
    "process_freeze": "harness.process_faults.faults:ProcessFreeze",
    "stack_restart": "harness.process_faults.faults:StackRestart",
    "trace_setting": "harness.tracing.faults:TraceSetting",
    "trace_restart": "harness.tracing.faults:TraceRestart",
    "collector": "harness.tracing.faults:Collector",
    "container_restart": "harness.containers.faults:ContainerRestart",
    "container_kill": "harness.containers.faults:ContainerKill",
    "container_stop": "harness.containers.faults:ContainerStop",
    "container_pause": "harness.containers.faults:ContainerPause",
    "container_update": "harness.containers.faults:ContainerUpdate",
    "memory_limit": "harness.memory.limit_fault:MemoryLimit",
    "memory_stress": "harness.memory.stress_fault:MemoryStress",
    "gpu_memory_stress": "harness.gpu.stress_fault:GpuMemoryStress",
    "model_control": "harness.triton.model_control:ModelControl",
}


class FaultError(Exception):
    """A fault cannot run as configured (raised by validate) or failed to inject."""


class FaultParams(BaseModel):
    """Base of every plugin's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass
class FaultContext:
    """What a fault may touch: the stack's processes by role, and the stack as a whole."""

    roles: Callable[[], dict[str, list[Any]]]  # role -> live ProcessIds
    restart_stack: Callable[[bool], float]  # graceful? -> seconds until ready again
    rng: random.Random
    stack: Any = None  # the Stack, for faults that speak its protocols
    journal: Any = None  # the run's Journal, for faults that change things on their own timeline
    # What features' hooks started for this run, by name (the tracing feature's `collector`).
    services: dict[str, Any] = field(default_factory=dict)


class Fault(ABC):
    kind: ClassVar[str]
    params_model: ClassVar[type[FaultParams]]

    def __init__(self, params: FaultParams):
        self.params = params

    def validate(self, ctx: FaultContext) -> None:  # noqa: B027 - optional hook
        """Check, before any traffic, that the fault can run against this stack."""

    @classmethod
    def check_schedule(cls, params: FaultParams, held_s: float) -> str | None:
        """Why `params` cannot work in a fault held `held_s` seconds (None: they can). Called when
        the scenario is read, so e.g. a step after the fault's end is refused, not silently skipped;
        a message may start `at FIELD:` to name the field."""
        return None

    @abstractmethod
    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        """Choose targets; returns a JSON-able plan that `inject`, `restore` and `undo` read."""

    @abstractmethod
    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        """Do it; returns details for the journal."""

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        """Undo it while the harness still runs (default: the same as `undo`)."""
        self.undo(plan)

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:  # noqa: B027 - many faults leave nothing to undo
        """Undo from the plan alone (used by `harness cleanup`); the default has nothing to undo."""
        return None


def known_faults() -> dict[str, str]:
    return registered(GROUP, _BUILTIN)


def fault_class(kind: str) -> type[Fault]:
    cls: type[Fault] = load(known_faults()[kind], Fault)
    return cls
