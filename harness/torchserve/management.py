"""TorchServe's management API: `GET /models/NAME` describes the model and each worker."""

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    pid: int | None
    status: str  # READY, UNLOADING, ... as TorchServe reports it


@dataclass(frozen=True)
class ModelInfo:
    workers: tuple[WorkerInfo, ...]
    settings: dict[str, Any]  # everything else the API says about the model (retry timeout, ...)

    @property
    def ready(self) -> int:
        return sum(1 for w in self.workers if w.status == "READY")


class ManagementError(Exception):
    """No usable answer (not listening, frozen, not JSON)."""


def describe_model(base_url: str, model: str, timeout: float = 1.0) -> ModelInfo:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("GET", f"/models/{model}")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise ManagementError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    if response.status != 200:
        raise ManagementError(f"HTTP {response.status}: {body[:200]!r}")
    return parse_description(body)


def parse_description(body: bytes | str) -> ModelInfo:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ManagementError(f"not JSON: {exc}") from None
    entry = data[0] if isinstance(data, list) and data else data
    if not isinstance(entry, dict):
        raise ManagementError("unexpected model description")
    workers = tuple(
        WorkerInfo(str(w.get("id")), _int_or_none(w.get("pid")), str(w.get("status")))
        for w in entry.get("workers", [])
    )
    settings = {k: v for k, v in entry.items() if k not in ("workers", "jobQueueStatus")}
    return ModelInfo(workers, settings)


def _int_or_none(value: Any) -> int | None:
    try:
        pid = int(value)
    except (TypeError, ValueError):
        return None
    return pid if pid > 0 else None
