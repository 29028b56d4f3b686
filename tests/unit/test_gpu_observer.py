"""The NVML observer over a stand-in pynvml: what one sample holds, fields a device does not support
skipped quietly (and not asked again), per-role device memory from both process lists, clock
reasons decoded and journaled on change, critical Xid events journaled from the waiting thread."""

from pathlib import Path
from typing import Any

import gevent
import pytest

from harness.gpu.nvml import DeviceReader, decode_throttle
from harness.gpu.observer import GpuObserver
from harness.procs import ProcessId
from tests.unit.observer_helpers import context, records
from tests.unit.test_gpu_fakes import GIB, FakeGpu, FakeNvml, FakeNVMLError

ROLES = {"server": [ProcessId(100, 1.0), ProcessId(101, 1.0)], "stub": [ProcessId(200, 1.0)]}


def _observer(nvml: FakeNvml, **kwargs: Any) -> GpuObserver:
    return GpuObserver(roles=lambda: ROLES, loader=lambda: nvml, **kwargs)  # type: ignore[arg-type, return-value]


def _sampled(tmp_path: Path, nvml: FakeNvml, times: int = 1) -> tuple[GpuObserver, list[dict[str, Any]]]:
    ctx = context(tmp_path)
    observer = _observer(nvml)
    observer.ctx, observer.nvml = ctx, nvml  # type: ignore[assignment]
    for _ in range(times):
        observer.sample()
    return observer, records(ctx)


def _series(recs: list[dict[str, Any]]) -> list[dict[str, float]]:
    return [r["values"] for r in recs if r["type"] == "series" and r["name"] == "gpu"]


def test_one_sample_of_two_devices_and_the_roles_memory(tmp_path: Path) -> None:
    nvml = FakeNvml([
        FakeGpu(used=5 * GIB, compute=[(100, 3 * GIB), (999, GIB)], graphics=[(100, 3 * GIB)]),  # 100 in both
        FakeGpu(used=9 * GIB, util=12, temp=70, power_mw=250_000, throttle=0,
                compute=[(101, 2 * GIB), (200, None)]),  # None: NVML cannot tell what 200 holds
    ])
    _, recs = _sampled(tmp_path, nvml)
    (values,) = _series(recs)
    assert values == {
        "mem_used{gpu=0}": float(5 * GIB), "mem_total{gpu=0}": float(80 * GIB), "util{gpu=0}": 73.0,
        "mem_util{gpu=0}": 41.0, "temp_c{gpu=0}": 61.0, "power_w{gpu=0}": 312.5, "throttle{gpu=0}": 4.0,
        "mem_used{gpu=1}": float(9 * GIB), "mem_total{gpu=1}": float(80 * GIB), "util{gpu=1}": 12.0,
        "mem_util{gpu=1}": 41.0, "temp_c{gpu=1}": 70.0, "power_w{gpu=1}": 250.0, "throttle{gpu=1}": 0.0,
        # server: pid 100 once (3 GiB, listed as compute and graphics) + pid 101 on the other device
        "mem{role=server}": float(5 * GIB),
    }


def test_unsupported_fields_are_skipped_quietly_and_not_asked_again(tmp_path: Path) -> None:
    nvml = FakeNvml([FakeGpu(), FakeGpu(unsupported={"nvmlDeviceGetPowerUsage",
                                                     "nvmlDeviceGetGraphicsRunningProcesses",
                                                     "nvmlDeviceGetTemperature"})])
    observer, recs = _sampled(tmp_path, nvml, times=3)
    first = _series(recs)[0]
    assert "power_w{gpu=1}" not in first and "temp_c{gpu=1}" not in first and "power_w{gpu=0}" in first
    assert first["mem_used{gpu=1}"] == float(5 * GIB)  # the rest of the device still comes
    assert len(_series(recs)) == 3
    assert nvml.calls.count("nvmlDeviceGetPowerUsage") == 3 + 1  # gpu0 three times, gpu1 once
    summary = observer.stop()
    assert summary["unsupported"] == {"1": ["graphics_procs", "power", "temperature"]}
    assert summary["errors"] == 0 and summary["samples"] == 3


def test_a_broken_field_costs_that_field_of_that_sample(tmp_path: Path) -> None:
    nvml = FakeNvml([FakeGpu(broken={"nvmlDeviceGetUtilizationRates"})])
    observer, recs = _sampled(tmp_path, nvml, times=2)
    assert all("util{gpu=0}" not in v and "mem_used{gpu=0}" in v for v in _series(recs))
    assert nvml.calls.count("nvmlDeviceGetUtilizationRates") == 2  # not given up on: it may come back
    summary = observer.stop()
    assert summary["errors"] == 2 and "gpu 0 utilisation" in summary["last_error"]
    assert summary["unsupported"] == {}


