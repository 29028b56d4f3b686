"""`SoakRun`: one long run whose journal, faults and per-cycle state turn over every cycle.

It is a `Run` (the same stack start, supervisor, observers, teardown and signals) with a few
hooks overridden: the journal rotates, the fault runner plans one cycle at a time, the load
shape repeats, and the reports are the soak's. A greenlet watches the cycle clock:
- just before each boundary it ends the cycle's file (`load_stopped` at the boundary), opens the
  next cycle's (a copy of the start-up events, `load_started` at the boundary), arms the next
  cycle's faults and resets per-cycle state (Locust's own statistics, the restart policy's
  budget, the trace breakdown);
- the ended cycle's file stays open as the journal's tail until its straddling second is written
  and, while one of its faults is still held or the stack has not recovered, for its events too
  (at most TAIL_MAX_S, and never past the next cycle's first fault);
- then `run_ended` closes it and a child process writes that cycle's reports and index record.
"""

import logging
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import gevent
import psutil
from gevent.event import Event
from gevent.queue import Queue

from faults.base import FaultContext
from harness.faultrun import FaultRunner
from harness.journal import JOURNAL_NAME, RotatingJournal, read_journal
from harness.load.distributed import MAX_REPORT_LAG_S
from harness.load.driver import LoadDriver
from harness.observers.logwatch import LogWatcher
from harness.runner import Run
from harness.scenario import Scenario
from harness.soak.faults import CyclicFaultRunner
from harness.soak.index import cycle_dir
from harness.soak.plan import (
    CyclicSchedule,
    SoakPlan,
    first_fault_offset,
    one_cycle_steps,
    soak_load,
)
from harness.soak.report import SETTINGS_EVENT, SoakSettings, write_soak_reports
from harness.verdict import Verdict

log = logging.getLogger(__name__)

# A fault at a cycle's 0 s must find that cycle's file open, even when the event loop is busy
# with thousands of requests a second (it wakes tens of ms late then).
ROTATE_EARLY_S = 0.25
POLL_S = 0.1
HARNESS_RSS_EVERY_S = 5.0
TAIL_MAX_S = 30.0
# A straddling second nobody answered in is never written: stop waiting. Load workers' seconds
# reach the journal up to MAX_REPORT_LAG_S late.
SECONDS_GRACE_S = MAX_REPORT_LAG_S + 1.0
FINISH_TIMEOUT_S = 300.0
MIB = 1024 * 1024
# Start-up events every cycle's journal repeats, so its report and start-up SLOs stand alone
# (`metrics_profile`: the server charts its report draws from the cycle's `metrics` samples).
PROLOGUE = {"run_started", "stack_starting", "stack_start_attempt", "stack_ready", "collector_started",
            "memory_group_created", "metrics_profile"}


