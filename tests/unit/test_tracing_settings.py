"""The trace-setting client against a stand-in that behaves as a real Triton 2.51 was seen to.

The real server is exercised in tests/integration/test_tracing_triton.py.
"""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from harness.stacks.ports import free_ports
from harness.tracing.settings import TraceSettingsClient, TraceSettingsError, normalize

MODELS = ("identity",)


class FakeTriton:
    """Global settings, per-model overrides, Triton's answers for what it refuses."""

    def __init__(self) -> None:
        self.global_settings: dict[str, Any] = {
            "trace_level": ["TIMESTAMPS"], "trace_rate": "1", "trace_count": "-1",
            "log_frequency": "0", "trace_file": "/tmp/trace.json", "trace_mode": "triton",
        }
        self.model_settings: dict[str, dict[str, Any]] = {}
        self.posts: list[tuple[str, Any]] = []

    def effective(self, model: str | None) -> dict[str, Any]:
        merged = dict(self.global_settings)
        if model is not None:
            merged.update(self.model_settings.get(model, {}))
        return merged

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        model = None
        if parts[:2] == ["v2", "models"] and parts[3:] == ["trace", "setting"]:
            model = parts[2]
            if model not in MODELS:
                return 400, {"error": f"Request for unknown model : {model}"}
        elif parts != ["v2", "trace", "setting"]:
            return 404, {"error": "Not Found"}
        if method == "GET":
            return 200, self.effective(model)
        self.posts.append((path, body))
        for key, value in body.items():
            if key == "trace_file":
                return 501, {"error": "trace file location can not be updated through network "
                             "protocol"}
            if value is not None and key != "trace_level" and not isinstance(value, str):
                return 500, {"error": "attempt to access JSON non-string as string"}
            if key == "trace_rate" and value is not None and not value.isdigit():
                return 400, {"error": f"Unable to parse 'trace_rate', got: {value}"}
        target = self.global_settings if model is None else self.model_settings.setdefault(
            model, {})
        for key, value in body.items():
            if key not in self.global_settings:
                continue  # unknown keys are ignored
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        return 200, self.effective(model)


@pytest.fixture()
def fake() -> Iterator[tuple[FakeTriton, str]]:
    state = FakeTriton()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = state.handle(method, self.path, body)
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_normalize_sends_strings_and_level_lists() -> None:
    assert normalize({"rate": 10, "level": "timestamps", "count": "-1", "log_frequency": 0}) == {
        "trace_rate": "10", "trace_level": ["TIMESTAMPS"], "trace_count": "-1",
        "log_frequency": "0",
    }
    assert normalize({"trace_level": ["TIMESTAMPS", "TENSORS"], "trace_rate": None}) == {
        "trace_level": ["TIMESTAMPS", "TENSORS"], "trace_rate": None,
    }
    with pytest.raises(ValueError):
        normalize({"rate": True})
    with pytest.raises(ValueError):
        normalize({"rate": 1.5})  # type: ignore[dict-item]


def test_get_and_update(fake: tuple[FakeTriton, str]) -> None:
    state, url = fake
    client = TraceSettingsClient(url)
    assert client.get()["trace_rate"] == "1"
    now = client.update({"rate": 100, "level": ["TIMESTAMPS", "TENSORS"]})
    assert now["trace_rate"] == "100" and now["trace_level"] == ["TIMESTAMPS", "TENSORS"]
    assert state.posts[-1] == ("/v2/trace/setting",
                               {"trace_rate": "100", "trace_level": ["TIMESTAMPS", "TENSORS"]})
    assert client.set_rate(5, model="identity")["trace_rate"] == "5"
    assert client.get()["trace_rate"] == "100"
    assert client.get("identity")["trace_rate"] == "5"
    assert client.set_count(3)["trace_count"] == "3"
    assert client.set_level("OFF")["trace_level"] == ["OFF"]


def test_errors_carry_the_status(fake: tuple[FakeTriton, str]) -> None:
    _, url = fake
    client = TraceSettingsClient(url)
    with pytest.raises(TraceSettingsError, match="HTTP 400: Request for unknown model") as info:
        client.get("nosuch")
    assert info.value.status == 400
    with pytest.raises(TraceSettingsError, match="HTTP 501") as info:
        client.update({"trace_file": "/tmp/other.json"})
    assert info.value.status == 501
    with pytest.raises(TraceSettingsError, match="Unable to parse"):
        client.update({"rate": "often"})
    with pytest.raises(ValueError, match="only applies to a model"):
        client.update({"rate": None})


def test_unreachable_server_fails_fast() -> None:
    (port,) = free_ports(1)
    client = TraceSettingsClient(f"http://127.0.0.1:{port}", timeout=0.5)
    with pytest.raises(TraceSettingsError, match="ConnectionRefusedError") as info:
        client.get()
    assert info.value.status is None


def test_changed_restores_global_values(fake: tuple[FakeTriton, str]) -> None:
    state, url = fake
    client = TraceSettingsClient(url)
    before = client.get()
    with client.changed({"rate": 10, "level": ["TIMESTAMPS", "TENSORS"]}) as applied:
        assert applied["trace_rate"] == "10"
        assert client.get()["trace_level"] == ["TIMESTAMPS", "TENSORS"]
    assert client.get() == before


def test_changed_on_a_model_clears_what_it_inherited(fake: tuple[FakeTriton, str]) -> None:
    state, url = fake
    client = TraceSettingsClient(url)
    client.update({"trace_count": "50"}, model="identity")  # the model's own value
    with client.changed({"rate": 7, "count": 9}, model="identity"):
        assert client.get("identity")["trace_rate"] == "7"
        assert client.get()["trace_rate"] == "1"
    # rate was inherited: cleared (null), so it follows the global value again
    assert state.model_settings["identity"] == {"trace_count": "50"}
    client.set_rate(4)
    assert client.get("identity")["trace_rate"] == "4"
    assert client.get("identity")["trace_count"] == "50"


def test_changed_restores_even_when_the_block_fails(fake: tuple[FakeTriton, str]) -> None:
    _, url = fake
    client = TraceSettingsClient(url)
    with pytest.raises(RuntimeError):
        with client.changed({"rate": 3}):
            raise RuntimeError("boom")
    assert client.get()["trace_rate"] == "1"


def test_restore_puts_back_only_changeable_settings(fake: tuple[FakeTriton, str]) -> None:
    state, url = fake
    client = TraceSettingsClient(url)
    saved = client.get()
    client.update({"rate": 20, "log_frequency": 5})
    client.restore(saved)
    assert client.get() == saved
    assert "trace_file" not in state.posts[-1][1] and "trace_mode" not in state.posts[-1][1]


def test_base_url_forms() -> None:
    client = TraceSettingsClient("127.0.0.1:8000")
    assert (client.host, client.port) == ("127.0.0.1", 8000)
    assert client.path("my model") == "/v2/models/my%20model/trace/setting"
    with pytest.raises(ValueError):
        TraceSettingsClient("https://127.0.0.1:8000")
