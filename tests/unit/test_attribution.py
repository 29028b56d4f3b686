"""Log lines that report a signal: the harness's own (its SIGTERM at the stop) are no finding.

Triton logs `Signal (15) received.` when the harness stops it; that line must not read as the
server having been signalled, nor count in `log.signal_any`. A `Signal (11)` the harness did not
send is still a finding and still counts.
"""

import sys
from pathlib import Path
from typing import Any

from harness.analysis import RunData, measure, signal_lines
from harness.logpatterns import (
    ATTRIBUTION_WINDOW_S,
    DEFAULT_LOG_PATTERNS,
    HarnessSignals,
    signal_name,
    signal_number,
)
from harness.observers.logwatch import LogWatcher
from harness.procs import ManagedProcess, SentSignal, listen_for_signals, note_signal
from harness.scenario import Scenario
from harness.slo import evaluate_all
from reports.story import story
from reports.summary import findings
from tests.unit.helpers import synthetic_records
from tests.unit.observer_helpers import context, records

STOP_T = 13.0  # synthetic_records: load 2..12 s, stack_stopped at 13 s
TERM_LINE = "Signal (15) received."
SEGV_LINE = "Signal (11) received."


def observer_summary(t: float, **counts: int) -> dict[str, Any]:
    """The log watcher's `observer_stopped`, with counts per pattern."""
    patterns = {name: {"count": counts.get(name, 0)} for name in DEFAULT_LOG_PATTERNS}
    return {"type": "event", "event": "observer_stopped", "t": t, "observer": "logwatch",
            "summary": {"patterns": patterns}}


def match(t: float, pattern: str, line: str, number: int, **fields: Any) -> dict[str, Any]:
    return {"type": "event", "event": "log_match", "t": t, "pattern": pattern, "role": "server",
            "line": line, "signal": number, **fields}


def sent(t: float, number: int = 15) -> dict[str, Any]:
    return {"type": "event", "event": "signal_sent", "t": t, "signal": signal_name(number), "number": number,
            "pid": 4242, "process": "tritonserver"}


def run_data(*extra: dict[str, Any]) -> RunData:
    return RunData.from_records(synthetic_records() + list(extra))


def slo_holds(data: RunData, slo: str) -> bool:
    scenario = Scenario.model_validate({
        "name": "unit", "stack": {"kind": "external", "url": "http://127.0.0.1:1", "model": "m"},
        "load": {"user": "triton_http", "duration": 10}, "slo": [slo],
    })
    (result,) = evaluate_all(scenario.slo, data)
    return result.passed


def test_the_stops_sigterm_is_not_a_finding_and_does_not_count() -> None:
    data = run_data(sent(STOP_T - 0.5), match(STOP_T - 0.4, "signal_any", TERM_LINE, 15),
                    observer_summary(STOP_T + 0.5, signal_any=1))
    assert measure(data, "log.signal_any").value == 0
    assert slo_holds(data, "log.signal_any <= 0")
    assert not any("Signal (15)" in line for line in story(data))
    assert not any("Signal (15)" in line or "SIGTERM" in line for line in findings(data))
    assert [by_harness for _, by_harness in signal_lines(data)] == [True]  # the raw line is kept


def test_a_sigsegv_the_harness_did_not_send_counts_once_per_line() -> None:
    data = run_data(match(7.0, "signal_11", SEGV_LINE, 11), match(7.0, "signal_any", SEGV_LINE, 11),
                    sent(STOP_T - 0.5), match(STOP_T - 0.4, "signal_any", TERM_LINE, 15, nth=2),
                    observer_summary(STOP_T + 0.5, signal_11=1, signal_any=2))
    assert measure(data, "log.signal_11").value == 1
    assert measure(data, "log.signal_any").value == 1  # the SIGSEGV; the stop's SIGTERM is the harness's
    assert not slo_holds(data, "log.signal_any <= 0")
    found = [line for line in findings(data) if "SIGSEGV" in line]
    # Two patterns matched the one line: one finding.
    assert len(found) == 1 and "the server log" in found[0] and SEGV_LINE in found[0]
    told = "\n".join(story(data))
    assert SEGV_LINE in told and TERM_LINE not in told


def test_a_harness_signal_explains_one_line_of_its_own_number_only() -> None:
    data = run_data(sent(5.0), match(5.1, "signal_any", TERM_LINE, 15),
                    match(5.2, "signal_any", TERM_LINE, 15, nth=2),  # a second SIGTERM: not the harness's
                    match(5.3, "signal_any", SEGV_LINE, 11, nth=3),  # another number: not explained
                    match(5.0 + ATTRIBUTION_WINDOW_S + 1, "signal_any", TERM_LINE, 15, nth=4),
                    observer_summary(STOP_T + 0.5, signal_any=4))
    assert [by for _, by in signal_lines(data)] == [True, False, False, False]
    assert measure(data, "log.signal_any").value == 3


