"""Locust's own report and CSV files in the run folder, and their totals equal to the journal's.

`WiredRun` makes the runner's two calls (LocustOutputs.begin after the users started, finish
after the runner quit) where harness/runner.py does not make them yet; once it does, the same
tests check the runner's files, and one more runs the plain `Run`. One run in this process
against the fake stack, one with two load workers (Locust master/worker) against a tiny KServe-v2
stub, so the workers' own `triton_http` users (registered by entry point) need no real Triton.
"""

import csv
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import locust  # noqa: F401 - first, so gevent patches the standard library as in `harness run`
import pytest
import yaml

import harness.runner
import harness.users
from harness.journal import read_journal
from harness.load.distributed import WorkerPlan
from harness.load.driver import LoadDriver
from harness.load.locust_outputs import CSV_NAMES, HTML_NAME, LocustOutputs
from harness.runner import Run
from harness.scenario import Scenario, load_scenario
from harness.stacks.ports import free_ports
from tests.unit.fakes import user as fake_user
from tests.unit.fakes.logs import root_logging_kept
from tests.unit.fakes.stack import FakeSpec, FakeStack

Result = tuple[Run, dict[str, Any]]
RUNNER_WIRED = "LocustOutputs" in Path(harness.runner.__file__).read_text(encoding="utf-8")


class FakeScenario(Scenario):
    stack: FakeSpec


class WiredRun(Run):
    """Run plus the runner wiring this module needs (see harness/load/locust_outputs.py)."""

    locust_outputs: LocustOutputs | None = None

    def on_load_started(self, driver: LoadDriver, started: float) -> None:
        if not RUNNER_WIRED:  # once the runner does it, these tests check the runner's files
            self.locust_outputs = LocustOutputs.begin(driver.env, self.run_dir)

    def after_load_stopped(self) -> None:
        if self.locust_outputs is not None and not RUNNER_WIRED:
            self.journal.event("locust_outputs", **self.locust_outputs.finish())


# A KServe v2 server in a few lines: ready, and every 7th inference a 503 (errors by kind to count).
STUB = r"""
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
count = [0]
lock = threading.Lock()
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def answer(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer(200 if self.path == "/v2/health/ready" else 404, {})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with lock:
            count[0] += 1
            n = count[0]
        if n % 7 == 0:
            self.answer(503, {"error": "busy"})
        else:
            self.answer(200, {"model_name": "identity", "outputs": []})
class Server(ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address): pass  # a user cut at the load's stop: no traceback
server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
print("ready", flush=True)
server.serve_forever()
"""


