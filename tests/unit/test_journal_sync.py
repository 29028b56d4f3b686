"""The journal's once-a-second fsync waits in gevent's thread pool: a slow disk holds one greenlet,
not the event loop that reads every user's socket (bench/vllm_peer.md)."""

import time
from pathlib import Path

import gevent
import pytest
from gevent import monkey

from harness import journal
from harness.journal import Journal, RotatingJournal, read_journal

real_sleep = monkey.get_original("time", "sleep")  # blocks the thread it runs in, patched or not


def test_a_slow_fsync_leaves_the_loop_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []

    def slow_fsync(fd: int) -> None:
        real_sleep(0.3)  # a disk busy with another process's writes
        synced.append(fd)

    monkeypatch.setattr(journal.os, "fsync", slow_fsync)
    ticks: list[float] = []

    def ticker() -> None:
        while True:
            gevent.sleep(0.01)
            ticks.append(time.monotonic())

    out = Journal(tmp_path / "journal.jsonl")
    other = gevent.spawn(ticker)
    started = time.monotonic()
    out.second({"t": 0, "requests": 1, "ok": 1})
    waited = time.monotonic() - started
    other.kill()
    out.close()
    assert synced and waited >= 0.3  # the record is on disk when second() returns
    assert len(ticks) >= 10  # and the other greenlet ran meanwhile (every 10 ms)
    assert read_journal(tmp_path / "journal.jsonl")[0]["type"] == "second"


def test_a_file_closed_while_its_sync_waits_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A soak's cycle clock may rotate the journal (closing the tail) while a second syncs."""
    started: list[int] = []  # set from the pool's thread: a plain list, not a gevent event
    fsync = journal.os.fsync

    def slow_fsync(fd: int) -> None:
        started.append(fd)
        real_sleep(0.2)
        fsync(fd)  # the duplicate the pool got is still open

    monkeypatch.setattr(journal.os, "fsync", slow_fsync)
    out = RotatingJournal(tmp_path / "a.jsonl")
    out.rotate(tmp_path / "b.jsonl", boundary=10.0)  # a.jsonl is the tail: seconds before 10 go there

    def rotate_meanwhile() -> None:
        while not started:
            gevent.sleep(0.005)
        out.close_tail()

    other = gevent.spawn(rotate_meanwhile)
    out.second({"t": 1, "requests": 1, "ok": 1})
    other.join()
    out.close()
    assert [r["t"] for r in read_journal(tmp_path / "a.jsonl")] == [1]
