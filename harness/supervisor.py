"""Watching the stack: process exits, health, hangs, degradation, recovery, restart policy.

Four states a serving engineer cares about, each recorded in the journal when it begins:
- `process_exited`: a process of the stack ended (exit code or signal);
- `hang_detected`: the server process is alive but its health probe fails (Triton does this
  after `Signal (11) received.`: the PID alone says nothing);
- `degraded`: it answers its probe but the load sees errors above a threshold;
- `recovered`: healthy again after any of those, with the time it took.
"""

import signal
import time
from collections.abc import Callable
from typing import Any

import gevent

from harness.journal import Journal
from harness.procs import ProcessId
from harness.scenario import RestartPolicy
from harness.stacks.base import Stack

PROCESS_POLL_S = 0.05
HEALTH_EVERY_S = 0.2
HEALTH_TIMEOUT_S = 0.3
FAILED_PROBES_FOR_UNHEALTHY = 2
DEGRADED_ERROR_RATE = 0.01


class Supervisor:
    def __init__(
        self,
        stack: Stack,
        journal: Journal,
        policy: RestartPolicy,
        restart: Callable[[bool], float],
        on_new_process: Callable[[str, ProcessId], None],
    ):
        self.stack = stack
        self.journal = journal
        self.policy = policy
        self.restart = restart
        self.on_new_process = on_new_process
        self.state = "up"
        self.failed_since: float | None = None
        self.recovered_at = 0.0
        self.planned_down = False
        self.restarts = 0
        self._known: dict[int, tuple[str, ProcessId]] = {}
        self._failed_probes = 0
        self._greenlets: list[gevent.Greenlet] = []
        self._restarting: gevent.Greenlet | None = None

    def start(self) -> None:
        self._remember_processes(announce=False)
        self._greenlets = [gevent.spawn(self._watch_processes), gevent.spawn(self._probe_health)]

    def stop(self) -> dict[str, Any]:
        for greenlet in [*self._greenlets, *([self._restarting] if self._restarting else [])]:
            greenlet.kill()
        return {"state": self.state, "restarts": self.restarts}

    # --- planned downtime (stack_restart faults) is recorded but does not trigger the policy

    def expect_down(self) -> None:
        self.planned_down = True

    def expect_up(self) -> None:
        self._remember_processes(announce=True)
        self.planned_down = False

    # --- processes

    def _remember_processes(self, announce: bool) -> None:
        for role, idents in self.stack.roles().items():
            for ident in idents:
                if ident.pid not in self._known:
                    self._known[ident.pid] = (role, ident)
                    self.on_new_process(role, ident)
                    if announce:
                        self.journal.event("process_started", role=role, pid=ident.pid)

    def _watch_processes(self) -> None:
        ticks = 0
        while True:
            gevent.sleep(PROCESS_POLL_S)
            ticks += 1
            for pid, (role, ident) in list(self._known.items()):
                if ident.alive() is None:
                    del self._known[pid]
                    self._on_exit(role, ident)
            if ticks % 4 == 0:  # new processes (respawned stubs, restarts) every 200 ms
                self._remember_processes(announce=True)

    def _on_exit(self, role: str, ident: ProcessId) -> None:
        code = self.stack.exit_code(role, ident)
        fields: dict[str, Any] = {"role": role, "pid": ident.pid, "exit_code": code,
                                  "planned": self.planned_down}
        if code is not None and code < 0:
            fields["signal"] = signal.Signals(-code).name
        self.journal.event("process_exited", **fields)
        if role == "server" and not self.planned_down:
            self._fail("exited")
            self._maybe_restart()

    # --- health

    def _probe_health(self) -> None:
        while True:
            started = time.monotonic()
            health = self.stack.health(timeout=HEALTH_TIMEOUT_S)
            if health.ok:
                self._failed_probes = 0
                if self.state in ("exited", "hang") and not self.planned_down:
                    self._recover("health")
            else:
                self._failed_probes += 1
                if self._failed_probes == FAILED_PROBES_FOR_UNHEALTHY and not self.planned_down:
                    self._on_unhealthy(health.detail)
                self._check_liveness()
            gevent.sleep(max(0.0, HEALTH_EVERY_S - (time.monotonic() - started)))

    def _on_unhealthy(self, detail: str) -> None:
        servers = self.stack.roles().get("server", [])
        proc = servers[0].alive() if servers else None
        if proc is None:
            return  # the process watcher reports the exit
        try:
            status = proc.status()
        except Exception:  # noqa: BLE001 - it just exited
            return
        if self.state in ("up", "degraded"):
            self._fail("hang")
            self.journal.event("hang_detected", pid=proc.pid, process_status=status, probe=detail)

    def _check_liveness(self) -> None:
        timeout = self.policy.liveness_timeout
        if timeout is None or self.state != "hang" or self.failed_since is None:
            return
        if self.journal.now() - self.failed_since >= timeout:
            for ident in self.stack.roles().get("server", []):
                self.journal.event("liveness_kill", pid=ident.pid, after_s=round(timeout, 3))
                ident.send(signal.SIGKILL)

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
            self._restarting = None
            self._maybe_restart()
            return
        self.journal.event("restarted", attempt=self.restarts, startup_s=round(startup, 3))
