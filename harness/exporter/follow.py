"""Reads a run's journal as it is written: every complete record once, in the order written.

The journal tells its listeners about events only, and its `second` records are the figures
the exporter is for; reading the file itself needs no hook in the core and gives exactly what
`harness report` reads later. The journal flushes every record as one line; a line without its
newline yet is left for the next read. A soak's rotating journal switches files while the run
goes (`path`, and for a while the old one as `tail_path`): each file is read to its end.
"""

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
Paths = Callable[[], list[Path]]  # the files to read now, current last
# A rotating journal writes some events to both of its files: the same record (same name, run
# clock and wall time) is told once. This many recent events are remembered for that.
RECENT_EVENTS = 4096


class JournalFollower:
    def __init__(self, paths: Paths):
        self.paths = paths
        self._offsets: dict[Path, int] = {}
        self._done: set[Path] = set()  # read to the end after it was no longer written
        self._recent: OrderedDict[tuple[Any, ...], None] = OrderedDict()

    def read(self) -> list[dict[str, Any]]:
        """The complete records written since the last read."""
        now = self.paths()
        for path in list(self._offsets):  # a file left behind: its last lines, then never again
            if path not in now and path not in self._done:
                now.insert(0, path)
                self._done.add(path)
        records: list[dict[str, Any]] = []
        for path in now:
            records.extend(r for r in self._read_file(path) if self._first_time(r))
        return records

    def _first_time(self, record: dict[str, Any]) -> bool:
        if record.get("type") != "event":
            return True  # seconds and series go to exactly one file
        key = (record.get("event"), record.get("t"), record.get("wall"))
        if key in self._recent:
            return False
        self._recent[key] = None
        if len(self._recent) > RECENT_EVENTS:
            self._recent.popitem(last=False)
        return True

    def _read_file(self, path: Path) -> list[dict[str, Any]]:
        offset = self._offsets.get(path, 0)
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # only whole lines: the writer may be mid-line
        self._offsets[path] = offset + end
        records = []
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a torn line of a killed writer, as read_journal skips it
                log.warning("skipping an unreadable journal line in %s", path)
        return records


def journal_paths(journal: Any) -> Paths:
    """The files of a `harness.journal.Journal` (a RotatingJournal's tail too, while it has one)."""

    def paths() -> list[Path]:
        found = [p for p in (getattr(journal, "tail_path", None), journal.path) if p is not None]
        return [Path(p) for p in dict.fromkeys(found)]

    return paths
