"""`harness`: run scenarios against real inference stacks, soak them, judge, report.

Exit codes: harness.exitcodes; the help texts: harness.clihelp; `--json`: harness.clijson;
`HARNESS_*` defaults: harness.clienv.
"""

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from harness import clihelp, clijson
from harness.clienv import add_json_option, add_run_options, add_web_option, apply_env, json_requested
from harness.errors import HarnessError
from harness.exitcodes import ExitCode
from harness.listing import CHOICES
from harness.load.workeropts import add_worker_options
from harness.soak import cli as soak_cli

ResultFn = Callable[[], clijson.JsonObject]  # the --json object, built once the run has ended


class CommandLineError(Exception):
    """argparse's complaint, raised instead of its exit so that main can answer --json too."""

    def __init__(self, prog: str, message: str, usage: str):
        super().__init__(message)
        self.prog, self.message, self.usage = prog, message, usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandLineError(self.prog, message, self.format_usage())


class _Version(argparse.Action):
    """--version, worked out only when asked (reading Locust's version costs a metadata look-up)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(clihelp.version_line())
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parser().parse_args(argv)
    except CommandLineError as exc:
        sys.stderr.write(exc.usage)
        print(f"{exc.prog}: error: {exc.message}", file=sys.stderr)
        if json_requested(argv):
            command = next((a for a in argv if not a.startswith("-")), "")
            clijson.emit(clijson.error_object(command, exc.message, ExitCode.USAGE_ERROR))
        return int(ExitCode.USAGE_ERROR)
    except SystemExit as exc:  # --help, --version: argparse has printed and exits 0
        return exc.code if isinstance(exc.code, int) else 0
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        apply_env(args)
        return int(args.func(args))
    except HarnessError as exc:
        return _failed(args, str(exc), exc.code)
    except KeyboardInterrupt:
        return _failed(args, "interrupted", ExitCode.INTERRUPTED, human=False)
    except Exception as exc:  # noqa: BLE001 - a bug: the documented 4, not Python's 1 (that reads as SLO_FAILED)
        traceback.print_exc()
        return _failed(args, f"internal error: {exc!r}", ExitCode.INTERNAL_ERROR)


def _failed(args: argparse.Namespace, message: str, code: ExitCode, human: bool = True) -> int:
    """The one human line on stderr; with --json, also the error object on stdout."""
    if human:
        print(f"harness: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        clijson.emit(clijson.error_object(args.command, message, code))
    return int(code)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description=clihelp.DESCRIPTION, epilog=clihelp.main_epilog(),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version, help="print the harness, Python and Locust versions")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = _command(sub, "run", "run a scenario against a real stack and judge it")
    run.add_argument("scenario", type=Path,
                     help="a scenario file, or a folder: every scenario in it, one after another "
                          "(a reproduction library; library.json and junit.xml say how each ended)")
    add_run_options(run, "run")
    add_web_option(run)
    run.add_argument("--repeat", type=int, metavar="M",
                     help="run the scenario M times as one series (overrides its `repeat`; 1: one run)")
    add_json_option(run)
    add_worker_options(run)
    run.set_defaults(func=cmd_run)
    worker = _command(sub, "worker", "join a distributed run as a load worker (Locust worker)")
    worker.add_argument("--master", required=True, metavar="HOST:PORT",
                        help="the master's address, printed by `harness run --remote-workers`")
    worker.add_argument("--target-host", metavar="HOST",
                        help="reach the stack by this host instead of the one the master uses")
    worker.set_defaults(func=cmd_worker)
    cleanup = _command(sub, "cleanup", "undo what a killed run left: faults, processes")
    cleanup.add_argument("run_dir", type=Path)
    cleanup.set_defaults(func=cmd_cleanup)
    validate = _command(sub, "validate", "check scenario files without running them")
    validate.add_argument("scenarios", type=Path, nargs="+")
    add_json_option(validate)
    validate.set_defaults(func=cmd_validate)
    soak_cli.add_parser(sub)
    report = _command(sub, "report", "rebuild a run's reports from its journal (a soak's too)")
    report.add_argument("run_dir", type=Path)
    report.set_defaults(func=cmd_report)
    compare = _command(sub, "compare", "runs side by side: error window, failed requests, recovery")
    compare.add_argument("run_dirs", type=Path, nargs="+")
    compare.add_argument("--html", type=Path, help="also write the comparison as a self-contained page")
    compare.set_defaults(func=cmd_compare)
    listing = _command(sub, "list", "list scenarios, user classes, stacks, models, metrics, features, "
                                    "exit codes")
    listing.add_argument("what", nargs="?", default="all", choices=CHOICES)
    listing.add_argument("--dir", type=Path, default=Path("scenarios"), help="scenario folder")
    add_json_option(listing)
    listing.set_defaults(func=cmd_list)
    schema = _command(sub, "schema", "print the scenario format's JSON Schema (for editors and CI)")
    schema.add_argument("-o", "--output", type=Path, metavar="FILE", help="write it to FILE instead")
    schema.set_defaults(func=cmd_schema)
    for name, command in sub.choices.items():
        clihelp.finish(command, name)
    _plugin_commands(sub)  # after: a plugin's commands bring their own help
    return parser


COMMANDS_GROUP = "harness.commands"
# Known without installing (a checkout run in place), as harness.features' built-in list is.
_BUILTIN_COMMANDS = {"store": "harness.store.cli:register", "exporter": "harness.exporter.cli:register",
                     "matrix": "harness.matrix.cli:register"}


def _plugin_commands(sub: Any) -> None:
    """Commands from plugins: each `harness.commands` entry point names a `register(sub)` that
    adds its commands, and may add options to the core's (the store's `--store` on `run`)."""
    from harness.plugins import load, registered

    for name, target in registered(COMMANDS_GROUP, _BUILTIN_COMMANDS).items():
        try:
            load(target)(sub)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break `harness run`
            print(f"harness: {COMMANDS_GROUP} entry point {name!r} ({target}) failed to load: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


def _command(sub: Any, name: str, summary: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=summary)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    if not args.json:
        return _run(args)[0]
    with clijson.human_to_stderr():
        code, result = _run(args)
    clijson.emit(result())
    return code


def _run(args: argparse.Namespace) -> tuple[int, ResultFn]:
    import locust  # noqa: F401  - first, so gevent patches the standard library before the rest

    from harness.load.workeropts import plan_from_args
    from harness.scenario import load_scenario
    from reports.live import LiveSession

    workers = plan_from_args(args.workers, args.remote_workers, args.master_bind)
    if args.scenario.is_dir():  # a library: every scenario in it, one after another
        from harness.library_run import run_library

        live = LiveSession(args.web)
        try:
            code, library_dir = run_library(
                args.scenario, args.runs_dir,
                lambda path, scenario, root: _run_file(args, path, scenario, root, workers, live)[:3])
        finally:
            live.stop()
        return code, lambda: clijson.library_object(library_dir, ExitCode(code))
    scenario = load_scenario(args.scenario)
    live = LiveSession(args.web)  # a taken --web port is refused here, before any folder is made
    try:
        code, _, _, result = _run_file(args, args.scenario, scenario, args.runs_dir, workers, live)
    finally:
        live.stop()
    return code, result


def _run_file(args: argparse.Namespace, path: Path, scenario: Any, runs_root: Path, workers: Any,
              live: Any) -> tuple[int, Path | None, str, ResultFn]:
    """One scenario file as `harness run FILE` runs it: a run, or a series where it repeats.
    Returns the exit code, the run's (or series') folder, the verdict's reason and the --json object."""
    from harness.console import print_slo_table
    from harness.runner import Run
    from harness.series_run import run_series, series_length

    roots: list[Path] = []  # where each run was made: a series' folder for a series
    repeat = series_length(scenario, path, args.repeat)

    def make_run(root: Path) -> Run:
        roots.append(root)
        run = Run(scenario, path, root, progress=not args.no_progress, seed=args.seed, workers=workers)
        live.follow(root if repeat > 1 else run.run_dir)  # a series: its current repetition
        return run

    if repeat > 1:  # full runs one after another, judged together (harness.repeat)
        code = run_series(scenario, path, runs_root, make_run, repeat)
        series_dir = roots[0] if roots else None
        series = clijson.series_object(series_dir, ExitCode(code))
        return code, series_dir, f"{series['verdict']}: {series['reason']}", lambda: series
    run = make_run(runs_root)
    print(f"run folder: {run.run_dir}", flush=True)
    verdict, _ = run.execute()
    print_slo_table(verdict.slos)
    _print_verdict(verdict.word, verdict.code, verdict.reason, run.run_dir)
    return (int(verdict.code), run.run_dir, f"{verdict.word}: {verdict.reason}",
            lambda: clijson.run_object(run.run_dir, verdict))


