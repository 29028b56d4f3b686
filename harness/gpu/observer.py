"""GPU memory and utilisation through NVML (pynvml), where a GPU and its driver exist.

pynvml is imported only when the watcher starts; without the package, the driver or a GPU the
watcher is silently absent: no events, no series, `available: false` in its summary. With one,
it writes `gpu` samples once a second: per device `mem_used{gpu=N}`, `mem_total{gpu=N}`,
`util{gpu=N}` (percent), and per stack role the GPU memory its processes hold
(`mem{role=server}`), from NVML's list of compute processes.
"""

from collections.abc import Callable
from types import ModuleType
from typing import Any

import gevent

from harness.observers.base import Observer, ObserverContext
from harness.procs import ProcessId

INTERVAL_S = 1.0

Roles = Callable[[], dict[str, list[ProcessId]]]


def load_nvml() -> ModuleType | None:
    """pynvml, initialised; None where there is no package, driver or device."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() == 0:
            pynvml.nvmlShutdown()
            return None
    except Exception:  # noqa: BLE001 - NVMLError_* of every kind: no usable GPU here
        return None
    return pynvml


class GpuObserver(Observer):
    name = "gpu"

    def __init__(self, roles: Roles | None = None, loader: Callable[[], ModuleType | None] = load_nvml,
                 interval_s: float = INTERVAL_S):
        self.roles = roles
        self.loader = loader
        self.interval_s = interval_s
        self.nvml: ModuleType | None = None
        self.peak_used: dict[str, float] = {}
        self.ctx: ObserverContext | None = None
        self.greenlet: gevent.Greenlet | None = None
        self.errors = 0

    def start(self, ctx: ObserverContext) -> None:
        self.ctx = ctx
        self.nvml = self.loader()
        if self.nvml is not None:
            self.greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            self.sample()
            gevent.sleep(self.interval_s)

    def sample(self) -> None:
        assert self.ctx is not None and self.nvml is not None
        nvml = self.nvml
        values: dict[str, float] = {}
        role_of = self._role_of_pid()
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                values[f"mem_used{{gpu={index}}}"] = float(memory.used)
                values[f"mem_total{{gpu={index}}}"] = float(memory.total)
                values[f"util{{gpu={index}}}"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    role = role_of.get(proc.pid)
                    if role is not None and proc.usedGpuMemory is not None:
                        key = f"mem{{role={role}}}"
                        values[key] = values.get(key, 0.0) + float(proc.usedGpuMemory)
        except Exception:  # noqa: BLE001 - a driver hiccup costs one sample, not the run
            self.errors += 1
            return
        for key, value in values.items():
            if key.startswith("mem_used") or key.startswith("mem{"):
                self.peak_used[key] = max(self.peak_used.get(key, 0.0), value)
        self.ctx.journal.series("gpu", values)

    def _role_of_pid(self) -> dict[int, str]:
        if self.roles is None:
            return {}
        return {ident.pid: role for role, idents in self.roles().items() for ident in idents}

    def stop(self) -> dict[str, Any]:
        if self.greenlet is not None:
            self.greenlet.kill()
        if self.nvml is None:
            return {"available": False}
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down is best effort
            pass
        return {"available": True, "peak": self.peak_used, "errors": self.errors}
