"""`gpu_memory_stress`: a process beside the stack takes and holds device memory, step by step.

    - {kind: gpu_memory_stress, at: 10s, duration: 30s, amount: 20GiB}
    - {kind: gpu_memory_stress, at: 10s, duration: 30s, device: 1, fraction: 0.9}
    - {kind: gpu_memory_stress, at: 0s, duration: 60s,
       steps: [{after: 0s, fraction: 0.5}, {after: 20s, fraction: 0.9}, {after: 40s, amount: 70GiB}]}

What a serving engineer meets most on a GPU: a co-located job or a second model takes device
memory, and the server's next allocation fails (its KV cache cannot grow, a bigger batch cannot
be formed) or it is OOM-killed on the device. The stressor is `python -m harness.gpu.stressor`
(harness.gpu.stressor): its own CUDA context on `device` (the CUDA ordinal, as the stack sees it),
memory taken in chunks through the driver API. Each step is the total to hold: an `amount`, or a
`fraction` of the memory that was free when the fault was injected (after the stressor's own
context). Asking for more than is free is allowed, since it is the point: the stressor holds what
the driver gives and says how much it was refused (`oom`), so `held` is always the truth.

Refused at validation, as one line, where it cannot run: no libcuda.so.1 (no NVIDIA driver), no
GPU, a device index past the last one, an amount larger than the whole device. Each step is
journaled as `gpu_memory_stress_step` and a `gpu_memory_step` window; the restore ends the
stressor (end of input, then SIGTERM, then SIGKILL), checks it ended and journals
`gpu_memory_stress_ended`. The plan names its pidfile, so `harness cleanup` ends a stressor a
SIGKILLed harness left (it also frees and exits by itself when the harness's pipe closes).
"""

import tempfile
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from faults.base import Fault, FaultContext, FaultError, FaultParams
from harness.gpu import child as stress_child
from harness.gpu.pidfile import end_recorded
from harness.sizes import Size, format_size
from harness.specbase import Duration

MAX_DEVICE = 255
MIN_CHUNK = 1 << 20
MAX_CHUNK = 4 << 30


class GpuStep(FaultParams):
    after: Duration = 0.0  # from the injection
    amount: Size | None = None
    fraction: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _one_size(self) -> "GpuStep":
        if (self.amount is None) == (self.fraction is None):
            raise ValueError("set exactly one of `amount` or `fraction` (of the device's free memory)")
        return self

    def target(self) -> dict[str, Any]:
        """What the stressor is sent: `{"amount": N}` or `{"fraction": F}`."""
        return {"amount": self.amount} if self.amount is not None else {"fraction": self.fraction}

    def text(self) -> str:
        return format_size(self.amount) if self.amount is not None else f"{self.fraction:g} of free"


class GpuStressParams(FaultParams):
    device: int = Field(0, ge=0, le=MAX_DEVICE)
    amount: Size | None = None
    fraction: float | None = Field(None, gt=0, le=1)
    steps: list[GpuStep] | None = None
    chunk: Size = Field(256 << 20, ge=MIN_CHUNK, le=MAX_CHUNK)  # one cuMemAlloc

    @model_validator(mode="after")
    def _one_schedule(self) -> "GpuStressParams":
        given = [x is not None for x in (self.amount, self.fraction, self.steps)]
        if sum(given) != 1:
            raise ValueError("set exactly one of `amount`, `fraction` or `steps`")
        if self.steps is not None and not self.steps:
            raise ValueError("steps: at least one step")
        if self.steps is not None and [s.after for s in self.steps] != sorted(s.after for s in self.steps):
            raise ValueError("steps: in order of `after`")
        return self

    def schedule(self) -> list[GpuStep]:
        if self.steps is not None:
            return list(self.steps)
        return [GpuStep(amount=self.amount, fraction=self.fraction)]


def refusal(probe: dict[str, Any], device: int) -> str:
    """The one line validation says when the stressor's probe found it cannot run."""
    reason = probe.get("reason")
    error = probe.get("error") or "unknown error"
    if reason == "no_driver":
        return f"gpu_memory_stress: no NVIDIA driver here ({error}); it needs a GPU and libcuda.so.1"
    if reason == "no_device":
        return f"gpu_memory_stress: the NVIDIA driver found no GPU ({error})"
    if reason == "out_of_range":
        count = int(probe.get("count") or 0)
        have = f"devices 0 to {count - 1}" if count > 1 else "device 0"
        return f"gpu_memory_stress device {device}: out of range; this machine has {count} GPU(s) ({have})"
    return f"gpu_memory_stress device {device}: the CUDA driver failed: {error}"


