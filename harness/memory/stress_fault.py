"""`memory_stress`: a process beside the stack takes and holds memory, step by step.

    - {kind: memory_stress, at: 5s, duration: 60s, amount: 2GiB}
    - {kind: memory_stress, at: 0s, duration: 80s, group: stack,
       steps: [{after: 0s, amount: 100MiB}, {after: 20s, amount: 300MiB}, {after: 40s, amount: 500MiB}]}

`fraction: 0.25` takes a quarter of the host's memory (MemTotal) instead of an amount.
`group: host` (default) takes it from the host; `group: stack` puts the stressor inside the
stack's own memory cgroup (the scenario's `startup.memory_limit`), so it squeezes the stack
and not the machine. The stressor is `python -m harness.memory.stressor` (see there); it keeps
the harness's floor of available memory, and a step that asks for more than the host can spare
above the floor is refused before the run starts. Each step is journalled as
`memory_stress_step` (target, held, seconds it took, capped by the floor) and as a window, so
the report shows the error rate and latency at each step.
"""

import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any, Literal

import gevent
from pydantic import Field, model_validator

from faults.base import Fault, FaultContext, FaultError, FaultParams
from harness.memory.cgroups import CgroupError, MemoryGroup, hierarchy
from harness.memory.host import HostMemory, host_memory
from harness.memory.limit_fault import step_past_end
from harness.procs import ProcessId
from harness.sizes import Size, format_size
from harness.specbase import Duration

EXIT_WAIT_S = 5.0


