"""Follow the stack's log files while the run goes and count lines matching named patterns.

Per pattern it records how many lines matched, the first and last time (run clock, the moment
the watcher read the line, at most `interval_s` after it was written), and the first matching
line. The journal gets a `log_match` event the first time each pattern matches and a
`log_matches` series sample (every pattern's count) at most once a second, when a count changed.

A pattern with a `signal` group (harness.logpatterns) gets a `log_match` for every line, up to
MAX_SIGNAL_EVENTS, with the signal's number and its `attribution`: `harness` when the harness
had just sent that signal (the watcher journals each one it sends as `signal_sent`), else
`unattributed`. The summary counts the harness's lines per pattern (`harness`).

Files are read in binary chunks from where the last read stopped, never re-read: a pattern that
matches 100k lines costs one `finditer` pass over the chunk. A file that does not exist yet is
picked up when it appears; a partial last line waits for its newline (until `stop()`, which
reads it as it is); a file truncated in place is read again from the start; a file replaced
under the same name (rotation) is read to its end, then the new one from its start.
"""

import os
import re
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import gevent
from gevent import Greenlet

from harness.logpatterns import (
    DEFAULT_LOG_PATTERNS,
    HARNESS,
    SIGNAL_GROUP,
    UNATTRIBUTED,
    HarnessSignals,
    signal_name,
    signal_number,
)
from harness.observers.base import Observer, ObserverContext
from harness.procs import SentSignal, listen_for_signals

SERIES_NAME = "log_matches"

TRITON_PATTERNS: dict[str, str] = DEFAULT_LOG_PATTERNS

CHUNK_BYTES = 1 << 20
MAX_LINE_BYTES = 1 << 20  # a "line" longer than this without a newline is matched as it is
READ_BUDGET_BYTES = 16 << 20  # per file per poll, so a huge backlog cannot stall the run loop
MAX_LINE_CHARS = 2000  # of a first matching line kept in the journal
MAX_GROUP_VALUES = 50  # distinct first-group values counted per pattern (e.g. signal numbers)
MAX_SIGNAL_EVENTS = 1000  # `log_match` events per signal pattern; later lines are only counted


class FileTail:
    """Complete lines appended to one file, as blocks of bytes; survives absence, truncation,
    replacement. Not thread-safe; one reader."""

    def __init__(self, path: Path, chunk_bytes: int = CHUNK_BYTES, from_start: bool = True):
        self.path = path
        self.chunk_bytes = chunk_bytes
        self.from_start = from_start
        self.handle: IO[bytes] | None = None
        self.identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self.position = 0
        self.pending = b""
        self.bytes_read = 0
        self.truncations = 0
        self.reopenings = 0
        self.opened_once = False

    def read(self, budget: int = READ_BUDGET_BYTES) -> Iterator[bytes]:
        """Blocks that end with a newline (or one overlong line); at most about `budget` bytes."""
        if self.handle is None and not self._open():
            return
        assert self.handle is not None
        if os.fstat(self.handle.fileno()).st_size < self.position:  # truncated in place
            self.truncations += 1
            self.handle.seek(0)
            self.position = 0
            self.pending = b""
        budget = yield from self._drain(budget)
        if budget > 0 and self._replaced():
            rest = self.flush()
            if rest:
                yield rest
            self.close()
            self.reopenings += 1
            if self._open():
                yield from self._drain(budget)

    def flush(self) -> bytes:
        """The partial last line, handed over as it is (the writer may never finish it)."""
        rest, self.pending = self.pending, b""
        return rest

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
            self.identity = None

    def _open(self) -> bool:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        self.handle = handle
        self.identity = (stat.st_dev, stat.st_ino)
        self.position = 0
        self.pending = b""
        if not self.opened_once and not self.from_start:
            self.position = handle.seek(0, os.SEEK_END)
        self.opened_once = True
        return True

    def _replaced(self) -> bool:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False  # removed: keep the open file; a new one is picked up when it appears
        return (stat.st_dev, stat.st_ino) != self.identity

    def _drain(self, budget: int) -> Generator[bytes, None, int]:
        """Read to the end of the open file or the budget; returns the budget left."""
        assert self.handle is not None
        while budget > 0:
            data = self.handle.read(min(self.chunk_bytes, budget))
            if not data:
                break
            budget -= len(data)
            self.position += len(data)
            self.bytes_read += len(data)
            if self.pending:
                data = self.pending + data
                self.pending = b""
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if len(data) >= MAX_LINE_BYTES:
                    yield data
                else:
                    self.pending = data
                continue
            self.pending = data[cut:]
            yield data[:cut]
        return budget


