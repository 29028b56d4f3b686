"""TorchServe's worker retries, read back from its log: the schedule, storms, give-ups.

What TorchServe 0.12 does (WorkerThread): when a worker process dies it logs `Retry worker: ID
in N seconds` and starts a new one N seconds later, N walking a Fibonacci table (1, 1, 2, 3, 5,
8, ... up to 1597) that restarts only when a worker loads its model successfully. It stops
retrying once `maxRetryTimeoutInSec` has passed since the first failure of the episode (0: no
retry at all), and then logs nothing more about that worker.

A retry can heal a worker that was killed; it cannot heal a handler that fails to import. The
harness calls it a retry storm when the same error ends `storm_after` worker starts in a row
(across the model's workers, with at least one worker failing twice): the model is then not
recoverable, and waiting out the back-off only hides the cause.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.torchserve.logparse import WorkerEvent

FIB_CAP = 1597  # the last entry of TorchServe's back-off table
GIVE_UP_GRACE_S = 1.0  # TorchServe logs its retry within milliseconds of the failure


def fibonacci_delay(n: int) -> int:
    """The back-off before the n-th retry of an episode (n >= 1): 1, 1, 2, 3, 5, 8, ..."""
    a, b = 1, 1
    for _ in range(n - 1):
        a, b = b, a + b
        if a >= FIB_CAP:
            return FIB_CAP
    return a


@dataclass
class Attempt:
    """One worker process TorchServe started, and how it ended."""

    worker: str
    launch_t: float | None
    ready_t: float | None = None
    stopped_t: float | None = None
    error: str | None = None  # the first exception line the worker printed: the root cause
    error_t: float | None = None
    retry_t: float | None = None
    retry_delay_s: int | None = None

    @property
    def failed(self) -> bool:
        return self.stopped_t is not None


@dataclass(frozen=True)
class RetryStep:
    """One `Retry worker` line, with what really followed it."""

    worker: str
    n: int  # retry number within the episode (since the worker last loaded its model)
    t: float
    announced_s: int
    expected_s: int  # the Fibonacci value for n
    waited_s: float | None  # from the retry line to the next launch of that worker
    since_previous_s: float | None  # from the previous retry of the episode


@dataclass(frozen=True)
class Storm:
    error: str
    failures: int
    workers: tuple[str, ...]
    first_t: float
    detected_t: float  # log time of the failure that made it a storm
    last_t: float  # log time of the latest failure with that error


@dataclass
class RetryTracker:
    storm_after: int = 3
    attempts: dict[str, list[Attempt]] = field(default_factory=dict)
    last_t: float = 0.0

    def feed_all(self, events: Iterable[WorkerEvent]) -> None:
        for event in events:
            self.feed(event)

    def feed(self, event: WorkerEvent) -> None:
        self.last_t = max(self.last_t, event.t)
        history = self.attempts.setdefault(event.worker, [])
        if event.kind == "launch" or not history:
            history.append(Attempt(event.worker, event.t if event.kind == "launch" else None))
            if event.kind == "launch":
                return
        current = history[-1]
        if event.kind == "ready":
            current.ready_t = event.t
        elif event.kind == "stopped":
            current.stopped_t = event.t
        elif event.kind == "retry":
            current.retry_t, current.retry_delay_s = event.t, event.delay_s
        elif event.kind == "error" and current.error is None:
            current.error, current.error_t = event.text, event.t

    # --- the schedule

    def steps(self) -> list[RetryStep]:
        out = []
        for worker, history in self.attempts.items():
            n, previous = 0, None
            for i, attempt in enumerate(history):
                if attempt.ready_t is not None:
                    n, previous = 0, None  # TorchServe restarts its back-off table
                if attempt.retry_t is None or attempt.retry_delay_s is None:
                    continue
                n += 1
                following = history[i + 1].launch_t if i + 1 < len(history) else None
                out.append(RetryStep(
                    worker, n, attempt.retry_t, attempt.retry_delay_s, fibonacci_delay(n),
                    None if following is None else round(following - attempt.retry_t, 3),
                    None if previous is None else round(attempt.retry_t - previous, 3),
                ))
                previous = attempt.retry_t
        return sorted(out, key=lambda s: s.t)

    # --- verdicts

    def streak(self, worker: str) -> list[Attempt]:
        """Failed starts since the worker last loaded its model."""
        out: list[Attempt] = []
        for attempt in self.attempts.get(worker, []):
            if attempt.ready_t is not None:
                out = []
            elif attempt.failed:
                out.append(attempt)
        return out

    def storm(self) -> Storm | None:
        by_error: dict[str, list[Attempt]] = {}
        for worker in self.attempts:
            for attempt in self.streak(worker):
                if attempt.error is not None:
                    by_error.setdefault(attempt.error, []).append(attempt)
        for error, failures in by_error.items():
            workers = [a.worker for a in failures]
            if len(failures) >= self.storm_after and len(set(workers)) < len(workers):
                ordered = sorted(failures, key=_ended)
                return Storm(error, len(failures), tuple(sorted(set(workers))), _ended(ordered[0]),
                             _ended(ordered[self._storm_index(ordered)]), _ended(ordered[-1]))
        return None

    def _storm_index(self, ordered: list[Attempt]) -> int:
        """The failure that first made both conditions true: enough of them, one a failed retry."""
        seen: set[str] = set()
        repeated = False
        for i, attempt in enumerate(ordered):
            repeated = repeated or attempt.worker in seen
            seen.add(attempt.worker)
            if repeated and i + 1 >= self.storm_after:
                return i
        return len(ordered) - 1

    def given_up(self, now: float) -> list[Attempt]:
        """Workers whose last start failed and got no retry: TorchServe will not try again."""
        out = []
        for history in self.attempts.values():
            last = history[-1]
            if last.failed and last.retry_t is None and last.stopped_t is not None:
                if now - last.stopped_t >= GIVE_UP_GRACE_S:
                    out.append(last)
        return out

    def not_recoverable(self, now: float, retry_timeout: int | None) -> str | None:
        """Why the model can never get all its workers back, in one line; None if it still can."""
        storm = self.storm()
        if storm is not None:
            timeout = "its default" if retry_timeout is None else str(retry_timeout)
            span = storm.last_t - storm.first_t
            return (
                f"retry storm: {storm.failures} worker starts in a row failed with the same error over "
                f"{span:.1f}s (TorchServe goes on retrying until maxRetryTimeoutInSec={timeout} after "
                f"the first failure): {storm.error}"
            )
        dead = self.given_up(now)
        if dead:
            ids = ", ".join(sorted(a.worker for a in dead))
            error = next((a.error for a in dead if a.error), "no error in the worker's output")
            return (
                f"TorchServe stopped retrying worker(s) {ids} "
                f"(maxRetryTimeoutInSec={_timeout_text(retry_timeout)}): {error}"
            )
        return None


def _ended(attempt: Attempt) -> float:
    """When a failed start was fully known: its stop, or its error line if that came later."""
    return max(t for t in (attempt.stopped_t, attempt.error_t, attempt.launch_t) if t is not None)


def _timeout_text(value: int | None) -> str:
    return "default" if value is None else str(value)
