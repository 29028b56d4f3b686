"""The Prometheus scraper, on metrics text captured from a real Triton 2.51 (CPU, identity model),
read with Triton's scrape profile (what `TritonStack.scrape_profile()` returns).

Fixtures: `idle` right after start; `load_a` and `load_b` 1.179 s apart while 32 HTTP clients
sent requests (5,599 then 12,970 successes).
"""

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from harness.observers.prometheus import (
    PrometheusScraper,
    Snapshot,
    derive,
    metric_key,
    parse_metrics,
    parse_scrape,
    scrape,
    split_key,
)
from harness.observers.scrape_profile import ScrapeProfile
from harness.triton.metrics_profile import TRITON_METRICS, TRITON_PROFILE
from tests.unit.observer_helpers import FakeStack, context, records

FIXTURES = Path(__file__).parent / "fixtures"
IDLE = (FIXTURES / "triton_2.51_metrics_idle.txt").read_text()
LOAD_A = (FIXTURES / "triton_2.51_metrics_load_a.txt").read_text()
LOAD_B = (FIXTURES / "triton_2.51_metrics_load_b.txt").read_text()
M = "{model=identity}"
EVERYTHING = ScrapeProfile()


def triton(text: str) -> dict[str, float]:
    return parse_metrics(text, TRITON_PROFILE)


def snapshot(t: float, text: str) -> Snapshot:
    parsed = parse_scrape(text, TRITON_PROFILE)
    return Snapshot(t, parsed.values, parsed.kinds)


def test_parse_keeps_triton_names_and_drops_version() -> None:
    values = triton(LOAD_A)
    assert values[f"nv_inference_request_success{M}"] == 5599
    assert values[f"nv_inference_queue_duration_us{M}"] == 25361931
    assert values[f"nv_inference_pending_request_count{M}"] == 8
    assert values["nv_cpu_utilization"] == pytest.approx(0.895)
    assert values["nv_cpu_memory_used_bytes"] == 517410816
    for reason in ("OTHER", "BACKEND", "CANCELED", "REJECTED"):
        assert values[f"nv_inference_request_failure{{model=identity,reason={reason}}}"] == 0
    # the parser calls counter samples `..._total`; keys use the name Triton exposes
    assert not any("_total" in key for key in values)
    # not selected by Triton's profile
    assert "nv_pinned_memory_pool_total_bytes" not in values
    assert "nv_cpu_memory_total_bytes" not in values
    assert {split_key(k)[0] for k in values} <= TRITON_METRICS


def test_parse_selection() -> None:
    everything = parse_metrics(LOAD_A, EVERYTHING)  # the default: every family, versions kept
    assert everything["nv_pinned_memory_pool_total_bytes"] == 268435456
    assert len(everything) == 18  # 15 families, failures by 4 reasons
    assert everything["nv_inference_request_success{model=identity,version=1}"] == 5599
    only = parse_metrics(LOAD_A, ScrapeProfile(select={"nv_cpu_utilization"}))
    assert list(only) == ["nv_cpu_utilization"]
    assert list(parse_metrics(LOAD_A, ScrapeProfile(select="nv_cpu_utilization"))) == ["nv_cpu_utilization"]
    gauges = parse_metrics(LOAD_A, ScrapeProfile(select=lambda name: name.startswith("nv_cpu")))
    assert set(gauges) == {"nv_cpu_utilization", "nv_cpu_memory_total_bytes", "nv_cpu_memory_used_bytes"}