@dataclass
class PatternStats:
    """What one pattern matched so far."""

    name: str
    count: int = 0
    first_t: float | None = None
    last_t: float | None = None
    first_line: str | None = None
    first_role: str | None = None
    roles: dict[str, int] = field(default_factory=dict)
    values: dict[str, int] = field(default_factory=dict)  # first capture group -> lines
    harness: int = 0  # lines that report a signal the harness itself had just sent
    journaled: int = 0  # `log_match` events written for this pattern

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "count": self.count,
            "first_t": self.first_t,
            "last_t": self.last_t,
            "first_line": self.first_line,
            "first_role": self.first_role,
        }
        if self.roles:
            data["roles"] = dict(self.roles)
        if self.values:
            data["values"] = dict(self.values)
        if self.harness:
            data["harness"] = self.harness
        return data


def compile_patterns(patterns: Mapping[str, str | re.Pattern[str]]) -> dict[str, re.Pattern[str]]:
    """Strings compile with re.MULTILINE (so `^`/`$` mean line start/end); a bad one is named."""
    compiled: dict[str, re.Pattern[str]] = {}
    for name, pattern in patterns.items():
        if isinstance(pattern, re.Pattern):
            compiled[name] = pattern
            continue
        try:
            compiled[name] = re.compile(pattern, re.MULTILINE)
        except re.error as exc:
            raise ValueError(f"log pattern {name!r}: {pattern!r} is not a valid regex: {exc}") from exc
    return compiled


def match_lines(pattern: re.Pattern[str], text: str) -> Iterator[tuple[int, re.Match[str]]]:
    """(line start offset, first match in that line) for each line of `text` that matches."""
    last_start = -1
    for found in pattern.finditer(text):
        start = text.rfind("\n", 0, found.start()) + 1
        if start != last_start:
            last_start = start
            yield start, found


def _line_at(text: str, start: int) -> str:
    end = text.find("\n", start)
    line = text[start:] if end < 0 else text[start:end]
    return line.rstrip("\r")[:MAX_LINE_CHARS]


