"""NVML's critical Xid events: the driver's own word that a GPU hit an error (Xid 31, a memory page
fault; 48, a double-bit ECC error; 79, fallen off the bus...).

`XidWatch.open()` makes an NVML event set and registers `nvmlEventTypeXidCriticalError` on each
device (a device or a virtual machine that cannot deliver them is named in `unsupported`, not an
error). `wait_once(timeout_ms)` blocks in `nvmlEventSetWait_v2` for at most that long and returns
one event or None: it must run on a real OS thread, never on the gevent loop (the observer calls
it through gevent's thread pool; the device check from a plain thread). Standard library only
besides the module passed in.
"""

from __future__ import annotations

from typing import Any

from harness.gpu.nvml import is_unsupported

XID_CRITICAL = 0x8  # nvmlEventTypeXidCriticalError
TIMEOUT = 10  # NVML_ERROR_TIMEOUT: nothing happened while we waited
NO_INSTANCE = 0xFFFFFFFF  # gpuInstanceId / computeInstanceId outside MIG

# What the common critical Xids mean (NVIDIA's Xid catalogue), for the report; others by number.
XID_MEANINGS = {
    13: "graphics engine exception", 31: "GPU memory page fault", 43: "GPU stopped processing",
    45: "preemptive cleanup, due to previous errors", 48: "double-bit ECC error",
    63: "ECC page retirement or row remapping recorded", 64: "ECC page retirement or row remapper failure",
    74: "NVLink error", 79: "GPU has fallen off the bus", 92: "high single-bit ECC error rate",
    94: "contained ECC error", 95: "uncontained ECC error", 119: "GSP RPC timeout", 120: "GSP error",
}


class XidWatch:
    def __init__(self, nvml: Any, handles: dict[int, Any]):
        self.nvml = nvml
        self.handles = handles
        self.event_set: Any = None
        self.watching: list[int] = []
        self.unsupported: list[int] = []
        self.error: str | None = None
        self.errors = 0
        self.waits = 0

    def open(self) -> list[int]:
        """Register every device that can; returns the indexes being watched."""
        nvml = self.nvml
        try:
            self.event_set = nvml.nvmlEventSetCreate()
        except Exception as exc:  # noqa: BLE001 - no events here; the samples still come
            self._failed("nvmlEventSetCreate", exc)
            return []
        kind = getattr(nvml, "nvmlEventTypeXidCriticalError", XID_CRITICAL)
        for index, handle in self.handles.items():
            try:
                nvml.nvmlDeviceRegisterEvents(handle, kind, self.event_set)
                self.watching.append(index)
            except Exception as exc:  # noqa: BLE001 - this device only
                self._failed("nvmlDeviceRegisterEvents", exc, index)
        if not self.watching:
            self.close()
        return list(self.watching)

    def _failed(self, call: str, exc: BaseException, index: int | None = None) -> None:
        if index is not None and is_unsupported(self.nvml, exc):
            self.unsupported.append(index)
            return
        self.errors += 1
        where = "" if index is None else f" (gpu {index})"
        self.error = f"{call}{where}: {type(exc).__name__}: {exc}"

    def wait_once(self, timeout_ms: int) -> dict[str, Any] | None:
        """Block up to `timeout_ms` for one event. None on a timeout; raises on any other error."""
        if self.event_set is None:
            return None
        wait = getattr(self.nvml, "nvmlEventSetWait_v2", None) or self.nvml.nvmlEventSetWait
        self.waits += 1
        try:
            data = wait(self.event_set, timeout_ms)
        except Exception as exc:
            if getattr(exc, "value", None) == getattr(self.nvml, "NVML_ERROR_TIMEOUT", TIMEOUT):
                return None
            self._failed("nvmlEventSetWait_v2", exc)
            raise
        return self.describe(data)

    def describe(self, data: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"device": self._index(data.device), "xid": int(data.eventData),
                                 "event_type": int(data.eventType)}
        event["meaning"] = XID_MEANINGS.get(event["xid"])
        for attr, key in (("gpuInstanceId", "gpu_instance"), ("computeInstanceId", "compute_instance")):
            value = getattr(data, attr, NO_INSTANCE)
            if value is not None and int(value) != NO_INSTANCE:
                event[key] = int(value)
        return event

    def _index(self, handle: Any) -> int | None:
        try:
            return int(self.nvml.nvmlDeviceGetIndex(handle))
        except Exception:  # noqa: BLE001 - an event from a device NVML cannot name still counts
            return next((i for i, h in self.handles.items() if h == handle), None)

    def close(self) -> None:
        if self.event_set is not None:
            try:
                self.nvml.nvmlEventSetFree(self.event_set)
            except Exception:  # noqa: BLE001 - freeing is best effort
                pass
            self.event_set = None
