"""Distributed load: this process is Locust's master, the users run in worker processes.

Faults, observers, the supervisor and the journal stay here. Each worker records its requests in
per-second HDR buckets exactly as a local run does and sends them here once a second
(harness.load.wire); the master merges them and writes a second to the journal only once every
live worker has reported past it, so a second's record holds all workers' requests.
"""

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.rpc import Message
from locust.runners import MasterRunner

from harness.errors import HarnessError
from harness.journal import Journal
from harness.load import wire
from harness.load.recorder import Recorder
from harness.load.target import Target
from harness.load.workeropts import WorkerPlan
from harness.procs import ManagedProcess, ProcessId, kill_all
from harness.restore import RestoreLog
from harness.scenario import LoadSpec

log = logging.getLogger(__name__)

# A second is written once every live worker reported past it, or this long after it ended.
MAX_REPORT_LAG_S = 5.0
FINAL_WAIT_S = 10.0
# How long after the load should have ended a worker goes on before stopping by itself.
WORKER_DEADLINE_GRACE_S = 120.0


class WorkersFailed(HarnessError):
    """Load workers did not start or join in time (the exit code is INTERNAL_ERROR)."""


@dataclass
class _WorkerState:
    index: int
    watermark: float = 0.0  # run-clock time below which this worker has sent every second
    final: bool = False
    lost: bool = False
    report: dict[str, Any] = field(default_factory=dict)


