"""Scenario files: what to run, what load to drive and what must hold.

Every model forbids unknown keys, so a typo is an error rather than a silently ignored setting.
"""

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from harness import metrics
from harness.durations import parse_duration
from harness.errors import UsageError
from harness.stacks.modelzoo import ZOO
from harness.users import known_users
from harness.yamlsrc import YamlSource, load_yaml

Duration = Annotated[float, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TritonStack(Strict):
    """A real `tritonserver` started by the harness with a model from the built-in zoo."""

    kind: Literal["triton"]
    model: str = "identity"
    instances: int = Field(2, ge=1, le=64)
    delay_ms: float = Field(0.0, ge=0)
    max_batch_size: int = Field(8, ge=0)
    startup_timeout: Duration = 120.0
    stop_timeout: Duration = 10.0

    @field_validator("model")
    @classmethod
    def _model_in_zoo(cls, value: str) -> str:
        if value not in ZOO:
            raise ValueError(f"unknown model {value!r} (the model zoo has: {', '.join(ZOO)})")
        return value


class ExternalStack(Strict):
    """A server that already runs; the harness starts and stops nothing."""

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
        if not _is_loopback(host):
            raise ValueError(f"{host} is not a loopback address; load goes to 127.0.0.0/8 or ::1")
        return value.rstrip("/")

    @field_validator("grpc_url")
    @classmethod
    def _grpc_loopback_only(cls, value: str | None) -> str | None:
        if value is not None and not _is_loopback(value.rsplit(":", 1)[0].strip("[]")):
            raise ValueError(f"{value} is not a loopback address")
        return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


StackSpec = Annotated[TritonStack | ExternalStack, Field(discriminator="kind")]


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


WindowSpec = Literal["all"] | Window

_OPS = {"<": "max", "<=": "max", ">": "min", ">=": "min"}
_SLO_TEXT = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


class Slo(Strict):
    """An assertion `metric op threshold` over a window of the run."""

    metric: str
    op: Literal["<", "<=", ">", ">="] = "<="
    threshold: float
    window: WindowSpec = "all"
    name: str | None = None

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
        if not metrics.is_known(value):
            raise ValueError(f"unknown metric {value!r} (known: {metrics.describe_known()})")
        return value

    @property
    def label(self) -> str:
        window = "" if self.window == "all" else f" in {_window_text(self.window)}"
        return self.name or f"{self.metric} {self.op} {self.threshold:g}{window}"


def _window_text(window: Window) -> str:
    end = "end" if window.end is None else f"{window.end:g}s"
    return f"[{window.start:g}s, {end}]"


class Scenario(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    stack: StackSpec
    load: LoadSpec
    slo: list[Slo] = Field(default_factory=list)
    expect: Literal["pass", "reproduced"] = "pass"


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
        line = source.line_of(loc)
        where = f"{source.path}:{line}" if line else str(source.path)
        field_path = ".".join(str(part) for part in _user_loc(source.data, loc)) or "(top level)"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{where}: {field_path}: {message}")
    return "\n".join(lines)


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
