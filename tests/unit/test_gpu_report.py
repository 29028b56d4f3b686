"""The GPU part of the report, from a journal alone: summary.json's `gpu`, findings, story lines,
the metrics, and report.html's GPU section drawn on the client's time axis."""

import json
from pathlib import Path
from typing import Any

import pytest

from harness import features
from harness.analysis import RunData
from harness.gpu.html import gpu_section
from harness.gpu.report_data import STORY_PHRASES, gpu_findings, gpu_summary, measure_gpu
from harness.scenario import Scenario
from harness.sizes import format_size
from reports.build import write_reports
from tests.unit.helpers import synthetic_records

GIB = 1 << 30
LOAD_START = 2.0


def _event(name: str, t: float, /, **fields: Any) -> dict[str, Any]:
    return {"type": "event", "event": name, "t": t, **fields}


def _step(t: float, step: int, asked: str, target: int, held: int, oom: int) -> dict[str, Any]:
    return _event("gpu_memory_stress_step", t, step=step, device=0, pid=77, asked=asked, target=target,
                  target_text=format_size(target), held=held, held_text=format_size(held), oom=oom,
                  capped=held < target, error=None, free=0)


def _gpu_records() -> list[dict[str, Any]]:
    """10 s of load from t=2 (seconds 6 and 7 fail half their requests), a stressor stepping at 4
    and 8 (the second capped by the driver), an Xid at 9.5, clocks slowed by heat at 9."""
    base = synthetic_records(seconds=10, failing={6, 7}, load_start=LOAD_START)
    samples = [{"type": "series", "name": "gpu", "t": 2.0 + i, "values": {
        "mem_used{gpu=0}": float((10 + 5 * (i >= 2) + 3 * (i >= 6)) * GIB),
        "mem_total{gpu=0}": float(80 * GIB), "util{gpu=0}": 50.0 + i, "temp_c{gpu=0}": 60.0 + i,
        "power_w{gpu=0}": 300.0 + 10 * i, "throttle{gpu=0}": 4.0, "mem{role=server}": float(9 * GIB)}}
        for i in range(10)]
    device = {"index": 0, "name": "NVIDIA H200", "pci_bus_id": "00000000:3B:00.0", "total": 80 * GIB}
    extra = [
        _event("gpu_devices", 0.1, devices=[device]),
        _event("gpu_throttle", 2.5, device=0, mask=4, reasons=["sw_power_cap"], previous=[]),
        _event("gpu_throttle", 9.0, device=0, mask=0x44, reasons=["sw_power_cap", "hw_thermal_slowdown"],
               previous=["sw_power_cap"]),
        _step(4.0, 0, "5.00 GiB", 5 * GIB, 5 * GIB, 0),
        _event("window", 8.0, kind="gpu_memory_step", name="gpu0 holds 5.00 GiB", start=4.0, end=8.0),
        _step(8.0, 1, "0.99 of free", 70 * GIB, 62 * GIB, 5),
        _event("window", 12.0, kind="gpu_memory_step", name="gpu0 holds 62.00 GiB", start=8.0, end=12.0),
        _event("gpu_xid", 9.5, device=0, xid=31, event_type=8, meaning="GPU memory page fault"),
        _event("gpu_memory_stress_ended", 12.0, device=0, pid=77, ended=True, how="end of input", exit_code=0,
               freed=62 * GIB, freed_text="62.00 GiB", held_at_end=0, free_after=62 * GIB, seconds=0.4),
        _event("observer_stopped", 13.5, observer="gpu", summary={
            "available": True, "devices": [device], "samples": 10, "errors": 0,
            "unsupported": {"0": ["graphics_procs"]},
            "xid": {"watching": [0], "unsupported": [], "events": 1, "error": None}}),
    ]
    return sorted(base + samples + extra, key=lambda r: r["t"])


@pytest.fixture
def data() -> RunData:
    return RunData.from_records(_gpu_records())


