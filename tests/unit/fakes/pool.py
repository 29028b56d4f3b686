"""Fake stacks a test made, stopped and checked for leftovers whatever the test did."""

import signal
from pathlib import Path
from typing import Any

from harness.procs import ProcessId
from tests.unit.fakes.stack import FakeSpec, FakeStack


class StackPool:
    def __init__(self, root: Path):
        self.root = root
        self.made: list[FakeStack] = []

    def make(self, **settings: Any) -> FakeStack:
        stack = FakeSpec(**settings).build(self.root / f"stack{len(self.made)}")
        self.made.append(stack)
        return stack

    def close(self) -> list[ProcessId]:
        """Stop every stack, SIGKILL (by PID) anything still alive; returns what had to be killed."""
        killed: list[ProcessId] = []
        for stack in self.made:
            try:
                stack.stop(graceful=False)
            finally:
                for ident in stack.leftovers(within=1.0):
                    ident.send(signal.SIGCONT)
                    if ident.send(signal.SIGKILL):
                        killed.append(ident)
        return killed
