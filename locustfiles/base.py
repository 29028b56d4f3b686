"""The base of every harness user: timing, pacing and recording live here, sending in subclasses."""

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import gevent
from locust import User, constant, task
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING

from harness.load.failures import MESSAGE_CHARS, exception_detail, failure_message
from harness.load.pacer import Pacer
from harness.load.slot_timer import SlotTimer
from harness.load.target import Target

# The runner's states while and after it stops its users (a local runner says `cleanup`).
STOPPING_STATES = frozenset({STATE_CLEANUP, STATE_STOPPING, STATE_STOPPED})


# Not frozen: a frozen dataclass sets each field through object.__setattr__, 1.5 us a request
# against 0.3 us (the send path makes one per request); nothing changes an Outcome once made.
@dataclass(slots=True)
class Outcome:
    error_kind: str | None = None  # None: success; else e.g. `http_503`, `ConnectionRefusedError`
    length: int = 0
    detail: str = ""
    # Extra per-request measurements (e.g. LLM `ttft_ms`), recorded as per-second histograms.
    measures: dict[str, float] | None = None


class HarnessUser(User):
    """Sends one request per task run; subclasses implement `send`.

    Closed model: loop without pause (or `think_time`). Open model: take the next slot from the
    shared pacer, sleep until it, and measure latency from the slot, not from the actual send.
    """

    abstract = True
    wait_time = constant(0)
    protocol: ClassVar[str] = "request"
    target: ClassVar[Target]
    pacer: ClassVar[Pacer | None] = None
    late_after: ClassVar[float] = 0.010
    _slot_timer: SlotTimer | None = None  # the user's own, made at its first slot

    def send(self) -> Outcome:
        raise NotImplementedError

    @task
    def one_request(self) -> None:
        intended = self._wait_for_slot() if self.pacer is not None else None
        if self.pacer is not None and intended is None:
            gevent.sleep(0.05)  # schedule over: idle until the runner stops this user
            return
        started = time.monotonic()
        try:
            outcome = self.send()
        except Exception as exc:  # a user class bug still counts, and must not kill the user
            outcome = Outcome(type(exc).__name__, 0, exception_detail(exc, f"in {type(self).__name__}.send"))
        finished = time.monotonic()
        if outcome.error_kind is not None and _load_stopping(self.environment):
            # The load's own stop cut this request (Locust kills users mid-request, and
            # geventhttpclient can turn that into HTTPConnectionClosed): not the server's failure.
            return
        origin = intended if intended is not None else started
        late = intended is not None and started - intended > self.late_after
        self.environment.events.request.fire(
            request_type=self.protocol,
            name=self.target.model,
            response_time=(finished - origin) * 1000.0,
            response_length=outcome.length,
            exception=_as_exception(outcome),
            context={"error_kind": outcome.error_kind, "late": late, "measures": outcome.measures},
        )

    def _wait_for_slot(self) -> float | None:
        assert self.pacer is not None
        slot = self.pacer.next_slot()
        if slot is not None and slot > time.monotonic():
            # gevent.sleep would end up to a millisecond late (harness.load.slot_timer)
            if self._slot_timer is None:
                self._slot_timer = SlotTimer()
            self._slot_timer.sleep_until(slot)
        return slot


def _load_stopping(environment: Any) -> bool:
    runner = getattr(environment, "runner", None)
    return runner is not None and runner.state in STOPPING_STATES


class RequestFailed(Exception):
    """What Locust's own statistics see for a failed request."""


def _as_exception(outcome: Outcome) -> Exception | None:
    if outcome.error_kind is None:
        return None
    return RequestFailed(failure_message(outcome.error_kind, outcome.detail)[:MESSAGE_CHARS])
