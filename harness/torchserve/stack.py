"""A real TorchServe: the Java frontend the harness starts, and the Python workers it spawns.

Roles: `frontend` (the java process, the harness's own child) and `worker` (each Python worker:
a descendant of the frontend running `model_service_worker.py` whose PID the management API
lists for the model; when the API does not answer, the process table alone).
"""

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from harness.errors import StackFailed
from harness.load.target import Target
from harness.observers.base import Observer
from harness.observers.logwatch import FileTail
from harness.procs import ManagedProcess, ProcessId, tail
from harness.stacks.base import Endpoints, Health, Stack, StopReport, probe_http, probe_post
from harness.stacks.ports import free_ports
from harness.torchserve.files import (
    LOG4J2,
    TorchServeInstall,
    build_archive,
    model_config,
    server_config,
)
from harness.torchserve.logparse import parse_line
from harness.torchserve.management import ManagementError, ModelInfo, describe_model
from harness.torchserve.retries import RetryTracker
from harness.torchserve.spec import TorchServeSpec
from harness.torchserve.target import TorchServeTarget

WORKER_SCRIPT = "model_service_worker.py"
SETTINGS_FILE = "model_settings.json"  # the management API's description of the model
POLL_S = 0.2
ROLE_API_TIMEOUT_S = 0.3
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes with its terminating NUL; keep a margin


