"""Reading a journal back while the run that writes it goes on (every event is flushed)."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent

from harness.journal import read_journal

POLL_S = 0.01


def events(path: Path, name: str | None = None, **match: Any) -> list[dict[str, Any]]:
    """The journal's events, those named `name` whose fields equal `match`."""
    return [r for r in read_journal(path) if r.get("type") == "event"
            and (name is None or r["event"] == name) and all(r.get(k) == v for k, v in match.items())]


def wait_event(path: Path, name: str, timeout: float = 5.0, after: float = -1.0,
               where: Callable[[dict[str, Any]], bool] | None = None, **match: Any) -> dict[str, Any]:
    """The first such event at `t` > `after`, waited for (gevent.sleep) at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in events(path, name, **match) if e["t"] > after and (where is None or where(e))]
        if found:
            return found[0]
        if time.monotonic() >= deadline:
            seen = [e["event"] for e in events(path)]
            raise AssertionError(f"no {name} {match or ''} within {timeout}s; journal: {seen}")
        gevent.sleep(POLL_S)


def names(path: Path) -> list[str]:
    return [e["event"] for e in events(path)]
