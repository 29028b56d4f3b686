"""LLM measures through the recorder, the journal records, SLO metrics and the error window."""

from typing import Any

import pytest

from harness import metrics
from harness.analysis import RunData, measure
from harness.llm.errorwindow import error_windows
from harness.llm.metrics import llm_totals
from harness.load.recorder import Recorder
from tests.unit.helpers import FakeClock


def journal(failing_at: list[float], ttft_ms: float = 40.0) -> list[dict[str, Any]]:
    """10 s of load from t=2: 20 requests a second; failures at the given run-clock times."""
    clock = FakeClock()
    recorder = Recorder(clock)
    records: list[dict[str, Any]] = [
        {"type": "event", "event": "run_started", "t": 0.0},
        {"type": "event", "event": "load_started", "t": 2.0},
        {"type": "event", "event": "fault_injected", "t": 5.0, "id": "f0.0", "kind": "process_kill",
         "name": "kill", "signal": "SIGKILL"},
        {"type": "event", "event": "process_exited", "t": 5.01, "role": "worker", "pid": 1, "exit_code": -9},
        {"type": "event", "event": "fault_restored", "t": 5.02, "id": "f0.0"},
    ]
    for second in range(10):
        for i in range(20):
            clock.t = 2.0 + second + i / 20
            recorder.record(0.1, None, measures={"ttft_ms": ttft_ms + i, "itl_ms": 2.0, "output_tokens": 32,
                                                 "tokens_per_s": 320.0})
        for t in failing_at:
            if 2.0 + second <= t < 3.0 + second:
                clock.t = t
                recorder.record(0.001, "http_503", message="http_503: Service temporarily unavailable")
        records += [{"type": "second", **r} for r in recorder.pop_complete(now=clock.t + 1)]
    records.append({"type": "event", "event": "load_stopped", "t": 12.0})
    records.append({"type": "event", "event": "run_ended", "t": 13.0})
    return records


def test_llm_slo_metrics_from_recorded_measures() -> None:
    data = RunData.from_records(journal([]))
    assert measure(data, "ttft_p50_ms").value == pytest.approx(49.5, abs=0.5)
    assert measure(data, "ttft_max_ms").value == pytest.approx(59.0, abs=0.1)
    assert measure(data, "itl_mean_ms").value == pytest.approx(2.0, abs=0.01)
    assert measure(data, "output_tokens_p99").value == pytest.approx(32.0, rel=0.001)
    assert measure(data, "output_tokens_per_s").value == pytest.approx(20 * 32, rel=0.01)
    windowed = measure(data, "ttft_p50_ms", window=metrics_window(0, 2))
    assert windowed.samples == 40
    totals = llm_totals(data.seconds, 10.0)
    assert totals["ttft_ms"]["count"] == 200 and totals["output_tokens_per_s"] == pytest.approx(640, rel=0.01)


def metrics_window(start: float, end: float) -> Any:
    from harness.scenario import Window

    return Window.model_validate({"from": start, "to": end})


def test_no_measures_means_no_value() -> None:
    records = [r for r in journal([]) if r["type"] != "second"]
    data = RunData.from_records(records)
    assert measure(data, "ttft_p99_ms").value is None
    assert llm_totals(data.seconds, 10.0) == {}


@pytest.mark.parametrize("name", [
    "ttft_p99_ms", "itl_p99.9_ms", "ttft_mean_ms", "itl_max_ms", "output_tokens_p50", "tokens_per_s_mean",
    "output_tokens_per_s", "error_window_s", "last_error_s", "tpot_p99_ms", "e2e_p50_ms", "goodput_ratio",
    "goodput_per_s",
])
def test_llm_metric_names_are_known(name: str) -> None:
    assert metrics.is_known(name)


@pytest.mark.parametrize("name", ["ttft_p99", "itl_ms", "ttft_pNN_ms", "output_tokens_ms", "tokens_per_s",
                                  "tpot_ms", "good_p50", "goodput_ratio_p99"])
def test_malformed_llm_names_are_not(name: str) -> None:
    assert not metrics.is_known(name)


def test_error_window_to_the_millisecond() -> None:
    data = RunData.from_records(journal([4.5, 5.25, 6.5, 9.75]))
    (window,) = error_windows(data)
    # 4.5 came before the injection at 5.0 and is not this fault's
    assert window.failed_requests == 3
    assert window.first_error_t == pytest.approx(5.25) and window.last_error_t == pytest.approx(9.75)
    assert window.window_s == pytest.approx(4.5) and window.last_error_after_s == pytest.approx(4.75)
    assert window.errors_by_kind == {"http_503": 3}
    assert "Service temporarily unavailable" in window.error_messages["http_503"]
    assert measure(data, "error_window_s").value == pytest.approx(4.5)
    assert measure(data, "last_error_s").value == pytest.approx(4.75)


def test_a_fault_without_failures_has_an_empty_window() -> None:
    (window,) = error_windows(RunData.from_records(journal([])))
    assert window.failed_requests == 0 and window.window_s == 0 and window.first_error_after_s is None
