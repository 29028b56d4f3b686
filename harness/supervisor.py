"""Watching the stack: process exits, health, hangs, the canary, degradation, recovery, restarts.

What a lost process means comes from the stack's role declarations (harness.roles), never from
a role's name: the entry role's death is the stack's crash, its freeze the stack's hang; a
replica's death is a partial failure; a dependency's death is its own event. States, each
journaled when it begins:
- `process_exited`: a process of the stack ended (exit code or signal, read after its reap);
- `hang_detected`: an entry process is alive but the health probe fails (Triton does this
  after `Signal (11) received.`: the PID alone says nothing);
- `not_serving`: health says ready but the canary's inference fails (a dead Python-backend stub);
- `degraded`: it answers its probe but the load sees errors above a threshold;
- `recovered`: serving again after any of those, with the time it took.
"""

import signal
import time
from collections.abc import Callable
from typing import Any

import gevent

from harness.canary import CanaryLoop
from harness.exitwatch import open_exit_fd, wait_exit
from harness.journal import Journal
from harness.procs import ProcessId
from harness.replicas import ReplicaTracker
from harness.roles import Loss, Role, entry_roles, loss_of
from harness.scenario import CanarySpec
from harness.specbase import RestartPolicy
from harness.stacks.base import Health, Stack

PROCESS_POLL_S = 0.05  # an exit is noticed within this (plus the loop's latency)
HEALTH_EVERY_S = 0.2
HEALTH_TIMEOUT_S = 0.3
FAILED_PROBES_FOR_UNHEALTHY = 2  # a hang is seen within about 2 x (every + timeout)
DEGRADED_ERROR_RATE = 0.01
NEW_PROCESSES_EVERY_TICKS = 4  # respawned replicas, restarts: every 200 ms
# A replica that dies this shortly before its entry process went down with it (a process tree
# killed at once): its loss is decided this long after it was noticed.
CONSEQUENCE_GRACE_S = 0.15


