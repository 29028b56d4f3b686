"""Which finished runs a folder holds: a run, a series' repetitions, a soak's cycles, or any of
those below it (`harness store import runs/`).

A finished run is a folder with `summary.json` and `journal.jsonl`. A series' folder holds its
repetitions' folders beside `series.json` and a copy of the scenario; a soak's holds its cycles
in `cycles/NNNN/`, each with its own summary, and the scenario copy one level up.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from harness.journal import JOURNAL_NAME
from harness.rundir import SCENARIO_COPY
from harness.series_run import SERIES_JSON
from harness.soak.index import cycle_dirs

SUMMARY = "summary.json"
SOAK_JSON = "soak.json"
MAX_DEPTH = 4  # below a folder given to `import`: runs/<suite>/<series>/<repetition> is 3


@dataclass(frozen=True)
class RunFolder:
    path: Path  # holds summary.json and journal.jsonl
    kind: str  # run, repetition, soak_cycle
    scenario_file: Path  # the copy of the scenario it ran
    group: Path | None = None  # the series' or soak's folder
    position: int | None = None  # the cycle's number; the repetition's index where series.json says


@dataclass
class Found:
    runs: list[RunFolder]
    skipped: list[tuple[Path, str]]  # a folder that looks like a run but is not finished, and why


def find_runs(path: Path) -> Found:
    found = Found([], [])
    _visit(path.resolve(), found, 0)
    return found


def classify(run_dir: Path) -> RunFolder:
    """One finished run's folder (summary.json there), with what its parent says it is."""
    run_dir = run_dir.resolve()
    parent = run_dir.parent
    if parent.name == "cycles" and (parent.parent / JOURNAL_NAME).is_file() and run_dir.name.isdigit():
        soak = parent.parent
        return RunFolder(run_dir, "soak_cycle", soak / SCENARIO_COPY, soak, int(run_dir.name))
    if _is_series(parent):
        return RunFolder(run_dir, "repetition", run_dir / SCENARIO_COPY, parent, _repetition(parent, run_dir))
    return RunFolder(run_dir, "run", run_dir / SCENARIO_COPY)


def _visit(path: Path, found: Found, depth: int) -> None:
    if not path.is_dir():
        return
    if (path / "cycles").is_dir() and (path / JOURNAL_NAME).is_file():  # a soak
        for number, cycle in cycle_dirs(path):
            if (cycle / SUMMARY).is_file():
                found.runs.append(RunFolder(cycle, "soak_cycle", path / SCENARIO_COPY, path, number))
            else:
                found.skipped.append((cycle, f"{cycle}: soak cycle {number} has no summary.json "
                                             f"(`harness report {path}` finishes it)"))
        return
    if (path / SUMMARY).is_file():
        found.runs.append(classify(path))
        return
    if (path / JOURNAL_NAME).is_file():
        found.skipped.append((path, f"{path}: no summary.json: the run did not finish "
                                    f"(`harness report {path}` writes it)"))
        return
    if depth >= MAX_DEPTH:
        return
    for child in sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink()):
        _visit(child, found, depth + 1)


def _is_series(folder: Path) -> bool:
    # series.json is written when the series ends: while it runs, a repetition's parent is known
    # by the scenario copy that a series folder has and a runs root has not.
    if (folder / SERIES_JSON).is_file():
        return True
    return (folder / SCENARIO_COPY).is_file() and not (folder / JOURNAL_NAME).is_file()


def _repetition(series_dir: Path, run_dir: Path) -> int | None:
    """Its index: as series.json says; while the series runs (no series.json yet), its place
    among the series' run folders, whose names sort as they were made (`<name>-<time>[-N]`)."""
    try:
        series = json.loads((series_dir / SERIES_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        series = None
    if isinstance(series, dict):
        for rep in series.get("repetitions") or []:
            if isinstance(rep, dict) and Path(str(rep.get("run_dir", ""))).name == run_dir.name:
                index = rep.get("index")
                return index if isinstance(index, int) else None
        return None
    runs = sorted(p.name for p in series_dir.iterdir() if p.is_dir() and (p / JOURNAL_NAME).is_file())
    return runs.index(run_dir.name) + 1 if run_dir.name in runs else None
