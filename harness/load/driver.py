"""Drives a Locust Environment from a scenario's load section.

Locust is used as a library: one Environment, the `request` event hook, and either a local runner
or, with workers (harness.load.distributed), a master runner whose workers send their seconds.
"""

import time
from typing import Any

from locust import LoadTestShape
from locust.env import Environment
from locust.runners import Runner

from harness.limits import MAX_SPAWN_RATE
from harness.load.pacer import Pacer, RateSchedule, RateStep
from harness.load.recorder import Recorder
from harness.load.requests import RequestListener
from harness.load.target import Target
from harness.scenario import LoadSpec, Stage
from harness.users import load_user_class


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


def build_user_class(spec: LoadSpec, target: Target, pacer: Pacer | None) -> type:
    """The scenario's user class, bound to this run's target, pacer and settings."""
    base = load_user_class(spec.user)
    attrs: dict[str, Any] = {
        "abstract": False,
        "target": target,
        "pacer": pacer,
        "late_after": spec.late_after,
        "host": target.http_url,
        "load_spec": spec,  # user classes with settings of their own read them here
    }
    if spec.think_time:
        from locust import constant

        attrs["wait_time"] = constant(spec.think_time)
    return type(f"{base.__name__}ForRun", (base,), attrs)


class LoadDriver:
    """Starts the users, lets them run for the scenario's duration, stops them.

    With `workers` (a harness.load.distributed.Workers), users run in worker processes and this
    process is Locust's master: it sends the setup, spawns users there and merges their seconds.
    """

    def __init__(self, spec: LoadSpec, target: Target, recorder: Recorder, workers: Any = None):
        self.spec = spec
        self.target = target
        self.recorder = recorder
        self.workers = workers
        self.pacer: Pacer | None = None
        self.env: Environment | None = None
        self.runner: Runner | None = None
        self.started_at = 0.0

    def prepare(self) -> None:
        """Everything before the first request: with workers, start them and wait until they joined."""
        shape = None
        if self.spec.stages and not self.spec.open_model:
            shape = StagesShape(self.spec.stages, self._spawn_rate())
        if self.spec.open_model and self.workers is None:  # workers pace their own share
            self.pacer = Pacer(rate_schedule(self.spec), origin=time.monotonic())  # origin set at start
        # With workers, the master's copy of the class is never run: workers build theirs from the setup.
        user_class = build_user_class(self.spec, self.target, self.pacer)
        self.env = Environment(user_classes=[user_class], shape_class=shape, host=self.target.http_url)
        if self.workers is not None:
            self.runner = self.workers.attach(self.env, self.spec, self.target, self.recorder)
            return
        self.env.events.request.add_listener(RequestListener(self.recorder).on_request)
        self.runner = self.env.create_local_runner()

    def pace_by(self, schedule: RateSchedule) -> None:
        """Open model in this process: replace the arrival schedule (before or while the load runs)."""
        if self.pacer is not None:
            self.pacer.replace_schedule(schedule)

    def end_pacing_now(self) -> None:
        """Open model: the load stops now, so only the slots due by now count as `unsent`."""
        if self.pacer is not None:
            self.pacer.end_at(time.monotonic() - self.pacer.origin)

    def reset_locust_stats(self) -> None:
        """Forget Locust's own statistics: its per-second dicts grow by an entry a second, and the
        harness records what it needs itself (a soak resets them every cycle)."""
        if self.env is not None:
            self.env.stats.reset_all()

    def start(self) -> None:
        if self.runner is None:
            self.prepare()
        assert self.runner is not None and self.env is not None
        self.started_at = time.monotonic()
        if self.pacer is not None:
            self.pacer.origin = self.started_at
        if self.workers is not None:
            self.workers.send_setup(self.recorder.clock)
        if self.env.shape_class is not None:
            self.runner.start_shape()
        else:
            self.runner.start(self.spec.users, spawn_rate=self._spawn_rate())

    def _spawn_rate(self) -> float:
        if self.spec.spawn_rate:
            return self.spec.spawn_rate
        if self.spec.open_model:
            # Open model: the users are only how many requests may be in flight; the pacer sets
            # the load. Started at once, so the first slots do not wait for users still being
            # spawned (at users x 10 per second they did: 3 to 6% of the first second's sends
            # were over 1 ms late at 1,000/s, bench/send_lateness.py).
            return MAX_SPAWN_RATE
        return float(max(self.spec.users, 1)) * 10

    def complete_before(self) -> float:
        """Run-clock time before which every second is complete (workers report a little late)."""
        now = self.recorder.clock()
        return self.workers.complete_before(now) if self.workers is not None else now

    @property
    def user_count(self) -> int:
        return self.runner.user_count if self.runner is not None else 0

    def stop(self) -> dict[str, Any]:
        """Stop every user; returns what the load section of the journal records at the end."""
        summary: dict[str, Any] = {"seconds": round(time.monotonic() - self.started_at, 3)}
        if self.workers is not None:
            summary.update(self.workers.finish())
        elif self.runner is not None:
            self.runner.quit()
        if self.pacer is not None:
            summary.update(intended_sent=self.pacer.issued, unsent=self.pacer.unsent())
        return summary
