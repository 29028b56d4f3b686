"""A handler whose module cannot be imported: the error that no retry can ever heal."""

from typing import Any

import harness_torchserve_missing_module  # noqa: F401 - missing on purpose


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[Any] | None:
    return None