class TorchServeStack(Stack):
    kind = "torchserve"

    def __init__(self, spec: TorchServeSpec, workdir: Path):
        self.spec = spec
        self.workdir = workdir
        self.install: TorchServeInstall | None = None
        self.process: ManagedProcess | None = None
        self.ports: dict[str, int] = {}
        self.socket_dir: Path | None = None
        self.settings: dict[str, Any] = {}  # the model as the management API described it
        self._is_worker: dict[tuple[int, float], bool] = {}

    @property
    def model_name(self) -> str:
        return self.spec.model

    @property
    def log_path(self) -> Path:
        return self.workdir / "logs" / "torchserve.log"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['management']}" if self.ports else ""

    @property
    def endpoints(self) -> Endpoints:
        if not self.ports:
            return Endpoints()
        return Endpoints(
            http=f"http://127.0.0.1:{self.ports['inference']}",
            metrics=f"http://127.0.0.1:{self.ports['metrics']}/metrics",
        )

    # --- lifecycle

    def start(self) -> None:
        self.install = TorchServeInstall.find()
        store = self.workdir / "model-store"
        build_archive(self.spec, store, self.workdir / "archive-src")
        if not self.ports:  # a restart keeps its ports, so clients keep their URLs
            names = ("inference", "management", "metrics", "grpc_inference", "grpc_management")
            self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        config = self.workdir / "config.properties"
        config.write_text(server_config(self.ports, self.spec), encoding="utf-8")
        log_config = self.workdir / "log4j2.xml"
        log_config.write_text(LOG4J2, encoding="utf-8")
        self.socket_dir = _socket_dir(self.workdir)
        models = f"{self.spec.model}={self.spec.model}.mar"
        argv = self.install.argv(config.resolve(), store.resolve(), log_config.resolve(), self.socket_dir,
                                 models)
        env = self.install.environment(self.log_path.parent)
        self.process = ManagedProcess(argv, env, self.log_path, cwd=self.workdir)

    def wait_ready(self, timeout: float) -> float:
        """Until every worker is READY; stops early when the model cannot recover."""
        assert self.process is not None, "start() first"
        started = time.monotonic()
        follower = FileTail(self.log_path)
        tracker = RetryTracker(storm_after=self.spec.storm_after)
        info: ModelInfo | None = None
        try:
            while time.monotonic() - started < timeout:
                self._check_alive()
                _feed(follower, tracker)
                self._check_recoverable(tracker)
                try:
                    info = describe_model(self.management_url, self.spec.model)
                except ManagementError:
                    info = None
                if info is not None:
                    self._remember_settings(info.settings)
                if info is not None and info.ready >= self.spec.workers:
                    self.process.refresh_descendants()
                    return time.monotonic() - started
                time.sleep(POLL_S)
        finally:
            follower.close()
        ready = f"{info.ready} of {self.spec.workers} workers READY" if info else "no answer from the API"
        raise StackFailed(
            f"TorchServe not ready after {timeout:.0f}s (stack.startup_timeout): {ready}; "
            f"{_last_error(tracker)}log {self.log_path}"
        )

    def _remember_settings(self, settings: dict[str, Any]) -> None:
        """Kept in the run folder too: the report shows them even when the model never got ready."""
        if settings != self.settings:
            self.settings = settings
            (self.workdir / SETTINGS_FILE).write_text(json.dumps(settings, indent=1), encoding="utf-8")

    def retry_timeout(self) -> int | None:
        """maxRetryTimeoutInSec as TorchServe reports it, else as the scenario set it."""
        value = self.settings.get("maxRetryTimeoutInSec")
        return int(value) if isinstance(value, int) else self.spec.max_retry_timeout

    def _check_alive(self) -> None:
        assert self.process is not None
        code = self.process.returncode()
        if code is not None:
            raise StackFailed(
                f"TorchServe frontend exited with code {code} before it was ready; "
                f"log {self.log_path}: {tail(self.log_path)}"
            )

    def _check_recoverable(self, tracker: RetryTracker) -> None:
        """Give-ups always end the wait (TorchServe itself stopped); storms when stop_on_storm."""
        reason = tracker.not_recoverable(time.time(), self.retry_timeout())
        if reason is None:
            return
        if reason.startswith("retry storm") and not self.spec.stop_on_storm:
            return
        raise StackFailed(f"TorchServe model {self.spec.model!r} is not recoverable: {reason}")

    def stop(self, graceful: bool = True) -> StopReport:
        report = StopReport()
        if self.process is None:
            return report
        self.roles()  # remember the latest workers, so a worker left behind is found and ended
        result = self.process.stop(self.spec.stop_timeout if graceful else 0.0)
        report.exits["frontend"] = result.as_exit(self.process.pid)
        if result.leftovers_killed:
            pids = ", ".join(str(p.pid) for p in result.leftovers_killed)
            count = len(result.leftovers_killed)
            report.leaks.append(f"{count} worker process(es) outlived the frontend and were killed: {pids}")
        if self.socket_dir is not None and not self.socket_dir.is_relative_to(self.workdir.resolve()):
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        self.socket_dir = None
        return report

    # --- processes

    def roles(self) -> dict[str, list[ProcessId]]:
        if self.process is None:
            return {}
        frontend = [self.process.ident] if self.process.ident.alive() is not None else []
        workers = [p for p in self.process.refresh_descendants() if self._worker_process(p)]
        listed = self._api_pids()
        if listed is not None:
            workers = [p for p in workers if p.pid in listed]
        return {"frontend": frontend, "worker": workers}

    def _worker_process(self, ident: ProcessId) -> bool:
        key = (ident.pid, ident.create_time)
        if self._is_worker.get(key):
            return True
        # Only a yes is remembered: a worker seen between its fork and its exec still has the
        # frontend's (java) command line, and a cached no would hide it from faults for good.
        proc = ident.alive()
        try:
            is_worker = proc is not None and any(WORKER_SCRIPT in a for a in proc.cmdline())
        except psutil.Error:
            return False
        if is_worker:
            self._is_worker[key] = True
        return is_worker

    def _api_pids(self) -> set[int] | None:
        try:
            info = describe_model(self.management_url, self.spec.model, timeout=ROLE_API_TIMEOUT_S)
        except ManagementError:
            return None
        return {w.pid for w in info.workers if w.pid is not None}

    def canary(self, timeout: float) -> Health:
        """One prediction through the frontend and a worker (`/ping` is the frontend's alone)."""
        body = json.dumps({"data": [0.0, 0.0, 0.0, 0.0]}).encode()
        return probe_post(f"{self.endpoints.http}/predictions/{self.spec.model}", body, timeout)

    def owned_processes(self) -> list[ManagedProcess]:
        return [self.process] if self.process is not None else []

    def log_files(self) -> dict[str, Path]:
        return {"frontend": self.log_path} if self.process else {}

    def health(self, timeout: float = 0.5) -> Health:
        return probe_http(f"{self.endpoints.http}/ping", timeout)

    def target(self, request_timeout: float) -> Target:
        return TorchServeTarget(
            http_url=self.endpoints.http, grpc_url=None, model=self.spec.model,
            request_timeout=request_timeout, echo=self.spec.handler in ("echo", "delay"),
        )

    def extra_observers(self) -> list[Observer]:
        from harness.torchserve.workers_observer import TorchServeWorkers

        return [TorchServeWorkers()]

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            model=self.spec.model,
            handler=self.spec.handler,
            version=self.install.version if self.install else None,
            management=self.management_url,
            configured=model_config(self.spec),
            model_settings=self.settings,
        )
        if self.process is not None:
            info["pid"] = self.process.pid
        return info


def _socket_dir(workdir: Path) -> Path:
    """java.io.tmpdir: workers listen on unix sockets there, and models are unpacked there.

    Inside the run folder when the socket path fits the 108-byte limit (so it stays with the run,
    even after a SIGKILL); else a private folder under /tmp, removed when the stack stops.
    """
    inside = (workdir / "tmp").resolve()
    if len(str(inside / ".ts.sock.65535")) <= SOCKET_PATH_MAX:
        inside.mkdir(parents=True, exist_ok=True)
        return inside
    return Path(tempfile.mkdtemp(prefix="hts-"))


def _feed(follower: FileTail, tracker: RetryTracker) -> None:
    for block in follower.read():
        for line in block.decode("utf-8", errors="replace").splitlines():
            event = parse_line(line)
            if event is not None:
                tracker.feed(event)


def _last_error(tracker: RetryTracker) -> str:
    errors = [a for history in tracker.attempts.values() for a in history if a.error]
    if not errors:
        return ""
    last = max(errors, key=lambda a: a.error_t or 0.0)
    return f"last worker error: {last.error}; "
