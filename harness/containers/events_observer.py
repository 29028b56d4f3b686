"""Follows the Docker engine's events for the stack's containers and writes them to the journal.

Started after the stack is ready, it first replays what the engine did since the stack began
starting (create, start), then follows live. On stop, after the stack was stopped, it reads
once more up to that moment, so the final kill/die/destroy are recorded too.
"""

import time
from typing import Any

import gevent

from harness.containers.capability import RunsContainers
from harness.containers.engine import connect
from harness.containers.events import event_fields, event_key, event_time
from harness.journal import Journal
from harness.observers.base import Observer, ObserverContext

CATCH_UP_S = 0.2  # the engine publishes an event a moment after acting


class DockerEvents(Observer):
    name = "docker_events"

    def __init__(self) -> None:
        self.journal: Journal | None = None
        self.client: Any = None
        self.filters: dict[str, Any] = {}
        self.since = 0.0
        self.wall_origin = 0.0
        self.seen: set[tuple[Any, ...]] = set()
        self.actions: dict[str, int] = {}
        self.stream: Any = None
        self.greenlet: gevent.Greenlet | None = None
        self.error: str | None = None
        self.closing = False

    def start(self, ctx: ObserverContext) -> None:
        stack: Any = ctx.stack
        self.journal = ctx.journal
        self.client = connect(stack.docker_host)
        self.filters = stack.event_filters()
        self.wall_origin = time.time() - ctx.journal.now()
        started = stack.started_wall if isinstance(stack, RunsContainers) else None
        self.since = started - 1.0 if started else time.time()
        self.greenlet = gevent.spawn(self._follow)

    def _follow(self) -> None:
        try:
            self.stream = self.client.events(since=_stamp(self.since), filters=self.filters, decode=True)
            for raw in self.stream:
                self._record(raw)
        except Exception as exc:  # noqa: BLE001 - closing the stream ends the loop this way too
            if not self.closing:
                self.error = repr(exc)[:300]

    def _record(self, raw: dict[str, Any]) -> None:
        key = event_key(raw)
        if key in self.seen or self.journal is None:
            return
        fields = event_fields(raw, self.wall_origin)
        if fields is None:
            return
        self.seen.add(key)
        self.since = max(self.since, event_time(raw))
        self.actions[fields["action"]] = self.actions.get(fields["action"], 0) + 1
        self.journal.event("docker_event", **fields)

    def stop(self) -> dict[str, Any]:
        gevent.sleep(CATCH_UP_S)
        try:
            until = time.time()
            for raw in self.client.events(since=_stamp(self.since), until=_stamp(until), filters=self.filters,
                                          decode=True):
                self._record(raw)
        except Exception as exc:  # noqa: BLE001 - a summary with the error beats a failed teardown
            self.error = self.error or repr(exc)[:300]
        self.closing = True
        if self.stream is not None:
            self.stream.close()
        if self.greenlet is not None:
            self.greenlet.kill(block=True, timeout=2)
        return {"events": len(self.seen), "actions": dict(sorted(self.actions.items())), "error": self.error}


def _stamp(wall: float) -> str:
    """The engine reads `seconds.nanoseconds`."""
    return f"{wall:.9f}"
