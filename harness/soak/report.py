"""The soak's own reports: soak.json, soak.html and junit.xml, and the soak's verdict.

Everything is rebuilt from the run folder (the main journal's `soak_started` event, `soak.jsonl`
and the cycle folders), so `harness report RUN_DIR` gives the same result after a soak that was
stopped early or killed: cycles left without a record are finished first.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from harness.abort import HELD
from harness.analysis import RunData
from harness.exitcodes import ExitCode
from harness.journal import JOURNAL_NAME, read_journal
from harness.scenario import Scenario
from harness.slo import SloResult
from harness.soak import trend
from harness.soak.cycle import finish_cycle
from harness.soak.index import cycle_dirs, read_records
from harness.verdict import Verdict
from reports.build import write_reports
from reports.junit import set_counts, verdict_case

SCHEMA = "serving-harness/soak/v1"
SETTINGS_EVENT = "soak_started"
STOPPED = ("interrupted", "incomplete")


@dataclass(frozen=True)
class SoakSettings:
    for_s: float
    cycle_s: float
    cycles: int  # planned
    warmup_s: float  # RSS samples before this (seconds from the soak's start) are left out of slopes
    max_rss_slope_mb_per_h: float | None = None
    max_p99_drift_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> "SoakSettings":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in event.items() if k in names})


def read_settings(run_dir: Path) -> SoakSettings | None:
    """The settings a soak recorded in its main journal; None for an ordinary run."""
    path = run_dir / JOURNAL_NAME
    if not path.is_file():
        return None
    for record in read_journal(path):
        if record.get("type") == "event" and record.get("event") == SETTINGS_EVENT:
            return SoakSettings.from_event(record)
    return None


def finish_missing(run_dir: Path, scenario: Scenario) -> list[dict[str, Any]]:
    """Records for every cycle folder, finishing the ones the soak left without (killed, stopped)."""
    have = {r["cycle"] for r in read_records(run_dir)}
    for number, path in cycle_dirs(run_dir):
        if number not in have:
            finish_cycle(path, run_dir, scenario)
    return read_records(run_dir)


def write_soak_reports(
    run_dir: Path, scenario: Scenario, settings: SoakSettings
) -> tuple[Verdict, dict[str, Any]]:
    """Finish what is missing, decide, and write soak.json, soak.html and junit.xml."""
    from reports.soak_html import build_soak_html

    records = finish_missing(run_dir, scenario)
    main = RunData.from_run_dir(run_dir)
    if not records:  # nothing was soaked (the stack never started...): the ordinary reports say why
        write_reports(run_dir, scenario, main)
    soak = soak_summary(run_dir, scenario, settings, records)
    verdict = soak_verdict(scenario, main, records, soak, settings)
    soak.update(verdict=verdict.word, exit_code=int(verdict.code), exit_name=verdict.code.name,
                reason=verdict.reason, limits=[s.to_dict() for s in verdict.slos])
    (run_dir / "soak.json").write_text(json.dumps(soak, indent=1, default=str), encoding="utf-8")
    (run_dir / "soak.html").write_text(build_soak_html(soak), encoding="utf-8")
    (run_dir / "junit.xml").write_bytes(build_soak_junit(soak))
    return verdict, soak


def soak_summary(run_dir: Path, scenario: Scenario, settings: SoakSettings,
                 records: list[dict[str, Any]]) -> dict[str, Any]:
    target = trend.rss_points(records, "target_rss")
    harness = trend.rss_points(records, "harness_rss")
    return {
        "schema": SCHEMA,
        "scenario": scenario.name,
        "description": scenario.description,
        "run_dir": str(run_dir),
        "settings": settings.to_dict(),
        "cycles_planned": settings.cycles,
        "cycles_done": sum(1 for r in records if r.get("complete") and r["verdict"] not in STOPPED),
        "cycles_failed": [r["cycle"] for r in records if failed_cycle(r)],
        "cycles_partial": [r["cycle"] for r in records if r.get("partial") and r["verdict"] not in STOPPED],
        "aborted": aborted_cycle(records),
        "totals": trend.totals(records),
        "target_rss": trend.rss_trend(target, settings.warmup_s).to_dict(),
        "harness_rss": trend.rss_trend(harness, settings.warmup_s).to_dict(),
        "p99": trend.p99_drift(records, settings.warmup_s),
        "error_windows": trend.error_windows(records),
        "cycles": [{k: v for k, v in r.items() if k not in ("target_rss", "harness_rss")} for r in records],
        "series": {"target_rss": trend.thin(target), "harness_rss": trend.thin(harness)},
    }


def failed_cycle(record: dict[str, Any]) -> bool:
    """A cycle whose SLOs failed; the last one, cut short at `--for`, is shown but not judged, unless
    an abort SLO cut it short: that cycle failed, and ended the soak."""
    return record["verdict"] in ("fail", "not_reproduced") and (not record.get("partial") or _aborted(record))


def _aborted(record: dict[str, Any]) -> bool:
    return bool(record.get("aborted")) and record["aborted"].get("outcome") != HELD


def aborted_cycle(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """soak.json's `aborted`: the cycle an abort SLO stopped the soak in, and why (None: it did not)."""
    record = next((r for r in records if r.get("aborted")), None)
    return None if record is None else {"cycle": record["cycle"], **record["aborted"]}