def cmd_worker(args: argparse.Namespace) -> int:
    import locust  # noqa: F401  - first, so gevent patches the standard library before the rest

    from harness.errors import UsageError
    from harness.load.worker import run_worker
    from harness.load.workeropts import split_master

    try:
        split_master(args.master)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return run_worker(args.master, args.target_host)


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.scenario import load_scenario

    worst = ExitCode.PASS
    files: list[clijson.JsonObject] = []
    for path in args.scenarios:
        try:
            scenario = load_scenario(path)
        except HarnessError as exc:
            print(str(exc), file=sys.stderr)
            worst = max(worst, exc.code)
            files.append(clijson.validate_file(path, error=str(exc), code=exc.code))
            continue
        print(f"ok: {path} ({scenario.name})", file=sys.stderr if args.json else sys.stdout)
        files.append(clijson.validate_file(path, name=scenario.name))
    if args.json:
        clijson.emit(clijson.validate_object(files, worst))
    return int(worst)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.console import print_slo_table
    from harness.errors import UsageError
    from harness.rundir import SCENARIO_COPY
    from harness.scenario import load_scenario
    from reports.build import write_reports

    run_dir: Path = args.run_dir
    if not (run_dir / "journal.jsonl").is_file():
        raise UsageError(f"{run_dir}: not a run folder (no journal.jsonl)")
    soak_code = soak_cli.report_soak(run_dir)
    if soak_code is not None:
        return soak_code
    scenario = load_scenario(run_dir / SCENARIO_COPY)
    verdict, _ = write_reports(run_dir, scenario)
    print_slo_table(verdict.slos)
    _print_verdict(verdict.word, verdict.code, verdict.reason, run_dir)
    return int(verdict.code)


