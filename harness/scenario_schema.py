"""The scenario format as a JSON Schema, for editors and CI: `harness schema`.

It is generated from the pydantic models (`Scenario.model_json_schema()`), so it follows them.
What the models' `mode="before"` validators accept besides their fields is invisible to pydantic's
generator and is added here: an SLO written `"p99_ms < 250"` or `{metric, max}`, a fault's
parameters beside its timeline keys, `canary: false`, `pass_in: 2 of 3`, a stack inside a
container stack. pydantic stays the authority: the schema may accept what `harness validate`
refuses (an unknown metric name, rules across fields), never the other way round, which
tests/unit/test_schema.py checks on every file under scenarios/.

The committed copy is schema/scenario.schema.json; `harness schema -o schema/scenario.schema.json`
rewrites it.
"""

import copy
import json
from typing import Any

JsonSchema = dict[str, Any]

COMMITTED_PATH = "schema/scenario.schema.json"
REGENERATE = f"harness schema -o {COMMITTED_PATH}"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
_DEFS = "#/$defs/"
# Numeric constraints pydantic leaves under their Python names where a Field's bound meets a type it
# cannot bound (a duration may be a string): no JSON Schema keyword, so they are dropped.
_NOT_KEYWORDS = {"gt", "ge", "lt", "le"}
# Mappings whose keys are names (fields, definitions), not keywords: never stripped.
_NAME_MAPS = {"properties", "$defs", "patternProperties", "mapping"}
# Values that are data (a default, a constant): left exactly as pydantic wrote them.
_DATA = {"default", "const", "enum", "examples"}


def scenario_schema() -> JsonSchema:
    """The JSON Schema of a scenario file (draft 2020-12)."""
    from harness.scenario import Scenario

    schema = Scenario.model_json_schema()
    defs: dict[str, JsonSchema] = schema["$defs"]
    _one_stack_union(schema, defs)
    _fault_forms(defs)
    _slo_forms(defs)
    _pass_in_text(defs)
    _canary_switch(defs)
    schema = _strip_non_keywords(schema)
    _share_duration(schema)
    return {
        "$schema": DIALECT,
        "$comment": f"Generated from harness.scenario.Scenario; do not edit. Regenerate: `{REGENERATE}`",
        **schema,
        "title": "harness scenario",
    }


