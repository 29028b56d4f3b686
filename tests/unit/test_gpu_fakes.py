"""Stand-ins for the two GPU libraries, for CI (no GPU there): a loaded libcuda and the pynvml module.

`FakeLibcuda` answers the driver calls harness.gpu.cuda makes, through the same `ctypes` pointers,
with a budget of free device memory (so an allocation can run out half way through a step).
`FakeNvml` is a pynvml with devices whose fields can be made unsupported or broken, and a queue
of Xid events. `fake_stressor_command` runs the real stressor process over `FakeLibcuda`.
The tests at the end check the stand-ins themselves answer like the real ones do.
"""

import ctypes
import json
import queue
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.gpu.cuda import Cuda

ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30
MIB = 1 << 20

_ERROR_NAMES = {2: b"CUDA_ERROR_OUT_OF_MEMORY", 34: b"CUDA_ERROR_STUB_LIBRARY", 100: b"CUDA_ERROR_NO_DEVICE",
                101: b"CUDA_ERROR_INVALID_DEVICE", 999: b"CUDA_ERROR_UNKNOWN"}


class FakeLibcuda:
    """A loaded libcuda.so.1: `free` bytes to hand out, minus `context_cost` once a context exists."""

    def __init__(self, devices: int = 1, total: int = 80 * GIB, free: int | None = None,
                 context_cost: int = 512 * MIB, init_result: int = 0, alloc_error: int | None = None,
                 name: str = "Fake H200"):
        self.devices = devices
        self.total = total
        self.free_bytes = total - 2 * GIB if free is None else free
        self.context_cost = context_cost
        self.init_result = init_result
        self.alloc_error = alloc_error  # a result code other than OOM for every allocation
        self.name = name.encode()
        self.allocations: dict[int, int] = {}
        self.contexts = 0
        self._next = 0x7F00_0000_0000
        self.calls: list[str] = []

    def _log(self, name: str) -> None:
        self.calls.append(name)

    def cuInit(self, flags: int) -> int:
        self._log("cuInit")
        return self.init_result

    def cuDriverGetVersion(self, out: Any) -> int:
        out.contents.value = 13000
        return 0

    def cuDeviceGetCount(self, out: Any) -> int:
        out.contents.value = self.devices
        return 0

    def cuDeviceGet(self, out: Any, ordinal: int) -> int:
        if not 0 <= ordinal < self.devices:
            return 101
        out.contents.value = ordinal
        return 0

    def cuDeviceGetName(self, buf: Any, size: int, dev: int) -> int:
        buf.value = self.name
        return 0

    def cuDeviceGetPCIBusId(self, buf: Any, size: int, dev: int) -> int:
        buf.value = f"0000:{0x3B + dev:02X}:00.0".encode()
        return 0

    def cuDeviceTotalMem_v2(self, out: Any, dev: int) -> int:
        out.contents.value = self.total
        return 0

    def cuDevicePrimaryCtxRetain(self, out: Any, dev: int) -> int:
        self._log("cuDevicePrimaryCtxRetain")
        self.contexts += 1
        self.free_bytes -= self.context_cost
        out.contents.value = 0x1000 + dev
        return 0

    def cuDevicePrimaryCtxRelease_v2(self, dev: int) -> int:
        return 0

    def cuCtxSetCurrent(self, ctx: Any) -> int:
        return 0

    def cuMemGetInfo_v2(self, free: Any, total: Any) -> int:
        free.contents.value = self.free_bytes
        total.contents.value = self.total
        return 0

    def cuMemAlloc_v2(self, out: Any, size: int) -> int:
        size = int(size)
        self.calls.append(f"alloc {size // MIB}")
        if self.alloc_error is not None:
            return self.alloc_error
        if size > self.free_bytes:
            return 2
        self.free_bytes -= size
        address = self._next
        self._next += size
        self.allocations[address] = size
        out.contents.value = address
        return 0

    def cuMemFree_v2(self, address: Any) -> int:
        address = int(getattr(address, "value", address))
        size = self.allocations.pop(address, None)
        if size is None:
            return 1  # CUDA_ERROR_INVALID_VALUE: not an allocation of ours
        self.free_bytes += size
        return 0

    def cuGetErrorName(self, code: int, out: Any) -> int:
        name = _ERROR_NAMES.get(int(code))
        if name is None:
            return 1
        out.contents.value = name
        return 0


def fake_cuda(**settings: Any) -> Cuda:
    return Cuda(lib=FakeLibcuda(**settings))


# The real stressor process over FakeLibcuda: its settings come from FAKE_CUDA (JSON) in the env.
_CHILD = (
    "import json, os, sys; sys.path.insert(0, {root!r}); "
    "from tests.unit.test_gpu_fakes import fake_cuda; from harness.gpu import stressor; "
    "sys.exit(stressor.main(sys.argv[1:], cuda=fake_cuda(**json.loads(os.environ.get('FAKE_CUDA', '{{}}')))))"
)


