"""`memory_limit`: put a stack's processes (or one role's) under a memory cgroup limit that is
lowered and raised on a timeline, and always removed afterwards.

    - {kind: memory_limit, at: 10s, duration: 30s, role: stub, limit: 600MiB}
    - {kind: memory_limit, at: 5s, duration: 40s, steps: [{after: 0s, limit: 1GiB},
                                                          {after: 15s, limit: 500MiB}]}

Two ways, chosen in `plan`:
- `adjust`: no role given and the whole stack already runs in one harness group (the scenario's
  `startup.memory_limit`): that group's limit changes, and the previous one comes back after;
- `move`: the processes move into a new group `harness-limit-<id>` for the fault's duration,
  and back into the groups they came from after; a process born inside (a respawned stub)
  goes back with them. The group is then removed. Memory a process held before the move stays
  charged to its old group (the kernel moves no charges: v2 never did, v1's
  move_charge_at_immigrate is gone from recent kernels), so the limit counts what it allocates
  after the move; to limit everything, start the stack in a group (`startup.memory_limit`).
What the kernel does when usage meets the limit differs by version (see harness.memory.cgroups):
v2 reclaims and OOM-kills at once; v1 refuses to lower a limit below what it cannot reclaim,
which is recorded as a refused step (`memory_limit_step` with `error`), not hidden.
"""

import uuid
from pathlib import Path
from typing import Any

import gevent
from pydantic import Field, model_validator

from faults.base import Fault, FaultContext, FaultError, FaultParams
from harness.memory.cgroups import CgroupError, Choice, Hierarchy, MemoryGroup, hierarchy
from harness.memory.targets import ident_of, stack_processes
from harness.sizes import Size, format_size
from harness.specbase import Duration

MOVE_NOTE = ("the kernel keeps charging memory a process held before the move to its old group; "
             "the limit counts what it allocates from now on")
MIN_LIMIT = 16 << 20  # below this no serving process starts at all; it is a typo, not a test
GROUP_PREFIX = "harness-"


class LimitStep(FaultParams):
    after: Duration = 0.0  # from the injection
    limit: Size = Field(ge=MIN_LIMIT)


class LimitParams(FaultParams):
    role: str | None = None  # None: every process of the stack
    limit: Size | None = Field(None, ge=MIN_LIMIT)
    steps: list[LimitStep] | None = None
    cgroup: Choice = "auto"

    @model_validator(mode="after")
    def _one_schedule(self) -> "LimitParams":
        if (self.limit is None) == (self.steps is None):
            raise ValueError("set exactly one of `limit` or `steps`")
        if self.steps is not None:
            afters = [step.after for step in self.steps]
            if not afters or afters != sorted(afters):
                raise ValueError("steps: give at least one, in order of `after`")
        return self

    def schedule(self) -> list[tuple[float, int]]:
        if self.steps is None:
            assert self.limit is not None
            return [(0.0, self.limit)]
        return [(step.after, step.limit) for step in self.steps]


def _group(plan: dict[str, Any]) -> MemoryGroup:
    return MemoryGroup(plan["version"], Path(plan["mount"]), plan["group"])


def step_past_end(afters: list[float], held_s: float) -> str | None:
    """A step whose `after` is past the fault's end would never apply (memory_limit, memory_stress)."""
    for i, after in enumerate(afters):
        if after > 0 and after >= held_s:
            return (f"at steps.{i}.after: {after:g}s is not within the fault's duration ({held_s:g}s); "
                    "the step would never apply")
    return None


class MemoryLimit(Fault):
    kind = "memory_limit"
    params_model = LimitParams

    @classmethod
    def check_schedule(cls, params: FaultParams, held_s: float) -> str | None:
        return step_past_end([step.after for step in getattr(params, "steps", None) or []], held_s)

    def __init__(self, params: FaultParams):
        super().__init__(params)
        self._stepper: gevent.Greenlet | None = None

    def _params(self) -> LimitParams:
        assert isinstance(self.params, LimitParams)
        return self.params

    def validate(self, ctx: FaultContext) -> None:
        try:
            hierarchy(self._params().cgroup)
        except CgroupError as exc:
            raise FaultError(f"memory_limit: {exc}") from None

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        params = self._params()
        hier = hierarchy(params.cgroup)
        targets = stack_processes(ctx, params.role)
        origins = {p.pid: hier.group_of(p.pid).rel for p in targets}
        plan: dict[str, Any] = {
            **hier.describe(),
            "targets": [{"pid": p.pid, "create_time": p.create_time, "name": p.name, "from": origins[p.pid]}
                        for p in targets],
            "steps": params.schedule(),
        }
        shared = set(origins.values())
        if params.role is None and len(shared) == 1 and _is_harness_group(next(iter(shared))):
            group = hier.group_of(targets[0].pid)
            return {**plan, "mode": "adjust", "group": group.rel, "previous_limit": group.limit()}
        return {**plan, "mode": "move", "group": _new_group(hier).rel}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        group = _group(plan)
        first_limit = plan["steps"][0][1]
        moved: list[int] = []
        if plan["mode"] == "move":
            group.create()
            group.set_limit(first_limit)
            for record in plan["targets"]:
                if ident_of(record).alive() is not None:
                    group.add(record["pid"])
                    moved.append(record["pid"])
        else:
            group.set_limit(first_limit)
        if len(plan["steps"]) > 1:
            self._stepper = gevent.spawn(self._run_steps, ctx, group, plan["steps"][1:])
        details = {"group": plan["group"], "cgroup": plan["version"], "mode": plan["mode"],
                   "limit": first_limit, "limit_text": format_size(first_limit), "moved": moved}
        if moved:
            details["note"] = MOVE_NOTE
        return details

    def _run_steps(self, ctx: FaultContext, group: MemoryGroup, steps: list[list[Any]]) -> None:
        started = gevent.get_hub().loop.now()
        for after, limit in steps:
            gevent.sleep(max(0.0, started + after - gevent.get_hub().loop.now()))
            error = None
            try:
                group.set_limit(limit)
            except CgroupError as exc:
                error = str(exc)
            if ctx.journal is not None:
                ctx.journal.event("memory_limit_step", group=group.rel, limit=limit,
                                  limit_text=format_size(limit), error=error)

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        if self._stepper is not None:
            self._stepper.kill()
        self.undo(plan)

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:
        group = _group(plan)
        if plan["mode"] == "adjust":
            if group.exists():
                group.set_limit(plan.get("previous_limit"))
            return
        if not group.exists():
            return
        group.set_limit(None)  # first, so nothing is OOM-killed while processes move out
        for record in plan["targets"]:
            if ident_of(record).alive() is not None and record["pid"] in group.pids():
                _origin(plan, record["from"]).add(record["pid"])
        home = plan["targets"][0]["from"] if plan["targets"] else plan["base"]
        group.remove(move_to=_origin(plan, home))


def _origin(plan: dict[str, Any], rel: str) -> MemoryGroup:
    """The group a process came from; the base if that one is gone too (a cleanup after a
    SIGKILL removes the stack's group before this fault's)."""
    group = MemoryGroup(plan["version"], Path(plan["mount"]), rel)
    return group if group.exists() else MemoryGroup(plan["version"], Path(plan["mount"]), plan["base"])


def _is_harness_group(rel: str) -> bool:
    return rel.rstrip("/").rsplit("/", 1)[-1].startswith(GROUP_PREFIX)


def _new_group(hier: Hierarchy) -> MemoryGroup:
    return hier.group(f"{GROUP_PREFIX}limit-{uuid.uuid4().hex[:10]}")
