"""Dynamo reproductions of scenarios/repro/ against a real Dynamo 1.6.1 (etcd, frontend, mockers),
through `harness run`: the tests check the specific thing each reproduces (or guards), not only
the verdict. CI runs the etcd lease loss; the others run in the nightly job (tox -e nightly).
"""


import pytest

from harness.exitcodes import ExitCode
from tests.repro_runs import LazyRuns

pytestmark = pytest.mark.real

SCENARIOS = {
    "lease": "scenarios/repro/dynamo-etcd-freeze-lease-loss.yaml",
    "frontend": "scenarios/repro/dynamo-frontend-freeze-not-ready.yaml",
    "midstream": "scenarios/repro/dynamo-worker-kill-midstream-no-migration.yaml",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> LazyRuns:
    return LazyRuns(tmp_path_factory, SCENARIOS)


def test_etcd_freeze_past_the_lease_ttl_takes_the_whole_stack_down(runs: LazyRuns) -> None:
    ran = runs["lease"]
    assert ran.result.returncode == ExitCode.PASS, ran.output
    assert ran.summary["verdict"] == "reproduced"
    (restored,) = ran.events("fault_restored")
    exits = {e["role"]: e for e in ran.events("process_exited")}
    # The frontend shut itself down (exit code 0, nobody signalled it) after etcd came back.
    frontend = exits["frontend"]
    assert frontend["exit_code"] == 0 and not frontend["planned"] and frontend["t"] > restored["t"], frontend
    workers = [e for e in ran.events("process_exited") if e["role"] == "worker"]
    assert len(workers) == 2 and all(e["exit_code"] == 0 for e in workers), workers
    assert "etcd" not in exits  # etcd itself lived on: the loss is the processes' own
    assert ran.slo("the processes lost their etcd lease")["measured"] >= 1
    # From then on there is no server: refused connections, not answers.
    kinds = ran.summary["totals"]["errors_by_kind"]
    assert kinds.get("ConnectionRefusedError", 0) > 100, kinds
    assert ran.slo("nothing served again after etcd returned")["measured"] == 0
    assert not ran.summary["stack"]["stop"]["leaks"]


@pytest.mark.nightly
def test_frontend_freeze_costs_no_more_than_the_freeze(runs: LazyRuns) -> None:
    ran = runs["frontend"]
    assert ran.result.returncode == ExitCode.PASS, ran.output
    assert ran.summary["verdict"] == "pass"
    (hang,) = [e for e in ran.events("hang_detected") if e["role"] == "frontend"]
    (injected,) = ran.events("fault_injected")
    assert hang["t"] - injected["t"] < 3  # the supervisor saw the entry role hang
    kinds = ran.summary["totals"]["errors_by_kind"]
    # Only requests in flight at the freeze time out; no 503 "not ready" window after the thaw.
    assert set(kinds) <= {"timeout"} and sum(kinds.values()) <= 8, kinds
    (window,) = ran.summary["error_windows"]
    assert window["last_error_after_s"] is None or window["last_error_after_s"] < 5.0, window
    assert ran.summary["totals"]["ok"] > 500


@pytest.mark.nightly
def test_without_migration_a_worker_kill_cuts_the_streams_in_flight(runs: LazyRuns) -> None:
    ran = runs["midstream"]
    assert ran.result.returncode == ExitCode.PASS, ran.output
    assert ran.summary["verdict"] == "reproduced"
    (exited,) = [e for e in ran.events("process_exited") if e["role"] == "worker"]
    assert exited.get("signal") == "SIGKILL", exited
    (window,) = ran.summary["error_windows"]
    # Cut mid-stream: HTTP 200, some tokens, then the server's error event; no refused or 503
    # answers, since the 2 s lease takes the dead worker out of routing before it is retried.
    assert set(window["errors_by_kind"]) == {"stream_error"}, window
    assert "Service temporarily unavailable" in window["error_messages"]["stream_error"]
    assert 1 <= window["failed_requests"] <= 8 and window["last_error_after_s"] < 1.0, window
    # The streams that were not cut delivered every token: the failure is the cut, not the load.
    tokens = ran.summary["llm"]["output_tokens"]
    assert tokens["count"] > 40 and tokens["p50"] >= 256, tokens
