"""Where a soak keeps its parts: `cycles/NNNN/` folders and the `soak.jsonl` index.

The index gets one compact JSON line per finished cycle, fsynced, so a soak that is killed keeps
every record written so far; readers take the last record of each cycle, ordered by number.
"""

import json
import os
from pathlib import Path
from typing import Any

INDEX_NAME = "soak.jsonl"
CYCLES_DIR = "cycles"


def cycle_dir(run_dir: Path, number: int) -> Path:
    """The folder of cycle `number` (1-based): `cycles/0001`."""
    return run_dir / CYCLES_DIR / f"{number:04d}"


def cycle_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """Every cycle folder with a journal, by number."""
    root = run_dir / CYCLES_DIR
    if not root.is_dir():
        return []
    found = [(int(p.name), p) for p in root.iterdir() if p.name.isdigit() and (p / "journal.jsonl").is_file()]
    return sorted(found)


def append_record(run_dir: Path, record: dict[str, Any]) -> None:
    with (run_dir / INDEX_NAME).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """The cycle records, one per cycle (the last written wins), by cycle number."""
    path = run_dir / INDEX_NAME
    if not path.is_file():
        return []
    by_cycle: dict[int, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line: the harness was killed mid-write
            if isinstance(record, dict) and isinstance(record.get("cycle"), int):
                by_cycle[record["cycle"]] = record
    return [by_cycle[n] for n in sorted(by_cycle)]