class LogWatcher(Observer):
    """Count lines matching `patterns` (name -> regex) in `files` (role -> path).

    `patterns` None means `TRITON_PATTERNS`; `files` None means the stack's `log_files()`, asked
    again once a second so files a stack adds later are followed too.
    """

    name = "logwatch"

    def __init__(
        self,
        patterns: Mapping[str, str | re.Pattern[str]] | None = None,
        files: Mapping[str, Path] | None = None,
        interval_s: float = 0.2,
        series_interval_s: float = 1.0,
        from_start: bool = True,
        series: str = SERIES_NAME,
    ):
        self.patterns = compile_patterns(TRITON_PATTERNS if patterns is None else patterns)
        self.stats = {name: PatternStats(name) for name in self.patterns}
        self.files = dict(files) if files is not None else None
        self.interval_s = interval_s
        self.series_interval_s = series_interval_s
        self.from_start = from_start
        self.series = series
        self.tails: dict[str, FileTail] = {}
        self.ctx: ObserverContext | None = None
        self.greenlet: Greenlet | None = None
        self.lines = 0
        self.series_due: float | None = None  # run clock, on a grid of series_interval_s
        self.series_counts: dict[str, int] = {}
        self.harness_signals = HarnessSignals()
        self._unlisten: Callable[[], None] | None = None  # while subscribed to the signals sent

    def start(self, ctx: ObserverContext) -> None:
        self.attach(ctx)
        self.greenlet = gevent.spawn(self._loop)

    def attach(self, ctx: ObserverContext) -> None:
        """Everything `start` does but the greenlet: the caller drives `poll()` itself."""
        self.ctx = ctx
        self._follow(self.files if self.files is not None else ctx.stack.log_files())
        if self._unlisten is None:
            self._unlisten = listen_for_signals(self._on_signal_sent)

    def _on_signal_sent(self, sent: SentSignal) -> None:
        """Journal a signal the harness sent, and remember it to explain the line it causes."""
        if self.ctx is None:
            return
        record = self.ctx.journal.event("signal_sent", signal=signal_name(sent.number), number=sent.number,
                                        pid=sent.pid, process=sent.name)
        self.harness_signals.sent(float(record["t"]), sent.number)

    def _follow(self, files: Mapping[str, Path]) -> None:
        for role, path in files.items():
            tail = self.tails.get(role)
            if tail is None or tail.path != Path(path):
                if tail is not None:
                    tail.close()
                self.tails[role] = FileTail(Path(path), from_start=self.from_start)

    def _loop(self) -> None:
        while True:
            self.poll()
            gevent.sleep(self.interval_s)

    def poll(self, final: bool = False) -> None:
        """Read what the files gained, match it, write the series when due."""
        assert self.ctx is not None, "start() first"
        for role, tail in list(self.tails.items()):
            for block in tail.read():
                self.scan(role, block)
                gevent.sleep(0)  # a big backlog must not starve the run loop
            if final:
                rest = tail.flush()
                if rest:
                    self.scan(role, rest)
        now = self.ctx.journal.now()
        if final or self.series_due is None or now >= self.series_due:
            self._write_series(now)
            if self.files is None and not final:
                self._follow(self.ctx.stack.log_files())

    def scan(self, role: str, block: bytes) -> None:
        """Match one block of complete lines from `role`'s file."""
        assert self.ctx is not None
        self.lines += block.count(b"\n")
        text = block.decode("utf-8", errors="replace")
        now: float | None = None
        for name, pattern in self.patterns.items():
            if pattern.search(text) is None:
                continue
            if now is None:
                now = round(self.ctx.journal.now(), 4)
            self._count(self.stats[name], pattern, role, text, now)

    def _count(self, stats: PatternStats, pattern: re.Pattern[str], role: str, text: str, now: float) -> None:
        assert self.ctx is not None
        matched = 0
        grouped = pattern.groups > 0
        reports_signal = SIGNAL_GROUP in pattern.groupindex
        for start, found in match_lines(pattern, text):
            matched += 1
            first = stats.first_line is None
            if first:
                stats.first_line = _line_at(text, start)
                stats.first_role = role
                stats.first_t = now
            if reports_signal:
                self._signal_line(stats, role, _line_at(text, start), found, now, stats.count + matched)
            elif first:
                self.ctx.journal.event("log_match", pattern=stats.name, role=role, line=stats.first_line)
            if grouped:
                value = found.group(1)
                if value is not None and (value in stats.values or len(stats.values) < MAX_GROUP_VALUES):
                    stats.values[value] = stats.values.get(value, 0) + 1
        stats.count += matched
        stats.roles[role] = stats.roles.get(role, 0) + matched
        stats.last_t = now

    def _signal_line(self, stats: PatternStats, role: str, line: str, found: re.Match[str], now: float,
                     nth: int) -> None:
        """A line saying a process received a signal: the harness's doing, or a finding."""
        assert self.ctx is not None
        number = signal_number(found.group(SIGNAL_GROUP))
        sent_t = None if number is None else self.harness_signals.explain(stats.name, number, now)
        if sent_t is not None:
            stats.harness += 1
        if stats.journaled >= MAX_SIGNAL_EVENTS:
            return
        stats.journaled += 1
        fields: dict[str, Any] = {"signal": number, "nth": nth,
                                  "attribution": UNATTRIBUTED if sent_t is None else HARNESS}
        if sent_t is not None:
            fields["sent_t"] = sent_t
        self.ctx.journal.event("log_match", pattern=stats.name, role=role, line=line, **fields)

    def counts(self) -> dict[str, int]:
        return {name: stats.count for name, stats in self.stats.items()}

    def _write_series(self, now: float) -> None:
        assert self.ctx is not None
        if self.series_due is None:
            self.series_due = now
        if now >= self.series_due:
            skipped = int((now - self.series_due) // self.series_interval_s)
            self.series_due += (skipped + 1) * self.series_interval_s
        counts = self.counts()
        if counts != self.series_counts:
            self.series_counts = counts
            self.ctx.journal.series(self.series, {k: float(v) for k, v in counts.items()}, t=now)

    def stop(self) -> dict[str, Any]:
        if self.greenlet is not None:
            self.greenlet.kill(block=True, timeout=5.0)
            self.greenlet = None
        if self.ctx is not None:
            self.poll(final=True)
        if self._unlisten is not None:  # after the final read: the stop's signals explain its lines
            self._unlisten()
            self._unlisten = None
        for tail in self.tails.values():
            tail.close()
        return {
            "files": {role: str(tail.path) for role, tail in self.tails.items()},
            "missing": sorted(role for role, tail in self.tails.items() if not tail.opened_once),
            "bytes_read": sum(tail.bytes_read for tail in self.tails.values()),
            "lines": self.lines,
            "truncations": sum(tail.truncations for tail in self.tails.values()),
            "reopenings": sum(tail.reopenings for tail in self.tails.values()),
            "patterns": {name: stats.summary() for name, stats in self.stats.items()},
        }
