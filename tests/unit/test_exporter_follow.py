"""Following a journal as it is written: every complete record once, torn lines left for later."""

import json
from pathlib import Path

from harness.exporter.follow import JournalFollower, journal_paths
from harness.journal import Journal, RotatingJournal


def test_records_come_once_and_a_half_written_line_waits(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    follower = JournalFollower(journal_paths(journal))
    assert follower.read() == []
    journal.event("run_started", seed=1)
    journal.second({"t": 0, "requests": 3, "ok": 3, "errors": {}})
    got = follower.read()
    assert [r.get("event", r["type"]) for r in got] == ["run_started", "second"]
    assert follower.read() == []
    journal.close()
    with path.open("a", encoding="utf-8") as handle:  # a writer killed mid-line
        handle.write('{"type":"event","event":"run_e')
    assert follower.read() == []
    with path.open("a", encoding="utf-8") as handle:
        handle.write('nded","t":3}\n')
    assert [r["event"] for r in follower.read()] == ["run_ended"]


def test_an_unreadable_line_is_skipped_as_read_journal_skips_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"type":"event","event":"a","t":0}\nnot json\n{"type":"event","event":"b","t":1}\n')
    assert [r["event"] for r in JournalFollower(lambda: [path]).read()] == ["a", "b"]


def test_a_missing_file_is_no_record_yet(tmp_path: Path) -> None:
    assert JournalFollower(lambda: [tmp_path / "nothing.jsonl"]).read() == []


def test_a_rotating_journal_is_followed_across_files_without_duplicates(tmp_path: Path) -> None:
    journal = RotatingJournal(tmp_path / "part-1.jsonl")
    follower = JournalFollower(journal_paths(journal))
    journal.event("run_started")
    assert len(follower.read()) == 1
    journal.rotate(tmp_path / "part-2.jsonl", boundary=journal.now())
    journal.tail_events = True  # events go to both files for a while
    journal.event("fault_restored", id="f0.0")
    journal.second({"t": -1, "requests": 1, "ok": 1})  # before the boundary: the old file
    journal.second({"t": 10**6, "requests": 2, "ok": 2})  # after it: the new one
    got = follower.read()
    assert sorted(r.get("event", str(r.get("requests"))) for r in got) == ["1", "2", "fault_restored"]
    journal.close_tail()
    journal.event("run_ended")
    journal.close()
    assert [r["event"] for r in follower.read()] == ["run_ended"]
    lines = [json.loads(line) for line in (tmp_path / "part-1.jsonl").read_text().splitlines()]
    assert [r.get("event") for r in lines].count("fault_restored") == 1  # it was in both files
