"""What a scenario run hands a pytest test: the verdict and each SLO, read from the run folder.

Kept free of pytest, Locust and gevent imports: the plugin's results are read in the user's own
pytest process, which must stay unpatched (the run itself happens in a child process).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.exitcodes import ExitCode

# Verdict words for runs that left no summary.json (the harness stopped before its reports).
_WORD_BY_CODE = {
    ExitCode.PASS: "pass",
    ExitCode.SLO_FAILED: "fail",
    ExitCode.USAGE_ERROR: "usage_error",
    ExitCode.STACK_FAILED: "stack_failed",
    ExitCode.INTERNAL_ERROR: "error",
    ExitCode.INTERRUPTED: "interrupted",
}


@dataclass(frozen=True)
class SloOutcome:
    """One SLO of a finished run, as summary.json records it."""

    name: str
    metric: str
    op: str
    threshold: float
    measured: float | None
    passed: bool
    samples: int
    detail: str = ""
    window: Any = "all"
    # [low, high] where the harness reports confidence intervals; None on a side it cannot bound.
    ci: tuple[float | None, float | None] | None = None
    confidence: float | None = None
    marginal: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "SloOutcome":
        return cls(
            name=str(row.get("name", "")), metric=str(row.get("metric", "")), op=str(row.get("op", "")),
            threshold=float(row.get("threshold", 0.0)), measured=row.get("measured"),
            passed=bool(row.get("passed")), samples=int(row.get("samples") or 0),
            detail=str(row.get("detail", "")), window=row.get("window", "all"),
            ci=_interval(row.get("ci")), confidence=_number(row.get("confidence")),
            marginal=row.get("marginal") if isinstance(row.get("marginal"), bool) else None, raw=row,
        )

    def describe(self, run_dir: Path | None = None) -> str:
        """One line a person reads first: measured against threshold, how many samples, the CI."""
        measured = "nothing measured" if self.measured is None else f"measured {self.measured:g}"
        verdict = "held" if self.passed else "FAILED"
        parts = [f"SLO {self.name} {verdict}: {measured}, threshold {self.op} {self.threshold:g}",
                 f"samples {self.samples}"]
        if self.ci is not None:
            level = f"{self.confidence * 100:g}% " if self.confidence is not None else ""
            parts.append(f"{level}CI {interval_text(self.ci)}")
        if self.marginal:
            parts.append("marginal: the interval straddles the threshold")
        if self.detail and not self.detail.startswith("measured "):  # not the numbers above again
            parts.append(self.detail)
        if run_dir is not None:
            parts.append(f"run folder {run_dir}")
        return "; ".join(parts)


@dataclass(frozen=True)
class HarnessResult:
    """A scenario run: verdict, exit code, SLOs, totals, and where its run folder is."""

    verdict: str
    exit_code: int
    exit_name: str
    reason: str
    slos: list[SloOutcome]
    totals: dict[str, Any]
    run_dir: Path | None
    summary: dict[str, Any]
    output: str = ""  # the tail of the harness's own stdout and stderr
    timed_out: bool = False

    @property
    def passed(self) -> bool:
        return self.exit_code == ExitCode.PASS

    @property
    def reached_verdict(self) -> bool:
        """The stack started and the harness judged the SLOs (pass or fail, nothing worse)."""
        return self.exit_code in (ExitCode.PASS, ExitCode.SLO_FAILED) and not self.timed_out

    @property
    def failed_slos(self) -> list[SloOutcome]:
        return [slo for slo in self.slos if not slo.passed]

    @property
    def junit_xml(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "junit.xml"

    def slo(self, key: str) -> SloOutcome:
        """The SLO named `key`, else the only one whose name or metric starts with it ("p99")."""
        exact = [slo for slo in self.slos if slo.name == key]
        if len(exact) == 1:
            return exact[0]
        found = [slo for slo in self.slos if slo.name.startswith(key) or slo.metric.startswith(key)]
        if len(found) == 1:
            return found[0]
        names = ", ".join(repr(slo.name) for slo in self.slos) or "none"
        problem = "matches several SLOs" if found else "matches no SLO"
        raise KeyError(f"{key!r} {problem} (SLOs: {names})")

    def describe(self) -> str:
        where = f"; run folder {self.run_dir}" if self.run_dir is not None else ""
        return f"verdict {self.verdict} (exit {self.exit_code} {self.exit_name}): {self.reason}{where}"


def read_result(
    run_dir: Path | None, exit_code: int, output: str = "", timed_out: bool = False
) -> HarnessResult:
    """The result from `run_dir/summary.json`, or one built from the exit code where there is none."""
    summary = _read_summary(run_dir)
    if summary is None:
        return _without_summary(run_dir, exit_code, output, timed_out)
    code = exit_code if timed_out else int(summary.get("exit_code", exit_code))
    return HarnessResult(
        verdict=str(summary.get("verdict", _word(code))), exit_code=code, exit_name=_name(code),
        reason=_reason(summary, timed_out),
        slos=[SloOutcome.from_dict(row) for row in summary.get("slos", [])],
        totals=dict(summary.get("totals", {})), run_dir=run_dir, summary=summary, output=output,
        timed_out=timed_out,
    )


def _without_summary(run_dir: Path | None, exit_code: int, output: str, timed_out: bool) -> HarnessResult:
    lines = [line for line in output.splitlines() if line.strip()]
    reason = lines[-1] if lines else "the harness wrote no summary.json"
    if timed_out:
        reason = f"timed out and killed; {reason}"
    return HarnessResult(
        verdict=_word(exit_code), exit_code=exit_code, exit_name=_name(exit_code), reason=reason, slos=[],
        totals={}, run_dir=run_dir, summary={}, output=output, timed_out=timed_out,
    )


def _read_summary(run_dir: Path | None) -> dict[str, Any] | None:
    if run_dir is None or not (run_dir / "summary.json").is_file():
        return None
    try:
        data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _reason(summary: dict[str, Any], timed_out: bool) -> str:
    reason = str(summary.get("reason", ""))
    return f"timed out, stopped by the plugin; {reason}" if timed_out else reason


def _word(code: int) -> str:
    try:
        return _WORD_BY_CODE[ExitCode(code)]
    except ValueError:
        return "error"


def _name(code: int) -> str:
    try:
        return ExitCode(code).name
    except ValueError:
        return f"EXIT_{code}"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def interval_text(ci: tuple[float | None, float | None]) -> str:
    low, high = ("unbounded" if v is None else f"{v:g}" for v in ci)
    return f"[{low}, {high}]"


def _interval(value: Any) -> tuple[float | None, float | None] | None:
    """A CI as [low, high] (a side may be null) or {low, high}; anything else is no CI."""
    if isinstance(value, dict):
        value = [value.get("low"), value.get("high")]
    if isinstance(value, list | tuple) and len(value) == 2:
        low, high = _number(value[0]), _number(value[1])
        if low is not None or high is not None:
            return (low, high)
    return None
