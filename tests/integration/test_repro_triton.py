"""Triton reproductions of scenarios/repro/, against a real Triton 2.51, through `harness run`:
each scenario runs once, when the first test that reads it asks, and the tests check what it
reproduces beyond the verdict. CI runs the cheapest two (the leak, the unload); the rest run in
the nightly job (tox -e nightly), where the whole library also runs (tox -e repro).
"""

from pathlib import Path

import pytest

from harness.exitcodes import ExitCode
from tests.repro_runs import LazyRuns

pytestmark = pytest.mark.real

SCENARIOS = {
    "stub_kill": "scenarios/repro/triton-stub-kill-health-200.yaml",
    "shm_left": "scenarios/repro/triton-server-kill-shm-left.yaml",
    "unload": "scenarios/repro/triton-model-unload-in-flight.yaml",
    "reload": "scenarios/repro/triton-model-reload-under-load.yaml",
    "freeze": "scenarios/repro/triton-stub-freeze-thaw.yaml",
}
STUB_UNHEALTHY = "is not healthy"  # python_backend's error for a request to a dead stub's instance


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> LazyRuns:
    return LazyRuns(tmp_path_factory, SCENARIOS)


@pytest.mark.nightly
def test_a_dead_stub_fails_requests_for_good_while_health_says_ready(runs: LazyRuns) -> None:
    ran = runs["stub_kill"]
    assert ran.result.returncode == ExitCode.PASS, ran.output
    assert ran.summary["verdict"] == "reproduced"
    (killed,) = ran.events("fault_injected")
    (exited,) = [e for e in ran.events("process_exited") if e["role"] == "stub"]
    assert exited["loss"] == "replica" and exited["pid"] in killed["signalled"]
    # Health never noticed: no hang, no degraded state, and the server lived to the stop.
    assert not ran.events("hang_detected") and not ran.events("degraded")
    assert not [e for e in ran.events("process_exited") if e["role"] == "server"]
    # No stub is started again: python_backend 24.10 has only a TODO where 24.05 restarted it.
    assert not [e for e in ran.events("process_started") if e.get("role") == "stub"]
    (window,) = ran.summary["error_windows"]
    assert window["failed_requests"] >= 5, window
    assert all(STUB_UNHEALTHY in message for message in window["error_messages"].values()), window
    assert window["last_error_after_s"] >= 8.0, window
    # Each failure waited out the backend's 1 s health-mutex timeout: about one a second.
    assert window["failed_requests"] <= 3 * (window["last_error_after_s"] + 1), window
    # At the stop the server waits on the model it cannot unload, past the stop timeout.
    assert ran.log_count("stop_waits_on_model") >= 2
    assert ran.summary["stack"]["stop"]["exits"]["server"]["forced_kill"] is True


def test_a_dead_stubs_shared_memory_outlives_the_server(runs: LazyRuns) -> None:
    ran = runs["shm_left"]
    assert ran.result.returncode == ExitCode.PASS, ran.output
    assert ran.summary["verdict"] == "reproduced"
    (server,) = [e for e in ran.events("process_exited") if e["role"] == "server"]
    assert server.get("signal") == "SIGKILL", server
    stubs = [e for e in ran.events("process_exited") if e["role"] == "stub"]
    assert [e for e in stubs if not e.get("consequence")] and all(e["t"] < server["t"] for e in stubs
                                                                  if not e.get("consequence"))
    leaks = ran.summary["stack"]["stop"]["leaks"]
    assert any("shared-memory region(s) left in /dev/shm" in leak for leak in leaks), leaks
    lines = (ran.run_dir / "stack" / "logs" / "stack-stop.log").read_text().splitlines()
    regions = [line.split(": ", 1)[1].split()[0] for line in lines if line.startswith("shared-memory region")]
    assert regions and all(name.startswith("triton_python_backend_shm_region_") for name in regions)
    assert ran.log_count("shm_left") == len(regions)
    # The harness removed what it found; nothing this run mapped is left for the next one.
    assert not [name for name in regions if (Path("/dev/shm") / name).exists()]


