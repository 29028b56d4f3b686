"""TorchServe reproductions of scenarios/repro/ against a real TorchServe 0.12 (Java frontend,
Python workers), through `harness run`; the tests check the retry schedule TorchServe really used
and who it gave up on. CI runs the worker that dies serving; the kills run nightly.
"""


import pytest

from harness.exitcodes import ExitCode
from tests.repro_runs import LazyRuns

pytestmark = pytest.mark.real

SCENARIOS = {
    "dies": "scenarios/repro/torchserve-worker-dies-serving.yaml",
    "kills": "scenarios/repro/torchserve-repeated-kill-backoff.yaml",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> LazyRuns:
    return LazyRuns(tmp_path_factory, SCENARIOS)


def test_worker_that_dies_serving_is_restarted_forever_at_one_second(runs: LazyRuns) -> None:
    ran = runs["dies"]
    assert ran.result.returncode == ExitCode.PASS, ran.output
    assert ran.summary["verdict"] == "reproduced"
    totals = ran.summary["totals"]
    assert totals["ok"] == 0 and totals["errors"] == totals["requests"] >= 4, totals
    ts = ran.summary["torchserve"]
    retries = ts["retries"]
    # Each restart loaded the model (READY) and so reset TorchServe's back-off: always retry 1 of
    # its episode, announced as 1 s and waited 1 s; the Fibonacci table never advances.
    assert len(retries) >= 3
    assert all((r["announced_s"], r["n"]) == (1, 1) for r in retries), retries
    assert all(abs(r["waited_s"] - 1.0) < 0.5 for r in retries if r["waited_s"] is not None)
    failed = [a for a in ts["attempts"] if a["stopped_t"] is not None]
    assert failed and all(a["ready_t"] is not None and a["error"] is None for a in failed), failed
    assert ts["storm"] is None and ts["given_up"] == [] and ts["not_recoverable"] is None
    assert not ran.summary["stack"]["stop"]["leaks"]


@pytest.mark.nightly
def test_repeated_kills_of_one_worker_are_each_healed_at_one_second(runs: LazyRuns) -> None:
    ran = runs["kills"]
    assert ran.result.returncode == ExitCode.PASS, ran.output
    assert ran.summary["verdict"] == "pass"
    injected = ran.events("fault_injected")
    killed = [t["pid"] for e in injected for t in e["plan"]["targets"]]
    assert len(killed) == 3 and len(set(killed)) == 3  # a new worker process each time
    ts = ran.summary["torchserve"]
    # The worker loaded its model between kills, so every retry is the first of its episode.
    assert [(r["announced_s"], r["n"]) for r in ts["retries"]] == [(1, 1)] * 3, ts["retries"]
    assert all(1.0 < f["ready_s"] < 10 for f in ts["faults"]), ts["faults"]
    assert len(ts["no_worker_ready"]) == 3  # one outage per kill, each healed
    kinds = ran.summary["totals"]["errors_by_kind"]
    assert sum(kinds.values()) <= 6 and set(kinds) <= {"http_507", "http_500"}, kinds
    final = [e for e in ran.events("ts_workers") if "ready" in e][-1]
    assert final["ready"] == 1 and final["workers"][0]["pid"] not in killed
