"""A handler that imports but fails while loading the model (as a missing weights file would)."""

from typing import Any


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[Any] | None:
    if data is None:
        raise RuntimeError("broken_init handler: model initialization failed on purpose")
    return None
