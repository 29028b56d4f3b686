"""`--json`: exactly one JSON object on stdout; every line meant for a person goes to stderr.

CI reads the object (`jq .verdict`, `jq .exit_code`) while the terminal still shows the progress
and the verdict. The objects carry `schema` (SCHEMA) and `command`; a run's also `kind` (run,
series or soak). What a run's object says is read back from the reports the run wrote
(summary.json, series.json, soak.json), so it is what those files say.
"""

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from harness.exitcodes import ExitCode

SCHEMA = "serving-harness/cli/v1"
# The keys every `run`/`soak` object has, whatever the outcome (tests and CI rely on them).
RUN_KEYS = ("schema", "command", "kind", "run_dir", "verdict", "exit_code", "exit_name", "reason",
            "reports", "slos")
JsonObject = dict[str, Any]


class VerdictLike(Protocol):
    word: str
    code: ExitCode
    reason: str


def emit(obj: JsonObject) -> None:
    """The one object, on the real stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def human_to_stderr() -> Iterator[None]:
    """Within: whatever is printed goes to stderr, Python's `print` and file descriptor 1 alike.

    The descriptor too, because processes the run starts and C libraries write to fd 1 directly;
    it is put back on the way out, so the object printed afterwards is alone on stdout.
    """
    real = sys.stdout
    real.flush()
    saved = _dup_stdout()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        # What was written meanwhile through a handle on the real stdout (a logging handler made
        # before) is still buffered: out it goes while fd 1 still points at stderr.
        real.flush()
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def _dup_stdout() -> int | None:
    """Point fd 1 at stderr, returning a copy of the old fd 1; None where the descriptors are odd."""
    try:
        saved = os.dup(1)
    except OSError:
        return None
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        return None
    return saved


def error_object(command: str, message: str, code: ExitCode) -> JsonObject:
    """What --json prints when the command stops on an error (the same line also goes to stderr)."""
    return {"schema": SCHEMA, "command": command, "error": message.splitlines()[0] if message else "",
            "errors": message.splitlines(), "exit_code": int(code), "exit_name": code.name}


def validate_object(files: list[JsonObject], worst: ExitCode) -> JsonObject:
    return {"schema": SCHEMA, "command": "validate", "ok": worst == ExitCode.PASS, "exit_code": int(worst),
            "exit_name": worst.name, "files": files}


def validate_file(path: Path, name: str | None = None, error: str | None = None,
                  code: ExitCode = ExitCode.PASS) -> JsonObject:
    """One file's result: ok with the scenario's name, or its error lines (`file:line: field: message`)."""
    if error is None:
        return {"path": str(path), "ok": True, "name": name}
    return {"path": str(path), "ok": False, "errors": error.splitlines(), "exit_code": int(code)}


def list_object(data: dict[str, list[JsonObject]]) -> JsonObject:
    return {"schema": SCHEMA, "command": "list", "sections": data}


def run_object(run_dir: Path, verdict: VerdictLike) -> JsonObject:
    """A finished run: its verdict, and from its summary.json the SLO results, totals and seed."""
    summary, problem = _read(run_dir / "summary.json")
    obj = _envelope("run", "run", run_dir, verdict.word, verdict.code, verdict.reason, {
        "summary": "summary.json", "junit": "junit.xml", "html": "report.html", "journal": "journal.jsonl",
        "log": "harness.log", "restore": "restore.jsonl",
    }, summary.get("slos", []))
    obj.update(seed=summary.get("seed"), totals=summary.get("totals"), findings=summary.get("findings", []))
    return _noted(obj, problem)


def series_object(series_dir: Path | None, code: ExitCode) -> JsonObject:
    """A series (`--repeat`): its verdict, each SLO's N of M and each repetition, from series.json."""
    if series_dir is None:  # stopped before its first repetition: no folder to read
        return _envelope("run", "series", None, "interrupted", code, "no repetition ran", {}, [])
    series, problem = _read(series_dir / "series.json")
    obj = _envelope("run", "series", series_dir, series.get("verdict", "error"), code,
                    series.get("reason", ""), {"series": "series.json", "junit": "junit.xml",
                                               "html": "series.html"}, series.get("slos", []))
    obj.update(repeat=series.get("repeat"), completed=series.get("completed"),
               repetitions=series.get("repetitions", []))
    return _noted(obj, problem)


def library_object(library_dir: Path, code: ExitCode) -> JsonObject:
    """A library (`harness run FOLDER`): each scenario's expected outcome, source and exit code."""
    library, problem = _read(library_dir / "library.json")
    entries = library.get("scenarios", [])
    as_expected = sum(entry.get("exit_code") == 0 for entry in entries)
    obj = _envelope("run", "library", library_dir, "pass" if code == ExitCode.PASS else "failed", code,
                    f"{as_expected} of {library.get('planned', len(entries))} scenarios as expected",
                    {"library": "library.json", "junit": "junit.xml"}, [])
    obj.update(planned=library.get("planned"), completed=library.get("completed"), scenarios=entries)
    return _noted(obj, problem)


def soak_object(run_dir: Path, verdict: VerdictLike) -> JsonObject:
    """A soak: its verdict, its limits (RSS slope, p99 drift) as `slos`, and its cycles, from soak.json."""
    soak, problem = _read(run_dir / "soak.json")
    obj = _envelope("soak", "soak", run_dir, verdict.word, verdict.code, verdict.reason, {
        "soak": "soak.json", "html": "soak.html", "index": "soak.jsonl", "junit": "junit.xml",
        "journal": "journal.jsonl", "log": "harness.log", "cycles": "cycles",
    }, soak.get("limits", []))
    obj.update({key: soak.get(key) for key in ("cycles_planned", "cycles_done", "cycles_failed")})
    return _noted(obj, problem)


def _envelope(command: str, kind: str, folder: Path | None, word: str, code: ExitCode, reason: str,
              reports: dict[str, str], slos: list[Any]) -> JsonObject:
    # Only the reports that exist: a run stopped early may not have written them all.
    paths = {} if folder is None else {
        name: str(folder / rel) for name, rel in reports.items() if (folder / rel).exists()
    }
    return {"schema": SCHEMA, "command": command, "kind": kind,
            "run_dir": None if folder is None else str(folder), "verdict": word, "exit_code": int(code),
            "exit_name": ExitCode(code).name, "reason": reason, "reports": paths, "slos": slos}


def _read(path: Path) -> tuple[JsonObject, str | None]:
    """A report's JSON, or {} and why not (the object then says so instead of failing)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {}, f"{path}: {exc}"
    return (data, None) if isinstance(data, dict) else ({}, f"{path}: not a JSON object")


def _noted(obj: JsonObject, problem: str | None) -> JsonObject:
    if problem is not None:
        obj["report_error"] = problem
    return obj
