"""TorchServe log parsing and retry analysis: a real 0.12 log, and small synthetic histories."""

from pathlib import Path

import pytest

from harness.torchserve.logparse import WorkerEvent, log_time, parse_line, parse_lines
from harness.torchserve.management import ManagementError, parse_description
from harness.torchserve.retries import GIVE_UP_GRACE_S, RetryTracker, fibonacci_delay

FIXTURE = Path(__file__).parent / "fixtures" / "torchserve" / "ts_0.12_broken_import_retries.log"
MISSING = "ModuleNotFoundError: No module named 'harness_torchserve_missing_module'"


def real_tracker(storm_after: int = 3) -> RetryTracker:
    tracker = RetryTracker(storm_after=storm_after)
    tracker.feed_all(parse_lines(FIXTURE.read_text(encoding="utf-8")))
    return tracker


def test_fibonacci_delays_match_torchserve_table() -> None:
    assert [fibonacci_delay(n) for n in range(1, 11)] == [1, 1, 2, 3, 5, 8, 13, 21, 34, 55]
    assert fibonacci_delay(17) == 1597 and fibonacci_delay(40) == 1597  # the table's last entry


def test_parse_lines_of_a_real_log() -> None:
    line = ("2026-11-22T00:31:33,870 [INFO ] W-9000-broken_1.0 org.pytorch.serve.wlm.WorkerThread - "
            "Retry worker: 9000 in 1 seconds.")
    event = parse_line(line)
    assert event == WorkerEvent(log_time("2026-11-22T00:31:33,870"), "retry", "9000", "broken_1.0", delay_s=1)
    out = ("2026-11-22T00:31:33,700 [INFO ] W-9000-broken_1.0-stdout MODEL_LOG - " + MISSING)
    assert parse_line(out) == WorkerEvent(log_time("2026-11-22T00:31:33,700"), "error", "9000", "broken_1.0",
                                          text=MISSING)
    # The frontend's own exception lines and other threads are not worker errors.
    frontend = "2026-11-22T00:31:33,700 [INFO ] main org.pytorch.serve.ModelServer - Torchserve"
    assert parse_line(frontend) is None
    assert parse_line("\tat org.pytorch.serve.wlm.WorkerThread.run(WorkerThread.java:234)") is None


def test_real_log_retry_schedule_is_fibonacci() -> None:
    steps = real_tracker().steps()
    assert [s.announced_s for s in steps] == [1, 1, 2, 3, 5, 8]
    assert [s.expected_s for s in steps] == [1, 1, 2, 3, 5, 8]
    waited = [s.waited_s for s in steps]
    assert all(w is not None and abs(w - s.announced_s) < 0.1 for w, s in zip(waited, steps, strict=True))
    assert [s.n for s in steps] == [1, 2, 3, 4, 5, 6]


def test_real_log_is_a_storm_with_the_import_error_as_root_cause() -> None:
    tracker = real_tracker()
    storm = tracker.storm()
    assert storm is not None
    # The first exception line, not the `ts.torch_handler...` one TorchServe's fallback adds.
    assert storm.error == MISSING
    assert storm.failures == 6 and storm.workers == ("9000",)
    reason = tracker.not_recoverable(tracker.last_t, 300)
    assert reason is not None and reason.startswith("retry storm: 6 worker starts in a row")
    assert "maxRetryTimeoutInSec=300" in reason and reason.endswith(MISSING)


def test_storm_needs_storm_after_failures() -> None:
    assert real_tracker(storm_after=6).storm() is not None
    assert real_tracker(storm_after=7).storm() is None


def events(*specs: tuple[float, str, str] | tuple[float, str, str, str]) -> list[WorkerEvent]:
    out = []
    for spec in specs:
        t, kind, worker = spec[:3]
        text = spec[3] if len(spec) > 3 else ""
        delay = int(text) if kind == "retry" else None
        out.append(WorkerEvent(t, kind, worker, "m_1.0", delay_s=delay, text="" if kind == "retry" else text))
    return out


def test_killed_workers_are_healed_not_a_storm() -> None:
    tracker = RetryTracker()
    tracker.feed_all(events(
        (0.0, "launch", "9000"), (0.0, "launch", "9001"), (2.0, "ready", "9000"), (2.1, "ready", "9001"),
        (5.0, "stopped", "9000"), (5.0, "retry", "9000", "1"), (6.0, "launch", "9000"),
        (8.0, "ready", "9000"), (9.0, "stopped", "9000"), (9.0, "retry", "9000", "1"),
        (10.0, "launch", "9000"), (12.0, "ready", "9000"),
    ))
    # Each kill starts a new episode: TorchServe resets its back-off when a worker loads.
    assert [(s.n, s.announced_s, s.expected_s, s.waited_s) for s in tracker.steps()] == [
        (1, 1, 1, 1.0), (1, 1, 1, 1.0)]
    assert tracker.storm() is None and tracker.not_recoverable(20.0, 300) is None


def test_same_error_on_two_workers_once_each_is_not_yet_a_storm() -> None:
    tracker = RetryTracker(storm_after=2)
    tracker.feed_all(events(
        (0.0, "launch", "9000"), (0.0, "launch", "9001"),
        (1.0, "error", "9000", "ImportError: x"), (1.0, "stopped", "9000"), (1.0, "retry", "9000", "1"),
        (1.1, "error", "9001", "ImportError: x"), (1.1, "stopped", "9001"), (1.1, "retry", "9001", "1"),
    ))
    assert tracker.storm() is None  # no retry has failed yet
    tracker.feed_all(events((2.0, "launch", "9000"), (3.0, "stopped", "9000"),
                            (3.05, "error", "9000", "ImportError: x")))
    storm = tracker.storm()
    assert storm is not None and storm.failures == 3 and storm.detected_t == 3.05 and storm.last_t == 3.05


def test_different_errors_are_not_a_storm() -> None:
    tracker = RetryTracker(storm_after=3)
    for i, error in enumerate(["OSError: disk", "MemoryError: a", "OSError: disk2", "ValueError: b"]):
        tracker.feed_all(events((i * 3.0, "launch", "9000"), (i * 3.0 + 1, "error", "9000", error),
                                (i * 3.0 + 1, "stopped", "9000"), (i * 3.0 + 1, "retry", "9000", "1")))
    assert tracker.storm() is None


def test_a_failure_without_a_retry_line_is_a_give_up_after_the_grace() -> None:
    tracker = RetryTracker()
    tracker.feed_all(events((0.0, "launch", "9000"), (4.0, "error", "9000", MISSING),
                            (4.0, "stopped", "9000")))
    assert tracker.given_up(4.0 + GIVE_UP_GRACE_S / 2) == []  # TorchServe may still log its retry
    (dead,) = tracker.given_up(4.0 + GIVE_UP_GRACE_S)
    assert dead.worker == "9000"
    reason = tracker.not_recoverable(6.0, 0)
    assert reason == f"TorchServe stopped retrying worker(s) 9000 (maxRetryTimeoutInSec=0): {MISSING}"


def test_management_description_parses_workers_and_settings() -> None:
    body = ('[{"modelName": "echo", "maxRetryTimeoutInSec": 300, "workers": ['
            '{"id": "9000", "pid": 17513, "status": "READY"},'
            '{"id": "9001", "pid": -1, "status": "UNLOADING"}],'
            '"jobQueueStatus": {"remainingCapacity": 100}}]')
    info = parse_description(body)
    assert info.ready == 1 and info.workers[1].pid is None
    assert info.settings == {"modelName": "echo", "maxRetryTimeoutInSec": 300}
    with pytest.raises(ManagementError):
        parse_description("Route not found")
