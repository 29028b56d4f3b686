"""`abort: true` (harness.abort): the live judgement on journals built here, the verdict and the
reports of an aborted run, series and soaks that stop at an abort, and whole runs on the fake
stack (test_run_orchestrator.py's set-up) that end early, restore their faults and say why."""

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import locust  # noqa: F401 - first, so gevent patches the standard library as in `harness run`
import pytest

from harness.abort import (
    ABORT_EVENT,
    FAILED,
    FINAL,
    HELD,
    SO_FAR,
    Abort,
    AbortWatch,
    Finding,
    JournalTail,
    LiveMeasure,
    Movement,
    abort_never_fires,
    decide,
    judge,
    movement,
)
from harness.analysis import RunData, measure
from harness.exitcodes import ExitCode
from harness.journal import Journal, RotatingJournal, read_journal
from harness.repeat import Repetition, judge_series
from harness.restore import read_restore
from harness.scenario import Scenario, Slo
from harness.series_run import run_series
from harness.soak.index import read_records
from harness.soak.run import SoakRun
from harness.verdict import decide as decide_verdict
from reports.build import write_reports
from tests.unit.fakes.journal import events
from tests.unit.fakes.soak import in_process_soak
from tests.unit.fakes.stack import ENTRY, FakeStack
from tests.unit.helpers import synthetic_records
from tests.unit.test_run_orchestrator import (  # noqa: F401 - fixtures: the fake feature, logging, `execute`
    Outcome,
    execute,
    fake_feature,
    keep_logging,
    scenario,
)

LOAD_START = 2.0
AFTER_RUN = ("load_stopped", "stack_stopped", "run_ended")


def live(records: list[dict[str, Any]]) -> RunData:
    """The journal as it reads while the load still runs: nothing after the load."""
    return RunData.from_records([r for r in records if r.get("event") not in AFTER_RUN])


def abort_slo(text: str | dict[str, Any], **fields: Any) -> Slo:
    base = Slo.model_validate(text).model_dump(by_alias=True, exclude={"abort", "abort_grace"})
    return Slo.model_validate({**base, "abort": True, **fields})


def judged(slo: Slo, data: RunData, at_s: float, expect: str = "pass") -> Finding | None:
    return judge(slo, data, LOAD_START + at_s, expect, LiveMeasure())


def unit_scenario(slo: list[Any], expect: str = "pass", duration: float = 10) -> Scenario:
    return Scenario.model_validate({
        "name": "unit", "stack": {"kind": "external", "url": "http://127.0.0.1:1", "model": "m"},
        "load": {"user": "triton_http", "duration": duration}, "slo": slo, "expect": expect,
    })


def crash(t: float) -> dict[str, Any]:
    return {"type": "event", "event": "process_exited", "t": t, "role": "server", "pid": 1, "loss": "entry"}


# --- the live judgement


def test_a_rate_fails_on_the_data_so_far_but_not_within_its_grace() -> None:
    data = live(synthetic_records(seconds=4, failing={1}))  # 50 of 400 requests failed
    rate = {"metric": "error_rate", "max": 0.01}
    assert judged(abort_slo(rate, abort_grace=5), data, at_s=4.0) is None
    finding = judged(abort_slo(rate, abort_grace=3), data, at_s=4.0)
    assert finding is not None and (finding.outcome, finding.rule) == (FAILED, SO_FAR)
    assert finding.measured == pytest.approx(0.125)
    assert judged(abort_slo({"metric": "error_rate", "max": 0.2}), data, at_s=4.0) is None  # it holds


def test_a_window_that_has_not_begun_decides_nothing() -> None:
    data = live(synthetic_records(seconds=4, failing={0, 1, 2, 3}))
    late = abort_slo({"metric": "errors", "max": 0, "window": {"from": 8, "to": 9}})
    assert judged(late, data, at_s=4.0) is None
    begun = abort_slo({"metric": "errors", "max": 0, "window": {"from": 1}})
    assert judged(begun, data, at_s=4.0) is not None


