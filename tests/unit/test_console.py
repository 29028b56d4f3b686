"""The live view (harness.progress), the per-SLO table (harness.console) and journal listeners."""

import io
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness.console import make_console, print_slo_table, slo_table, slo_table_text
from harness.journal import Journal, read_journal
from harness.progress import Progress

LOAD_T = 10.0  # `load_started` on the run clock: the view's times count from here


def event(name: str, t: float, /, **fields: Any) -> tuple[str, dict[str, Any]]:
    return name, {"type": "event", "event": name, "t": LOAD_T + t, **fields}


KILL = {"id": "f0", "kind": "process_kill", "name": "kill server"}
FREEZE = {"id": "f1", "kind": "process_freeze"}
EVENTS = [
    event("load_started", 0.0, user="fake"),
    event("fault_scheduled", 0.0, **KILL, at=5.0),
    event("fault_scheduled", 0.0, **FREEZE, at=20.0),
    event("fault_injected", 5.0, **KILL, plan={}),
    event("process_exited", 5.1, role="server", pid=4242, loss="entry", exit_code=-9, planned=False,
          signal="SIGKILL", ended="killed by SIGKILL"),
    event("process_exited", 5.2, role="stub", pid=4243, loss="replica", planned=False, consequence=True,
          ended="killed by SIGKILL"),
    event("restarting", 5.2, attempt=1, backoff_s=0.5),
    event("stack_stopped", 5.8, report={}, restart=True),
    event("stack_ready", 7.0, startup_s=1.2, restart=True),
    event("restarted", 7.0, attempt=1, startup_s=1.3),
    event("recovered", 7.3, after="exited", how="health", downtime_s=2.2),
    event("fault_restored", 15.0, id="f0", kind="process_kill", error=None),
    event("fault_injected", 20.0, **FREEZE, plan={}),
    event("hang_detected", 20.6, role="server", pid=4300, process_status="stopped", probe="timed out"),
    event("canary_failed", 20.7, status=0, detail="timed out after 2s", latency_s=2.0),
]
LATE = event("fault_restored", 31.0, id="f1", kind="process_freeze", error=None)


def feed(progress: Progress) -> None:
    """The events, with a second's figures before, in the middle and after them."""
    progress.update(1.0, 950, 0, 12.3, 10)
    for name, record in EVENTS[:8]:
        progress.on_event(name, record)
    progress.update(7.0, 400, 312, 480.5, 10)
    for name, record in EVENTS[8:]:
        progress.on_event(name, record)
    progress.update(21.0, 0, 120, None, 10)
    progress.finish()
    progress.on_event(*LATE)  # a fault the teardown restores: after the view ended


def terminal(width: int = 100, color: bool = False) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, force_interactive=True, width=width,
                      color_system="standard" if color else None, _environ={})
    return console, out


# --- not a terminal: plain lines, for CI logs


def test_plain_output_has_a_line_per_fault_crash_and_restart_and_the_figures() -> None:
    out = io.StringIO()
    progress = Progress(60.0, out=out, every_s=0.0)
    assert not progress.tty
    feed(progress)
    assert out.getvalue().splitlines() == [
        "    1s / 1m00s      950 req/s  errors 0      p99   12.3ms  users 10",
        "    5s  fault injected: kill server (process_kill)",
        "  5.1s  crash: server pid 4242 killed by SIGKILL",  # the replica that went down with it: no line
        "  5.2s  restarting the stack (attempt 1, after 500ms)",  # its stop and start: no line of their own
        "    7s / 1m00s      400 req/s  errors 312    p99  480.5ms  users 10",
        "    7s  restarted (attempt 1, ready in 1.3s)",
        "  7.3s  recovered from exited in 2.2s (health)",
        "   15s  fault restored: kill server (process_kill), held 10s",
        "   20s  fault injected: process_freeze",
        " 20.6s  hang: server pid 4300 is alive, health fails (timed out)",
        " 20.7s  canary failing: timed out after 2s",
        "   21s / 1m00s        0 req/s  errors 120    p99        -  users 10",
        "   31s  fault restored: process_freeze, held 11s",
    ]


def test_plain_figures_come_every_few_seconds_not_every_second() -> None:
    out = io.StringIO()
    progress = Progress(60.0, out=out, every_s=3600.0)
    for second in range(5):
        progress.update(float(second), 100, 0, 5.0, 2)
    assert len(out.getvalue().splitlines()) == 1


