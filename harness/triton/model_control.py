"""`model_control`: unload, load or reload a Triton model through its repository API, under load.

Triton only takes these calls in explicit model-control mode (`stack.model_control: explicit`),
where the stack loads its model at start with `--load-model`. The fault's `duration` is how long
the model stays as the action left it: a model it unloaded is loaded again on restore (and by
`harness cleanup` from the plan, if the harness died first).

`reload` is what an operator does to roll out a changed model: touch the model's files, then
`load` it again. Triton reads the repository's modification times and reloads only a model whose
files changed, so a plain `load` of a loaded model is a no-op (core's model_repository_manager).
"""

import http.client
import json
import os
import time
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

from pydantic import Field

from faults.base import Fault, FaultContext, FaultError, FaultParams
from harness.specbase import Duration


@runtime_checkable
class ControlsModels(Protocol):
    """A stack whose models can be loaded and unloaded at run time (Triton in explicit mode)."""

    @property
    def model_control(self) -> str: ...

    @property
    def model_repository(self) -> Path: ...

    @property
    def model_control_url(self) -> str | None: ...


class ModelControlParams(FaultParams):
    action: Literal["unload", "load", "reload"]
    model: str | None = None  # None: the stack's own model
    # For one repository call: an unload waits for the requests in flight.
    timeout: Duration = Field(30.0, gt=0, le=600)


class Answer:
    """One repository API call: its HTTP status (None: no answer), body start, and seconds."""

    def __init__(self, status: int | None, body: str, seconds: float):
        self.status = status
        self.body = body
        self.seconds = seconds

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "seconds": round(self.seconds, 3)}


def call(base_url: str, method: str, path: str, timeout: float, body: bytes | None = None,
         limit: int | None = 300) -> Answer:
    """One request; `limit` cuts the body kept (for the journal), None keeps all of it."""
    parts = urlsplit(base_url)
    started = time.monotonic()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read()[:limit].decode(errors="replace")
        return Answer(response.status, text, time.monotonic() - started)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
    finally:
        conn.close()


def repository_index(base_url: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Every model the repository holds, loaded or not: `[{"name", "version", "state"}, ...]`."""
    answer = call(base_url, "POST", "/v2/repository/index", timeout, b"{}", limit=None)
    if not answer.ok:
        raise FaultError(f"model_control: the repository index did not answer "
                         f"({answer.status}: {answer.body[:200]})")
    try:
        index = json.loads(answer.body)
    except ValueError:
        raise FaultError(f"model_control: the repository index is not JSON: {answer.body[:200]}") from None
    return [entry for entry in index if isinstance(entry, dict)] if isinstance(index, list) else []


def model_ready(base_url: str, model: str, timeout: float = 2.0) -> bool:
    return call(base_url, "GET", f"/v2/models/{quote(model)}/ready", timeout).ok


def _model_path(model: str, action: str) -> str:
    return f"/v2/repository/models/{quote(model)}/{action}"


def load_model(base_url: str, model: str, timeout: float) -> Answer:
    return call(base_url, "POST", _model_path(model, "load"), timeout, b"{}")


def unload_model(base_url: str, model: str, timeout: float) -> Answer:
    return call(base_url, "POST", _model_path(model, "unload"), timeout, b"{}")


def _stack(ctx: FaultContext) -> ControlsModels:
    stack = ctx.stack
    if not isinstance(stack, ControlsModels):
        raise FaultError("model_control needs a Triton stack "
                         "(`stack.kind: triton` with `model_control: explicit`)")
    if stack.model_control != "explicit":
        raise FaultError(f"model_control needs `stack.model_control: explicit` (Triton refuses repository "
                         f"load/unload otherwise); this stack's is {stack.model_control!r}")
    return stack


def _base_url(stack: ControlsModels) -> str:
    url = stack.model_control_url
    if url is None:
        raise FaultError("model_control: the stack has no HTTP endpoint yet")
    return url


def _touch(model_dir: Path) -> None:
    """Newer modification times on the model's files: what makes Triton load it again (a touched
    config alone, unchanged, is taken in place in under a millisecond: seen on 2.51)."""
    now = time.time()
    for path in [model_dir, *model_dir.rglob("*")]:
        if "__pycache__" not in path.parts:
            os.utime(path, (now, now))


class ModelControl(Fault):
    """Unload, load or reload a model through Triton's repository API; loaded again on restore."""

    kind = "model_control"
    params_model = ModelControlParams

    def _model(self, ctx: FaultContext) -> str:
        params = self.params
        assert isinstance(params, ModelControlParams)
        if params.model is not None:
            return params.model
        return str(getattr(ctx.stack, "model_name", ""))

    def validate(self, ctx: FaultContext) -> None:
        stack = _stack(ctx)
        model = self._model(ctx)
        names = sorted({str(entry.get("name")) for entry in repository_index(_base_url(stack))})
        if model not in names:
            raise FaultError(f"model_control: model {model!r} is not in the model repository "
                             f"(it has: {', '.join(names) or 'nothing'})")

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        params = self.params
        assert isinstance(params, ModelControlParams)
        stack = _stack(ctx)
        base_url = _base_url(stack)
        model = self._model(ctx)
        return {
            "base_url": base_url,
            "model": model,
            "action": params.action,
            "timeout": params.timeout,
            "model_dir": str(stack.model_repository / model),
            "was_ready": model_ready(base_url, model),
        }

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        base_url, model, timeout = plan["base_url"], plan["model"], float(plan["timeout"])
        if plan["action"] == "unload":
            answer = unload_model(base_url, model, timeout)
        else:
            if plan["action"] == "reload":
                _touch(Path(plan["model_dir"]))
            answer = load_model(base_url, model, timeout)
        details = {"answer": answer.as_dict(), "model_ready_after": model_ready(base_url, model)}
        if not answer.ok:
            raise FaultError(f"model_control {plan['action']} {model!r}: {answer.status} {answer.body}")
        return details

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        self.undo(plan)
        if plan["was_ready"] and not model_ready(plan["base_url"], plan["model"]):
            raise FaultError(f"model_control: model {plan['model']!r} is not ready after restore")

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:
        """Load again a model the fault unloaded (and one a failed reload left unloaded)."""
        if not plan.get("was_ready") or model_ready(plan["base_url"], plan["model"]):
            return
        answer = load_model(plan["base_url"], plan["model"], float(plan["timeout"]))
        if answer.status is None:
            return  # no server answers: it is gone, and its models with it
        if not answer.ok:
            raise FaultError(f"model_control: loading {plan['model']!r} again failed: "
                             f"{answer.status} {answer.body}")
