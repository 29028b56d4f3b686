"""The open model's slot timer: never early, a kernel timer where Linux has one, and a killed
user's wait leaves nothing armed behind."""

import os
import sys
import time
from typing import Any

import gevent
import pytest
from locust.env import Environment

from harness.load import slot_timer
from harness.load.pacer import Pacer, RateSchedule, RateStep
from harness.load.slot_timer import SlotTimer
from harness.load.target import Target
from locustfiles.base import HarnessUser, Outcome

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")


@linux_only
def test_on_linux_the_timer_is_the_kernels() -> None:
    timer = SlotTimer()
    assert timer.precise
    fd = timer._fd
    assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[timerfd]"
    timer.close()
    assert not timer.precise and not timer._finalizer.alive  # its fd closed, once


def test_it_never_returns_before_the_slot() -> None:
    timer = SlotTimer()
    for delay in (0.0002, 0.001, 0.003, 0.0):
        deadline = time.monotonic() + delay
        timer.sleep_until(deadline)
        assert time.monotonic() >= deadline
    timer.sleep_until(time.monotonic() - 1)  # a slot already past returns at once
    timer.close()


def test_other_greenlets_run_while_a_user_waits_for_its_slot() -> None:
    timer = SlotTimer()
    ran: list[str] = []
    other = gevent.spawn(ran.append, "other")
    timer.sleep_until(time.monotonic() + 0.01)
    assert ran == ["other"] and other.dead
    timer.close()


@linux_only
def test_a_user_killed_while_it_waits_leaves_the_timer_usable() -> None:
    timer = SlotTimer()
    waiting = gevent.spawn(timer.sleep_until, time.monotonic() + 30)
    gevent.sleep(0.01)
    waiting.kill()  # Locust stops a user mid-wait
    assert waiting.dead
    started = time.monotonic()
    timer.sleep_until(started + 0.002)  # re-armed for the next wait, not stuck on the old one
    assert 0.002 <= time.monotonic() - started < 5
    timer.close()


def test_without_a_timerfd_it_sleeps_on_gevent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slot_timer, "_CALLS", None)
    timer = SlotTimer()
    assert not timer.precise
    deadline = time.monotonic() + 0.003
    timer.sleep_until(deadline)
    assert time.monotonic() >= deadline


def test_an_open_model_user_waits_for_its_slot_on_its_own_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    class Recording(SlotTimer):
        def sleep_until(self, deadline: float) -> None:
            waits.append(deadline)
            super().sleep_until(deadline)

    monkeypatch.setattr("locustfiles.base.SlotTimer", Recording)

    class Paced(HarnessUser):
        abstract = True
        target = Target("http://127.0.0.1:1", None, "m")

        def send(self) -> Outcome:
            return Outcome(None, 1)

    origin = time.monotonic() + 0.01
    Paced.pacer = Pacer(RateSchedule([RateStep(1.0, 200.0)]), origin)
    fired: list[dict[str, Any]] = []
    env = Environment()
    env.events.request.add_listener(lambda **kwargs: fired.append(kwargs))
    user = Paced(env)
    for _ in range(3):
        user.one_request()
    assert waits == pytest.approx([origin, origin + 0.005, origin + 0.010])
    assert len(fired) == 3 and not any(r["context"]["late"] for r in fired)
    assert isinstance(user._slot_timer, Recording)  # one timer, made once, kept by the user