class Workers:
    """The master side: worker processes, the setup each one gets, and the seconds they send."""

    def __init__(self, plan: WorkerPlan, run_dir: Path, journal: Journal, restore: RestoreLog,
                 should_stop: Callable[[], bool] = lambda: False):
        self.plan = plan
        self.run_dir = run_dir
        self.journal = journal
        self.restore = restore
        self.should_stop = should_stop
        self.processes: list[ManagedProcess] = []
        self.states: dict[str, _WorkerState] = {}
        self.runner: MasterRunner | None = None
        self.recorder: Recorder | None = None
        self.spec: LoadSpec | None = None
        self.target: Target | None = None
        self.user_class_name = ""
        self._setup: wire.Setup | None = None

    def attach(self, env: Environment, spec: LoadSpec, target: Target, recorder: Recorder) -> MasterRunner:
        """Become the master, start the local workers and wait until every expected worker joined."""
        self.spec, self.target, self.recorder = spec, target, recorder
        self.user_class_name = env.user_classes[0].__name__
        self.runner = env.create_master_runner(self.plan.bind_host, self.plan.bind_port)
        self.runner.register_message(wire.SECONDS, self._on_seconds)
        env.events.worker_connect.add_listener(self._on_connect)
        port = self.runner.server.port
        self.journal.event("load_master_listening", host=self.plan.bind_host, port=port,
                           local_workers=self.plan.local, remote_workers=self.plan.remote)
        if self.plan.remote:
            print(f"load master on {self.plan.bind_host}:{port}: waiting for {self.plan.remote} worker(s); "
                  f"join with: harness worker --master HOST:{port}", flush=True)
        self._start_local(port)
        self._wait_for_workers()
        return self.runner

    def _start_local(self, port: int) -> None:
        wildcard = self.plan.bind_host in ("*", "0.0.0.0", "::")
        host = "127.0.0.1" if wildcard else self.plan.bind_host
        master = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        for index in range(self.plan.local):
            argv = [sys.executable, "-m", "harness", "worker", "--master", master]
            proc = ManagedProcess(argv, dict(os.environ), self.run_dir / "workers" / f"worker-{index}.log",
                                  Path.cwd())
            self.processes.append(proc)
        plan = {"workers": [{"pid": p.ident.pid, "create_time": p.ident.create_time} for p in self.processes]}
        if self.processes:  # before waiting: `harness cleanup` must find them after a SIGKILL
            self.restore.resource("harness.load.distributed:stop_workers", plan)

    def _wait_for_workers(self) -> None:
        assert self.runner is not None
        deadline = time.monotonic() + self.plan.join_timeout_s
        while self.runner.worker_count < self.plan.expected:
            dead = [p for p in self.processes if p.returncode() is not None]
            if dead:
                raise WorkersFailed(f"load worker pid {dead[0].pid} exited with {dead[0].returncode()} "
                                    f"before joining; see {dead[0].log_path}")
            if time.monotonic() > deadline:
                raise WorkersFailed(f"only {self.runner.worker_count} of {self.plan.expected} load "
                                    f"worker(s) joined within {self.plan.join_timeout_s:g}s")
            if self.should_stop():
                return
            gevent.sleep(0.1)

    def _on_connect(self, client_id: str, **_: Any) -> None:
        assert self.runner is not None
        if client_id in self.states:  # a worker says "ready" again after every stop: not a new one
            return
        index = self.runner.get_worker_index(client_id)
        self.states[client_id] = _WorkerState(index)
        self.journal.event("load_worker_joined", worker=client_id, index=index,
                           late=self._setup is not None)
        if self._setup is not None:  # joined after the start: it gets users, but no arrival share
            late_setup = wire.Setup(**{**self._setup.to_message(), "rate_share": 0.0})
            self.runner.send_message(wire.SETUP, late_setup.to_message(), client_id)

    def send_setup(self, clock: Callable[[], float]) -> None:
        """Just before users are spawned: each worker's share of the load and the run clock."""
        assert self.runner is not None and self.spec is not None and self.target is not None
        now_run, now_wall = clock(), time.time()
        origin_wall = now_wall - now_run
        clients = sorted(self.states, key=lambda c: self.states[c].index)
        rate = _first_rate(self.spec)
        for position, client_id in enumerate(clients):
            setup = wire.Setup(
                load=self.spec.model_dump(mode="json", by_alias=True), target=asdict(self.target),
                clock_origin_wall=origin_wall, load_start_wall=now_wall, rate_share=1.0 / len(clients),
                slot_offset=position / rate if rate else 0.0,
                deadline_wall=now_wall + self.spec.total_duration + WORKER_DEADLINE_GRACE_S,
                user_class_name=self.user_class_name,
            )
            self.states[client_id].watermark = now_run
            self.runner.send_message(wire.SETUP, setup.to_message(), client_id)
            self._setup = setup

    def _on_seconds(self, environment: Environment, msg: Message, **_: Any) -> None:
        assert self.recorder is not None
        state = self.states.setdefault(msg.node_id, _WorkerState(-1))
        for record in msg.data["records"]:
            self.recorder.merge(record)
        state.watermark = max(state.watermark, float(msg.data["watermark"]))
        if msg.data["final"]:
            state.final = True
            state.report = dict(msg.data.get("report") or {})

    def complete_before(self, now: float) -> float:
        """Seconds before this are complete: every live worker has reported past them."""
        self._notice_lost_workers()
        live = [s.watermark for s in self.states.values() if not s.lost and not s.final]
        reported = min(live, default=now)
        return min(now, max(reported, now - MAX_REPORT_LAG_S))

    def _notice_lost_workers(self) -> None:
        assert self.runner is not None
        for node in self.runner.clients.missing:
            state = self.states.get(node.id)
            if state is not None and not state.lost:
                state.lost = True
                self.journal.event("load_worker_lost", worker=node.id, index=state.index)

    def finish(self) -> dict[str, Any]:
        """Stop users, collect every worker's last seconds, quit workers; the load summary."""
        if self.runner is None:
            self.stop_processes()
            return {}
        self.runner.stop()
        for client_id, state in self.states.items():
            if not state.lost:
                self.runner.send_message(wire.FINAL, None, client_id)
        deadline = time.monotonic() + FINAL_WAIT_S
        while time.monotonic() < deadline and not all(s.final or s.lost for s in self.states.values()):
            gevent.sleep(0.05)
        self.runner.quit()  # workers send Locust's last statistics on quit: read them after it
        stats = self.runner.stats.total
        self.stop_processes()
        return self._summary(stats.num_requests, stats.num_failures)

    def _summary(self, locust_requests: int, locust_failures: int) -> dict[str, Any]:
        reports = {s.index: s.report for s in self.states.values()}
        summary: dict[str, Any] = {
            "workers": len(self.states),
            "worker_reports": [reports[i] for i in sorted(reports)],
            "workers_without_final": sorted(s.index for s in self.states.values() if not s.final),
            "locust_requests": locust_requests,
            "locust_failures": locust_failures,
        }
        if self.spec is not None and self.spec.open_model:
            summary["intended_sent"] = sum(r.get("intended_sent") or 0 for r in reports.values())
            summary["unsent"] = sum(r.get("unsent") or 0 for r in reports.values())
        return summary

    def stop_processes(self) -> None:
        for proc in self.processes:
            try:
                proc.popen.wait(5)  # a worker told to quit exits by itself
            except Exception:  # noqa: BLE001 - still running: stopped below by PID
                pass
            proc.stop(timeout=5.0)
        self.processes = []


def _first_rate(spec: LoadSpec) -> float:
    if spec.rate:
        return spec.rate
    rates = [s.rate for s in spec.stages or [] if s.rate]
    return max(rates, default=0.0)


def stop_workers(plan: dict[str, Any]) -> list[str]:
    """`harness cleanup`: stop local load workers a killed master left running (by PID and start time)."""
    idents = [ProcessId(w["pid"], w["create_time"], "harness worker") for w in plan.get("workers", [])]
    return [f"stopped load worker pid {i.pid}" for i in kill_all(idents, grace=3.0)]
