"""`harness soak SCENARIO --for 8h`, and `harness report` on a soak's folder.

Imports nothing heavy at module level: the parser is built for every `harness` command.
"""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.exitcodes import ExitCode

if TYPE_CHECKING:
    from harness.clijson import VerdictLike


def add_parser(sub: Any) -> None:
    from harness.clienv import add_json_option, add_run_options, add_web_option
    from harness.load.workeropts import add_worker_options

    summary = "repeat a scenario's load and fault cycle for hours, stack kept up"
    soak = sub.add_parser("soak", help=summary, description=summary)
    soak.add_argument("scenario", type=Path)
    soak.add_argument("--for", dest="for_", required=True, metavar="DURATION",
                      help="how long to soak: 90s, 10m, 8h, 1h30m (the last cycle may be cut short)")
    add_run_options(soak, "soak")
    add_web_option(soak)
    soak.add_argument("--warmup", metavar="DURATION",
                      help="leave RSS samples this soon after the start out of slopes (default: one cycle)")
    soak.add_argument("--max-rss-slope-mb-per-h", type=float, metavar="X",
                      help="fail the soak when the target's RSS grows faster than X MB/hour (leak)")
    soak.add_argument("--max-p99-drift-ms", type=float, metavar="X",
                      help="fail the soak when the last cycles' p99 exceeds the first ones' by over X ms")
    add_json_option(soak)
    add_worker_options(soak)
    soak.set_defaults(func=cmd_soak)


def _duration(flag: str, text: str, positive: bool = True) -> float:
    from harness.durations import parse_duration
    from harness.errors import UsageError

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if positive and seconds <= 0:
        raise UsageError(f"{flag}: must be longer than 0 s, got {text!r}")
    return seconds


def cmd_soak(args: argparse.Namespace) -> int:
    if not args.json:
        return _soak(args)[0]
    from harness import clijson

    with clijson.human_to_stderr():  # the verdict lines to stderr, the object alone on stdout
        code, run_dir, verdict = _soak(args)
    clijson.emit(clijson.soak_object(run_dir, verdict))
    return code


def _soak(args: argparse.Namespace) -> "tuple[int, Path, VerdictLike]":
    for_s = _duration("--for", args.for_)
    warmup_s = None if args.warmup is None else _duration("--warmup", args.warmup, positive=False)

    import locust  # noqa: F401  - before the rest, so gevent patches the standard library first

    from harness.durations import format_duration
    from harness.errors import UsageError
    from harness.load.workeropts import plan_from_args
    from harness.scenario import load_scenario
    from harness.soak.run import SoakRun
    from reports.live import LiveSession

    scenario = load_scenario(args.scenario)
    workers = plan_from_args(args.workers, args.remote_workers, args.master_bind)
    if workers is not None and scenario.load.open_model and scenario.load.stages:
        # Each worker would walk the whole soak's stage list for every arrival: refuse, not crawl.
        raise UsageError(f"{args.scenario}: load.stages: an open-model soak with stages runs without "
                         "--workers; use one `rate` or a closed model")
    live = LiveSession(args.web)  # a taken --web port is refused here, before any folder is made
    run = SoakRun(scenario, args.scenario, args.runs_dir, for_s=for_s, warmup_s=warmup_s,
                  max_rss_slope_mb_per_h=args.max_rss_slope_mb_per_h, max_p99_drift_ms=args.max_p99_drift_ms,
                  progress=not args.no_progress, seed=args.seed, workers=workers)
    print(f"run folder: {run.run_dir}", flush=True)
    print(f"soak: {run.plan.cycles} cycle(s) of {format_duration(run.plan.cycle_s)} "
          f"for {format_duration(for_s)}", flush=True)
    live.follow(run.run_dir)  # the current cycle's journal, as the soak rotates them
    try:
        verdict, _ = run.execute()
    finally:
        live.stop()
    from harness.console import print_slo_table

    print_slo_table(verdict.slos)
    _print(verdict.word, verdict.code, verdict.reason, run.run_dir)
    return int(verdict.code), run.run_dir, verdict


def report_soak(run_dir: Path) -> int | None:
    """`harness report` on a soak's folder: rebuild the soak's reports; None if it is no soak."""
    from harness.rundir import SCENARIO_COPY
    from harness.scenario import load_scenario
    from harness.soak.report import read_settings, write_soak_reports

    settings = read_settings(run_dir)
    if settings is None:
        return None
    verdict, _ = write_soak_reports(run_dir, load_scenario(run_dir / SCENARIO_COPY), settings)
    _print(verdict.word, verdict.code, verdict.reason, run_dir)
    return int(verdict.code)


def _print(word: str, code: ExitCode, reason: str, run_dir: Path) -> None:
    print(f"verdict: {word.upper()} (exit {int(code)} {code.name}): {reason}")
    print(f"reports: {run_dir / 'soak.html'}  {run_dir / 'soak.json'}  {run_dir / 'soak.jsonl'}  "
          f"{run_dir / 'junit.xml'}  (each cycle's: {run_dir / 'cycles'}/NNNN/report.html)")
