"""Live progress of the load: each second's figures, the faults as they fire and recover, and the
notable events (a crash, a hang, a restart, the canary failing).

On a terminal, a rich Live view redrawn in place: the figures line, a table of the faults, the
last few events. Otherwise plain lines for CI logs: the figures every few seconds, and a line per
fault injected or restored and per crash, hang or restart as it happens.

The view hears events as the journal writes them (`Journal.add_listener(progress.on_event)`), so
it shows nothing the journal does not say. Its recovery times are a live reading (the failure
after the latest injected fault, the supervisor's next `recovered`); the report's fault impact
(harness.faultimpact), computed from the whole journal, is the figure that counts.
"""

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harness.console import is_live, make_console
from harness.durations import format_duration

MAX_FAULT_ROWS = 8  # a soak schedules faults every cycle: the view keeps the live and latest ones
MAX_EVENT_LINES = 6
KEEP_FAULTS = 256  # what a long soak keeps of its finished faults (only the latest are shown)
MIN_REDRAW_S = 0.1  # a burst of events (a process tree dying) redraws at most this often
DETAIL_CHARS = 100
# The supervisor's failures, as harness.faultimpact counts them; stack-level unless a replica or a
# dependency process was lost.
FAILURES = ("process_exited", "hang_detected", "not_serving", "degraded")
DONE = ("restored", "restore failed", "failed")


@dataclass
class FaultRow:
    """One firing of a fault, as far as the journal has told it."""

    id: str
    label: str
    kind: str
    at: float | None = None  # when it is scheduled, on the load's clock
    injected: float | None = None
    restored: float | None = None
    status: str = "scheduled"  # scheduled, held, restored, restore failed, failed
    error: str = ""
    failure: str = ""  # the first failure seen after it was injected (before the next fault)
    stack_level: bool = True  # that failure was the stack's, not a replica's or a dependency's
    recovery_s: float | None = None  # from injection to the recovery of that failure

    @property
    def done(self) -> bool:
        return self.status in DONE


@dataclass(frozen=True)
class Heard:
    """A notable event: when (load clock), which, and the line that tells it."""

    t: float
    event: str
    text: str