def test_parse_sums_versions_keeps_other_labels_and_skips_nan() -> None:
    text = """\
# TYPE nv_inference_count counter
nv_inference_count{model="m",version="1"} 3
nv_inference_count{model="m",version="2"} 4
# TYPE h histogram
h_bucket{le="1.0"} 1
h_bucket{le="+Inf"} 2
h_sum 1.5
h_count 2
# TYPE g gauge
g NaN
"""
    values = parse_metrics(text, ScrapeProfile(dropped_labels=frozenset({"version"})))
    assert values["nv_inference_count{model=m}"] == 7
    assert values["h_count"] == 2 and values["h_sum"] == 1.5
    assert not any("bucket" in key for key in values)  # too many keys for the journal
    assert "g" not in values
    keep_version = parse_metrics(text, EVERYTHING)
    assert keep_version["nv_inference_count{model=m,version=2}"] == 4


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_metrics("# TYPE x counter\nx{model=\"a\" 1\n")


def test_metric_key_round_trip() -> None:
    key = metric_key("n", {"version": "1", "reason": "OTHER", "model": "m"}, {"version"})
    assert key == "n{model=m,reason=OTHER}"
    assert metric_key("n", {"version": "1"}) == "n{version=1}"
    assert split_key(key) == ("n", {"model": "m", "reason": "OTHER"})
    assert split_key("plain") == ("plain", {})


def test_derive_rates_and_means_under_load() -> None:
    a = snapshot(10.0, LOAD_A)
    b = snapshot(10.0 + 1.179, LOAD_B)
    d = derive(a, b, TRITON_PROFILE)
    successes = 12970 - 5599
    assert d[f"nv_inference_request_success:per_s{M}"] == pytest.approx(successes / 1.179, rel=1e-3)
    assert d[f"nv_inference_request_failure:per_s{M}"] == 0
    assert d[f"nv_inference_count:per_s{M}"] == pytest.approx(successes / 1.179, rel=1e-3)
    assert d[f"nv_inference_batch_size:mean{M}"] == 1.0
    queue = d[f"nv_inference_queue_duration_us:per_request{M}"]
    assert queue == pytest.approx((53248833 - 25361931) / successes, rel=1e-3)
    request = d[f"nv_inference_request_duration_us:per_request{M}"]
    infer = d[f"nv_inference_compute_infer_duration_us:per_request{M}"]
    assert queue < request and infer < request  # 32 clients on 2 instances: mostly queueing
    for part in ("input", "output"):
        assert d[f"nv_inference_compute_{part}_duration_us:per_request{M}"] > 0
    # gauges are not derived, the duration counters are not rated
    assert not any(k.startswith("nv_cpu") or "pending" in k for k in d)
    assert not any("duration_us:per_s" in k for k in d)
    # the same keys the scraper has always written for Triton
    assert set(d) == {
        *(f"nv_inference_{c}:per_s{M}"
          for c in ("request_success", "request_failure", "count", "exec_count")),
        *(f"nv_inference_{p}_duration_us:per_request{M}"
          for p in ("request", "queue", "compute_input", "compute_infer", "compute_output")),
        f"nv_inference_batch_size:mean{M}",
    }


def test_derive_idle_interval_has_rates_but_no_means() -> None:
    d = derive(snapshot(0.0, IDLE), snapshot(0.5, IDLE), TRITON_PROFILE)
    assert d[f"nv_inference_request_success:per_s{M}"] == 0
    assert not any(":per_request" in k or "batch_size" in k for k in d)


def test_derive_sums_failure_reasons_and_survives_a_restart() -> None:
    def snap(t: float, ok: float, other: float, rejected: float) -> Snapshot:
        return Snapshot(t, {
            "nv_inference_request_success{model=m}": ok,
            "nv_inference_request_failure{model=m,reason=OTHER}": other,
            "nv_inference_request_failure{model=m,reason=REJECTED}": rejected,
        })

    # hand-made snapshots carry no types: the profile names its counters, that is enough
    d = derive(snap(0, 100, 1, 2), snap(2, 300, 3, 6), TRITON_PROFILE)
    assert d["nv_inference_request_success:per_s{model=m}"] == 100
    assert d["nv_inference_request_failure:per_s{model=m}"] == 3
    # the server restarted: counters start again from zero; the rate is what the new one counted
    d = derive(snap(2, 300, 3, 6), snap(3, 40, 0, 0), TRITON_PROFILE)
    assert d["nv_inference_request_success:per_s{model=m}"] == 40
    assert derive(snap(1, 1, 1, 1), snap(1, 2, 2, 2), TRITON_PROFILE) == {}
    # a model that appears later is derived from its second scrape on
    assert derive(Snapshot(0, {}), snap(1, 5, 0, 0), TRITON_PROFILE) == {}


