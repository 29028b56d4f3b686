"""A passive probe of the open model's send times, for bench/send_lateness.py.

Installed through a `sitecustomize` that bench/send_lateness.py writes and puts first on
PYTHONPATH, so it reaches `harness run` and every `harness worker` it starts. Once
`harness.load.requests` is imported (the load is about to be built), it wraps:

- `HarnessUser._wait_for_slot`: right after the user wakes for its slot, the time now minus the
  slot (the intended send) is this request's send lateness; `one_request` reads its own `started`
  a few statements later, so the two agree to well under a microsecond;
- `RequestListener.on_request`: the request the harness records takes that lateness, and the
  `late` flag the harness computed is checked against `lateness > late_after` request by request.

At exit the process writes LATENESS_DIR/<pid>.json: an HDR histogram of the lateness (us), the
requests, how many the probe and the harness each called late, and disagreements (with the
closest distance to the threshold among them). Nothing the harness does changes.
"""

import atexit
import json
import os
import time
from pathlib import Path
from typing import Any

ENV = "HARNESS_BENCH_LATENESS_DIR"
OVER_GOAL_S = 0.001  # the goal for p99: where the requests later than it fall in time


class Probe:
    def __init__(self, out: Path):
        from hdrh.histogram import HdrHistogram

        self.out = out
        self.hist = HdrHistogram(1, 3_600_000_000, 3)
        self.pending: dict[Any, tuple[float, float, float]] = {}  # slot, lateness, late_after
        self.requests = 0
        self.late_probe = 0
        self.late_harness = 0
        self.disagree = 0
        self.disagree_closest_us: float | None = None
        self.first_slot: float | None = None
        # requests later than the 1 ms goal, by second of the load (from this process's first slot)
        self.over_goal_by_second: dict[int, int] = {}

    def record(self, slot: float, lateness: float, late_after: float, late: bool) -> None:
        self.requests += 1
        if self.first_slot is None:
            self.first_slot = slot
        if lateness > OVER_GOAL_S:
            second = int(slot - self.first_slot)
            self.over_goal_by_second[second] = self.over_goal_by_second.get(second, 0) + 1
        self.hist.record_value(max(1, int(lateness * 1e6)))
        probe_late = lateness > late_after
        self.late_probe += probe_late
        self.late_harness += late
        if probe_late != late:
            self.disagree += 1
            distance = abs(lateness - late_after) * 1e6
            if self.disagree_closest_us is None or distance > self.disagree_closest_us:
                self.disagree_closest_us = distance  # the farthest from the threshold, the worst

    def write(self) -> None:
        if not self.requests:
            return
        data = {"pid": os.getpid(), "requests": self.requests, "late_probe": self.late_probe,
                "late_harness": self.late_harness, "disagree": self.disagree,
                "disagree_worst_us": self.disagree_closest_us,
                "over_goal_by_second": self.over_goal_by_second,
                "hdr": self.hist.encode().decode("ascii")}
        (self.out / f"{os.getpid()}.json").write_text(json.dumps(data))


def patch(probe: Probe) -> None:
    import gevent

    from harness.load.requests import RequestListener
    from locustfiles.base import HarnessUser

    wait_for_slot = HarnessUser._wait_for_slot
    on_request = RequestListener.on_request

    def probed_wait(self: HarnessUser) -> float | None:
        slot = wait_for_slot(self)
        if slot is not None:
            probe.pending[gevent.getcurrent()] = (slot, time.monotonic() - slot, self.late_after)
        return slot

    def probed_on_request(self: RequestListener, response_time: float, exception: Exception | None,
                          context: dict[str, Any], **kwargs: Any) -> None:
        pending = probe.pending.pop(gevent.getcurrent(), None)
        if pending is not None:
            slot, lateness, late_after = pending
            probe.record(slot, lateness, late_after, bool(context and context.get("late")))
        on_request(self, response_time, exception, context, **kwargs)

    HarnessUser._wait_for_slot = probed_wait  # type: ignore[method-assign]
    RequestListener.on_request = probed_on_request  # type: ignore[method-assign]


class _Finder:
    """Patches once `harness.load.requests` has been imported (after Locust's monkey-patching)."""

    def __init__(self, probe: Probe):
        self.probe = probe
        self.done = False

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "harness.load.requests" or self.done:
            return None
        import importlib.util
        import sys

        self.done = True
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            sys.modules[name] = module
            patch(self.probe)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def install() -> None:
    out = os.environ.get(ENV)
    if not out:
        return
    import sys

    probe = Probe(Path(out))
    atexit.register(probe.write)
    sys.meta_path.insert(0, _Finder(probe))
