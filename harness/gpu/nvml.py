"""Reading NVML (the `pynvml` module of nvidia-ml-py): one sample of every device, field by field.

A field a device does not support (power on many boards, process lists in some containers and
virtual machines, the newer clock-reason call on an older driver) is skipped quietly from then on
for that device and named in the summary; any other error costs that one field of that one
sample, is counted, and the rest of the sample still comes. The series keys:

    mem_used{gpu=N}  mem_total{gpu=N}   bytes            util{gpu=N}  mem_util{gpu=N}   percent
    temp_c{gpu=N}    power_w{gpu=N}                      throttle{gpu=N}  clock-reason bitmask
    mem{role=R}      device memory the role's processes hold, all devices (compute and graphics
                     lists; a process in both is counted once)

Standard library only besides the module passed in: the device check uses it with the real
pynvml, the unit tests with a stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

# NVML's return codes that mean "this device or driver cannot tell", not "something broke".
NOT_SUPPORTED, NO_PERMISSION, FUNCTION_NOT_FOUND = 3, 4, 13
TEMPERATURE_GPU = 0

# Clock event ("throttle") reasons, nvml.h: the bits of nvmlDeviceGetCurrentClocksEventReasons.
THROTTLE_BITS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting",
}
# Reasons that say nothing is wrong: an idle GPU, clocks someone set, boost synchronised across GPUs.
BENIGN_THROTTLE = frozenset({"gpu_idle", "applications_clocks_setting", "sync_boost",
                             "display_clock_setting"})
# The newer name first (drivers from 535 on); the older one is the same call under its old name.
THROTTLE_CALLS = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
PROCESS_CALLS = {"compute_procs": "nvmlDeviceGetComputeRunningProcesses",
                 "graphics_procs": "nvmlDeviceGetGraphicsRunningProcesses"}


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


def decode_throttle(mask: int) -> list[str]:
    """The reason names of a bitmask, lowest bit first; a bit NVML added later shows as `bit_0x...`."""
    return [THROTTLE_BITS.get(1 << i, f"bit_{1 << i:#x}") for i in range(64) if mask >> i & 1]


def is_unsupported(nvml: Any, exc: BaseException) -> bool:
    """True for an NVMLError meaning the device, driver or our permissions cannot give this field,
    and for a pynvml too old to have the call at all."""
    if isinstance(exc, AttributeError):
        return True
    codes = {getattr(nvml, name, default) for name, default in (
        ("NVML_ERROR_NOT_SUPPORTED", NOT_SUPPORTED), ("NVML_ERROR_NO_PERMISSION", NO_PERMISSION),
        ("NVML_ERROR_FUNCTION_NOT_FOUND", FUNCTION_NOT_FOUND))}
    return getattr(exc, "value", None) in codes


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass
class Reading:
    values: dict[str, float]  # the `gpu` series' keys, above
    throttle: dict[int, int]  # device index -> clock-reason bitmask, where known


@dataclass
class DeviceReader:
    nvml: Any
    unsupported: dict[int, set[str]] = field(default_factory=dict)  # device -> fields skipped
    errors: int = 0  # fields that failed for another reason, one sample each
    last_error: str | None = None
    _handles: dict[int, Any] = field(default_factory=dict)
    _throttle_call: dict[int, str] = field(default_factory=dict)

    def handle(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = self.nvml.nvmlDeviceGetHandleByIndex(index)
        return self._handles[index]

    def count(self) -> int:
        return int(self.nvml.nvmlDeviceGetCount())

    def devices(self) -> list[dict[str, Any]]:
        """Name, UUID, PCI bus id and memory of each device, where the driver tells them."""
        out = []
        for index in range(self.count()):
            handle = self.handle(index)
            info: dict[str, Any] = {"index": index}
            for key, read in (("name", lambda h: _text(self.nvml.nvmlDeviceGetName(h))),
                              ("uuid", lambda h: _text(self.nvml.nvmlDeviceGetUUID(h))),
                              ("pci_bus_id", lambda h: _text(self.nvml.nvmlDeviceGetPciInfo(h).busId)),
                              ("total", lambda h: int(self.nvml.nvmlDeviceGetMemoryInfo(h).total))):
                try:
                    info[key] = read(handle)
                except Exception:  # noqa: BLE001 - a description is best effort
                    info[key] = None
            out.append(info)
        return out

    def read(self, role_of: dict[int, str]) -> Reading:
        """One sample of every device. Raises only if NVML cannot even count its devices."""
        values: dict[str, float] = {}
        throttle: dict[int, int] = {}
        held_by_pid: dict[int, float] = {}
        for index in range(self.count()):
            handle = self.handle(index)
            for name, reader in self._fields():
                got = self._field(index, name, partial(reader, handle))
                if got is not None:
                    values.update({f"{key}{{gpu={index}}}": value for key, value in got.items()})
            mask = self._field(index, "throttle", partial(self._throttle, index, handle))
            if mask is not None:
                throttle[index] = mask
                values[f"throttle{{gpu={index}}}"] = float(mask)
            device_held: dict[int, float] = {}
            for name, call in PROCESS_CALLS.items():
                procs = self._field(index, name, partial(self._call, call, handle))
                for proc in procs or []:
                    used = getattr(proc, "usedGpuMemory", None)
                    if used is not None:  # None: NVML cannot tell (e.g. under some hypervisors)
                        device_held[proc.pid] = max(device_held.get(proc.pid, 0.0), float(used))
            for pid, used in device_held.items():
                held_by_pid[pid] = held_by_pid.get(pid, 0.0) + used
        for pid, used in held_by_pid.items():
            role = role_of.get(pid)
            if role is not None:
                key = f"mem{{role={role}}}"
                values[key] = values.get(key, 0.0) + used
        return Reading(values, throttle)

    def _call(self, name: str, *args: Any) -> Any:
        return getattr(self.nvml, name)(*args)  # AttributeError (a pynvml without it): unsupported

    def _fields(self) -> list[tuple[str, Callable[[Any], dict[str, float]]]]:
        nvml = self.nvml

        def memory(h: Any) -> dict[str, float]:
            info = nvml.nvmlDeviceGetMemoryInfo(h)
            return {"mem_used": float(info.used), "mem_total": float(info.total)}

        def utilisation(h: Any) -> dict[str, float]:
            rates = nvml.nvmlDeviceGetUtilizationRates(h)
            out = {"util": float(rates.gpu)}
            if getattr(rates, "memory", None) is not None:
                out["mem_util"] = float(rates.memory)
            return out

        def temperature(h: Any) -> dict[str, float]:
            sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", TEMPERATURE_GPU)
            return {"temp_c": float(nvml.nvmlDeviceGetTemperature(h, sensor))}

        def power(h: Any) -> dict[str, float]:
            return {"power_w": float(nvml.nvmlDeviceGetPowerUsage(h)) / 1000.0}  # NVML says milliwatts

        return [("memory", memory), ("utilisation", utilisation), ("temperature", temperature),
                ("power", power)]

    def _throttle(self, index: int, handle: Any) -> int:
        """The clock-reason bitmask through whichever of the two calls this driver has."""
        known = self._throttle_call.get(index)
        for call in (known,) if known else THROTTLE_CALLS:
            try:
                mask = int(getattr(self.nvml, call)(handle))
            except Exception as exc:
                if is_unsupported(self.nvml, exc) and not known:
                    continue  # try the other name
                raise
            self._throttle_call[index] = call
            return mask
        raise AttributeError("no clock-reason call")  # neither: unsupported, skipped from now on

    def _field(self, index: int, name: str, read: Callable[[], Any]) -> Any:
        skipped = self.unsupported.setdefault(index, set())
        if name in skipped:
            return None
        try:
            return read()
        except Exception as exc:  # noqa: BLE001 - one field of one sample; the observer goes on
            if is_unsupported(self.nvml, exc):
                skipped.add(name)
            else:
                self.errors += 1
                self.last_error = f"gpu {index} {name}: {type(exc).__name__}: {exc}"
            return None