def test_a_count_past_its_ceiling_fails_for_good_and_a_floor_not_reached_waits() -> None:
    data = live(synthetic_records(seconds=4, failing={1}))
    errors = judged(abort_slo("errors <= 10"), data, at_s=4.0)
    assert errors is not None and (errors.outcome, errors.rule, errors.measured) == (FAILED, FINAL, 50)
    assert judged(abort_slo("requests >= 1000000"), data, at_s=4.0) is None  # more may come
    reached = judged(abort_slo("requests >= 100"), data, at_s=4.0)
    assert reached is not None and (reached.outcome, reached.rule) == (HELD, FINAL)
    crashed = live([*synthetic_records(seconds=4), crash(3.0)])
    crashes = judged(abort_slo("crashes <= 0"), crashed, at_s=4.0)
    assert crashes is not None and (crashes.outcome, crashes.rule) == (FAILED, FINAL)


def test_a_window_whose_end_has_passed_is_final_either_way() -> None:
    data = live(synthetic_records(seconds=6, failing={1}))
    floor = abort_slo({"metric": "requests", "min": 1000000, "window": {"from": 0, "to": 3}})
    for expect in ("pass", "reproduced"):
        finding = judged(floor, data, at_s=6.0, expect=expect)
        assert finding is not None and (finding.outcome, finding.rule) == (FAILED, FINAL), expect
    still_open = abort_slo({"metric": "requests", "min": 1000000, "window": {"from": 0, "to": 8}})
    assert judged(still_open, data, at_s=6.0) is None
    rate = abort_slo({"metric": "error_rate", "min": 0.01, "window": {"from": 0, "to": 3}})
    held = judged(rate, data, at_s=6.0, expect="reproduced")
    assert held is not None and (held.outcome, held.rule) == (HELD, FINAL)


def test_a_reproduction_counts_only_final_outcomes() -> None:
    data = live([*synthetic_records(seconds=4, failing={1}), crash(3.0)])
    assert judged(abort_slo("error_rate >= 0.5"), data, 4.0, "reproduced") is None  # fails so far
    assert judged(abort_slo("error_rate >= 0.01"), data, 4.0, "reproduced") is None  # holds so far
    crashed = judged(abort_slo("crashes_or_hangs >= 1"), data, 4.0, "reproduced")
    assert crashed is not None and (crashed.outcome, crashed.rule) == (HELD, FINAL)
    assert decide([crashed, None], "reproduced", 4.0) is None  # not every condition held yet
    stop = decide([crashed, crashed], "reproduced", 4.0)
    assert stop is not None and stop.outcome == HELD and len(stop.findings) == 2
    assert decide([crashed], "pass", 4.0) is None  # a pass-or-fail run stops on failures only


def test_how_metrics_move_and_what_never_aborts() -> None:
    assert movement("errors") is Movement.GROWS and movement("log.signal_11") is Movement.GROWS
    assert movement("replicas_lost.worker") is Movement.GROWS and movement("max_ms") is Movement.GROWS
    assert movement("p99.9_ms") is Movement.ESTIMATE and movement("throughput_rps") is Movement.ESTIMATE
    assert movement("unsent") is Movement.AT_END and movement("ttft_p99_ms") is Movement.FEATURE
    data = live(synthetic_records(seconds=4))
    def fixed(value: float) -> Callable[[Slo, RunData, float], float]:
        return lambda slo, data, now: value

    ttft_ceiling = abort_slo("ttft_p99_ms <= 500")
    finding = judge(ttft_ceiling, data, LOAD_START + 4, "pass", fixed(900.0))
    assert finding is not None and (finding.outcome, finding.rule) == (FAILED, SO_FAR)
    assert judge(abort_slo("ttft_p99_ms >= 1000"), data, LOAD_START + 4, "pass", fixed(900.0)) is None
    assert judge(abort_slo("unsent <= 0"), data, LOAD_START + 4, "pass", fixed(5.0)) is None
    assert abort_never_fires(abort_slo("unsent <= 0"), "pass") is not None
    assert abort_never_fires(abort_slo("crashes >= 1"), "pass") is not None
    assert abort_never_fires(abort_slo("crashes >= 1"), "reproduced") is None
    assert abort_never_fires(abort_slo("error_rate <= 0.01"), "pass") is None
    assert abort_never_fires(abort_slo("error_rate >= 0.5"), "reproduced") is not None
    assert abort_never_fires(Slo.model_validate("unsent <= 0"), "pass") is None  # no abort asked


