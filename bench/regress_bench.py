"""How well `harness regress` works: its false-alarm rate on A/A histories and its detection rate
for a real injected change, on histories built from real short runs' per-second aggregates.

It runs a real Triton (the nvidia-pytriton wheel's `tritonserver`, the `identity` model with
`delay_ms`) a few times at the base delay (A) and a few times with the delay raised by a few
milliseconds (B), records them in a results store, and reads back their per-second aggregates.
A "night" is then a short run of `--night` seconds: a block of consecutive seconds drawn from one
of the A runs (or, after the change, the B runs), summarised as a recorded run is (requests,
errors, p50 and p99 as the median of the seconds' own). A history is `--nights` such nights:

- A/A: every night from A; any metric `regress` flags is a false alarm. Goal: at most 1 flagged
  metric in 20 histories.
- change: the nights from `--change-at` on come from B; it is detected when `regress`, asked
  after each of the first 3 nights at the new level, flags p50 or p99. Goal: 19 of 20 histories.

`regress` here is the command's own judgement (harness.store.regress.judge: Otava's E-divisive
means, the same threshold, p-value and `--recent`), run on each history as it stands that night.

    python bench/regress_bench.py                      # the real runs, then the figures
    python bench/regress_bench.py --store runs/bench.db --reuse   # the figures from runs recorded before

Traffic goes to 127.0.0.1 only; the only processes this script starts are `harness run`s.
"""

import argparse
import collections
import random
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from harness.store.changepoints import MAX_PVALUE
from harness.store.db import open_store
from harness.store.importer import import_runs
from harness.store.models import RunRecord, RunSecond
from harness.store.points import History, run_points
from harness.store.regress import RECENT, REGRESSED, judge
from harness.store.url import resolve

SCENARIO = """\
name: {name}
description: "regress_bench {label}: the identity model, {delay} ms delay, closed load"
seed: 3
stack: {{kind: triton, model: identity, instances: 2, delay_ms: {delay}}}
load: {{user: triton_http, users: {users}, duration: {seconds}s}}
slo:
  - {{metric: error_rate, max: 0.01}}
"""
LATENCY = ("p50_ms", "p99_ms")


@dataclass(frozen=True)
class Figures:
    histories: int
    false_alarms: int  # metrics flagged in the A/A histories
    false_alarm_histories: int
    flagged: dict[str, int]  # which metrics the false alarms were
    detected: int  # change histories flagged within 3 nights
    delays: list[int]  # nights after the change until flagged, per detected history


def main(argv: list[str] | None = None) -> int:
    run_bench(_parse(argv))
    return 0


def run_bench(args: argparse.Namespace) -> Figures:
    """The real runs (unless --reuse), then the figures, printed and returned."""
    where = resolve(args.store)
    assert where is not None
    if not args.reuse:
        _real_runs(args, where)
    store = open_store(where, create=False)
    try:
        a_runs = _seconds(store, "regress-bench-a")
        b_runs = _seconds(store, "regress-bench-b")
    finally:
        store.close()
    print(f"per-second aggregates: A {len(a_runs)} run(s), {sum(map(len, a_runs))} s; "
          f"B {len(b_runs)} run(s), {sum(map(len, b_runs))} s")
    for label, runs in (("A", a_runs), ("B", b_runs)):
        p99 = [s.p99_ms for run in runs for s in run if s.p99_ms is not None]
        p50 = [s.p50_ms for run in runs for s in run if s.p50_ms is not None]
        print(f"  {label}: seconds' p50 median {statistics.median(p50):.3f} ms, p99 median "
              f"{statistics.median(p99):.3f} ms (spread of p99: stdev {statistics.pstdev(p99):.3f} ms)")
    figures = measure(a_runs, b_runs, args)
    print(f"threshold {args.threshold:g}%, p-value {args.max_pvalue:g}, recent {args.recent}, "
          f"{args.nights} nights of {args.night} s, change at night {args.change_at + 1}")
    which = ", ".join(f"{name} x{n}" for name, n in sorted(figures.flagged.items()))
    print(f"false alarms (A/A): {figures.false_alarms} flagged metric(s) in {figures.false_alarm_histories} "
          f"of {figures.histories} histories (goal: at most 1 metric in 20){': ' + which if which else ''}")
    delays = ", ".join(map(str, figures.delays)) or "-"
    print(f"detection (delay_ms {args.delay_a:g} -> {args.delay_b:g}): {figures.detected} of "
          f"{figures.histories} histories flagged within 3 runs (goal: at least 19 of 20); "
          f"runs until flagged: {delays}")
    return figures


Seconds = list[list[RunSecond]]  # each recorded run's seconds


