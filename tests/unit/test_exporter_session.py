"""One run's exporter session: a real HTTP endpoint on loopback, the push, the linger, the port rules."""

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.errors import UsageError
from harness.exporter import session as session_module
from harness.exporter.follow import journal_paths
from harness.exporter.session import ExportSession
from harness.exporter.settings import ExporterSettings
from harness.exporter.state import RunFigures
from harness.journal import Journal, read_journal
from harness.stacks.ports import free_ports

SUMMARY = {"verdict": "pass", "exit_code": 0, "slos": [
    {"name": "error_rate < 0.5", "metric": "error_rate", "op": "<", "threshold": 0.5, "measured": 0.25,
     "passed": True, "window": "all"}], "totals": {"latency_ms": {"p99": 3.0}, "duration_s": 1.0}}


def scrape(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sorted(sample.labels.items())
            extra = ",".join(f"{k}={v}" for k, v in labels if k not in ("scenario", "run_id"))
            out[f"{sample.name}{{{extra}}}" if extra else sample.name] = sample.value
    return out


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal(tmp_path / "journal.jsonl")
    yield journal
    journal.close()


def make(journal: Journal, said: Said, **settings: Any) -> ExportSession:
    return ExportSession(ExporterSettings(**settings), RunFigures("sc", "sc-1", stack="fake"),
                         journal_paths(journal), journal, say=said)


def wait_for(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_it_serves_the_journal_as_it_grows_on_loopback_and_says_where(journal: Journal) -> None:
    said = Said()
    session = make(journal, said, port=0)
    session.start()
    try:
        assert session.url is not None and session.url.startswith("http://127.0.0.1:")
        assert said.lines == [f"metrics: {session.url}"]
        started = [r for r in read_journal(journal.path) if r.get("event") == "metrics_exporter"]
        assert started[0]["url"] == session.url and started[0]["pushgateway"] is None
        journal.event("load_started")
        journal.second({"t": 0, "requests": 4, "ok": 3, "errors": {"http_503": 1}, "latency_ms": {}})
        wait_for(lambda: scrape(session.url or "").get("harness_requests_total") == 4)
        got = scrape(session.url)
        assert got["harness_request_errors_total{kind=http_503}"] == 1
        assert got["harness_run_state{state=load}"] == 1
        journal.event("run_ended")
        session.finish(SUMMARY)
        assert session.figures.state == "judged" and session.figures.events["run_ended"] == 1
    finally:
        session.close()
    with pytest.raises(OSError):  # stopped: nothing listens there any more
        urllib.request.urlopen(session.url, timeout=1)


def test_a_taken_port_is_one_line_before_anything_starts(journal: Journal) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=rf"^metrics port {port} on 127.0.0.1: .*in use"):
            make(journal, Said(), port=port).start()


def test_it_binds_loopback_only(journal: Journal) -> None:
    session = make(journal, Said(), port=0)
    session.start()
    try:
        assert session.server is not None and session.server._httpd.server_address[0] == "127.0.0.1"
    finally:
        session.close()


def test_a_pushgateway_that_is_down_is_one_line_and_the_session_still_ends(journal: Journal) -> None:
    said = Said()
    port = free_ports(1)[0]
    session = make(journal, said, pushgateway=f"http://127.0.0.1:{port}")
    session.start()
    session.finish(SUMMARY)
    assert len(said.lines) == 1
    assert said.lines[0].startswith(f"pushgateway http://127.0.0.1:{port}: not pushed (")
    assert "results are in its folder" in said.lines[0] and "\n" not in said.lines[0]


class _Gateway(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_PUT(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(("PUT", self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        return


def test_the_final_figures_are_pushed_under_the_scenarios_group(journal: Journal) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        said = Said()
        gateway = f"http://127.0.0.1:{server.server_port}"
        session = make(journal, said, pushgateway=gateway)
        session.start()
        journal.second({"t": 0, "requests": 2, "ok": 2, "errors": {}, "latency_ms": {"p50": 1.0}})
        session.finish(SUMMARY)
    finally:
        server.shutdown()
        server.server_close()
    assert said.lines == [f"metrics: pushed to {gateway}"]
    method, path, body = _Gateway.received[-1]
    assert path == "/metrics/job/harness/scenario/sc"  # each scenario's latest run replaces its last
    text = body.decode()
    assert 'harness_requests_total{run_id="sc-1",scenario="sc"} 2.0' in text
    assert 'harness_verdict{run_id="sc-1",scenario="sc",verdict="pass"} 1.0' in text
    assert "harness_latency_seconds" not in text  # the newest second's figure means nothing there


def test_the_linger_keeps_the_final_figures_served_and_ctrl_c_only_ends_it(
        journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    said = Said()
    session = make(journal, said, port=0, linger_s=30.0)
    session.start()
    url = session.url or ""
    seen: dict[str, float] = {}

    def sleep(seconds: float) -> None:
        assert seconds == 30.0
        seen.update(scrape(url))  # scraped while it lingers: the verdict is there
        raise KeyboardInterrupt

    monkeypatch.setattr(session_module.time, "sleep", sleep)
    session.finish(SUMMARY)  # no KeyboardInterrupt comes out: the run is judged already
    assert seen["harness_verdict{verdict=pass}"] == 1
    assert seen["harness_slo_passed{index=0,metric=error_rate,op=<,slo=error_rate < 0.5,window=all}"] == 1
    assert said.lines[-1] == f"metrics: serving the final figures at {url} for 30s"


def test_a_new_session_closes_the_one_a_previous_run_left_open(journal: Journal) -> None:
    port = free_ports(1)[0]
    first = make(journal, Said(), port=port)
    first.start()  # never finished: the core had no after_report hook, say
    second = make(journal, Said(), port=port)
    second.start()  # the same fixed port: free again
    try:
        assert second.url == f"http://127.0.0.1:{port}/metrics"
        assert scrape(second.url)["harness_run_state{state=starting}"] == 1
    finally:
        second.close()


def test_the_verdict_is_read_from_summary_json_or_a_soaks_soak_json(tmp_path: Path) -> None:
    from harness.exporter.feature import read_summary

    assert read_summary(tmp_path) == {}
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    assert read_summary(tmp_path)["slos"] == SUMMARY["slos"]
    limits = [{"name": "rss_growth < 10%", "metric": "rss_growth", "op": "<", "threshold": 0.1,
               "measured": 0.02, "passed": True, "window": "all"}]
    (tmp_path / "soak.json").write_text(json.dumps({"verdict": "pass", "exit_code": 0, "limits": limits}))
    soak = read_summary(tmp_path)
    assert soak["verdict"] == "pass" and soak["slos"] == limits
    (tmp_path / "soak.json").write_text("{torn")
    assert read_summary(tmp_path)["slos"] == SUMMARY["slos"]