def limit_results(soak: dict[str, Any], settings: SoakSettings) -> list[SloResult]:
    """The soak-level limits given on the command line, as SLO results."""
    out = []
    if settings.max_rss_slope_mb_per_h is not None:
        rss = soak["target_rss"]
        out.append(_limit("target RSS slope (MB/h)", "rss_slope_mb_per_h", settings.max_rss_slope_mb_per_h,
                          rss["slope_mb_per_h"], rss["samples"]))
    if settings.max_p99_drift_ms is not None:
        p99 = soak["p99"]
        out.append(_limit("p99 drift, last vs first cycles (ms)", "p99_drift_ms", settings.max_p99_drift_ms,
                          p99["drift_ms"], p99["cycles"]))
    return out


def _limit(name: str, metric: str, threshold: float, value: float | None, samples: int) -> SloResult:
    if value is None:
        return SloResult(name, metric, "<=", threshold, None, False, samples, "soak",
                         "not enough samples to measure")
    passed = value <= threshold
    return SloResult(name, metric, "<=", threshold, value, passed, samples, "soak",
                     f"measured {value:g} {'meets' if passed else 'breaks'} <= {threshold:g}")


def soak_verdict(scenario: Scenario, main: RunData, records: list[dict[str, Any]], soak: dict[str, Any],
                 settings: SoakSettings) -> Verdict:
    limits = limit_results(soak, settings)
    if not records:
        from harness.verdict import decide

        return decide(scenario, main)
    errors = [r for r in records if r["verdict"] == "error"]
    if errors or main.first_event("internal_error"):
        reason = errors[0]["reason"] if errors else str(main.first_event("internal_error"))
        return Verdict("error", ExitCode.INTERNAL_ERROR, reason, limits)
    failed = _failed_text(soak["cycles_failed"], limits)
    stopped = [r for r in records if r["verdict"] in STOPPED]
    if stopped:
        reason = (f"{stopped[0]['reason']} (cycle {stopped[0]['cycle']} of {settings.cycles}; "
                  f"{soak['cycles_done']} complete{'; ' + failed if failed else ''})")
        return Verdict("interrupted" if stopped[0]["verdict"] == "interrupted" else "incomplete",
                       ExitCode.INTERRUPTED, reason, limits)
    aborted = soak.get("aborted")
    early = "" if aborted is None else \
        f"cycle {aborted['cycle']} of {settings.cycles}: {aborted['reason']}; the soak ended there"
    if aborted is not None and aborted.get("outcome") != HELD:  # an abort SLO failed: the soak did
        return Verdict("fail", ExitCode.SLO_FAILED, _joined(early, failed), limits)
    if failed:
        return Verdict("fail", ExitCode.SLO_FAILED, _joined(failed, early), limits)
    held = f"; {len(limits)} soak limit(s) held" if limits else ""
    passed = f"{len(records)} cycle(s), every cycle's SLOs held{held}"
    return Verdict("pass", ExitCode.PASS, _joined(passed, early), limits)


def _joined(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _failed_text(cycles: list[int], limits: list[SloResult]) -> str:
    parts = []
    if cycles:
        shown = ", ".join(str(n) for n in cycles[:20]) + (" ..." if len(cycles) > 20 else "")
        parts.append(f"{len(cycles)} cycle(s) failed their SLOs: {shown}")
    parts += [f"{s.name} failed ({s.detail})" for s in limits if not s.passed]
    return "; ".join(parts)


def build_soak_junit(soak: dict[str, Any]) -> bytes:
    """One test case per cycle and per soak limit (and the soak's own where they do not show its verdict)."""
    suite = ET.Element("testsuite", name=f"harness.soak.{soak['scenario']}")
    for row in soak["cycles"]:
        case = ET.SubElement(suite, "testcase", classname=soak["scenario"], name=f"cycle {row['cycle']:04d}")
        if row.get("partial") and row["verdict"] not in STOPPED and not _aborted(row):
            ET.SubElement(case, "skipped", message="cut short at --for: not judged")
        elif row["verdict"] in ("fail", "not_reproduced"):
            ET.SubElement(case, "failure", message=row["reason"], type="SloFailed").text = row["reason"]
        elif row["verdict"] not in ("pass", "reproduced"):
            ET.SubElement(case, "error", message=row["reason"], type=row["verdict"]).text = row["reason"]
    for limit in soak.get("limits", []):
        case = ET.SubElement(suite, "testcase", classname=soak["scenario"], name=limit["name"])
        if not limit["passed"]:
            ET.SubElement(case, "failure", message=limit["detail"], type="SloFailed").text = limit["detail"]
    verdict_case(suite, soak["scenario"], "soak", soak)
    set_counts(suite)
    suite.set("time", str(soak["totals"].get("duration_s") or 0))
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)
