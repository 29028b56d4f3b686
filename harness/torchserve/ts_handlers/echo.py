"""Answers each request with its own body: a wrong answer is then visible to the client."""

from typing import Any


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[Any] | None:
    if data is None:  # the load call
        return None
    return [row.get("body", row.get("data")) for row in data]
