"""A real run (the fake stack, a real freeze) with the exporter on: scraped while it goes, and its
final figures (set by the features' `after_report` hook) equal to summary.json's."""

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import locust  # noqa: F401 - first, so gevent patches the standard library as in `harness run`
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import faults.base
import harness.users
from harness.exporter.feature import SESSION_KEY
from harness.exporter.session import ExportSession
from harness.exporter.settings import PORT_ENV, PUSHGATEWAY_ENV
from harness.load.driver import LoadDriver
from harness.runner import Run
from harness.scenario import Scenario
from harness.verdict import Verdict
from tests.unit.fakes import faults as fake_faults
from tests.unit.fakes import user as fake_user
from tests.unit.fakes.logs import root_logging_kept
from tests.unit.fakes.stack import ENTRY, FakeSpec, FakeStack

Samples = dict[str, float]


class FakeScenario(Scenario):
    stack: FakeSpec


class ScrapedRun(Run):
    """A plain Run, scraped every 0.2 s while its load runs (what Prometheus would see)."""

    scrapes: list[tuple[float, Samples]]
    session: ExportSession | None = None

    def on_load_started(self, driver: LoadDriver, started: float) -> None:
        self.scrapes = []
        self.session = self.hooks.services.get(SESSION_KEY)
        if self.session is not None and self.session.url:
            gevent.spawn(self._scrape_forever, self.session.url)

    def _scrape_forever(self, url: str) -> None:
        while True:
            try:
                text = urllib.request.urlopen(url, timeout=2).read()
                self.scrapes.append((self.journal.now(), parse(text)))
            except OSError:
                return  # the exporter stopped
            gevent.sleep(0.2)


def parse(text: bytes) -> Samples:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            labels = sorted(sample.labels.items())
            extra = ",".join(f"{k}={v}" for k, v in labels if k not in ("scenario", "run_id"))
            out[f"{sample.name}{{{extra}}}" if extra else sample.name] = sample.value
    return out


SCENARIO = f"""
name: exported
stack: {{kind: fake, respawn_after: 0.2}}
load: {{user: fake_http, users: 4, duration: 4s, request_timeout: 0.3s}}
observe: {{metrics: false, canary: {{every: 0.2, timeout: 1.0, slow: 0.5}}}}
faults:
  - {{kind: process_freeze, role: {ENTRY}, at: 1.0, duration: 1.2s}}
slo: ["error_rate <= 0.001", "requests >= 20"]
"""
RunIt = Callable[[str], tuple["ScrapedRun", Verdict, dict[str, Any]]]


