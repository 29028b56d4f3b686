"""Answers each request with its own body: a wrong answer is then visible to the client.

With `handler.exit_at_request: N` in the archive's model-config.yaml the worker process exits at
its Nth inference, before answering: a model that loads fine but dies serving (a native crash,
an out-of-memory kill), which every retry reloads and which dies again at the next request.
"""

import os
from typing import Any

_exit_at = 0  # 0: never
_served = 0


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[Any] | None:
    global _exit_at, _served
    if data is None:  # the load call: read the setting once
        settings = (getattr(context, "model_yaml_config", None) or {}).get("handler", {})
        _exit_at = int(settings.get("exit_at_request", 0) or 0)
        return None
    _served += 1
    if _exit_at and _served >= _exit_at:
        os._exit(1)  # no exception TorchServe could turn into a 500: the process is gone
    return [row.get("body", row.get("data")) for row in data]
