"""`harness` with probes on its event loop: which greenlet held the loop, GC pauses, each request's clocks.

    python bench/harness_probe.py OUT.json [--hdrh-walk] [--blocking-fsync] [--no-probes] -- run SCENARIO

Runs the harness's own CLI in this process (same code, same process layout as `harness run`)
after installing, all of them passive:

- a greenlet switch trace (`greenlet.settrace`): each stretch of time one greenlet ran without
  yielding, kept when it ran longer than `HOLD_MS`, with the CPU time the loop's thread used in
  it and its time waiting for a CPU (/proc/thread-self/schedstat), the greenlet's function and
  the stack it yielded from. While one greenlet runs, no other can read its socket: a long hold
  is time the users' chunks wait in the kernel, which shows as TTFT/ITL the server did not cause;
- `gc.callbacks`: every collection of generation 1 or 2, and any of generation 0 over 1 ms;
- a lag probe: a greenlet that sleeps `LAG_SLEEP_S` and keeps how late it woke (over `LAG_MS`);
- per request of the openai user: sent, first text, last text and complete (monotonic s);
- every `os.fsync` over `FSYNC_MS` (the journal syncs once a second).

`--hdrh-walk` puts back what the per-second records did before harness.load.percentiles: hdrh's
own percentiles, which walk the counts array in Python; `--blocking-fsync` the journal's fsync on
the event loop (before harness/journal.py `_fsync`): the "before" of bench/vllm_peer.md;
`--no-probes` installs none of the probes (OUT is then not written).

OUT gets them all as JSON; `bench/vllm_peer.py --probe` reads it and says which requests'
TTFT overlapped a hold or a collection. Used to find the harness's TTFT tail (issue 14).
"""

import gc
import json
import os
import sys
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

HOLD_MS = 5.0  # a greenlet holding the loop longer than this is kept
LAG_SLEEP_S = 0.002
LAG_MS = 5.0
GC0_MS = 1.0
FSYNC_MS = 2.0


class Probes:
    def __init__(self) -> None:
        self.holds: list[dict[str, Any]] = []
        self.collections: list[dict[str, Any]] = []
        self.lags: list[tuple[float, float]] = []
        self.requests: list[tuple[float, float | None, float | None, float]] = []
        self.fsyncs: list[tuple[float, float]] = []  # (end, ms) of each fsync over FSYNC_MS
        self.switches = 0
        # The loop's thread's scheduler statistics: CPU time, and time runnable but waiting for a
        # CPU. What a hold spent neither running nor waiting for a CPU, it spent blocked (a syscall).
        self._schedstat = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        self._last_switch = time.monotonic()
        self._last_cpu, self._last_wait = self._sched()
        self._gc_started = 0.0

    # --- greenlet switches

    def _sched(self) -> tuple[int, int]:
        cpu_ns, wait_ns, _ = os.pread(self._schedstat, 100, 0).split()
        return int(cpu_ns), int(wait_ns)

    def on_switch(self, event: str, args: tuple[Any, Any]) -> None:
        now = time.monotonic()
        cpu, wait = self._sched()
        held_ms = (now - self._last_switch) * 1000.0
        cpu_ms, wait_ms = (cpu - self._last_cpu) / 1e6, (wait - self._last_wait) / 1e6
        self._last_switch, self._last_cpu, self._last_wait = now, cpu, wait
        self.switches += 1
        if held_ms < HOLD_MS or event not in ("switch", "throw"):
            return
        origin = args[0]
        # cpu_ms tells a busy hold from a wait; runq_ms is the wait for a CPU (other work on the
        # machine); the rest is time blocked: the hub's idle epoll, or a blocking syscall (fsync).
        self.holds.append({"end": now, "ms": round(held_ms, 3), "cpu_ms": round(cpu_ms, 3),
                           "runq_ms": round(wait_ms, 3), "greenlet": _name(origin),
                           "yielded_at": _stack(getattr(origin, "gr_frame", None))})

    # --- garbage collection

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.monotonic()
            return
        ms = (time.monotonic() - self._gc_started) * 1000.0
        generation = info.get("generation", 0)
        if generation > 0 or ms > GC0_MS:
            self.collections.append({"end": time.monotonic(), "ms": round(ms, 3), "gen": generation,
                                     "collected": info.get("collected", 0)})

    # --- loop lag

    def lag_loop(self) -> None:
        import gevent

        while True:
            before = time.monotonic()
            gevent.sleep(LAG_SLEEP_S)
            late_ms = (time.monotonic() - before - LAG_SLEEP_S) * 1000.0
            if late_ms > LAG_MS:
                self.lags.append((before, round(late_ms, 3)))

    def dump(self, path: Path) -> None:
        data = {"holds": self.holds, "collections": self.collections, "lags": self.lags,
                "fsyncs": self.fsyncs, "requests": self.requests, "switches": self.switches,
                "gc_objects_at_end": len(gc.get_objects()), "gc_counts": gc.get_count(),
                "gc_threshold": gc.get_threshold(), "hold_ms": HOLD_MS}
        path.write_text(json.dumps(data), encoding="utf-8")