class Timeline:
    """The run as its journal events tell it, on the load's clock (0 = `load_started`)."""

    def __init__(self) -> None:
        self.origin: float | None = None  # `load_started` on the run clock
        self.faults: dict[str, FaultRow] = {}
        self.faults_seen = 0
        self.latest: FaultRow | None = None  # the fault injected last: failures are its
        self.events: deque[Heard] = deque(maxlen=MAX_EVENT_LINES)
        self.state = "up"  # as the supervisor journals it
        self.supervisor_restarting = False  # between `restarting` and `restarted`
        self.changes = 0  # counts what changed the view, so a redraw is skipped when nothing did

    def hear(self, name: str, record: dict[str, Any]) -> Heard | None:
        """Take in one journal event; returns its line when it is a notable one."""
        if name == "load_started" and self.origin is None:
            self.origin = float(record.get("t", 0.0))
        t = float(record.get("t", 0.0)) - (self.origin or 0.0)
        row = self._track(name, record, t)
        describe = _DESCRIBE.get(name)
        text = describe(record, row) if describe is not None else None
        if name in ("stack_stopped", "stack_ready") and self.supervisor_restarting:
            text = None  # the supervisor's restart: its `restarting` and `restarted` tell it
        if name in ("restarting", "restarted", "restart_failed"):
            self.supervisor_restarting = name == "restarting"
        if text is None:
            return None
        heard = Heard(t, name, text)
        if not name.startswith("fault_"):  # the live view's fault table already tells those
            self.events.append(heard)
            self.changes += 1
        return heard

    def shown_faults(self, limit: int = MAX_FAULT_ROWS) -> tuple[list[FaultRow], int]:
        """The rows to show, the earliest finished ones left out first; and how many were left out."""
        rows = list(self.faults.values())
        while len(rows) > limit:
            finished = next((row for row in rows if row.done), None)
            rows.remove(finished if finished is not None else rows[-1])
        return rows, self.faults_seen - len(rows)

    def _track(self, name: str, record: dict[str, Any], t: float) -> FaultRow | None:
        """The fault rows and the stack's state; returns the row a fault event is about."""
        if name.startswith("fault_") and "id" in record:
            return self._track_fault(name, record, t)
        if name in FAILURES and not record.get("planned") and not record.get("consequence"):
            self._on_failure(name, record)
        elif name == "recovered":
            self._on_recovery(t, stack_level=True)
            self.state = "up"
        elif name == "replicas_restored":
            self._on_recovery(t, stack_level=False)
        elif name == "restarting" or (name == "stack_stopped" and record.get("restart")):
            self.state = "restarting"
        elif name == "stack_ready" and record.get("restart") and self.state == "restarting":
            self.state = "up"  # a planned restart (an unplanned one ends with `recovered`)
        else:
            return None
        self.changes += 1
        return None

    def _track_fault(self, name: str, record: dict[str, Any], t: float) -> FaultRow | None:
        row = self._row(record)
        if name == "fault_scheduled":
            row.at = float(record.get("at", 0.0))
        elif name == "fault_injected":
            row.injected, row.status = t, "held"
            self.latest = row
        elif name == "fault_restored":
            row.restored = t
            error = record.get("error")
            if error is not None:
                row.status, row.error = "restore failed", str(error)
            elif row.status != "failed":  # an injection that failed is restored too: it stays failed
                row.status = "restored"
            self._forget_old_faults()
        elif name == "fault_failed":
            row.status, row.error = "failed", str(record.get("error", ""))
        else:
            return row
        self.changes += 1
        return row

    def _row(self, record: dict[str, Any]) -> FaultRow:
        fault_id = str(record["id"])
        row = self.faults.get(fault_id)
        if row is None:
            kind = str(record.get("kind", "?"))
            row = FaultRow(fault_id, str(record.get("name") or kind), kind)
            self.faults[fault_id] = row
            self.faults_seen += 1
        elif record.get("name"):
            row.label = str(record["name"])
        return row

    def _forget_old_faults(self) -> None:
        finished = [key for key, row in self.faults.items() if row.done]
        for key in finished[: max(0, len(self.faults) - KEEP_FAULTS)]:
            del self.faults[key]

    def _on_failure(self, name: str, record: dict[str, Any]) -> None:
        stack_level = name != "process_exited" or record.get("loss") == "entry"
        if stack_level:
            self.state = {"process_exited": "exited", "hang_detected": "hang",
                          "not_serving": "not serving"}.get(name, name)
        row = self.latest
        if row is None:
            return
        if not row.failure:  # named as the recovery cell says it: a lost replica is not a crash
            row.failure = name if stack_level else str(record.get("loss", "replica"))
            row.stack_level = stack_level
        row.recovery_s = None  # a relapse: the recovery is the one after this failure

    def _on_recovery(self, t: float, stack_level: bool) -> None:
        row = self.latest
        if row is None or not row.failure or row.recovery_s is not None or row.injected is None:
            return
        if row.stack_level == stack_level:
            row.recovery_s = max(0.0, t - row.injected)


# --- what each notable event says, in one line (plain output and the live view's event list)

Describe = Callable[[dict[str, Any], FaultRow | None], str | None]


def _short(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 3] + "..."


def _seconds(value: Any) -> str:
    return "?" if value is None else format_duration(float(value))


def _fault_name(record: dict[str, Any], row: FaultRow | None) -> str:
    label = row.label if row is not None else str(record.get("name") or record.get("kind", "?"))
    kind = str(record.get("kind", ""))
    return label if not kind or kind == label else f"{label} ({kind})"


def _fault_restored(record: dict[str, Any], row: FaultRow | None) -> str:
    name = _fault_name(record, row)
    if record.get("error") is not None:
        return f"fault restore FAILED: {name}: {_short(record['error'])}"
    if row is not None and row.injected is not None and row.restored is not None:
        return f"fault restored: {name}, held {_seconds(row.restored - row.injected)}"
    return f"fault restored: {name}"


def _process_exited(record: dict[str, Any], row: FaultRow | None) -> str | None:
    if record.get("planned") or record.get("consequence"):
        return None  # a planned restart, or a replica that went down with its entry process
    what = {"entry": "crash", "replica": "replica lost", "dependency": "dependency lost"}.get(
        str(record.get("loss")), "process lost")
    role, pid, ended = record.get("role", "?"), record.get("pid", "?"), record.get("ended", "")
    return f"{what}: {role} pid {pid} {ended}".rstrip()


def _recovered(record: dict[str, Any], row: FaultRow | None) -> str:
    after = str(record.get("after", "a failure")).replace("_", " ")
    return f"recovered from {after} in {_seconds(record.get('downtime_s'))} ({record.get('how', '?')})"


def _stack_ready(record: dict[str, Any], row: FaultRow | None) -> str:
    again = " again" if record.get("restart") else ""
    return f"stack ready{again} in {_seconds(record.get('startup_s'))}"


