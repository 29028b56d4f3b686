"""The `model_control` fault against a stand-in of Triton's repository API, as 2.51 was seen to
answer it: unload and load answer 200, an unloaded model's ready check answers 400, the index
lists every model of the repository. The real server: tests/integration/test_repro_triton.py.
"""

import json
import os
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from faults.base import FaultContext, FaultError, fault_class, known_faults
from harness.procs import ProcessId
from harness.triton.model_control import ControlsModels, ModelControl, ModelControlParams
from harness.triton.spec import TritonSpec
from harness.triton.stack import TritonStack


class FakeRepository:
    def __init__(self, models: tuple[str, ...] = ("identity", "other")):
        self.ready = {name: True for name in models}
        self.calls: list[str] = []
        self.fail_load = False

    def handle(self, method: str, path: str) -> tuple[int, Any]:
        self.calls.append(f"{method} {path}")
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v2", "repository", "index"]:
            return 200, [{"name": n, "version": "1", "state": "READY"} if r else {"name": n} for n, r in
                         self.ready.items()]
        if method == "GET" and len(parts) == 4 and parts[:2] == ["v2", "models"] and parts[3] == "ready":
            return (200 if self.ready.get(parts[2]) else 400), ""
        if method == "POST" and len(parts) == 5 and parts[:3] == ["v2", "repository", "models"]:
            name, action = parts[3], parts[4]
            if name not in self.ready:
                return 400, {"error": f"failed to load '{name}', failed to poll from model repository"}
            if action == "load" and self.fail_load:
                return 400, {"error": f"load failed for '{name}'"}
            self.ready[name] = action == "load"
            return 200, ""
        return 404, {"error": "not found"}


@pytest.fixture
def repo() -> Iterator[tuple[FakeRepository, str]]:
    fake = FakeRepository()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            status, body = fake.handle(method, self.path)
            data = json.dumps(body).encode() if body != "" else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class ExplicitStack:
    """What the fault asks of a stack (ControlsModels), with a model folder on disk."""

    url: str | None
    repository: Path
    mode: str = "explicit"
    model_name: str = "identity"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_control(self) -> str:
        return self.mode

    @property
    def model_repository(self) -> Path:
        return self.repository

    @property
    def model_control_url(self) -> str | None:
        return self.url


def _ctx(stack: Any) -> FaultContext:
    def roles() -> dict[str, list[ProcessId]]:
        return {}

    def restart(graceful: bool) -> float:
        raise AssertionError("model_control never restarts the stack")

    return FaultContext(roles=roles, restart_stack=restart, rng=random.Random(1), stack=stack)


def _fault(**params: Any) -> ModelControl:
    return ModelControl(ModelControlParams.model_validate(params))


def _stack(url: str, tmp_path: Path, mode: str = "explicit") -> ExplicitStack:
    folder = tmp_path / "models" / "identity" / "1"
    folder.mkdir(parents=True)
    (folder / "model.py").write_text("# model\n")
    (folder.parent / "config.pbtxt").write_text('name: "identity"\n')
    return ExplicitStack(url, tmp_path / "models", mode)


def test_registered_as_a_fault_plugin() -> None:
    assert known_faults()["model_control"] == "harness.triton.model_control:ModelControl"
    assert fault_class("model_control") is ModelControl


def test_params_refuse_unknown_actions_and_keys() -> None:
    with pytest.raises(ValidationError, match="action"):
        ModelControlParams.model_validate({"action": "restart"})
    with pytest.raises(ValidationError, match="hold_for"):
        ModelControlParams.model_validate({"action": "unload", "hold_for": 3})
    assert ModelControlParams.model_validate({"action": "unload", "timeout": "5s"}).timeout == 5.0


def test_validate_needs_explicit_mode(repo: tuple[FakeRepository, str], tmp_path: Path) -> None:
    _, url = repo
    with pytest.raises(FaultError, match="needs `stack.model_control: explicit`.*'none'"):
        _fault(action="unload").validate(_ctx(_stack(url, tmp_path, mode="none")))
    with pytest.raises(FaultError, match="needs a Triton stack"):
        _fault(action="unload").validate(_ctx(object()))


def test_validate_names_the_models_the_repository_has(
    repo: tuple[FakeRepository, str], tmp_path: Path
) -> None:
    _, url = repo
    ctx = _ctx(_stack(url, tmp_path))
    _fault(action="unload").validate(ctx)  # the stack's own model
    _fault(action="load", model="other").validate(ctx)
    expected = r"model 'resnet' is not in the model repository \(it has: identity, other\)"
    with pytest.raises(FaultError, match=expected):
        _fault(action="unload", model="resnet").validate(ctx)


def test_validate_without_a_server_is_one_clear_error(tmp_path: Path) -> None:
    ctx = _ctx(_stack("http://127.0.0.1:9", tmp_path))
    with pytest.raises(FaultError, match="repository index did not answer"):
        _fault(action="unload").validate(ctx)