class StressStep(FaultParams):
    after: Duration = 0.0  # from the injection
    amount: Size | None = None
    fraction: float | None = Field(None, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_size(self) -> "StressStep":
        if (self.amount is None) == (self.fraction is None):
            raise ValueError("set exactly one of `amount` or `fraction` (of the host's memory)")
        return self

    def bytes_on(self, host: HostMemory) -> int:
        return self.amount if self.amount is not None else int(host.total * (self.fraction or 0))


class StressParams(FaultParams):
    amount: Size | None = None
    fraction: float | None = Field(None, gt=0, lt=1)
    steps: list[StressStep] | None = None
    group: Literal["host", "stack"] = "host"
    oom_score_adj: int = Field(1000, ge=-1000, le=1000)  # 1000: the OOM killer's first choice

    @model_validator(mode="after")
    def _one_schedule(self) -> "StressParams":
        given = [x is not None for x in (self.amount, self.fraction, self.steps)]
        if sum(given) != 1:
            raise ValueError("set exactly one of `amount`, `fraction` or `steps`")
        if self.steps is not None and [s.after for s in self.steps] != sorted(s.after for s in self.steps):
            raise ValueError("steps: in order of `after`")
        return self

    def schedule(self) -> list[StressStep]:
        if self.steps is not None:
            return list(self.steps)
        return [StressStep(amount=self.amount, fraction=self.fraction)]


class MemoryStress(Fault):
    kind = "memory_stress"
    params_model = StressParams

    @classmethod
    def check_schedule(cls, params: FaultParams, held_s: float) -> str | None:
        return step_past_end([step.after for step in getattr(params, "steps", None) or []], held_s)

    def __init__(self, params: FaultParams):
        super().__init__(params)
        self._proc: subprocess.Popen[str] | None = None
        self._stepper: gevent.Greenlet | None = None

    def _params(self) -> StressParams:
        assert isinstance(self.params, StressParams)
        return self.params

    def validate(self, ctx: FaultContext) -> None:
        host = host_memory()
        for i, step in enumerate(self._params().schedule()):
            wanted = step.bytes_on(host)
            if wanted > host.takeable:
                raise FaultError(
                    f"memory_stress step {i}: {format_size(wanted)} would leave "
                    f"{format_size(host.available - wanted)} available, below the harness's floor of "
                    f"{format_size(host.floor)} (5% of host memory, at least 512 MiB; "
                    f"{format_size(host.available)} available now)"
                )
        if self._params().group == "stack":
            _stack_group(ctx)

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        host = host_memory()
        group = _stack_group(ctx) if self._params().group == "stack" else None
        pidfile = Path(tempfile.gettempdir()) / f"harness-stressor-{uuid.uuid4().hex[:12]}.pid"
        return {
            "pidfile": str(pidfile),
            "steps": [[step.after, step.bytes_on(host)] for step in self._params().schedule()],
            "floor": host.floor,
            "group": None if group is None else {"version": group.version, "mount": str(group.mount),
                                                 "rel": group.rel},
        }

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        argv = [sys.executable, "-m", "harness.memory.stressor", "--stdin", "--pidfile", plan["pidfile"],
                "--floor", str(plan["floor"]), "--oom-score-adj", str(self._params().oom_score_adj)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      start_new_session=True)
        if plan["group"] is not None:
            group = plan["group"]
            MemoryGroup(group["version"], Path(group["mount"]), group["rel"]).add(self._proc.pid)
        assert self._proc.stdout is not None
        self._proc.stdout.readline()  # it is up, holding nothing yet
        self._stepper = gevent.spawn(self._run_steps, ctx, plan["steps"])
        return {"pid": self._proc.pid, "floor": plan["floor"], "floor_text": format_size(plan["floor"]),
                "group": (plan["group"] or {}).get("rel", "host")}

    def _run_steps(self, ctx: FaultContext, steps: list[list[Any]]) -> None:
        assert self._proc is not None and self._proc.stdin is not None and self._proc.stdout is not None
        journal = ctx.journal
        origin = journal.now() if journal is not None else 0.0
        opened: dict[str, Any] | None = None
        for i, (after, target) in enumerate(steps):
            if journal is not None:
                gevent.sleep(max(0.0, origin + after - journal.now()))
            elif after:
                gevent.sleep(after)
            reply = _ask(self._proc.stdin, self._proc.stdout, target)
            if journal is None:
                continue
            if opened is not None:
                _close_window(journal, opened)
            opened = journal.event("memory_stress_step", step=i, pid=self._proc.pid, target=target,
                                   target_text=format_size(target), **reply)
        self._last_window = opened

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        if self._stepper is not None:
            self._stepper.kill()
        opened = getattr(self, "_last_window", None)
        if opened is not None and ctx.journal is not None:
            _close_window(ctx.journal, opened)
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()  # end of input: it frees everything and exits
            try:
                self._proc.wait(EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
        self.undo(plan)

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:
        """Kill the exact stressor process its pidfile names (PID and start time), if alive."""
        pidfile = Path(plan["pidfile"])
        try:
            record = json.loads(pidfile.read_text(encoding="ascii"))
        except (OSError, ValueError):
            return
        ProcessId(record["pid"], record["create_time"], record.get("name", "")).send(9)
        pidfile.unlink(missing_ok=True)


def _ask(stdin: IO[str], stdout: IO[str], target: int) -> dict[str, Any]:
    """Send one target; the stressor answers once it holds it (or the floor stopped it)."""
    try:
        stdin.write(f"{target}\n")
        stdin.flush()
        line = stdout.readline()
    except OSError as exc:
        return {"held": None, "error": f"stressor gone: {exc}"}
    if not line:
        return {"held": None, "error": "stressor gone (killed?)"}
    reply = json.loads(line)
    return {"held": reply["held"], "seconds": reply["seconds"], "capped": reply["capped"]}


def _close_window(journal: Any, opened: dict[str, Any]) -> None:
    journal.event("window", kind="memory_step", name=f"stress {opened['target_text']}",
                  start=opened["t"], end=round(journal.now(), 4))


def _stack_group(ctx: FaultContext) -> MemoryGroup:
    """The harness group the stack runs in (from `startup.memory_limit`)."""
    servers = [p for idents in ctx.roles().values() for p in idents]
    try:
        hier = hierarchy()
        group = hier.group_of(servers[0].pid) if servers else None
    except CgroupError as exc:
        raise FaultError(f"memory_stress group: stack: {exc}") from None
    if group is None or not group.rel.rsplit("/", 1)[-1].startswith("harness-"):
        raise FaultError("memory_stress group: stack needs a stack memory group (startup.memory_limit)")
    return group
