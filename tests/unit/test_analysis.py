import pytest

from harness.analysis import RunData, measure, totals
from harness.scenario import Slo, Window
from harness.slo import evaluate
from tests.unit.helpers import synthetic_records


def test_totals_and_latency() -> None:
    data = RunData.from_records(synthetic_records(seconds=10, per_second=100, latency_s=0.005))
    result = totals(data)
    assert result["requests"] == 1000 and result["errors"] == 0
    assert result["throughput_rps"] == pytest.approx(100, rel=0.01)
    # latencies spread evenly over 5..10 ms
    assert result["latency_ms"]["p50"] == pytest.approx(7.5, rel=0.02)
    assert result["latency_ms"]["p99"] == pytest.approx(9.95, rel=0.02)


def test_window_isolates_failing_seconds() -> None:
    data = RunData.from_records(synthetic_records(seconds=10, failing={4, 5}))
    assert measure(data, "error_rate").value == pytest.approx(100 / 1000)
    inside = measure(data, "error_rate", Window.model_validate({"from": 4, "to": 6}))
    assert inside.value == pytest.approx(0.5) and inside.samples == 200
    outside = measure(data, "error_rate", Window.model_validate({"from": 6}))
    assert outside.value == 0.0


def test_failed_requests_stay_out_of_latency() -> None:
    data = RunData.from_records(synthetic_records(seconds=2, per_second=10, failing={0, 1}))
    assert measure(data, "p50_ms").samples == 10


def test_slo_results_carry_value_threshold_and_samples() -> None:
    data = RunData.from_records(synthetic_records(seconds=10, failing={4}))
    ok = evaluate(Slo.model_validate("error_rate < 0.1"), data)
    assert ok.passed and ok.measured == pytest.approx(0.05) and ok.samples == 1000
    bad = evaluate(Slo.model_validate({"metric": "p99_ms", "max": 1}), data)
    assert not bad.passed and bad.measured is not None and bad.measured > 9
    assert "breaks" in bad.detail


def test_slo_without_data_fails() -> None:
    data = RunData.from_records(synthetic_records(seconds=2))
    result = evaluate(Slo.model_validate({"metric": "p99_ms", "max": 1, "window": {"from": 100}}), data)
    assert not result.passed and result.measured is None


def test_journal_of_killed_run_still_has_a_load_end() -> None:
    ends = ("load_stopped", "stack_stopped", "run_ended")
    records = [r for r in synthetic_records(seconds=5) if r.get("event") not in ends]
    data = RunData.from_records(records)
    assert data.load_end == pytest.approx(7.0)
    assert totals(data)["requests"] == 500


def test_the_first_partial_second_counts_like_the_last() -> None:
    """The load starts mid-second (t=2.4): second 2 holds its first requests and must be counted."""
    records = [
        {"type": "event", "event": "load_started", "t": 2.4},
        *({"type": "second", "t": t, "requests": 10, "ok": 10, "errors": {}} for t in (2, 3, 4, 5)),
        {"type": "event", "event": "load_stopped", "t": 5.4},
    ]
    data = RunData.from_records(records)
    assert totals(data)["requests"] == 40
    assert totals(data)["duration_s"] == pytest.approx(3.0)
    assert measure(data, "requests", Window.model_validate({"from": 1})).value == 30  # from t=3.4


def test_errors_of_one_kind_count_only_that_kind() -> None:
    data = RunData.from_records(synthetic_records(seconds=10, failing={4, 5}))  # the failures are 503s
    assert measure(data, "errors.http_503").value == 100 == measure(data, "errors").value
    assert measure(data, "errors.timeout").value == 0  # a kind the run never saw: none, not unknown
    assert measure(data, "error_rate.http_503").value == pytest.approx(100 / 1000)
    inside = measure(data, "error_rate.http_503", Window.model_validate({"from": 4, "to": 6}))
    assert inside.value == pytest.approx(0.5) and inside.samples == 200
    slo = evaluate(Slo.model_validate({"metric": "errors.http_503", "max": 0}), data)
    assert not slo.passed and slo.measured == 100


def test_errors_of_one_kind_abort_like_their_totals() -> None:
    from harness.abort import Movement, counted_over_window, movement

    assert movement("errors.timeout") is Movement.GROWS == movement("errors")
    assert movement("error_rate.http_503") is movement("error_rate")
    assert counted_over_window("errors.timeout") and counted_over_window("error_rate.timeout")
