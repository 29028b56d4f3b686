"""`gpu_memory_stress`: its settings (one line for what is wrong), its refusals at validation (no
driver, no GPU, a device past the last, more than the device has), and a whole firing over the
stand-in driver: steps journaled with what was held, the restore ending the stressor and saying
so, and `harness cleanup` ending a stressor a SIGKILLed harness left behind."""

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import pytest

from faults.base import FaultContext, FaultError
from harness.gpu import pidfile
from harness.gpu.stress_fault import GpuMemoryStress, GpuStressParams
from harness.journal import Journal, read_journal
from harness.restore import RestoreLog, cleanup, read_restore
from harness.scenario import load_scenario
from tests.unit.helpers import scenario_error
from tests.unit.test_gpu_fakes import GIB, MIB, fake_cuda_env, fake_stressor_command
from tests.unit.test_gpu_stressor import _real_driver_here

BASE = """\
name: g
stack: {kind: triton, model: identity}
load: {user: triton_http, duration: 30s}
"""


def _fault(monkeypatch: pytest.MonkeyPatch, **params: Any) -> GpuMemoryStress:
    monkeypatch.setattr(GpuMemoryStress, "command", fake_stressor_command())
    return GpuMemoryStress(GpuStressParams.model_validate(params))


def _ctx(journal: Journal | None = None) -> FaultContext:
    return FaultContext(roles=dict, restart_stack=lambda graceful: 0.0, rng=random.Random(0), journal=journal)


def test_a_gpu_stress_scenario_parses(scenario_file: Callable[[str], Path]) -> None:
    scenario = load_scenario(scenario_file(BASE + """\
faults:
  - {kind: gpu_memory_stress, at: 5s, duration: 20s, device: 0, amount: 20GiB}
  - {kind: gpu_memory_stress, at: 5s, duration: 20s,
     steps: [{after: 0s, fraction: 0.5}, {after: 10s, fraction: 1}]}
slo: ["gpu_xid_errors < 1", "gpu_mem_peak_mb < 100000", "error_rate < 1%"]
"""))
    assert scenario.faults[0].params == {"device": 0, "amount": "20GiB"}


@pytest.mark.parametrize(("fault", "expected"), [
    ("{kind: gpu_memory_stress, at: 1s, duration: 5s, amount: 1GiB, fraction: 0.5}",
     "faults.0: set exactly one of `amount`, `fraction` or `steps`"),
    ("{kind: gpu_memory_stress, at: 1s, duration: 5s}",
     "faults.0: set exactly one of `amount`, `fraction` or `steps`"),
    ("{kind: gpu_memory_stress, at: 1s, duration: 5s, fraction: 1.5}",
     "faults.0.fraction: Input should be less than or equal to 1"),
    ("{kind: gpu_memory_stress, at: 1s, duration: 5s, device: -1, amount: 1GiB}",
     "faults.0.device: Input should be greater than or equal to 0"),
    ("{kind: gpu_memory_stress, at: 1s, duration: 5s, amount: 1GiB, chunk: 4KiB}",
     "faults.0.chunk: Input should be greater than or equal to 1048576"),
    ("{kind: gpu_memory_stress, at: 1s, duration: 5s, "
     "steps: [{after: 2s, amount: 1GiB}, {after: 1s, amount: 2GiB}]}",
     "faults.0: steps: in order of `after`"),
    ("{kind: gpu_memory_stress, at: 1s, duration: 5s, steps: [{after: 6s, amount: 1GiB}]}",
     "faults.0.steps.0.after: 6s is not within the fault's duration (5s); the step would never apply"),
    ("{kind: gpu_memory_stress, at: 1s, duration: 5s, steps: [{amount: 1GiB, fraction: 0.1}]}",
     "set exactly one of `amount` or `fraction` (of the device's free memory)"),
    ("{kind: gpu_memory_stress, at: 1s, duration: 5s, amount: 1GiB, gpu: 1}", "faults.0.gpu: unknown key"),
])
def test_bad_gpu_stress_settings_are_one_line_each(scenario_file: Callable[[str], Path], fault: str,
                                                   expected: str) -> None:
    message = scenario_error(scenario_file(BASE + f"faults: [{fault}]\n"))
    assert expected in message and len(message.splitlines()) == 1, message


@pytest.mark.parametrize(("settings", "params", "line"), [
    ({"init_result": 100}, {"amount": GIB},
     "gpu_memory_stress: the NVIDIA driver found no GPU (cuInit: CUDA_ERROR_NO_DEVICE (100))"),
    ({"init_result": 34}, {"amount": GIB},
     "gpu_memory_stress: no NVIDIA driver here (cuInit: CUDA_ERROR_STUB_LIBRARY (34)); it needs a GPU and "
     "libcuda.so.1"),
    ({"devices": 1}, {"device": 3, "fraction": 0.5},
     "gpu_memory_stress device 3: out of range; this machine has 1 GPU(s) (device 0)"),
    ({"devices": 4}, {"device": 4, "fraction": 0.5},
     "gpu_memory_stress device 4: out of range; this machine has 4 GPU(s) (devices 0 to 3)"),
    ({"total": 80 * GIB}, {"steps": [{"amount": GIB}, {"after": 1, "amount": 100 * GIB}]},
     "gpu_memory_stress step 1: 100 GiB is more than device 0 (Fake H200) has in all (80 GiB)"),
])
def test_validation_refuses_with_one_line(monkeypatch: pytest.MonkeyPatch, settings: dict, params: dict,
                                          line: str) -> None:
    monkeypatch.setenv("FAKE_CUDA", fake_cuda_env(**settings))
    with pytest.raises(FaultError) as info:
        _fault(monkeypatch, **params).validate(_ctx())
    assert str(info.value) == line


