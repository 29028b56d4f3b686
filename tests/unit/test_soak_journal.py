"""The rotating journal: every record in exactly one file, a cycle's late events in its own file."""

from pathlib import Path

from harness.journal import Journal, RotatingJournal, read_journal


def test_plain_journal_api_is_unchanged(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.event("run_started", seed=1)
    journal.series("memory_rss", {"server": 1.0}, t=0.5)
    journal.second({"t": 0, "requests": 1, "ok": 1})
    journal.close()
    kinds = [r["type"] for r in read_journal(tmp_path / "journal.jsonl")]
    assert kinds == ["event", "series", "second"]


def test_rotation_routes_straddling_seconds_and_tail_events(tmp_path: Path) -> None:
    first, second = tmp_path / "c1" / "journal.jsonl", tmp_path / "c2" / "journal.jsonl"
    journal = RotatingJournal(tmp_path / "journal.jsonl", clock_origin=0.0)
    journal.event("soak_started")
    journal.rotate(first, boundary=0.0)
    journal.second({"t": 5, "requests": 1, "ok": 1})
    journal.rotate(second, boundary=10.5)
    journal.event_here("load_started", t=10.5)  # the new cycle's header: not the old one's
    journal.tail_events = True
    journal.second({"t": 10, "requests": 2, "ok": 2})  # began before the boundary: the old cycle's
    journal.series("memory_rss", {"server": 1.0}, t=10.2)
    journal.series("memory_rss", {"server": 2.0}, t=10.7)
    journal.event("recovered")  # the old cycle's fault still playing out: both files
    journal.tail_events = False
    journal.event("fault_injected")  # the new cycle's own
    journal.event_tail("run_ended")
    assert journal.last_second == 10
    assert journal.close_tail() == first
    journal.second({"t": 11, "requests": 3, "ok": 3})
    journal.close()

    def summary(path: Path) -> list[object]:
        return [r.get("event") or (r["type"], r["t"]) for r in read_journal(path)]

    assert summary(tmp_path / "journal.jsonl") == ["soak_started"]
    assert summary(first) == [("second", 5), ("second", 10), ("series", 10.2), "recovered", "run_ended"]
    assert summary(second) == [
        "load_started", ("series", 10.7), "recovered", "fault_injected", ("second", 11),
    ]


def test_rotating_twice_closes_the_older_tail(tmp_path: Path) -> None:
    journal = RotatingJournal(tmp_path / "journal.jsonl", clock_origin=0.0)
    for i in range(1, 4):
        journal.rotate(tmp_path / f"c{i}.jsonl", boundary=float(i))
        journal.second({"t": i - 1, "requests": 1, "ok": 1})  # still the cycle before's
    assert journal.tail_path == tmp_path / "c2.jsonl"
    journal.close()
    assert [r["t"] for r in read_journal(tmp_path / "c1.jsonl")] == [1]
    assert [r["t"] for r in read_journal(tmp_path / "c2.jsonl")] == [2]
    assert read_journal(tmp_path / "c3.jsonl") == []
    assert [r["t"] for r in read_journal(tmp_path / "journal.jsonl")] == [0]
