"""Recording runs: after a run (`record_run`, never raises) and `harness store import RUN_DIR...`.

A run is recorded at most once: its key (harness.store.record.Identity) is unique in the store,
so importing a folder twice, or a folder the run already recorded itself, adds nothing. Each run
is one transaction: a store that fails midway keeps every run recorded before it, and none half.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from harness.store.db import Store, StoreError, describe, open_store, shown
from harness.store.folders import RunFolder, find_runs
from harness.store.record import NotARun, build_record
from harness.store.url import StoreUrl, resolve

RECORDED, PRESENT, SKIPPED = "recorded", "already in the store", "skipped"


@dataclass(frozen=True)
class Outcome:
    where: Path
    status: str  # RECORDED, PRESENT, SKIPPED
    detail: str = ""  # the run key, or why it was skipped


def save_runs(store: Store, folders: list[RunFolder]) -> list[Outcome]:
    """Record each run not yet in the store. A database error stops here (StoreError): the runs
    before it stay recorded, the rest can be imported again."""
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError

    from harness.store.models import RunRecord

    outcomes = []
    for folder in folders:
        try:
            record = build_record(folder)
        except (NotARun, OSError) as exc:
            outcomes.append(Outcome(folder.path, SKIPPED, str(exc)))
            continue
        try:
            with store.session() as session, session.begin():
                found = session.scalar(select(RunRecord.id).where(RunRecord.run_key == record.run_key))
                if found is None:
                    session.add(record)
            status = RECORDED if found is None else PRESENT
        except IntegrityError:  # another writer recorded the same run between our look and our insert
            status = PRESENT
        except SQLAlchemyError as exc:
            raise StoreError(f"store {store.shown}: {describe(exc)}") from None
        outcomes.append(Outcome(folder.path, status, record.run_key))
    return outcomes


def record_run(run_dir: Path, url: str | StoreUrl | None = None, *, out: TextIO | None = None,
               busy_timeout_s: float | None = None) -> list[Outcome] | None:
    """Record a finished run (a soak: each of its cycles) where `url` (else HARNESS_STORE) says.

    The end of a run's lifecycle calls this. It never raises and never touches the run's files: a
    store that is missing, unreachable or locked costs one line, and `harness store import
    RUN_DIR` records the run later. None: no store was asked for, or it failed.
    """
    stream = out if out is not None else sys.stdout
    try:
        where = url if isinstance(url, StoreUrl) else resolve(url, default=False)
        if where is None:
            return None
        found = find_runs(run_dir)
        store = open_store(where, create=True, **({} if busy_timeout_s is None
                                                  else {"busy_timeout_s": busy_timeout_s}))
        try:
            outcomes = save_runs(store, found.runs)
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - the run is done and on disk: recording must not undo that
        print(f"store: run not recorded ({_one_line(exc)}); its files are intact: "
              f"`harness store import {run_dir}` records it later", file=stream, flush=True)
        return None
    recorded = sum(o.status == RECORDED for o in outcomes)
    extra = f", {len(outcomes) - recorded} already there or skipped" if recorded < len(outcomes) else ""
    if found.skipped:  # a soak's cycle left without its summary: `harness report` finishes it
        extra += f", {len(found.skipped)} unfinished (no summary.json)"
    print(f"store: {recorded} run(s) recorded in {shown(where)}{extra}", file=stream, flush=True)
    return outcomes


def import_runs(paths: list[Path], where: StoreUrl, out: TextIO | None = None) -> list[Outcome]:
    """`harness store import`: every finished run under each path; one line per run."""
    stream = out if out is not None else sys.stdout
    folders: list[RunFolder] = []
    skipped: list[Outcome] = []
    for path in paths:
        if not path.exists():
            raise StoreError(f"{path}: no such folder")
        found = find_runs(path)
        if not found.runs and not found.skipped:
            raise StoreError(f"{path}: no run folder here or below it (a run folder has summary.json "
                             "and journal.jsonl)")
        folders.extend(found.runs)
        skipped.extend(Outcome(where, SKIPPED, why) for where, why in found.skipped)
    store = open_store(where, create=True)
    try:
        outcomes = save_runs(store, folders)
    finally:
        store.close()
    for outcome in [*outcomes, *skipped]:
        print(_line(outcome), file=stream)
    counts = {status: sum(o.status == status for o in [*outcomes, *skipped])
              for status in (RECORDED, PRESENT, SKIPPED)}
    print(f"store {shown(where)}: {counts[RECORDED]} recorded, {counts[PRESENT]} already there, "
          f"{counts[SKIPPED]} skipped", file=stream)
    return [*outcomes, *skipped]


def _line(outcome: Outcome) -> str:
    if outcome.status == SKIPPED:
        return f"skipped: {outcome.detail}"
    return f"{outcome.status}: {outcome.where} ({outcome.detail})"


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, StoreError):
        return str(exc)
    return f"{type(exc).__name__}: {describe(exc)}"
