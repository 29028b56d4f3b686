"""Distributed load: merging workers' seconds, the setup a worker gets, and the command line's checks."""

import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from harness.errors import UsageError
from harness.load import wire
from harness.load.distributed import MAX_REPORT_LAG_S, Workers, _WorkerState
from harness.load.pacer import RateSchedule, RateStep
from harness.load.recorder import Recorder
from harness.load.target import Target
from harness.load.worker import _share_of_pacer
from harness.load.workeropts import plan_from_args, split_master
from harness.scenario import LoadSpec
from tests.unit.helpers import FakeClock


def fill(recorder: Recorder, clock: FakeClock, t: float, latencies_ms: Sequence[float],
         errors: int = 0) -> None:
    clock.t = t
    for ms in latencies_ms:
        recorder.record(ms / 1000, None, measures={"ttft_ms": ms / 2})
    for _ in range(errors):
        recorder.record(0.001, "http_503", message="busy")


def test_merged_seconds_equal_one_recorder_seeing_everything() -> None:
    clocks = [FakeClock(), FakeClock(), FakeClock()]
    one, two, together = (Recorder(c) for c in clocks)
    fill(one, clocks[0], 3.2, [1, 2, 3], errors=1)
    fill(two, clocks[1], 3.7, [10, 20], errors=2)
    fill(two, clocks[1], 4.1, [5])
    for t, lat, err in ((3.2, [1, 2, 3], 1), (3.7, [10, 20], 2), (4.1, [5], 0)):
        fill(together, clocks[2], t, lat, err)
    master = Recorder(FakeClock())
    for record in one.pop_complete(everything=True) + two.pop_complete(everything=True):
        master.merge(record)
    merged = master.pop_complete(everything=True)
    expected = together.pop_complete(everything=True)
    assert [r["t"] for r in merged] == [3, 4]
    for got, want in zip(merged, expected, strict=True):
        keys = ("requests", "ok", "errors", "late", "latency_ms", "sum_us", "error_span", "error_messages")
        for key in keys:
            assert got.get(key) == want.get(key), key
        for key in ("count", "mean", "sum", "p99"):
            assert got["measures"]["ttft_ms"][key] == want["measures"]["ttft_ms"][key], key
    assert merged[0]["requests"] == 8 and merged[0]["errors"] == {"http_503": 3}
    assert merged[0]["error_span"] == [3.2, 3.7]


def test_setup_round_trip_and_target_host_replaced() -> None:
    spec = LoadSpec.model_validate({"user": "triton_http", "rate": 100, "duration": "5s"})
    target = Target("http://127.0.0.1:8000", "127.0.0.1:8001", "identity")
    setup = wire.Setup(spec.model_dump(mode="json", by_alias=True), target.__dict__, 1.0, 2.0, 0.5, 0.01,
                       99.0, "TritonHttpUserForRun")
    back = wire.Setup.from_message(setup.to_message())
    assert back.load_spec() == spec
    assert back.target_for(None) == target
    moved = back.target_for("10.0.0.5")
    assert moved.http_url == "http://10.0.0.5:8000" and moved.grpc_url == "10.0.0.5:8001"


@pytest.mark.parametrize("url, host, want", [
    ("http://127.0.0.1:8000/v1", "h", "http://h:8000/v1"),
    ("127.0.0.1:8001", "h", "h:8001"),
    ("http://localhost", "h", "http://h"),
])
def test_replace_host(url: str, host: str, want: str) -> None:
    assert wire.replace_host(url, host) == want


