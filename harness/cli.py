"""`harness run|soak|validate|report|cleanup|list`: the command line. Exit codes: harness.exitcodes."""

import argparse
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.exitcodes import ExitCode
from harness.load.workeropts import add_worker_options
from harness.soak import cli as soak_cli


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario against a real stack and judge it")
    run.add_argument("scenario", type=Path)
    run.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run folders go")
    run.add_argument("--no-progress", action="store_true", help="no live progress line")
    run.add_argument("--seed", type=int, help="replay a run: the seed its journal recorded")
    run.add_argument("--repeat", type=int, metavar="M",
                     help="run the scenario M times as one series (overrides its `repeat`; 1: one run)")
    add_worker_options(run)
    run.set_defaults(func=cmd_run)
    worker = sub.add_parser("worker", help="join a distributed run as a load worker (Locust worker)")
    worker.add_argument("--master", required=True, metavar="HOST:PORT",
                        help="the master's address, printed by `harness run --remote-workers`")
    worker.add_argument("--target-host", metavar="HOST",
                        help="reach the stack by this host instead of the one the master uses")
    worker.set_defaults(func=cmd_worker)
    cleanup = sub.add_parser("cleanup", help="undo what a killed run left: faults, processes")
    cleanup.add_argument("run_dir", type=Path)
    cleanup.set_defaults(func=cmd_cleanup)
    validate = sub.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("scenarios", type=Path, nargs="+")
    validate.set_defaults(func=cmd_validate)
    soak_cli.add_parser(sub)
    report = sub.add_parser("report", help="rebuild a run's reports from its journal (a soak's too)")
    report.add_argument("run_dir", type=Path)
    report.set_defaults(func=cmd_report)
    compare = sub.add_parser("compare", help="runs side by side: error window, failed requests, recovery")
    compare.add_argument("run_dirs", type=Path, nargs="+")
    compare.add_argument("--html", type=Path, help="also write the comparison as a self-contained page")
    compare.set_defaults(func=cmd_compare)
    listing = sub.add_parser("list", help="list scenarios, user classes, stacks, models, metrics, features, "
                                          "exit codes")
    listing.add_argument("what", nargs="?", default="all",
                         choices=["all", "scenarios", "users", "stacks", "models", "metrics", "features",
                                  "exit-codes"])
    listing.add_argument("--dir", type=Path, default=Path("scenarios"), help="scenario folder")
    listing.set_defaults(func=cmd_list)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    import locust  # noqa: F401  - first, so gevent patches the standard library before the rest

    from harness.load.workeropts import plan_from_args
    from harness.runner import Run
    from harness.scenario import load_scenario
    from harness.series_run import run_series, series_length

    workers = plan_from_args(args.workers, args.remote_workers, args.master_bind)
    scenario = load_scenario(args.scenario)

    def make_run(runs_root: Path) -> Run:
        return Run(scenario, args.scenario, runs_root, progress=not args.no_progress, seed=args.seed,
                   workers=workers)

    repeat = series_length(scenario, args.scenario, args.repeat)
    if repeat > 1:  # full runs one after another, judged together (harness.repeat)
        return run_series(scenario, args.scenario, args.runs_dir, make_run, repeat)
    run = make_run(args.runs_dir)
    print(f"run folder: {run.run_dir}", flush=True)
    verdict, _ = run.execute()
    _print_verdict(verdict.word, verdict.code, verdict.reason, run.run_dir)
    return int(verdict.code)


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
    for path in args.scenarios:
        try:
            scenario = load_scenario(path)
            print(f"ok: {path} ({scenario.name})")
        except HarnessError as exc:
            print(str(exc), file=sys.stderr)
            worst = exc.code
    return int(worst)


def cmd_report(args: argparse.Namespace) -> int:
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
    from harness.listing import sections

    for title, lines in sections(args.what, args.dir):
        print(f"{title}:")
        for line in lines:
            print(f"  {line}")
    return int(ExitCode.PASS)


def _print_verdict(word: str, code: ExitCode, reason: str, run_dir: Path) -> None:
    print(f"verdict: {word.upper()} (exit {int(code)} {code.name}): {reason}")
    print(f"reports: {run_dir / 'report.html'}  {run_dir / 'summary.json'}  {run_dir / 'junit.xml'}")


if __name__ == "__main__":
    sys.exit(main())