def test_validation_passes_where_it_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CUDA", fake_cuda_env(devices=2))
    _fault(monkeypatch, device=1, amount=79 * GIB).validate(_ctx())


@pytest.mark.skipif(_real_driver_here(), reason="this machine has an NVIDIA driver")
def test_validation_on_this_machine_without_a_driver() -> None:
    fault = GpuMemoryStress(GpuStressParams(amount=GIB))  # the real stressor command
    refusal = r"^gpu_memory_stress: no NVIDIA driver here \(libcuda.so.1 not found"
    with pytest.raises(FaultError, match=refusal):
        fault.validate(_ctx())


def _events(path: Path, name: str) -> list[dict[str, Any]]:
    return [r for r in read_journal(path) if r.get("event") == name]


def test_a_firing_journals_each_step_and_the_restore_ends_the_stressor(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAKE_CUDA", fake_cuda_env(free=4 * GIB, context_cost=0))
    journal = Journal(tmp_path / "journal.jsonl")
    fault = _fault(monkeypatch, chunk=256 * MIB, steps=[{"after": 0, "fraction": 0.5},
                                                        {"after": 0.3, "amount": 5 * GIB}])
    ctx = _ctx(journal)
    plan = fault.plan(ctx)
    assert plan["steps"] == [[0.0, {"fraction": 0.5}], [0.3, {"amount": 5 * GIB}]] and plan["device"] == 0
    details = fault.inject(ctx, plan)
    assert details["free_at_start"] == 4 * GIB and details["gpu_name"] == "Fake H200"
    pid = details["pid"]
    gevent.sleep(0.8)
    fault.restore(ctx, plan)
    journal.close()
    path = tmp_path / "journal.jsonl"
    first, second = _events(path, "gpu_memory_stress_step")
    assert (first["held"], first["asked"], first["capped"]) == (2 * GIB, "0.5 of free", False)
    assert first["oom"] == 0
    assert (second["target"], second["held"], second["capped"]) == (5 * GIB, 4 * GIB, True)
    assert second["oom"] >= 1 and second["held_text"] == "4.00 GiB" and second["free"] == 0
    windows = [w for w in _events(path, "window") if w["kind"] == "gpu_memory_step"]
    assert [w["start"] for w in windows] == [first["t"], second["t"]]
    assert windows[0]["end"] <= second["t"] + 0.01
    (ended,) = _events(path, "gpu_memory_stress_ended")
    assert (ended["ended"], ended["how"], ended["exit_code"]) == (True, "end of input", 0)
    assert ended["freed"] == 4 * GIB
    assert ended["pid"] == pid and not Path(plan["pidfile"]).exists()


def test_a_stressor_that_cannot_start_fails_the_injection_with_its_reason(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAKE_CUDA", fake_cuda_env(devices=1))
    fault = _fault(monkeypatch, device=2, amount=GIB)
    plan = fault.plan(_ctx())
    with pytest.raises(FaultError, match="gpu_memory_stress device 2: out of range"):
        fault.inject(_ctx(), plan)
    fault.restore(_ctx(), plan)  # nothing left running, nothing to say


def test_harness_cleanup_ends_a_stressor_a_killed_harness_left(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.setenv("FAKE_CUDA", fake_cuda_env(free=4 * GIB))
    fault = _fault(monkeypatch, amount=GIB)
    ctx = _ctx()
    plan = fault.plan(ctx)
    log = RestoreLog(tmp_path)
    log.fault_planned("f0.0", "gpu_memory_stress", plan)  # as the fault runner does, before inject
    fault.inject(ctx, plan)
    gevent.sleep(0.3)
    record = pidfile.read_pidfile(plan["pidfile"])
    assert record is not None and pidfile.running(record["pid"], record["start_ticks"])
    # The harness is SIGKILLed here: nothing restores. Our pipe to it stays open, so it still holds.
    log.close()
    assert cleanup(tmp_path)[0] == "undid fault f0.0 (gpu_memory_stress)"
    assert not pidfile.running(record["pid"], record["start_ticks"]) and not Path(plan["pidfile"]).exists()
    assert fault._child is not None and fault._child.proc is not None and fault._child.proc.wait(5) == 0
    assert {"op": "restored", "id": "f0.0", "by": "cleanup"} in read_restore(tmp_path)
    assert cleanup(tmp_path) == []  # a second cleanup finds nothing
    fault.restore(ctx, plan)  # and a late restore is harmless
