"""Triton's trace protocol: read and change trace settings of a running server.

    GET/POST /v2/trace/setting                   global settings
    GET/POST /v2/models/<model>/trace/setting    one model's settings

Standard library only (http.client), short timeouts, one connection per call (so nothing
keeps a connection open that would delay the server's shutdown).

What a real Triton 2.51 did (triton mode):
- every value must be a JSON string (`"trace_rate": "5"`); a number gets HTTP 500
  "attempt to access JSON non-string as string". `trace_level` is a list of strings.
- a POST answers with the settings now in force; unknown keys are ignored silently;
- `trace_file` cannot be changed (HTTP 501); a bad value gets 400 ("Unable to parse ...");
- for a model, `null` clears that model's own value so it follows the global one again;
  an empty body `{}` clears nothing. An unknown model gets 400.
- GET works in opentelemetry mode too and also shows `url` and the `bsp_*` settings.
"""

import http.client
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

SettingValue = str | int | Sequence[str] | None
Settings = dict[str, Any]

# Short names accepted by update(); the protocol's own names pass through unchanged.
ALIASES = {
    "rate": "trace_rate",
    "level": "trace_level",
    "count": "trace_count",
    "file": "trace_file",
    "log-frequency": "log_frequency",
}
# What can be changed at run time, and so what restore() puts back.
RESTORABLE = ("trace_level", "trace_rate", "trace_count", "log_frequency")


class TraceSettingsError(Exception):
    """The server refused or failed a trace-setting request (or could not be reached)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class TraceSettingsClient:
    def __init__(self, base_url: str, timeout: float = 2.0):
        """`base_url`: the server's HTTP endpoint, e.g. http://127.0.0.1:8000."""
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need an http://host:port URL, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout

    def path(self, model: str | None = None) -> str:
        if model is None:
            return f"{self.prefix}/v2/trace/setting"
        return f"{self.prefix}/v2/models/{quote(model, safe='')}/trace/setting"

    def get(self, model: str | None = None) -> Settings:
        """The settings in force (for `model`: its own, else the global ones it follows)."""
        return self._call("GET", self.path(model), None)

    def update(self, changes: Mapping[str, SettingValue], model: str | None = None) -> Settings:
        """Change some settings; returns the settings now in force.

        Values may be ints or strings (sent as strings); `trace_level` a name or a list;
        None (model settings only) clears the model's own value.
        """
        body = normalize(changes)
        if model is None and any(value is None for value in body.values()):
            raise ValueError("null (clear) only applies to a model's trace settings")
        return self._call("POST", self.path(model), body)

    def set_rate(self, rate: int, model: str | None = None) -> Settings:
        return self.update({"trace_rate": rate}, model)

    def set_level(self, levels: str | Sequence[str], model: str | None = None) -> Settings:
        return self.update({"trace_level": levels}, model)

    def set_count(self, count: int, model: str | None = None) -> Settings:
        return self.update({"trace_count": count}, model)

    def restore(self, previous: Mapping[str, Any], model: str | None = None) -> Settings:
        """Put back the run-time-changeable values of `previous` (a get() result)."""
        body = {key: previous[key] for key in RESTORABLE if key in previous}
        return self.update(body, model)

    def save(self, keys: Sequence[str], model: str | None = None) -> Settings:
        """What restoring `keys` later needs: for a model, None where it follows the global."""
        wanted = [ALIASES.get(k, k) for k in keys]
        current = self.get(model)
        saved: Settings = {key: current.get(key) for key in wanted}
        if model is not None:
            global_now = self.get(None)
            for key in wanted:
                if current.get(key) == global_now.get(key):
                    saved[key] = None  # most likely inherited: clear it again on restore
        return saved

    @contextmanager
    def changed(
        self, changes: Mapping[str, SettingValue], model: str | None = None
    ) -> Iterator[Settings]:
        """Apply `changes` for the duration of a with-block, then put the old values back.

        For a model whose value equalled the global one before, the model's own value is
        cleared (null) on the way out rather than pinned.
        """
        body = normalize(changes)
        saved = self.save(list(body), model)
        applied = self._call("POST", self.path(model), body)
        try:
            yield applied
        finally:
            if model is None:
                self.update({k: v for k, v in saved.items() if v is not None}, None)
            else:
                self.update(saved, model)

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None) -> Settings:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            raise TraceSettingsError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
        try:
            data = json.loads(raw.decode("utf-8", errors="replace")) if raw else {}
        except json.JSONDecodeError:
            data = {"error": raw[:200].decode("utf-8", errors="replace")}
        if status != 200 or not isinstance(data, dict):
            message = data.get("error") if isinstance(data, dict) else None
            raise TraceSettingsError(f"{method} {path}: HTTP {status}: {message or data}", status)
        return data


def normalize(changes: Mapping[str, SettingValue]) -> dict[str, Any]:
    """Protocol names, string values, level as a list (None kept: it clears)."""
    body: dict[str, Any] = {}
    for key, value in changes.items():
        name = ALIASES.get(key, key)
        if value is None:
            body[name] = None
        elif name == "trace_level":
            levels = [value] if isinstance(value, str) else list(value)  # type: ignore[arg-type]
            body[name] = [str(level).upper() for level in levels]
        elif isinstance(value, bool):
            raise ValueError(f"trace setting {name} must be a number or string, got {value!r}")
        elif isinstance(value, int | str):
            body[name] = str(value)
        else:
            raise ValueError(f"trace setting {name} must be a number or string, got {value!r}")
    return body
