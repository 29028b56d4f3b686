"""A server that already runs: the harness points load at it and starts nothing."""

import time
from pathlib import Path

from harness.errors import StackFailed
from harness.procs import ProcessId
from harness.stacks.base import Endpoints, Health, Stack, StopReport, probe_http
from harness.stacks.external_spec import ExternalSpec


class ExternalStack(Stack):
    kind = "external"

    def __init__(self, spec: ExternalSpec):
        self.spec = spec

    @property
    def model_name(self) -> str:
        return self.spec.model

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(http=self.spec.url, grpc=self.spec.grpc_url)

    def start(self) -> None:
        """Nothing to start."""

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        last = self.health()
        while not last.ok and time.monotonic() - started < timeout:
            time.sleep(0.2)
            last = self.health()
        if not last.ok:
            raise StackFailed(
                f"external stack {self.spec.url}{self.spec.ready_path} not ready after "
                f"{timeout:.0f}s: {last.detail}"
            )
        return time.monotonic() - started

    def health(self, timeout: float = 0.5) -> Health:
        return probe_http(f"{self.spec.url}{self.spec.ready_path}", timeout)

    def stop(self, graceful: bool = True) -> StopReport:
        return StopReport()

    def roles(self) -> dict[str, list[ProcessId]]:
        return {}

    def log_files(self) -> dict[str, Path]:
        return {}
