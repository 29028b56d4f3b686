"""Scenario files: what to run, what load to drive and what must hold.

Every model forbids unknown keys, so a typo is an error rather than a silently ignored setting.
"""

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.errors import UsageError
from harness.features import describe_metrics, metric_def
from harness.llm.openai_settings import OpenAISettings
from harness.logpatterns import DEFAULT_LOG_PATTERNS
from harness.memory.startup_spec import StartupSpec
from harness.plugins import first_error
from harness.repeatspec import MAX_REPEAT, PassIn, check_pass_in
from harness.sidecar_spec import SidecarSpec, check_sidecars
from harness.specbase import Duration, RestartPolicy, StackSpecBase, Strict
from harness.stacks.registry import stack_spec_classes
from harness.users import known_users
from harness.yamlsrc import YamlSource, load_yaml

# Every registered stack kind, told apart by `kind` (pydantic names the field on errors).
if TYPE_CHECKING:
    StackSpec = StackSpecBase
else:
    StackSpec = Annotated[Union[tuple(stack_spec_classes())], Field(discriminator="kind")]  # noqa: UP007

__all__ = [
    "Duration", "FaultSpec", "LoadSpec", "Observe", "RestartPolicy", "Scenario", "Slo", "Stage",
    "StackSpecBase", "Window", "load_scenario",
]


class Stage(Strict):
    """One step of a load shape: hold (or ramp to) `users` or an arrival `rate`."""

    duration: Duration = Field(gt=0)
    users: int | None = Field(None, ge=0)
    rate: float | None = Field(None, ge=0)
    ramp: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> "Stage":
        if (self.users is None) == (self.rate is None):
            raise ValueError("a stage sets exactly one of `users` (closed model) or `rate` (open)")
        return self


class LoadSpec(Strict):
    """Closed model (`users` loop without pause) or open model (`rate` arrivals per second)."""

    user: str
    users: int = Field(8, ge=1, le=10_000)
    spawn_rate: float | None = Field(None, gt=0)
    duration: Duration | None = Field(None, gt=0)
    rate: float | None = Field(None, gt=0)
    stages: list[Stage] | None = None
    late_after: Duration = 0.010
    request_timeout: Duration = Field(10.0, gt=0)
    think_time: Duration = 0.0
    openai: OpenAISettings | None = None  # the `openai` user's request (api, stream, max_tokens, ...)

    @field_validator("user")
    @classmethod
    def _user_known(cls, value: str) -> str:
        users = known_users()
        if value not in users:
            raise ValueError(f"unknown user class {value!r} (known: {', '.join(sorted(users))})")
        return value

    @model_validator(mode="after")
    def _shape(self) -> "LoadSpec":
        if (self.duration is None) == (self.stages is None):
            raise ValueError("load sets exactly one of `duration` or `stages`")
        if self.stages:
            open_stages = {stage.rate is not None for stage in self.stages}
            if len(open_stages) > 1:
                raise ValueError("stages mix `users` and `rate`; use one model for the whole run")
            if self.rate is not None:
                raise ValueError("with `stages`, give the rate in each stage, not in `load.rate`")
        return self

    @property
    def open_model(self) -> bool:
        return self.rate is not None or bool(self.stages and self.stages[0].rate is not None)

    @property
    def total_duration(self) -> float:
        if self.stages:
            return sum(stage.duration for stage in self.stages)
        assert self.duration is not None
        return self.duration


class Window(Strict):
    """A span of the run's clock, in seconds from the start of the load."""

    start: Duration = Field(0.0, alias="from")
    end: Duration | None = Field(None, alias="to")


WindowSpec = Literal["all", "faults", "outside_faults"] | Window

_OPS = {"<": "max", "<=": "max", ">": "min", ">=": "min"}
_SLO_TEXT = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


