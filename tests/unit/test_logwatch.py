"""The log watcher: a real Triton 2.51 log as fixture, and files that grow, appear, shrink, rotate."""

import os
import time
from pathlib import Path
from typing import Any

import gevent
import pytest

from harness.observers.base import ObserverContext
from harness.observers.logwatch import (
    TRITON_PATTERNS,
    FileTail,
    LogWatcher,
    compile_patterns,
    match_lines,
)
from tests.unit.observer_helpers import FakeStack, context, records

TRITON_LOG = Path(__file__).parent / "fixtures" / "triton_2.51_server.log"
DROPPED = (
    "[Warning] File: /workspace/src/trace.cc:1 BatchSpanProcessor queue is full - dropping span.\n"
)
SIGSEGV = "Signal (11) received.\n"


def append(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    with path.open("ab") as handle:
        handle.write(data)


def attached(tmp_path: Path, files: dict[str, Path], **kwargs: Any) -> tuple[LogWatcher, ObserverContext]:
    ctx = context(tmp_path)
    watcher = LogWatcher(files=files, **kwargs)
    watcher.attach(ctx)
    return watcher, ctx


def test_real_triton_log(tmp_path: Path) -> None:
    patterns = {**TRITON_PATTERNS, "http_started": r"Started HTTPService at (\S+)\""}
    ctx = context(tmp_path, FakeStack(logs={"server": TRITON_LOG}))
    watcher = LogWatcher(patterns)
    watcher.start(ctx)
    gevent.sleep(0.05)
    summary = watcher.stop()
    found = summary["patterns"]
    assert found["signal_any"]["count"] == 1 and found["signal_any"]["values"] == {"15": 1}
    assert found["signal_any"]["first_line"] == "Signal (15) received."
    assert found["signal_11"]["count"] == 0 and found["signal_11"]["first_t"] is None
    assert found["http_started"]["count"] == 1
    assert found["http_started"]["first_line"].endswith('"Started HTTPService at 127.0.0.1:54893"')
    assert found["http_started"]["roles"] == {"server": 1}
    assert summary["bytes_read"] == TRITON_LOG.stat().st_size
    assert summary["lines"] == TRITON_LOG.read_bytes().count(b"\n")
    assert summary["missing"] == [] and summary["files"] == {"server": str(TRITON_LOG)}
    recs = records(ctx)
    matches = [r for r in recs if r.get("event") == "log_match"]
    assert {m["pattern"] for m in matches} == {"signal_any", "http_started"}
    series = [r for r in recs if r["type"] == "series"]
    assert series and series[-1]["name"] == "log_matches"
    assert series[-1]["values"]["signal_any"] == 1 and series[-1]["values"]["dropped_span"] == 0


def test_file_appears_later_and_partial_lines_wait(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    watcher, _ = attached(tmp_path, {"server": log})
    watcher.poll()  # nothing there yet: no error
    append(log, "start\nSignal (1")
    watcher.poll()
    assert watcher.counts()["signal_any"] == 0  # the line is not complete yet
    append(log, "1) received.\n")
    watcher.poll()
    stats = watcher.stats["signal_11"]
    assert stats.count == 1 and stats.first_line == "Signal (11) received."
    append(log, "no newline at the end: Traceback (most recent call last)")
    watcher.poll()
    assert watcher.counts()["traceback"] == 0
    summary = watcher.stop()  # the final read takes the unfinished line as it is
    assert summary["patterns"]["traceback"]["count"] == 1


def test_missing_file_is_reported(tmp_path: Path) -> None:
    watcher, _ = attached(tmp_path, {"server": tmp_path / "never.log"})
    watcher.poll()
    summary = watcher.stop()
    assert summary["missing"] == ["server"] and summary["bytes_read"] == 0


def test_truncation_and_rotation(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    append(log, SIGSEGV * 3)
    watcher, _ = attached(tmp_path, {"server": log})
    watcher.poll()
    assert watcher.counts()["signal_11"] == 3
    log.write_text("")  # truncated in place (same inode)
    append(log, SIGSEGV)
    watcher.poll()
    assert watcher.counts()["signal_11"] == 4
    append(log, SIGSEGV)
    os.rename(log, tmp_path / "server.log.1")  # rotated: the old file's tail is still read
    append(log, SIGSEGV * 2)
    watcher.poll()
    assert watcher.counts()["signal_11"] == 7
    append(log, SIGSEGV)
    summary = watcher.stop()
    assert summary["patterns"]["signal_11"]["count"] == 8
    assert summary["truncations"] == 1 and summary["reopenings"] == 1


def test_first_match_event_once_and_series_when_counts_change(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    watcher, ctx = attached(tmp_path, {"server": log}, series_interval_s=0.1)
    watcher.poll()  # the zero baseline
    append(log, DROPPED * 10)
    watcher.poll()  # too soon for another sample
    gevent.sleep(0.12)
    append(log, DROPPED * 5)
    watcher.poll()  # a sample: 15
    gevent.sleep(0.12)
    watcher.poll()  # no change: no sample
    watcher.stop()
    recs = records(ctx)
    samples = [r["values"]["dropped_span"] for r in recs if r["type"] == "series"]
    assert samples == [0, 15]
    events = [r for r in recs if r.get("event") == "log_match"]
    assert len(events) == 1 and events[0]["pattern"] == "dropped_span"
    assert events[0]["line"] == DROPPED.strip() and events[0]["role"] == "server"


def test_many_matches_read_once_in_chunks(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    stamp = "W1121 23:50:47.696141 5981 "
    lines = 150_000
    append(log, (stamp + DROPPED) * lines)
    size = log.stat().st_size
    watcher, _ = attached(tmp_path, {"server": log})
    started = time.perf_counter()
    watcher.poll()
    for _ in range(3):
        append(log, stamp + DROPPED)
        watcher.poll()
    elapsed = time.perf_counter() - started
    summary = watcher.stop()
    assert summary["patterns"]["dropped_span"]["count"] == lines + 3
    assert summary["bytes_read"] == size + 3 * len(stamp + DROPPED)  # nothing read twice
    assert elapsed < 3.0, f"{lines} lines took {elapsed:.2f}s"


def test_overlong_line_without_newline_is_still_matched(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    append(log, b"x" * (1 << 20) + SIGSEGV.strip().encode())
    tail = FileTail(log, chunk_bytes=1 << 16)
    blocks = list(tail.read())
    assert sum(map(len, blocks)) + len(tail.pending) == log.stat().st_size
    assert blocks  # handed over without waiting for a newline that may never come


def test_line_matching_counts_lines_not_matches() -> None:
    pattern = compile_patterns({"s": r"Signal \((\d+)\)"})["s"]
    text = "Signal (1) Signal (2)\nnothing\nSignal (3)\n"
    assert [(start, m.group(1)) for start, m in match_lines(pattern, text)] == [(0, "1"), (30, "3")]
    anchored = compile_patterns({"a": r"^E\d{4}"})["a"]
    assert len(list(match_lines(anchored, "I1121 x\nE1121 y\nxE1121\n"))) == 1
    with pytest.raises(ValueError, match="'bad'"):
        compile_patterns({"bad": "("})


def test_not_from_start_skips_what_was_there(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    append(log, SIGSEGV)
    watcher, _ = attached(tmp_path, {"server": log}, from_start=False)
    watcher.poll()
    append(log, SIGSEGV)
    assert watcher.stop()["patterns"]["signal_11"]["count"] == 1