class SoakRun(Run):
    journal_class = RotatingJournal

    def __init__(self, scenario: Scenario, scenario_file: Path, runs_root: Path, *, for_s: float,
                 warmup_s: float | None = None, max_rss_slope_mb_per_h: float | None = None,
                 max_p99_drift_ms: float | None = None, **kwargs: Any):
        self.plan = SoakPlan(for_s, scenario.load.total_duration)
        self.base_scenario = scenario
        whole = scenario.model_copy(update={"load": soak_load(scenario.load, self.plan)})
        super().__init__(whole, scenario_file, runs_root, **kwargs)  # e.g. progress, seed, workers
        self.settings = SoakSettings(
            for_s=for_s, cycle_s=self.plan.cycle_s, cycles=self.plan.cycles,
            warmup_s=self.plan.cycle_s if warmup_s is None else warmup_s,
            max_rss_slope_mb_per_h=max_rss_slope_mb_per_h, max_p99_drift_ms=max_p99_drift_ms,
        )
        self.journal.event(SETTINGS_EVENT, **self.settings.to_dict())
        self.origin = 0.0
        self.index = -1  # the cycle now running (0-based)
        self.tail: int | None = None  # the ended cycle whose file is still open
        self.tail_deadline = 0.0
        self.prologue: list[dict[str, Any]] = []
        self.finisher = CycleFinisher(self.run_dir)
        self._stop_soak = Event()
        self._loop: gevent.Greenlet | None = None
        self._next_rss = 0.0

    @property
    def rotating(self) -> RotatingJournal:
        assert isinstance(self.journal, RotatingJournal)
        return self.journal

    @property
    def cyclic_faults(self) -> CyclicFaultRunner | None:
        return self.faults if isinstance(self.faults, CyclicFaultRunner) else None

    # --- Run's hooks

    def make_fault_runner(self, ctx: FaultContext) -> FaultRunner:
        faults = self.base_scenario.faults
        return CyclicFaultRunner(faults, self.plan, self.rng, ctx, self.journal, self.restore)

    def on_load_started(self, driver: LoadDriver, started: float) -> None:
        self.origin = started
        if self.base_scenario.load.open_model:  # one cycle's steps, looked up modulo the cycle
            driver.pace_by(CyclicSchedule(one_cycle_steps(self.base_scenario.load), self.plan.for_s))
        main = self.run_dir / JOURNAL_NAME
        self.prologue = [r for r in read_journal(main)
                         if r.get("type") == "event" and r.get("event") in PROLOGUE]
        self._open_cycle(0)
        self._loop = gevent.spawn(self._soak_loop)

    def before_load_stops(self, driver: LoadDriver) -> None:
        self._stop_soak.set()
        if self._loop is not None:
            self._loop.join(timeout=5)
            self._loop = None
        driver.end_pacing_now()  # `unsent`: only the slots due by now, not the hours still planned
        self.rotating.tail_events = False  # the last cycle's `load_stopped` is its own
        if self.index >= 0:
            self._sample_harness_rss()  # the last cycle's closing sample

    def after_load_stopped(self) -> None:
        # The last cycle's seconds and `load_stopped` are written: the tail before it closes.
        if self.tail is not None:
            self._end_tail()

    def write_reports(self) -> tuple[Verdict, dict[str, Any]]:
        self.finisher.close()
        return write_soak_reports(self.run_dir, self.base_scenario, self.settings)

    # --- the cycle clock

    def _soak_loop(self) -> None:
        try:
            self._tick_cycles()
        except Exception as exc:  # noqa: BLE001 - without its clock the soak cannot go on: end it, judged
            log.exception("soak cycle clock")
            self.journal.event("internal_error", error=f"soak cycle clock: {exc!r}")
            self.stop_requested.set()

    def _tick_cycles(self) -> None:
        while not self._stop_soak.is_set():
            now = self.journal.now()
            if now >= self._next_rss:
                self._sample_harness_rss()
            has_next = self.index + 1 < self.plan.cycles
            rotate_at = self.origin + self.plan.start_of(self.index + 1) - ROTATE_EARLY_S
            if has_next and now >= rotate_at:
                self._open_cycle(self.index + 1)
                continue
            self._check_tail(now)
            wait = min(POLL_S, rotate_at - now) if has_next else POLL_S
            self._stop_soak.wait(max(0.0, wait))

    def _open_cycle(self, index: int) -> None:
        boundary = self.origin + self.plan.start_of(index)
        journal = self.rotating
        if index > 0:
            self._close_cycle(index - 1, boundary)
        journal.rotate(cycle_dir(self.run_dir, index + 1) / JOURNAL_NAME, boundary)
        if index == 0:
            journal.close_tail()  # the main journal keeps the start-up; the load's first second is cycle 1's
        for record in self.prologue:
            fields = {k: v for k, v in record.items() if k not in ("type", "event")}
            journal.event_here(record["event"], **fields, prologue=True)
        spec = self.base_scenario.load
        journal.event_here("load_started", t=round(boundary, 4), user=spec.user, open_model=spec.open_model,
                           cycle=index + 1, cycles=self.plan.cycles, cycle_s=self.plan.cycle_s,
                           soak_start=round(self.origin, 4), log_baseline=self._log_counts() if index else {})
        self.index = index
        if index == 0:
            return  # Run starts the fault runner (cycle 1's faults) right after this
        self._reset_per_cycle()
        faults = self.cyclic_faults
        if faults is not None:
            faults.schedule(index)
        self._start_tail(index - 1, boundary)

    def _close_cycle(self, index: int, boundary: float) -> None:
        """The end of cycle `index`'s load, written while its file is still the current one."""
        if self.tail is not None:
            self._end_tail()  # the cycle before it: never two tails
        self._sample_harness_rss()
        self.rotating.event_here("load_stopped", t=round(boundary, 4), seconds=round(self.plan.cycle_s, 3),
                                 cycle=index + 1)

    def _start_tail(self, ended: int, boundary: float) -> None:
        self.tail = ended
        deadline = boundary + TAIL_MAX_S
        faults = self.cyclic_faults
        first = first_fault_offset(faults.planned, self.plan, self.index) if faults is not None else None
        if first is not None:
            deadline = min(deadline, boundary + first - 0.2)
        self.tail_deadline = deadline
        self.rotating.tail_events = deadline > self.journal.now() and not self._settled(ended)

    def _settled(self, index: int) -> bool:
        """Cycle `index`'s faults are all restored and the stack is serving again."""
        faults = self.cyclic_faults
        if faults is not None and faults.active_in(index):
            return False
        return self.supervisor is None or self.supervisor.state == "up"

    def _check_tail(self, now: float) -> None:
        if self.tail is None:
            return
        journal = self.rotating
        if journal.tail_events and (now >= self.tail_deadline or self._settled(self.tail)):
            journal.tail_events = False
        straddle = math.floor(journal.tail_before)
        seconds_done = journal.last_second >= straddle or now >= journal.tail_before + SECONDS_GRACE_S
        if not journal.tail_events and seconds_done:
            self._end_tail()

    def _end_tail(self) -> None:
        assert self.tail is not None
        self.rotating.event_tail("run_ended", cycle=self.tail + 1)
        path = self.rotating.close_tail()
        self.tail = None
        if path is not None:
            self.finisher.submit(path.parent)

    # --- what would otherwise grow for the whole soak

    def _reset_per_cycle(self) -> None:
        if self.driver is not None:
            self.driver.reset_locust_stats()
        if self.supervisor is not None:
            self.supervisor.new_restart_budget()  # the policy's `max_restarts` counts per cycle
        self._call_hooks(lambda feature: feature.per_soak_cycle)  # e.g. the trace breakdown: the cycle's own

    def _log_counts(self) -> dict[str, float]:
        for observer in self.observers:
            if isinstance(observer, LogWatcher):
                return {name: float(count) for name, count in observer.counts().items()}
        return {}

    def _sample_harness_rss(self) -> None:
        self._next_rss = self.journal.now() + HARNESS_RSS_EVERY_S
        rss = psutil.Process().memory_info().rss
        self.journal.series("harness_rss", {"rss_mb": round(rss / MIB, 3)})