class GpuMemoryStress(Fault):
    kind = "gpu_memory_stress"
    params_model = GpuStressParams
    # The stressor's command line (tests put a stand-in driver behind it).
    command: tuple[str, ...] = stress_child.STRESSOR

    @classmethod
    def check_schedule(cls, params: FaultParams, held_s: float) -> str | None:
        for i, step in enumerate(getattr(params, "steps", None) or []):
            if step.after > 0 and step.after >= held_s:
                return (f"at steps.{i}.after: {step.after:g}s is not within the fault's duration "
                        f"({held_s:g}s); the step would never apply")
        return None

    def __init__(self, params: FaultParams):
        super().__init__(params)
        self._child: stress_child.StressChild | None = None
        self._stepper: Any = None
        self._window: dict[str, Any] | None = None

    def _params(self) -> GpuStressParams:
        assert isinstance(self.params, GpuStressParams)
        return self.params

    def validate(self, ctx: FaultContext) -> None:
        params = self._params()
        found = stress_child.probe(params.device, self.command)
        if not found.get("ok"):
            raise FaultError(refusal(found, params.device))
        total = int(found["total"])
        for i, step in enumerate(params.schedule()):
            if step.amount is not None and step.amount > total:
                where = f"step {i}" if params.steps is not None else "amount"
                raise FaultError(f"gpu_memory_stress {where}: {format_size(step.amount)} is more than device "
                                 f"{params.device} ({found.get('name')}) has in all ({format_size(total)})")

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        params = self._params()
        pidfile = Path(tempfile.gettempdir()) / f"harness-gpustress-{uuid.uuid4().hex[:12]}.pid"
        return {"pidfile": str(pidfile), "device": params.device, "chunk": params.chunk,
                "steps": [[step.after, step.target()] for step in params.schedule()]}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        import gevent

        self._child = stress_child.StressChild(plan["device"], plan["pidfile"], plan["chunk"], self.command)
        try:
            ready = self._child.start()
        except stress_child.StressorFailed as exc:
            self._child = None  # it has already exited: nothing for restore to end
            raise FaultError(refusal(exc.record, plan["device"])) from None
        self._stepper = gevent.spawn(self._run_steps, ctx, plan["steps"])
        return {"pid": self._child.pid, "device": plan["device"], "gpu_name": ready.get("name"),
                "pci_bus_id": ready.get("pci_bus_id"), "free_at_start": ready.get("free"),
                "free_text": format_size(ready.get("free")), "total": ready.get("total")}

    def _run_steps(self, ctx: FaultContext, steps: list[list[Any]]) -> None:
        import gevent

        assert self._child is not None
        journal = ctx.journal
        origin = journal.now() if journal is not None else 0.0
        device = self._child.device
        for i, (after, target) in enumerate(steps):
            if journal is not None:
                gevent.sleep(max(0.0, origin + after - journal.now()))
            elif after:
                gevent.sleep(after)
            reply = self._child.ask(target)
            if journal is None:
                continue
            self._close_window(journal)
            asked = format_size(target["amount"]) if "amount" in target else f"{target['fraction']:g} of free"
            event = journal.event(
                "gpu_memory_stress_step", step=i, device=device, pid=self._child.pid, asked=asked,
                target=reply.get("target"), target_text=format_size(reply.get("target")),
                held=reply.get("held"), held_text=format_size(reply.get("held")), oom=reply.get("oom"),
                capped=reply.get("capped"), error=reply.get("error"), seconds=reply.get("seconds"),
                free=reply.get("free"))
            self._window = {"t": event["t"], "name": f"gpu{device} holds {format_size(reply.get('held'))}"}

    def _close_window(self, journal: Any) -> None:
        if self._window is not None:
            journal.event("window", kind="gpu_memory_step", name=self._window["name"],
                          start=self._window["t"], end=round(journal.now(), 4))
            self._window = None

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        if self._stepper is not None:
            self._stepper.kill()
        if ctx.journal is not None:
            self._close_window(ctx.journal)
        ended: dict[str, Any] | None = None
        if self._child is not None:
            ended = self._child.end()
            if ctx.journal is not None:
                ctx.journal.event("gpu_memory_stress_ended", device=plan["device"], pid=self._child.pid,
                                  freed_text=format_size(ended.get("freed")), **ended)
        self.undo(plan)  # the pidfile; and the process, had it outlived its SIGKILL
        if ended is not None and not ended["ended"]:
            raise FaultError(f"the GPU stressor (pid {self._child.pid if self._child else '?'}) did not end")

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:
        """End the exact stressor its pidfile names (PID and start time), if it still runs."""
        end_recorded(plan["pidfile"])
