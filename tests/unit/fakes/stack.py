"""`FakeStack`: a real stack of real processes, small enough for unit tests of the orchestrator.

Three roles, named unlike any real stack's so a test proves that generic code reads the role
declarations and never a role's name:
- `api` (entry): `server.py`, a threaded HTTP server started as a `ManagedProcess`, so its exit
  code is read the real way (after the reap);
- `shard` (replica): sleeping children the server keeps at `replicas`, respawned after
  `respawn_after` when one dies;
- `store` (dependency): a sleeping process the stack starts itself, beside the server.
Traffic goes to 127.0.0.1 only. `stop()` stops the whole tree; `leftovers()` names, by PID, any
process the stack ever showed that is still alive (tests assert there are none).
"""

import http.client
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from harness.errors import StackFailed
from harness.load.target import Target
from harness.procs import ManagedProcess, ProcessId, StopResult, tail
from harness.roles import Loss, Role
from harness.specbase import Duration, StackSpecBase
from harness.stacks.base import Endpoints, Health, Stack, StopReport, probe_http, probe_post
from harness.stacks.ports import free_ports
from tests.unit.fakes.server import sleeper_argv

SERVER = Path(__file__).with_name("server.py")
POLL_S = 0.02
ENTRY, REPLICA, DEPENDENCY = "api", "shard", "store"


class FakeSpec(StackSpecBase):
    """The `fake` stack kind's settings (a scenario's `stack:` section)."""

    ROLES: ClassVar[tuple[Role, ...]] = (
        Role(ENTRY, Loss.ENTRY, "the fake's HTTP server"),
        Role(REPLICA, Loss.REPLICA, "a sleeping child the server respawns"),
        Role(DEPENDENCY, Loss.DEPENDENCY, "a sleeping process beside the server"),
    )

    kind: Literal["fake"] = "fake"
    replicas: int = Field(2, ge=0, le=8)
    respawn_after: Duration = 0.3
    fail_start: int | None = None  # the server exits at once with this code: the stack never gets ready
    fail_infer_after_restart: bool = False  # a restarted server is healthy but its inference fails
    startup_timeout: Duration = 10.0
    stop_timeout: Duration = 2.0

    def build(self, workdir: Path, **stack_args: Any) -> "FakeStack":
        return FakeStack(self, workdir)  # what features hand every stack (a collector URL): unused


class FakeStack(Stack):
    kind = "fake"

    def __init__(self, spec: FakeSpec, workdir: Path):
        self.spec = spec
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]  # kept across restarts, as every real stack does
        self.entry: ManagedProcess | None = None
        self.dependency: ManagedProcess | None = None
        self.starts = 0
        self._seen: dict[tuple[int, float], ProcessId] = {}

    # --- life cycle

    def start(self) -> None:
        self.starts += 1
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.dependency = ManagedProcess(sleeper_argv(), env, self.workdir / "store.log", cwd=self.workdir)
        argv = [sys.executable, str(SERVER), "--port", str(self.port), "--replicas", str(self.spec.replicas),
                "--respawn-after", str(self.spec.respawn_after), "--parent", str(os.getpid())]
        if self.spec.fail_infer_after_restart and self.starts > 1:
            argv.append("--fail-infer")
        if self.spec.fail_start is not None:
            argv += ["--exit-at-start", str(self.spec.fail_start)]
        self.entry = ManagedProcess(argv, env, self.workdir / "api.log", cwd=self.workdir)
        self.roles()

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        last = "no answer yet"
        while time.monotonic() - started < timeout:
            assert self.entry is not None
            code = self.entry.returncode()
            if code is not None:
                raise StackFailed(f"fake api exited with code {code} before it was ready; "
                                  f"log: {tail(self.entry.log_path)}")
            health = self.health(timeout=0.5)
            shards = len(self.roles()[REPLICA])
            if health.ok and shards >= self.spec.replicas:
                return time.monotonic() - started
            last = f"health {health.status} {health.detail}; {shards} of {self.spec.replicas} shards"
            time.sleep(POLL_S)
        raise StackFailed(f"fake not ready after {timeout:.1f}s: {last}")

    def stop(self, graceful: bool = True) -> StopReport:
        report = StopReport()
        timeout = self.spec.stop_timeout if graceful else 0.0
        for name, process in ((ENTRY, self.entry), (DEPENDENCY, self.dependency)):
            if process is not None:
                _record(report, name, process, process.stop(timeout))
        self.entry = self.dependency = None
        return report

    # --- processes

    def roles(self) -> dict[str, list[ProcessId]]:
        shards = self.entry.refresh_descendants() if self.entry is not None else []
        live = {ENTRY: _live(self.entry), REPLICA: shards, DEPENDENCY: _live(self.dependency)}
        for idents in live.values():
            for ident in idents:
                self._seen[(ident.pid, ident.create_time)] = ident
        return live

    def owned_processes(self) -> list[ManagedProcess]:
        return [p for p in (self.entry, self.dependency) if p is not None]

    def log_files(self) -> dict[str, Path]:
        return {name: self.workdir / f"{name}.log" for name in (ENTRY, DEPENDENCY)}

    def seen(self) -> list[ProcessId]:
        """Every process this stack ever showed (entries, shards, stores of every start)."""
        return list(self._seen.values())

    def leftovers(self, within: float = 2.0) -> list[ProcessId]:
        """Processes it showed that are still alive `within` seconds from now (orphaned shards
        need a moment to see their parent is gone)."""
        deadline = time.monotonic() + within
        while True:
            alive = [ident for ident in self.seen() if ident.alive() is not None]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(POLL_S)

    # --- serving

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(http=f"http://127.0.0.1:{self.port}")

    def target(self, request_timeout: float) -> Target:
        return Target(self.endpoints.http, None, "fake", request_timeout=request_timeout)

    def health(self, timeout: float = 0.5) -> Health:
        return probe_http(f"{self.endpoints.http}/health", timeout)

    def canary(self, timeout: float) -> Health:
        return probe_post(f"{self.endpoints.http}/infer", b'{"canary": true}', timeout)

    def control(self, **fields: Any) -> None:
        """Tell the server to fail inference, be slow, fail health or crash (`crash="SIGSEGV"`)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0)
        try:
            headers = {"Content-Type": "application/json"}
            conn.request("POST", "/control", body=json.dumps(fields), headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
        except (OSError, http.client.HTTPException):
            if "crash" not in fields:  # a crash may end the process before the answer is read
                raise
        finally:
            conn.close()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "replicas": self.spec.replicas, "starts": self.starts}


def _live(process: ManagedProcess | None) -> list[ProcessId]:
    return [process.ident] if process is not None and process.ident.alive() is not None else []


def _record(report: StopReport, name: str, process: ManagedProcess, result: StopResult) -> None:
    report.exits[name] = result.as_exit(process.pid)
    if result.leftovers_killed:
        report.leaks.append(f"{name}: {len(result.leftovers_killed)} orphaned process(es) killed")
