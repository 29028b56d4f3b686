"""The exporter against a real Prometheus (and Pushgateway): Debian's `prometheus` and
`prometheus-pushgateway` packages, started here on free loopback ports, scraping every second.

The series are read back through Prometheus's HTTP API and compared with the run's journal and
summary.json: totals, errors by kind, each scraped second's count, the fault's window, the SLO
results and the verdict; the shipped Grafana dashboard's every query is run against them.
Without the binaries these tests skip, except in CI (`CI` set), where they fail.

- a run in this process against the fake stack with a real freeze: live series, the verdict,
  the push, the linger, the dashboard's queries;
- `harness run` as users run it, two load workers, against a KServe-v2 stub; a Pushgateway
  that is down;
- the same against a real Triton (marked `real`).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest

from harness.exitcodes import ExitCode
from harness.exporter.settings import LINGER_ENV, PORT_ENV, PUSHGATEWAY_ENV
from harness.journal import read_journal
from harness.stacks.ports import free_ports
from tests.conftest import only_run_dir, run_harness, triton_available
from tests.unit.test_exporter_dashboard import load as load_dashboard

SCRAPE_S = 1.0


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"`{name}` is not installed (apt-get install {name}; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class Prometheus:
    """A real Prometheus server: its own config, data folder and loopback port; the HTTP API."""

    def __init__(self, folder: Path, targets: list[str], pushgateway: str | None = None):
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets = [*targets, *([pushgateway] if pushgateway else [])]
        jobs = [{"job_name": "harness", "scrape_interval": f"{SCRAPE_S:g}s",
                 "static_configs": [{"targets": targets}]}]
        if pushgateway:
            jobs.append({"job_name": "pushgateway", "honor_labels": True, "scrape_interval": f"{SCRAPE_S:g}s",
                         "static_configs": [{"targets": [pushgateway]}]})
        config = folder / "prometheus.yml"
        # JSON is YAML: Prometheus reads it as its config file.
        config.write_text(json.dumps({"global": {"scrape_interval": f"{SCRAPE_S:g}s"},
                                      "scrape_configs": jobs}))
        self.log = folder / "prometheus.log"
        self.proc = subprocess.Popen(
            [_binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        wait_until(lambda: _get(f"{self.url}/-/ready") is not None, 30, f"prometheus ready ({self.log})")
        # Prometheus hands its scrapers their targets a few seconds after it is ready: until each
        # target was tried once (down, before the run), the run's first seconds would go unscraped.
        wait_until(self._every_target_tried, 30, "prometheus's first scrape of every target")

    def _every_target_tried(self) -> bool:
        active = self.api("targets")["activeTargets"]
        tried = [t for t in active if not t["lastScrape"].startswith("0001")]  # Go's zero time: never
        return len(tried) == len(self.targets)

    def api(self, path: str, **params: Any) -> Any:
        reply = _get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert reply is not None, f"no answer from prometheus for {path} {params}"
        body = json.loads(reply)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return list(self.api("query", **params)["result"])

    def values(self, expr: str, key: str = "", at: float | None = None) -> dict[str, float]:
        """{label `key`'s value (or ''): the value} of an instant query."""
        return {r["metric"].get(key, ""): float(r["value"][1]) for r in self.query(expr, at)}

    def range(self, expr: str, start: float, end: float, step: float = SCRAPE_S) -> list[dict[str, Any]]:
        return list(self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}",
                             step=f"{step:g}")["result"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Pushgateway:
    def __init__(self, folder: Path):
        self.port = free_ports(1)[0]
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.proc = subprocess.Popen(
            [_binary("prometheus-pushgateway"), f"--web.listen-address={self.address}",
             f"--persistence.file={folder / 'pushgateway.data'}", "--log.level=warn"],
            stdout=(folder / "pushgateway.log").open("w"), stderr=subprocess.STDOUT)
        wait_until(lambda: _get(f"{self.url}/-/ready") is not None, 30, "pushgateway ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return bytes(reply.read())
    except OSError:
        return None


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    started: list[Prometheus | Pushgateway] = []

    def start(targets: list[str], pushgateway: Pushgateway | None = None) -> Prometheus:
        prometheus = Prometheus(tmp_path, targets, pushgateway.address if pushgateway else None)
        started.append(prometheus)
        return prometheus

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[Pushgateway]:
    gateway = Pushgateway(tmp_path)
    yield gateway
    gateway.stop()


def seconds_of(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_journal(run_dir / "journal.jsonl") if r["type"] == "second"]


def run_selector(run_dir: Path) -> str:
    return f'run_id="{run_dir.name}"'


def assert_scraped_seconds_are_the_journals(prometheus: Prometheus, run_dir: Path, sel: str, start: float,
                                            end: float) -> list[float]:
    """Every scrape saw a journal second's count, and the counter was always a sum of whole
    seconds (a prefix of the journal): the exporter serves what the journal holds, nothing else."""
    seconds = seconds_of(run_dir)
    per_second = {int(r["requests"]) for r in seconds}
    sampled = prometheus.range(f"harness_second_requests{{{sel}}}", start, end)
    assert sampled, "no harness_second_requests samples"
    assert {int(float(v)) for _, v in sampled[0]["values"]} <= per_second
    prefixes = set(accumulate(int(r["requests"]) for r in seconds)) | {0}
    counters = prometheus.range(f"harness_requests_total{{{sel}}}", start, end)
    values = [int(float(v)) for _, v in counters[0]["values"]]
    assert set(values) <= prefixes and values == sorted(values)
    return [float(v) for v in values]


def run_dashboard_queries(prometheus: Prometheus, run_dir: Path, scenario: str,
                          at: float) -> dict[str, list[dict[str, Any]]]:
    """Every query of the shipped dashboard, with Grafana's variables filled in, runs; what each
    panel's queries returned, by `panel title/refId`."""
    dashboard = load_dashboard()
    filled = {"$scenario": scenario, "$run_id": run_dir.name, "$__rate_interval": "4s", "$__interval": "1s"}
    found: dict[str, list[dict[str, Any]]] = {}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in filled.items():
                expr = expr.replace(name, value)
            found[f"{panel['title']}/{target['refId']}"] = prometheus.query(expr, at)
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            expr = annotation["expr"]
            for name, value in filled.items():
                expr = expr.replace(name, value)
            prometheus.query(expr, at)  # valid PromQL (an error fails in `api`)
    return found


def test_a_run_in_this_process_is_scraped_pushed_and_agrees_with_its_summary(
        servers: Callable[..., Prometheus], pushgateway: Pushgateway, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import locust  # noqa: F401 - first, so gevent patches the standard library as in `harness run`
    import yaml

    import harness.users
    from tests.unit.fakes import user as fake_user
    from tests.unit.fakes.logs import root_logging_kept
    from tests.unit.fakes.stack import FakeStack
    from tests.unit.test_exporter_run import SCENARIO, FakeScenario, ScrapedRun

    exporter_port = free_ports(1)[0]
    prometheus = servers([f"127.0.0.1:{exporter_port}"], pushgateway)
    monkeypatch.setitem(harness.users._BUILTIN, fake_user.NAME, fake_user.TARGET)
    monkeypatch.setenv(PORT_ENV, str(exporter_port))
    monkeypatch.setenv(PUSHGATEWAY_ENV, pushgateway.url)
    monkeypatch.setenv(LINGER_ENV, f"{3 * SCRAPE_S:g}")  # Prometheus's last scrapes see the verdict
    text = SCENARIO.replace("duration: 4s", "duration: 6s").replace("at: 1.0, duration: 1.2s",
                                                                    "at: 2.0, duration: 2s")
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    began = time.time()
    scenario = FakeScenario.model_validate(yaml.safe_load(text))
    run = ScrapedRun(scenario, path, tmp_path / "runs", progress=False, seed=1)
    try:
        with root_logging_kept():
            verdict, summary = run.execute()
    finally:
        if isinstance(run.stack, FakeStack):
            run.stack.stop(graceful=False)
    ended = time.time()
    assert verdict.word == "fail", verdict.reason  # the freeze's timeouts fail its error-rate SLO
    sel = run_selector(run.run_dir)
    totals = summary["totals"]
    # Each figure as Prometheus stored it from the harness job; the run is over, its series are
    # stale now, so the newest value within the run is asked for.
    job = f'job="harness", instance="127.0.0.1:{exporter_port}", {sel}'  # not the Pushgateway's copy
    wait_until(lambda: prometheus.query(f"last_over_time(harness_verdict{{{job}}}[5m])"), 10, "the verdict")
    last = prometheus.values(f"last_over_time(harness_requests_total{{{job}}}[5m])")
    assert last == {"": totals["requests"]}  # the last scrapes came after the final figures: exact
    errors = prometheus.values(f"last_over_time(harness_request_errors_total{{{job}}}[5m])", "kind")
    assert errors == {k: float(v) for k, v in totals["errors_by_kind"].items()} and errors
    verdicts = prometheus.values(f"last_over_time(harness_verdict{{{job}}}[5m])", "verdict")
    assert verdicts == {summary["verdict"]: 1.0}
    assert prometheus.values(f"last_over_time(harness_exit_code{{{job}}}[5m])") == {"": summary["exit_code"]}
    measured = prometheus.values(f"last_over_time(harness_slo_measured{{{job}}}[5m])", "slo")
    passed = prometheus.values(f"last_over_time(harness_slo_passed{{{job}}}[5m])", "slo")
    thresholds = prometheus.values(f"last_over_time(harness_slo_threshold{{{job}}}[5m])", "slo")
    for slo in summary["slos"]:
        assert measured[slo["name"]] == pytest.approx(slo["measured"])
        assert passed[slo["name"]] == float(slo["passed"])
        assert thresholds[slo["name"]] == slo["threshold"]

    # While it ran: each scrape saw one of the journal's seconds; the fault's window, in wall time.
    assert_scraped_seconds_are_the_journals(prometheus, run.run_dir, job, began, ended)
    fault = prometheus.range(f'harness_fault_active{{{job}, kind="process_freeze"}}', began, ended)
    open_at = [float(t) for t, v in fault[0]["values"] if v == "1"]
    journal = read_journal(run.run_dir / "journal.jsonl")
    injected = next(r for r in journal if r.get("event") == "fault_injected")["wall"]
    restored = next(r for r in journal if r.get("event") == "fault_restored")["wall"]
    assert open_at and all(injected - SCRAPE_S <= t <= restored + 2 * SCRAPE_S for t in open_at)
    assert max(open_at) - min(open_at) >= 1.0  # a 2 s window, scraped every second
    states = prometheus.range(f'harness_run_state{{{job}}} == 1', began, ended)
    seen = {r["metric"]["state"] for r in states}
    assert {"load", "judged"} <= seen, seen

    # The Pushgateway's copy, scraped by the same Prometheus: totals and verdict, not the last second.
    pushed = f'job="harness", instance="", {sel}'
    wait_until(lambda: prometheus.query(f"harness_verdict{{{pushed}}}"), 15, "the pushed verdict")
    assert prometheus.values(f"harness_requests_total{{{pushed}}}") == {"": totals["requests"]}
    assert prometheus.values(f"harness_verdict{{{pushed}}}", "verdict") == {summary["verdict"]: 1.0}
    assert prometheus.query(f"harness_latency_seconds{{{pushed}}}") == []
    groups = json.loads(_get(f"{pushgateway.url}/api/v1/metrics") or b"{}")["data"]
    assert [g["labels"] for g in groups] == [{"job": "harness", "scenario": "exported"}]

    # The dashboard's queries all run, and its main panels have data for this run.
    # The run is in Prometheus twice now (the exporter's scrapes, the Pushgateway's copy): the
    # dashboard counts it once.
    found = run_dashboard_queries(prometheus, run.run_dir, "exported", ended - 2 * SCRAPE_S)
    for panel in ("Verdict/A", "Run state/A", "SLO results/B", "Whole-run latency/A"):
        assert found[panel], (panel, found)
    # Just thawed: the freeze's failures are in the errors panel. The exporter serves a second
    # once the journal has it, a second or two after it ended (longer on a loaded machine), so
    # the panel is asked at each scrape after the thaw while its 4 s rate window still covers them.
    afterwards = [run_dashboard_queries(prometheus, run.run_dir, "exported", restored + k * SCRAPE_S)
                  for k in (1, 2, 3)]
    panel = "Errors per second by kind/A"
    assert any(float(r["value"][1]) > 0 for at in afterwards for r in at[panel]), afterwards
    during = afterwards[0]
    for panel in ("Requests per second/A", "Requests per second/B", "Fault windows/A"):
        assert during[panel], (panel, during)
    latency = "Latency p50 / p99 (successful requests)"
    served = run_dashboard_queries(prometheus, run.run_dir, "exported", restored + 3 * SCRAPE_S)
    for ref in "ABC":  # serving again: each second's percentiles, and the histogram's
        assert served[f"{latency}/{ref}"], (ref, served)
    assert [float(r["value"][1]) for r in found["Requests/A"]] == [totals["requests"]]
    assert [float(r["value"][1]) for r in found["Requests/B"]] == [totals["errors"]]
    assert [float(r["value"][1]) for r in found["Verdict/A"]] == [summary["exit_code"]]
    assert [r["metric"]["state"] for r in found["Run state/A"]] == ["judged"]
    assert len(found["SLO results/C"]) == len(summary["slos"])
    assert len(found["SLO results/A"]) == sum(1 for slo in summary["slos"] if slo["measured"] is not None)


STUB_SCENARIO = """\
name: {name}
stack: {{kind: external, url: "{url}", model: identity}}
load: {{user: triton_http, users: 6, duration: 6s}}
observe: {{metrics: false}}
slo: ["requests >= 20"]
"""


@pytest.fixture
def stub() -> Iterator[str]:
    from tests.unit.test_locust_outputs import STUB  # a KServe-v2 stub (that module loads Locust: here)

    port = free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, "-c", STUB, str(port)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(5)


def assert_cli_run_exported(prometheus: Prometheus, result: subprocess.CompletedProcess[str], run_dir: Path,
                            began: float, ended: float, port: int) -> None:
    url = f"http://127.0.0.1:{port}/metrics"
    assert f"metrics: {url}" in result.stdout
    started = [r for r in read_journal(run_dir / "journal.jsonl") if r.get("event") == "metrics_exporter"]
    assert started and started[0]["url"] == url
    summary = json.loads((run_dir / "summary.json").read_text())
    values = assert_scraped_seconds_are_the_journals(prometheus, run_dir, run_selector(run_dir), began, ended)
    seconds = seconds_of(run_dir)
    sel = run_selector(run_dir)
    # The linger kept the final figures up for the last scrapes: the verdict, and the exact totals.
    verdict = prometheus.values(f"last_over_time(harness_verdict{{{sel}}}[5m])", "verdict")
    assert verdict == {summary["verdict"]: 1.0}
    assert values[-1] == summary["totals"]["requests"] == sum(int(r["requests"]) for r in seconds)
    errors = prometheus.values(f"last_over_time(harness_request_errors_total{{{sel}}}[5m])", "kind")
    assert errors == {kind: float(n) for kind, n in summary["totals"]["errors_by_kind"].items()}


def test_harness_run_with_workers_is_scraped_while_it_goes(servers: Callable[..., Prometheus], stub: str,
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_ports(1)[0]
    prometheus = servers([f"127.0.0.1:{port}"])
    path = tmp_path / "stub.yaml"
    path.write_text(STUB_SCENARIO.format(name="exported-cli", url=stub), encoding="utf-8")
    monkeypatch.setenv(PORT_ENV, str(port))
    monkeypatch.setenv(LINGER_ENV, f"{3 * SCRAPE_S:g}")
    began = time.time()
    result = run_harness("run", str(path), "--runs-dir", "runs", "--no-progress", "--workers", "2",
                         cwd=tmp_path)
    ended = time.time()
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    assert_cli_run_exported(prometheus, result, run_dir, began, ended, port)
    errors = prometheus.values(f'last_over_time(harness_request_errors_total{{{run_selector(run_dir)}}}[5m])',
                               "kind")
    assert errors.get("http_503", 0) > 0  # the stub's 503s, by kind


def test_a_down_pushgateway_is_one_line_and_the_run_keeps_its_verdict(stub: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stub.yaml"
    path.write_text(STUB_SCENARIO.format(name="push-down", url=stub).replace("6s", "2s"), encoding="utf-8")
    gateway = f"http://127.0.0.1:{free_ports(1)[0]}"
    monkeypatch.setenv(PUSHGATEWAY_ENV, gateway)
    result = run_harness("run", str(path), "--runs-dir", "runs", "--no-progress", cwd=tmp_path)
    assert result.returncode == ExitCode.PASS, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("pushgateway ")]
    assert len(lines) == 1 and re.match(rf"pushgateway {re.escape(gateway)}: not pushed \(", lines[0])
    assert (only_run_dir(tmp_path / "runs") / "summary.json").is_file()


@pytest.mark.real
@pytest.mark.skipif(not triton_available(), reason="needs nvidia-pytriton")
def test_a_triton_run_with_a_freeze_is_scraped(servers: Callable[..., Prometheus], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_ports(1)[0]
    prometheus = servers([f"127.0.0.1:{port}"])
    path = tmp_path / "triton.yaml"
    path.write_text(
        "name: exported-triton\nstack: {kind: triton, model: identity, instances: 2}\n"
        "load: {user: triton_http, users: 8, duration: 10s, request_timeout: 1s}\n"
        "faults: [{kind: process_freeze, role: server, at: 3s, duration: 3s}]\n"
        'slo: ["requests >= 100"]\n', encoding="utf-8")
    began = time.time()
    monkeypatch.setenv(PORT_ENV, str(port))
    monkeypatch.setenv(LINGER_ENV, f"{3 * SCRAPE_S:g}")
    result = run_harness("run", str(path), "--runs-dir", "runs", "--no-progress", cwd=tmp_path)
    ended = time.time()
    assert result.returncode in (ExitCode.PASS, ExitCode.SLO_FAILED), result.stdout + result.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    assert_cli_run_exported(prometheus, result, run_dir, began, ended, port)
    selector = f'{run_selector(run_dir)}, kind="process_freeze"'
    fault = prometheus.range(f"harness_fault_active{{{selector}}}", began, ended)
    assert any(v == "1" for _, v in fault[0]["values"])
