"""Echo after a fixed compute time, read from the archive's model-config.yaml (`handler.delay_ms`).

`handler.exit_at_request: N` makes the worker process exit at its Nth inference (see echo.py).
"""

import os
import time
from typing import Any

_delay_s = 0.0
_exit_at = 0  # 0: never
_served = 0


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[Any] | None:
    global _delay_s, _exit_at, _served
    if data is None:  # the load call: read the settings once
        settings = (getattr(context, "model_yaml_config", None) or {}).get("handler", {})
        _delay_s = float(settings.get("delay_ms", 0)) / 1000.0
        _exit_at = int(settings.get("exit_at_request", 0) or 0)
        return None
    _served += 1
    if _exit_at and _served >= _exit_at:
        os._exit(1)  # no exception TorchServe could turn into a 500: the process is gone
    time.sleep(_delay_s)
    return [row.get("body", row.get("data")) for row in data]