def test_a_planned_restart_and_faults_that_failed() -> None:
    out = io.StringIO()
    progress = Progress(60.0, out=out)
    restart = {"id": "f0", "kind": "stack_restart"}
    for name, record in [
        event("load_started", 0.0),
        event("fault_injected", 1.0, **restart),
        event("stack_stopped", 1.2, report={}, restart=True),
        event("process_exited", 1.2, role="server", pid=1, loss="entry", planned=True),
        event("stack_ready", 2.5, startup_s=1.3, restart=True),
        event("fault_restored", 2.5, **restart, error=None),
        event("fault_failed", 3.0, id="f1", kind="process_kill", error="no such role: x"),
        event("fault_restored", 4.0, id="f9", kind="collector", error="OSError('gone')"),
    ]:
        progress.on_event(name, record)
    assert out.getvalue().splitlines() == [
        "    1s  fault injected: stack_restart",
        "  1.2s  stack stopped for a restart",  # planned: its processes' exits are no crash
        "  2.5s  stack ready again in 1.3s",
        "  2.5s  fault restored: stack_restart, held 1.5s",
        "    3s  fault FAILED: process_kill: no such role: x",
        "    4s  fault restore FAILED: collector: OSError('gone')",
    ]


def test_the_stream_is_sys_stdout_when_the_view_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    early, late = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", early)
    progress = Progress(60.0, every_s=0.0)
    monkeypatch.setattr(sys, "stdout", late)  # what was there when it was made counts
    progress.update(1.0, 10, 0, None, 1)
    assert "req/s" in early.getvalue() and late.getvalue() == ""
    monkeypatch.setattr(sys, "stdout", early)
    assert make_console().file is early


def test_a_broken_stream_does_not_break_the_run() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("the reader went away")

    progress = Progress(60.0, out=Broken(), every_s=0.0)
    progress.update(1.0, 10, 0, None, 1)
    progress.on_event(*event("fault_injected", 1.0, **KILL))
    progress.finish()


# --- a terminal: the rich live view


def test_the_live_view_shows_figures_faults_recovery_and_events() -> None:
    console, out = terminal()
    progress = Progress(60.0, console=console)
    assert progress.tty
    feed(progress)
    text = out.getvalue()
    last = text[text.rindex("   21s / 1m00s"):]  # the final frame, left on screen
    assert "stack hang" in last
    assert "kill server (process_kill)" in last and "restored at 15s" in last
    assert "2.3s" in last  # injected at 5 s, recovered at 7.3 s
    assert "hung, not recovered yet" in last
    assert "7.3s  recovered from exited in 2.2s (health)" in last
    assert "20.7s  canary failing: timed out after 2s" in last
    assert "5.1s  crash: server pid 4242 killed by SIGKILL" in text  # in the frames before
    assert "fault injected" not in last  # the table tells the faults; the event lines the rest
    assert "\x1b[?25h" in text  # the cursor is shown again
    assert text.rstrip().endswith("31s  fault restored: process_freeze, held 11s")  # after the view


def test_the_live_view_keeps_the_latest_faults_of_a_long_soak() -> None:
    console, out = terminal()
    progress = Progress(3600.0, console=console)
    progress.on_event(*event("load_started", 0.0))
    for i in range(20):
        fault = {"id": f"c{i + 1}.0", "kind": "process_kill"}
        progress.on_event(*event("fault_injected", 10.0 * i, **fault))
        progress.on_event(*event("fault_restored", 10.0 * i + 2, **fault, error=None))
    progress.update(200.0, 10, 0, None, 1)
    progress.finish()
    last = out.getvalue()[out.getvalue().rindex("3m20s / 1h00m"):]
    assert "12 earlier fault(s) not shown" in last
    assert "restored at 3m12s" in last and "restored at 1m52s" not in last


def test_a_replica_loss_recovers_when_the_replicas_are_back() -> None:
    console, out = terminal()
    progress = Progress(60.0, console=console)
    progress.on_event(*event("load_started", 0.0))
    progress.on_event(*event("fault_injected", 2.0, id="f0", kind="process_kill", name="kill a stub"))
    progress.on_event(*event("process_exited", 2.1, role="stub", pid=7, loss="replica", planned=False))
    progress.on_event(*event("replicas_restored", 4.5, role="stub", live=2, expected=2, lost=1, after_s=2.4))
    progress.update(5.0, 10, 0, None, 1)
    progress.finish()
    last = out.getvalue()[out.getvalue().rindex("    5s / 1m00s"):]
    assert "stack up" in last  # a lost replica is not the stack's failure
    assert "2.5s" in last and "replicas back: stub 2/2 after 2.4s" in last


# --- the per-SLO table

