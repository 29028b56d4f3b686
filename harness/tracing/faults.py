"""Tracing faults: change trace settings at run time, restart with new ones, break the collector."""

from typing import Any, Literal

from pydantic import Field, field_validator

from faults.base import Fault, FaultContext, FaultError, FaultParams
from harness.durations import parse_duration
from harness.stacks.base import Stack
from harness.tracing import COLLECTOR, TakesTraceOverrides
from harness.tracing.settings import TraceSettingsClient, normalize

# What each setting Triton changes at run time may be: a bad one would be a 400 mid-run.
_MINIMUM = {"trace_rate": 0, "trace_count": -1, "log_frequency": 0}
_LEVELS = {"OFF", "TIMESTAMPS", "TENSORS"}


def _runtime_settings(value: dict[str, str | int | list[str]]) -> dict[str, str | int | list[str]]:
    """Refuse, before the run, what the trace protocol would refuse (or ignore) during it."""
    try:
        body = normalize(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    for name, text in body.items():
        if name == "trace_level":
            unknown = [level for level in text if level not in _LEVELS]
            if unknown:
                raise ValueError(f"trace_level {unknown[0]!r} is not one of {', '.join(sorted(_LEVELS))}")
        elif name in _MINIMUM:
            if not str(text).lstrip("-").isdigit() or int(text) < _MINIMUM[name] or len(str(text)) > 12:
                raise ValueError(f"{name} {text!r}: a whole number, at least {_MINIMUM[name]}")
            if name == "trace_count" and int(text) == 0:
                raise ValueError("trace_count 0 collects no trace; use -1 for no limit or a positive count")
        else:
            raise ValueError(f"trace setting {name!r} cannot change at run time "
                             f"(these can: {', '.join(sorted(_MINIMUM) + ['trace_level'])})")
    return value


class SettingParams(FaultParams):
    settings: dict[str, str | int | list[str]] = Field(min_length=1)
    model: str | None = None  # None: the global settings

    @field_validator("settings")
    @classmethod
    def _changeable(cls, value: dict[str, str | int | list[str]]) -> dict[str, str | int | list[str]]:
        return _runtime_settings(value)


def _base_url(ctx: FaultContext) -> str:
    endpoints = ctx.stack.endpoints if isinstance(ctx.stack, Stack) else None
    if endpoints is None or endpoints.http is None:
        raise FaultError("the stack has no HTTP endpoint for Triton's trace protocol")
    return str(endpoints.http)


class TraceSetting(Fault):
    """Change trace settings through `/v2/trace/setting` (global or one model); restore after."""

    kind = "trace_setting"
    params_model = SettingParams

    def validate(self, ctx: FaultContext) -> None:
        TraceSettingsClient(_base_url(ctx)).get()

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        params = self.params
        assert isinstance(params, SettingParams)
        base_url = _base_url(ctx)
        changes = normalize(params.settings)
        previous = TraceSettingsClient(base_url).save(list(changes), model=params.model)
        return {"base_url": base_url, "model": params.model, "changes": changes, "previous": previous}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        client = TraceSettingsClient(plan["base_url"])
        now = client.update(plan["changes"], model=plan["model"])
        return {"settings_now": {k: now.get(k) for k in plan["changes"]}}

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        self.undo(plan)
        now = TraceSettingsClient(plan["base_url"]).get(model=plan["model"])
        saved = {k: v for k, v in plan["previous"].items() if v is not None}  # None: inherited
        differs = {k: now.get(k) for k, v in saved.items() if now.get(k) != v}
        if differs:
            raise FaultError(f"trace settings read back after restore differ: {differs}")

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:
        TraceSettingsClient(plan["base_url"]).restore(plan["previous"], model=plan["model"])


class RestartParams(FaultParams):
    settings: dict[str, str | int | list[str]]


class TraceRestart(Fault):
    """For settings that cannot change at run time: restart the stack with them, and back."""

    kind = "trace_restart"
    params_model = RestartParams

    def validate(self, ctx: FaultContext) -> None:
        if not isinstance(ctx.stack, TakesTraceOverrides):
            raise FaultError("trace_restart needs a Triton stack with `trace` set")

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        params = self.params
        assert isinstance(params, RestartParams)
        return {"settings": dict(params.settings), "previous": dict(ctx.stack.trace_overrides)}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        ctx.stack.trace_overrides = {**plan["previous"], **plan["settings"]}
        return {"ready_after_s": round(ctx.restart_stack(True), 3)}

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        ctx.stack.trace_overrides = dict(plan["previous"])
        ctx.restart_stack(True)


class CollectorParams(FaultParams):
    mode: Literal["slow", "error", "down"]
    delay: float = Field(0.5, ge=0, le=60)  # seconds per export, for `slow`
    status: int = Field(503, ge=400, le=599)  # for `error`

    def __init__(self, **data: Any):
        if isinstance(data.get("delay"), str):
            data["delay"] = parse_duration(data["delay"])
        super().__init__(**data)


class Collector(Fault):
    """Make the harness's OTLP collector slow, failing, or absent; healthy again on restore.

    The collector lives in the harness process, so nothing is left to undo after a SIGKILL.
    """

    kind = "collector"
    params_model = CollectorParams

    def validate(self, ctx: FaultContext) -> None:
        if ctx.services.get(COLLECTOR) is None:
            raise FaultError("collector faults need `stack.trace: {mode: opentelemetry, collector: harness}`")

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        params = self.params
        assert isinstance(params, CollectorParams)
        return {"mode": params.mode, "delay": params.delay, "status": params.status}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        receiver = ctx.services[COLLECTOR]
        if plan["mode"] == "slow":
            receiver.set_slow(plan["delay"])
        elif plan["mode"] == "error":
            receiver.set_error(plan["status"])
        else:
            receiver.stop()
        return {"collector": plan["mode"]}

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        receiver = ctx.services[COLLECTOR]
        if not receiver.running:
            receiver.start()
        receiver.set_healthy()