def test_the_summary_from_the_journal(data: RunData) -> None:
    gpu = gpu_summary(data)
    assert gpu is not None and gpu["available"] is True and gpu["samples"] == 10
    assert gpu["peak_mem_used"] == {"gpu=0": float(18 * GIB)}
    assert gpu["peak_mem_by_role"] == {"server": 9 * GIB}
    assert gpu["max_temp_c"] == {"gpu=0": 69.0} and gpu["max_power_w"] == {"gpu=0": 390.0}
    assert gpu["xid_events"] == [{"t": 9.5, "device": 0, "xid": 31, "meaning": "GPU memory page fault"}]
    first, second = gpu["stress_steps"]
    assert (first["held"], first["error_rate"], first["requests"]) == (5 * GIB, 0.0, 400)
    assert second["error_rate"] == pytest.approx(100 / 400) and second["capped"] is True  # seconds 6, 7
    assert gpu["stress_ended"][0]["how"] == "end of input"


def test_no_gpu_in_the_journal_is_no_section() -> None:
    plain = RunData.from_records(synthetic_records())
    assert gpu_summary(plain) is None and gpu_section(None, plain) == ""
    absent = RunData.from_records(synthetic_records() + [
        _event("observer_stopped", 13.0, observer="gpu", summary={"available": False})])
    summary = gpu_summary(absent)
    assert summary is not None and summary["available"] is False and gpu_section(summary, absent) == ""


def test_findings_and_story(data: RunData) -> None:
    found = gpu_findings(data)
    assert found == [
        "t=9.5s: GPU 0 reported critical Xid 31 (GPU memory page fault)",
        "t=2.5s: GPU 0 clocks held back: sw_power_cap",
        "t=9.0s: GPU 0 clocks held back: hw_thermal_slowdown",
        "t=8.0s: the GPU stressor asked for 70 GiB on GPU 0 and got 62 GiB (the driver refused 5 "
        "allocation(s): CUDA_ERROR_OUT_OF_MEMORY)",
    ]
    step = next(e for e in data.events if e["event"] == "gpu_memory_stress_step" and e["step"] == 1)
    assert STORY_PHRASES["gpu_memory_stress_step"](step) == \
        "GPU stressor holds 62 GiB on GPU 0 (asked 0.99 of free, 5 allocation(s) refused)"
    idle = {"event": "gpu_throttle", "device": 0, "reasons": ["gpu_idle"]}
    assert STORY_PHRASES["gpu_throttle"](idle) is None  # an idle GPU is no news


def test_metrics(data: RunData) -> None:
    assert measure_gpu(data, "gpu_xid_errors") == (1.0, 10)
    assert measure_gpu(data, "gpu_mem_peak_mb") == (18 * 1024.0, 10)
    assert measure_gpu(data, "gpu_stress_oom") == (5.0, 2)
    unwatched = RunData.from_records(synthetic_records())
    assert measure_gpu(unwatched, "gpu_xid_errors") == (None, 0)  # nobody listened: no zero
    assert features.metric_def("gpu_xid_errors") is not None


def test_report_html_draws_the_gpu_beside_the_client(data: RunData, tmp_path: Path) -> None:
    with (tmp_path / "journal.jsonl").open("w", encoding="utf-8") as out:
        for record in _gpu_records():
            out.write(json.dumps(record) + "\n")
    scenario = Scenario.model_validate({
        "name": "unit", "stack": {"kind": "external", "url": "http://127.0.0.1:1", "model": "m"},
        "load": {"user": "triton_http", "duration": 10}, "slo": ["gpu_xid_errors < 1"]})
    write_reports(tmp_path, scenario)
    summary = json.loads((tmp_path / "summary.json").read_text())
    keys = list(summary)
    assert keys[keys.index("memory") + 1] == "gpu" and summary["gpu"]["samples"] == 10
    assert summary["slos"][0]["passed"] is False  # one Xid
    html = (tmp_path / "report.html").read_text()
    section = html[html.index("<h2>GPU</h2>"):]
    for title in ("GPU memory: used and total per device, held per stack role",
                  "Client beside the GPU: throughput", "GPU temperature", "GPU power"):
        assert title in section
    assert "Critical Xid events" in section and "62 GiB" in section and "hw_thermal_slowdown" in section
    assert any("Xid 31" in line for line in summary["story"])
