"""'Did you mean ...?' for unknown keys, kinds, roles and metrics.

The key a user mistyped is looked up among the keys the model at that place of the file really
has, found by walking the scenario's pydantic models along the error's path (a fault's keys are
its timeline's plus its plugin's, which the model says through `known_keys`).
"""

import difflib
import types
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

Loc = tuple[str | int, ...]


def close_match(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a typo most likely meant, or None when nothing is close."""
    pool = sorted(set(candidates) - {word})
    found = difflib.get_close_matches(word, pool, n=1, cutoff=0.7)
    if not found:  # a wrong case or separator: `Error_Rate`, `p99-ms`
        folded = {c.lower().replace("-", "_"): c for c in pool}
        found = [folded[k] for k in (word.lower().replace("-", "_"),) if k in folded]
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` or nothing, to append to an error message."""
    match = close_match(word, candidates)
    return f"; did you mean {match!r}?" if match else ""


def keys_at(root: type[BaseModel], data: Any, loc: Loc) -> list[str]:
    """The keys a mapping at `loc` of `data` (validated by `root`) may have; [] when unknown."""
    tp: Any = root
    node = data
    for part in loc:
        tp = _resolve(tp, node)
        if _is_model(tp):
            field = _field(tp, part)
            if field is None:
                if isinstance(node, dict) and part == node.get("kind"):
                    continue  # pydantic puts a union's tag in the path; the file has no such key
                return []
            tp = field
        elif get_origin(tp) in (list, tuple) and isinstance(part, int):
            tp = get_args(tp)[0] if get_args(tp) else Any
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1] if get_args(tp) else Any
        else:
            return []
        node = _child(node, part)
    tp = _resolve(tp, node)
    if not _is_model(tp):
        return []
    custom = getattr(tp, "known_keys", None)
    if callable(custom):
        return list(custom(node))
    return model_keys(tp)


def model_keys(model: type[BaseModel]) -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        keys.append(info.alias or name)
    return keys


def _field(model: type[BaseModel], key: str | int) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _resolve(tp: Any, node: Any) -> Any:
    """Unwrap Annotated and unions down to what validated `node` (a union by its `kind`)."""
    for _ in range(10):  # nesting is shallow; the bound only guards against a cycle
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            tp = _pick_member([a for a in get_args(tp) if a is not type(None)], node)
        else:
            return tp
    return tp


def _pick_member(members: list[Any], node: Any) -> Any:
    models = [m for m in members if _is_model(m)]
    kind = node.get("kind") if isinstance(node, dict) else None
    for model in models:
        kind_field = model.model_fields.get("kind")
        if kind_field is not None and get_origin(kind_field.annotation) is Literal \
                and kind in get_args(kind_field.annotation):
            return model
    if len(models) == 1 or (models and isinstance(node, dict)):
        return models[0]
    return members[0] if members else Any
