"""One version's run: the harness itself, started by that version's interpreter, on the scenario.

The child is a plain `harness run --json`: everything a run does (the stack, the faults, the
reports) is what it always is, and its one JSON object on stdout is what the matrix reads; its
progress lines go to the matrix's stderr as they come. The server version in the table is the
one the stack reported at start (summary.json's `stack.info.version`), not the one asked for,
so a version that did not win on sys.path shows as what it is.
"""

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.exitcodes import ExitCode
from harness.matrix.envs import VersionEnv
from harness.store.url import STORE_ENV

_CHILD_DROPS = (STORE_ENV, "HARNESS_JSON")  # the matrix records (once, where it says) and reads JSON


@dataclass
class VersionRun:
    version: str
    exit_code: int
    verdict: str
    reason: str = ""
    run_dir: Path | None = None
    reported_version: str | None = None  # what the stack said at start
    slos: list[dict[str, Any]] = field(default_factory=list)
    stored_version: str | None = None  # what the store holds for it, read back after recording
    recorded: bool = False
    installed: str | None = None  # what the environment's interpreter resolves, before the run


def child_argv(env: VersionEnv, scenario: Path, runs_dir: Path, seed: int | None) -> list[str]:
    argv = [str(env.python), "-m", "harness", "run", str(scenario), "--json", "--no-progress",
            "--runs-dir", str(runs_dir)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    return argv


def child_environ(env: VersionEnv) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in _CHILD_DROPS}
    environ["VIRTUAL_ENV"] = str(env.path)
    # The stacks start their servers with `sys.executable` and put its folder first on PATH; say
    # the same for anything started by name.
    environ["PATH"] = os.pathsep.join(p for p in [str(env.python.parent), environ.get("PATH", "")] if p)
    return environ


def run_version(env: VersionEnv, scenario: Path, runs_dir: Path, seed: int | None) -> VersionRun:
    with subprocess.Popen(child_argv(env, scenario, runs_dir, seed), stdout=subprocess.PIPE, text=True,
                          env=child_environ(env)) as child:
        try:
            out, _ = child.communicate()
        except KeyboardInterrupt:
            # The child got the same Ctrl-C (one process group): let it tear its stack down and
            # write its partial report, rather than kill it (subprocess.run would) and leave servers.
            child.communicate()
            raise
    return parse_result(env.version, child.returncode, out)


def parse_result(version: str, returncode: int, stdout: str) -> VersionRun:
    try:  # `--json` prints exactly one object (indented) on stdout
        result = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        name = _exit_name(returncode)
        return VersionRun(version, returncode, "error",
                          f"the run printed no result (exit {returncode} {name})")
    code = result.get("exit_code")
    run = VersionRun(
        version=version,
        exit_code=code if isinstance(code, int) else returncode,
        verdict=str(result.get("verdict") or ("error" if result.get("error") else "unknown")),
        reason=str(result.get("reason") or result.get("error") or ""),
        slos=[s for s in result.get("slos") or [] if isinstance(s, dict)],
    )
    if result.get("run_dir"):
        run.run_dir = Path(str(result["run_dir"])).resolve()
        run.reported_version = reported_version(run.run_dir)
    return run


def reported_version(run_dir: Path) -> str | None:
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    info = ((summary.get("stack") or {}).get("info") or {}) if isinstance(summary, dict) else {}
    value = info.get("version")
    return None if value is None else str(value)


def _exit_name(code: int) -> str:
    try:
        return ExitCode(code).name
    except ValueError:
        return "signal" if code < 0 else "?"
