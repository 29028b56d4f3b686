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
from harness.features import all_metrics, describe_metrics, metric_def, scenario_problems
from harness.limits import (
    MAX_FAULTS,
    MAX_FIRINGS,
    MAX_LOAD_S,
    MAX_LOG_PATTERNS,
    MAX_NAME_CHARS,
    MAX_PATTERN_CHARS,
    MAX_RATE,
    MAX_REQUEST_TIMEOUT_S,
    MAX_SEED,
    MAX_SLOS,
    MAX_SPAWN_RATE,
    MAX_STAGES,
    MAX_TEXT_CHARS,
    MAX_TIMEOUT_S,
    MAX_USERS,
)
from harness.llm.openai_settings import OpenAISettings
from harness.logpatterns import DEFAULT_LOG_PATTERNS
from harness.memory.startup_spec import StartupSpec
from harness.plugins import first_error
from harness.repeatspec import MAX_REPEAT, PassIn, check_pass_in
from harness.sidecar_spec import SidecarSpec, check_sidecars
from harness.specbase import Duration, RestartPolicy, StackSpecBase, Strict
from harness.stacks.registry import stack_spec_classes
from harness.suggest import did_you_mean, keys_at
from harness.thresholds import metric_unit, resolve
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

    duration: Duration = Field(gt=0, le=MAX_LOAD_S)
    users: int | None = Field(None, ge=0, le=MAX_USERS)
    rate: float | None = Field(None, ge=0, le=MAX_RATE)
    ramp: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> "Stage":
        if (self.users is None) == (self.rate is None):
            raise ValueError("a stage sets exactly one of `users` (closed model) or `rate` (open)")
        return self


class LoadSpec(Strict):
    """Closed model (`users` loop without pause) or open model (`rate` arrivals per second)."""

    user: str
    users: int = Field(8, ge=1, le=MAX_USERS)
    spawn_rate: float | None = Field(None, gt=0, le=MAX_SPAWN_RATE)
    duration: Duration | None = Field(None, gt=0, le=MAX_LOAD_S)
    rate: float | None = Field(None, gt=0, le=MAX_RATE)
    stages: list[Stage] | None = Field(None, min_length=1, max_length=MAX_STAGES)
    late_after: Duration = Field(0.010, gt=0, le=60)
    request_timeout: Duration = Field(10.0, gt=0, le=MAX_REQUEST_TIMEOUT_S)
    think_time: Duration = Field(0.0, le=MAX_TIMEOUT_S)
    openai: OpenAISettings | None = None  # the `openai` user's request (api, stream, max_tokens, ...)

    @field_validator("user")
    @classmethod
    def _user_known(cls, value: str) -> str:
        users = known_users()
        if value not in users:
            known = ", ".join(sorted(users))
            raise ValueError(f"unknown user class {value!r}{did_you_mean(value, users)} (known: {known})")
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
            if self.total_duration > MAX_LOAD_S:
                raise ValueError(f"the stages last {self.total_duration:g}s, over the limit of {MAX_LOAD_S}s "
                                 "for one run (a longer run is a soak: `harness soak --for`)")
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

    start: Duration = Field(0.0, alias="from", le=MAX_LOAD_S)
    end: Duration | None = Field(None, alias="to", gt=0, le=MAX_LOAD_S)

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"the window ends ({self.end:g}s) before it starts ({self.start:g}s)")
        return self


WindowSpec = Literal["all", "faults", "outside_faults"] | Window

_OPS = {"<": "max", "<=": "max", ">": "min", ">=": "min"}
_SLO_TEXT = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(<=|>=|<|>)\s*(\S.*?)\s*$")