@pytest.fixture(autouse=True)
def fake_feature(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(harness.users._BUILTIN, fake_user.NAME, fake_user.TARGET)
    monkeypatch.setitem(faults.base._BUILTIN, fake_faults.KIND, fake_faults.TARGET)
    monkeypatch.delenv(PUSHGATEWAY_ENV, raising=False)
    with root_logging_kept():
        yield


@pytest.fixture
def run_it(tmp_path: Path) -> Iterator[RunIt]:
    runs: list[ScrapedRun] = []

    def go(text: str) -> tuple[ScrapedRun, Verdict, dict[str, Any]]:
        path = tmp_path / f"scenario{len(runs)}.yaml"
        path.write_text(text, encoding="utf-8")
        run = ScrapedRun(FakeScenario.model_validate(yaml.safe_load(text)), path, tmp_path / "runs",
                       progress=False, seed=1)
        runs.append(run)
        verdict, summary = run.execute()
        return run, verdict, summary

    yield go
    for run in runs:
        if isinstance(run.stack, FakeStack):
            run.stack.stop(graceful=False)


def test_a_run_is_exported_while_it_goes_and_its_final_figures_are_the_summarys(
        run_it: RunIt, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_ENV, "0")
    run, verdict, summary = run_it(SCENARIO)
    assert verdict.word == "fail", verdict.reason  # the freeze's timeouts fail the error-rate SLO
    session = run.session
    assert session is not None and session.server is not None
    journaled = [json.loads(line) for line in (run.run_dir / "journal.jsonl").read_text().splitlines()]
    started = [r for r in journaled if r.get("event") == "metrics_exporter"]
    assert started and started[0]["url"] == session.url and started[0]["url"].startswith("http://127.0.0.1:")

    # While it went: the state, the fault's window, counters that only grow.
    scrapes = run.scrapes
    assert len(scrapes) >= 10
    assert any(s.get("harness_run_state{state=load}") == 1 for _, s in scrapes)
    fault = "harness_fault_active{fault=f0.0,kind=process_freeze,name=process_freeze}"
    open_at = [t for t, s in scrapes if s.get(fault) == 1]
    window = next(r for r in journaled if r.get("event") == "window")
    assert open_at and all(window["start"] - 0.3 <= t <= window["end"] + 0.3 for t in open_at)
    counts = [s["harness_requests_total"] for _, s in scrapes]
    assert counts == sorted(counts) and counts[-1] > 0

    # At the end: the same totals, errors by kind, SLO results and verdict as summary.json.
    final = parse(generate_latest(session.registry))
    totals = summary["totals"]
    assert final["harness_requests_total"] == totals["requests"] > 20
    errors = {k.split("kind=")[1].rstrip("}"): v for k, v in final.items()
              if k.startswith("harness_request_errors_total{")}
    assert errors == totals["errors_by_kind"] and sum(errors.values()) == totals["errors"] > 0
    assert final["harness_request_duration_seconds_count"] == totals["ok"]
    assert final[f"harness_verdict{{verdict={summary['verdict']}}}"] == 1
    assert final["harness_exit_code"] == summary["exit_code"] == 1
    for index, slo in enumerate(summary["slos"]):
        labels = f"index={index},metric={slo['metric']},op={slo['op']},slo={slo['name']},window=all"
        assert final[f"harness_slo_passed{{{labels}}}"] == int(slo["passed"])
        assert final[f"harness_slo_measured{{{labels}}}"] == pytest.approx(slo["measured"])
        assert final[f"harness_slo_threshold{{{labels}}}"] == slo["threshold"]
    assert final["harness_run_state{state=judged}"] == 1
    p99 = totals["latency_ms"]["p99"] / 1000
    assert final["harness_run_latency_seconds{quantile=0.99}"] == pytest.approx(p99)
    assert final[fault] == 0 and final["harness_fault_injections_total{fault=f0.0,kind=process_freeze,"
                                       "name=process_freeze}"] == 1
    with pytest.raises(OSError):  # finished: the port is closed again
        urllib.request.urlopen(session.url or "", timeout=1)


def test_off_by_default_and_a_taken_port_stops_the_run_before_the_stack_starts(
        run_it: RunIt, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORT_ENV, raising=False)
    short = SCENARIO.replace("4s", "1s").replace("at: 1.0, duration: 1.2s", "at: 0.2, duration: 0.2s")
    run, verdict, _ = run_it(short)
    assert run.session is None and SESSION_KEY not in run.hooks.services
    lines = (run.run_dir / "journal.jsonl").read_text().splitlines()
    events = [json.loads(line).get("event") for line in lines]
    assert "metrics_exporter" not in events

    with socket_taken() as port:
        monkeypatch.setenv(PORT_ENV, str(port))
        run, verdict, summary = run_it(SCENARIO)
    assert verdict.word == "usage_error" and verdict.code == 2
    assert verdict.reason.startswith(f"metrics port {port} on 127.0.0.1: ") and "\n" not in verdict.reason
    assert run.stack is None  # refused before anything was started


class socket_taken:  # noqa: N801 - used as a context manager, like a function
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()


def test_time_to_scrape_is_small() -> None:
    """A scrape reads the figures once: no HDR walk, so the load's loop never waits on Prometheus."""
    from harness.exporter.metrics import FiguresCollector
    from harness.exporter.state import RunFigures
    from tests.unit.test_exporter_metrics import second

    figures = RunFigures("sc", "sc-20260101-000000")
    figures.add_all(second(t, [1.0 + i for i in range(200)], {"timeout": 3}) for t in range(50))
    collector = FiguresCollector(figures)
    started = time.perf_counter()
    for _ in range(100):
        list(collector.collect())
    assert (time.perf_counter() - started) / 100 < 0.005


def test_a_soaks_rotating_journal_is_followed_across_its_cycles(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.journal import read_journal
    from tests.unit.fakes.soak import in_process_soak
    from tests.unit.test_soak_cycle import SCENARIO as SOAK_SCENARIO

    monkeypatch.setenv(PORT_ENV, "0")
    started: list[ExportSession] = []
    start = ExportSession.start

    def record(self: ExportSession) -> None:
        started.append(self)
        start(self)

    monkeypatch.setattr(ExportSession, "start", record)
    with in_process_soak(SOAK_SCENARIO, tmp_path, monkeypatch) as soak:
        verdict, summary = soak.execute()
    (session,) = started
    assert verdict.word == "pass", verdict.reason
    records = [r for path in sorted(soak.run_dir.rglob("journal.jsonl")) for r in read_journal(path)]
    seconds = [r for r in records if r["type"] == "second"]
    final = parse(generate_latest(session.registry))
    assert final["harness_requests_total"] == sum(r["requests"] for r in seconds) > 0
    injections = {k: v for k, v in final.items() if k.startswith("harness_fault_injections_total{")}
    assert sorted(injections.values()) == [1, 1, 1] and len(injections) == 3  # c1.f0.0, c2.f0.0, c3.f0.0
    assert final["harness_verdict{verdict=pass}"] == 1 and final["harness_exit_code"] == 0
    assert final["harness_events_total{event=restarted}"] == 3
    limits = summary.get("limits") or []
    assert sum(1 for k in final if k.startswith("harness_slo_passed{")) == len(limits)
