"""Reaching a Docker engine through the `docker` SDK, and the labels that mark the harness's containers.

The engine's address comes from the scenario (`docker_host`), else DOCKER_HOST, else Docker's
default socket. When nothing answers, the error names the address tried and where it came from:
"cannot connect" alone sends a user hunting for the wrong socket.
"""

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.errors import StackFailed, UsageError
from harness.loopback import is_loopback

DEFAULT_HOST = "unix:///var/run/docker.sock"
INSTALL_HINT = "install the Docker SDK with: pip install docker"
API_TIMEOUT_S = 60

# Every container the harness creates carries these; it acts only on containers that carry
# its run's label or that the scenario names.
RUN_LABEL = "serving-harness.run"
ROLE_LABEL = "serving-harness.role"
KIND_LABEL = "serving-harness.stack"


class EngineUnreachable(StackFailed):
    """No Docker engine answered at the address tried (the run cannot start its stack)."""


def resolve_host(configured: str | None) -> tuple[str, str]:
    """The engine address to use and where it came from (`scenario`, `DOCKER_HOST`, `default`)."""
    if configured:
        return check_host(configured), "scenario"
    env = os.environ.get("DOCKER_HOST")
    if env:
        return check_host(env), "DOCKER_HOST"
    return DEFAULT_HOST, "default"


def check_host(host: str) -> str:
    """A unix socket, or tcp to a loopback address: the harness talks to no other machine."""
    parts = urlsplit(host)
    if parts.scheme == "unix" and parts.path:
        return host
    if parts.scheme in ("tcp", "http") and parts.hostname and is_loopback(parts.hostname):
        return host
    raise UsageError(
        f"docker host {host!r}: use unix:///path/to/docker.sock or tcp://127.0.0.1:PORT (loopback only)"
    )


def connect(configured: str | None = None) -> Any:
    """A `docker.DockerClient` that has answered a ping; EngineUnreachable names the socket tried."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        raise StackFailed(f"container stacks need the Docker SDK; {INSTALL_HINT}") from None
    host, source = resolve_host(configured)
    try:
        client = docker.DockerClient(base_url=host, timeout=API_TIMEOUT_S)
        client.ping()
    except DockerException as exc:
        raise EngineUnreachable(_unreachable(host, source, exc)) from None
    return client


def _unreachable(host: str, source: str, exc: Exception) -> str:
    origin = f"from {source}" if source != "default" else "Docker's default; DOCKER_HOST is unset"
    return (f"no Docker engine answers at {host} ({origin}): {_reason(host, exc)}; "
            "start dockerd there or set DOCKER_HOST")


def _reason(host: str, exc: Exception) -> str:
    """Why, in words: the socket is missing, refuses, or denies us (the SDK's text is long)."""
    parts = urlsplit(host)
    if parts.scheme == "unix":
        path = Path(parts.path)
        if not path.exists():
            return f"{path} does not exist"
        if not path.is_socket():
            return f"{path} is not a socket"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"permission denied on {path}"
    text = str(exc)
    for known in ("Connection refused", "Permission denied", "timed out", "No such file or directory"):
        if known in text:
            return known.lower()
    return text[:200]


def run_filter(run_id: str) -> dict[str, str]:
    """The label filter that selects exactly one run's containers."""
    return {"label": f"{RUN_LABEL}={run_id}"}