class Slo(Strict):
    """An assertion `metric op threshold` over a window of the run."""

    metric: str
    op: Literal["<", "<=", ">", ">="] = "<="
    threshold: float  # in the metric's unit; the file may write one (`250ms`: harness.thresholds)
    window: WindowSpec = "all"
    name: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS, pattern=r"^[^\n\r\t]*$")
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
                raise ValueError(f"cannot read SLO {value!r}; write it as `metric op threshold`, "
                                 "e.g. `p99_ms < 250`, `p99 < 250ms`, `error_rate <= 1%`")
            value = {"metric": match.group(1), "op": match.group(2), "threshold": match.group(3)}
        if isinstance(value, dict) and ("max" in value or "min" in value):
            if "max" in value and "min" in value:
                raise ValueError("an SLO sets one of `max` or `min`; write two SLOs for both")
            value = dict(value)
            if "max" in value:
                value["op"], value["threshold"] = "<=", value.pop("max")
            else:
                value["op"], value["threshold"] = ">=", value.pop("min")
        if isinstance(value, dict) and isinstance(value.get("metric"), str):
            value = dict(value)
            value["metric"], value["threshold"] = resolve(
                value["metric"], value.get("threshold"), lambda m: metric_def(m) is not None
            )
        return value

    @field_validator("metric")
    @classmethod
    def _metric_known(cls, value: str) -> str:
        if metric_def(value) is None:
            raise ValueError(f"unknown metric {value!r}{did_you_mean(value, _metric_names())} "
                             f"(known: {describe_metrics()})")
        return value

    @model_validator(mode="after")
    def _threshold_possible(self) -> "Slo":
        """Metrics are never negative and shares never exceed 1: past those an SLO cannot decide."""
        if self.threshold < 0:
            raise ValueError(f"at threshold: {self.threshold:g} is negative; {self.metric} never is")
        if metric_unit(self.metric) == "share" and self.threshold > 1:
            raise ValueError(f"at threshold: {self.threshold:g} is over 1; {self.metric} is a share "
                             "(write 0.05 or 5%)")
        return self

    @property
    def label(self) -> str:
        window = "" if self.window == "all" else f" in {_window_text(self.window)}"
        return self.name or f"{self.metric} {self.op} {self.threshold:g}{window}"


def _metric_names() -> list[str]:
    names = [d.label for d in all_metrics()]
    return [*names, *(f"p{p}_ms" for p in (50, 90, 95, 99, 99.9))]


def _window_text(window: "Window | str") -> str:
    if isinstance(window, str):
        return window.replace("_", " ")
    end = "end" if window.end is None else f"{window.end:g}s"
    return f"[{window.start:g}s, {end}]"


_TIMELINE_KEYS = {"kind", "at", "duration", "every", "count", "jitter", "name"}


