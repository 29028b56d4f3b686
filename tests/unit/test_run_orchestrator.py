"""`harness.runner.Run` end to end on the fake stack: no real serving stack, real everything else.

Real processes (tests.unit.fakes.stack), real Locust users POSTing to the fake's `/infer`, the
real supervisor, fault runner, journal, restore record and reports.

How the fake feature is plugged in, as a user's package would be, with the least special-casing:
- the user class (`fake_http`) and the fault (`fake_marker`) are added to the plugin lookups
  (`harness.users._BUILTIN`, `faults.base._BUILTIN`: what `registered()` merges entry points
  into), so `LoadSpec` and `FaultSpec` validate them and the driver and runner load them by name;
- the stack kind cannot be added that way: `harness.scenario` builds the `stack:` union from the
  registered kinds once, when it is imported (before any test could patch the registry). So
  the scenario is validated by `FakeScenario`, a `Scenario` whose `stack` field is `FakeSpec`:
  every other validator (load, faults and their roles, SLOs) runs unchanged, and the Run
  only ever reads `scenario.stack` through `StackSpecBase` (`build`, `restart`, `ROLES`).
"""

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import locust  # noqa: F401 - first, so gevent patches the standard library as in `harness run`
import pytest
import yaml

import faults.base
import harness.users
from harness.analysis import RunData, measure
from harness.durations import parse_duration
from harness.exitcodes import ExitCode
from harness.progress import Progress
from harness.restore import read_restore
from harness.runner import Run
from harness.scenario import Scenario
from harness.verdict import Verdict
from tests.unit.fakes import faults as fake_faults
from tests.unit.fakes import user as fake_user
from tests.unit.fakes.journal import events, names
from tests.unit.fakes.logs import root_logging_kept
from tests.unit.fakes.stack import ENTRY, FakeSpec, FakeStack


class FakeScenario(Scenario):
    stack: FakeSpec  # see the module's docstring


@pytest.fixture(autouse=True)
def fake_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(harness.users._BUILTIN, fake_user.NAME, fake_user.TARGET)
    monkeypatch.setitem(faults.base._BUILTIN, fake_faults.KIND, fake_faults.TARGET)


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """Run sends the root logger to its run folder's harness.log: put pytest's handlers back."""
    with root_logging_kept():
        yield