def test_unloading_a_model_under_load_fails_requests_and_readiness(runs: LazyRuns) -> None:
    ran = runs["unload"]
    assert ran.result.returncode == ExitCode.PASS, ran.output
    assert ran.summary["verdict"] == "reproduced"
    (injected,) = ran.events("fault_injected")
    assert injected["kind"] == "model_control" and injected["plan"]["action"] == "unload"
    assert injected["answer"]["status"] == 200 and injected["plan"]["was_ready"] is True
    (restored,) = ran.events("fault_restored")
    assert restored["error"] is None  # loaded again and ready
    hangs = ran.events("hang_detected")
    assert hangs and all(h["t"] >= injected["t"] for h in hangs)
    assert all(str(h["probe"]).startswith("Bad Request") for h in hangs), hangs  # ready: 400
    failed = [e for e in ran.events("canary_failed") if e["t"] >= injected["t"]]
    assert any("unknown model" in e["detail"] for e in failed), failed
    (window,) = ran.summary["error_windows"]
    assert window["failed_requests"] >= 1 and window["first_error_after_s"] < 4.0, window
    assert any("unknown model" in message or "NOT_FOUND" in message or "UNAVAILABLE" in message
               for message in window["error_messages"].values()), window
    # After the reload the model serves again: the last seconds of load have no errors.
    seconds = [r for r in ran.records if r.get("type") == "second"]
    tail = [s for s in seconds if s["t"] > restored["t"] + 1]
    assert tail and all(not s["errors"] and s["ok"] > 0 for s in tail), tail
    assert ran.log_count("unloaded") >= 1  # and once more at the stop


@pytest.mark.nightly
def test_reloading_a_model_under_load_fails_no_request(runs: LazyRuns) -> None:
    ran = runs["reload"]
    assert ran.result.returncode == ExitCode.PASS, ran.output
    assert ran.summary["verdict"] == "pass"
    injected = ran.events("fault_injected")
    assert [e["plan"]["action"] for e in injected] == ["reload", "reload"]
    assert all(e["answer"]["status"] == 200 and e["model_ready_after"] for e in injected), injected
    # A real reload (new stubs, then the old ones unloaded) takes seconds; Triton answers the
    # load call when the new version serves. A load it took as "unchanged" answers in ~1 ms.
    assert all(e["answer"]["seconds"] > 0.5 for e in injected), injected
    for event in injected:
        sent_t = event["t"] - event["answer"]["seconds"] - 0.5
        started = [p for p in ran.events("process_started")
                   if p["role"] == "stub" and sent_t <= p["t"] <= event["t"]]
        assert started, event
    assert all(e["error"] is None for e in ran.events("fault_restored"))
    assert ran.summary["totals"]["errors"] == 0 and ran.summary["totals"]["ok"] > 100
    assert ran.log_count("loaded") >= 3  # at start, then once per reload
    assert not ran.events("canary_failed")


@pytest.mark.nightly
def test_a_thawed_stub_crashes_the_server(runs: LazyRuns) -> None:
    ran = runs["freeze"]
    assert ran.result.returncode == ExitCode.PASS, ran.output
    assert ran.summary["verdict"] == "reproduced"
    (restored,) = ran.events("fault_restored")  # SIGCONT sent
    (server,) = [e for e in ran.events("process_exited") if e["role"] == "server"]
    assert server["signal"] in ("SIGSEGV", "SIGABRT") and not server["planned"], server
    assert restored["t"] < server["t"] < restored["t"] + 5.0, (restored, server)
    # While frozen the instance failed like a dead one, and health never noticed the freeze.
    hangs = [h for h in ran.events("hang_detected") if h["t"] < restored["t"]]
    assert not hangs, hangs
    frozen = [s for s in ran.records if s.get("type") == "second" and s["t"] < restored["t"] and s["errors"]]
    assert any(STUB_UNHEALTHY in m for s in frozen for m in s.get("error_messages", {}).values()), frozen
    assert ran.log_count("crash_signal") >= 1
