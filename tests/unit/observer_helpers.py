"""A stand-in stack and context for observer unit tests (no processes are started)."""

from pathlib import Path

from harness.journal import Journal, read_journal
from harness.observers.base import ObserverContext
from harness.observers.scrape_profile import GENERIC_PROFILE, ScrapeProfile
from harness.procs import ProcessId
from harness.stacks.base import Endpoints, Health, Stack, StopReport


class FakeStack(Stack):
    kind = "fake"

    def __init__(self, metrics: str | None = None, logs: dict[str, Path] | None = None,
                 profile: ScrapeProfile = GENERIC_PROFILE) -> None:
        self.metrics = metrics
        self.logs = logs or {}
        self.profile = profile

    def start(self) -> None:
        pass

    def wait_ready(self, timeout: float) -> float:
        return 0.0

    def stop(self, graceful: bool = True) -> StopReport:
        return StopReport()

    def roles(self) -> dict[str, list[ProcessId]]:
        return {}

    def log_files(self) -> dict[str, Path]:
        return dict(self.logs)

    def health(self, timeout: float = 0.5) -> Health:
        return Health(True, 200, "OK", 0.0)

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(metrics=self.metrics)

    def scrape_profile(self) -> ScrapeProfile:
        return self.profile


def context(tmp_path: Path, stack: Stack | None = None) -> ObserverContext:
    return ObserverContext(Journal(tmp_path / "journal.jsonl"), stack or FakeStack())


def records(ctx: ObserverContext) -> list[dict]:
    ctx.journal.close()
    return read_journal(ctx.journal.path)
