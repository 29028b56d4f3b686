"""The observer interface: started after the stack is ready, stopped before it is stopped.

Observers run in their own greenlets (the harness runs under gevent) and must never block the
run loop. They write events with `journal.event(...)` and numeric samples with
`journal.series(name, values)`; the report plots every series it finds.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from harness.journal import Journal
from harness.stacks.base import Stack


@dataclass
class ObserverContext:
    journal: Journal
    stack: Stack
    findings: list[str] = field(default_factory=list)  # lines for the report's findings


class Observer(ABC):
    name: str = ""

    @abstractmethod
    def start(self, ctx: ObserverContext) -> None:
        """Begin watching (spawn greenlets here)."""

    @abstractmethod
    def stop(self) -> dict[str, Any]:
        """Stop watching; returns a summary the journal records as `observer_stopped`."""