_DESCRIBE: dict[str, Describe] = {
    "fault_injected": lambda r, row: f"fault injected: {_fault_name(r, row)}",
    "fault_restored": _fault_restored,
    "fault_failed": lambda r, row: f"fault FAILED: {_fault_name(r, row)}: {_short(r.get('error', ''))}",
    "process_exited": _process_exited,
    "hang_detected": lambda r, row: (f"hang: {r.get('role', '?')} pid {r.get('pid', '?')} is alive, "
                                     f"health fails ({_short(r.get('probe', ''))})"),
    "liveness_kill": lambda r, row: (f"liveness kill: {r.get('role', '?')} pid {r.get('pid', '?')} "
                                     f"hung for {_seconds(r.get('after_s'))}"),
    "not_serving": lambda r, row: (f"not serving: health says ready, the canary fails "
                                   f"({_short(r.get('detail') or r.get('status', ''))})"),
    "canary_failed": lambda r, row: f"canary failing: {_short(r.get('detail') or r.get('status', ''))}",
    "canary_ok": lambda r, row: f"canary ok again after {r.get('after_failures', '?')} failure(s)",
    "canary_slow": lambda r, row: (f"canary slow: {_seconds(r.get('latency_s'))} "
                                   f"(slow above {_seconds(r.get('slow_s'))})"),
    "degraded": lambda r, row: f"degraded: error rate {float(r.get('error_rate', 0.0)):.1%}",
    "recovered": _recovered,
    "replicas_restored": lambda r, row: (f"replicas back: {r.get('role', '?')} {r.get('live', '?')}/"
                                         f"{r.get('expected', '?')} after {_seconds(r.get('after_s'))}"),
    "restarting": lambda r, row: (f"restarting the stack (attempt {r.get('attempt', '?')}, "
                                  f"after {_seconds(r.get('backoff_s'))})"),
    "restarted": lambda r, row: (f"restarted (attempt {r.get('attempt', '?')}, "
                                 f"ready in {_seconds(r.get('startup_s'))})"),
    "restart_failed": lambda r, row: (f"restart FAILED (attempt {r.get('attempt', '?')}): "
                                      f"{_short(r.get('error'))}"),
    "stack_stopped": lambda r, row: "stack stopped for a restart" if r.get("restart") else None,
    "stack_ready": _stack_ready,
    "internal_error": lambda r, row: f"internal error: {_short(r.get('error', ''))}",
    "interrupted": lambda r, row: f"interrupted by {r.get('signal') or 'a signal'}",
    # An SLO with `abort: true` (harness.abort) ended the load early.
    "run_aborted": lambda r, row: ("stopping early: every abort condition held" if r.get("outcome") == "held"
                                   else f"aborting: {r.get('slo', 'an SLO')} failed "
                                        f"(measured {r.get('measured', '?')})"),
}
_FAILED_WORDS = {"process_exited": "crashed", "hang_detected": "hung", "not_serving": "not serving",
                 "degraded": "degraded", "replica": "replica lost", "dependency": "dependency lost"}
_BAD = {"fault_failed", "process_exited", "hang_detected", "liveness_kill", "not_serving", "canary_failed",
        "degraded", "restart_failed", "internal_error", "run_aborted"}
_GOOD = {"recovered", "replicas_restored", "restarted", "canary_ok", "stack_ready"}


def figures_line(elapsed: float, total_s: float, rps: float, errors: int, p99_ms: float | None,
                 users: int) -> str:
    p99 = "-" if p99_ms is None else f"{p99_ms:.1f}ms"
    return (f"{format_duration(elapsed):>6} / {format_duration(total_s)}  "
            f"{rps:7.0f} req/s  errors {errors:<6d} p99 {p99:>8}  users {users}")


def event_line(heard: Heard) -> str:
    return f"{format_duration(heard.t):>6}  {heard.text}"