def test_the_watchers_attribution_is_what_the_journal_says() -> None:
    """A journaled `attribution` wins over the rule, in both directions (the watcher saw the order)."""
    data = run_data(sent(5.0), match(5.1, "signal_any", TERM_LINE, 15, attribution="unattributed"),
                    match(9.0, "signal_any", TERM_LINE, 15, nth=2, attribution="harness"),
                    observer_summary(STOP_T + 0.5, signal_any=2))
    assert [by for _, by in signal_lines(data)] == [False, True]
    assert measure(data, "log.signal_any").value == 1


def test_a_journal_without_the_watchers_summary_counts_from_its_series() -> None:
    """A killed harness writes no `observer_stopped`: the last series sample is the count."""
    series = {"type": "series", "name": "log_matches", "t": STOP_T, "values": {"signal_any": 1.0}}
    data = run_data(sent(STOP_T - 0.5), match(STOP_T - 0.4, "signal_any", TERM_LINE, 15), series)
    assert measure(data, "log.signal_any").value == 0


def test_harness_signals_rule() -> None:
    signals = HarnessSignals()
    signals.sent(10.0, 15)
    assert signals.explain("signal_any", 11, 10.1) is None
    assert signals.explain("signal_any", 15, 5.0) is None  # long before it was sent
    assert signals.explain("signal_any", 15, 10.2) == 10.0
    assert signals.explain("signal_any", 15, 10.3) is None  # used up for this pattern
    assert signals.explain("signal_term", 15, 10.3) == 10.0  # the same line, another pattern
    signals.sent(20.0, 15)
    assert signals.explain("signal_any", 15, 20.0 + ATTRIBUTION_WINDOW_S + 0.1) is None
    assert [signal_number(v) for v in ("15", "SIGTERM", "term", "segv", "", None, "x")] == \
        [15, 15, 15, 11, None, None, None]


def test_the_watcher_journals_what_the_harness_sent_and_attributes_the_line(tmp_path: Path) -> None:
    """End to end on this host: a real SIGTERM through ManagedProcess.stop, then the log's line."""
    log = tmp_path / "server.log"
    log.write_text("")
    ctx = context(tmp_path)
    watcher = LogWatcher(DEFAULT_LOG_PATTERNS, files={"server": log})
    watcher.attach(ctx)
    child = ManagedProcess([sys.executable, "-c", "import time; time.sleep(30)"], {}, tmp_path / "child.log",
                           tmp_path)
    stopped = child.stop(timeout=5.0)
    assert stopped.exit_code == -15
    with log.open("a") as handle:  # what Triton writes when it gets the stop's SIGTERM
        handle.write(f"{TERM_LINE}\n")
    watcher.poll()
    note_signal(SentSignal(9, 1, "other"))  # the watcher stays subscribed until stop()
    summary = watcher.stop()
    note_signal(SentSignal(9, 1, "after"))  # unsubscribed: not journaled
    recs = records(ctx)
    signals = [r for r in recs if r.get("event") == "signal_sent"]
    assert [(r["signal"], r["pid"]) for r in signals] == [("SIGTERM", child.pid), ("SIGKILL", 1)]
    (line,) = [r for r in recs if r.get("event") == "log_match"]
    assert line["pattern"] == "signal_any" and line["signal"] == 15 and line["nth"] == 1
    assert line["attribution"] == "harness" and line["sent_t"] == signals[0]["t"]
    stats = summary["patterns"]["signal_any"]
    assert stats["count"] == 1 and stats["harness"] == 1 and stats["first_line"] == TERM_LINE
    data = RunData.from_records(recs)
    assert measure(data, "log.signal_any").value == 0


def test_a_listener_that_fails_does_not_stop_the_signal() -> None:
    heard: list[SentSignal] = []

    def broken(_: SentSignal) -> None:
        raise RuntimeError("listener bug")

    unsubscribe_broken = listen_for_signals(broken)
    unsubscribe = listen_for_signals(heard.append)
    try:
        note_signal(SentSignal(15, 7, "p"))
    finally:
        unsubscribe_broken()
        unsubscribe()
    note_signal(SentSignal(15, 8, "p"))
    assert heard == [SentSignal(15, 7, "p")]
