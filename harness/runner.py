"""One run: start the stack, drive the load, record everything, stop, judge, report.

Import this only after Locust (and so gevent's monkey-patching) is loaded: `harness.cli` does.
"""

import dataclasses
import logging
import os
import random
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event

from faults.base import FaultContext, FaultError
from harness import __version__
from harness.abort import AbortWatch
from harness.errors import StackFailed, UsageError
from harness.exitcodes import ExitCode
from harness.faultrun import FaultRunner
from harness.features import Feature, Hook, ObserverSetup, RunHooksContext, call_hooks, discover
from harness.journal import Journal
from harness.load.distributed import WorkerPlan, Workers, WorkersFailed
from harness.load.driver import LoadDriver
from harness.load.locust_outputs import LocustOutputs
from harness.load.recorder import Recorder
from harness.logpatterns import DEFAULT_LOG_PATTERNS
from harness.memory.runpart import MemoryRun
from harness.observers.base import Observer, ObserverContext
from harness.observers.logwatch import LogWatcher
from harness.observers.prometheus import PrometheusScraper
from harness.procs import ProcessId
from harness.progress import Progress
from harness.restore import RestoreLog
from harness.roles import role_table
from harness.rundir import make_run_dir
from harness.scenario import Scenario
from harness.stacks.base import Stack
from harness.supervisor import Supervisor
from harness.timeline import plan_timeline
from harness.verdict import Verdict
from reports.build import write_reports

