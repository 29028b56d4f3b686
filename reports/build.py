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
    (run_dir / "report.html").write_text(build_html(summary, data), encoding="utf-8")
    return verdict, summary
