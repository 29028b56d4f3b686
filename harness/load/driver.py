"""Drives a Locust Environment from a scenario's load section.

Locust is used as a library: one Environment, a local runner, and the `request` event hook.
"""

import logging
import time
from typing import Any

from locust import LoadTestShape
from locust.env import Environment
from locust.runners import Runner

from harness.load.pacer import Pacer, RateSchedule, RateStep
from harness.load.recorder import Recorder
from harness.load.target import Target
from harness.scenario import LoadSpec, Stage
from harness.users import load_user_class

log = logging.getLogger(__name__)


class StagesShape(LoadTestShape):
    """Closed-model stages: hold or ramp to a number of users, one stage after another."""

    def __init__(self, stages: list[Stage], spawn_rate: float):
        super().__init__()
        self.stages = stages
        self.spawn_rate = spawn_rate

    def tick(self) -> tuple[int, float] | None:
        return users_at(self.stages, self.get_run_time(), self.spawn_rate)


def users_at(stages: list[Stage], t: float, spawn_rate: float) -> tuple[int, float] | None:
    begin = 0.0
    previous = 0
    for stage in stages:
        assert stage.users is not None
        if t < begin + stage.duration:
            if not stage.ramp:
                return stage.users, spawn_rate
            fraction = (t - begin) / stage.duration
            return round(previous + (stage.users - previous) * fraction), spawn_rate
        begin += stage.duration
        previous = stage.users
    return None


def rate_schedule(spec: LoadSpec) -> RateSchedule:
    if spec.stages:
        return RateSchedule([RateStep(s.duration, s.rate or 0.0, s.ramp) for s in spec.stages])
    assert spec.rate is not None and spec.duration is not None
    return RateSchedule([RateStep(spec.duration, spec.rate)])


class LoadDriver:
    """Starts the users, lets them run for the scenario's duration, stops them."""

    def __init__(self, spec: LoadSpec, target: Target, recorder: Recorder):
        self.spec = spec
        self.target = target
        self.recorder = recorder
        self.pacer: Pacer | None = None
        self.env: Environment | None = None
        self.runner: Runner | None = None
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        if self.spec.open_model:
            self.pacer = Pacer(rate_schedule(self.spec), origin=self.started_at)
        user_class = self._user_class()
        shape = None
        if self.spec.stages and not self.spec.open_model:
            shape = StagesShape(self.spec.stages, self._spawn_rate())
        self.env = Environment(user_classes=[user_class], shape_class=shape, host=self.target.http_url)
        self.env.events.request.add_listener(self._on_request)
        self.runner = self.env.create_local_runner()
        if shape is not None:
            self.runner.start_shape()
        else:
            self.runner.start(self.spec.users, spawn_rate=self._spawn_rate())

    def _spawn_rate(self) -> float:
        return self.spec.spawn_rate or float(max(self.spec.users, 1)) * 10

    def _user_class(self) -> type:
        base = load_user_class(self.spec.user)
        attrs: dict[str, Any] = {
            "abstract": False,
            "target": self.target,
            "pacer": self.pacer,
            "late_after": self.spec.late_after,
            "host": self.target.http_url,
            "load_spec": self.spec,  # user classes with settings of their own read them here
        }
        if self.spec.think_time:
            from locust import constant

            attrs["wait_time"] = constant(self.spec.think_time)
        return type(f"{base.__name__}ForRun", (base,), attrs)

    def _on_request(
        self, response_time: float, exception: Exception | None, context: dict[str, Any], **_: Any
    ) -> None:
        kind = context.get("error_kind") if context else None
        if exception is not None and kind is None:
            kind = type(exception).__name__
        late = bool(context and context.get("late"))
        message = str(exception) if exception is not None else ""
        measures = context.get("measures") if context else None
        self.recorder.record(response_time / 1000.0, kind, late, message, measures)

    @property
    def user_count(self) -> int:
        return self.runner.user_count if self.runner is not None else 0

    def stop(self) -> dict[str, Any]:
        """Stop every user; returns what the load section of the journal records at the end."""
        if self.runner is not None:
            self.runner.quit()
        summary: dict[str, Any] = {"seconds": round(time.monotonic() - self.started_at, 3)}
        if self.pacer is not None:
            summary.update(intended_sent=self.pacer.issued, unsent=self.pacer.unsent())
        return summary