class Progress:
    """Feed it `update()` once a load second; subscribe `on_event` to the journal; `finish()` at the end.

    `out` (default: `sys.stdout` when this is made, see harness.console) or a ready `console`.
    """

    def __init__(self, total_s: float, out: TextIO | None = None, every_s: float = 5.0,
                 console: Console | None = None):
        self.console = console if console is not None else make_console(out)
        self.out: IO[str] = self.console.file
        self.total_s = total_s
        self.tty = is_live(self.console)
        self.every_s = every_s
        self.timeline = Timeline()
        self._figures: str | None = None
        self._last_line: float | None = None  # not 0: the monotonic clock starts near 0 at boot
        self._live: Live | None = None
        self._drawn = (-1, 0.0)  # (timeline.changes, monotonic time) at the last redraw
        self._finished = False
        self._broken = False  # the stream failed (a closed pipe): the run goes on without a view

    def update(self, elapsed: float, rps: float, errors: int, p99_ms: float | None, users: int) -> None:
        if self._finished:
            return
        self._figures = figures_line(elapsed, self.total_s, rps, errors, p99_ms, users)
        if self.tty:
            self._draw(force=True)
        elif self._last_line is None or time.monotonic() - self._last_line >= self.every_s:
            self._last_line = time.monotonic()
            self._write(self._figures + "\n")

    def on_event(self, name: str, record: dict[str, Any]) -> None:
        """A journal listener: faults and notable events, as they are written."""
        heard = self.timeline.hear(name, record)
        if self.tty and not self._finished:
            self._draw(force=False)
        elif heard is not None:  # plain, or after the live view ended (faults restored in teardown)
            self._write(event_line(heard) + "\n")

    def finish(self) -> None:
        """End the live view, leaving its last state on screen; safe to call more than once."""
        if self._finished:
            return
        self._finished = True
        live, self._live = self._live, None
        if live is None:
            return

        def last_frame() -> None:
            live.update(self._view())
            live.stop()  # draws it once more and leaves it on screen (not transient)

        self._guarded(last_frame)

    def say(self, text: str) -> None:
        if self._live is not None:
            self._guarded(lambda: self.console.print(Text(text)))  # above the live view
        else:
            self._write(text + "\n")

    # --- drawing

    def _draw(self, force: bool) -> None:
        changes, when = self._drawn
        now = time.monotonic()
        if not force and (changes == self.timeline.changes or now - when < MIN_REDRAW_S):
            return  # nothing new, or drawn a moment ago: the next second's update draws it
        self._drawn = (self.timeline.changes, now)
        self._guarded(self._redraw)

    def _redraw(self) -> None:
        if self._live is None:
            # No refresh thread: the view is redrawn from the run's own greenlets, as things happen.
            # No redirection of sys.stdout either: `run --json` may have pointed it elsewhere.
            self._live = Live(self._view(), console=self.console, auto_refresh=False,
                              redirect_stdout=False, redirect_stderr=False, vertical_overflow="visible")
            self._live.start(refresh=True)
        else:
            self._live.update(self._view(), refresh=True)

    def _view(self) -> RenderableType:
        parts: list[RenderableType] = [self._figures_text()]
        rows, hidden = self.timeline.shown_faults()
        if rows:
            parts.append(fault_table(rows, hidden))
        for heard in self.timeline.events:
            style = "red" if heard.event in _BAD else "green" if heard.event in _GOOD else ""
            parts.append(Text(event_line(heard), style=style))
        return Group(*parts)

    def _figures_text(self) -> Text:
        waiting = f"{'0s':>6} / {format_duration(self.total_s)}  waiting for the first second"
        figures = self._figures or waiting
        state = self.timeline.state
        return Text.assemble(figures, "  stack ", (state, "green" if state == "up" else "bold red"))

    def _write(self, text: str) -> None:
        def write() -> None:
            self.out.write(text)
            self.out.flush()

        self._guarded(write)

    def _guarded(self, action: Callable[[], object]) -> None:
        if self._broken:
            return
        try:
            action()
        except (OSError, ValueError):  # a closed or broken stream: a display problem, not the run's
            self._broken = True


def fault_table(rows: list[FaultRow], hidden: int = 0) -> Table:
    """The faults of the live view: what, when injected, held or restored, recovery once known."""
    caption = f"{hidden} earlier fault(s) not shown" if hidden else None
    table = Table(box=None, caption=caption, caption_justify="left", pad_edge=False, padding=(0, 2, 0, 0))
    for name in ("fault", "injected", "status", "recovery"):
        table.add_column(name, header_style="bold", no_wrap=name != "status")
    for row in rows:
        table.add_row(_fault_name({"kind": row.kind}, row), _injected_cell(row), _status_cell(row),
                      _recovery_cell(row))
    return table


def _injected_cell(row: FaultRow) -> Text:
    if row.injected is not None:
        return Text(format_duration(row.injected))
    if row.status == "failed":
        return Text("-")
    return Text(f"at {_seconds(row.at)}", style="dim")


def _status_cell(row: FaultRow) -> Text:
    if row.status == "held":
        return Text("held", style="yellow")
    if row.status == "restored":
        return Text(f"restored at {_seconds(row.restored)}", style="green")
    if row.status in ("failed", "restore failed"):
        return Text(f"{row.status}: {_short(row.error)}", style="bold red")
    return Text("scheduled", style="dim")


def _recovery_cell(row: FaultRow) -> Text:
    if not row.failure:
        return Text("-", style="dim")
    if row.recovery_s is None:
        return Text(f"{_FAILED_WORDS.get(row.failure, row.failure)}, not recovered yet", style="bold red")
    return Text(format_duration(row.recovery_s), style="green")
