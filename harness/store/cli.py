"""The store's commands: `harness store import|migrate`, `harness history`, `harness regress`, and
`--store` on `run` and `soak`.

`register(sub)` is what the core's CLI calls (the `harness.commands` entry point) once its own
commands exist. Nothing heavy is imported here: the parser is built for every `harness` command.
"""

import argparse
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.exitcodes import ExitCode
from harness.store.url import REGRESS_ENV, STORE_ENV, StoreUrl, resolve

_STORE_HELP = (f"the results store: an SQLite file or an SQLAlchemy URL (postgresql+psycopg://...) "
               f"(default: ${STORE_ENV}, else RUNS_DIR/results.db)")
_BAD = ("  2  USAGE_ERROR     a bad option or path, an unknown scenario or metric, or a store that\n"
        "                     cannot be used (unreachable, locked, missing its driver): one line\n"
        "  4  INTERNAL_ERROR  a bug in the harness")
_ENV = f"environment (defaults for options; a flag given wins):\n  {STORE_ENV:<21} --store\n"
_EPILOGS = {
    "store": ("the store's rows (runs, SLO results, fault impacts, per-second aggregates); never the "
              "run folders",
              "  0  PASS            done",
              "harness store import runs/\n  harness store import runs/nightly-20270101-010000 "
              "--store postgresql+psycopg://ci@db/harness\n  harness store migrate --store runs/results.db"),
    "history": ("stdout: the table; with --html, the page (self-contained)",
                "  0  PASS            printed",
                "harness history quickstart\n  harness history scenarios/quickstart.yaml --metric 'p99*' "
                "--html history.html"),
    "regress": ("stdout: a line per metric and the conclusion; nothing else",
                "  0  PASS            no metric regressed beyond the threshold\n"
                "  1  SLO_FAILED      a metric regressed beyond the threshold",
                "harness regress quickstart --threshold 10\n  harness regress soak-triton-nightly "
                "--threshold 5 --metric 'recover_s*' --recent 3"),
}


def _epilog(command: str) -> str:
    writes, codes, examples = _EPILOGS[command]
    return (f"writes:\n  {writes}\n\nexit codes:\n{codes}\n{_BAD}\n\n{_ENV}\n"
            f"examples:\n  {examples}")


class _StoreFlag(argparse.Action):
    """`--store` on `run` and `soak`: it is `HARNESS_STORE` for this process. The run's end reads
    it there (the after-reports hook has the run folder, not the command line), and so do the
    processes the harness starts."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        os.environ[STORE_ENV] = str(values)


class _RegressFlag(argparse.Action):
    """`--regress PCT` on `run`: checked as it is parsed (one line, exit 2), then `HARNESS_REGRESS`
    for the after-reports hook, which judges the history once the run is recorded."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                  option_string: str | None = None) -> None:
        try:
            threshold = float(values)
        except ValueError:
            threshold = math.nan
        if not math.isfinite(threshold) or threshold < 0:
            parser.error(f"--regress: a percentage of 0 or more, got {values!r}")
        setattr(namespace, self.dest, threshold)
        os.environ[REGRESS_ENV] = repr(threshold)


def register(sub: Any) -> None:
    """Add the store's commands to `harness`, and `--store` to `run` and `soak` where they exist."""
    for name in ("run", "soak"):
        parser = sub.choices.get(name)
        if parser is not None:
            parser.add_argument("--store", action=_StoreFlag, metavar="URL", dest="store_url",
                                help=f"record the finished run (each soak cycle, each repetition) in "
                                     f"this results store (default: ${STORE_ENV}; unset: not recorded)")
    run = sub.choices.get("run")
    if run is not None:
        run.add_argument("--regress", action=_RegressFlag, metavar="PCT", dest="regress_pct",
                         help="after recording (needs --store), judge the scenario's history as "
                              "`harness regress --threshold PCT` does: a passing run whose history "
                              "regressed beyond PCT exits 1")
    _add_store(sub)
    _add_history(sub)
    _add_regress(sub)


def _command(sub: Any, name: str, summary: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=summary, epilog=_epilog(name),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL", dest="store_url", help=_STORE_HELP)
    parser.add_argument("--runs-dir", type=Path, default=None, help=argparse.SUPPRESS)


def _add_store(sub: Any) -> None:
    store = _command(sub, "store", "the results store: record finished runs, migrate its schema")
    actions = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="record finished runs already on disk (a run, a series, a soak "
                                            "or a folder of them); a run already there is skipped",
                             description="record finished runs already on disk")
    imp.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    _store_option(imp)
    imp.set_defaults(func=cmd_import)
    migrate = actions.add_parser("migrate", help="bring the store's schema to this harness's version "
                                                 "(recording does it too)",
                                 description="bring the store's schema to this harness's version")
    _store_option(migrate)
    migrate.set_defaults(func=cmd_migrate)


