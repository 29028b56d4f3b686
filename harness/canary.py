"""The supervisor's canary: one real inference at a low rate, outside the load's statistics.

Health endpoints lie (Triton answers ready after a Python-backend stub died; a frontend's health
thread answers while the engine is frozen). The canary goes through the serving path the users
take, so "health says ready, inference fails" is journaled as `not_serving`, and a canary that
succeeds, but slowly, as `canary_slow`: alive and slow is not the same finding as not serving.
"""

import time
from typing import Any, Protocol

import gevent

from harness.journal import Journal
from harness.scenario import CanarySpec
from harness.stacks.base import Health, Stack


class CanaryListener(Protocol):
    planned_down: bool
    state: str  # the supervisor's: "up", "degraded", "hang", "exited", "not_serving"

    def canary_failing(self, result: Health) -> None: ...

    def canary_serving(self) -> None: ...


class CanaryLoop:
    def __init__(self, stack: Stack, journal: Journal, spec: CanarySpec, listener: CanaryListener):
        self.stack = stack
        self.journal = journal
        self.spec = spec
        self.listener = listener
        self.sent = self.ok = self.failed = self.slow = 0
        self.available = True
        self._failing_in_a_row = 0
        self._slow_now = False

    def run(self) -> None:
        while True:
            started = time.monotonic()
            if not self.listener.planned_down:
                # A canary sent into a hang comes back slow when it ends: that is the hang's, not slowness.
                sent_while_up = self.listener.state in ("up", "degraded")
                result = self.stack.canary(self.spec.timeout)
                if result is None:
                    self.available = False
                    self.journal.event("canary_unavailable", reason="this stack kind has no canary")
                    return
                self.on_result(result, sent_while_up)
            gevent.sleep(max(0.0, self.spec.every - (time.monotonic() - started)))

    def on_result(self, result: Health, sent_while_up: bool = True) -> None:
        self.sent += 1
        if result.ok:
            self._on_success(result, sent_while_up)
            return
        self.failed += 1
        self._failing_in_a_row += 1
        if self._failing_in_a_row == 1:
            self.journal.event("canary_failed", status=result.status, detail=result.detail,
                               latency_s=round(result.latency_s, 3))
        # From the `failures`-th on: a streak that began while the stack was down (the supervisor
        # ignores it then) still says "not serving" once health answers ready.
        if self._failing_in_a_row >= self.spec.failures:
            self.listener.canary_failing(result)

    def _on_success(self, result: Health, sent_while_up: bool) -> None:
        self.ok += 1
        if self._failing_in_a_row:
            self.journal.event("canary_ok", after_failures=self._failing_in_a_row,
                               latency_s=round(result.latency_s, 3))
            self._failing_in_a_row = 0
        slow = result.latency_s > self.spec.slow and sent_while_up
        if slow:
            self.slow += 1
            if not self._slow_now:
                self.journal.event("canary_slow", latency_s=round(result.latency_s, 3), slow_s=self.spec.slow)
        self._slow_now = slow
        self.listener.canary_serving()

    def summary(self) -> dict[str, Any]:
        return {"available": self.available, "sent": self.sent, "ok": self.ok, "failed": self.failed,
                "slow": self.slow}