def fake_stressor_command() -> tuple[str, ...]:
    return (sys.executable, "-c", _CHILD.format(root=str(ROOT)))


def fake_cuda_env(**settings: Any) -> str:
    return json.dumps(settings)


# --- pynvml


class FakeNVMLError(Exception):
    def __init__(self, value: int):
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass
class FakeGpu:
    used: int = 5 * GIB
    total: int = 80 * GIB
    util: int = 73
    mem_util: int = 41
    temp: int = 61
    power_mw: int = 312_500
    throttle: int = 0x4  # sw_power_cap
    compute: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, bytes)
    graphics: list[tuple[int, int | None]] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)  # pynvml function names answering NOT_SUPPORTED
    broken: set[str] = field(default_factory=set)  # ... answering NVML_ERROR_UNKNOWN
    old_driver: bool = False  # no nvmlDeviceGetCurrentClocksEventReasons symbol
    name: str = "NVIDIA H200"


class FakeNvml:
    NVML_ERROR_NO_PERMISSION = 4
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_TIMEOUT = 10
    NVML_ERROR_FUNCTION_NOT_FOUND = 13
    NVML_TEMPERATURE_GPU = 0
    nvmlEventTypeXidCriticalError = 0x8
    NVMLError = FakeNVMLError

    def __init__(self, gpus: list[FakeGpu]):
        self.gpus = gpus
        self.events: queue.Queue[Any] = queue.Queue()
        self.registered: list[int] = []
        self.freed_sets = 0
        self.shutdowns = 0
        self.calls: list[str] = []

    def _gpu(self, handle: Any, call: str) -> FakeGpu:
        self.calls.append(call)
        gpu = self.gpus[handle.index]
        if call in gpu.unsupported:
            raise FakeNVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        if call in gpu.broken:
            raise FakeNVMLError(999)
        return gpu

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return SimpleNamespace(index=index)

    def nvmlDeviceGetIndex(self, handle: Any) -> int:
        return int(handle.index)

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._gpu(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return f"GPU-{handle.index:08d}"

    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any:
        return SimpleNamespace(busId=f"00000000:{0x3B + handle.index:02X}:00.0".encode())

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(used=gpu.used, total=gpu.total, free=gpu.total - gpu.used)

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=gpu.util, memory=gpu.mem_util)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._gpu(handle, "nvmlDeviceGetTemperature").temp

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._gpu(handle, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetCurrentClocksEventReasons")
        if gpu.old_driver:
            raise FakeNVMLError(self.NVML_ERROR_FUNCTION_NOT_FOUND)
        return gpu.throttle

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Any) -> int:
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").throttle

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        gpu = self._gpu(handle, "nvmlDeviceGetComputeRunningProcesses")
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in gpu.compute]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list[Any]:
        gpu = self._gpu(handle, "nvmlDeviceGetGraphicsRunningProcesses")
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in gpu.graphics]

    def nvmlEventSetCreate(self) -> Any:
        return SimpleNamespace(kind="event set")

    def nvmlDeviceRegisterEvents(self, handle: Any, kinds: int, event_set: Any) -> None:
        self._gpu(handle, "nvmlDeviceRegisterEvents")
        assert kinds == self.nvmlEventTypeXidCriticalError
        self.registered.append(handle.index)

    def nvmlEventSetWait_v2(self, event_set: Any, timeout_ms: int) -> Any:
        try:
            item = self.events.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            raise FakeNVMLError(self.NVML_ERROR_TIMEOUT) from None
        if isinstance(item, BaseException):
            raise item
        return item

    def nvmlEventSetFree(self, event_set: Any) -> None:
        self.freed_sets += 1

    def xid(self, index: int, xid: int) -> None:
        """Queue a critical Xid event as nvmlEventSetWait_v2 returns it (c_nvmlEventData_t)."""
        self.events.put(SimpleNamespace(device=SimpleNamespace(index=index), eventType=0x8, eventData=xid,
                                        gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF))


# --- the stand-ins answer as the real libraries do


def test_fake_libcuda_speaks_through_real_ctypes_pointers() -> None:
    lib = FakeLibcuda(free=GIB)
    out = ctypes.c_uint64()
    assert lib.cuMemAlloc_v2(ctypes.pointer(out), 256 * MIB) == 0 and out.value in lib.allocations
    assert lib.cuMemAlloc_v2(ctypes.pointer(ctypes.c_uint64()), 2 * GIB) == 2  # more than is free
    assert lib.cuMemFree_v2(ctypes.c_uint64(out.value)) == 0 and lib.free_bytes == GIB


def test_fake_nvml_waits_then_times_out_like_nvml() -> None:
    nvml = FakeNvml([FakeGpu()])
    started = time.monotonic()
    with pytest.raises(FakeNVMLError) as info:
        nvml.nvmlEventSetWait_v2(None, 50)
    assert info.value.value == nvml.NVML_ERROR_TIMEOUT
    assert time.monotonic() - started >= 0.04