class CycleFinisher:
    """Finishes ended cycles one at a time, each in a child process (`python -m harness.soak.cycle`):
    reading a journal and rendering report.html would otherwise stall the load's event loop.
    A cycle it could not finish is finished by the final report (`harness report` too)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.queue: Queue[Path | None] = Queue()
        self.greenlet: gevent.Greenlet | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def submit(self, path: Path) -> None:
        if self.greenlet is None:
            self.greenlet = gevent.spawn(self._loop)
        self.queue.put(path)

    def _loop(self) -> None:
        while True:
            path = self.queue.get()
            if path is None:
                return
            self._finish(path)

    def _finish(self, path: Path) -> None:
        command = [sys.executable, "-m", "harness.soak.cycle", str(path), str(self.run_dir)]
        # Its own session: a Ctrl-C at the terminal stops the harness, not a half-written report.
        self.proc = proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            start_new_session=True)
        try:
            _, err = proc.communicate(timeout=FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        finally:
            self.proc = None
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
            log.warning("finishing %s failed (exit %s): %s", path, proc.returncode, " ".join(tail))

    def close(self, timeout: float = 60.0) -> None:
        """Let the cycle in hand finish (the report finishes any left in the queue)."""
        if self.greenlet is None:
            return
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put(None)
        self.greenlet.join(timeout=timeout)
        if not self.greenlet.dead:
            if self.proc is not None:
                self.proc.kill()
            self.greenlet.kill()
        self.greenlet = None
