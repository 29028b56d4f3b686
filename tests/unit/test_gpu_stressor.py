"""The CUDA binding and the GPU memory stressor over a stand-in driver: chunks, an allocation that
runs out half way through a step, fractions of free memory, the probe's refusals, and the real
stressor process started, answered, ended (end of input, SIGTERM) and found again by its pidfile."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.gpu import cuda as cu
from harness.gpu import pidfile, stressor
from harness.gpu.child import StressChild, StressorFailed, probe
from harness.gpu.stressor import Holder, target_of
from tests.unit.test_gpu_fakes import (
    GIB,
    MIB,
    ROOT,
    FakeLibcuda,
    fake_cuda,
    fake_cuda_env,
    fake_stressor_command,
)


def test_the_binding_reads_the_device_and_names_errors_as_the_driver_does() -> None:
    lib = FakeLibcuda(devices=2, total=80 * GIB, free=10 * GIB)
    cuda = cu.Cuda(lib=lib)
    cuda.init()
    assert cuda.device_count() == 2 and cuda.device(1) == 1
    assert cuda.device_name(0) == "Fake H200" and cuda.pci_bus_id(1) == "0000:3C:00.0"
    assert cuda.total_memory(0) == 80 * GIB and cuda.driver_version() == 13000
    cuda.use_primary_context(0)
    assert cuda.memory_info() == (10 * GIB - 512 * MIB, 80 * GIB)
    with pytest.raises(cu.CudaError) as info:
        cuda.alloc(20 * GIB)
    assert (info.value.code, info.value.name) == (2, "CUDA_ERROR_OUT_OF_MEMORY")
    assert info.value.call == "cuMemAlloc_v2"
    with pytest.raises(cu.CudaError, match="CUDA_ERROR_INVALID_DEVICE"):
        cuda.device(5)
    assert cuda.error_name(700) == "CUDA_ERROR_ILLEGAL_ADDRESS"  # the driver could not say: our table
    assert cuda.error_name(12345) == "CUDA error 12345"


def test_no_libcuda_is_driver_missing() -> None:
    with pytest.raises(cu.DriverMissing, match="libcuda-that-is-not-here.so.1 not found"):
        cu.Cuda(library="libcuda-that-is-not-here.so.1")


def test_the_holder_grows_in_chunks_and_shrinks_from_the_last() -> None:
    lib = FakeLibcuda(free=10 * GIB)
    holder = Holder(cu.Cuda(lib=lib), chunk=256 * MIB)
    step = holder.reach(GIB + 100 * MIB)
    assert step == {"target": GIB + 100 * MIB, "held": GIB + 100 * MIB, "chunks": 5, "oom": 0,
                    "capped": False, "error": None}
    assert [size for _, size in holder.chunks] == [256 * MIB] * 4 + [100 * MIB]
    assert holder.reach(600 * MIB)["held"] == 600 * MIB  # freed 100, 256 and 256, then took 88 back
    assert lib.free_bytes == 10 * GIB - 600 * MIB
    assert holder.release() == (600 * MIB, 0) and lib.allocations == {} and lib.free_bytes == 10 * GIB


def test_a_free_the_driver_refuses_is_counted_not_fatal() -> None:
    lib = FakeLibcuda(free=GIB)
    holder = Holder(cu.Cuda(lib=lib), chunk=256 * MIB)
    holder.reach(512 * MIB)
    lib.allocations.pop(next(iter(lib.allocations)))  # the driver no longer knows one (a lost context)
    assert holder.release() == (256 * MIB, 1) and holder.chunks == []


def test_running_out_mid_step_holds_what_it_got_and_counts_the_refusals() -> None:
    lib = FakeLibcuda(free=GIB + 40 * MIB)
    holder = Holder(cu.Cuda(lib=lib), chunk=256 * MIB, min_chunk=16 * MIB)
    step = holder.reach(2 * GIB)
    # 4 chunks of 256 MiB, then 256 is refused, 128 refused, 64 refused, 32 taken, 32 refused, 16 refused
    assert step["held"] == GIB + 32 * MIB and step["capped"] is True and step["error"] is None
    assert step["oom"] == 5 and holder.oom_total == 5
    assert lib.calls == ["alloc 256"] * 5 + ["alloc 128", "alloc 64", "alloc 32", "alloc 32", "alloc 16"]
    assert lib.free_bytes == 8 * MIB  # under the smallest chunk: what the driver could not give
    assert holder.reach(GIB)["oom"] == 0  # shrinking needs no allocation


def test_another_driver_error_stops_the_step_and_is_named() -> None:
    holder = Holder(fake_cuda(alloc_error=999), chunk=256 * MIB)
    step = holder.reach(GIB)
    assert step["held"] == 0 and step["error"] == "CUDA_ERROR_UNKNOWN" and step["oom"] == 0


def test_a_fraction_is_of_the_memory_free_at_the_start() -> None:
    assert target_of('{"fraction": 0.5}', 10 * GIB) == 5 * GIB
    assert target_of('{"amount": 1024}', 10 * GIB) == 1024
    assert target_of("4096", 10 * GIB) == 4096
    assert stressor.parse_bytes("1.5GiB") == 3 << 29 and stressor.parse_bytes("256MiB") == 256 * MIB


@pytest.mark.parametrize(("settings", "device", "reason", "text"), [
    ({"init_result": 100}, 0, "no_device", "CUDA_ERROR_NO_DEVICE"),
    ({"init_result": 34}, 0, "no_driver", "CUDA_ERROR_STUB_LIBRARY"),
    ({"devices": 2}, 2, "out_of_range", "device 2 out of range: the driver sees 2 device(s)"),
])
def test_the_probe_says_why_it_cannot_run(settings: dict, device: int, reason: str, text: str) -> None:
    found = stressor.probe(device, fake_cuda(**settings))
    assert found["ok"] is False and found["reason"] == reason and text in found["error"]


def test_the_probe_makes_no_context() -> None:
    lib = FakeLibcuda(devices=1)
    found = stressor.probe(0, cu.Cuda(lib=lib))
    assert found["ok"] and found["total"] == 80 * GIB and found["name"] == "Fake H200"
    assert lib.contexts == 0 and "cuDevicePrimaryCtxRetain" not in lib.calls


def _real_driver_here() -> bool:
    try:
        cu.Cuda()
    except cu.DriverMissing:
        return False
    return True


@pytest.mark.skipif(_real_driver_here(), reason="this machine has an NVIDIA driver")
def test_the_real_probe_on_a_machine_without_a_driver_says_so() -> None:
    found = probe(0)  # the real `python -m harness.gpu.stressor --probe`
    assert found["ok"] is False and found["reason"] == "no_driver" and "libcuda.so.1" in found["error"]


# --- the real process, over the stand-in driver


@pytest.fixture
def child_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CUDA", fake_cuda_env(free=4 * GIB, context_cost=0))


def test_the_process_holds_each_target_and_frees_at_end_of_input(tmp_path: Path, child_env: None) -> None:
    child = StressChild(0, str(tmp_path / "s.pid"), chunk=256 * MIB, command=fake_stressor_command())
    ready = child.start()
    assert ready["event"] == "ready" and ready["free"] == 4 * GIB and ready["pid"] == child.pid
    record = pidfile.read_pidfile(str(tmp_path / "s.pid"))
    assert record is not None and record["pid"] == child.pid
    assert pidfile.running(record["pid"], record["start_ticks"])
    first = child.ask({"fraction": 0.5})
    assert (first["held"], first["capped"], first["free"]) == (2 * GIB, False, 2 * GIB)
    second = child.ask({"amount": 5 * GIB})  # more than the device has: what it got, honestly
    assert second["held"] == 4 * GIB and second["capped"] is True and second["oom"] > 0
    ended = child.end()
    assert ended["ended"] and ended["how"] == "end of input" and ended["exit_code"] == 0
    assert ended["freed"] == 4 * GIB and ended["held_at_end"] == 0 and ended["free_after"] == 4 * GIB


def test_sigterm_frees_too(tmp_path: Path, child_env: None) -> None:
    child = StressChild(0, str(tmp_path / "s.pid"), command=fake_stressor_command())
    child.start()
    child.ask({"amount": GIB})
    assert child.proc is not None
    child.proc.send_signal(signal.SIGTERM)
    assert child.proc.wait(10) == 0
    assert child.proc.stdout is not None
    freed = [json.loads(line) for line in child.proc.stdout.read().splitlines()]
    assert freed[-1]["event"] == "freed" and freed[-1]["freed"] == GIB


def test_a_failed_start_is_its_failed_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CUDA", fake_cuda_env(init_result=100))
    child = StressChild(0, str(tmp_path / "s.pid"), command=fake_stressor_command())
    with pytest.raises(StressorFailed) as info:
        child.start()
    assert info.value.record["reason"] == "no_device"
    assert child.proc is not None and child.proc.returncode == stressor.EXIT_FAILED


def test_the_pidfile_ends_a_live_stressor_and_leaves_a_reused_pid_alone(tmp_path: Path,
                                                                         child_env: None) -> None:
    path = str(tmp_path / "s.pid")
    child = StressChild(0, path, command=fake_stressor_command())
    child.start()
    child.ask({"amount": GIB})
    assert child.proc is not None
    done = pidfile.end_recorded(path)  # as `harness cleanup` does: our pipe is still open
    assert done == f"ended GPU stressor pid {child.pid} (SIGTERM)"
    assert child.proc.wait(5) == 0 and not Path(path).exists()
    assert pidfile.end_recorded(path) is None  # idempotent
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        Path(path).write_text(json.dumps({"pid": sleeper.pid, "start_ticks": 1}))  # another start time
        assert pidfile.end_recorded(path) is None and sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_stressor_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    path = str(tmp_path / "s.pid")
    code = (f"import signal, sys, time; sys.path.insert(0, {str(ROOT)!r}); "
            "from harness.gpu.pidfile import write_pidfile; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"write_pidfile({path!r}); print('up', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        started = time.monotonic()
        assert pidfile.end_recorded(path, term_wait_s=0.5) == f"ended GPU stressor pid {proc.pid} (SIGKILL)"
        assert proc.wait(5) == -signal.SIGKILL and time.monotonic() - started < 5
    finally:
        proc.kill()
        proc.wait()
