"""From a journal and a scenario to one verdict word and exit code."""

from dataclasses import dataclass, field

from harness.abort import ABORT_EVENT, HELD, abort_reason
from harness.analysis import RunData
from harness.exitcodes import ExitCode
from harness.scenario import Scenario
from harness.slo import SloResult, evaluate_all


@dataclass
class Verdict:
    word: str  # pass, fail, reproduced, not_reproduced, stack_failed, interrupted, incomplete, error
    code: ExitCode
    reason: str
    slos: list[SloResult] = field(default_factory=list)


def decide(scenario: Scenario, data: RunData) -> Verdict:
    failed_start = data.first_event("stack_failed")
    if failed_start is not None:
        return Verdict("stack_failed", ExitCode.STACK_FAILED, str(failed_start.get("error", "")))
    invalid = data.first_event("scenario_invalid")
    if invalid is not None:
        return Verdict("usage_error", ExitCode.USAGE_ERROR, str(invalid.get("error", "")))
    slos = evaluate_all(scenario.slo, data)
    error = data.first_event("internal_error")
    if error is not None:
        return Verdict("error", ExitCode.INTERNAL_ERROR, str(error.get("error", "")), slos)
    interrupted = data.first_event("interrupted")
    if interrupted is not None:
        reason = f"stopped by {interrupted.get('signal', 'a signal')} at t={interrupted['t']:.1f}s"
        return Verdict("interrupted", ExitCode.INTERRUPTED, reason, slos)
    if data.first_event("run_ended") is None:
        last = max([e["t"] for e in data.events] + [s["t"] for s in data.seconds], default=0.0)
        reason = f"the journal stops at t={last:.1f}s: the harness was killed or crashed"
        return Verdict("incomplete", ExitCode.INTERRUPTED, reason, slos)
    aborted = data.first_event(ABORT_EVENT)
    # An abort SLO failed while the load ran: the run stopped there, and it failed (a reproduction:
    # a condition that can no longer hold), whatever the SLOs measure on the few seconds after it.
    if aborted is not None and aborted.get("outcome") != HELD:
        word = "not_reproduced" if scenario.expect == "reproduced" else "fail"
        return Verdict(word, ExitCode.SLO_FAILED, abort_reason(aborted), slos)
    # A reproduction whose abort conditions all held stopped early: judged as usual, and says so.
    early = f"; {abort_reason(aborted)}" if aborted is not None else ""
    failed = [s for s in slos if not s.passed]
    idle = data.load_start is not None and not any(r["requests"] for r in data.seconds)
    if scenario.expect == "pass" and idle:  # a load test that sent nothing has not passed
        return Verdict("fail", ExitCode.SLO_FAILED, "the load completed no request at all", slos)
    if scenario.expect == "reproduced":
        if failed:
            return Verdict("not_reproduced", ExitCode.SLO_FAILED, _names(failed, "missing") + early, slos)
        return Verdict("reproduced", ExitCode.PASS, "every reproduction condition held" + early, slos)
    if failed:
        return Verdict("fail", ExitCode.SLO_FAILED, _names(failed, "failed"), slos)
    marginal = sum(1 for s in slos if s.marginal)
    note = f" ({marginal} marginal: the threshold lies inside the confidence interval)" if marginal else ""
    return Verdict("pass", ExitCode.PASS, f"{len(slos)} SLO(s) held{note}", slos)


def _names(failed: list[SloResult], word: str) -> str:
    return f"{len(failed)} {word}: " + "; ".join(f"{s.name} ({s.detail})" for s in failed)
