"""The GPUs as the run goes, through NVML (pynvml), where a GPU and its driver exist.

pynvml is imported only when the watcher starts; without the package, the driver or a GPU the
watcher is silently absent: no events, no series, `available: false` in its summary. With one:

- `gpu_devices` at start: each device's name, UUID, PCI bus id and memory;
- the `gpu` series once a second (harness.gpu.nvml says what each key is): memory used and
  total, utilisation, temperature, power, the clock-reason bitmask per device, and per stack role
  the device memory its processes hold;
- `gpu_throttle` when a device's clock reasons change (the bitmask and its decoded names);
- `gpu_xid` for each critical Xid event NVML delivers (device, Xid, what it means), from a
  watcher that waits in NVML on one of gevent's pool threads, never on the loop.

A field a device does not support is skipped quietly and named in the summary; a failing call
costs one field of one sample. The memory side (harness.memory.runpart) starts it before the
stack's first start, so the memory a model takes while it loads is seen.
"""

from collections.abc import Callable
from types import ModuleType
from typing import Any

import gevent
from gevent.event import Event

from harness.gpu.nvml import DeviceReader, decode_throttle, load_nvml
from harness.gpu.xid import XidWatch
from harness.observers.base import Observer, ObserverContext
from harness.procs import ProcessId

__all__ = ["GpuObserver", "load_nvml"]

INTERVAL_S = 1.0
XID_WAIT_MS = 500  # how long one wait blocks a pool thread; stop() waits about this long at most
XID_MAX_FAILURES = 5  # waits failing in a row (not timeouts) before the Xid watcher gives up

Roles = Callable[[], dict[str, list[ProcessId]]]
Blocking = Callable[..., Any]


def off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking call on a real OS thread (gevent's pool); only this greenlet waits for it."""
    return gevent.get_hub().threadpool.apply(fn, args)


class GpuObserver(Observer):
    name = "gpu"

    def __init__(self, roles: Roles | None = None, loader: Callable[[], ModuleType | None] = load_nvml,
                 interval_s: float = INTERVAL_S, xid_wait_ms: int = XID_WAIT_MS,
                 blocking: Blocking = off_loop):
        self.roles = roles
        self.loader = loader
        self.interval_s = interval_s
        self.xid_wait_ms = xid_wait_ms
        self.blocking = blocking
        self.nvml: ModuleType | None = None
        self.reader: DeviceReader | None = None
        self.xid: XidWatch | None = None
        self.devices: list[dict[str, Any]] = []
        self.peak_used: dict[str, float] = {}
        self.maxima: dict[str, float] = {}
        self.throttle: dict[int, int] = {}
        self.ctx: ObserverContext | None = None
        self.greenlet: gevent.Greenlet | None = None
        self.xid_greenlet: gevent.Greenlet | None = None
        self.errors = 0
        self.samples = 0
        self.xid_events = 0
        self.xid_failures = 0
        self._stop = Event()

    def start(self, ctx: ObserverContext) -> None:
        self.ctx = ctx
        self.nvml = self.loader()
        if self.nvml is None:
            return
        reader = self._reader()
        try:
            self.devices = reader.devices()
            handles = {d["index"]: reader.handle(d["index"]) for d in self.devices}
        except Exception as exc:  # noqa: BLE001 - counted; the samples may still come
            self.errors += 1
            reader.last_error = f"listing devices: {exc}"
            handles = {}
        ctx.journal.event("gpu_devices", devices=self.devices)
        self.greenlet = gevent.spawn(self._loop)
        self.xid = XidWatch(self.nvml, handles)
        if self.xid.open():
            self.xid_greenlet = gevent.spawn(self._xid_loop)

    def _reader(self) -> DeviceReader:
        if self.reader is None:
            assert self.nvml is not None
            self.reader = DeviceReader(self.nvml)
        return self.reader

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval_s):
                return

    def sample(self) -> None:
        assert self.ctx is not None and self.nvml is not None
        reader = self._reader()
        try:
            reading = self.blocking(reader.read, self._role_of_pid())
        except Exception as exc:  # noqa: BLE001 - NVML could not even count its devices: one sample lost
            self.errors += 1
            reader.last_error = f"{type(exc).__name__}: {exc}"
            return
        self.samples += 1
        for key, value in reading.values.items():
            if key.startswith("mem_used") or key.startswith("mem{"):
                self.peak_used[key] = max(self.peak_used.get(key, 0.0), value)
            elif key.startswith("temp_c") or key.startswith("power_w"):
                self.maxima[key] = max(self.maxima.get(key, value), value)
        self._note_throttle(reading.throttle)
        if reading.values:
            self.ctx.journal.series("gpu", reading.values)

    def _note_throttle(self, masks: dict[int, int]) -> None:
        """An event when a device's clock reasons change (and for the first reading, unless none)."""
        assert self.ctx is not None
        for index, mask in masks.items():
            before = self.throttle.get(index)
            if mask != before and (before is not None or mask != 0):
                self.ctx.journal.event("gpu_throttle", device=index, mask=mask, reasons=decode_throttle(mask),
                                       previous=decode_throttle(before or 0))
            self.throttle[index] = mask

    def poll_xid(self) -> bool:
        """One wait for an Xid event, off the loop. False: stop watching (it keeps failing)."""
        assert self.ctx is not None and self.xid is not None
        try:
            event = self.blocking(self.xid.wait_once, self.xid_wait_ms)
        except Exception:  # noqa: BLE001 - recorded in the watcher; a few in a row and it gives up
            self.xid_failures += 1
            if self.xid_failures >= XID_MAX_FAILURES:
                self.ctx.journal.event("gpu_xid_watch_stopped", error=self.xid.error)
                return False
            return not self._stop.wait(min(1.0, self.xid_wait_ms / 1000))
        self.xid_failures = 0
        if event is not None:
            self.xid_events += 1
            self.ctx.journal.event("gpu_xid", **event)
        return True

    def _xid_loop(self) -> None:
        while not self._stop.is_set() and self.poll_xid():
            pass

    def _role_of_pid(self) -> dict[int, str]:
        if self.roles is None:
            return {}
        return {ident.pid: role for role, idents in self.roles().items() for ident in idents}

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        # Both greenlets end after the NVML call they are in: killing one would leave its pool
        # thread inside NVML (a read, nvmlEventSetWait) while the set is freed and NVML shut down.
        settled = True
        for greenlet in (self.greenlet, self.xid_greenlet):
            if greenlet is not None:
                greenlet.join(timeout=self.xid_wait_ms / 1000 + 2.0)
                settled = settled and greenlet.dead
        if self.greenlet is not None and not self.greenlet.dead:
            self.greenlet.kill(block=False)
        if self.nvml is None:
            return {"available": False}
        if settled:
            if self.xid is not None:
                self.xid.close()
            try:
                self.nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 - shutting down is best effort
                pass
        return self._summary()

    def _summary(self) -> dict[str, Any]:
        reader = self.reader
        xid = self.xid
        unsupported = {str(i): sorted(names) for i, names in (reader.unsupported if reader else {}).items()
                       if names}
        return {
            "available": True, "devices": self.devices, "samples": self.samples, "peak": self.peak_used,
            "max": self.maxima, "errors": self.errors + (reader.errors if reader else 0),
            "last_error": reader.last_error if reader else None, "unsupported": unsupported,
            "xid": None if xid is None else {"watching": xid.watching, "unsupported": xid.unsupported,
                                             "events": self.xid_events, "error": xid.error},
        }