log = logging.getLogger(__name__)
TICK_S = 0.25


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; the run winds down and still reports."""


class Run:
    journal_class: type[Journal] = Journal  # a soak's journal rotates

    def __init__(
        self,
        scenario: Scenario,
        scenario_file: Path,
        runs_root: Path,
        progress: bool = True,
        seed: int | None = None,
        workers: WorkerPlan | None = None,
    ):
        self.scenario = scenario
        self.run_dir = make_run_dir(runs_root, scenario.name, scenario_file)
        self.journal = self.journal_class(self.run_dir / "journal.jsonl")
        self.restore = RestoreLog(self.run_dir)
        self.recorder = Recorder(self.journal.now)
        self.seed = _choose_seed(seed, scenario.seed)
        self.rng = random.Random(self.seed)
        self.supervisor: Supervisor | None = None
        self.faults: FaultRunner | None = None
        self.observers: list[Observer] = []
        self.features = discover()  # what each feature adds: observers, hooks
        self.hooks = RunHooksContext(scenario, self.run_dir, self.journal)
        self.stop_requested = Event()
        self.stop_signal = ""
        self.show_progress = progress
        self.progress: Progress | None = None  # the live view while the load runs (harness.progress)
        self.stack: Stack | None = None
        self.driver: LoadDriver | None = None
        self.worker_plan = workers  # None: users run in this process
        self.memory: MemoryRun | None = None  # start attempts, sidecars, memory watchers and groups
        self.locust_outputs: LocustOutputs | None = None  # Locust's own report and CSV files

    def execute(self) -> tuple[Verdict, dict[str, Any]]:
        _log_to(self.run_dir / "harness.log")
        signals = (signal.SIGINT, signal.SIGTERM)
        # gevent's cancel() leaves a signal at its default action (death, no report): put back the
        # handlers that were there, so a Ctrl-C while reports are written still lands somewhere sane.
        previous = {sig: signal.getsignal(sig) for sig in signals}
        handlers = [gevent.signal_handler(sig, self._on_signal, sig) for sig in signals]
        self.journal.event(
            "run_started", scenario=self.scenario.name, harness=__version__, pid=os.getpid(),
            argv=sys.argv, seed=self.seed,
        )
        try:
            self._start_stack()
            self._drive_load()
        except StackFailed as exc:
            self.journal.event("stack_failed", error=str(exc))
        except UsageError as exc:
            self.journal.event("scenario_invalid", error=str(exc))
        except WorkersFailed as exc:
            self.journal.event("internal_error", error=str(exc))
        except Interrupted:
            self.journal.event("interrupted", signal=self.stop_signal)
        except Exception as exc:  # noqa: BLE001 - recorded, then the teardown still runs
            log.exception("internal error")
            self.journal.event("internal_error", error=repr(exc), traceback=traceback.format_exc())
        finally:
            self._teardown()
            for handler in handlers:
                handler.cancel()
            for sig, before in previous.items():
                signal.signal(sig, before)
        verdict, summary = self.write_reports()
        self._after_report()
        return self._judged_after_report(verdict), summary

    # --- what a subclass (the soak) may change: these and `journal_class`, nothing private

    def write_reports(self) -> tuple[Verdict, dict[str, Any]]:
        """From the journal: verdict, summary.json, junit.xml, report.html (a soak writes its own)."""
        return write_reports(self.run_dir, self.scenario)

    def _after_report(self) -> None:
        """Features' after-report hooks. The run is judged and on disk: a hook that fails is logged
        and says so in one line, and neither the next hook nor the run's exit code is affected."""
        for feature in self.features:
            if feature.after_report is None:
                continue
            try:
                feature.after_report(self.hooks)
            except Exception as exc:  # noqa: BLE001 - see above
                log.exception("feature %s: after-report hook", feature.name)
                print(f"harness: feature {feature.name!r} after the reports: {exc!r}", file=sys.stderr)

    def _judged_after_report(self, verdict: Verdict) -> Verdict:
        return judged_after_report(self.features, self.hooks, verdict)

    def _on_signal(self, sig: int) -> None:
        self.stop_signal = signal.Signals(sig).name
        self.stop_requested.set()

    def _call_hooks(self, pick: Callable[[Feature], Hook | None]) -> None:
        call_hooks(self.features, pick, self.hooks)

    def _start_stack(self) -> None:
        self._call_hooks(lambda feature: feature.before_start)  # e.g. a trace collector the stack sends to
        self.stack = self.scenario.stack.build(self.run_dir / "stack", **self.hooks.stack_args)
        self.hooks.stack = self.stack
        for undo, plan in self.stack.resources():  # before start: cleanup must find them after a SIGKILL
            self.restore.resource(undo, plan)
        self.journal.event("stack_starting", kind=self.scenario.stack.kind)
        self.memory = MemoryRun(self.scenario.startup, self.scenario.sidecars, self.run_dir, self.journal,
                                self.restore, self.stop_requested)
        self.memory.begin(self.stack)
        startup_s = self.memory.start_stack(self.stack, self.scenario.stack.startup_timeout,
                                            self._record_processes)  # StackFailed after the last attempt
        if startup_s is None:
            raise Interrupted()
        self.journal.event("stack_ready", startup_s=round(startup_s, 3), stack=self.stack.describe())
        self._call_hooks(lambda feature: feature.after_ready)

    def _record_processes(self) -> None:
        assert self.stack is not None
        for role, idents in self.stack.roles().items():
            for ident in idents:
                self.restore.process(role, ident)

    def _prepare_faults(self) -> None:
        assert self.stack is not None
        stack = self.stack
        ctx = FaultContext(roles=stack.roles, restart_stack=self.restart_stack, rng=self.rng,
                           stack=stack, journal=self.journal, services=self.hooks.services)
        self.faults = self.make_fault_runner(ctx)
        try:
            self.faults.validate()
        except FaultError as exc:
            raise UsageError(f"faults: {exc}") from None

    def make_fault_runner(self, ctx: FaultContext) -> FaultRunner:
        """The faults of the scenario's timeline (a soak plans one cycle at a time)."""
        planned = plan_timeline(self.scenario.faults, self.scenario.load.total_duration, self.rng)
        return FaultRunner(planned, ctx, self.journal, self.restore)

    def _start_supervisor(self) -> None:
        assert self.stack is not None
        self.supervisor = Supervisor(
            self.stack,
            self.journal,
            self.scenario.stack.restart,
            self.restart_stack,
            self._on_new_process,
            role_table(type(self.scenario.stack).ROLES),
            self.scenario.observe.canary,
        )
        self.supervisor.start()

    def _start_observers(self) -> None:
        assert self.stack is not None
        observe = self.scenario.observe
        patterns = {**DEFAULT_LOG_PATTERNS, **observe.log_patterns}
        self.observers = [LogWatcher(patterns)]
        if observe.metrics and self.stack.endpoints.metrics:
            # The stack says what its /metrics holds: the core scraper names no server.
            profile = self.stack.scrape_profile()
            self.observers.append(PrometheusScraper(interval_s=observe.metrics_interval, profile=profile))
        setup = ObserverSetup(self.scenario, self.stack, self.journal, self.run_dir, self.hooks.services)
        for feature in self.features:  # traces, Docker's events, TorchServe's workers, ...
            if feature.observers is not None:
                self.observers.extend(feature.observers(setup))
        ctx = ObserverContext(self.journal, self.stack)
        for observer in self.observers:
            observer.start(ctx)

    def _stop_observers(self) -> None:
        """After the stack stopped, so the log watcher reads the server's last lines too."""
        for observer in self.observers:
            self.journal.event("observer_stopped", observer=observer.name, summary=observer.stop())
        self.observers = []

    def _on_new_process(self, role: str, ident: ProcessId) -> None:
        self.restore.process(role, ident)

    def restart_stack(self, graceful: bool) -> float:
        """Stop and start the stack on the same ports; returns seconds until ready."""
        assert self.stack is not None
        if self.supervisor is not None:
            self.supervisor.expect_down()
        report = self.stack.stop(graceful)
        self.restore.processes_stopped()
        self.journal.event("stack_stopped", report={"exits": report.exits, "leaks": report.leaks},
                           restart=True)
        self.stack.start()
        self._record_processes()
        if self.memory is not None:
            self.memory.after_restart(self.stack)
        ready = self.stack.wait_ready(self.scenario.stack.startup_timeout)
        self.journal.event("stack_ready", startup_s=round(ready, 3), stack=self.stack.describe(),
                           restart=True)
        if self.supervisor is not None:
            self.supervisor.expect_up()
        return ready

    def _drive_load(self) -> None:
        assert self.stack is not None
        spec = self.scenario.load
        self._prepare_faults()
        self._start_supervisor()
        self._start_observers()
        workers = None
        if self.worker_plan is not None:
            workers = Workers(self.worker_plan, self.run_dir, self.journal, self.restore,
                              self.stop_requested.is_set)
        self.driver = LoadDriver(spec, self.stack.target(spec.request_timeout), self.recorder, workers)
        self.driver.prepare()  # with workers: until they all joined
        if self.stop_requested.is_set():
            raise Interrupted()
        progress = self._make_progress(spec.total_duration) if self.show_progress else None
        self.journal.event("load_started", user=spec.user, open_model=spec.open_model,
                           workers=self.worker_plan.expected if self.worker_plan else 0)
        started = self.journal.now()
        self._start_load(started)
        assert self.faults is not None
        self.faults.start(origin=started)
        abort = AbortWatch.for_run(self.scenario, self.journal)  # None: no SLO says `abort: true`
        while not self.stop_requested.is_set():
            elapsed = self.journal.now() - started
            if elapsed >= spec.total_duration:
                break
            self.stop_requested.wait(min(TICK_S, spec.total_duration - elapsed))
            self._flush_seconds(progress, elapsed)
            if abort is not None and abort.check() is not None:
                break  # `run_aborted` is journaled: the load ends as at its end, the teardown restores
        self._stop_load()
        if progress is not None:
            progress.finish()
        if self.stop_requested.is_set():
            raise Interrupted()

    def _flush_seconds(self, progress: Progress | None, elapsed: float) -> None:
        complete_before = self.driver.complete_before() if self.driver else None
        for record in self.recorder.pop_complete(complete_before):
            self.journal.second(record)
            if self.supervisor is not None:
                self.supervisor.on_second(record)
            if progress is not None:
                errors = record["requests"] - record["ok"]
                p99 = record["latency_ms"].get("p99")
                users = self.driver.user_count if self.driver else 0
                progress.update(elapsed, record["ok"], errors, p99, users)

    def _make_progress(self, total_s: float) -> Progress:
        """The live view, made now (it reads `sys.stdout` as it is now) and told every journal event:
        faults, crashes and restarts show as they are journaled, until the journal closes."""
        self.progress = Progress(total_s)
        self.journal.add_listener(self.progress.on_event)
        return self.progress

    def on_load_started(self, driver: LoadDriver, started: float) -> None:
        """The users are running; `started` is the run-clock time the load's clock counts from."""

    def before_load_stops(self, driver: LoadDriver) -> None:
        """The load is about to stop (at its end, or early), its last seconds not yet written."""

    def after_load_stopped(self) -> None:
        """The load stopped; its last seconds and `load_stopped` are in the journal."""

    def _start_load(self, started: float) -> None:
        assert self.driver is not None
        self.driver.start()
        self.locust_outputs = LocustOutputs.begin(self.driver.env, self.run_dir)
        self.on_load_started(self.driver, started)

    def _stop_load(self) -> None:
        if self.driver is None:
            return
        self.before_load_stops(self.driver)
        summary = self.driver.stop()
        if self.locust_outputs is not None:  # after the runner quit: a master has its workers' last figures
            self.journal.event("locust_outputs", **self.locust_outputs.finish())
            self.locust_outputs = None
        self.driver = None
        for record in self.recorder.pop_complete(everything=True):
            self.journal.second(record)
        self.journal.event("load_stopped", **summary)
        self.after_load_stopped()

    def _teardown(self) -> None:
        """Always runs: restore faults, stop load and watchers, stop the stack, close the journal."""
        steps = [
            # The load loop ends the live view itself; not when it raised: the terminal's cursor comes back.
            ("ending the live view", lambda: self.progress.finish() if self.progress else None),
            ("restoring faults", lambda: self.faults.stop() if self.faults else None),
            ("stopping load", self._stop_load),
            ("stopping supervisor", self._stop_supervisor),
            ("stopping the stack", self._stop_stack),
            ("stopping sidecars and memory watchers", lambda: self.memory.end() if self.memory else None),
            ("stopping observers", self._stop_observers),
            ("features' after-stop hooks", lambda: self._call_hooks(lambda feature: feature.after_stop)),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - every later step must still run
                log.exception(what)
                self.journal.event("internal_error", error=f"{what}: {exc!r}")
        self.journal.event("run_ended")
        self.journal.close()
        self.restore.close()

    def _stop_supervisor(self) -> None:
        if self.supervisor is not None:
            self.journal.event("supervisor_stopped", **self.supervisor.stop())

    def _stop_stack(self) -> None:
        if self.stack is not None:
            report = self.stack.stop()
            self.restore.processes_stopped()
            self.journal.event("stack_stopped", report={"exits": report.exits, "leaks": report.leaks})


def _choose_seed(cli_seed: int | None, scenario_seed: int | None) -> int:
    if cli_seed is not None:
        return cli_seed
    if scenario_seed is not None:
        return scenario_seed
    return random.SystemRandom().randrange(2**31)


def _log_to(path: Path) -> None:
    """Harness and Locust logs go to the run folder; the terminal shows progress only."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def judged_after_report(features: Sequence[Feature], hooks: RunHooksContext, verdict: Verdict) -> Verdict:
    """A passing run that a feature's judge fails (a regression on its history) exits 1, with the
    judge's reason after the run's own; any other verdict stays as it is."""
    reasons = []
    for feature in features:
        if feature.judge_after_report is None:
            continue
        try:
            reason = feature.judge_after_report(hooks)
        except Exception as exc:  # noqa: BLE001 - a judge that fails judges nothing
            log.exception("feature %s: judge after the reports", feature.name)
            print(f"harness: feature {feature.name!r} judging the run: {exc!r}", file=sys.stderr)
            continue
        if reason:
            reasons.append(f"{feature.name}: {reason}")
    if not reasons or verdict.code != ExitCode.PASS:
        return verdict
    return dataclasses.replace(verdict, word="fail", code=ExitCode.SLO_FAILED,
                               reason=f"{verdict.reason}; then {'; '.join(reasons)}")
