"""`harness matrix SCENARIO --versions V1 V2 ...`: the `harness.commands` plugin and its command.

First every version's environment is made (or found in the cache), so a version pip cannot find
stops the matrix before any server starts; then the scenario runs once per version, one after
another, each run recorded in the results store; then the table. Nothing heavy is imported at
`register`: the parser is built for every `harness` command.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.exitcodes import ExitCode
from harness.store.url import STORE_ENV, StoreUrl

SUMMARY = "run one scenario against several versions of its stack's server package, each in its own cached " \
          "environment: which versions still fail?"
EPILOG = f"""writes:
  stdout: the table (version, server version at start, as stored, verdict, each SLO's value)
  stderr: installs and each run's own lines; a run folder per version under --runs-dir
  --markdown FILE: the table as Markdown

exit codes:
  0  PASS            every version's run passed (or reproduced what it expects)
  1  SLO_FAILED      at least one version's run did not (its row says how)
  2  USAGE_ERROR     a bad option or scenario, a stack kind that declares no server package, a
                     version pip cannot install: one line; nothing half-installed is left
  4  INTERNAL_ERROR  a bug in the harness
  5  INTERRUPTED     Ctrl-C: the run in progress tears down; the versions after it do not run

environment (defaults for options; a flag given wins):
  {STORE_ENV:<21} --store
  XDG_CACHE_HOME        the cache: $XDG_CACHE_HOME/serving-harness/matrix (else ~/.cache/...)
  HARNESS_RUNS_DIR      --runs-dir

examples:
  harness matrix scenarios/repro/torchserve-worker-kill.yaml --versions 0.10.0 0.11.0 0.12.0
  harness matrix scenarios/repro/torchserve-retry-timeout-zero.yaml --versions 0.9.0,0.12.0 \\
      --store runs/results.db --markdown matrix.md
"""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "matrix", help="run one scenario against several versions of its server package",
        description=SUMMARY, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", type=Path, help="the scenario file")
    parser.add_argument("--versions", nargs="+", required=True, metavar="V",
                        help="the server package's versions, in the order to run them (spaces or commas)")
    parser.add_argument("--store", metavar="URL", dest="store_url",
                        help=f"record each run here: an SQLite file or an SQLAlchemy URL "
                             f"(default: ${STORE_ENV}, else RUNS_DIR/results.db)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where the run folders go (default: $HARNESS_RUNS_DIR, else ./runs)")
    parser.add_argument("--env-dir", type=Path, default=None, metavar="DIR",
                        help="the environments' cache (default: $XDG_CACHE_HOME/serving-harness/matrix)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the same seed for every version (default: the scenario's, else a new one each)")
    parser.add_argument("--markdown", type=Path, default=None, metavar="FILE",
                        help="also write the table as Markdown")
    parser.set_defaults(func=cmd_matrix)


def _runs_dir(flag: Path | None) -> Path:
    text = os.environ.get("HARNESS_RUNS_DIR", "").strip()
    return (flag if flag is not None else Path(text or "runs")).expanduser().resolve()


def cmd_matrix(args: argparse.Namespace) -> int:
    from harness.matrix.envs import cache_root, check_wins, ensure_env, probe
    from harness.matrix.packages import parse_versions, server_packages
    from harness.matrix.runs import run_version
    from harness.matrix.table import build_grid, markdown, print_table
    from harness.scenario import load_scenario
    from harness.store.url import resolve

    versions = parse_versions(args.versions)
    scenario_path = args.scenario.expanduser().resolve()
    scenario = load_scenario(scenario_path)
    kind = scenario.stack.kind
    packages = server_packages(type(scenario.stack), kind)
    runs_dir = _runs_dir(args.runs_dir)
    where = resolve(args.store_url, runs_dir)
    assert where is not None  # with the default on, there always is one
    if args.markdown is not None and not args.markdown.parent.is_dir():
        raise UsageError(f"--markdown {args.markdown}: no such folder {args.markdown.parent}")
    root = cache_root(args.env_dir)

    envs = []
    for version in versions:  # all first: a version that cannot be had stops us before any run
        env = ensure_env(root, packages, version)
        how = ("cached" if env.install_s is None else f"installed in {env.install_s:g} s")
        extra = f", with {', '.join(env.extra)}" if env.extra else ""
        print(f"matrix: {packages[0]} {version}: {how}, {env.size_bytes / 2**20:.1f} MiB{extra} ({env.path})",
              file=sys.stderr, flush=True)
        envs.append(env)

    runs = []
    for env in envs:
        found = probe(env.python, packages)
        check_wins(found, packages, env.version, env.path)  # a cache edited by hand
        print(f"matrix: {scenario.name} on {packages[0]} {env.version}", file=sys.stderr, flush=True)
        run = run_version(env, scenario_path, runs_dir, args.seed)
        run.installed = str(found[packages[0]]["version"])
        runs.append(run)
        if run.exit_code == ExitCode.INTERRUPTED:
            break
    _record(runs, where)

    title = f"{scenario.name}: {kind} ({', '.join(packages)}) by version"
    grid = build_grid(runs)
    print_table(grid, title)
    for run in runs:
        if run.run_dir is not None:
            print(f"  {run.version}: {run.run_dir}" + (f"  ({_short(run.reason)})" if run.reason else ""))
    if args.markdown is not None:
        args.markdown.write_text(markdown(grid, title), encoding="utf-8")
        print(f"matrix: table written to {args.markdown}", file=sys.stderr)
    if any(run.exit_code == ExitCode.INTERRUPTED for run in runs):
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.PASS if all(run.exit_code == ExitCode.PASS for run in runs) else ExitCode.SLO_FAILED)


def _short(text: str, limit: int = 160) -> str:
    """A reason's start: a stack failure's quotes the server's log, which summary.json keeps whole."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _record(runs: Sequence[Any], where: StoreUrl) -> None:
    """Each run into the store, then its row read back: the table shows what the store holds.
    A store that cannot be used costs one line; the runs' folders stay (`harness store import`)."""
    from harness.store.db import StoreError, open_store
    from harness.store.folders import find_runs
    from harness.store.importer import save_runs

    dirs = [run for run in runs if run.run_dir is not None]
    if not dirs:
        return
    try:
        store = open_store(where, create=True)
        try:
            for run in dirs:
                outcomes = save_runs(store, find_runs(run.run_dir).runs)
                keys = [o.detail for o in outcomes if o.status != "skipped"]
                run.recorded = bool(keys)
                run.stored_version = _stored_version(store, keys)
        finally:
            store.close()
    except StoreError as exc:
        print(f"store: runs not recorded ({exc}); their folders are intact: `harness store import "
              f"{' '.join(str(r.run_dir) for r in dirs)}` records them later", file=sys.stderr)


def _stored_version(store: Any, keys: list[str]) -> str | None:
    from sqlalchemy import select

    from harness.store.models import RunRecord

    if not keys:
        return None
    with store.session() as session:
        found = session.scalars(select(RunRecord.stack_version).where(RunRecord.run_key.in_(keys))).all()
    versions = sorted({v for v in found if v is not None})
    return ", ".join(versions) or None