def test_nvml_that_cannot_count_its_devices_loses_one_sample(tmp_path: Path) -> None:
    nvml = FakeNvml([FakeGpu()])
    ctx = context(tmp_path)
    observer = _observer(nvml)
    observer.ctx, observer.nvml = ctx, nvml  # type: ignore[assignment]

    def lost() -> int:
        raise FakeNVMLError(15)  # NVML_ERROR_GPU_IS_LOST

    nvml.nvmlDeviceGetCount = lost  # type: ignore[method-assign]
    observer.sample()
    assert observer.errors == 1 and _series(records(ctx)) == []


@pytest.mark.parametrize(("mask", "names"), [
    (0, []), (0x4, ["sw_power_cap"]), (0x1 | 0x40, ["gpu_idle", "hw_thermal_slowdown"]),
    (0x8 | 0x80, ["hw_slowdown", "hw_power_brake_slowdown"]), (0x800, ["bit_0x800"]),
])
def test_clock_reasons_are_decoded(mask: int, names: list[str]) -> None:
    assert decode_throttle(mask) == names


def test_an_older_driver_answers_the_older_clock_reason_call() -> None:
    nvml = FakeNvml([FakeGpu(old_driver=True, throttle=0x20)])
    reader = DeviceReader(nvml)
    assert reader.read({}).throttle == {0: 0x20}
    assert reader.read({}).throttle == {0: 0x20}
    assert nvml.calls.count("nvmlDeviceGetCurrentClocksEventReasons") == 1  # found once, remembered
    assert reader.unsupported == {0: set()}


def test_clock_reasons_are_journaled_when_they_change(tmp_path: Path) -> None:
    nvml = FakeNvml([FakeGpu(throttle=0x4)])
    ctx = context(tmp_path)
    observer = _observer(nvml)
    observer.ctx, observer.nvml = ctx, nvml  # type: ignore[assignment]
    observer.sample()
    observer.sample()  # unchanged: no event
    nvml.gpus[0].throttle = 0x1 | 0x40
    observer.sample()
    events = [r for r in records(ctx) if r.get("event") == "gpu_throttle"]
    assert [(e["mask"], e["reasons"], e["previous"]) for e in events] == [
        (0x4, ["sw_power_cap"], []), (0x41, ["gpu_idle", "hw_thermal_slowdown"], ["sw_power_cap"])]


def _until(predicate: Any, seconds: float = 5.0) -> None:
    deadline = gevent.get_hub().loop.now() + seconds
    while not predicate() and gevent.get_hub().loop.now() < deadline:
        gevent.sleep(0.02)


def test_a_critical_xid_is_journaled_with_its_device(tmp_path: Path) -> None:
    nvml = FakeNvml([FakeGpu(), FakeGpu(unsupported={"nvmlDeviceRegisterEvents"})])
    ctx = context(tmp_path)
    observer = _observer(nvml, interval_s=0.05, xid_wait_ms=50)
    observer.start(ctx)
    nvml.xid(0, 79)
    _until(lambda: observer.xid_events == 1 and observer.samples >= 2)
    summary = observer.stop()
    recs = records(ctx)
    (xid,) = [r for r in recs if r.get("event") == "gpu_xid"]
    assert (xid["device"], xid["xid"], xid["meaning"]) == (0, 79, "GPU has fallen off the bus")
    assert "gpu_instance" not in xid  # not MIG
    assert summary["xid"] == {"watching": [0], "unsupported": [1], "events": 1, "error": None}
    (devices,) = [r for r in recs if r.get("event") == "gpu_devices"]
    assert [d["name"] for d in devices["devices"]] == ["NVIDIA H200", "NVIDIA H200"]
    assert devices["devices"][1]["pci_bus_id"] == "00000000:3C:00.0"
    assert nvml.registered == [0] and nvml.freed_sets == 1 and nvml.shutdowns == 1
    assert len(_series(recs)) >= 2


def test_xid_waits_that_keep_failing_stop_the_watcher_not_the_samples(tmp_path: Path) -> None:
    nvml = FakeNvml([FakeGpu()])
    for _ in range(5):
        nvml.events.put(FakeNVMLError(999))
    ctx = context(tmp_path)
    observer = _observer(nvml, interval_s=0.05, xid_wait_ms=20)
    observer.start(ctx)
    _until(lambda: observer.xid_greenlet is not None and observer.xid_greenlet.dead)
    samples = observer.samples
    _until(lambda: observer.samples > samples)
    summary = observer.stop()
    (stopped,) = [r for r in records(ctx) if r.get("event") == "gpu_xid_watch_stopped"]
    assert "nvmlEventSetWait_v2" in stopped["error"] and observer.samples > samples
    assert summary["xid"]["events"] == 0


def test_without_nvml_the_observer_is_silently_absent(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    observer = GpuObserver(loader=lambda: None)
    observer.start(ctx)
    assert observer.stop() == {"available": False} and records(ctx) == []
