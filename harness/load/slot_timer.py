"""Waking a user at its open-model slot to the tens of microseconds, not the millisecond.

`gevent.sleep` ends late by up to a millisecond even on an idle loop: libev blocks in
`epoll_wait`, whose timeout is whole milliseconds, rounded up (measured here: 0.55 ms late at the
median, 1.3 ms at p99). At 1,000 arrivals/s that is as long as the gap between two slots, and it
would be the open model's send lateness itself. A Linux timerfd armed for the slot (absolute, on
CLOCK_MONOTONIC, the clock `time.monotonic` reads) makes the kernel wake the loop at the
slot: 0.04 ms late at the median, 0.12 ms at p99 on an idle loop. Python 3.11 has no
`os.timerfd_*` (3.13 does), so the two calls go through ctypes (about 2 us to arm one).

Where there is no timerfd (not Linux), `sleep_until` falls back to `gevent.sleep`.
"""

import ctypes
import ctypes.util
import os
import time
import weakref
from collections.abc import Callable

import gevent
from gevent.hub import get_hub

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = 0o4000
TFD_CLOEXEC = 0o2000000
TFD_TIMER_ABSTIME = 1
_NS_PER_S = 1_000_000_000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _ITimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timerfd_calls() -> tuple[Callable[..., int], Callable[..., int]] | None:
    """libc's timerfd_create and timerfd_settime, typed; None where libc has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes, create.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_ITimerspec), ctypes.c_void_p]
    settime.restype = ctypes.c_int
    return create, settime


_CALLS = _timerfd_calls()


class SlotTimer:
    """One user's timer: `sleep_until(t)` returns at monotonic time t (or just after)."""

    def __init__(self) -> None:
        self._fd = -1
        if _CALLS is not None:
            fd = _CALLS[0](CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                self._spec = _ITimerspec()  # reused: arming allocates nothing
                self._spec_ref = ctypes.pointer(self._spec)
                self._watcher = get_hub().loop.io(fd, 1)  # 1: readable
                # A user is dropped without a hook of ours running: close the fd with the timer.
                self._finalizer = weakref.finalize(self, os.close, fd)

    @property
    def precise(self) -> bool:
        return self._fd >= 0

    def sleep_until(self, deadline: float) -> None:
        if self._fd < 0 or not self._arm(deadline):
            gevent.sleep(max(0.0, deadline - time.monotonic()))
            return
        get_hub().wait(self._watcher)  # stops the watcher however the wait ends (a killed user)
        try:
            os.read(self._fd, 8)  # the expiry count: reading it disarms readability
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            self._watcher.close()
            self._finalizer()
            self._fd = -1

    def _arm(self, deadline: float) -> bool:
        assert _CALLS is not None
        seconds = int(deadline)
        value = self._spec.it_value
        value.tv_sec = seconds
        # (deadline - seconds) * 1e9 can round up to a whole second, which the kernel refuses
        value.tv_nsec = min(int((deadline - seconds) * _NS_PER_S), _NS_PER_S - 1)
        return _CALLS[1](self._fd, TFD_TIMER_ABSTIME, self._spec_ref, None) == 0
