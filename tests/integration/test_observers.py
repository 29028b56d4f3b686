"""The Prometheus scraper and the log watcher against a real tritonserver, in greenlets."""

import locust  # noqa: F401, I001 - gevent's monkey-patching first, as in the harness process

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from gevent.pool import Pool

from harness.journal import Journal, read_journal
from harness.observers.base import ObserverContext
from harness.observers.logwatch import TRITON_PATTERNS, LogWatcher
from harness.observers.prometheus import PrometheusScraper
from harness.triton.spec import TritonSpec
from harness.triton.stack import TritonStack

pytestmark = pytest.mark.real

BODY = json.dumps(
    {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [0, 1, 2, 3]}]}
)
SUCCESS = "nv_inference_request_success{model=identity}"


@pytest.fixture
def triton(tmp_path: Path) -> Iterator[TritonStack]:
    stack = TritonStack(TritonSpec(kind="triton"), tmp_path / "stack")
    try:
        stack.start()
        stack.wait_ready(60)
        yield stack
    finally:
        stack.stop()


def send(stack: TritonStack, requests: int) -> int:
    """`requests` HTTP inferences on one keep-alive connection; returns how many got a 200."""
    assert stack.endpoints.http is not None
    host, port = stack.endpoints.http.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    ok = 0
    try:
        for _ in range(requests):
            conn.request("POST", "/v2/models/identity/infer", BODY, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            ok += response.status == 200
    finally:
        conn.close()  # Triton's shutdown waits (up to 30 s) for open HTTP connections
    return ok


def test_scraper_sees_every_request(triton: TritonStack, tmp_path: Path) -> None:
    ctx = ObserverContext(Journal(tmp_path / "journal.jsonl"), triton)
    scraper = PrometheusScraper()
    scraper.start(ctx)
    gevent.sleep(0.3)
    pool = Pool(8)
    sent = sum(pool.imap_unordered(lambda _: send(triton, 100), range(8)))
    assert sent == 800
    gevent.sleep(0.6)
    summary = scraper.stop()
    ctx.journal.close()

    assert summary["scrape_failures"] == 0, summary["last_error"]
    assert summary["scrapes"] >= 4
    assert summary["increase"][SUCCESS] >= sent
    assert summary["final"]["nv_inference_request_failure{model=identity,reason=OTHER}"] == 0
    samples = [r for r in read_journal(ctx.journal.path) if r.get("name") == "metrics"]
    assert len(samples) == summary["scrapes"]
    counts = [s["values"][SUCCESS] for s in samples]
    assert counts == sorted(counts) and counts[-1] - counts[0] >= sent
    rates = [s["values"].get("nv_inference_request_success:per_s{model=identity}", 0) for s in samples]
    assert max(rates) > 100
    assert any("nv_inference_queue_duration_us:per_request{model=identity}" in s["values"] for s in samples)
    assert all(s["values"]["scrape_ms"] < 1000 for s in samples)


def test_log_watcher_and_scraper_across_a_server_stop(triton: TritonStack, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    ctx = ObserverContext(journal, triton)
    patterns = {**TRITON_PATTERNS, "http_started": r"Started HTTPService at (\S+?)\"?$"}
    watcher = LogWatcher(patterns)
    scraper = PrometheusScraper()
    watcher.start(ctx)
    scraper.start(ctx)
    assert send(triton, 200) == 200
    gevent.sleep(0.5)
    report = triton.stop()  # SIGTERM: Triton logs `Signal (15) received.`, then exits
    gevent.sleep(0.6)
    watched = watcher.stop()
    scraped = scraper.stop()
    journal.close()

    assert report.exits["server"]["forced_kill"] is False
    http_port = triton.ports["http"]
    started = watched["patterns"]["http_started"]
    assert started["count"] == 1 and started["values"] == {f"127.0.0.1:{http_port}": 1}
    signals = watched["patterns"]["signal_any"]
    assert signals["count"] == 1 and signals["values"] == {"15": 1}
    assert signals["first_line"] == "Signal (15) received."
    assert watched["patterns"]["signal_11"]["count"] == 0
    assert started["first_t"] <= signals["first_t"]

    assert scraped["scrapes"] > 0 and scraped["scrape_failures"] > 0
    assert "ConnectionRefusedError" in scraped["last_error"]
    assert scraped["final"][SUCCESS] >= 200

    records = read_journal(journal.path)
    matches = {r["pattern"]: r for r in records if r.get("event") == "log_match"}
    assert set(matches) == {"http_started", "signal_any"}
    assert matches["signal_any"]["line"] == "Signal (15) received."
    assert any(r.get("event") == "metrics_scrape_failed" for r in records)
    series = [r["values"] for r in records if r.get("name") == "log_matches"]
    assert series[-1]["signal_any"] == 1


def test_observers_follow_a_killed_and_restarted_server(triton: TritonStack, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    ctx = ObserverContext(journal, triton)
    watcher = LogWatcher({"http_started": r"Started HTTPService"})
    scraper = PrometheusScraper()
    watcher.start(ctx)
    scraper.start(ctx)
    assert send(triton, 300) == 300
    gevent.sleep(0.4)
    triton.stop(graceful=False)  # SIGKILL: no shutdown lines, the metrics port just goes away
    gevent.sleep(0.5)
    triton.start()  # same ports, same log file (appended)
    triton.wait_ready(60)
    assert send(triton, 100) == 100
    gevent.sleep(0.6)
    watched = watcher.stop()
    scraped = scraper.stop()
    journal.close()

    assert watched["patterns"]["http_started"]["count"] == 2
    assert scraped["scrape_failures"] > 0
    # the counter restarted from zero; the increase counts both servers' requests
    assert scraped["increase"][SUCCESS] == 400
    assert scraped["final"][SUCCESS] == 100
    records = read_journal(journal.path)
    events = [r["event"] for r in records if r["type"] == "event"]
    assert events.index("metrics_scrape_failed") < events.index("metrics_scrape_recovered")
    rates = [
        r["values"].get("nv_inference_request_success:per_s{model=identity}", 0)
        for r in records
        if r.get("name") == "metrics"
    ]
    assert min(rates) >= 0
