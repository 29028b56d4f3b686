"""Live progress: one rewritten line on a terminal, a plain line every few seconds otherwise."""

import sys
import time
from typing import TextIO

from harness.durations import format_duration


class Progress:
    def __init__(self, total_s: float, out: TextIO | None = None, every_s: float = 5.0):
        self.out = out or sys.stdout
        self.total_s = total_s
        self.tty = self.out.isatty()
        self.every_s = every_s
        self._last_line = 0.0

    def update(self, elapsed: float, rps: float, errors: int, p99_ms: float | None, users: int) -> None:
        p99 = "-" if p99_ms is None else f"{p99_ms:.1f}ms"
        line = (
            f"{format_duration(elapsed):>6} / {format_duration(self.total_s)}  "
            f"{rps:7.0f} req/s  errors {errors:<6d} p99 {p99:>8}  users {users}"
        )
        if self.tty:
            self.out.write("\r" + line + "\x1b[K")
            self.out.flush()
        elif time.monotonic() - self._last_line >= self.every_s:
            self._last_line = time.monotonic()
            self.out.write(line + "\n")
            self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()

    def say(self, text: str) -> None:
        self.finish() if self.tty else None
        self.out.write(text + "\n")
        self.out.flush()