def test_scraper_writes_samples_and_counts_failures(tmp_path: Path) -> None:
    answers: Iterator[str | Exception] = iter(
        [IDLE, LOAD_A, ConnectionRefusedError(111, "Connection refused"), TimeoutError("timed out"),
         "this is { not prometheus", LOAD_B]
    )

    def fetch(url: str, timeout: float) -> str:
        answer = next(answers, LOAD_B)
        if isinstance(answer, Exception):
            raise answer
        return answer

    ctx = context(tmp_path, FakeStack(metrics="http://127.0.0.1:1/metrics", profile=TRITON_PROFILE))
    scraper = PrometheusScraper(interval_s=0.02, fetch=fetch)
    scraper.start(ctx)
    assert scraper.url == "http://127.0.0.1:1/metrics"
    assert scraper.profile is TRITON_PROFILE  # the stack's, read at start
    gevent.sleep(0.3)
    summary = scraper.stop()
    assert summary["scrape_failures"] == 3
    assert summary["profile"] == "triton"
    assert summary["last_error"].startswith("ValueError")  # the unparsable text
    assert summary["scrapes"] >= 4
    assert summary["final"][f"nv_inference_request_success{M}"] == 12970
    assert summary["increase"][f"nv_inference_request_success{M}"] == 12970
    assert not any("duration" in key for key in summary["increase"])  # rated counters only
    assert summary["longest_gap_s"] > 0
    recs = records(ctx)
    samples = [r for r in recs if r["type"] == "series" and r["name"] == "metrics"]
    assert len(samples) == summary["scrapes"]
    assert "scrape_ms" in samples[0]["values"]
    assert not any(":per_s" in k for k in samples[0]["values"])  # nothing to derive from yet
    assert samples[1]["values"][f"nv_inference_request_success:per_s{M}"] > 0
    events = [r["event"] for r in recs if r["type"] == "event"]
    # the profile's charts first; then one event per failing window, not one per failed scrape
    assert events == ["metrics_profile", "metrics_scrape_failed", "metrics_scrape_recovered"]
    declared = next(r for r in recs if r.get("event") == "metrics_profile")
    assert declared["profile"] == "triton" and declared["series"] == "metrics"
    assert [c["title"] for c in declared["charts"]] == [
        "Server: requests per second (Prometheus)", "Server: time per request (Prometheus)"]
    failed = next(r for r in recs if r.get("event") == "metrics_scrape_failed")
    assert "ConnectionRefusedError" in failed["error"]


def test_scraper_without_metrics_endpoint_skips(tmp_path: Path) -> None:
    scraper = PrometheusScraper()
    scraper.start(context(tmp_path))
    summary = scraper.stop()
    assert summary["skipped"] and summary["scrapes"] == 0


class _Metrics(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = LOAD_A.encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_http_fetch_real_socket_errors() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        assert scrape(url, profile=TRITON_PROFILE)[f"nv_inference_request_success{M}"] == 5599
        assert scrape(url)["nv_inference_request_success{model=identity,version=1}"] == 5599
        _Metrics.status = 503
        with pytest.raises(ValueError, match="HTTP 503"):
            scrape(url)
    finally:
        _Metrics.status = 200
        server.shutdown()
        server.server_close()
    # a listener that never answers: the short timeout ends the scrape
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(OSError):
            scrape(f"http://127.0.0.1:{silent.getsockname()[1]}/metrics", timeout=0.2)
        port = silent.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        scrape(f"http://127.0.0.1:{port}/metrics", timeout=0.2)