def test_recovery_s_fails_once_a_fault_lasts_longer_than_its_ceiling() -> None:
    injected = {"type": "event", "event": "fault_injected", "t": 3.0, "id": "f0.0", "kind": "process_kill"}
    data = live([*synthetic_records(seconds=4), injected, crash(3.1)])
    assert measure(data, "recovery_s").value is None  # the report's figure: not recovered (yet)
    slo = abort_slo("recovery_s <= 2")
    assert judged(slo, data, at_s=2.0) is None  # down for 1 s so far
    finding = judged(slo, data, at_s=4.0)
    assert finding is not None and (finding.outcome, finding.rule, finding.measured) == (FAILED, FINAL, 3.0)


def test_live_latency_is_merged_as_seconds_arrive_and_agrees_with_the_report() -> None:
    records = synthetic_records(seconds=6)
    seconds = [r for r in records if r["type"] == "second"]
    head = records[:3]  # run_started, stack_ready, load_started
    for metric, window in (("p99_ms", "all"), ("max_ms", "all"), ("p50_ms", {"from": 1, "to": 4})):
        slo = abort_slo({"metric": metric, "max": 1000, "window": window})
        live_measure = LiveMeasure()  # one a run: its merges only grow
        for count in (3, 6):  # the same merge, grown by the later seconds
            data = live(head + seconds[:count])
            assert live_measure(slo, data, LOAD_START + count) == measure(data, metric, slo.window).value
    mean = abort_slo({"metric": "mean_ms", "max": 1000})
    data = live(records)
    reported = measure(data, "mean_ms").value  # from the histogram's buckets; live: the exact sums
    assert LiveMeasure()(mean, data, LOAD_START + 6) == pytest.approx(reported, rel=0.01)


# --- reading the journal as it grows


def test_the_tail_reads_what_was_appended_and_starts_again_on_rotation(tmp_path: Path) -> None:
    journal = RotatingJournal(tmp_path / "main.jsonl")
    tail = JournalTail(journal, keep_series={"log_matches"})
    journal.event("load_started")
    journal.series("prometheus", {"x": 1.0})
    journal.series("log_matches", {"oom": 1.0})
    assert tail.read() is True and [r.get("event", r.get("name")) for r in tail.records] == [
        "load_started", "log_matches"]
    with journal.path.open("a", encoding="utf-8") as handle:  # a line still being written
        handle.write('{"type": "event", "event": "half')
    assert tail.read() is False and len(tail.records) == 2
    with journal.path.open("a", encoding="utf-8") as handle:
        handle.write('way"}\n')
    assert tail.read() is False and tail.records[-1]["event"] == "halfway"
    journal.rotate(tmp_path / "cycles" / "0002" / "journal.jsonl", boundary=journal.now())
    journal.event_here("load_started", cycle=2)
    assert tail.read() is True and [r["event"] for r in tail.records] == ["load_started"]
    journal.close()


