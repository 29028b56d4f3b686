"""The supervisor's states, on a real stack of processes (tests.unit.fakes) and a real gevent hub.

Each test starts the fake stack (an entry `api`, two replica `shard`s, a dependency `store`),
starts a Supervisor with a real Journal, does something to the processes (a signal by PID, a
control request) and reads the journal back. Locust is imported first, as `harness run` does, so
gevent patches the standard library (sockets, subprocess, sleep) the way it is in a real run:
the supervisor's probes and the reap of a killed child happen on the hub.
"""

import random
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import locust  # noqa: F401 - first, so gevent patches the standard library as in `harness run`
import pytest

import harness.supervisor
from harness.journal import Journal
from harness.procs import ProcessId
from harness.roles import Loss, Role, role_table
from harness.scenario import CanarySpec
from harness.specbase import RestartPolicy
from harness.supervisor import Supervisor
from tests.unit.fakes.journal import events, names, wait_event
from tests.unit.fakes.pool import StackPool
from tests.unit.fakes.stack import DEPENDENCY, ENTRY, REPLICA, FakeSpec, FakeStack

NO_CANARY = CanarySpec(enabled=False)
ON_FAILURE = {"policy": "on-failure", "backoff": 0.05, "max_backoff": 1.0}


class Rig:
    """A started fake stack under a started Supervisor; `restart_stack` does what Run's does."""

    def __init__(self, folder: Path, stack: FakeStack, policy: RestartPolicy, canary: CanarySpec,
                 restart: Callable[[bool], float] | None = None, roles: tuple[Role, ...] = FakeSpec.ROLES):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "journal.jsonl"
        self.journal = Journal(self.path)
        self.stack = stack
        self.new_processes: list[tuple[str, ProcessId]] = []
        self.restart_calls: list[float] = []  # journal time of each call of the restart callable
        self.supervisor = Supervisor(stack, self.journal, policy, restart or self.restart_stack,
                                     lambda role, ident: self.new_processes.append((role, ident)),
                                     role_table(roles), canary)
        stack.start()
        stack.wait_ready(10.0)
        self.supervisor.start()
        self.stopped = False

    def restart_stack(self, graceful: bool) -> float:
        self.restart_calls.append(self.journal.now())
        self.supervisor.expect_down()
        self.stack.stop(graceful)
        self.stack.start()
        ready = self.stack.wait_ready(10.0)
        self.supervisor.expect_up()
        return ready

    def one(self, role: str) -> ProcessId:
        live = self.stack.roles()[role]
        assert live, f"no live {role}"
        return live[0]

    def wait(self, name: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        return wait_event(self.path, name, timeout, **match)

    def events(self, name: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return events(self.path, name, **match)

    def finish(self) -> dict[str, Any]:
        """Stop the supervisor and the stack; every process the stack ever showed is gone (by PID)."""
        summary = self.supervisor.stop()
        self.stopped = True
        self.stack.stop(graceful=True)
        assert self.stack.leftovers() == []
        self.journal.close()
        return summary


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    pool = StackPool(tmp_path)
    rigs: list[Rig] = []

    def make(policy: dict[str, Any] | None = None, canary: CanarySpec = NO_CANARY,
             restart: Callable[[bool], float] | None = None, roles: tuple[Role, ...] = FakeSpec.ROLES,
             **settings: Any) -> Rig:
        made = Rig(tmp_path / f"run{len(rigs)}", pool.make(**settings), RestartPolicy(**(policy or {})),
                   canary, restart, roles)
        rigs.append(made)
        return made

    yield make
    for made in rigs:
        if not made.stopped:
            made.supervisor.stop()
        made.journal.close()
    assert pool.close() == [], "processes were left behind"


@pytest.fixture(params=["pidfd", "poll"])
def watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How exits are seen: the kernel's pidfd (Linux 5.3+), or the 50 ms poll where there is none."""
    if request.param == "poll":
        monkeypatch.setattr(harness.supervisor, "open_exit_fd", lambda ident: None)
    return str(request.param)


def kill(ident: ProcessId, sig: int, journal: Journal) -> float:
    """Signal one process (by PID and start time); returns the journal time just before."""
    at = journal.now()
    assert ident.send(sig)
    return at


# --- exits of the entry process: the stack's crash


def test_entry_sigkill_is_a_crash_noticed_within_100ms_with_its_signal(rig: Callable[..., Rig],
                                                                        watch: str) -> None:
    delays = []
    phases = random.Random(5)
    for _ in range(5):
        run = rig()
        gevent.sleep(phases.uniform(0.05, 0.3))  # at any point of the watcher's poll, not in step with it
        killed_at = kill(run.one(ENTRY), signal.SIGKILL, run.journal)
        exited = run.wait("process_exited", role=ENTRY)
        delays.append(exited["t"] - killed_at)
        assert exited["loss"] == "entry" and exited["planned"] is False
        assert exited["exit_code"] == -9  # read after the reap: never null
        assert exited["signal"] == "SIGKILL" and exited["ended"] == "killed by SIGKILL"
        assert run.supervisor.state == "exited"
        assert run.finish()["restarts"] == 0  # policy `never`
        assert "restarting" not in names(run.path)
    # Measured, not slept: the median, and at most one late wake-up of five on a loaded machine.
    assert statistics.median(delays) < 0.1, delays
    assert sorted(delays)[3] < 0.1, delays
    assert max(delays) < 0.5, delays


def test_sigsegv_and_exit_codes_say_how_the_entry_ended(rig: Callable[..., Rig]) -> None:
    run = rig()
    run.stack.control(crash="SIGSEGV")  # the server kills itself, as a segfault would
    exited = run.wait("process_exited", role=ENTRY)
    assert exited["exit_code"] == -11 and exited["signal"] == "SIGSEGV"
    assert exited["ended"] == "killed by SIGSEGV"
    run.finish()
    second = rig()
    second.stack.control(crash=3)
    exited = second.wait("process_exited", role=ENTRY)
    assert exited["exit_code"] == 3 and exited["ended"] == "exit code 3" and "signal" not in exited
    assert second.supervisor.state == "exited"
    second.finish()


def test_replicas_that_die_after_the_entry_are_its_consequence_not_losses(rig: Callable[..., Rig],
                                                                          watch: str) -> None:
    run = rig()
    shards = {ident.pid for ident in run.stack.roles()[REPLICA]}
    kill(run.one(ENTRY), signal.SIGKILL, run.journal)
    entry_exit = run.wait("process_exited", role=ENTRY)
    deadline = time.monotonic() + 3
    while len(run.events("process_exited", role=REPLICA)) < 2 and time.monotonic() < deadline:
        gevent.sleep(0.02)  # the shards see their parent gone and end
    went_down = run.events("process_exited", role=REPLICA)
    assert {e["pid"] for e in went_down} == shards
    # The journal tells the entry's exit first. Not the stamps: each is when its exit was noticed,
    # and under load a shard's pidfd can wake the hub a moment before the entry's does.
    order = [e["pid"] for e in run.events("process_exited")]
    for event in went_down:
        assert event["consequence"] is True and event["loss"] == "replica"
        assert order.index(entry_exit["pid"]) < order.index(event["pid"])
        assert event["exit_code"] is None and event["ended"].startswith("unknown")  # reaped by the api
    assert run.supervisor.replicas.lost_count == {}  # no replica loss opened
    run.finish()
    assert "replicas_restored" not in names(run.path)




def test_a_process_tree_killed_at_once_is_one_crash_not_replica_losses(rig: Callable[..., Rig]) -> None:
    # Five times: which exit the hub hears of first is a race, and every try must come out right.
    # (The 50 ms poll, `open_exit_fd` returning None, passes this: the entry is sorted first.)
    for _ in range(5):
        run = rig()
        gevent.sleep(0.1)
        run.stack.control(crash="SIGKILL", with_replicas=True)  # its shards a moment before the api
        run.wait("process_exited", role=ENTRY)
        deadline = time.monotonic() + 3
        while len(run.events("process_exited", role=REPLICA)) < 2 and time.monotonic() < deadline:
            gevent.sleep(0.02)
        gevent.sleep(0.1)
        lost = dict(run.supervisor.replicas.lost_count)
        went_down = run.events("process_exited", role=REPLICA)
        run.finish()
        assert len(went_down) == 2
        assert lost == {}, f"counted as replica losses: {lost}"
        assert all(e.get("consequence") is True for e in went_down), went_down


# Both the api and its shards declared entry processes, as vLLM's API server, engine core and
# worker are: losing any of them loses the stack.
ALL_ENTRY = (Role(ENTRY, Loss.ENTRY), Role(REPLICA, Loss.ENTRY), Role(DEPENDENCY, Loss.DEPENDENCY))


def test_entry_processes_that_go_down_with_an_already_down_stack_are_one_crash(
        rig: Callable[..., Rig]) -> None:
    run = rig(roles=ALL_ENTRY)
    gevent.sleep(0.1)
    run.stack.control(crash="SIGKILL", with_replicas=True)  # the shards a moment before the api
    run.wait("process_exited", role=ENTRY)
    deadline = time.monotonic() + 3
    while len(run.events("process_exited", role=REPLICA)) < 2 and time.monotonic() < deadline:
        gevent.sleep(0.02)
    exits = run.events("process_exited")
    run.finish()
    first, *rest = sorted(exits, key=lambda e: e["t"])
    assert "consequence" not in first, first  # the one crash
    assert len(rest) == 2 and all(e.get("consequence") is True for e in rest), rest


def test_a_stack_that_lost_an_entry_process_is_not_recovered_by_health_alone(rig: Callable[..., Rig]) -> None:
    # The api keeps answering health 200 after one shard (an entry role here) died, as vLLM's API
    # server does for a moment after its engine core died: recovered only once a shard is back.
    run = rig(roles=ALL_ENTRY, respawn_after=1.5, replicas=1)
    gevent.sleep(0.1)
    shard = run.one(REPLICA)
    kill(shard, signal.SIGKILL, run.journal)
    exited = run.wait("process_exited", role=REPLICA)
    gevent.sleep(0.8)  # four health probes, all 200
    assert run.supervisor.state == "exited" and not run.events("recovered")
    recovered = run.wait("recovered", timeout=5.0)
    run.finish()
    # The fake respawns its shard 1.5 s after one died: not recovered before that.
    assert recovered["how"] == "health" and recovered["t"] >= exited["t"] + 1.2, (exited, recovered)


# --- replicas and dependencies: partial failures, not crashes


def test_a_killed_replica_is_a_partial_failure_and_restored_once_respawned(rig: Callable[..., Rig]) -> None:
    run = rig(policy=ON_FAILURE, respawn_after=0.3)
    gevent.sleep(0.1)
    shard = run.one(REPLICA)
    killed_at = kill(shard, signal.SIGKILL, run.journal)
    exited = run.wait("process_exited", role=REPLICA)
    assert exited["pid"] == shard.pid and exited["loss"] == "replica"
    assert "consequence" not in exited and exited["planned"] is False
    assert exited["t"] - killed_at < 0.5
    assert run.supervisor.state == "up"
    restored = run.wait("replicas_restored", role=REPLICA)
    assert restored["live"] == 2 and restored["expected"] == 2 and restored["lost"] == 1
    assert restored["after_s"] >= 0.25  # the fake respawns after 0.3 s
    started = run.wait("process_started", role=REPLICA)
    assert started["loss"] == "replica" and started["pid"] != shard.pid
    assert any(role == REPLICA and ident.pid == started["pid"] for role, ident in run.new_processes)
    assert run.supervisor.state == "up"
    run.finish()
    journal = names(run.path)
    assert "restarting" not in journal and "recovered" not in journal
    assert not run.events("process_exited", role=ENTRY)


def test_a_killed_dependency_is_its_own_event_not_a_crash(rig: Callable[..., Rig]) -> None:
    run = rig(policy=ON_FAILURE)
    store = run.one(DEPENDENCY)
    kill(store, signal.SIGKILL, run.journal)
    exited = run.wait("process_exited", role=DEPENDENCY)
    assert exited["loss"] == "dependency" and exited["pid"] == store.pid
    assert exited["exit_code"] == -9 and exited["signal"] == "SIGKILL"  # the stack's own child
    gevent.sleep(0.3)
    assert run.supervisor.state == "up"
    assert run.supervisor.restarts == 0
    run.finish()
    assert "restarting" not in names(run.path)


# --- hangs


def test_a_frozen_entry_is_a_hang_within_2s_and_recovers_when_thawed(rig: Callable[..., Rig]) -> None:
    run = rig()
    gevent.sleep(0.1)
    entry = run.one(ENTRY)
    stopped_at = kill(entry, signal.SIGSTOP, run.journal)
    try:
        hang = run.wait("hang_detected", timeout=4.0)
    finally:
        thawed_at = kill(entry, signal.SIGCONT, run.journal)
    assert hang["role"] == ENTRY and hang["pid"] == entry.pid
    assert hang["process_status"] == "stopped"
    assert hang["t"] - stopped_at < 2.0
    recovered = run.wait("recovered", timeout=3.0)
    assert recovered["after"] == "hang" and recovered["how"] == "health"
    assert recovered["t"] >= thawed_at
    assert recovered["downtime_s"] == pytest.approx(recovered["t"] - hang["t"] + (hang["t"] - stopped_at),
                                                    abs=1.0)
    assert run.supervisor.state == "up"
    run.finish()
    assert not run.events("process_exited")


def test_liveness_timeout_kills_a_hung_entry_and_the_policy_restarts_it(rig: Callable[..., Rig]) -> None:
    run = rig(policy={**ON_FAILURE, "liveness_timeout": 0.4})
    entry = run.one(ENTRY)
    kill(entry, signal.SIGSTOP, run.journal)
    hang = run.wait("hang_detected", timeout=4.0)
    liveness = run.wait("liveness_kill", timeout=3.0)
    assert liveness["role"] == ENTRY and liveness["pid"] == entry.pid and liveness["after_s"] == 0.4
    assert liveness["t"] - hang["t"] >= 0.4 - 0.01
    exited = run.wait("process_exited", role=ENTRY)
    assert exited["signal"] == "SIGKILL" and exited["pid"] == entry.pid  # SIGKILL ends a stopped process
    restarted = run.wait("restarted", timeout=10.0)
    assert restarted["attempt"] == 1
    run.wait("recovered", after=restarted["t"] - 1e-3, timeout=3.0)
    assert run.supervisor.state == "up"
    run.finish()


# --- the canary: health that lies, and slowness that is not failure


def test_health_ready_but_inference_failing_is_not_serving_then_recovered(rig: Callable[..., Rig]) -> None:
    canary = CanarySpec(every=0.1, timeout=1.0, slow=0.5, failures=2)
    run = rig(canary=canary)
    gevent.sleep(0.3)
    assert run.supervisor.canary is not None and run.supervisor.canary.ok >= 1
    run.stack.control(fail_infer=True)
    failed = run.wait("canary_failed")
    assert failed["status"] == 500 and "backend stub is gone" in failed["detail"]
    not_serving = run.wait("not_serving")
    assert not_serving["health"] == "ready" and not_serving["status"] == 500
    assert not_serving["t"] >= failed["t"]
    assert run.supervisor.state == "not_serving"
    assert run.stack.health().ok  # the health endpoint still says all is well
    run.stack.control(fail_infer=False)
    recovered = run.wait("recovered")
    assert recovered["after"] == "not_serving" and recovered["how"] == "canary"
    assert run.wait("canary_ok")["after_failures"] >= 2
    assert run.supervisor.state == "up"
    summary = run.finish()
    assert summary["canary"]["failed"] >= 2 and summary["canary"]["available"] is True
    assert len(run.events("canary_failed")) == 1  # one event an episode, not one a failure
    assert "hang_detected" not in names(run.path)


def test_a_slow_canary_is_slow_not_not_serving(rig: Callable[..., Rig]) -> None:
    canary = CanarySpec(every=0.1, timeout=1.0, slow=0.2, failures=2)
    run = rig(canary=canary)
    run.stack.control(infer_delay=0.35)
    slow = run.wait("canary_slow")
    assert slow["latency_s"] >= 0.3 and slow["slow_s"] == 0.2
    gevent.sleep(1.0)  # three more slow canaries
    assert run.supervisor.state == "up"
    run.stack.control(infer_delay=0.0)
    summary = run.finish()
    assert summary["canary"]["slow"] >= 3 and summary["canary"]["failed"] == 0
    journal = names(run.path)
    assert journal.count("canary_slow") == 1  # once per slow spell
    assert "not_serving" not in journal and "canary_failed" not in journal


# --- the restart policy


def test_on_failure_restarts_with_doubling_backoff_up_to_max_restarts(rig: Callable[..., Rig]) -> None:
    run = rig(policy={**ON_FAILURE, "max_restarts": 2})
    for attempt, backoff in ((1, 0.05), (2, 0.1)):
        entry = run.one(ENTRY)
        kill(entry, signal.SIGKILL, run.journal)
        exited = run.wait("process_exited", role=ENTRY, pid=entry.pid)
        assert exited["planned"] is False
        restarting = run.wait("restarting", attempt=attempt)
        assert restarting["backoff_s"] == backoff
        restarted = run.wait("restarted", attempt=attempt, timeout=10.0)
        assert restarted["startup_s"] > 0
        assert run.restart_calls[-1] - restarting["t"] >= backoff - 0.01  # it waited the backoff
        run.wait("recovered", after=restarted["t"] - 1e-3, timeout=3.0)
        assert run.supervisor.state == "up" and run.one(ENTRY).pid != entry.pid
    last = run.one(ENTRY)
    kill(last, signal.SIGKILL, run.journal)
    run.wait("process_exited", role=ENTRY, pid=last.pid)
    gevent.sleep(0.4)  # a third restart would have begun after 0.2 s
    assert len(run.events("restarting")) == 2 and len(run.restart_calls) == 2
    assert run.supervisor.state == "exited"
    assert run.finish()["restarts"] == 2
    # The restarts' own stops are planned, and the shards end with their api (a consequence, or
    # planned if the restart stopped them first): none of those exits is a loss.
    exits = run.events("process_exited")
    assert [e["planned"] for e in exits if e["role"] == DEPENDENCY] == [True, True]
    shards = [e for e in exits if e["role"] == REPLICA]
    assert len(shards) == 6 and all(e["planned"] or e.get("consequence") for e in shards)
    assert "replicas_restored" not in names(run.path)
    assert len(run.events("process_started", role=ENTRY)) == 2


def test_a_restart_that_raises_is_restart_failed_and_retried(rig: Callable[..., Rig]) -> None:
    calls: list[float] = []
    holder: list[Rig] = []

    def flaky_restart(graceful: bool) -> float:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("address already in use")
        return holder[0].restart_stack(graceful)

    run = rig(policy={**ON_FAILURE, "max_restarts": 3}, restart=flaky_restart)
    holder.append(run)
    kill(run.one(ENTRY), signal.SIGKILL, run.journal)
    failed = run.wait("restart_failed")
    assert failed["attempt"] == 1 and "address already in use" in failed["error"]
    retry = run.wait("restarting", attempt=2)
    assert retry["backoff_s"] == 0.1 and retry["t"] >= failed["t"]
    run.wait("restarted", attempt=2, timeout=10.0)
    run.wait("recovered", timeout=3.0)
    assert run.supervisor.state == "up" and len(calls) == 2
    assert run.finish()["restarts"] == 2


def test_planned_downtime_is_journaled_as_planned_and_never_restarted(rig: Callable[..., Rig]) -> None:
    run = rig(policy=ON_FAILURE)
    old = {ident.pid for idents in run.stack.roles().values() for ident in idents}
    ready = run.restart_stack(graceful=True)  # what a `stack_restart` fault does
    assert ready > 0
    gevent.sleep(0.3)
    exits = run.events("process_exited")
    assert {e["pid"] for e in exits} == old
    assert all(e["planned"] is True for e in exits)
    assert next(e for e in exits if e["role"] == ENTRY)["exit_code"] == 0  # SIGTERM: a clean exit
    started = run.events("process_started")
    assert {e["role"] for e in started} == {ENTRY, REPLICA, DEPENDENCY}
    assert run.supervisor.state == "up" and run.supervisor.restarts == 0
    # Downtime the harness expects, a kill included, is recorded and never acted on.
    run.supervisor.expect_down()
    entry = run.one(ENTRY)
    kill(entry, signal.SIGKILL, run.journal)
    exited = run.wait("process_exited", pid=entry.pid)
    assert exited["planned"] is True and exited["signal"] == "SIGKILL"
    gevent.sleep(0.2)
    assert run.supervisor.state == "up"
    run.finish()
    journal = names(run.path)
    assert "restarting" not in journal and "recovered" not in journal and "hang_detected" not in journal


# --- the load's view


def second(t: int, requests: int, ok: int) -> dict[str, Any]:
    errors = {"http_500": requests - ok} if requests > ok else {}
    return {"t": t, "requests": requests, "ok": ok, "errors": errors}


def test_error_rate_above_one_percent_is_degraded_and_back_under_it_recovered(tmp_path: Path) -> None:
    stack = FakeSpec().build(tmp_path / "stack")  # never started: on_second reads only the seconds
    journal = Journal(tmp_path / "journal.jsonl", clock_origin=time.monotonic() - 50.0)  # now is t=50
    supervisor = Supervisor(stack, journal, RestartPolicy(), lambda graceful: 0.0, lambda role, ident: None,
                            role_table(FakeSpec.ROLES), NO_CANARY)
    supervisor.on_second(second(40, 100, 99))  # exactly 1 %: not degraded
    assert supervisor.state == "up"
    supervisor.on_second(second(41, 100, 95))
    assert supervisor.state == "degraded"
    supervisor.on_second(second(42, 0, 0))  # nothing answered: no evidence of recovery
    assert supervisor.state == "degraded"
    supervisor.on_second(second(43, 100, 100))
    assert supervisor.state == "up"
    supervisor.on_second(second(44, 100, 50))  # a second from before the recovery (t < 50): stale
    assert supervisor.state == "up"
    supervisor.expect_down()  # planned downtime: the load's errors are expected
    supervisor.on_second(second(51, 100, 0))
    assert supervisor.state == "up"
    supervisor.expect_up()
    supervisor.on_second(second(52, 100, 90))
    assert supervisor.state == "degraded"
    journal.close()
    path = tmp_path / "journal.jsonl"
    degraded = events(path, "degraded")
    assert [e["second"] for e in degraded] == [41, 52]
    assert degraded[0]["error_rate"] == 0.05 and degraded[0]["errors"] == {"http_500": 5}
    recovered = events(path, "recovered")
    assert len(recovered) == 1 and recovered[0]["after"] == "degraded" and recovered[0]["how"] == "error_rate"
    assert recovered[0]["downtime_s"] is not None and recovered[0]["downtime_s"] >= 0


def test_a_stack_restarted_ready_but_not_serving_is_not_serving(rig: Callable[..., Rig]) -> None:
    canary = CanarySpec(every=0.1, timeout=1.0, slow=0.5, failures=2)
    run = rig(policy={**ON_FAILURE, "backoff": 0.4}, canary=canary, fail_infer_after_restart=True)
    kill(run.one(ENTRY), signal.SIGKILL, run.journal)  # down for > 2 canaries: backoff 0.4 s + start
    restarted = run.wait("restarted", timeout=10.0)
    recovered = run.wait("recovered", after=restarted["t"] - 1e-3, timeout=3.0)
    assert recovered["how"] == "health"
    assert run.stack.health().ok and not run.stack.canary(1.0).ok  # ready, and inference fails
    try:
        run.wait("not_serving", timeout=1.5)  # 15 failing canaries with health saying ready
    finally:
        run.finish()