def test_unload_then_restore_loads_it_again(repo: tuple[FakeRepository, str], tmp_path: Path) -> None:
    fake, url = repo
    ctx = _ctx(_stack(url, tmp_path))
    fault = _fault(action="unload")
    plan = fault.plan(ctx)
    assert plan["model"] == "identity" and plan["was_ready"] is True and plan["action"] == "unload"
    details = fault.inject(ctx, plan)
    assert details["answer"]["status"] == 200 and details["model_ready_after"] is False
    assert fake.ready["identity"] is False
    fault.restore(ctx, plan)
    assert fake.ready["identity"] is True
    assert fake.calls[-2:] == ["POST /v2/repository/models/identity/load", "GET /v2/models/identity/ready"]


def test_restore_fails_loudly_when_the_model_does_not_come_back(
    repo: tuple[FakeRepository, str], tmp_path: Path
) -> None:
    fake, url = repo
    ctx = _ctx(_stack(url, tmp_path))
    fault = _fault(action="unload")
    plan = fault.plan(ctx)
    fault.inject(ctx, plan)
    fake.fail_load = True
    with pytest.raises(FaultError, match="loading 'identity' again failed: 400"):
        fault.restore(ctx, plan)


def test_undo_works_from_the_recorded_plan_alone(repo: tuple[FakeRepository, str], tmp_path: Path) -> None:
    fake, url = repo
    ctx = _ctx(_stack(url, tmp_path))
    fault = _fault(action="unload")
    plan = json.loads(json.dumps(fault.plan(ctx)))  # as restore.jsonl holds it
    fault.inject(ctx, plan)
    ModelControl.undo(plan)
    assert fake.ready["identity"] is True
    calls = len(fake.calls)
    ModelControl.undo(plan)  # idempotent: a ready model is left alone
    assert fake.calls[calls:] == ["GET /v2/models/identity/ready"]


def test_undo_with_the_server_gone_has_nothing_to_do(tmp_path: Path) -> None:
    plan = {"base_url": "http://127.0.0.1:9", "model": "identity", "action": "unload", "timeout": 1.0,
            "model_dir": str(tmp_path), "was_ready": True}
    ModelControl.undo(plan)  # no answer: the server and its models are gone


def test_reload_touches_the_model_files_then_loads(repo: tuple[FakeRepository, str], tmp_path: Path) -> None:
    fake, url = repo
    stack = _stack(url, tmp_path)
    model_py = stack.repository / "identity" / "1" / "model.py"
    old = 1_000_000_000.0
    for path in [model_py, model_py.parent.parent / "config.pbtxt"]:
        os.utime(path, (old, old))
    fault = _fault(action="reload")
    ctx = _ctx(stack)
    plan = fault.plan(ctx)
    details = fault.inject(ctx, plan)
    config = model_py.parent.parent / "config.pbtxt"
    assert model_py.stat().st_mtime > old + 1 and config.stat().st_mtime > old + 1
    assert "POST /v2/repository/models/identity/load" in fake.calls and details["model_ready_after"] is True
    fault.restore(ctx, plan)  # nothing to undo: the model is loaded
    assert fake.calls.count("POST /v2/repository/models/identity/load") == 1


def test_a_refused_call_fails_the_injection(repo: tuple[FakeRepository, str], tmp_path: Path) -> None:
    fake, url = repo
    ctx = _ctx(_stack(url, tmp_path))
    fault = _fault(action="load", model="other")
    plan = fault.plan(ctx)
    fake.fail_load = True
    with pytest.raises(FaultError, match="model_control load 'other': 400"):
        fault.inject(ctx, plan)


def test_the_triton_stack_speaks_the_protocol(tmp_path: Path) -> None:
    spec = TritonSpec.model_validate({"kind": "triton", "model_control": "explicit"})
    stack = TritonStack(spec, tmp_path)
    assert isinstance(stack, ControlsModels)
    assert stack.model_control == "explicit" and stack.model_repository == (tmp_path / "models").resolve()
    assert stack._model_control_args() == ["--model-control-mode=explicit", "--load-model=identity"]
    plain = TritonStack(TritonSpec.model_validate({"kind": "triton"}), tmp_path)
    assert plain._model_control_args() == [] and plain.model_control == "none"
    with pytest.raises(ValidationError, match="model_control"):
        TritonSpec.model_validate({"kind": "triton", "model_control": "poll"})


def test_the_stop_log_names_each_leftover(tmp_path: Path) -> None:
    stack = TritonStack(TritonSpec.model_validate({"kind": "triton"}), tmp_path)
    stack._log_stop([ProcessId(42, 1.0, "triton_python_b")], ["triton_python_backend_shm_region_7"])
    stack._log_stop([], [])  # a clean stop adds nothing
    assert stack.stop_log.read_text().splitlines() == [
        "orphaned process left after stop: pid 42 triton_python_b",
        "shared-memory region left in /dev/shm after stop: triton_python_backend_shm_region_7 (removed)",
    ]


def test_requests_have_a_batch_dimension_only_where_the_model_batches(tmp_path: Path) -> None:
    batched = TritonStack(TritonSpec.model_validate({"kind": "triton"}), tmp_path)
    assert batched._request_shape() == (1, 4)
    plain = TritonStack(TritonSpec.model_validate({"kind": "triton", "max_batch_size": 0}), tmp_path)
    assert plain._request_shape() == (4,)
