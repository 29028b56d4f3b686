"""A series: one scenario run M times (`repeat: M`), then judged as a whole.

Each SLO must hold in every repetition, or in N of them with `pass_in: N of M`. This module
holds the judgement (pure, from each repetition's summary); harness.series_run runs the series.
"""

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.abort import HELD
from harness.exitcodes import ExitCode
from harness.scenario import Scenario, Slo

SCHEMA = "serving-harness/series/v1"
# Run verdicts that judge the SLOs; any other word (stack_failed, error, interrupted, ...) means
# the repetition reached no verdict, and the series stops there.
JUDGED = {"pass", "fail", "reproduced", "not_reproduced"}
_SERIES_WORD = {("pass", True): "pass", ("pass", False): "fail",
                ("reproduced", True): "reproduced", ("reproduced", False): "not_reproduced"}


@dataclass(frozen=True)
class Repetition:
    """What the series keeps of one run: its verdict and its SLO results (summary.json's)."""

    index: int  # 1-based
    run_dir: str
    verdict: str
    exit_code: int
    reason: str
    seed: int | None = None
    slos: list[dict[str, Any]] = field(default_factory=list)
    aborted: dict[str, Any] | None = None  # summary.json's `aborted`: an abort SLO stopped it early

    @classmethod
    def from_summary(cls, index: int, summary: dict[str, Any]) -> "Repetition":
        return cls(index, str(summary["run_dir"]), summary["verdict"], int(summary["exit_code"]),
                   summary["reason"], summary.get("seed"), list(summary.get("slos", [])),
                   summary.get("aborted"))

    @property
    def judged(self) -> bool:
        return self.verdict in JUDGED

    @property
    def aborted_failed(self) -> bool:
        """An abort SLO failed in it: the series stops after it (a reproduction that held early,
        `outcome: held`, is an ordinary repetition)."""
        return self.aborted is not None and self.aborted.get("outcome") != HELD

    @property
    def failed_outside_slos(self) -> bool:
        """Failed with every SLO held (a load that completed no request): no SLO passes here."""
        return self.verdict in ("fail", "not_reproduced") and all(s["passed"] for s in self.slos)


def required_passes(slo: Slo, repeat: int) -> int:
    return slo.pass_in.passes if slo.pass_in is not None else repeat


def judge_slo(slo: Slo, position: int, reps: list[Repetition], repeat: int) -> dict[str, Any]:
    """One SLO over the repetitions that reached a verdict: passes, status, per-run values."""
    runs = []
    for rep in (r for r in reps if r.judged):
        result = rep.slos[position]
        passed = bool(result["passed"]) and not rep.failed_outside_slos
        runs.append({"repetition": rep.index, "passed": passed, "measured": result["measured"],
                     "samples": result["samples"], "ci": result.get("ci"),
                     "confidence": result.get("confidence"), "marginal": result.get("marginal", False)})
    passes = sum(1 for r in runs if r["passed"])
    required = required_passes(slo, repeat)
    left = repeat - len(runs)
    status = "held" if passes >= required else "failed" if passes + left < required else "undecided"
    values = [r["measured"] for r in runs if r["measured"] is not None]
    return {
        "name": slo.label, "metric": slo.metric, "op": slo.op, "threshold": slo.threshold,
        "pass_in": slo.pass_in.text if slo.pass_in is not None else None,
        "required": required, "of": repeat, "passes": passes, "judged": len(runs), "status": status,
        "spread": spread(values), "cis_overlap": cis_overlap([r["ci"] for r in runs]), "runs": runs,
    }


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "stdev": round(statistics.stdev(values), 6) if len(values) > 1 else 0.0}


def cis_overlap(cis: list[list[float | None] | None]) -> bool | None:
    """Whether all intervals share a point (None: no interval to compare); open sides reach far."""
    present = [ci for ci in cis if ci is not None]
    if len(present) < 2:
        return None
    lows = [ci[0] for ci in present if ci[0] is not None]
    highs = [ci[1] for ci in present if ci[1] is not None]
    return not lows or not highs or max(lows) <= min(highs)


def _shortfall(slo: dict[str, Any]) -> str:
    return f"{slo['name']} (held in {slo['passes']} of {slo['of']}, needs {slo['required']})"


@dataclass
class SeriesVerdict:
    word: str
    code: ExitCode
    reason: str


def decide_series(scenario: Scenario, reps: list[Repetition], repeat: int, slos: list[dict[str, Any]],
                  stopped_by: str = "") -> SeriesVerdict:
    """The series verdict: like a run's, from the SLOs' N-of-M outcomes."""
    unjudged = next((r for r in reps if not r.judged), None)
    if unjudged is not None:
        return SeriesVerdict(unjudged.verdict, ExitCode(unjudged.exit_code),
                             f"repetition {unjudged.index}: {unjudged.reason}")
    aborted = next((r for r in reps if r.aborted_failed), None)
    if aborted is not None:  # k6's abortOnFail: the failure decided the series, no later run can undo it
        assert aborted.aborted is not None
        word = _SERIES_WORD[(scenario.expect, False)]
        return SeriesVerdict(word, ExitCode.SLO_FAILED,
                             f"repetition {aborted.index} {aborted.aborted['reason']}; the series stopped "
                             f"after {len(reps)} of {repeat} repetitions")
    if stopped_by or len(reps) < repeat:
        why = f"stopped by {stopped_by}" if stopped_by else "stopped"
        return SeriesVerdict("interrupted", ExitCode.INTERRUPTED,
                             f"{why} after {len(reps)} of {repeat} repetitions")
    if not slos:
        held = all(not r.failed_outside_slos for r in reps)
        reason = "every repetition held" if held else "a repetition failed"
    else:
        failed = [s for s in slos if s["status"] != "held"]
        held = not failed
        reason = f"{len(slos)} SLO(s) held in enough of {repeat} repetitions" if held else \
            f"{len(failed)} failed: " + "; ".join(_shortfall(s) for s in failed)
    word = _SERIES_WORD[(scenario.expect, held)]
    return SeriesVerdict(word, ExitCode.PASS if held else ExitCode.SLO_FAILED, reason)


def _aborted(reps: list[Repetition]) -> dict[str, Any] | None:
    """series.json's `aborted`: the repetition an abort SLO failed in, which ended the series."""
    rep = next((r for r in reps if r.aborted_failed), None)
    return None if rep is None or rep.aborted is None else {"repetition": rep.index, **rep.aborted}


def judge_series(scenario: Scenario, reps: list[Repetition], repeat: int, series_dir: str,
                 stopped_by: str = "") -> dict[str, Any]:
    """series.json: the verdict, each SLO's N of M, and each repetition."""
    slos = [judge_slo(slo, i, reps, repeat) for i, slo in enumerate(scenario.slo)]
    verdict = decide_series(scenario, reps, repeat, slos, stopped_by)
    return {
        "schema": SCHEMA,
        "scenario": scenario.name,
        "description": scenario.description,
        "expect": scenario.expect,
        "series_dir": series_dir,
        "repeat": repeat,
        "completed": len(reps),
        "aborted": _aborted(reps),
        "verdict": verdict.word,
        "exit_code": int(verdict.code),
        "exit_name": verdict.code.name,
        "reason": verdict.reason,
        "slos": slos,
        "repetitions": [{k: v for k, v in asdict(r).items() if k != "slos"} for r in reps],
    }
