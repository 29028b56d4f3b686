"""The memory stressor: a small process that takes and holds anonymous memory beside the stack.

    python -m harness.memory.stressor --take 512MiB [--hold 10s] [--stdin] [--pidfile F]

Memory is taken in 32 MiB anonymous mappings, every page written, so it is resident (there is
no swap on these hosts, and written pages cannot be shared or left unbacked). With `--stdin`
each line read is a new target size (bytes); end of input means release everything and exit.
Without it the process holds `--take` for `--hold` seconds (forever if not given), then exits 0.

The floor: the stressor never takes memory the host does not have to spare. Before each chunk,
and every 200 ms while holding, it reads MemAvailable and gives chunks back until at least
`--floor` bytes stay available (default: the harness's floor). Each change is reported on
stdout as one JSON line: `{"held": N, "target": N, "seconds": S, "capped": bool}`.
`--oom-score-adj 1000` (the default) makes it the OOM killer's first choice on the host, so a
mistake costs the stressor, not a neighbour.
"""

import argparse
import json
import mmap
import os
import select
import sys
import time

from harness.durations import parse_duration
from harness.memory.host import host_memory
from harness.sizes import parse_size

CHUNK = 32 << 20
PAGE = mmap.PAGESIZE
WATCH_S = 0.2
SETTLE_S = 2.0


class Holder:
    def __init__(self, floor: int):
        self.floor = floor
        self.chunks: list[mmap.mmap] = []
        self.target = 0
        self._base = (host_memory().available, 0, time.monotonic())  # (available, held, when)

    def available(self) -> int:
        """MemAvailable, allowing for the kernel's lag: its counters are folded in about once a
        second, so what this process took since the last settled reading is subtracted too."""
        reading = host_memory().available
        base_available, base_held, when = self._base
        if time.monotonic() - when > SETTLE_S:
            self._base = (reading, self.held, time.monotonic())
            return reading
        return min(reading, base_available - (self.held - base_held))

    @property
    def held(self) -> int:
        return sum(len(c) for c in self.chunks)

    def reach(self, target: int) -> bool:
        """Grow or shrink toward `target`; returns True if the floor stopped it short."""
        self.target = target
        while self.held > target:
            self.chunks.pop().close()
        while self.held < target:
            size = min(CHUNK, target - self.held)
            if self.available() - size < self.floor:
                return True
            chunk = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            chunk.write(b"\x5a" * size)  # every page written: resident, not the shared zero page
            self.chunks.append(chunk)
        return False

    def keep_floor(self) -> bool:
        """Give chunks back while the host has less than the floor available."""
        yielded = False
        while self.chunks and self.available() < self.floor:
            self.chunks.pop().close()
            yielded = True
        return yielded


def _report(holder: Holder, started: float, capped: bool) -> None:
    line = {"held": holder.held, "target": holder.target, "seconds": round(time.monotonic() - started, 3),
            "capped": capped}
    print(json.dumps(line), flush=True)


def _name_myself(name: bytes = b"harness-stress") -> None:
    """Set the process name the kernel prints (`Killed process N (harness-stress)`), so an OOM
    kill of the stressor is recognisable in any kernel log, by anyone."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _set_oom_score_adj(value: int) -> None:
    with open("/proc/self/oom_score_adj", "w", encoding="ascii") as handle:
        handle.write(str(value))


def _write_pidfile(path: str) -> None:
    import psutil

    me = psutil.Process()
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="ascii") as handle:
        json.dump({"pid": me.pid, "create_time": me.create_time(), "name": me.name()}, handle)
    os.replace(tmp, path)


def _serve_stdin(holder: Holder) -> None:
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], WATCH_S)
        if ready:
            line = sys.stdin.readline()
            if not line:
                return
            started = time.monotonic()
            capped = holder.reach(parse_size(line.strip()))
            _report(holder, started, capped)
        elif holder.keep_floor():
            _report(holder, time.monotonic(), True)


def _hold_for(holder: Holder, seconds: float | None) -> None:
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        time.sleep(WATCH_S)
        if holder.keep_floor():
            _report(holder, time.monotonic(), True)


def _seconds(text: str) -> float:
    try:
        return parse_duration(float(text))
    except ValueError:
        return parse_duration(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.memory.stressor", description=__doc__.splitlines()[0])
    parser.add_argument("--take", type=parse_size, default=0)
    parser.add_argument("--hold", type=_seconds, default=None)
    parser.add_argument("--stdin", action="store_true", help="read target sizes from standard input")
    parser.add_argument("--floor", type=parse_size, default=None)
    parser.add_argument("--pidfile", default=None)
    parser.add_argument("--oom-score-adj", type=int, default=1000)
    args = parser.parse_args(argv)
    _name_myself()
    _set_oom_score_adj(args.oom_score_adj)
    if args.pidfile:
        _write_pidfile(args.pidfile)
    holder = Holder(host_memory().floor if args.floor is None else args.floor)
    started = time.monotonic()
    _report(holder, started, holder.reach(args.take))
    if args.stdin:
        _serve_stdin(holder)
    else:
        _hold_for(holder, args.hold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
