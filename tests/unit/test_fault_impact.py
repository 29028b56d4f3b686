import pytest

from harness.analysis import RunData, measure
from harness.faultimpact import fault_impacts
from tests.unit.helpers import synthetic_records


def with_events(records: list[dict], *events: dict) -> list[dict]:
    return records + [{"type": "event", **e} for e in events]


def test_server_kill_detected_and_recovered() -> None:
    records = with_events(
        synthetic_records(seconds=10, failing={4, 5}),
        {"event": "fault_injected", "t": 6.0, "id": "f0.0", "kind": "process_kill"},
        {"event": "fault_restored", "t": 6.0, "id": "f0.0"},
        {"event": "process_exited", "t": 6.05, "role": "server", "pid": 1, "planned": False},
        {"event": "recovered", "t": 8.5},
    )
    records.sort(key=lambda r: r["t"])
    data = RunData.from_records(records)
    (impact,) = fault_impacts(data)
    assert impact.detect_s == pytest.approx(0.05) and impact.recover_s == pytest.approx(2.5)
    assert impact.failed_requests == 100 and impact.errors_by_kind == {"http_503": 100}
    assert measure(data, "recovery_s").value == pytest.approx(2.5)
    assert measure(data, "crashes").value == 1
    assert measure(data, "error_rate", "outside_faults").value == 0.0
    assert measure(data, "error_rate", "faults").value == pytest.approx(100 / 300)


def test_never_recovered_fails_recovery_slo() -> None:
    records = with_events(
        synthetic_records(seconds=10),
        {"event": "fault_injected", "t": 6.0, "id": "f0.0", "kind": "process_freeze"},
        {"event": "hang_detected", "t": 6.5, "pid": 1, "process_status": "stopped"},
    )
    data = RunData.from_records(sorted(records, key=lambda r: r["t"]))
    assert measure(data, "recovery_s").value is None
    assert measure(data, "hangs").value == 1


def test_fault_without_failure_has_no_impact() -> None:
    records = with_events(
        synthetic_records(seconds=10),
        {"event": "fault_injected", "t": 6.0, "id": "f0.0", "kind": "process_kill"},
    )
    data = RunData.from_records(sorted(records, key=lambda r: r["t"]))
    (impact,) = fault_impacts(data)
    assert impact.detected_t is None and impact.failed_requests == 0
    assert measure(data, "recovery_s").value == 0.0