class FaultSpec(Strict):
    """A fault on the load's timeline; every key but the timeline's goes to the plugin."""

    kind: str
    name: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS, pattern=r"^[^\n\r\t]*$")
    at: Duration = Field(0.0, le=MAX_LOAD_S)
    duration: Duration = Field(0.0, le=MAX_LOAD_S)  # how long it is held before `restore` (freeze, limits)
    every: Duration | None = Field(None, gt=0, le=MAX_LOAD_S)
    count: int | None = Field(None, ge=1, le=MAX_FIRINGS)
    jitter: Duration = Field(0.0, le=MAX_LOAD_S)  # each start moves by up to +/- this, from the run's seed
    params: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def known_keys(cls, node: Any) -> list[str]:
        """The timeline's keys and the plugin's (for 'did you mean')."""
        from faults.base import fault_class, known_faults

        keys = sorted(_TIMELINE_KEYS)
        kind = node.get("kind") if isinstance(node, dict) else None
        if kind in known_faults():
            model = fault_class(kind).params_model
            keys += [info.alias or name for name, info in model.model_fields.items()]
        return keys

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
            raise ValueError(f"at kind: unknown fault {self.kind!r}{did_you_mean(self.kind, known_faults())} "
                             f"(known: {', '.join(known_faults())})")
        if self.every is not None and self.duration >= self.every:
            raise ValueError(f"at duration: held {self.duration:g}s but fired every {self.every:g}s; "
                             "each firing would start before the last one was restored")
        if self.every is not None and self.jitter >= self.every / 2:
            raise ValueError(f"at jitter: +/- {self.jitter:g}s would let firings {self.every:g}s apart "
                             "swap places; keep it under half of `every`")
        plugin = fault_class(self.kind)
        try:
            params = plugin.params_model.model_validate(self.params)
        except ValidationError as exc:
            raise ValueError(first_error(exc)) from None
        problem = plugin.check_schedule(params, self.duration)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def label(self) -> str:
        return self.name or self.kind

    def firings(self, load_seconds: float) -> list[float]:
        """When it fires (before jitter), as harness.timeline plans it: the last one matters here."""
        if self.every is None:
            return [self.at]
        count = self.count if self.count is not None else int((load_seconds - self.at) // self.every) + 1
        return [self.at + i * self.every for i in range(max(count, 1))]


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
    metrics_interval: Duration = Field(0.25, ge=0.05, le=60)
    log_patterns: dict[str, str] = Field(default_factory=dict, max_length=MAX_LOG_PATTERNS)

    @field_validator("log_patterns")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise ValueError(f"pattern name {name!r}: letters, digits and _ only")
            if not pattern or len(pattern) > MAX_PATTERN_CHARS:
                raise ValueError(f"at {name}: a pattern has 1 to {MAX_PATTERN_CHARS} characters")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {name!r} is not a regular expression: {exc}") from None
        return value


MAX_SOURCES = 8
SourceRef = Annotated[str, Field(
    pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*#[1-9][0-9]{0,8}|seeds/[0-9]{3}|found-here)$",
    max_length=MAX_NAME_CHARS)]


class Scenario(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=MAX_NAME_CHARS)
    description: str = Field("", max_length=MAX_TEXT_CHARS)
    # Where the failure this scenario reproduces or guards against was reported: `owner/repo#N`
    # (a GitHub issue), `seeds/NNN` (the project's seed reports) or `found-here` (the harness
    # found it itself). `harness list` shows them beside the expected outcome.
    source: list[SourceRef] = Field(default_factory=list, max_length=MAX_SOURCES)
    # Faults' random choices and jitter; recorded so a run can be replayed.
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    repeat: int = Field(1, ge=1, le=MAX_REPEAT)  # full runs in one series, judged together (pass_in)
    stack: StackSpec
    load: LoadSpec
    faults: list[FaultSpec] = Field(default_factory=list, max_length=MAX_FAULTS)
    observe: Observe = Field(default_factory=Observe)
    slo: list[Slo] = Field(default_factory=list, max_length=MAX_SLOS)
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
                    f"at faults.{i}.role: stack kind {stack.kind!r} has no role {role!r}"
                    f"{did_you_mean(str(role), roles)} (roles: {known})"
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

    @model_validator(mode="after")
    def _faults_within_load(self) -> "Scenario":
        """A fault that would fire, or still be held, after the load ended can never do its job."""
        end = self.load.total_duration
        for i, fault in enumerate(self.faults):
            last = fault.firings(end)[-1]
            if fault.at >= end:
                raise ValueError(f"at faults.{i}.at: {fault.at:g}s is not before the load ends ({end:g}s); "
                                 "it would never fire")
            if last >= end:
                raise ValueError(f"at faults.{i}.count: firing {fault.count} of {fault.label} would be at "
                                 f"{last:g}s, after the load ends ({end:g}s)")
            if last + fault.duration > end:
                raise ValueError(f"at faults.{i}.duration: {fault.label} firing at {last:g}s is held until "
                                 f"{last + fault.duration:g}s, after the load ends ({end:g}s)")
        return self

    @model_validator(mode="after")
    def _slo_windows_within_run(self) -> "Scenario":
        from harness.abort import abort_never_fires  # it judges Slo objects: imported once both exist

        end = self.load.total_duration
        for i, slo in enumerate(self.slo):
            if slo.window in ("faults", "outside_faults") and not self.faults:
                raise ValueError(f"at slo.{i}.window: `{slo.window}` but the scenario has no faults; "
                                 "the SLO would measure nothing")
            if isinstance(slo.window, Window):
                if slo.window.start >= end:
                    raise ValueError(f"at slo.{i}.window.from: {slo.window.start:g}s is not before the "
                                     f"load ends ({end:g}s)")
                if slo.window.end is not None and slo.window.end > end:
                    raise ValueError(f"at slo.{i}.window.to: {slo.window.end:g}s is after the load ends "
                                     f"({end:g}s)")
            if slo.abort and slo.pass_in is not None:
                raise ValueError(f"at slo.{i}.abort: an abort stops the series at the first failure, "
                                 f"which `pass_in: {slo.pass_in.text}` allows; use one or the other")
            never = abort_never_fires(slo, self.expect) if slo.abort else None
            if never:
                raise ValueError(f"at slo.{i}.abort: {never}: it can never stop the run")
            if slo.abort and slo.abort_grace >= end:
                raise ValueError(f"at slo.{i}.abort_grace: {slo.abort_grace:g}s is not before the load "
                                 f"ends ({end:g}s); the SLO could never abort the run")
        return self

    @model_validator(mode="after")
    def _features_agree(self) -> "Scenario":
        """What a feature knows of its own settings and metrics (harness.features.Feature.check_scenario)."""
        problems = scenario_problems(self)
        if len(problems) > 1:  # one line, as every scenario error, saying how many more there are
            more = len(problems) - 1
            raise ValueError(f"{problems[0]} (and {more} more problem{'s' if more > 1 else ''})")
        if problems:
            raise ValueError(problems[0])
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
        raise UsageError(f"{path}:1: (top level): a scenario is a mapping with name, stack, load and slo")
    try:
        return Scenario.model_validate(source.data)
    except ValidationError as exc:
        raise UsageError(format_errors(source, exc)) from None


def format_errors(source: YamlSource, exc: ValidationError) -> str:
    """`file:line: field.path: message`: one line, for the first problem pydantic found.

    One line because a scenario error is read by a person fixing one thing at a time and by
    scripts that take the first line; how many more problems there are is said at its end.
    """
    problems: list[tuple[str, str]] = []  # (user's field path, the whole line)
    for error in _without_union_noise(exc.errors(include_url=False)):
        loc = tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        loc, message = _refine(loc, message)
        line = source.line_of(loc)
        where = f"{source.path}:{line}" if line else str(source.path)
        field_path = ".".join(str(part) for part in _user_loc(source.data, loc)) or "(top level)"
        if (error["type"] == "extra_forbidden" or message == "unknown key") and loc:
            message = "unknown key" + did_you_mean(str(loc[-1]), _free_keys(source.data, loc))
        elif error["type"] == "union_tag_invalid":  # the union's tag is the `kind` key itself
            loc = (*loc, "kind")
            line = source.line_of(loc)
            where = f"{source.path}:{line}" if line else str(source.path)
            field_path = ".".join(str(part) for part in _user_loc(source.data, loc))
            message = _unknown_kind(error.get("ctx") or {})
        problems.append((field_path, f"{where}: {field_path}: {message.strip() or error['type']}"))
    first = problems[0][1]
    more = len({path for path, _ in problems[1:]} - {problems[0][0]})
    return first if not more else f"{first} (and {more} more problem{'s' if more > 1 else ''})"


def _free_keys(data: Any, loc: tuple[Any, ...]) -> list[str]:
    """The keys the mapping holding the unknown `loc[-1]` may have and does not have yet."""
    node: Any = data
    for part in loc[:-1]:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
    present = set(node) if isinstance(node, dict) else set()
    return [key for key in keys_at(Scenario, data, loc[:-1]) if key not in present]


def _without_union_noise(errors: list[Any]) -> list[Any]:
    """A value that fits no member of a union gets one error per member; keep the telling ones.

    `window: {from: 8s, to: 4s}` fails both as one of the words (`all`, ...) and as a Window: the
    Window's complaint is the one that helps, so a literal's is dropped when another error is there.
    """
    telling = [e for e in errors if e["type"] != "literal_error"]
    return telling or errors


def _unknown_kind(ctx: dict[str, Any]) -> str:
    tag = str(ctx.get("tag", ""))
    kinds = re.findall(r"'([^']+)'", str(ctx.get("expected_tags", "")))
    return f"unknown kind {tag!r}{did_you_mean(tag, kinds)} (known: {', '.join(kinds)})"


def _refine(loc: tuple[Any, ...], message: str) -> tuple[tuple[Any, ...], str]:
    """Validators that know a deeper path say so as `at a.b.c: message`."""
    match = re.match(r"^at ([A-Za-z0-9_.]+): (.*)$", message, re.S)
    if match is None:
        return loc, message
    parts = tuple(int(p) if p.isdigit() else p for p in match.group(1).split("."))
    if parts and parts[0] == (loc[0] if loc else None):
        return parts, match.group(2)  # a path from the top (scenario-level validators)
    return (*loc, *parts), match.group(2)


def _plausible_key(part: Any) -> bool:
    """Not one of pydantic's own path parts, such as `function-after[_ordered(), Window]`."""
    return isinstance(part, int) or re.fullmatch(r"[A-Za-z0-9_.-]+", str(part)) is not None


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
        elif i != len(loc) - 1 or not _plausible_key(part):
            continue
        kept.append(part)
    return tuple(kept)