class Outcome:
    def __init__(self, run: Run, verdict: Verdict, summary: dict[str, Any], seconds: float):
        self.run = run
        self.verdict = verdict
        self.summary = summary
        self.seconds = seconds
        self.dir = run.run_dir
        self.journal = run.run_dir / "journal.jsonl"

    @property
    def stack(self) -> FakeStack:
        assert isinstance(self.run.stack, FakeStack)
        return self.run.stack

    def events(self, name: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return events(self.journal, name, **match)

    def measure(self, metric: str, window: str = "all") -> float | None:
        return measure(RunData.from_run_dir(self.dir), metric, window).value

    def assert_nothing_left(self) -> None:
        """Every process the stack ever showed is gone (by PID), the restore record says so."""
        assert self.stack.seen(), "the stack never showed a process"
        assert self.stack.leftovers() == []
        assert read_restore(self.dir)[-1]["op"] == "processes_stopped"


@pytest.fixture
def execute(tmp_path: Path) -> Iterator[Callable[..., Outcome]]:
    runs: list[Run] = []

    def go(text: str, run_class: type[Run] = Run, during: Callable[[Run], None] | None = None) -> Outcome:
        path = tmp_path / f"scenario{len(runs)}.yaml"
        path.write_text(text, encoding="utf-8")
        scenario = FakeScenario.model_validate(yaml.safe_load(text))
        run = run_class(scenario, path, tmp_path / "runs", progress=False, seed=1)
        runs.append(run)
        if during is not None:
            during(run)
        started = time.monotonic()
        verdict, summary = run.execute()
        return Outcome(run, verdict, summary, time.monotonic() - started)

    yield go
    for run in runs:  # whatever a test asserted: nothing it started outlives it
        stack = run.stack
        if isinstance(stack, FakeStack):
            stack.stop(graceful=False)
            for ident in stack.leftovers(within=1.0):
                ident.send(signal.SIGCONT)
                ident.send(signal.SIGKILL)


def scenario(marker: Path | None, name: str = "fake", duration: str = "2s", faults: str = "",
             stack: str = "", slo: str = "[]") -> str:
    """A fake-stack scenario: 4 users for `duration`; with `marker`, a fault held until its end."""
    until_end = parse_duration(duration) - 0.3  # a fault may not be held past the load's end
    held = f'  - {{kind: fake_marker, name: held, at: 0.3, duration: {until_end:g}, path: "{marker}"}}'
    held = held if marker is not None else ""
    return f"""
name: {name}
stack:
  kind: fake
  respawn_after: 0.2
{stack}
load:
  user: fake_http
  users: 4
  duration: {duration}
observe:
  metrics: false
  canary: {{every: 0.2, timeout: 1.0, slow: 0.5}}
faults:
{held}
{faults}
slo: {slo}
"""


def assert_marker_restored(outcome: Outcome, marker: Path) -> None:
    assert outcome.events("fault_injected", id="f0.0"), "the held fault was never injected"
    restored = outcome.events("fault_restored", id="f0.0")
    assert len(restored) == 1 and restored[0]["error"] is None
    assert not marker.exists()
    ops = [(r["op"], r.get("id")) for r in read_restore(outcome.dir) if r["op"] in ("fault", "restored")]
    assert ops == [("fault", "f0.0"), ("restored", "f0.0")]


def test_a_run_that_holds_its_slos_passes_and_stops_everything(execute: Callable[..., Outcome],
                                                                tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    slo = '["error_rate <= 0.01", "requests >= 20", "crashes <= 0", "p99_ms < 500"]'
    outcome = execute(scenario(marker, name="fake-pass", slo=slo))
    assert outcome.verdict.word == "pass" and outcome.verdict.code == ExitCode.PASS, outcome.verdict.reason
    summary_file = outcome.dir / "summary.json"
    assert summary_file.is_file() and (outcome.dir / "report.html").is_file()
    assert outcome.summary["verdict"] == "pass" and outcome.summary["totals"]["errors"] == 0
    assert outcome.summary["totals"]["requests"] >= 20
    journal = names(outcome.journal)
    for name in ("run_started", "stack_starting", "stack_ready", "load_started", "load_stopped",
                 "supervisor_stopped", "stack_stopped", "run_ended"):
        assert name in journal, name
    assert journal[-1] == "run_ended" and "internal_error" not in journal
    supervisor = outcome.events("supervisor_stopped")[0]
    assert supervisor["state"] == "up" and supervisor["canary"]["ok"] >= 3
    assert_marker_restored(outcome, marker)  # restored on the normal way out
    outcome.assert_nothing_left()
    assert outcome.seconds < 10


def test_an_exception_in_the_load_loop_is_an_internal_error_and_still_restores(
        execute: Callable[..., Outcome], tmp_path: Path) -> None:
    class BrokenLoop(Run):
        def _flush_seconds(self, progress: Progress | None, elapsed: float) -> None:
            super()._flush_seconds(progress, elapsed)
            if elapsed > 0.6:
                raise RuntimeError("the load loop broke")

    marker = tmp_path / "marker"
    outcome = execute(scenario(marker, duration="10s"), run_class=BrokenLoop)
    assert outcome.verdict.word == "error" and outcome.verdict.code == ExitCode.INTERNAL_ERROR
    assert "the load loop broke" in outcome.verdict.reason
    assert outcome.seconds < 6  # it did not run the load's 10 s
    assert "load_stopped" in names(outcome.journal)  # the users were stopped in the teardown
    assert_marker_restored(outcome, marker)
    outcome.assert_nothing_left()
    assert (outcome.dir / "summary.json").is_file()


def test_sigterm_during_the_load_is_interrupted_and_restores(execute: Callable[..., Outcome],
                                                             tmp_path: Path) -> None:
    marker = tmp_path / "marker"

    def sigterm_later(run: Run) -> None:
        def send() -> None:
            deadline = time.monotonic() + 8
            while not events(run.run_dir / "journal.jsonl", "fault_injected") and time.monotonic() < deadline:
                gevent.sleep(0.02)
            run._on_signal(signal.SIGTERM)  # what the gevent signal handler calls

        gevent.spawn(send)

    outcome = execute(scenario(marker, duration="20s"), during=sigterm_later)
    assert outcome.verdict.word == "interrupted" and outcome.verdict.code == ExitCode.INTERRUPTED
    assert "SIGTERM" in outcome.verdict.reason
    assert outcome.events("interrupted")[0]["signal"] == "SIGTERM"
    assert outcome.seconds < 8
    assert_marker_restored(outcome, marker)
    outcome.assert_nothing_left()
    assert outcome.summary["verdict"] == "interrupted"


def test_a_stack_that_fails_to_start_is_stack_failed_with_nothing_left(execute: Callable[..., Outcome],
                                                                       tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    outcome = execute(scenario(marker, stack="  fail_start: 3"))
    assert outcome.verdict.word == "stack_failed" and outcome.verdict.code == ExitCode.STACK_FAILED
    assert "exited with code 3" in outcome.verdict.reason
    journal = names(outcome.journal)
    assert "stack_failed" in journal and "load_started" not in journal and "fault_injected" not in journal
    assert not marker.exists() and not [r for r in read_restore(outcome.dir) if r["op"] == "fault"]
    outcome.assert_nothing_left()
    assert outcome.summary["verdict"] == "stack_failed"


def test_an_entry_crash_under_load_is_restarted_and_its_recovery_measured(
        execute: Callable[..., Outcome], tmp_path: Path) -> None:
    restart = "  restart: {policy: on-failure, backoff: 0.1, max_restarts: 2}"
    crash = f"  - {{kind: process_kill, role: {ENTRY}, at: 0.8}}"
    outcome = execute(scenario(None, duration="3.5s", stack=restart, faults=crash))
    assert outcome.verdict.word == "pass", outcome.verdict.reason
    assert outcome.measure("crashes") == 1
    assert outcome.measure("restarts") == 1
    assert outcome.measure("hangs") == 0 and outcome.measure("replicas_lost") == 0
    detect = outcome.measure("detect_s")
    assert detect is not None and detect < 0.3
    recovery = outcome.measure("recovery_s")
    assert recovery is not None and 0.1 < recovery < 2.5  # backoff 0.1 s + a start
    assert (outcome.measure("errors") or 0) > 0  # the load saw the crash ...
    assert outcome.measure("errors", "outside_faults") == 0  # ... only inside its window
    exited = outcome.events("process_exited", role=ENTRY, planned=False)
    assert len(exited) == 1 and exited[0]["signal"] == "SIGKILL" and exited[0]["exit_code"] == -9
    assert outcome.stack.starts == 2
    outcome.assert_nothing_left()


def test_a_frozen_entry_under_load_is_one_hang_not_a_crash(execute: Callable[..., Outcome]) -> None:
    freeze = f"  - {{kind: process_freeze, role: {ENTRY}, at: 0.5, duration: 1.0}}"
    outcome = execute(scenario(None, duration="3s", faults=freeze))
    assert outcome.measure("hangs") == 1 and outcome.measure("crashes") == 0
    assert outcome.measure("restarts") == 0
    detect = outcome.measure("detect_s")
    assert detect is not None and detect < 2.0
    recovery = outcome.measure("recovery_s")
    assert recovery is not None and 1.0 <= recovery < 2.5  # thawed after 1 s, then a probe
    hang = outcome.events("hang_detected")[0]
    assert hang["role"] == ENTRY and hang["process_status"] == "stopped"
    outcome.assert_nothing_left()


def test_a_killed_replica_under_load_is_a_partial_failure(execute: Callable[..., Outcome]) -> None:
    kill = "  - {kind: process_kill, role: shard, at: 0.5}"
    outcome = execute(scenario(None, duration="2s", faults=kill, slo='["error_rate <= 0"]'))
    assert outcome.verdict.word == "pass", outcome.verdict.reason
    assert outcome.measure("replicas_lost") == 1 and outcome.measure("crashes") == 0
    back = outcome.measure("replica_recovery_s")
    assert back is not None and 0.15 < back < 1.5  # the fake respawns after 0.2 s
    assert outcome.events("supervisor_stopped")[0]["state"] == "up"
    outcome.assert_nothing_left()
