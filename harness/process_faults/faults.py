"""Process faults, selected by role: kill with a signal, freeze and thaw, restart the stack."""

import signal
from typing import Any, Literal

from pydantic import field_validator

from faults.base import Fault, FaultContext, FaultError, FaultParams
from harness.procs import ProcessId


def signal_number(value: str | int) -> int:
    if isinstance(value, int):
        return signal.Signals(value).value
    name = value.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    return signal.Signals[name].value


class RoleParams(FaultParams):
    role: str
    pick: Literal["one", "all"] = "one"  # one: chosen by the run's seeded random source


class KillParams(RoleParams):
    signal: str | int = "SIGKILL"

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str | int) -> str | int:
        try:
            signal_number(value)
        except (KeyError, ValueError):
            raise ValueError(f"unknown signal {value!r} (e.g. SIGKILL, SIGTERM, SIGSEGV, 9)") from None
        return value


def _targets(ctx: FaultContext, params: RoleParams) -> list[ProcessId]:
    live = ctx.roles().get(params.role, [])
    if not live:
        raise FaultError(f"no live process has role {params.role!r}")
    if params.pick == "all":
        return list(live)
    return [ctx.rng.choice(sorted(live, key=lambda p: p.pid))]


def _plan_of(targets: list[ProcessId]) -> list[dict[str, Any]]:
    return [{"pid": p.pid, "create_time": p.create_time, "name": p.name} for p in targets]


def _idents(plan: dict[str, Any]) -> list[ProcessId]:
    return [ProcessId(t["pid"], t["create_time"], t.get("name", "")) for t in plan["targets"]]


class ProcessKill(Fault):
    """Send a signal (SIGKILL by default; SIGTERM for graceful; SIGSEGV to fake a crash)."""

    kind = "process_kill"
    params_model = KillParams

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        params = self.params
        assert isinstance(params, KillParams)
        targets = _targets(ctx, params)
        return {"role": params.role, "signal": signal_number(params.signal), "targets": _plan_of(targets)}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        sent = [p.pid for p in _idents(plan) if p.send(plan["signal"])]
        return {"signalled": sent, "signal": signal.Signals(plan["signal"]).name}


class ProcessFreeze(Fault):
    """SIGSTOP for the fault's duration, then SIGCONT: a hang that can be undone."""

    kind = "process_freeze"
    params_model = RoleParams

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        params = self.params
        assert isinstance(params, RoleParams)
        return {"role": params.role, "targets": _plan_of(_targets(ctx, params))}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        return {"stopped": [p.pid for p in _idents(plan) if p.send(signal.SIGSTOP)]}

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:
        for ident in _idents(plan):
            ident.send(signal.SIGCONT)


class RestartParams(FaultParams):
    graceful: bool = True  # SIGTERM and wait, or SIGKILL at once


class StackRestart(Fault):
    """Stop the whole stack and start it again on the same ports."""

    kind = "stack_restart"
    params_model = RestartParams

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        params = self.params
        assert isinstance(params, RestartParams)
        return {"graceful": params.graceful}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        return {"ready_after_s": round(ctx.restart_stack(bool(plan["graceful"])), 3)}
