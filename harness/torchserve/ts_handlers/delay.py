"""Echo after a fixed compute time, read from the archive's model-config.yaml (`handler.delay_ms`)."""

import time
from typing import Any

_delay_s = 0.0


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[Any] | None:
    global _delay_s
    if data is None:  # the load call: read the setting once
        settings = (getattr(context, "model_yaml_config", None) or {}).get("handler", {})
        _delay_s = float(settings.get("delay_ms", 0)) / 1000.0
        return None
    time.sleep(_delay_s)
    return [row.get("body", row.get("data")) for row in data]
