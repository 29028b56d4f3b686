"""One run: start the stack, drive the load, record everything, stop, judge, report.

Import this only after Locust (and so gevent's monkey-patching) is loaded: `harness.cli` does.
"""

import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event

from harness import __version__
from harness.errors import StackFailed
from harness.journal import Journal
from harness.load.driver import LoadDriver
from harness.load.recorder import Recorder
from harness.load.target import Target
from harness.progress import Progress
from harness.rundir import make_run_dir
from harness.scenario import Scenario
from harness.stacks.base import Stack
from harness.stacks.factory import make_stack
from harness.stacks.modelzoo import ZOO
from harness.verdict import Verdict
from reports.build import write_reports

log = logging.getLogger(__name__)
TICK_S = 0.25


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; the run winds down and still reports."""


class Run:
    def __init__(self, scenario: Scenario, scenario_file: Path, runs_root: Path, progress: bool = True):
        self.scenario = scenario
        self.run_dir = make_run_dir(runs_root, scenario.name, scenario_file)
        self.journal = Journal(self.run_dir / "journal.jsonl")
        self.recorder = Recorder(self.journal.now)
        self.stop_requested = Event()
        self.stop_signal = ""
        self.show_progress = progress
        self.stack: Stack | None = None
        self.driver: LoadDriver | None = None

    def execute(self) -> tuple[Verdict, dict[str, Any]]:
        _log_to(self.run_dir / "harness.log")
        signals = (signal.SIGINT, signal.SIGTERM)
        handlers = [gevent.signal_handler(sig, self._on_signal, sig) for sig in signals]
        self.journal.event(
            "run_started", scenario=self.scenario.name, harness=__version__, pid=os.getpid(), argv=sys.argv
        )
        try:
            self._start_stack()
            self._drive_load()
        except StackFailed as exc:
            self.journal.event("stack_failed", error=str(exc))
        except Interrupted:
            self.journal.event("interrupted", signal=self.stop_signal)
        except Exception as exc:  # noqa: BLE001 - recorded, then the teardown still runs
            log.exception("internal error")
            self.journal.event("internal_error", error=repr(exc), traceback=traceback.format_exc())
        finally:
            self._teardown()
            for handler in handlers:
                handler.cancel()
        return write_reports(self.run_dir, self.scenario)

    def _on_signal(self, sig: int) -> None:
        self.stop_signal = signal.Signals(sig).name
        self.stop_requested.set()

    def _start_stack(self) -> None:
        self.stack = make_stack(self.scenario, self.run_dir / "stack")
        self.journal.event("stack_starting", kind=self.scenario.stack.kind)
        self.stack.start()
        waiter = gevent.spawn(self.stack.wait_ready, self.scenario.stack.startup_timeout)
        gevent.wait([waiter, self.stop_requested], count=1)
        if not waiter.ready():
            waiter.kill()
            raise Interrupted()
        startup_s = waiter.get()  # re-raises StackFailed
        self.journal.event("stack_ready", startup_s=round(startup_s, 3), stack=self.stack.describe())

    def _drive_load(self) -> None:
        assert self.stack is not None
        spec = self.scenario.load
        self.driver = LoadDriver(spec, self._target(), self.recorder)
        progress = Progress(spec.total_duration) if self.show_progress else None
        self.journal.event("load_started", user=spec.user, open_model=spec.open_model)
        started = self.journal.now()
        self.driver.start()
        while not self.stop_requested.is_set():
            elapsed = self.journal.now() - started
            if elapsed >= spec.total_duration:
                break
            self.stop_requested.wait(min(TICK_S, spec.total_duration - elapsed))
            self._flush_seconds(progress, elapsed)
        self._stop_load()
        if progress is not None:
            progress.finish()
        if self.stop_requested.is_set():
            raise Interrupted()

    def _flush_seconds(self, progress: Progress | None, elapsed: float) -> None:
        for record in self.recorder.pop_complete():
            self.journal.second(record)
            if progress is not None:
                errors = record["requests"] - record["ok"]
                p99 = record["latency_ms"].get("p99")
                users = self.driver.user_count if self.driver else 0
                progress.update(elapsed, record["ok"], errors, p99, users)

    def _stop_load(self) -> None:
        if self.driver is None:
            return
        summary = self.driver.stop()
        self.driver = None
        for record in self.recorder.pop_complete(everything=True):
            self.journal.second(record)
        self.journal.event("load_stopped", **summary)

    def _target(self) -> Target:
        assert self.stack is not None
        spec = self.scenario.stack
        endpoints = self.stack.endpoints
        model = ZOO.get(spec.model) if spec.kind == "triton" else None
        return Target(
            http_url=endpoints.http,
            grpc_url=endpoints.grpc,
            model=spec.model,
            input_name=model.input_name if model else "INPUT0",
            output_name=model.output_name if model else "OUTPUT0",
            datatype=model.datatype if model else "FP32",
            shape=(1, *model.dims) if model else (1, 4),
            request_timeout=self.scenario.load.request_timeout,
        )

    def _teardown(self) -> None:
        """Always runs: stop load, stop the stack, close the journal."""
        try:
            self._stop_load()
        except Exception as exc:  # noqa: BLE001
            self.journal.event("internal_error", error=f"stopping load: {exc!r}")
        if self.stack is not None:
            report = self.stack.stop()
            self.journal.event("stack_stopped", report={"exits": report.exits, "leaks": report.leaks})
        self.journal.event("run_ended")
        self.journal.close()


def _log_to(path: Path) -> None:
    """Harness and Locust logs go to the run folder; the terminal shows progress only."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