class Slo(Strict):
    """An assertion `metric op threshold` over a window of the run."""

    metric: str
    op: Literal["<", "<=", ">", ">="] = "<="
    threshold: float
    window: WindowSpec = "all"
    name: str | None = None
    pass_in: PassIn | None = None  # with `repeat: M`: must hold in N of the M runs (else in all)
    confidence: float = Field(0.95, ge=0.5, lt=1.0)  # of the interval reported beside the value
    # Stop the run as soon as this SLO has failed on the data so far (k6's abortOnFail), but not
    # before `abort_grace` seconds of load: a release gate need not wait out a spent error budget.
    abort: bool = False
    abort_grace: Duration = 0.0

    @model_validator(mode="before")
    @classmethod
    def _from_short_forms(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _SLO_TEXT.match(value)
            if match is None:
                raise ValueError(f"cannot read SLO {value!r}; write it as `metric op number`")
            return {"metric": match.group(1), "op": match.group(2), "threshold": match.group(3)}
        if isinstance(value, dict) and ("max" in value or "min" in value):
            if "max" in value and "min" in value:
                raise ValueError("an SLO sets one of `max` or `min`; write two SLOs for both")
            value = dict(value)
            if "max" in value:
                value["op"], value["threshold"] = "<=", value.pop("max")
            else:
                value["op"], value["threshold"] = ">=", value.pop("min")
        return value

    @field_validator("metric")
    @classmethod
    def _metric_known(cls, value: str) -> str:
        if metric_def(value) is None:
            raise ValueError(f"unknown metric {value!r} (known: {describe_metrics()})")
        return value

    @property
    def label(self) -> str:
        window = "" if self.window == "all" else f" in {_window_text(self.window)}"
        return self.name or f"{self.metric} {self.op} {self.threshold:g}{window}"


def _window_text(window: "Window | str") -> str:
    if isinstance(window, str):
        return window.replace("_", " ")
    end = "end" if window.end is None else f"{window.end:g}s"
    return f"[{window.start:g}s, {end}]"


_TIMELINE_KEYS = {"kind", "at", "duration", "every", "count", "jitter", "name"}


class FaultSpec(Strict):
    """A fault on the load's timeline; every key but the timeline's goes to the plugin."""

    kind: str
    name: str | None = None
    at: Duration = 0.0
    duration: Duration = 0.0  # how long it is held before `restore` (freeze, limits)
    every: Duration | None = Field(None, gt=0)
    count: int | None = Field(None, ge=1)
    jitter: Duration = 0.0  # each start moves by up to +/- this, from the run's seed
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split_params(cls, value: Any) -> Any:
        if isinstance(value, dict) and "params" not in value:
            value = dict(value)
            value["params"] = {k: value.pop(k) for k in list(value) if k not in _TIMELINE_KEYS}
        return value

    @model_validator(mode="after")
    def _plugin_params(self) -> "FaultSpec":
        from faults.base import fault_class, known_faults

        if self.kind not in known_faults():
            raise ValueError(f"at kind: unknown fault {self.kind!r} (known: {', '.join(known_faults())})")
        try:
            fault_class(self.kind).params_model.model_validate(self.params)
        except ValidationError as exc:
            raise ValueError(first_error(exc)) from None
        return self

    @property
    def label(self) -> str:
        return self.name or self.kind


class CanarySpec(Strict):
    """The supervisor's own inference, sent through the real serving path at a low rate.

    It is what tells "health says ready, inference fails" and "alive but not serving" apart from
    "alive and slow"; its requests are not part of the load or its statistics.
    """

    enabled: bool = True
    every: Duration = Field(1.0, ge=0.1, le=60)
    timeout: Duration = Field(2.0, gt=0, le=60)
    slow: Duration = Field(1.0, gt=0, le=60)  # a success slower than this is "slow", not "failing"
    failures: int = Field(2, ge=1, le=100)  # failed canaries in a row before "not serving"

    @model_validator(mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _slow_below_timeout(self) -> "CanarySpec":
        if self.slow >= self.timeout:
            raise ValueError(f"`slow` ({self.slow:g}s) must be below `timeout` ({self.timeout:g}s)")
        return self


class Observe(Strict):
    """What the harness watches besides the load: server metrics, log patterns, the canary."""

    canary: CanarySpec = Field(default_factory=CanarySpec)
    metrics: bool = True
    metrics_interval: Duration = Field(0.25, gt=0)
    log_patterns: dict[str, str] = Field(default_factory=dict)

    @field_validator("log_patterns")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise ValueError(f"pattern name {name!r}: letters, digits and _ only")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {name!r} is not a regular expression: {exc}") from None
        return value


class Scenario(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seed: int | None = None  # faults' random choices and jitter; recorded so a run can be replayed
    repeat: int = Field(1, ge=1, le=MAX_REPEAT)  # full runs in one series, judged together (pass_in)
    stack: StackSpec
    load: LoadSpec
    faults: list[FaultSpec] = Field(default_factory=list)
    observe: Observe = Field(default_factory=Observe)
    slo: list[Slo] = Field(default_factory=list)
    expect: Literal["pass", "reproduced"] = "pass"
    startup: StartupSpec = Field(default_factory=StartupSpec)  # attempts, backoff, memory limit
    sidecars: list[SidecarSpec] = Field(default_factory=list)  # helpers beside the stack, watched

    @field_validator("sidecars")
    @classmethod
    def _sidecars_fit(cls, sidecars: list[SidecarSpec], info: ValidationInfo) -> list[SidecarSpec]:
        return check_sidecars(sidecars, info.data.get("startup"))

    @field_validator("faults")
    @classmethod
    def _roles_exist(cls, faults: list[FaultSpec], info: ValidationInfo) -> list[FaultSpec]:
        stack = info.data.get("stack")
        if stack is None:
            return faults
        roles = [r.name for r in type(stack).ROLES]
        for i, fault in enumerate(faults):
            role = fault.params.get("role")
            if role is not None and role not in roles:
                known = ", ".join(roles) or "none: it starts no process"
                raise ValueError(
                    f"at faults.{i}.role: stack kind {stack.kind!r} has no role {role!r} (roles: {known})"
                )
        return faults

    @field_validator("slo")
    @classmethod
    def _log_metrics_defined(cls, slos: list[Slo], info: ValidationInfo) -> list[Slo]:
        observe = info.data.get("observe") or Observe.model_validate({})
        known = set(observe.log_patterns) | set(DEFAULT_LOG_PATTERNS)
        for i, slo in enumerate(slos):
            if slo.metric.startswith("log.") and slo.metric[4:] not in known:
                raise ValueError(
                    f"at slo.{i}.metric: no log pattern named {slo.metric[4:]!r} "
                    f"(define it under observe.log_patterns; built in: {', '.join(DEFAULT_LOG_PATTERNS)})"
                )
        return slos

    @model_validator(mode="after")
    def _pass_in_counts_repeats(self) -> "Scenario":
        check_pass_in([slo.pass_in for slo in self.slo], self.repeat)
        return self


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; any problem is a UsageError of one line per fault."""
    if not path.is_file():
        raise UsageError(f"{path}: no such scenario file")
    try:
        source = load_yaml(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(source.data, dict):
        raise UsageError(f"{path}:1: a scenario is a mapping with name, stack, load and slo")
    try:
        return Scenario.model_validate(source.data)
    except ValidationError as exc:
        raise UsageError(format_errors(source, exc)) from None


def format_errors(source: YamlSource, exc: ValidationError) -> str:
    """`file:line: field.path: message`, one line per problem pydantic found."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        loc, message = _refine(loc, message)
        line = source.line_of(loc)
        where = f"{source.path}:{line}" if line else str(source.path)
        field_path = ".".join(str(part) for part in _user_loc(source.data, loc)) or "(top level)"
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{where}: {field_path}: {message}")
    return "\n".join(lines)


def _refine(loc: tuple[Any, ...], message: str) -> tuple[tuple[Any, ...], str]:
    """Validators that know a deeper path say so as `at a.b.c: message`."""
    match = re.match(r"^at ([A-Za-z0-9_.]+): (.*)$", message, re.S)
    if match is None:
        return loc, message
    parts = tuple(int(p) if p.isdigit() else p for p in match.group(1).split("."))
    if parts and parts[0] == (loc[0] if loc else None):
        return parts, match.group(2)  # a path from the top (scenario-level validators)
    return (*loc, *parts), match.group(2)


def _user_loc(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The path as the user wrote it: drop the tags pydantic adds for unions.

    A part is kept when the file has it, or when it is the last part (a missing or unknown key).
    """
    kept: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif i != len(loc) - 1:
            continue
        kept.append(part)
    return tuple(kept)
