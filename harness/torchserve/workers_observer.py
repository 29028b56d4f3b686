"""Each TorchServe worker's state over the run, from the management API and the frontend log.

Journal records (times on the run clock):
- `ts_workers`: the API's worker list whenever it changes (id, pid, status), with how many are
  READY out of how many the scenario asked for; `api_error` when the API stops answering;
- `ts_worker_log`: lifecycle lines of the log (launch, ready, stopped, retry with its announced
  back-off, the first exception line of a failed start), `log_t` being the line's own time;
- `ts_retry_storm`: the same error ended `storm_after` starts in a row: not recoverable;
- `ts_worker_given_up`: a worker failed, TorchServe logged no retry, and the API still shows it
  down: TorchServe will not try again (maxRetryTimeoutInSec spent, or 0).
"""

import time
from typing import Any

import gevent
from gevent import Greenlet

from harness.observers.base import Observer, ObserverContext
from harness.observers.logwatch import FileTail
from harness.torchserve.logparse import WorkerEvent, parse_line
from harness.torchserve.management import ManagementError, ModelInfo, describe_model
from harness.torchserve.retries import GIVE_UP_GRACE_S, RetryTracker

API_TIMEOUT_S = 0.5


class TorchServeWorkers(Observer):
    name = "torchserve_workers"

    def __init__(self, interval_s: float = 0.25):
        self.interval_s = interval_s
        self.ctx: ObserverContext | None = None
        self.greenlet: Greenlet | None = None
        self.follower: FileTail | None = None
        self.tracker = RetryTracker()
        self.last_workers: tuple[tuple[str, int | None, str], ...] | None = None
        self.last_info: ModelInfo | None = None
        self.last_info_t = 0.0
        self.api_down = False
        self.storm_reported = False
        self.given_up: set[tuple[str, float]] = set()
        self.polls = 0
        self.api_errors = 0

    def start(self, ctx: ObserverContext) -> None:
        self.ctx = ctx
        stack: Any = ctx.stack
        self.tracker = RetryTracker(storm_after=stack.spec.storm_after)
        self.follower = FileTail(stack.log_path)
        self.greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            started = time.monotonic()
            self.poll()
            gevent.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    def poll(self) -> None:
        self.polls += 1
        self._poll_api()
        self._poll_log()
        self._check_verdicts()

    # --- management API

    def _poll_api(self) -> None:
        assert self.ctx is not None
        stack: Any = self.ctx.stack
        try:
            info = describe_model(stack.management_url, stack.model_name, timeout=API_TIMEOUT_S)
        except ManagementError as exc:
            self.api_errors += 1
            if not self.api_down:
                self.api_down = True
                self.ctx.journal.event("ts_workers", api_error=str(exc))
            return
        self.api_down = False
        self.last_info, self.last_info_t = info, time.time()
        workers = tuple((w.id, w.pid, w.status) for w in info.workers)
        if workers != self.last_workers:
            self.last_workers = workers
            self.ctx.journal.event(
                "ts_workers", ready=info.ready, expected=stack.spec.workers,
                workers=[{"id": i, "pid": p, "status": s} for i, p, s in workers],
            )

    # --- frontend log

    def _poll_log(self) -> None:
        assert self.follower is not None
        for block in self.follower.read():
            for line in block.decode("utf-8", errors="replace").splitlines():
                event = parse_line(line)
                if event is not None:
                    self.tracker.feed(event)
                    self._record(event)
            gevent.sleep(0)

    def _record(self, event: WorkerEvent) -> None:
        assert self.ctx is not None
        fields: dict[str, Any] = {"kind": event.kind, "worker": event.worker,
                                  "log_t": self._run_clock(event.t)}
        if event.delay_s is not None:
            fields["delay_s"] = event.delay_s
        if event.text:
            fields["text"] = event.text
        self.ctx.journal.event("ts_worker_log", **fields)

    def _run_clock(self, wall: float) -> float:
        assert self.ctx is not None
        return round(self.ctx.journal.now() - (time.time() - wall), 4)

    # --- verdicts

    def _check_verdicts(self) -> None:
        assert self.ctx is not None
        storm = self.tracker.storm()
        if storm is not None and not self.storm_reported:
            self.storm_reported = True
            self.ctx.journal.event(
                "ts_retry_storm", error=storm.error, failures=storm.failures, workers=list(storm.workers),
                first_t=self._run_clock(storm.first_t), detected_t=self._run_clock(storm.detected_t),
            )
        for attempt in self.tracker.given_up(time.time()):
            key = (attempt.worker, attempt.stopped_t or 0.0)
            if key in self.given_up or not self._api_shows_down(attempt.worker, attempt.stopped_t or 0.0):
                continue
            self.given_up.add(key)
            self.ctx.journal.event("ts_worker_given_up", worker=attempt.worker, error=attempt.error,
                                   stopped_t=self._run_clock(attempt.stopped_t or 0.0))

    def _api_shows_down(self, worker: str, stopped_wall: float) -> bool:
        """The API answered after the grace and does not list that worker as READY."""
        info = self.last_info
        if info is None or self.api_down or self.last_info_t < stopped_wall + GIVE_UP_GRACE_S:
            return False
        return not any(w.id == worker and w.status == "READY" for w in info.workers)

    def stop(self) -> dict[str, Any]:
        if self.greenlet is not None:
            self.greenlet.kill(block=True, timeout=5.0)
            self.greenlet = None
        if self.follower is not None:
            self.follower.close()
        return {
            "polls": self.polls,
            "api_errors": self.api_errors,
            "retries": len(self.tracker.steps()),
            "storm": self.storm_reported,
            "given_up": len(self.given_up),
        }