SLOS = [
    {"name": "error_rate <= 0.01", "metric": "error_rate", "op": "<=", "threshold": 0.01, "measured": 0.0021,
     "passed": True, "samples": 12000, "window": "all", "detail": "", "ci": [0.0013, 0.0032],
     "confidence": 0.95, "ci_method": "wilson", "marginal": False},
    {"name": "p99_ms < 500", "metric": "p99_ms", "op": "<", "threshold": 500.0, "measured": 512.25,
     "passed": False, "samples": 900, "window": "all", "detail": "", "ci": [488.1, 540.7],
     "confidence": 0.95, "ci_method": "order statistics", "marginal": True},
    {"name": "recovery_s <= 10", "metric": "recovery_s", "op": "<=", "threshold": 10.0, "measured": 2.2,
     "passed": True, "samples": 1, "window": "all", "detail": "", "ci": [None, 9.5], "confidence": 0.9,
     "ci_method": "", "marginal": True},
    {"name": "crashes <= 0 outside faults", "metric": "crashes", "op": "<=", "threshold": 0.0,
     "measured": None, "passed": False, "samples": 0, "window": "outside_faults",
     "detail": "no data in the window: nothing was measured", "ci": None, "confidence": None,
     "ci_method": "", "marginal": False},
]


def test_the_plain_table_is_aligned_text() -> None:
    assert slo_table_text(SLOS).splitlines() == [
        "SLO                          measured  threshold  interval              samples  result",
        "---------------------------  --------  ---------  --------------------  -------  -----------------",
        "error_rate <= 0.01             0.0021  <= 0.01    [0.0013, 0.0032] 95%    12000  held",
        "p99_ms < 500                    512.2  < 500      [488.1, 540.7] 95%        900  FAILED (marginal)",
        "recovery_s <= 10                  2.2  <= 10      [?, 9.5] 90%                1  held (marginal)",
        "crashes <= 0 outside faults   no data  <= 0       -                           0  FAILED (no data)",
        "4 SLO(s): 2 held, 2 failed (2 marginal)",
    ]


def test_print_slo_table_writes_plain_text_when_not_a_terminal() -> None:
    out = io.StringIO()
    print_slo_table(SLOS, out)
    assert out.getvalue() == slo_table_text(SLOS) and "\x1b" not in out.getvalue()
    empty = io.StringIO()
    print_slo_table([], empty)
    assert empty.getvalue() == ""


def test_print_slo_table_takes_slo_results_too() -> None:
    from harness.slo import SloResult

    result = SloResult("requests >= 20", "requests", ">=", 20.0, 135.0, True, 135, "all")
    out = io.StringIO()
    print_slo_table([result], out)
    assert "requests >= 20" in out.getvalue() and "held" in out.getvalue()


def test_the_terminal_table_renders_with_rich() -> None:
    console, out = terminal(width=120)
    print_slo_table(SLOS, console=console)
    lines = out.getvalue().splitlines()
    assert lines[0].strip() == "SLOs"
    assert lines[1].split() == ["SLO", "measured", "threshold", "interval", "samples", "result"]
    rows = {line.split("  ")[0].strip(): line for line in lines[3:7]}
    assert list(rows) == ["error_rate <= 0.01", "p99_ms < 500", "recovery_s <= 10",
                          "crashes <= 0 outside faults"]
    assert rows["error_rate <= 0.01"].rstrip().endswith("held")
    assert "[488.1, 540.7] 95%" in rows["p99_ms < 500"] and "FAILED (marginal)" in rows["p99_ms < 500"]
    assert "no data" in rows["crashes <= 0 outside faults"]
    assert "4 SLO(s): 2 held, 2 failed (2 marginal)" in out.getvalue()


def test_the_terminal_table_colours_each_result() -> None:
    console, out = terminal(width=120, color=True)
    console.print(slo_table(SLOS))
    text = out.getvalue()
    assert "\x1b[32mheld" in text  # green
    assert "\x1b[1;31mFAILED (no data)" in text  # bold red
    assert "\x1b[33mheld (marginal)" in text  # yellow


# --- journal listeners


def test_a_listener_that_raises_does_not_break_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    heard: list[tuple[str, dict[str, Any]]] = []
    calls = []

    def broken(name: str, record: dict[str, Any]) -> None:
        calls.append(name)
        record["t"] = -1.0  # a listener gets a copy: this changes nothing
        raise RuntimeError("a display bug")

    journal.add_listener(broken)
    journal.add_listener(lambda name, record: heard.append((name, record)))
    first = journal.event("fault_injected", id="f0", kind="process_kill")
    second = journal.event("fault_restored", id="f0", kind="process_kill", error=None)
    journal.close()
    assert calls == ["fault_injected"]  # dropped after it failed
    assert [name for name, _ in heard] == ["fault_injected", "fault_restored"]
    assert first["t"] >= 0 and heard[0][1]["id"] == "f0" and heard[1][1] == second
    written = [r["event"] for r in read_journal(tmp_path / "journal.jsonl")]
    assert written == ["fault_injected", "fault_restored"]


def test_a_closed_journal_has_no_listeners(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    heard: list[str] = []
    journal.add_listener(lambda name, record: heard.append(name))
    journal.close()
    journal.event("run_ended")  # nothing is written after close, and nothing heard
    journal.remove_listener(print)  # not there: no error
    assert heard == []