def write_journal(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_the_watch_journals_its_abort_and_looks_at_most_once_a_second(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path, [r for r in synthetic_records(seconds=4, failing={1}, load_start=96.0)
                         if r.get("event") not in AFTER_RUN])
    journal = Journal(path, clock_origin=time.monotonic() - 100.0)  # the run clock at 100 s: 4 s of load
    assert AbortWatch.for_run(unit_scenario(["error_rate <= 0.01"]), journal) is None  # nothing to watch
    watch = AbortWatch.for_run(unit_scenario([{"metric": "error_rate", "max": 0.01, "abort": True}]), journal)
    assert watch is not None
    stop = watch.check()
    assert stop is not None and stop.outcome == FAILED and stop.at_s == pytest.approx(4.0, abs=0.5)
    assert watch.check() is None  # the next look is a second away
    journal.close()
    (event,) = [r for r in read_journal(path) if r.get("event") == ABORT_EVENT]
    assert event["slo"] == "error_rate <= 0.01" and event["measured"] == pytest.approx(0.125)
    assert event["threshold"] == 0.01 and event["rule"] == SO_FAR and event["outcome"] == FAILED


# --- the verdict and the reports


def aborted_event(slo: Slo, measured: float, at_s: float, outcome: str = FAILED) -> dict[str, Any]:
    fields = Abort(outcome, at_s, (Finding(slo, measured, outcome, FINAL),)).event_fields()
    return {"type": "event", "event": ABORT_EVENT, "t": LOAD_START + at_s, **fields}


def with_abort(records: list[dict[str, Any]], event: dict[str, Any]) -> list[dict[str, Any]]:
    return [*records[:-3], event, *records[-3:]]  # before load_stopped, stack_stopped, run_ended


def test_an_aborted_run_fails_with_its_reason_and_a_reproduction_says_not_reproduced() -> None:
    slo = abort_slo("error_rate <= 0.01")
    records = with_abort(synthetic_records(seconds=3, failing={1}), aborted_event(slo, 0.2, 3.0))
    verdict = decide_verdict(unit_scenario([slo.model_dump(by_alias=True)]), RunData.from_records(records))
    assert (verdict.word, verdict.code) == ("fail", ExitCode.SLO_FAILED)
    assert verdict.reason == "aborted at 3.0s: error_rate <= 0.01 failed (measured 0.2)"
    # In a reproduction a rate decides only over a window that closes (else it could never abort).
    closing = abort_slo({"metric": "error_rate", "max": 0.01, "window": {"from": 0, "to": 3}})
    records = with_abort(synthetic_records(seconds=3, failing={1}), aborted_event(closing, 0.2, 3.0))
    repro = unit_scenario([closing.model_dump(by_alias=True)], expect="reproduced")
    missed = decide_verdict(repro, RunData.from_records(records))
    assert (missed.word, missed.code) == ("not_reproduced", ExitCode.SLO_FAILED)
    assert missed.reason.startswith("aborted at 3.0s")


def test_a_reproduction_that_held_early_is_judged_as_usual_and_says_so() -> None:
    condition = abort_slo("crashes >= 1")
    early = aborted_event(condition, 1.0, 1.5, HELD)
    records = with_abort([*synthetic_records(seconds=3), crash(3.0)], early)
    repro = unit_scenario([condition.model_dump(by_alias=True)], expect="reproduced")
    verdict = decide_verdict(repro, RunData.from_records(records))
    assert (verdict.word, verdict.code) == ("reproduced", ExitCode.PASS)
    assert verdict.reason == "every reproduction condition held; stopped early at 1.5s: crashes >= 1 held" \
                             " (measured 1)"


def test_summary_junit_and_story_show_the_abort(tmp_path: Path) -> None:
    slo = abort_slo("error_rate <= 0.2")  # holds on the whole journal, failed when it aborted
    records = with_abort(synthetic_records(seconds=3, failing={1}), aborted_event(slo, 0.3, 1.0))
    write_journal(tmp_path / "journal.jsonl", records)
    verdict, summary = write_reports(tmp_path, unit_scenario([slo.model_dump(by_alias=True)]))
    assert verdict.code == ExitCode.SLO_FAILED
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["aborted"]["reason"] == "aborted at 1.0s: error_rate <= 0.2 failed (measured 0.3)"
    assert saved["aborted"]["slo"] == "error_rate <= 0.2" and saved["aborted"]["at_s"] == 1.0
    assert saved["slos"][0]["passed"] is True
    assert any("abort: error_rate <= 0.2 failed" in line for line in saved["story"])
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["aborted"] == saved["aborted"]["reason"]
    (case,) = suite.findall("testcase")
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "Aborted"
    assert "aborted at 1.0s" in (failure.text or "")
    assert suite.get("failures") == "1"
    plain = tmp_path / "plain"
    plain.mkdir()
    write_journal(plain / "journal.jsonl", synthetic_records(seconds=3))
    assert write_reports(plain, unit_scenario([slo.model_dump(by_alias=True)]))[1]["aborted"] is None


# --- series and soaks


def rep(index: int, aborted: dict[str, Any] | None = None) -> Repetition:
    passed = aborted is None
    slos = [{"passed": passed, "measured": 0.0 if passed else 0.2, "samples": 100, "ci": None}]
    return Repetition(index, f"runs/r{index}", "pass" if passed else "fail", 0 if passed else 1,
                      aborted["reason"] if aborted else "held", 1, slos, aborted)


ABORTED = {"reason": "aborted at 2.0s: error_rate <= 0.01 failed (measured 0.2)", "outcome": FAILED,
           "at_s": 2.0}


def test_a_series_stops_after_the_repetition_that_aborted(tmp_path: Path) -> None:
    scenario_ = unit_scenario([{"metric": "error_rate", "max": 0.01, "abort": True}])
    series = judge_series(scenario_, [rep(1), rep(2, ABORTED)], 3, "s")
    assert (series["verdict"], series["exit_code"]) == ("fail", ExitCode.SLO_FAILED)
    assert series["reason"] == ("repetition 2 aborted at 2.0s: error_rate <= 0.01 failed (measured 0.2); "
                                "the series stopped after 2 of 3 repetitions")
    assert series["aborted"]["repetition"] == 2 and series["repetitions"][1]["aborted"] == ABORTED

    path = tmp_path / "s.yaml"  # only copied into the series folder
    path.write_text("name: unit\n", encoding="utf-8")
    outcomes = iter([(rep(1), None), (rep(2, ABORTED), ABORTED), (rep(3), None)])
    made: list[Path] = []

    class FakeRun:
        def __init__(self, root: Path):
            self.run_dir = root / f"run-{len(made) + 1}"
            made.append(self.run_dir)

        def execute(self) -> tuple[Any, dict[str, Any]]:
            repetition, aborted = next(outcomes)
            summary = {"run_dir": str(self.run_dir), "verdict": repetition.verdict,
                       "exit_code": repetition.exit_code, "reason": repetition.reason,
                       "slos": repetition.slos, "aborted": aborted}
            verdict = type("V", (), {"word": repetition.verdict, "code": ExitCode(repetition.exit_code),
                                     "reason": repetition.reason})()
            return verdict, summary

    assert run_series(scenario_, path, tmp_path / "runs", FakeRun, 3) == ExitCode.SLO_FAILED
    assert len(made) == 2  # the third repetition never started
    (series_dir,) = (tmp_path / "runs").iterdir()
    saved = json.loads((series_dir / "series.json").read_text())
    assert saved["aborted"]["repetition"] == 2 and saved["completed"] == 2


def test_a_reproduction_that_held_early_does_not_stop_a_series() -> None:
    held = {**ABORTED, "outcome": HELD, "reason": "stopped early at 2.0s: crashes >= 1 held (measured 1)"}
    assert not rep(1, held).aborted_failed and rep(1, ABORTED).aborted_failed


SOAK = f"""
name: fake-soak-abort
stack: {{kind: fake, respawn_after: 0.2}}
load: {{user: fake_http, users: 2, duration: 2s}}
observe: {{metrics: false, canary: false}}
faults:
  - {{kind: process_kill, role: {ENTRY}, at: 0.5}}
slo:
  - {{metric: crashes, max: 0, abort: true}}
"""


@pytest.fixture
def soak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoakRun]:
    with in_process_soak(SOAK, tmp_path, monkeypatch) as run:
        yield run