class Supervisor:
    def __init__(
        self,
        stack: Stack,
        journal: Journal,
        policy: RestartPolicy,
        restart: Callable[[bool], float],
        on_new_process: Callable[[str, ProcessId], None],
        roles: dict[str, Role],
        canary: CanarySpec | None = None,
    ):
        self.stack = stack
        self.journal = journal
        self.policy = policy
        self.restart = restart
        self.on_new_process = on_new_process
        self.roles = roles
        self.entry_roles = entry_roles(roles)
        self.state = "up"
        self.failed_since: float | None = None
        self.recovered_at = 0.0
        self.planned_down = False
        self.restarts = 0
        self.health_ok = True  # the last probe's answer; the canary reads it
        self.replicas = ReplicaTracker(journal, roles)
        self.canary = CanaryLoop(stack, journal, canary, self) if canary and canary.enabled else None
        self._known: dict[int, tuple[str, ProcessId]] = {}
        self._lost_entries: set[str] = set()  # entry roles whose process exited, until one is back
        self._failed_probes = 0
        self._greenlets: list[gevent.Greenlet] = []
        self._restarting: gevent.Greenlet | None = None

    def start(self) -> None:
        self.replicas.rebase(self._remember_processes(announce=False))
        self._greenlets += [gevent.spawn(self._watch_processes), gevent.spawn(self._probe_health)]
        if self.canary is not None:
            self._greenlets.append(gevent.spawn(self.canary.run))

    def stop(self) -> dict[str, Any]:
        for greenlet in [*self._greenlets, *([self._restarting] if self._restarting else [])]:
            greenlet.kill()
        summary: dict[str, Any] = {"state": self.state, "restarts": self.restarts}
        if self.canary is not None:
            summary["canary"] = self.canary.summary()
        return summary

    def new_restart_budget(self) -> None:
        """`max_restarts` counts from now (a soak gives every cycle its own)."""
        self.restarts = 0

    # --- planned downtime (stack_restart faults, restarts) is recorded but does not trigger the policy

    def expect_down(self) -> None:
        self.planned_down = True

    def expect_up(self) -> None:
        live = self._remember_processes(announce=True)
        self.replicas.seen(live)  # a role the restart brought back to full strength is restored
        self.replicas.rebase(live)
        self.planned_down = False

    # --- processes

    def _remember_processes(self, announce: bool) -> dict[str, list[ProcessId]]:
        """Start watching the processes not seen before; returns the live ones by role."""
        live = self.stack.roles()
        for role, idents in live.items():
            for ident in idents:
                if ident.pid not in self._known:
                    self._known[ident.pid] = (role, ident)
                    self._watch_exit(role, ident)
                    self.on_new_process(role, ident)
                    if announce:
                        self.journal.event("process_started", role=role, pid=ident.pid,
                                           loss=str(loss_of(self.roles, role)))
        return live

    def _watch_exit(self, role: str, ident: ProcessId) -> None:
        """The kernel tells of the exit at once (a pidfd); the poll below is the fallback."""
        fd = open_exit_fd(ident)
        if fd is not None:
            self._greenlets = [g for g in self._greenlets if not g.dead]  # a long soak sees many
            self._greenlets.append(gevent.spawn(self._exit_waiter, fd, role, ident))

    def _exit_waiter(self, fd: int, role: str, ident: ProcessId) -> None:
        wait_exit(fd)
        self._gone(ident.pid, role, ident)

    def _gone(self, pid: int, role: str, ident: ProcessId) -> None:
        known = self._known.get(pid)
        if known is None or known[1] != ident:
            return  # the other watch saw it first
        del self._known[pid]
        if loss_of(self.roles, role) is Loss.ENTRY:
            self._on_exit(role, ident, self.journal.now(), self.planned_down)
        else:  # decided a moment later: did the entry go down too?
            self._greenlets.append(gevent.spawn(self._on_partial_exit, role, ident))

    def _on_partial_exit(self, role: str, ident: ProcessId) -> None:
        noticed, planned = self.journal.now(), self.planned_down
        gevent.sleep(CONSEQUENCE_GRACE_S)
        for entry_pid, (known_role, known) in list(self._known.items()):
            if loss_of(self.roles, known_role) is Loss.ENTRY and known.alive() is None:
                self._gone(entry_pid, known_role, known)  # the entry died too: handle it first
        self._on_exit(role, ident, noticed, planned)

    def _watch_processes(self) -> None:
        ticks = 0
        while True:
            gevent.sleep(PROCESS_POLL_S)
            ticks += 1
            gone = [(pid, role, ident) for pid, (role, ident) in self._known.items() if ident.alive() is None]
            for pid, role, ident in gone:
                self._gone(pid, role, ident)
            if ticks % NEW_PROCESSES_EVERY_TICKS == 0:
                self.replicas.seen(self._remember_processes(announce=True))

    def _on_exit(self, role: str, ident: ProcessId, noticed: float, planned: bool) -> None:
        loss = loss_of(self.roles, role)
        # The stack was already down when this one went: it went down with it. One process tree
        # dying at once is one crash, however many entry processes it has (vLLM: the API server
        # exits by itself a second after its engine core is killed).
        consequence = not planned and self.state == "exited"
        if loss is Loss.ENTRY and not planned:
            self._lost_entries.add(role)
        if loss is Loss.ENTRY and not planned and not consequence:
            # Before the (short) wait for the exit code: replicas that die meanwhile are its consequence.
            self._fail("exited")
        code = self.stack.exit_code(role, ident)  # waits for the reap of the stack's own children
        fields: dict[str, Any] = {"t": round(noticed, 4), "role": role, "pid": ident.pid, "loss": str(loss),
                                  "exit_code": code, "planned": planned}
        fields.update(_how_it_ended(code))
        if consequence:
            fields["consequence"] = True  # the entry process died first: this went down with it
        self.journal.event("process_exited", **fields)
        if planned:
            return
        if loss is Loss.ENTRY:
            self._maybe_restart()
        elif loss is Loss.REPLICA and not consequence:
            self.replicas.lost(role, noticed)

    # --- health

    def _probe_health(self) -> None:
        while True:
            started = time.monotonic()
            health = self.stack.health(timeout=HEALTH_TIMEOUT_S)
            self.health_ok = health.ok
            if health.ok:
                self._failed_probes = 0
                if self.state in ("exited", "hang") and not self.planned_down and self._entries_present():
                    self._recover("health")
            else:
                self._failed_probes += 1
                if self._failed_probes == FAILED_PROBES_FOR_UNHEALTHY and not self.planned_down:
                    self._on_unhealthy(health.detail)
                self._check_liveness()
            gevent.sleep(max(0.0, HEALTH_EVERY_S - (time.monotonic() - started)))

    def _entries_present(self) -> bool:
        """Every entry role that lost its process has a live one again. A stack that lost one has
        not recovered although its health endpoint may answer 200 for a moment (vLLM's API server
        does for about 0.25 s after its engine core died, then exits by itself)."""
        if not self._lost_entries:
            return True
        live = self.stack.roles()
        if all(live.get(role) for role in self._lost_entries):
            self._lost_entries.clear()
            return True
        return False

    def _entry_processes(self) -> list[tuple[str, ProcessId]]:
        live = self.stack.roles()
        return [(role, ident) for role in self.entry_roles for ident in live.get(role, [])]

    def _on_unhealthy(self, detail: str) -> None:
        for role, ident in self._entry_processes():
            proc = ident.alive()
            if proc is None:
                continue  # the process watcher reports the exit
            try:
                status = proc.status()
            except Exception:  # noqa: BLE001 - it just exited
                continue
            if self.state in ("up", "degraded", "not_serving"):
                self._fail("hang")
                self.journal.event("hang_detected", role=role, pid=proc.pid, process_status=status,
                                   probe=detail)
            return

    def _check_liveness(self) -> None:
        timeout = self.policy.liveness_timeout
        if timeout is None or self.state != "hang" or self.failed_since is None:
            return
        if self.journal.now() - self.failed_since >= timeout:
            for role, ident in self._entry_processes():
                self.journal.event("liveness_kill", role=role, pid=ident.pid, after_s=round(timeout, 3))
                ident.send(signal.SIGKILL)

    # --- the canary (harness.canary calls these)

    def canary_failing(self, result: Health) -> None:
        """Failed canaries in a row, as many as the scenario's `failures`: not serving, if health
        says it is (else the health path already tells the story: exited or hung)."""
        if self.planned_down or not self.health_ok or self.state not in ("up", "degraded"):
            return
        self._fail("not_serving")
        self.journal.event("not_serving", health="ready", status=result.status, detail=result.detail,
                           latency_s=round(result.latency_s, 3))

    def canary_serving(self) -> None:
        if self.state == "not_serving":
            self._recover("canary")

    # --- load-side view, fed once a second by the runner

    def on_second(self, record: dict[str, Any]) -> None:
        if record["t"] < self.recovered_at or self.planned_down:
            return  # that second still holds the errors of the failure just recovered from
        requests, ok = record["requests"], record["ok"]
        rate = (requests - ok) / requests if requests else 0.0
        if self.state == "up" and rate > DEGRADED_ERROR_RATE:
            self._fail("degraded")
            self.journal.event("degraded", second=record["t"], error_rate=round(rate, 4),
                               errors=record["errors"])
        elif self.state == "degraded" and requests and rate <= DEGRADED_ERROR_RATE:
            self._recover("error_rate")

    # --- transitions

    def _fail(self, state: str) -> None:
        if self.state == "up":
            self.failed_since = self.journal.now()
        self.state = state

    def _recover(self, how: str) -> None:
        down = self.journal.now() - self.failed_since if self.failed_since is not None else None
        self.journal.event("recovered", after=self.state, how=how,
                           downtime_s=round(down, 3) if down is not None else None)
        self.state = "up"
        self.failed_since = None
        self.recovered_at = self.journal.now()

    def _maybe_restart(self) -> None:
        if self.policy.policy != "on-failure" or self.restarts >= self.policy.max_restarts:
            return
        if self._restarting is not None and not self._restarting.dead:
            return
        self._restarting = gevent.spawn(self._restart_after_backoff)

    def _restart_after_backoff(self) -> None:
        backoff = min(self.policy.backoff * 2**self.restarts, self.policy.max_backoff)
        self.restarts += 1
        self.journal.event("restarting", attempt=self.restarts, backoff_s=backoff)
        gevent.sleep(backoff)
        try:
            startup = self.restart(False)
        except Exception as exc:  # noqa: BLE001 - a failed restart is a finding
            self.journal.event("restart_failed", attempt=self.restarts, error=str(exc))
            self.planned_down = False  # the stack is down for real now, not by plan
            self._restarting = None
            self._maybe_restart()
            return
        self.journal.event("restarted", attempt=self.restarts, startup_s=round(startup, 3))


def _how_it_ended(code: int | None) -> dict[str, Any]:
    """The journal always says how a process ended, or why that cannot be known."""
    if code is None:
        return {"ended": "unknown: reaped by its own parent, not by the harness"}
    if code < 0:
        name = signal.Signals(-code).name
        return {"signal": name, "ended": f"killed by {name}"}
    return {"ended": f"exit code {code}"}
