"""The exporter's figures: journal records in, Prometheus series out (no server, no Prometheus)."""

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from harness.exporter.metrics import METRICS, FiguresCollector, exported_samples
from harness.exporter.state import BUCKETS_S, RunFigures, bucket_counts, window_label
from harness.load.recorder import Recorder, decode_histogram
from tests.unit.helpers import FakeClock

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def second(t: float, latencies_ms: list[float], errors: dict[str, int] | None = None) -> dict[str, Any]:
    """A `second` record exactly as the load writes it (HDR histogram and all)."""
    clock = FakeClock()
    recorder = Recorder(clock)
    clock.t = t + 0.5
    for ms in latencies_ms:
        recorder.record(ms / 1000, None)
    for kind, count in (errors or {}).items():
        for _ in range(count):
            recorder.record(0.001, kind)
    return {"type": "second", **recorder.pop_complete(everything=True)[0]}


def event(event_name: str, /, t: float = 0.0, **fields: Any) -> dict[str, Any]:
    return {"type": "event", "event": event_name, "t": t, **fields}


def scrape(figures: RunFigures, live: bool = True) -> Samples:
    registry = CollectorRegistry()
    registry.register(FiguresCollector(figures, live=live))
    text = generate_latest(registry).decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k not in ("scenario", "run_id")}
            assert sample.labels["scenario"] == "sc" and sample.labels["run_id"] == "sc-20260101-000000"
            samples[(sample.name, tuple(sorted(labels.items())))] = sample.value
    return samples


def figures() -> RunFigures:
    return RunFigures(scenario="sc", run_id="sc-20260101-000000", stack="fake")


SUMMARY = {
    "verdict": "fail", "exit_code": 1,
    "totals": {"duration_s": 3.0, "latency_ms": {"p50": 2.0, "p90": 4.0, "p99": 8.0, "p99.9": 9.0}},
    "slos": [
        {"name": "p99_ms < 250", "metric": "p99_ms", "op": "<", "threshold": 250.0, "measured": 8.0,
         "passed": True, "window": "all"},
        {"name": "error_rate <= 0.001", "metric": "error_rate", "op": "<=", "threshold": 0.001,
         "measured": 0.2, "passed": False, "window": {"from": 1.0, "to": None}},
        {"name": "p99_ms < 250", "metric": "p99_ms", "op": "<", "threshold": 250.0, "measured": None,
         "passed": False, "window": "faults"},  # the same name twice: told apart by `index`
    ],
}


def test_counters_add_up_every_second_and_gauges_hold_the_newest() -> None:
    f = figures()
    f.add_all([event("run_started", seed=7), event("stack_starting", kind="fake"), event("stack_ready"),
               event("load_started"), second(1, [1, 2, 3], {"http_503": 2}),
               second(2, [10, 20], {"http_503": 1, "timeout": 1})])
    got = scrape(f)
    assert got[("harness_requests_total", ())] == 9
    assert got[("harness_request_errors_total", (("kind", "http_503"),))] == 3
    assert got[("harness_request_errors_total", (("kind", "timeout"),))] == 1
    assert got[("harness_second_requests", ())] == 4 and got[("harness_second_errors", ())] == 2
    assert got[("harness_run_clock_seconds", ())] == 2
    assert got[("harness_latency_max_seconds", ())] == pytest.approx(0.020, rel=1e-3)
    assert got[("harness_latency_seconds", (("quantile", "0.5"),))] == pytest.approx(0.010, rel=1e-3)
    assert got[("harness_run_state", (("state", "load"),))] == 1
    assert sum(v for (name, _), v in got.items() if name == "harness_run_state") == 1
    info = [labels for (name, labels) in got if name == "harness_run_info"]
    assert dict(info[0])["seed"] == "7" and dict(info[0])["stack"] == "fake"
    assert got[("harness_events_total", (("event", "load_started"),))] == 1
    assert not any(name.startswith("harness_slo") or name == "harness_verdict" for name, _ in got)


def test_the_latency_histogram_counts_what_the_hdr_histograms_hold() -> None:
    f = figures()
    latencies = [0.3, 0.9, 1.0, 4.0, 30.0, 700.0, 2500.0]  # ms; 1.0 sits on a bucket's bound
    f.add_all([second(1, latencies[:4]), second(2, latencies[4:], {"timeout": 3})])
    got = scrape(f)
    for bound in BUCKETS_S:
        expected = sum(1 for ms in latencies if ms / 1000 <= bound)
        assert got[("harness_request_duration_seconds_bucket", (("le", f"{bound:g}"),))] == expected, bound
    assert got[("harness_request_duration_seconds_bucket", (("le", "+Inf"),))] == len(latencies)
    assert got[("harness_request_duration_seconds_count", ())] == len(latencies)  # failures have no latency
    assert got[("harness_request_duration_seconds_sum", ())] == pytest.approx(sum(latencies) / 1000, rel=1e-3)


