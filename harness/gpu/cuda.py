"""The CUDA driver API through `ctypes`: just what the GPU memory stressor and its device check need.

Only `libcuda.so.1`, which the NVIDIA driver installs, is loaded: no CUDA toolkit, no torch. The
`_v2` entry points are the ones `cuda.h` maps `cuMemAlloc`, `cuMemFree`, `cuMemGetInfo` and
`cuDeviceTotalMem` to (64-bit sizes). Every call is checked; a failure is a `CudaError` naming the
call and the driver's own error name (`CUDA_ERROR_OUT_OF_MEMORY`), so a report says what the
driver said.

Standard library only, and no syntax newer than the Python on a lent GPU machine: the device
check (bench/gpu_device_check.py) imports this module there without the harness's packages.
Tests pass a stand-in for the loaded library (`Cuda(lib=...)`): any object whose attributes are
callables taking the same `ctypes` arguments and returning the driver's result codes.
"""

from __future__ import annotations

import ctypes
from typing import Any

LIBRARY = "libcuda.so.1"

SUCCESS = 0
OUT_OF_MEMORY = 2
NOT_INITIALIZED = 3
STUB_LIBRARY = 34  # the toolkit's stub libcuda: a build machine, not a driver
NO_DEVICE = 100
INVALID_DEVICE = 101

# Names for the codes that matter here, for when cuGetErrorName itself cannot answer (cuda.h).
_NAMES = {
    0: "CUDA_SUCCESS", 1: "CUDA_ERROR_INVALID_VALUE", 2: "CUDA_ERROR_OUT_OF_MEMORY",
    3: "CUDA_ERROR_NOT_INITIALIZED", 4: "CUDA_ERROR_DEINITIALIZED", 34: "CUDA_ERROR_STUB_LIBRARY",
    46: "CUDA_ERROR_DEVICE_UNAVAILABLE", 100: "CUDA_ERROR_NO_DEVICE", 101: "CUDA_ERROR_INVALID_DEVICE",
    201: "CUDA_ERROR_INVALID_CONTEXT", 304: "CUDA_ERROR_OPERATING_SYSTEM", 700: "CUDA_ERROR_ILLEGAL_ADDRESS",
    719: "CUDA_ERROR_LAUNCH_FAILED", 803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
    804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE", 999: "CUDA_ERROR_UNKNOWN",
}