def _add_history(sub: Any) -> None:
    history = _command(sub, "history", "a scenario's recorded runs: each metric run by run, the verdicts, "
                                       "stack versions and change points")
    history.add_argument("scenario", help="the scenario's name, or its file")
    _store_option(history)
    history.add_argument("--metric", action="append", default=[], metavar="NAME",
                         help="only this metric (a shell pattern: 'recover_s*'); repeat for more")
    history.add_argument("--last", type=int, metavar="N", help="only the newest N runs")
    history.add_argument("--html", type=Path, metavar="FILE", help="also write it as a self-contained page")
    history.set_defaults(func=cmd_history)


def _add_regress(sub: Any) -> None:
    from harness.store.changepoints import MAX_PVALUE
    from harness.store.regress import RECENT

    regress = _command(sub, "regress", "did the newest runs of a scenario regress? change points by "
                                       "Apache Otava (E-divisive means) on each metric's history")
    regress.add_argument("scenario", help="the scenario's name, or its file")
    regress.add_argument("--threshold", type=float, required=True, metavar="PCT",
                         help="a change the worse way by more than PCT percent is a regression")
    _store_option(regress)
    regress.add_argument("--metric", action="append", default=[], metavar="NAME",
                         help="only this metric (a shell pattern); repeat for more")
    regress.add_argument("--recent", type=int, default=RECENT, metavar="N",
                         help=f"a change point among the newest N runs is news (default {RECENT})")
    regress.add_argument("--max-pvalue", type=float, default=MAX_PVALUE, metavar="P",
                         help=f"a change point's significance (default {MAX_PVALUE:g})")
    regress.add_argument("--last", type=int, metavar="N", help="judge only the newest N runs' history")
    regress.set_defaults(func=cmd_regress)


def _where(args: argparse.Namespace) -> StoreUrl:
    where = resolve(args.store_url, args.runs_dir)
    assert where is not None  # with the default on, there always is one
    return where


def _scenario_name(text: str) -> str:
    """A name as given, or the `name` of a scenario file."""
    path = Path(text)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from harness.scenario import load_scenario

        return load_scenario(path).name
    return text


def _positive(flag: str, value: int | None, least: int = 1) -> None:
    if value is not None and value < least:
        raise UsageError(f"{flag}: must be at least {least}, got {value}")


def cmd_import(args: argparse.Namespace) -> int:
    from harness.store.importer import import_runs

    import_runs(args.run_dirs, _where(args))
    return int(ExitCode.PASS)


def cmd_migrate(args: argparse.Namespace) -> int:
    from harness.store.db import current_revision, open_store

    store = open_store(_where(args), create=True)
    try:
        print(f"store {store.shown}: schema at revision {current_revision(store.engine)}")
    finally:
        store.close()
    return int(ExitCode.PASS)


def cmd_history(args: argparse.Namespace) -> int:
    from harness.store.db import open_store
    from harness.store.history import change_points, print_history, write_html
    from harness.store.points import load_history

    _positive("--last", args.last, 2)
    store = open_store(_where(args), create=False)
    try:
        history = load_history(store, _scenario_name(args.scenario), args.metric, args.last)
    finally:
        store.close()
    marks = change_points(history)
    print_history(history, marks)
    if args.html is not None:
        try:
            write_html(history, marks, args.html)
        except OSError as exc:
            raise UsageError(f"--html {args.html}: cannot write it: {exc.strerror or exc}") from None
        print(f"history: {args.html}")
    return int(ExitCode.PASS)


def cmd_regress(args: argparse.Namespace) -> int:
    from harness.store.changepoints import otava_available
    from harness.store.db import StoreError, open_store
    from harness.store.points import load_history
    from harness.store.regress import judge, report

    _check_regress(args.threshold, args.recent, args.max_pvalue, args.last)
    if not otava_available():
        raise StoreError("regress needs Apache Otava: pip install --no-deps apache-otava==0.8.0")
    store = open_store(_where(args), create=False)
    try:
        history = load_history(store, _scenario_name(args.scenario), args.metric, args.last)
    finally:
        store.close()
    moves = judge(history, args.threshold, args.recent, args.max_pvalue)
    return int(report(moves, history, args.threshold))


def _check_regress(threshold: float, recent: int, max_pvalue: float, last: int | None) -> None:
    if not math.isfinite(threshold) or threshold < 0:
        raise UsageError(f"--threshold: a percentage of 0 or more, got {threshold:g}")
    _positive("--recent", recent)
    if not 0 < max_pvalue < 1:
        raise UsageError(f"--max-pvalue: between 0 and 1, got {max_pvalue:g}")
    _positive("--last", last, 2)


def main(argv: Sequence[str] | None = None) -> int:
    """The store's commands alone (`python -m harness.store.cli ...`), for a core without the hook."""
    import sys

    from harness.errors import HarnessError

    parser = argparse.ArgumentParser(prog="harness")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return int(exc.code)


if __name__ == "__main__":
    raise SystemExit(main())