def test_split_master() -> None:
    assert split_master("127.0.0.1:5557") == ("127.0.0.1", 5557)
    assert split_master("[::1]:5557") == ("::1", 5557)
    for bad in ("5557", "host:", "host:x", "host:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            split_master(bad)


def test_worker_options_are_checked() -> None:
    assert plan_from_args(0, 0, None) is None
    plan = plan_from_args(2, 1, "0.0.0.0:5557")
    assert plan is not None and plan.expected == 3 and plan.bind_port == 5557
    with pytest.raises(UsageError, match="--remote-workers needs --master-bind"):
        plan_from_args(0, 2, None)
    with pytest.raises(UsageError, match="--master-bind needs --workers"):
        plan_from_args(0, 0, "127.0.0.1:5557")
    with pytest.raises(UsageError, match="--master-bind"):
        plan_from_args(1, 0, "nonsense")
    with pytest.raises(UsageError, match=">= 0"):
        plan_from_args(-1, 0, None)


def test_two_workers_shares_interleave_into_the_whole_schedule() -> None:
    schedule = RateSchedule([RateStep(2.0, 100.0)])
    now = time.time()
    slots: list[float] = []
    for position in range(2):
        setup = wire.Setup({}, {}, 0.0, now, 0.5, position / 100.0, now + 60, "U")
        pacer = _share_of_pacer(schedule, setup)
        while (slot := pacer.next_slot()) is not None:
            slots.append(slot)
    slots.sort()
    assert len(slots) == 200
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert min(gaps) == pytest.approx(0.01, abs=1e-6) and max(gaps) == pytest.approx(0.01, abs=1e-6)


def _workers_with(states: dict[str, _WorkerState], missing: list[str] | None = None) -> Workers:
    workers = Workers.__new__(Workers)
    events: list[dict[str, Any]] = []
    workers.journal = SimpleNamespace(event=lambda name, **kw: events.append({"event": name, **kw}))  # type: ignore[assignment]
    workers.states = states
    nodes = [SimpleNamespace(id=i) for i in missing or []]
    workers.runner = SimpleNamespace(clients=SimpleNamespace(missing=nodes))  # type: ignore[assignment]
    workers.events = events  # type: ignore[attr-defined]
    return workers


def test_a_second_is_complete_once_every_live_worker_reported_past_it() -> None:
    workers = _workers_with({"a": _WorkerState(0, watermark=12.0), "b": _WorkerState(1, watermark=10.0)})
    assert workers.complete_before(12.6) == 10.0
    workers.states["b"].final = True
    assert workers.complete_before(12.6) == 12.0


def test_a_silent_worker_holds_seconds_back_only_so_long() -> None:
    workers = _workers_with({"a": _WorkerState(0, watermark=2.0)})
    assert workers.complete_before(20.0) == 20.0 - MAX_REPORT_LAG_S


def test_a_lost_worker_is_journaled_once_and_stops_holding_seconds_back() -> None:
    workers = _workers_with({"a": _WorkerState(0, watermark=9.0), "b": _WorkerState(1, watermark=4.0)},
                            missing=["b"])
    assert workers.complete_before(9.5) == 9.0
    assert workers.complete_before(9.5) == 9.0
    lost = [e for e in workers.events if e["event"] == "load_worker_lost"]  # type: ignore[attr-defined]
    assert lost == [{"event": "load_worker_lost", "worker": "b", "index": 1}]


@pytest.mark.parametrize("listen, message", [
    ("0.0.0.0", "every interface"),
    ("203.0.113.9", "not an address of this host"),
    ("triton.local", "not an IP address"),
])
def test_triton_listens_only_on_this_hosts_addresses(scenario_file: Any, listen: str, message: str) -> None:
    from harness.scenario import load_scenario

    path = scenario_file(
        f"name: l\nstack: {{kind: triton, listen: '{listen}'}}\nload: {{user: triton_http, duration: 1s}}\n"
    )
    with pytest.raises(UsageError) as err:
        load_scenario(path)
    assert "stack.listen" in str(err.value) and message in str(err.value) and ":2:" in str(err.value)


def test_triton_listen_defaults_to_loopback(scenario_file: Any) -> None:
    from harness.scenario import load_scenario

    path = scenario_file("name: l\nstack: {kind: triton}\nload: {user: triton_http, duration: 1s}\n")
    assert load_scenario(path).stack.listen == "127.0.0.1"  # type: ignore[attr-defined]


def test_a_written_second_frees_its_histograms_without_the_garbage_collector() -> None:
    """hdrh's histogram <-> encoder cycle would keep ~190 kB a second until a full collection."""
    import gc
    import weakref

    clock = FakeClock()
    recorder = Recorder(clock)
    fill(recorder, clock, 0.5, [2.0])
    refs = [weakref.ref(recorder.buckets[0].hist), weakref.ref(recorder.buckets[0].measures["ttft_ms"])]
    master = Recorder(FakeClock())
    gc.disable()
    try:
        clock.t = 1.5
        (record,) = recorder.pop_complete()
        master.merge(record)  # decoded histograms are added, then freed
        assert all(ref() is None for ref in refs)
        (merged,) = master.pop_complete(everything=True)
        assert merged["requests"] == 1 and merged["measures"]["ttft_ms"]["count"] == 1
    finally:
        gc.enable()
