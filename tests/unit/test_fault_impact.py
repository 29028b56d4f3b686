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


def test_losses_are_judged_by_the_declared_role_not_its_name() -> None:
    records = with_events(
        synthetic_records(seconds=12, failing={3}),
        {"event": "fault_injected", "t": 3.0, "id": "f0.0", "kind": "process_kill"},
        {"event": "process_exited", "t": 3.01, "role": "shard", "pid": 5, "loss": "replica", "planned": False,
         "exit_code": None, "ended": "unknown"},
        {"event": "replicas_restored", "t": 5.5, "role": "shard", "live": 2, "expected": 2},
        {"event": "fault_injected", "t": 7.0, "id": "f1.0", "kind": "process_kill"},
        {"event": "process_exited", "t": 7.02, "role": "api", "pid": 1, "loss": "entry", "planned": False,
         "exit_code": -9, "signal": "SIGKILL", "ended": "killed by SIGKILL"},
        {"event": "process_exited", "t": 7.2, "role": "shard", "pid": 6, "loss": "replica", "planned": False,
         "consequence": True},
        {"event": "process_exited", "t": 7.3, "role": "store", "pid": 7, "loss": "dependency",
         "planned": False},
        {"event": "recovered", "t": 9.0},
    )
    data = RunData.from_records(sorted(records, key=lambda r: r["t"]))
    replica, crash = fault_impacts(data)
    assert replica.detected_by == "process_exited (shard)" and replica.recovered_t is not None
    assert crash.detected_by == "process_exited (api)" and crash.recover_s == pytest.approx(2.0)
    assert measure(data, "crashes").value == 1  # the entry only: `api` is no special name
    assert measure(data, "replicas_lost").value == 1  # the one that died with the entry is not a loss
    assert measure(data, "replicas_lost.shard").value == 1 and measure(data, "replicas_lost.other").value == 0
    assert measure(data, "replica_recovery_s").value == pytest.approx(2.49)
    assert measure(data, "dependencies_lost").value == 1


def test_recovery_waits_for_a_relapse_before_the_next_fault() -> None:
    records = with_events(
        synthetic_records(seconds=20),
        {"event": "fault_injected", "t": 3.0, "id": "f0.0", "kind": "process_freeze"},
        {"event": "hang_detected", "t": 3.7, "role": "frontend", "pid": 1, "process_status": "stopped"},
        {"event": "recovered", "t": 6.0},
        {"event": "not_serving", "t": 7.0, "health": "ready", "status": 503},  # 503 after the thaw
        {"event": "recovered", "t": 13.0},
        {"event": "fault_injected", "t": 15.0, "id": "f1.0", "kind": "process_freeze"},
        {"event": "hang_detected", "t": 15.5, "role": "frontend", "pid": 1, "process_status": "stopped"},
        {"event": "recovered", "t": 17.0},
    )
    data = RunData.from_records(sorted(records, key=lambda r: r["t"]))
    first, second = fault_impacts(data)
    assert first.recover_s == pytest.approx(10.0)  # not 3.0: it relapsed before serving for good
    assert second.recover_s == pytest.approx(2.0)
    assert measure(data, "not_serving").value == 1


def test_journals_from_before_roles_read_as_they_did() -> None:
    """Old journals' `process_exited` has no `loss`: the old supervisor's one entry role was `server`."""
    records = with_events(
        synthetic_records(seconds=10),
        {"event": "fault_injected", "t": 4.0, "id": "f0.0", "kind": "process_kill"},
        {"event": "process_exited", "t": 4.05, "role": "server", "pid": 1, "planned": False, "exit_code": -9},
        {"event": "hang_detected", "t": 6.0, "pid": 1, "process_status": "stopped"},
    )
    data = RunData.from_records(sorted(records, key=lambda r: r["t"]))
    assert measure(data, "crashes").value == 1
    assert next(e for e in data.events if e["event"] == "hang_detected")["role"] == "server"