_P = ctypes.POINTER
# name -> (argtypes); every one returns CUresult (an int). Declared so 64-bit pointers and sizes
# are passed as such: without argtypes ctypes would pass a Python int as a C int.
_SIGNATURES: dict[str, tuple[Any, ...]] = {
    "cuInit": (ctypes.c_uint,),
    "cuDriverGetVersion": (_P(ctypes.c_int),),
    "cuDeviceGetCount": (_P(ctypes.c_int),),
    "cuDeviceGet": (_P(ctypes.c_int), ctypes.c_int),
    "cuDeviceGetName": (ctypes.c_char_p, ctypes.c_int, ctypes.c_int),
    "cuDeviceGetPCIBusId": (ctypes.c_char_p, ctypes.c_int, ctypes.c_int),
    "cuDeviceTotalMem_v2": (_P(ctypes.c_size_t), ctypes.c_int),
    "cuDevicePrimaryCtxRetain": (_P(ctypes.c_void_p), ctypes.c_int),
    "cuDevicePrimaryCtxRelease_v2": (ctypes.c_int,),
    "cuCtxSetCurrent": (ctypes.c_void_p,),
    "cuCtxSynchronize": (),
    "cuMemGetInfo_v2": (_P(ctypes.c_size_t), _P(ctypes.c_size_t)),
    "cuMemAlloc_v2": (_P(ctypes.c_uint64), ctypes.c_size_t),
    "cuMemFree_v2": (ctypes.c_uint64,),
    "cuGetErrorName": (ctypes.c_int, _P(ctypes.c_char_p)),
    "cuModuleLoadData": (_P(ctypes.c_void_p), ctypes.c_char_p),
    "cuModuleGetFunction": (_P(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_char_p),
    "cuLaunchKernel": (ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
                       ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p,
                       _P(ctypes.c_void_p), _P(ctypes.c_void_p)),
}


class CudaError(Exception):
    """A driver call that did not return CUDA_SUCCESS."""

    def __init__(self, call: str, code: int, name: str):
        super().__init__(f"{call}: {name} ({code})")
        self.call = call
        self.code = code
        self.name = name


class DriverMissing(Exception):
    """libcuda.so.1 could not be loaded: no NVIDIA driver on this machine (or not in this container)."""


class Cuda:
    """One process's view of the driver. Not thread-safe (the stressor is single-threaded)."""

    def __init__(self, lib: Any = None, library: str = LIBRARY):
        if lib is None:
            try:
                lib = ctypes.CDLL(library)
            except OSError as exc:
                raise DriverMissing(f"{library} not found ({exc})") from None
        self.lib = lib
        self._fns: dict[str, Any] = {}

    def _fn(self, name: str) -> Any:
        fn = self._fns.get(name)
        if fn is None:
            fn = getattr(self.lib, name)  # AttributeError: a driver too old for this entry point
            if hasattr(fn, "argtypes"):  # a real ctypes function (a stand-in is a plain callable)
                fn.argtypes = list(_SIGNATURES.get(name, ()))
                fn.restype = ctypes.c_int
            self._fns[name] = fn
        return fn

    def call(self, name: str, *args: Any) -> None:
        """Call one entry point; raise CudaError unless it returned CUDA_SUCCESS."""
        code = int(self._fn(name)(*args))
        if code != SUCCESS:
            raise CudaError(name, code, self.error_name(code))

    def error_name(self, code: int) -> str:
        out = ctypes.c_char_p()
        try:
            if int(self._fn("cuGetErrorName")(code, ctypes.pointer(out))) == SUCCESS and out.value:
                return out.value.decode("ascii", "replace")
        except (AttributeError, OSError):
            pass
        return _NAMES.get(code, f"CUDA error {code}")

    # --- the calls, typed

    def init(self) -> None:
        self.call("cuInit", 0)

    def driver_version(self) -> int:
        out = ctypes.c_int()
        self.call("cuDriverGetVersion", ctypes.pointer(out))
        return out.value

    def device_count(self) -> int:
        out = ctypes.c_int()
        self.call("cuDeviceGetCount", ctypes.pointer(out))
        return out.value

    def device(self, ordinal: int) -> int:
        out = ctypes.c_int()
        self.call("cuDeviceGet", ctypes.pointer(out), ordinal)
        return out.value

    def device_name(self, dev: int) -> str:
        buf = ctypes.create_string_buffer(256)
        self.call("cuDeviceGetName", buf, len(buf), dev)
        return buf.value.decode("utf-8", "replace")

    def pci_bus_id(self, dev: int) -> str:
        """`0000:3B:00.0`: the same bus id NVML reports, to tell which NVML device this is."""
        buf = ctypes.create_string_buffer(64)
        self.call("cuDeviceGetPCIBusId", buf, len(buf), dev)
        return buf.value.decode("ascii", "replace")

    def total_memory(self, dev: int) -> int:
        out = ctypes.c_size_t()
        self.call("cuDeviceTotalMem_v2", ctypes.pointer(out), dev)
        return out.value

    def use_primary_context(self, dev: int) -> int:
        """Retain the device's primary context (the one the runtime API and frameworks share) and
        make it current; returns its handle."""
        ctx = ctypes.c_void_p()
        self.call("cuDevicePrimaryCtxRetain", ctypes.pointer(ctx), dev)
        self.call("cuCtxSetCurrent", ctx)
        return ctx.value or 0

    def release_primary_context(self, dev: int) -> None:
        self.call("cuDevicePrimaryCtxRelease_v2", dev)

    def memory_info(self) -> tuple[int, int]:
        """(free, total) bytes of the current context's device, as the driver sees them now."""
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self.call("cuMemGetInfo_v2", ctypes.pointer(free), ctypes.pointer(total))
        return free.value, total.value

    def alloc(self, size: int) -> int:
        """Device memory of `size` bytes (cuMemAlloc backs it at once); returns its address."""
        ptr = ctypes.c_uint64()
        self.call("cuMemAlloc_v2", ctypes.pointer(ptr), size)
        return ptr.value

    def free(self, address: int) -> None:
        self.call("cuMemFree_v2", ctypes.c_uint64(address))

    def synchronize(self) -> None:
        self.call("cuCtxSynchronize")