def schema_text() -> str:
    """Pretty, with sorted keys, so a regenerated copy diffs line by line against the committed one."""
    return json.dumps(scenario_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _def(defs: dict[str, JsonSchema], name: str) -> JsonSchema:
    """A model's definition; a rename in the models fails here, loudly, instead of drifting."""
    if name not in defs:
        raise RuntimeError(f"scenario schema: the models have no {name!r} any more; "
                           "update harness/scenario_schema.py")
    return defs[name]


def _one_stack_union(schema: JsonSchema, defs: dict[str, JsonSchema]) -> None:
    """`stack:` is a union told apart by `kind`; a container stack's `inner` is a stack too.

    pydantic writes `inner` (typed as the base class) as a reference to `StackSpecBase`, whose
    `kind: str` with `extra="forbid"` refuses every real stack: point it at the union instead.
    Kinds that cannot run inside a container are left to `harness validate`.
    """
    union = {key: value for key, value in schema["properties"]["stack"].items() if key != "title"}
    defs["StackSpec"] = {"title": "StackSpec", "description": "a stack kind, chosen by `kind`", **union}
    schema["properties"]["stack"] = {"$ref": f"{_DEFS}StackSpec"}
    _def(defs, "StackSpecBase")
    base_ref = f"{_DEFS}StackSpecBase"
    _replace_refs(defs, base_ref, f"{_DEFS}StackSpec")
    del defs["StackSpecBase"]


def _replace_refs(node: Any, old: str, new: str) -> None:
    if isinstance(node, dict):
        if node.get("$ref") == old:
            node["$ref"] = new
        for value in node.values():
            _replace_refs(value, old, new)
    elif isinstance(node, list):
        for item in node:
            _replace_refs(item, old, new)


def _fault_forms(defs: dict[str, JsonSchema]) -> None:
    """Each fault kind: its timeline keys and its plugin's parameters, flat or under `params`.

    The parameters come from each plugin's `params_model`, so a typo in `role:` is caught in the
    editor as it is by `harness validate`.
    """
    from faults.base import fault_class, known_faults
    from harness.scenario import _TIMELINE_KEYS

    base = _def(defs, "FaultSpec")
    keys = {key: value for key, value in base["properties"].items() if key in _TIMELINE_KEYS}
    defs["FaultTimeline"] = {"title": "FaultTimeline", "type": "object", "properties": keys,
                             "description": "the keys every fault has: when, how long, how often"}
    # Each kind points at these instead of repeating them (a `$ref` per key keeps each kind's
    # `additionalProperties: false` working, which a `$ref` to the whole mapping would not).
    timeline = {key: {"$ref": f"{_DEFS}FaultTimeline/properties/{key}"} for key in keys}
    branches = []
    for kind in known_faults():
        name = f"fault.{kind}"
        defs[name] = _one_fault(kind, fault_class(kind).params_model, timeline, defs)
        branches.append({"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                         "then": {"$ref": f"{_DEFS}{name}"}})
    defs["FaultSpec"] = {
        "title": base.get("title", "FaultSpec"),
        "description": base.get("description", ""),
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": list(known_faults()), "description": "the fault plugin"}},
        "allOf": branches,
    }


def _one_fault(kind: str, params_model: Any, timeline: JsonSchema, defs: dict[str, JsonSchema]) -> JsonSchema:
    prefix = f"fault.{kind}."
    params = params_model.model_json_schema(ref_template=_DEFS + prefix + "{model}")
    for sub_name, sub in params.pop("$defs", {}).items():  # its own nested models, kept apart by kind
        defs[prefix + sub_name] = sub
    own = {**timeline, "kind": {"const": kind}}
    required = params.get("required", [])
    # The model's validator sends every key that is not a timeline key to the plugin, so a timeline
    # key always wins over a parameter of the same name.
    flat = {"type": "object", "properties": {**params.get("properties", {}), **own},
            "required": ["kind", *required], "additionalProperties": False}
    nested = {"type": "object", "properties": {**own, "params": params},
              "required": ["kind", "params"] if required else ["kind"], "additionalProperties": False}
    return {"title": f"fault {kind}", "description": params.get("description", ""), "anyOf": [flat, nested]}


def _slo_forms(defs: dict[str, JsonSchema]) -> None:
    """An SLO: `"metric op number"`, `{metric, max|min}`, or the full mapping with op and threshold."""
    from harness.scenario import _SLO_TEXT

    full = copy.deepcopy(_def(defs, "Slo"))
    full["properties"]["max"] = {"type": "number", "description": "the same as op `<=` and this threshold"}
    full["properties"]["min"] = {"type": "number", "description": "the same as op `>=` and this threshold"}
    full["required"] = [key for key in full.get("required", []) if key != "threshold"]
    full["oneOf"] = [{"required": [key]} for key in ("threshold", "max", "min")]
    text = {"type": "string", "pattern": _SLO_TEXT.pattern,
            "description": "metric op number, e.g. p99_ms < 250"}
    defs["Slo"] = {"title": full.pop("title", "Slo"), "description": full.get("description", ""),
                   "anyOf": [text, full]}


def _pass_in_text(defs: dict[str, JsonSchema]) -> None:
    from harness.repeatspec import _TEXT

    mapping = _def(defs, "PassIn")
    text = {"type": "string", "pattern": _TEXT.pattern, "description": "N of M, e.g. 2 of 3"}
    defs["PassIn"] = {"title": mapping.get("title", "PassIn"), "anyOf": [text, mapping]}


def _canary_switch(defs: dict[str, JsonSchema]) -> None:
    mapping = _def(defs, "CanarySpec")
    switch = {"type": "boolean", "description": "true: the defaults; false: no canary"}
    defs["CanarySpec"] = {"title": mapping.get("title", "CanarySpec"), "anyOf": [switch, mapping]}


def _share_duration(schema: JsonSchema) -> None:
    """Every duration field says the same thing: one `$defs/Duration`, referenced, not repeated."""
    from pydantic import WithJsonSchema

    from harness.specbase import Duration

    marks = [m for m in getattr(Duration, "__metadata__", ()) if isinstance(m, WithJsonSchema)]
    if not marks or marks[0].json_schema is None:
        return  # durations carry no schema of their own: nothing repeated to share
    duration = marks[0].json_schema
    defs = schema["$defs"]
    for name, value in defs.items():
        defs[name] = _by_ref(value, duration)
    schema["properties"] = _by_ref(schema["properties"], duration)
    defs["Duration"] = {"title": "Duration", **duration}


def _by_ref(node: Any, target: JsonSchema) -> Any:
    """`node` with `target` referenced, not repeated, wherever a subschema holds all of it.

    pydantic merges a field's own keys (title, default) into the type's schema: those stay beside
    the `$ref` (draft 2020-12 allows that).
    """
    if isinstance(node, dict):
        if all(key in node and node[key] == value for key, value in target.items()):
            rest = {key: value for key, value in node.items() if key not in target}
            return {"$ref": f"{_DEFS}Duration", **rest}
        return {key: value if key in _DATA else _by_ref(value, target) for key, value in node.items()}
    if isinstance(node, list):
        return [_by_ref(item, target) for item in node]
    return node


def _strip_non_keywords(node: Any, names: bool = False) -> Any:
    if isinstance(node, list):
        return [_strip_non_keywords(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:  # keys are field or definition names: keep them all, clean their schemas
        return {key: _strip_non_keywords(value) for key, value in node.items()}
    return {key: value if key in _DATA else _strip_non_keywords(value, names=key in _NAME_MAPS)
            for key, value in node.items() if key not in _NOT_KEYWORDS}