def cmd_cleanup(args: argparse.Namespace) -> int:
    from harness.errors import UsageError
    from harness.restore import RESTORE_NAME, cleanup

    if not (args.run_dir / RESTORE_NAME).is_file():
        raise UsageError(f"{args.run_dir}: no {RESTORE_NAME} here; not a run folder")
    actions = cleanup(args.run_dir)
    for action in actions:
        print(action)
    print(f"cleanup: {len(actions)} action(s); nothing left to undo")
    return int(ExitCode.PASS)


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import run_compare

    return run_compare(args.run_dirs, args.html)


def cmd_list(args: argparse.Namespace) -> int:
    from harness.listing import section_data, sections

    if args.json:
        clijson.emit(clijson.list_object(section_data(args.what, args.dir)))
        return int(ExitCode.PASS)
    for title, lines in sections(args.what, args.dir):
        print(f"{title}:")
        for line in lines:
            print(f"  {line}")
    return int(ExitCode.PASS)


def cmd_schema(args: argparse.Namespace) -> int:
    from harness.errors import UsageError
    from harness.scenario_schema import schema_text

    text = schema_text()
    if args.output is None:
        sys.stdout.write(text)
        return int(ExitCode.PASS)
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{args.output}: cannot write the schema: {exc.strerror or exc}") from None
    print(f"schema: {args.output}")
    return int(ExitCode.PASS)


def _print_verdict(word: str, code: ExitCode, reason: str, run_dir: Path) -> None:
    print(f"verdict: {word.upper()} (exit {int(code)} {code.name}): {reason}")
    print(f"reports: {run_dir / 'report.html'}  {run_dir / 'summary.json'}  {run_dir / 'junit.xml'}")


if __name__ == "__main__":
    sys.exit(main())
