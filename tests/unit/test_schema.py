"""The scenario JSON Schema: the committed copy is current, and it agrees with the models.

The schema may accept what `harness validate` refuses (unknown metric names, rules across
fields), never the other way round: every file in scenarios/ must pass both.
"""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from harness.cli import main
from harness.durations import parse_duration
from harness.scenario import load_scenario
from harness.scenario_schema import COMMITTED_PATH, REGENERATE, scenario_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.yaml"))
GOOD: dict[str, Any] = {
    "name": "demo",
    "stack": {"kind": "triton", "model": "identity", "restart": {"policy": "on-failure", "backoff": "1s"}},
    "load": {"user": "triton_http", "users": 2, "duration": "5s", "request_timeout": 2},
    "faults": [{"kind": "process_kill", "at": "2s", "role": "server", "signal": "SIGKILL"}],
    "slo": ["p99_ms < 250", {"metric": "error_rate", "max": 0.01},
            {"metric": "crashes", "op": "<=", "threshold": 1}],
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = scenario_schema()
    jsonschema.Draft202012Validator.check_schema(schema)  # a valid draft 2020-12 schema itself
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: jsonschema.Draft202012Validator, data: Any) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}"
            for e in validator.iter_errors(data)]


def _with(**changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(GOOD)), **changes}


def test_the_committed_schema_is_current() -> None:
    committed = ROOT / COMMITTED_PATH
    assert committed.is_file(), f"{COMMITTED_PATH} is missing: run `{REGENERATE}`"
    if committed.read_text(encoding="utf-8") != schema_text():
        pytest.fail(f"{COMMITTED_PATH} is out of date with the scenario models: run `{REGENERATE}` "
                    "and commit the result")


@pytest.mark.parametrize("path", SCENARIOS, ids=[str(p.relative_to(ROOT)) for p in SCENARIOS])
def test_every_scenario_file_passes_the_schema(path: Path, validator) -> None:
    load_scenario(path)  # the models accept it (else the file itself is broken, not the schema)
    errors = _errors(validator, yaml.safe_load(path.read_text(encoding="utf-8")))
    assert not errors, f"{path}: the schema refuses what the models accept:\n" + "\n".join(errors)


def test_the_scenario_library_is_not_empty() -> None:
    assert len(SCENARIOS) >= 10


def test_short_forms_pass(validator) -> None:
    assert _errors(validator, GOOD) == []
    nested = {"kind": "process_kill", "at": 2, "params": {"role": "server"}}
    assert _errors(validator, _with(faults=[nested], observe={"canary": False})) == []


@pytest.mark.parametrize(("data", "where"), [
    (_with(colour="blue"), "(top level)"),  # an unknown top-level key
    (_with(stack={"kind": "triton", "modle": "identity"}), "stack"),
    (_with(stack={"kind": "nope"}), "stack"),
    (_with(load={"user": "triton_http", "duration": "5x"}), "load.duration"),
    (_with(faults=[{"kind": "process_kill", "role": "server", "sigal": "SIGKILL"}]), "faults.0"),
    (_with(faults=[{"kind": "no_such_fault"}]), "faults.0.kind"),
    (_with(slo=["p99_ms is small"]), "slo.0"),
    (_with(slo=[{"metric": "p99_ms"}]), "slo.0"),  # no threshold, max or min
])
def test_the_schema_refuses(data: dict[str, Any], where: str, validator) -> None:
    errors = _errors(validator, data)
    assert any(e.startswith(f"{where}: ") for e in errors), errors


def test_a_stack_inside_a_container_is_checked_as_a_stack(validator) -> None:
    inner = {"kind": "container", "inner": {"kind": "triton", "model": "identity", "instances": 2}}
    assert _errors(validator, _with(stack=inner)) == []
    inner["inner"]["instancez"] = 2
    assert _errors(validator, _with(stack=inner))


DURATIONS = ["90s", "1m30s", "250ms", "1.5h", "2d", " 5s ", "10", "5x", "s", "", "1m 30s", "-1s", "1.s"]


@pytest.mark.parametrize("text", DURATIONS)
def test_the_duration_pattern_reads_what_parse_duration_reads(text: str, validator) -> None:
    try:
        parse_duration(text)
        accepted = True
    except ValueError:
        accepted = False
    in_schema = not _errors(validator, _with(load={"user": "triton_http", "duration": text}))
    assert in_schema == accepted, f"{text!r}: parse_duration {'accepts' if accepted else 'refuses'} it"


def test_harness_schema_prints_and_writes_the_same(tmp_path: Path, capsys) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "sub" / "scenario.schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == printed == schema_text()
    assert json.loads(printed)["$schema"].endswith("2020-12/schema")


def test_harness_schema_to_an_unwritable_place(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    assert main(["schema", "-o", str(tmp_path / "file" / "x.json")]) == 2
    assert "cannot write the schema" in capsys.readouterr().err
