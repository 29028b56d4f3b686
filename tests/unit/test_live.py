"""The live view's journal tail and its process: what the page is fed, and that it ends."""

import json
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from harness.errors import UsageError
from reports.live import LIVE_WINDOW_S, JournalTail, LiveSession, LiveView


def _line(record: dict) -> bytes:
    return (json.dumps(record) + "\n").encode()


def _second(t: float, ok: int = 10) -> dict:
    return {"type": "second", "t": t, "requests": ok, "ok": ok, "latency_ms": {"p50": 1.0, "p99": 2.0}}


def test_the_tail_reads_only_what_was_appended_and_waits_for_a_torn_line(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_bytes(_line({"type": "event", "event": "load_started", "t": 100.0}) + _line(_second(100)))
    tail = JournalTail(tmp_path)
    tail.poll()
    assert len(tail.events) == 1 and len(tail.recent) == 1
    half = _line(_second(101))
    with journal.open("ab") as handle:
        handle.write(half[:10])  # the writer is mid-line
    tail.poll()
    assert len(tail.recent) == 1
    with journal.open("ab") as handle:
        handle.write(half[10:])
    tail.poll()
    assert [r["t"] for r in tail.recent] == [100, 101]
    assert tail.data().load_start == 100.0


def test_the_tail_keeps_every_event_but_only_the_recent_samples(tmp_path: Path) -> None:
    lines = [_line({"type": "event", "event": "load_started", "t": 0.0})]
    lines += [_line(_second(float(t))) for t in range(0, int(LIVE_WINDOW_S) + 300, 10)]
    lines += [_line({"type": "event", "event": "fault_injected", "t": 5.0, "id": "f0.0", "kind": "k"})]
    (tmp_path / "journal.jsonl").write_bytes(b"".join(lines))
    tail = JournalTail(tmp_path)
    tail.poll()
    assert len(tail.events) == 2
    times = [r["t"] for r in tail.recent]
    assert times[-1] - times[0] <= LIVE_WINDOW_S and times[-1] == LIVE_WINDOW_S + 290


def test_the_tail_moves_to_the_newest_journal_below_the_folder(tmp_path: Path) -> None:
    (tmp_path / "journal.jsonl").write_bytes(_line({"type": "event", "event": "run_started", "t": 0.0}))
    tail = JournalTail(tmp_path)
    tail.poll()
    cycle = tmp_path / "cycles" / "0001"
    cycle.mkdir(parents=True)
    time.sleep(0.01)
    (cycle / "journal.jsonl").write_bytes(_line({"type": "event", "event": "load_started", "t": 1.0}))
    tail.poll()
    assert tail.path == cycle / "journal.jsonl" and [e["event"] for e in tail.events] == ["load_started"]


def test_a_taken_port_is_refused_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=rf"^--web {port}: 127.0.0.1:{port}: Address already in use"):
            LiveSession(port)


def test_the_view_serves_get_only_on_loopback_and_ends_when_stopped(tmp_path: Path) -> None:
    (tmp_path / "journal.jsonl").write_bytes(_line({"type": "event", "event": "load_started", "t": 0.0})
                                             + _line(_second(0.0)) + _line(_second(1.0)))
    view = LiveView(tmp_path, 0)
    url = view.start()
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "charts", timeout=5) as answer:
            body = json.loads(answer.read())
        assert body["status"]["requests"] == 20 and "hchart-spec" in body["html"]
        with urllib.request.urlopen(url + f"charts?since={body['version']}", timeout=5) as answer:
            assert json.loads(answer.read())["html"] is None  # nothing new: nothing rebuilt
        request = urllib.request.Request(url + "charts", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 501  # read-only: http.server answers what it does not serve
        pid = view.process.pid if view.process else None
    finally:
        view.stop()
    assert pid is not None and not Path(f"/proc/{pid}").exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_the_view_ends_by_itself_when_the_harness_is_killed(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    import psutil

    (tmp_path / "journal.jsonl").write_bytes(_line({"type": "event", "event": "load_started", "t": 0.0}))
    code = ("import sys, time; from pathlib import Path; from reports.live import LiveView; "
            f"v = LiveView(Path({str(tmp_path)!r}), 0); url = v.start(); "
            "print(v.process.pid, url, flush=True); time.sleep(60)")
    harness = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[2])
    try:
        assert harness.stdout is not None
        pid = int(harness.stdout.readline().split()[0])
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait(5)
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the live view outlived the harness that started it")
    finally:
        if harness.poll() is None:
            harness.kill()
