"""What `harness list` prints, and the same as data for `harness list --json`.

`section_data` gathers the records; `sections` only formats them, so the text and the JSON
always say the same.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.exitcodes import ExitCode

if TYPE_CHECKING:
    from harness.features import Feature

Record = dict[str, Any]

# (`harness list WHAT`, the section's title, its JSON key). The parser, built for every command,
# reads CHOICES, so what gathers the records is imported only when a listing is asked for.
SECTIONS = (
    ("scenarios", "scenarios", "scenarios"),
    ("users", "users", "users"),
    ("stacks", "stacks", "stacks"),
    ("models", "models", "models"),
    ("metrics", "metrics", "metrics"),
    ("features", "features", "features"),
    ("exit-codes", "exit codes", "exit_codes"),
)
CHOICES = ["all", *(what for what, _, _ in SECTIONS)]


def section_data(what: str, scenario_dir: Path) -> dict[str, list[Record]]:
    """Each section `what` asks for ("all": every one), by JSON key, as a list of records."""
    from harness.features import all_metrics, discover

    gather: dict[str, Callable[[], list[Record]]] = {
        "scenarios": lambda: list(_scenarios(scenario_dir)),
        "users": _users,
        "stacks": lambda: list(_stacks()),
        "models": _models,
        "metrics": lambda: [{"label": d.label, "meaning": d.meaning} for d in all_metrics()],
        "features": lambda: [_feature(feature) for feature in discover()],
        "exit-codes": _exit_codes,
    }
    return {key: gather[name]() for name, _, key in SECTIONS if what in ("all", name)}


def sections(what: str, scenario_dir: Path) -> Iterator[tuple[str, list[str]]]:
    """(title, lines) per section, for the terminal."""
    data = section_data(what, scenario_dir)
    for _, title, key in SECTIONS:
        if key in data:
            yield title, [_LINE[key](record) for record in data[key]]


def _users() -> list[Record]:
    from harness.users import known_users

    return [{"name": name, "target": target} for name, target in sorted(known_users().items())]


def _models() -> list[Record]:
    from harness.triton.modelzoo import ZOO

    return [{"name": name, "datatype": m.datatype, "dims": list(m.dims)} for name, m in ZOO.items()]


def _exit_codes() -> list[Record]:
    from harness.clihelp import EXIT_MEANINGS

    return [{"code": int(code), "name": code.name, "meaning": EXIT_MEANINGS[code]} for code in ExitCode]


def _feature(feature: "Feature") -> Record:
    return {"name": feature.name, "metrics": len(feature.metrics),
            "sections": [section.key for section in feature.sections],
            "observers": feature.observers is not None}


def _stacks() -> Iterator[Record]:
    from harness.stacks.registry import stack_spec_classes

    for cls in stack_spec_classes():
        kind = cls.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        roles = [{"name": r.name, "loss": str(r.loss), "meaning": r.meaning} for r in cls.ROLES]
        yield {"kind": kind, "summary": summary, "roles": roles}


def _scenarios(folder: Path) -> Iterator[Record]:
    from harness.scenario import load_scenario

    for path in sorted(folder.rglob("*.yaml")):
        try:
            scenario = load_scenario(path)
        except HarnessError as exc:
            yield {"path": str(path), "valid": False, "error": str(exc).splitlines()[0]}
            continue
        description = scenario.description.strip().splitlines()[0] if scenario.description else ""
        yield {"path": str(path), "valid": True, "name": scenario.name, "description": description,
               "expect": scenario.expect, "source": list(scenario.source)}


def _feature_line(record: Record) -> str:
    parts = [f"{record['metrics']} metric(s)"]
    if record["sections"]:
        parts.append("report: " + ", ".join(record["sections"]))
    if record["observers"]:
        parts.append("observers")
    return f"{record['name']}  ({'; '.join(parts)})"


def _stack_line(record: Record) -> str:
    roles = ", ".join(f"{r['name']} ({r['loss']})" for r in record["roles"]) or "none"
    return f"{record['kind']}  {record['summary']} (roles: {roles})"


def _scenario_line(record: Record) -> str:
    if not record["valid"]:
        return f"{record['path']}  INVALID: {record['error']}"
    # A reproduction says where it came from and what a run should find, before what it does.
    tags = [f"expect {record['expect']}"] if record["expect"] != "pass" or record["source"] else []
    tags += record["source"]
    lead = f"[{'; '.join(tags)}]  " if tags else ""
    return f"{record['path']}  {lead}{record['description']}"


_LINE: dict[str, Callable[[Record], str]] = {
    "scenarios": _scenario_line,
    "users": lambda r: f"{r['name']}  ({r['target']})",
    "stacks": _stack_line,
    "models": lambda r: f"{r['name']}  {r['datatype']}{r['dims']}",
    "metrics": lambda r: f"{r['label']}  {r['meaning']}",
    "features": _feature_line,
    "exit_codes": lambda r: f"{r['code']}  {r['name']}  {r['meaning']}",
}
