"""Recording at the end of a run's lifecycle: the store feature's `after_report` hook.

Called once a run's reports are written (a soak's: soak.json and every cycle's summary), in the
harness process, with the run still on the screen. It records where `HARNESS_STORE` says (`--store`
on `run` and `soak` sets it), and nothing when it is unset. It imports SQLAlchemy only then,
and it never raises: harness.store.importer.record_run answers a bad store with one line.
"""

import os
import sys

from harness.features import RunHooksContext
from harness.store.url import REGRESS_ENV, STORE_ENV

RECORDED = "store.recorded"  # in RunHooksContext.services: whether this run got into the store


def record_after_report(ctx: RunHooksContext) -> None:
    if not os.environ.get(STORE_ENV, "").strip():
        return  # no store asked for: not even an import
    from harness.store.importer import record_run

    ctx.services[RECORDED] = record_run(ctx.run_dir, None) is not None


def judge_regress(ctx: RunHooksContext) -> str | None:
    """`run --regress PCT`: once the run is recorded, `harness regress SCENARIO --threshold PCT` on
    the history it just joined, its lines printed after the run's. Why the run fails (a metric
    regressed beyond PCT), or None; a history that cannot be judged says so and fails nothing."""
    threshold = os.environ.get(REGRESS_ENV, "").strip()
    if not threshold:
        return None
    if not os.environ.get(STORE_ENV, "").strip():
        print(f"regress: not judged (--regress needs --store or ${STORE_ENV}: the history is there)")
        return None
    if not ctx.services.get(RECORDED):
        print("regress: not judged (this run is not in the store: without it the history is old)")
        return None
    try:
        moved = _regressed(ctx.scenario.name, float(threshold))
    except Exception as exc:  # noqa: BLE001 - the run is done and recorded: judging must not undo that
        print(f"regress: not judged ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None
    return f"regressed beyond {float(threshold):g}%: {', '.join(moved)}" if moved else None


def _regressed(scenario: str, threshold_pct: float) -> list[str]:
    from harness.store.changepoints import otava_available
    from harness.store.db import open_store
    from harness.store.points import load_history
    from harness.store.regress import REGRESSED, judge, report
    from harness.store.url import resolve

    if not otava_available():
        print("regress: not judged (needs Apache Otava: pip install --no-deps apache-otava==0.8.0)")
        return []
    where = resolve(None, default=False)
    if where is None:
        return []
    store = open_store(where, create=False)
    try:
        history = load_history(store, scenario)
    finally:
        store.close()
    moves = judge(history, threshold_pct)
    report(moves, history, threshold_pct)
    return [move.metric for move in moves if move.status == REGRESSED]