def test_bucket_counts_of_an_empty_histogram_are_zero() -> None:
    record = second(1, [5.0])
    hist = decode_histogram(record["hdr"])
    assert bucket_counts(hist, (0.001, 0.01)) == ([0, 1], 1)
    empty = Recorder(FakeClock()).pop_complete(everything=True)
    assert empty == []


def test_a_second_without_a_success_has_no_latency_so_a_freeze_is_a_gap() -> None:
    f = figures()
    f.add_all([second(1, [5.0]), second(2, [], {"timeout": 4})])
    got = scrape(f)
    assert not any(name.startswith("harness_latency") for name, _ in got)
    assert got[("harness_second_requests", ())] == 4
    assert got[("harness_request_duration_seconds_count", ())] == 1  # the cumulative histogram stays


def test_a_fault_is_active_from_injected_to_restored_and_counted() -> None:
    f = figures()
    f.add_all([event("fault_scheduled", id="f0.0", kind="process_freeze", name="freeze", at=1.0),
               event("fault_scheduled", id="f1.0", kind="process_kill", name="kill", at=2.0)])
    labels = (("fault", "f0.0"), ("kind", "process_freeze"), ("name", "freeze"))
    assert scrape(f)[("harness_fault_active", labels)] == 0
    f.add(event("fault_injected", id="f0.0", kind="process_freeze", name="freeze"))
    assert scrape(f)[("harness_fault_active", labels)] == 1
    f.add(event("fault_restored", id="f0.0", kind="process_freeze", error=None))
    f.add(event("fault_injected", id="f1.0", kind="process_kill", name="kill"))
    f.add(event("fault_restored", id="f1.0", kind="process_kill", error=None))
    got = scrape(f)
    assert got[("harness_fault_active", labels)] == 0
    assert got[("harness_fault_injections_total", labels)] == 1
    assert got[("harness_fault_injections_total", (("fault", "f1.0"), ("kind", "process_kill"),
                                                   ("name", "kill")))] == 1


def test_the_state_only_moves_forward() -> None:
    f = figures()
    f.add_all([event("run_started"), event("stack_ready"), event("load_started"),
               event("stack_ready", restart=True)])  # a restart under load: still `load`
    assert f.state == "load"
    f.add_all([event("load_stopped"), event("run_ended")])
    assert f.state == "ended"
    f.finish(SUMMARY)
    assert f.state == "judged"


def test_the_verdict_and_slo_results_once_judged() -> None:
    f = figures()
    f.add_all([second(1, [1.0]), event("fault_injected", id="f0.0", kind="k", name="n")])
    f.finish(SUMMARY)
    got = scrape(f)
    assert got[("harness_verdict", (("verdict", "fail"),))] == 1
    assert got[("harness_exit_code", ())] == 1
    first = (("index", "0"), ("metric", "p99_ms"), ("op", "<"), ("slo", "p99_ms < 250"), ("window", "all"))
    assert got[("harness_slo_measured", first)] == 8.0
    assert got[("harness_slo_threshold", first)] == 250.0
    assert got[("harness_slo_passed", first)] == 1
    second_slo = (("index", "1"), ("metric", "error_rate"), ("op", "<="), ("slo", "error_rate <= 0.001"),
                  ("window", "1s..end"))
    assert got[("harness_slo_passed", second_slo)] == 0
    third = (("index", "2"), ("metric", "p99_ms"), ("op", "<"), ("slo", "p99_ms < 250"), ("window", "faults"))
    assert ("harness_slo_measured", third) not in got  # nothing measured: no value, not a made-up 0
    assert got[("harness_slo_passed", third)] == 0
    assert got[("harness_run_latency_seconds", (("quantile", "0.99"),))] == 0.008
    assert got[("harness_load_duration_seconds", ())] == 3.0
    assert got[("harness_fault_active", (("fault", "f0.0"), ("kind", "k"), ("name", "n")))] == 0


def test_the_push_leaves_out_the_newest_seconds_figures() -> None:
    f = figures()
    f.add(second(1, [1.0]))
    f.finish(SUMMARY)
    pushed = {name for name, _ in scrape(f, live=False)}
    live_only = {s for m in METRICS if m.live for s in m.samples}
    assert live_only and not pushed & live_only
    assert {"harness_requests_total", "harness_verdict", "harness_slo_passed"} <= pushed


def test_every_declared_metric_is_exported_and_nothing_else() -> None:
    f = figures()
    f.add_all([event("run_started"), second(1, [1.0], {"timeout": 1}),
               event("fault_injected", id="f0.0", kind="k", name="n")])
    f.finish(SUMMARY)
    registry = CollectorRegistry()
    registry.register(FiguresCollector(f))
    names = {s.name for fam in text_string_to_metric_families(generate_latest(registry).decode())
             for s in fam.samples}
    assert names == exported_samples()


@pytest.mark.parametrize(("window", "label"), [
    ("all", "all"), ("outside_faults", "outside_faults"), ({"from": 5.0, "to": 20.0}, "5s..20s"),
    ({"from": 0.0, "to": None}, "0s..end"),
])
def test_window_labels(window: Any, label: str) -> None:
    assert window_label(window) == label