def _name(glet: Any) -> str:
    """What a greenlet runs: a Locust user, the supervisor's probe, the hub, the main greenlet."""
    if glet is None:
        return "?"
    if getattr(glet, "parent", True) is None:
        return "main"
    if type(glet).__name__ == "Hub":
        return "hub"
    run = getattr(glet, "_run", None) or getattr(glet, "run", None)
    owner = getattr(run, "__self__", None)
    func = getattr(run, "__func__", run)
    name = getattr(func, "__qualname__", repr(func))
    return f"{type(owner).__name__}.{name.rsplit('.', 1)[-1]}" if owner is not None else str(name)


def _stack(frame: FrameType | None, depth: int = 8) -> list[str]:
    if frame is None:
        return []
    return [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}"
            for f in traceback.extract_stack(frame)[-depth:]]


def _time_fsync(probes: Probes) -> None:
    """The journal's once-a-second fsync (harness/journal.py), timed: it can block the loop."""
    fsync = os.fsync

    def timed(fd: Any) -> None:
        started = time.monotonic()
        try:
            fsync(fd)
        finally:
            ms = (time.monotonic() - started) * 1000.0
            if ms > FSYNC_MS:
                probes.fsyncs.append((time.monotonic(), round(ms, 3)))

    os.fsync = timed


def _record_requests(probes: Probes) -> None:
    """Keep each openai request's clocks: StreamAccount.measures runs once per successful stream."""
    from harness.llm.openai_stream import StreamAccount

    measures = StreamAccount.measures

    def recording(self: StreamAccount, finished_at: float) -> dict[str, float]:
        probes.requests.append((self.sent_at, self.first_text_at, self.last_text_at, finished_at))
        return measures(self, finished_at)

    StreamAccount.measures = recording  # type: ignore[method-assign]


def _restore_hdrh_walk() -> None:
    """The harness as it was before harness.load.percentiles: hdrh's own percentile walk in the
    per-second records, for a before/after on the same machine."""
    from hdrh.histogram import HdrHistogram

    from harness.load import measures, recorder

    def walked(hist: HdrHistogram, percentiles: Iterable[float]) -> dict[float, int]:
        return {p: hist.get_value_at_percentile(p) for p in percentiles}

    recorder.values_at_percentiles = walked
    measures.values_at_percentiles = walked


def _restore_blocking_fsync() -> None:
    """The journal as it was before it synced in gevent's thread pool: fsync on the loop."""
    from harness import journal

    journal._fsync = lambda fd: os.fsync(fd)


def main() -> int:
    args = sys.argv[1:]
    flags = set(args[1:args.index("--")]) if "--" in args else {"?"}
    if not args or flags - {"--hdrh-walk", "--blocking-fsync", "--no-probes"}:
        raise SystemExit(__doc__)
    out, args = Path(args[0]), args[args.index("--") + 1:]
    import locust  # noqa: F401, I001  - first, as harness.cli does: gevent patches the standard library

    import gevent
    import greenlet

    from harness.cli import main as harness_main

    if "--hdrh-walk" in flags:
        _restore_hdrh_walk()
    if "--blocking-fsync" in flags:
        _restore_blocking_fsync()
    if "--no-probes" in flags:
        return harness_main(args)
    probes = Probes()
    _record_requests(probes)
    _time_fsync(probes)
    gc.callbacks.append(probes.on_gc)
    greenlet.settrace(probes.on_switch)
    gevent.spawn(probes.lag_loop)
    try:
        return harness_main(args)
    finally:
        greenlet.settrace(None)
        gc.callbacks.remove(probes.on_gc)
        probes.dump(out)


if __name__ == "__main__":
    sys.exit(main())