def measure(a_runs: Seconds, b_runs: Seconds, args: argparse.Namespace) -> Figures:
    rng = random.Random(args.seed)
    false_alarms = alarm_histories = detected = 0
    delays = []
    flagged_by: collections.Counter[str] = collections.Counter()
    for _ in range(args.histories):
        aa = [_night(a_runs, args.night, rng, i) for i in range(args.nights)]
        flagged = [m for m in judge(_history(aa), args.threshold, args.recent, args.max_pvalue)
                   if m.status == REGRESSED]
        false_alarms += len(flagged)
        alarm_histories += bool(flagged)
        flagged_by.update(m.metric for m in flagged)
        nights = [_night(a_runs if i < args.change_at else b_runs, args.night, rng, i)
                  for i in range(args.change_at + 3)]
        for after in range(1, 4):  # regress asked after each of the first 3 nights at the new level
            moves = judge(_history(nights[:args.change_at + after]), args.threshold, args.recent,
                          args.max_pvalue)
            if any(m.status == REGRESSED and m.metric in LATENCY for m in moves):
                detected += 1
                delays.append(after)
                break
    return Figures(args.histories, false_alarms, alarm_histories, dict(flagged_by), detected, delays)


def _night(runs: list[list[RunSecond]], length: int, rng: random.Random, index: int) -> RunRecord:
    """One short run: `length` consecutive seconds of one of `runs`, as the store records a run."""
    seconds = rng.choice(runs)
    start = rng.randrange(0, len(seconds) - length + 1)
    block = seconds[start:start + length]
    requests = sum(s.requests for s in block)
    errors = sum(s.errors for s in block)
    return RunRecord(
        run_key=f"night-{index}", scenario="bench", kind="run", verdict="pass", exit_code=0, reason="",
        started_at=datetime(2027, 1, 1) + timedelta(days=index), recorded_at=datetime(2027, 1, 1),
        run_dir="", stack_info={}, totals={}, findings=[], stack_kind="triton", requests=requests,
        ok=requests - errors, errors=errors, error_rate=errors / requests if requests else None,
        throughput_rps=requests / length,
        p50_ms=statistics.median(s.p50_ms for s in block if s.p50_ms is not None),
        p99_ms=statistics.median(s.p99_ms for s in block if s.p99_ms is not None),
    )


def _history(nights: list[RunRecord]) -> History:
    history = History("bench", nights)
    per_run = [run_points(n) for n in nights]
    for name in per_run[0]:
        history.metrics[name] = [points.get(name, (None, 0))[0] for points in per_run]
        history.better[name] = per_run[0][name][1]
    return history


def _seconds(store: object, scenario: str) -> list[list[RunSecond]]:
    """Each recorded run's seconds, less the first and the last (a partial second each)."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    assert hasattr(store, "session")
    with store.session() as session:
        runs = session.scalars(select(RunRecord).where(RunRecord.scenario == scenario)
                               .options(selectinload(RunRecord.seconds))).all()
        out = [[s for s in run.seconds[1:-1] if s.p99_ms is not None] for run in runs]
    if not out:
        raise SystemExit(f"no recorded runs of {scenario}: run without --reuse first")
    return out


def _real_runs(args: argparse.Namespace, where: object) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="regress-bench-"))
    runs_dir = Path(args.keep) if args.keep else workdir / "runs"
    plan = [("a", args.delay_a)] * args.a_runs + [("b", args.delay_b)] * args.b_runs
    for i, (label, delay) in enumerate(plan):
        path = workdir / f"regress-bench-{label}.yaml"
        path.write_text(SCENARIO.format(name=f"regress-bench-{label}", label=label.upper(), delay=delay,
                                        users=args.users, seconds=args.seconds), encoding="utf-8")
        command = [sys.executable, "-m", "harness.cli", "run", str(path), "--runs-dir", str(runs_dir),
                   "--no-progress"]
        print(f"real run {i + 1}/{len(plan)} ({label.upper()}, delay_ms {delay:g}): {' '.join(command)}",
              flush=True)
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 300)
        tail = [line for line in done.stdout.splitlines() if line.startswith("verdict:")]
        print(f"  exit {done.returncode}: {tail[-1] if tail else done.stderr.strip()[-300:]}", flush=True)
        if done.returncode not in (0, 1):  # no verdict: no seconds worth measuring
            raise SystemExit(f"real run {i + 1} failed (exit {done.returncode})")
    assert hasattr(where, "url")
    import_runs([runs_dir], where)  # type: ignore[arg-type]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=None, help="results store (default: a new SQLite file in /tmp)")
    parser.add_argument("--reuse", action="store_true", help="use the runs already in the store")
    parser.add_argument("--keep", help="keep the real runs' folders here")
    parser.add_argument("--a-runs", type=int, default=3)
    parser.add_argument("--b-runs", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=40, help="each real run's load")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--delay-a", type=float, default=5.0, help="the model's delay_ms before the change")
    parser.add_argument("--delay-b", type=float, default=8.0, help="the model's delay_ms after it")
    parser.add_argument("--histories", type=int, default=20)
    parser.add_argument("--nights", type=int, default=20)
    parser.add_argument("--night", type=int, default=5, help="seconds per night")
    parser.add_argument("--change-at", type=int, default=15,
                        help="the first night (0-based) at the new delay")
    parser.add_argument("--threshold", type=float, default=10.0)
    parser.add_argument("--recent", type=int, default=RECENT)
    parser.add_argument("--max-pvalue", type=float, default=MAX_PVALUE)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.store is None:
        args.store = str(Path(tempfile.mkdtemp(prefix="regress-bench-store-")) / "results.db")
    return args


if __name__ == "__main__":
    sys.exit(main())
