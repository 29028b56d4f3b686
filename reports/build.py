"""Writes all three reports of a run from its journal and scenario."""

import json
from pathlib import Path
from typing import Any

from harness.analysis import RunData
from harness.scenario import Scenario
from harness.verdict import Verdict, decide
from reports.html import build_html
from reports.junit import build_junit
from reports.summary import build_summary


def write_reports(
    run_dir: Path, scenario: Scenario, data: RunData | None = None
) -> tuple[Verdict, dict[str, Any]]:
    """Decide the verdict from the journal and write summary.json, junit.xml, report.html."""
    data = data or RunData.from_run_dir(run_dir)
    verdict = decide(scenario, data)
    summary = build_summary(run_dir, scenario, data, verdict)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    (run_dir / "junit.xml").write_bytes(build_junit(summary))
    (run_dir / "report.html").write_text(build_html(summary, data, run_files(run_dir)), encoding="utf-8")
    return verdict, summary


# The files a reader opens next to the report: the run's own, and the logs of what it ran.
LINKED_DEPTH = 3
LINKED_MAX = 60


def run_files(run_dir: Path) -> list[tuple[str, int]]:
    """(path relative to the run folder, bytes) of its files, shallow ones first, the stack's
    caches and models left out (thousands of files nobody reads from a report)."""
    found: list[tuple[str, int]] = []
    for path in sorted(run_dir.rglob("*"), key=lambda p: (len(p.relative_to(run_dir).parts), str(p))):
        relative = path.relative_to(run_dir)
        if len(relative.parts) > LINKED_DEPTH or path.name == "report.html" or not path.is_file():
            continue
        if any(part in ("cache", "model", "models", "tmp", "__pycache__") for part in relative.parts[:-1]):
            continue
        found.append((relative.as_posix(), path.stat().st_size))
        if len(found) >= LINKED_MAX:
            break
    return found