def test_a_soak_cycle_whose_abort_slo_fails_ends_the_soak(soak: SoakRun) -> None:
    started = time.monotonic()
    verdict, summary = soak.execute()
    assert time.monotonic() - started < 10  # not the 6 s of three cycles plus ...: cycle 1 ended it
    assert (verdict.word, verdict.code) == ("fail", ExitCode.SLO_FAILED), verdict.reason
    assert verdict.reason.startswith("cycle 1 of 3: aborted at ") and "crashes <= 0 failed (measured 1)" \
        in verdict.reason
    (record,) = read_records(soak.run_dir)
    assert record["cycle"] == 1 and record["aborted"]["slo"] == "crashes <= 0"
    assert summary["aborted"]["cycle"] == 1 and summary["cycles_failed"] == [1]
    journal = soak.run_dir / "cycles" / "0001" / "journal.jsonl"
    assert len(events(journal, ABORT_EVENT)) == 1
    suite = ET.parse(soak.run_dir / "junit.xml").getroot()
    case = suite.find("testcase")
    assert case is not None and case.find("failure") is not None  # cut short, but judged: it failed
    stack = soak.stack
    assert isinstance(stack, FakeStack) and stack.leftovers() == []


# --- whole runs on the fake stack


KILL = f"  - {{kind: process_kill, role: {ENTRY}, at: 0.5}}"  # restart policy `never`: errors from then on


