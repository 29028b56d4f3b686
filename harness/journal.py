"""The run journal: append-only JSON lines, flushed as the run goes.

Every record has `type` (`event`, `second` or `series`) and `t`, seconds on the run clock (0 = the harness
started this run). A run killed at any point leaves a journal that `harness report` can read.

Listeners (`add_listener`) hear each event as `event()` writes it, after the write: the live
terminal view (harness.progress) shows faults and crashes from them. They run in the writer's
greenlet, so they must be quick; one that raises is logged and dropped, never the journal's problem.
"""

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

JOURNAL_NAME = "journal.jsonl"
EventListener = Callable[[str, dict[str, Any]], None]  # (event name, the record as written)

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, path: Path, clock_origin: float | None = None):
        self.path = path
        self.origin = time.monotonic() if clock_origin is None else clock_origin
        self._file: TextIO | None = path.open("a", encoding="utf-8")
        self._listeners: list[EventListener] = []

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def now(self) -> float:
        """Seconds on the run clock."""
        return time.monotonic() - self.origin

    def event(self, name: str, /, **fields: Any) -> dict[str, Any]:
        record = {"type": "event", "event": name, "t": round(self.now(), 4), "wall": time.time()}
        record.update(fields)
        self._write(record)
        self._tell(name, record)
        return record

    def _tell(self, name: str, record: dict[str, Any]) -> None:
        # A copy of the list: a listener may remove itself; a copy of the record: none may change
        # what the caller gets back.
        for listener in list(self._listeners):
            try:
                listener(name, dict(record))
            except Exception:  # noqa: BLE001 - a display's bug must not lose or stop the journal
                log.exception("journal listener %r failed on %s; dropped", listener, name)
                self.remove_listener(listener)

    def series(self, name: str, values: dict[str, float], t: float | None = None) -> None:
        """One sample of a named numeric series (e.g. scraped server metrics)."""
        stamp = round(self.now() if t is None else t, 4)
        self._write({"type": "series", "name": name, "t": stamp, "values": values})

    def second(self, record: dict[str, Any]) -> None:
        self._write({"type": "second", **record}, sync=True)

    def _write(self, record: dict[str, Any], sync: bool = False) -> None:
        _put(self._file, record, sync)

    def close(self) -> None:
        self._listeners.clear()  # nothing is written after this: nothing to hear
        if self._file is not None:
            self._file.close()
            self._file = None


def _put(handle: TextIO | None, record: dict[str, Any], sync: bool = False) -> None:
    if handle is None:
        return
    handle.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
    handle.flush()
    if sync:  # once a second: a host crash loses at most a second
        _fsync(handle.fileno())


def _fsync(fd: int) -> None:
    """fsync, in gevent's thread pool when gevent is loaded (the load runs on its loop).

    An fsync waits for the disk, and on ext4 for other writers' data committed with it: under
    other processes' writes it took 30-640 ms (bench/vllm_peer.md), and on the loop that reads
    every user's socket that stalled every stream. In the pool only the calling greenlet waits,
    and it still returns once the data is on disk.
    """
    if "gevent" not in sys.modules:
        os.fsync(fd)
        return
    from gevent import get_hub

    # A duplicate for the pool: while this greenlet waits, another may close the file (a soak's
    # cycle clock rotating the journal), and the number could even name a new file by then.
    duplicate = os.dup(fd)
    try:
        get_hub().threadpool.apply(os.fsync, (duplicate,))
    finally:
        os.close(duplicate)


class RotatingJournal(Journal):
    """A journal whose file can be switched while the run goes (soak cycles), one file per part.

    `rotate(path, boundary)` opens a new file; the old one stays open as the *tail* for a while:
    - `second` and `series` records stamped before `boundary` still go to the tail (a second that
      straddles the boundary is completed after it), so every record lands in exactly one file;
    - while `tail_events` is set, events go to the tail as well as to the new file, so the end of
      something the old part started (a fault's restore, the stack's recovery) is in its file too.
    `close_tail()` ends it. `event_here` and `event_tail` write an event to one file only.
    """

    def __init__(self, path: Path, clock_origin: float | None = None):
        super().__init__(path, clock_origin)
        self._tail: TextIO | None = None
        self.tail_path: Path | None = None
        self.tail_before = 0.0
        self.tail_events = False
        self.last_second = -math.inf  # the latest `second` record written (they come in order)

    def rotate(self, path: Path, boundary: float) -> None:
        """Write to `path` from now on; the current file becomes the tail (a previous tail closes)."""
        self.close_tail()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tail, self.tail_path = self._file, self.path
        self.tail_before = boundary
        self.tail_events = False
        self._file = path.open("a", encoding="utf-8")
        self.path = path

    def close_tail(self) -> Path | None:
        """Close the tail file; returns its path (None when there was none)."""
        path, self.tail_path = self.tail_path, None
        if self._tail is not None:
            self._tail.close()
            self._tail = None
        self.tail_events = False
        return path

    def event_here(self, name: str, /, **fields: Any) -> dict[str, Any]:
        """An event for the current file only (e.g. the header of a new part)."""
        record = self._event_record(name, fields)
        _put(self._file, record)
        return record

    def event_tail(self, name: str, /, **fields: Any) -> dict[str, Any]:
        """An event for the tail file only (e.g. the end of the part it holds)."""
        record = self._event_record(name, fields)
        _put(self._tail, record)
        return record

    def _event_record(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        record = {"type": "event", "event": name, "t": round(self.now(), 4), "wall": time.time()}
        record.update(fields)
        return record

    def _write(self, record: dict[str, Any], sync: bool = False) -> None:
        if record.get("type") == "second":
            self.last_second = max(self.last_second, float(record["t"]))
        if self._tail is not None:
            if record.get("type") == "event":
                if self.tail_events:
                    _put(self._tail, record)
            elif float(record.get("t", 0.0)) < self.tail_before:
                _put(self._tail, record, sync)
                return
        _put(self._file, record, sync)

    def close(self) -> None:
        self.close_tail()
        super().close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """All complete records; a torn last line (the writer was killed mid-write) is skipped."""
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
