"""`harness regress SCENARIO --threshold PCT`: did the newest runs move, and is it a regression?

For each metric of the scenario's history, Otava's change points (harness.store.changepoints);
the newest one counts when it lies among the newest `recent` runs: the level since that run is
compared with the level before it. It is a regression when the metric went the worse way by more
than the threshold (percent of the level before). An older change is history, not news: it was
reported by the runs that came right after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.exitcodes import ExitCode
from harness.store.changepoints import MAX_PVALUE, MIN_RUNS, Change, detect
from harness.store.history import fmt, run_label
from harness.store.points import History

RECENT = 5  # change points among the newest this many runs are news

REGRESSED, IMPROVED, MOVED, STEADY, TOO_FEW = "regressed", "improved", "moved", "steady", "too few runs"


@dataclass(frozen=True)
class Move:
    metric: str
    status: str
    runs: int  # the runs that have the metric
    change: Change | None = None
    since: int | None = None  # index into History.runs of the first run at the new level


def judge(history: History, threshold_pct: float, recent: int = RECENT,
          max_pvalue: float = MAX_PVALUE) -> list[Move]:
    moves = []
    for name in history.metrics:
        indices, values = history.values(name)
        if len(values) < MIN_RUNS:
            moves.append(Move(name, TOO_FEW, len(values)))
            continue
        changes = detect(values, max_pvalue=max_pvalue)
        last = changes[-1] if changes else None
        if last is None or last.index < len(values) - recent:
            moves.append(Move(name, STEADY, len(values)))
            continue
        worse = (last.after - last.before) * history.better[name] < 0
        beyond = abs(last.change_pct) > threshold_pct
        status = IMPROVED if not worse else REGRESSED if beyond else MOVED
        moves.append(Move(name, status, len(values), last, indices[last.index]))
    return moves


def describe(move: Move, history: History) -> str:
    if move.change is None or move.since is None:
        detail = (f"over {move.runs} run(s), at least {MIN_RUNS} are needed" if move.status == TOO_FEW
                  else f"over {move.runs} runs (no change point among the newest)")
        return f"{move.metric}: {move.status} {detail}"
    change = move.change
    run = history.runs[move.since]
    word = {MOVED: "moved the worse way, within the threshold"}.get(move.status, move.status)
    return (f"{move.metric}: {word} since run #{move.since + 1} ({run_label(run)}, "
            f"{run.stack_kind or '?'} {run.stack_version or ''}".rstrip() +
            f"): {fmt(change.before)} -> {fmt(change.after)} ({change.shown}) "
            f"over {move.runs} runs")


def report(moves: list[Move], history: History, threshold_pct: float) -> ExitCode:
    """Print a line per metric and the conclusion; SLO_FAILED when a metric regressed."""
    for move in moves:
        print(describe(move, history))
    regressed = [m.metric for m in moves if m.status == REGRESSED]
    if regressed:
        print(f"regress: {len(regressed)} metric(s) of {history.scenario} regressed beyond "
              f"{threshold_pct:g}%: {', '.join(regressed)}")
        return ExitCode.SLO_FAILED
    print(f"regress: no metric of {history.scenario} regressed beyond {threshold_pct:g}% "
          f"({len(history.runs)} runs)")
    return ExitCode.PASS
