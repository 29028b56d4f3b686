"""Log patterns every run watches for; a scenario adds its own under observe.log_patterns.

A pattern with a group named `signal` (a number, or a name like SIGSEGV) says a process received
that signal. Such a line may be the harness's own doing: it sends SIGTERM to stop the stack (at
the end, at a restart) and signals as faults. `HarnessSignals` decides which lines those are,
with one rule used twice: by the log watcher as it reads a line (the journal's `log_match` gets
an `attribution`), and by `harness.analysis` for journals that lack it. `log.NAME` counts only
the lines the harness did not cause; the journal keeps every line.
"""

import signal
from dataclasses import dataclass, field

SIGNAL_GROUP = "signal"

DEFAULT_LOG_PATTERNS: dict[str, str] = {
    "signal_11": r"Signal \((?P<signal>11)\) received",
    "signal_any": r"Signal \((?P<signal>\d+)\) received",
    "dropped_span": r"BatchSpanProcessor queue is full",
    "traceback": r"Traceback \(most recent call last\)",
}

# A process logs the signal it got at once, and the watcher reads a line within its poll
# interval; a stop that blocks the event loop can delay the read, so the window is generous.
ATTRIBUTION_WINDOW_S = 10.0
# The signal's journal record is written a moment after the kill; a line read in that moment
# (another thread) must still find it.
CLOCK_SLACK_S = 0.5

HARNESS = "harness"  # a `log_match`'s attribution when the harness sent the signal
UNATTRIBUTED = "unattributed"


def signal_number(text: str | None) -> int | None:
    """15 for "15", "SIGTERM" or "TERM"; None for anything that names no signal."""
    if not text:
        return None
    text = text.strip()
    if text.isdigit():
        return int(text)
    name = text.upper() if text.upper().startswith("SIG") else f"SIG{text.upper()}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None


def signal_name(number: int) -> str:
    """SIGTERM for 15; `signal 99` for a number this platform does not name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass
class _Sent:
    t: float
    number: int
    explained: set[str] = field(default_factory=set)  # patterns that already used this signal


class HarnessSignals:
    """The signals the harness sent, each explaining at most one log line per pattern.

    One line per pattern, because one line can match several patterns (`signal_11` and
    `signal_any`); one line only, so a second "Signal (15) received" the harness did not cause
    (someone else's kill during the stop) still counts.
    """

    def __init__(self, window_s: float = ATTRIBUTION_WINDOW_S):
        self.window_s = window_s
        self._sent: list[_Sent] = []

    def sent(self, t: float, number: int) -> None:
        self._sent.append(_Sent(t, number))

    def explain(self, pattern: str, number: int, t: float) -> float | None:
        """When the harness sent the signal a `pattern` line read at `t` reports; None: not the
        harness's. The earliest signal still unexplained in the window is used up."""
        for sent in self._sent:
            if sent.number != number or pattern in sent.explained:
                continue
            if sent.t - CLOCK_SLACK_S <= t <= sent.t + self.window_s:
                sent.explained.add(pattern)
                return sent.t
        return None
