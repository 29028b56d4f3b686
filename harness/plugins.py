"""Plugins by name from an entry-point group: users, faults and stack kinds all work this way.

The built-in ones are registered in pyproject.toml the same way a user's package adds its own;
each group's fallback map only serves a checkout that was never installed.
"""

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError


def registered(group: str, builtin: dict[str, str]) -> dict[str, str]:
    """Name -> `module:attribute`, without importing any of them."""
    found = dict(builtin)
    for ep in entry_points(group=group):
        found[ep.name] = ep.value
    return found


def load(target: str, base: type | None = None) -> Any:
    """Import `module:attribute`; with `base`, check it is a subclass of it."""
    module_name, _, attr = target.partition(":")
    obj = getattr(import_module(module_name), attr)
    if base is not None and not (isinstance(obj, type) and issubclass(obj, base)):
        raise TypeError(f"{target} is not a {base.__name__}")
    return obj


def first_error(exc: ValidationError) -> str:
    """A nested model's first error as `at path: message`, for `scenario._refine` to place."""
    errors = exc.errors(include_url=False)
    # An unknown key first: `rol: server` is also a missing `role`, and the typo is the news.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    where = ".".join(str(p) for p in first["loc"])
    message = "unknown key" if first["type"] == "extra_forbidden" else str(first["msg"])
    message = message.removeprefix("Value error, ")
    return f"at {where}: {message}" if where else message  # a model-level check names no field
