"""`harness run FOLDER`: every scenario of a folder (a reproduction library), one after another.

The nightly job of a serving team is "run every reproduction we have and tell us which failures
are still there". Each scenario runs exactly as `harness run FILE` would (a run, or a series where
it has `repeat`), in a folder of its own under one library folder, so each keeps every report it
would have alone. The library adds `library.json`, a `junit.xml` with one test case per scenario,
and a table: expected outcome, source, verdict and time per scenario. Every file is read and
checked before the first one starts, so a bad file costs no run.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from harness.errors import HarnessError, UsageError
from harness.exitcodes import ExitCode
from harness.rundir import make_stamped_dir
from harness.scenario import Scenario, load_scenario
from harness.series_run import StopBetweenRuns

LIBRARY_JSON = "library.json"
MAX_SCENARIOS = 500

# (scenario file, its model, the folder to make its run under) -> (exit code, its run or series
# folder, the verdict's one line): `harness run FILE`'s own path, given by the CLI.
RunFile = Callable[[Path, Scenario, Path], tuple[int, Path | None, str]]


@dataclass
class Entry:
    """One scenario's line of the library's table."""

    file: str
    name: str
    expect: str
    source: list[str]
    exit_code: int
    exit_name: str
    reason: str
    folder: str | None
    seconds: float


def scenario_files(folder: Path) -> list[Path]:
    """The scenario files of `folder`, in name order (the order they run in). Not its subfolders:
    a subfolder groups scenarios that need another environment (vLLM's cannot install beside
    Triton's), run as a library of its own."""
    files = sorted(path for path in folder.glob("*.yaml") if path.is_file())
    if not files:
        raise UsageError(f"{folder}: no scenario files (*.yaml) in this folder")
    if len(files) > MAX_SCENARIOS:
        raise UsageError(f"{folder}: {len(files)} scenario files; at most {MAX_SCENARIOS} run in one library")
    return files


def load_all(files: list[Path]) -> list[tuple[Path, Scenario]]:
    """Every file read and checked first; all the bad ones named, each on its own line."""
    loaded, problems = [], []
    for path in files:
        try:
            loaded.append((path, load_scenario(path)))
        except HarnessError as exc:
            problems.append(str(exc).splitlines()[0])
    if problems:
        raise UsageError("\n".join(problems) + f"\n{len(problems)} bad scenario file(s); nothing was started")
    return loaded


def run_library(folder: Path, runs_root: Path, run_file: RunFile) -> tuple[int, Path]:
    """Run every scenario of `folder`; write the library's reports; the worst exit code and the
    library's folder."""
    loaded = load_all(scenario_files(folder))
    library_dir = make_stamped_dir(runs_root, f"library-{folder.resolve().name}")
    print(f"library folder: {library_dir} ({len(loaded)} scenarios)", flush=True)
    entries: list[Entry] = []
    stop = StopBetweenRuns()  # a running scenario's Run has its own handlers
    try:
        for index, (path, scenario) in enumerate(loaded, 1):
            if stop.signal:
                break
            print(f"scenario {index}/{len(loaded)}: {path}", flush=True)
            started = time.monotonic()
            code, run_folder, reason = run_file(path, scenario, library_dir)
            entries.append(_entry(path, scenario, code, run_folder, reason, time.monotonic() - started))
            _write(library_dir, folder, entries, len(loaded), stop.signal)  # a killed library keeps its table
            if code == ExitCode.INTERRUPTED:
                break
    finally:
        stop.restore()
    _write(library_dir, folder, entries, len(loaded), stop.signal)
    for line in table_lines(entries):
        print(line)
    worst = max((entry.exit_code for entry in entries), default=int(ExitCode.INTERRUPTED))
    if len(entries) < len(loaded):
        worst = max(worst, int(ExitCode.INTERRUPTED))
    print(f"library: {sum(e.exit_code == 0 for e in entries)} of {len(loaded)} scenarios as expected "
          f"(exit {worst} {ExitCode(worst).name}); reports: {library_dir / LIBRARY_JSON}  "
          f"{library_dir / 'junit.xml'}")
    return worst, library_dir


def _entry(path: Path, scenario: Scenario, code: int, run_folder: Path | None, reason: str,
           seconds: float) -> Entry:
    return Entry(str(path), scenario.name, scenario.expect, list(scenario.source), int(code),
                 ExitCode(code).name, reason, None if run_folder is None else str(run_folder),
                 round(seconds, 1))


def _write(library_dir: Path, folder: Path, entries: list[Entry], planned: int, stopped_by: str) -> None:
    data: dict[str, Any] = {"folder": str(folder), "planned": planned, "completed": len(entries),
                            "stopped_by": stopped_by or None, "scenarios": [asdict(e) for e in entries]}
    tmp = library_dir / f".{LIBRARY_JSON}.tmp"
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(library_dir / LIBRARY_JSON)  # never a half-written table
    (library_dir / "junit.xml").write_bytes(library_junit(folder, entries))


def library_junit(folder: Path, entries: list[Entry]) -> bytes:
    """One test case per scenario: it fails when the scenario did not end as it expects."""
    suite = ET.Element("testsuite", name=f"harness.library.{folder.resolve().name}",
                       tests=str(len(entries)), failures=str(sum(e.exit_code != 0 for e in entries)),
                       time=f"{sum(e.seconds for e in entries):.1f}")
    for entry in entries:
        case = ET.SubElement(suite, "testcase", classname=f"library.{folder.resolve().name}",
                             name=entry.name, time=f"{entry.seconds:.1f}")
        if entry.exit_code != 0:
            ET.SubElement(case, "failure", type=entry.exit_name,
                          message=f"expect {entry.expect}: exit {entry.exit_code} {entry.exit_name}: "
                                  f"{entry.reason}")
        ET.SubElement(case, "system-out").text = "\n".join(
            [f"file: {entry.file}", f"source: {', '.join(entry.source) or '-'}",
             f"run folder: {entry.folder or '-'}"])
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def table_lines(entries: list[Entry]) -> list[str]:
    """The terminal table: what each scenario expects, where it came from, and how it ended."""
    rows = [("scenario", "expect", "source", "result", "s")]
    rows += [(e.name, e.expect, ", ".join(e.source) or "-",
              "as expected" if e.exit_code == 0 else f"exit {e.exit_code} {e.exit_name}", f"{e.seconds:.0f}")
             for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]