@pytest.fixture(autouse=True)
def fake_feature(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(harness.users._BUILTIN, fake_user.NAME, fake_user.TARGET)
    monkeypatch.delenv("HARNESS_METRICS_PORT", raising=False)
    monkeypatch.delenv("HARNESS_PUSHGATEWAY", raising=False)
    with root_logging_kept():
        yield


@pytest.fixture
def stub() -> Iterator[str]:
    port = free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, "-c", STUB, str(port)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        url = f"http://127.0.0.1:{port}"
        urllib.request.urlopen(f"{url}/v2/health/ready", timeout=5)
        yield url
    finally:
        proc.kill()
        proc.wait(5)


def stats_rows(run_dir: Path, name: str) -> list[dict[str, str]]:
    with (run_dir / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def summary_of(run: Run) -> dict[str, Any]:
    return dict(json.loads((run.run_dir / "summary.json").read_text()))


def assert_locust_files_agree(run: Run) -> dict[str, Any]:
    summary = summary_of(run)
    totals = summary["totals"]
    run_dir = run.run_dir
    for name in (*CSV_NAMES, HTML_NAME):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    aggregated = [r for r in stats_rows(run_dir, "locust_stats.csv") if r["Name"] == "Aggregated"]
    assert len(aggregated) == 1
    assert int(aggregated[0]["Request Count"]) == totals["requests"] > 0
    assert int(aggregated[0]["Failure Count"]) == totals["errors"]
    failures = stats_rows(run_dir, "locust_failures.csv")
    assert sum(int(r["Occurrences"]) for r in failures) == totals["errors"]
    history = stats_rows(run_dir, "locust_stats_history.csv")
    assert len(history) >= 3 and history[-1]["Name"] == "Aggregated"
    assert int(history[-1]["Total Request Count"]) == totals["requests"]  # the final row: the final figures
    counts = [int(r["Total Request Count"]) for r in history]
    assert counts == sorted(counts)
    html = (run_dir / HTML_NAME).read_text(encoding="utf-8")
    assert "<html" in html.lower() and f'"num_requests": {totals["requests"]}' in html
    journaled = [r for r in read_journal(run_dir / "journal.jsonl") if r.get("event") == "locust_outputs"]
    assert journaled[0]["requests"] == totals["requests"] and journaled[0]["failures"] == totals["errors"]
    assert sorted(journaled[0]["files"]) == sorted((*CSV_NAMES, HTML_NAME))
    return summary


@pytest.fixture
def run_it(tmp_path: Path) -> Iterator[Callable[[Scenario, str, WorkerPlan | None], Result]]:
    runs: list[Run] = []

    def go(scenario: Scenario, text: str, workers: WorkerPlan | None = None) -> Result:
        path = tmp_path / f"scenario{len(runs)}.yaml"
        path.write_text(text, encoding="utf-8")
        run = WiredRun(scenario, path, tmp_path / "runs", progress=False, seed=1, workers=workers)
        runs.append(run)
        _, summary = run.execute()
        return run, summary

    yield go
    for run in runs:
        if isinstance(run.stack, FakeStack):
            run.stack.stop(graceful=False)


LOCAL = """
name: locust-files
stack: {kind: fake, respawn_after: 0.2}
load: {user: fake_http, users: 4, duration: 3s}
observe: {metrics: false, canary: false}
slo: ["requests >= 20"]
"""


def test_a_local_run_writes_locusts_files_with_the_journals_totals(
        run_it: Callable[..., Result]) -> None:
    run, summary = run_it(FakeScenario.model_validate(yaml.safe_load(LOCAL)), LOCAL)
    assert summary["verdict"] == "pass", summary["reason"]
    assert_locust_files_agree(run)


def test_a_distributed_run_writes_the_masters_merged_figures(run_it: Callable[..., Result], stub: str,
                                                            tmp_path: Path) -> None:
    text = f"""
name: locust-files-workers
stack: {{kind: external, url: "{stub}", model: identity}}
load: {{user: triton_http, users: 6, duration: 4s}}
observe: {{metrics: false}}
slo: ["requests >= 20"]
"""
    path = tmp_path / "distributed.yaml"
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    run, summary = run_it(load_scenario(path), text, WorkerPlan(local=2, join_timeout_s=60))
    assert summary["verdict"] == "pass", summary["reason"]
    stopped = [r for r in read_journal(run.run_dir / "journal.jsonl") if r.get("event") == "load_stopped"][0]
    assert stopped["workers"] == 2 and stopped["workers_without_final"] == []
    summary = assert_locust_files_agree(run)
    assert summary["totals"]["errors_by_kind"].get("http_503", 0) > 0  # the stub's 503s, counted both ways
    assert time.monotonic() - started < 60


@pytest.mark.skipif(not RUNNER_WIRED, reason="harness/runner.py does not call LocustOutputs yet")
def test_the_runner_itself_writes_them(tmp_path: Path) -> None:
    scenario = FakeScenario.model_validate(yaml.safe_load(LOCAL))
    path = tmp_path / "scenario.yaml"
    path.write_text(LOCAL, encoding="utf-8")
    run = Run(scenario, path, tmp_path / "runs", progress=False, seed=1)  # the plain Run, no wiring here
    try:
        _, summary = run.execute()
    finally:
        if isinstance(run.stack, FakeStack):
            run.stack.stop(graceful=False)
    assert summary["verdict"] == "pass", summary["reason"]
    assert_locust_files_agree(run)


def test_no_load_no_files(tmp_path: Path) -> None:
    assert LocustOutputs.begin(None, tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_a_load_that_sent_nothing_still_gets_its_files(tmp_path: Path) -> None:
    from locust.env import Environment

    env = Environment(user_classes=[])
    env.create_local_runner()
    outputs = LocustOutputs.begin(env, tmp_path)
    assert outputs is not None
    result = outputs.finish()
    assert result == {"files": sorted(result["files"], key=[*CSV_NAMES, HTML_NAME].index), "requests": 0,
                      "failures": 0}
    assert set(result["files"]) == {*CSV_NAMES, HTML_NAME}
    assert [r["Request Count"] for r in stats_rows(tmp_path, "locust_stats.csv")] == ["0"]
