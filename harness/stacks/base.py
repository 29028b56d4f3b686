"""The interface every system under test implements."""

import http.client
import json
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.load.target import Target
from harness.observers.scrape_profile import GENERIC_PROFILE, ScrapeProfile
from harness.procs import ManagedProcess, ProcessId


@dataclass(frozen=True)
class Health:
    ok: bool
    status: int | None  # HTTP status, None when no answer came
    detail: str
    latency_s: float


@dataclass(frozen=True)
class Endpoints:
    http: str | None = None  # e.g. http://127.0.0.1:8000
    grpc: str | None = None  # e.g. 127.0.0.1:8001
    metrics: str | None = None  # Prometheus text endpoint


@dataclass
class StopReport:
    """How each process ended and what the stack left behind (a leak is a finding)."""

    exits: dict[str, Any] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)


class Stack(ABC):
    """Start, wait until ready, stop; name processes by role; expose logs and health."""

    kind: str = ""

    @abstractmethod
    def start(self) -> None:
        """Launch the stack's processes; returns once they are launched, not ready."""

    @abstractmethod
    def wait_ready(self, timeout: float) -> float:
        """Block until the stack serves; returns seconds waited. Raises StackFailed."""

    @abstractmethod
    def stop(self, graceful: bool = True) -> StopReport:
        """Stop every process this stack started and clean up what it left.

        Not graceful: SIGKILL at once. The stack can be started again on the same ports.
        """

    @abstractmethod
    def roles(self) -> dict[str, list[ProcessId]]:
        """Live processes by role (`server`, `stub`, `worker`, ...)."""

    @abstractmethod
    def log_files(self) -> dict[str, Path]:
        """Log file of each process, by role."""

    @abstractmethod
    def health(self, timeout: float = 0.5) -> Health:
        """One quick readiness probe."""

    def target(self, request_timeout: float) -> Target:
        """What user classes send requests to; stacks with a fixed model add its tensors."""
        endpoints = self.endpoints
        return Target(endpoints.http, endpoints.grpc, self.model_name, request_timeout=request_timeout)

    @property
    def model_name(self) -> str:
        """The model the load asks for ("" where the stack serves no fixed one)."""
        return ""

    def canary(self, timeout: float) -> Health | None:
        """One real inference through the serving path; None: this stack has no canary.

        Health endpoints lie: Triton keeps `/v2/health/ready` at 200 after a Python-backend stub
        died, and a frontend's health can be answered by a thread that is not the one serving.
        The supervisor sends the canary at a low rate, outside the load and its statistics.
        """
        return None

    def scrape_profile(self) -> ScrapeProfile:
        """What the Prometheus scraper keeps from `endpoints.metrics` and the report draws from it.

        The default keeps every family, rates every counter and charts the rates: a stack that
        declares nothing still gets its server's view journaled (TorchServe's before it has a
        profile). A stack kind that knows its server (Triton, vLLM) returns its own profile, kept
        in its own folder, so the core scraper names no server. A profile, never None: the
        scraper has one code path, and "scrape nothing" is `endpoints.metrics` left None.
        """
        return GENERIC_PROFILE

    def owned_processes(self) -> list[ManagedProcess]:
        """The processes this stack started itself (children of the harness): the only ones whose
        exit code or signal can be read. Descendants they spawn are reaped by their parents."""
        return []

    def exit_code(self, role: str, ident: ProcessId) -> int | None:
        """How a process of this stack ended (negative: the signal), read after its reap; None
        where no one can know (a descendant reaped by its own parent)."""
        for process in self.owned_processes():
            if process.pid == ident.pid and abs(process.ident.create_time - ident.create_time) < 0.01:
                return process.exit_code_after_reap()
        return None

    def resources(self) -> list[tuple[str, dict[str, Any]]]:
        """What the stack makes besides processes (containers), as (`module:function`, plan).

        The harness records these before `start`; `harness cleanup` calls each function with
        its plan to remove what a killed harness left (it must be idempotent).
        """
        return []

    @property
    @abstractmethod
    def endpoints(self) -> Endpoints:
        """Where load and scrapers go."""

    def describe(self) -> dict[str, Any]:
        """What the journal records about this stack when it is ready."""
        return {"kind": self.kind, "endpoints": self.endpoints.__dict__}


def get_json(url: str, timeout: float = 1.0) -> Any:
    """GET `url` and parse its JSON body; None when there is no answer or it is not JSON."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URL
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def probe_http(url: str, timeout: float = 0.5) -> Health:
    """GET `url`; healthy on any 2xx."""
    return _http_probe("GET", url, None, timeout)


def probe_post(url: str, body: bytes, timeout: float, content_type: str = "application/json") -> Health:
    """POST `body` to `url` (a canary's request); ok on any 2xx. The detail of a failure is the
    start of the server's answer, so the journal says why inference failed."""
    return _http_probe("POST", url, body, timeout, content_type)


def _http_probe(method: str, url: str, body: bytes | None, timeout: float,
                content_type: str = "application/json") -> Health:
    parts = urlsplit(url)
    started = time.monotonic()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        headers = {"Content-Type": content_type} if body is not None else {}
        conn.request(method, path or "/", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        ok = 200 <= response.status < 300
        detail = response.reason if ok else f"{response.reason}: {payload[:200].decode(errors='replace')}"
        return Health(ok, response.status, detail, time.monotonic() - started)
    except (OSError, http.client.HTTPException) as exc:
        detail = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
        return Health(False, None, detail, time.monotonic() - started)
    finally:
        conn.close()