def load_span(outcome: Outcome) -> float:
    started = outcome.events("load_started")[0]["t"]
    return float(outcome.events("load_stopped")[0]["t"] - started)


def test_a_run_whose_abort_slo_fails_stops_early_restores_and_says_why(
        execute: Callable[..., Outcome], tmp_path: Path) -> None:  # noqa: F811 - the imported fixture
    marker = tmp_path / "marker"
    slo = "[{metric: error_rate, max: 0.05, abort: true}]"
    outcome = execute(scenario(marker, name="fake-abort", duration="20s", faults=KILL, slo=slo))
    assert (outcome.verdict.word, outcome.verdict.code) == ("fail", ExitCode.SLO_FAILED)
    reason = outcome.verdict.reason
    assert reason.startswith("aborted at ") and "error_rate <= 0.05 failed" in reason
    (aborted,) = outcome.events(ABORT_EVENT)
    assert aborted["measured"] > 0.05 and aborted["at_s"] < 5 and aborted["threshold"] == 0.05
    assert load_span(outcome) < 6  # of the 20 s planned
    assert outcome.seconds < 15
    # The held fault: restored by the usual teardown, its restore recorded (the kill has no undo).
    assert outcome.events("fault_injected", id="f0.0") and not marker.exists()
    (restored,) = outcome.events("fault_restored", id="f0.0")
    assert restored["error"] is None and restored["t"] < outcome.events("run_ended")[0]["t"]
    assert ("restored", "f0.0") in [(r["op"], r.get("id")) for r in read_restore(outcome.dir)]
    outcome.assert_nothing_left()
    assert outcome.summary["aborted"]["reason"] == outcome.verdict.reason
    saved = json.loads((outcome.dir / "summary.json").read_text())
    assert saved["aborted"]["slo"] == "error_rate <= 0.05"
    suite = ET.parse(outcome.dir / "junit.xml").getroot()
    assert {p.get("name"): p.get("value") for p in suite.iter("property")}["aborted"] == reason
    assert "aborted at" in ET.tostring(suite, encoding="unicode")


def test_the_same_slo_without_abort_never_stops_the_run(
        execute: Callable[..., Outcome]) -> None:  # noqa: F811 - the imported fixture
    outcome = execute(scenario(None, name="fake-no-abort", duration="3s", faults=KILL,
                               slo="[{metric: error_rate, max: 0.05}]"))
    assert outcome.verdict.word == "fail" and "aborted" not in outcome.verdict.reason
    assert not outcome.events(ABORT_EVENT) and outcome.summary["aborted"] is None
    assert load_span(outcome) >= 2.9  # the whole 3 s
    outcome.assert_nothing_left()


def test_a_reproduction_stops_once_its_abort_condition_holds(
        execute: Callable[..., Outcome]) -> None:  # noqa: F811 - the imported fixture
    text = scenario(None, name="fake-repro", duration="20s", faults=KILL,
                    slo="[{metric: crashes, min: 1, abort: true}, {metric: requests, min: 1}]")
    outcome = execute(text + "expect: reproduced\n")
    reason = outcome.verdict.reason
    assert (outcome.verdict.word, outcome.verdict.code) == ("reproduced", ExitCode.PASS), reason
    assert "stopped early at" in reason and "crashes >= 1 held (measured 1)" in reason
    assert outcome.summary["aborted"]["outcome"] == HELD
    assert load_span(outcome) < 6  # the failure showed at 0.5 s: no need for the other 19
    outcome.assert_nothing_left()
