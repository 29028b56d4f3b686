"""The run journal: append-only JSON lines, flushed as the run goes.

Every record has `type` (`event`, `second` or `series`) and `t`, seconds on the run clock (0 = the harness
started this run). A run killed at any point leaves a journal that `harness report` can read.
"""

import json
import os
import time
from pathlib import Path
from typing import Any, TextIO

JOURNAL_NAME = "journal.jsonl"


class Journal:
    def __init__(self, path: Path, clock_origin: float | None = None):
        self.path = path
        self.origin = time.monotonic() if clock_origin is None else clock_origin
        self._file: TextIO | None = path.open("a", encoding="utf-8")

    def now(self) -> float:
        """Seconds on the run clock."""
        return time.monotonic() - self.origin

    def event(self, name: str, /, **fields: Any) -> dict[str, Any]:
        record = {"type": "event", "event": name, "t": round(self.now(), 4), "wall": time.time()}
        record.update(fields)
        self._write(record)
        return record

    def series(self, name: str, values: dict[str, float], t: float | None = None) -> None:
        """One sample of a named numeric series (e.g. scraped server metrics)."""
        stamp = round(self.now() if t is None else t, 4)
        self._write({"type": "series", "name": name, "t": stamp, "values": values})

    def second(self, record: dict[str, Any]) -> None:
        self._write({"type": "second", **record}, sync=True)

    def _write(self, record: dict[str, Any], sync: bool = False) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        self._file.flush()
        if sync:  # once a second: cheap, and a host crash loses at most a second
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


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
