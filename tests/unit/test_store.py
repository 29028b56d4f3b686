"""The results store on SQLite: round trip, idempotence, series and soaks, a store that cannot be
reached or is locked, two processes recording at once, migrations from an empty database."""

import hashlib
import io
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")

from sqlalchemy import func, select  # noqa: E402

from harness.store.db import StoreError, current_revision, head_revision, open_store  # noqa: E402
from harness.store.importer import PRESENT, RECORDED, SKIPPED, import_runs, record_run  # noqa: E402
from harness.store.models import Base, RunRecord, RunSecond  # noqa: E402
from harness.store.record import coarse_seconds  # noqa: E402
from harness.store.url import STORE_ENV, resolve, to_url  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.unit.store_runs import make_run, make_series, make_soak, tree_digest  # noqa: E402


def sqlite_url(tmp_path: Path) -> str:
    return to_url(str(tmp_path / "store" / "results.db"))


def all_runs(url: str) -> list[RunRecord]:
    from sqlalchemy.orm import selectinload

    store = open_store(resolve(url), create=False)
    try:
        with store.session() as session:
            query = (select(RunRecord).order_by(RunRecord.id)
                     .options(selectinload(RunRecord.slos), selectinload(RunRecord.faults),
                              selectinload(RunRecord.seconds)))
            return list(session.scalars(query).all())
    finally:
        store.close()


# --- the round trip


def check_round_trip(url: str, run_dir: Path) -> None:
    """Shared with the PostgreSQL test: one recorded run reads back as its summary says."""
    out = io.StringIO()
    outcomes = record_run(run_dir, url, out=out)
    assert outcomes is not None and [o.status for o in outcomes] == [RECORDED]
    assert out.getvalue().count("\n") == 1 and "1 run(s) recorded" in out.getvalue()
    [run] = all_runs(url)
    assert run.scenario == "unit" and run.kind == "run" and run.group_name is None
    assert run.scenario_sha256 == hashlib.sha256((run_dir / "scenario.yaml").read_bytes()).hexdigest()
    assert run.run_key.startswith("unit@1800000000.000000#1000")
    assert (run.stack_kind, run.stack_version, run.harness_version, run.seed) == (
        "external", "2.51.0", "0.1.0", 7)
    assert run.stack_info == {"kind": "external", "version": "2.51.0"}  # no ports, no PIDs
    assert (run.verdict, run.exit_code, run.requests, run.ok, run.errors) == ("pass", 0, 1000, 1000, 0)
    assert run.p99_ms == pytest.approx(9.903) and run.totals["latency_ms"]["p99"] == pytest.approx(9.903)
    assert [(s.metric, s.op, s.threshold, s.window, s.passed) for s in run.slos] == [
        ("p99_ms", "<", 250.0, "all", True), ("error_rate", "<", 0.2, "all", True)]
    p99 = run.slos[0]
    assert p99.measured == pytest.approx(9.903) and p99.samples == 1000
    assert p99.ci_low is not None and p99.ci_high is not None and p99.ci_low <= p99.measured <= p99.ci_high
    assert p99.confidence == 0.95
    [fault] = run.faults
    assert (fault.fault_id, fault.kind, fault.name, fault.injected_t) == (
        "f0.0", "process_kill", "process_kill", 4.0)
    assert [s.t for s in run.seconds] == list(range(2, 12))
    assert sum(s.requests for s in run.seconds) == 1000 and all(s.p99_ms for s in run.seconds)


def test_a_recorded_run_reads_back_as_its_summary_says(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "runs" / "unit-1")
    before = tree_digest(run_dir)
    check_round_trip(sqlite_url(tmp_path), run_dir)
    assert tree_digest(run_dir) == before  # recording reads, never writes, the run's folder


def test_recording_twice_or_from_a_copied_folder_adds_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    run_dir = make_run(tmp_path / "runs" / "unit-1")
    record_run(run_dir, url, out=io.StringIO())
    copy = shutil.copytree(run_dir, tmp_path / "elsewhere" / "renamed")
    out = io.StringIO()
    outcomes = import_runs([run_dir, copy], resolve(url), out=out)
    assert [o.status for o in outcomes] == [PRESENT, PRESENT]
    assert "0 recorded, 2 already there, 0 skipped" in out.getvalue()
    assert len(all_runs(url)) == 1


def test_import_finds_series_repetitions_soak_cycles_and_skips_unfinished_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_series(runs / "unit-series-1", repetitions=2)
    make_soak(runs / "soak-1", cycles=3)
    make_run(runs / "plain-1", name="plain", index=5)
    unfinished = runs / "killed-1"
    unfinished.mkdir()
    (unfinished / "journal.jsonl").write_text('{"type":"event","event":"run_started","t":0}\n')
    url = sqlite_url(tmp_path)
    out = io.StringIO()
    outcomes = import_runs([runs], resolve(url), out=out)
    assert sorted(o.status for o in outcomes) == [RECORDED] * 6 + [SKIPPED]
    assert "killed-1: no summary.json" in out.getvalue()
    got = {(r.scenario, r.kind, r.group_name, r.position) for r in all_runs(url)}
    assert got == {("plain", "run", None, None),
                   ("unit", "repetition", "unit-series-1", 1), ("unit", "repetition", "unit-series-1", 2),
                   ("soaky", "soak_cycle", "soak-1", 1), ("soaky", "soak_cycle", "soak-1", 2),
                   ("soaky", "soak_cycle", "soak-1", 3)}
    # The cycles share the soak's start; their keys differ by the cycle. Their scenario is the soak's.
    cycles = [r for r in all_runs(url) if r.kind == "soak_cycle"]
    assert len({r.run_key for r in cycles}) == 3
    soak_sha = hashlib.sha256((runs / "soak-1" / "scenario.yaml").read_bytes()).hexdigest()
    assert {r.scenario_sha256 for r in cycles} == {soak_sha}


def test_a_soak_folder_given_to_record_run_records_each_cycle(tmp_path: Path) -> None:
    soak = make_soak(tmp_path / "runs" / "soak-1", cycles=2)
    outcomes = record_run(soak, sqlite_url(tmp_path), out=io.StringIO())
    assert outcomes is not None and [o.status for o in outcomes] == [RECORDED, RECORDED]


def test_import_of_a_folder_with_no_run_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no run folder here") as info:
        import_runs([tmp_path / "empty"], resolve(sqlite_url(tmp_path)))
    assert info.value.code == 2
    with pytest.raises(StoreError, match="no such folder"):
        import_runs([tmp_path / "missing"], resolve(sqlite_url(tmp_path)))


# --- a store that cannot be used loses no run


def test_an_unreachable_store_costs_one_line_and_the_import_records_the_run_later(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "runs" / "unit-1")
    before = tree_digest(run_dir)
    out = io.StringIO()
    # Nothing listens on port 1; the connect fails at once.
    assert record_run(run_dir, "postgresql+psycopg://harness@127.0.0.1:1/none", out=out) is None
    line = out.getvalue()
    assert line.count("\n") == 1 and line.startswith("store: run not recorded (")
    assert f"`harness store import {run_dir}` records it later" in line
    assert tree_digest(run_dir) == before
    url = sqlite_url(tmp_path)
    assert [o.status for o in import_runs([run_dir], resolve(url), out=io.StringIO())] == [RECORDED]


def test_a_store_locked_past_the_timeout_costs_one_line(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    open_store(resolve(url), create=True).close()  # the schema is there: only the insert waits
    holder = sqlite3.connect(tmp_path / "store" / "results.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer, in the middle of its transaction
    try:
        run_dir = make_run(tmp_path / "runs" / "unit-1")
        out = io.StringIO()
        assert record_run(run_dir, url, out=out, busy_timeout_s=0.2) is None
        assert "locked by another writer" in out.getvalue() and out.getvalue().count("\n") == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [o.status for o in import_runs([run_dir], resolve(url), out=io.StringIO())] == [RECORDED]


def test_no_store_asked_for_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)
    out = io.StringIO()
    assert record_run(make_run(tmp_path / "unit-1"), None, out=out) is None
    assert out.getvalue() == ""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "from-env.db"))
    assert record_run(tmp_path / "unit-1", None, out=out) is not None
    assert (tmp_path / "from-env.db").is_file()


# --- concurrent writers

WRITER = textwrap.dedent("""\
    import io, sys
    from pathlib import Path
    from harness.store.importer import record_run
    url, *dirs = sys.argv[1:]
    for d in dirs:
        outcomes = record_run(Path(d), url, out=io.StringIO())
        assert outcomes is not None, d
        print(outcomes[0].status, flush=True)
""")


def record_concurrently(url: str, groups: list[list[Path]]) -> list[str]:
    """Each group recorded by its own process, all started at once; their outcome lines."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, *map(str, group)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for group in groups]
    lines = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        lines += stdout.splitlines()
    return lines


def check_concurrent_writers(url: str, tmp_path: Path) -> None:
    """Shared with the PostgreSQL test: two processes, a fresh store (both migrate), 8 runs each,
    and one run both record: every run once, none lost."""
    mine = [make_run(tmp_path / "a" / f"r{i}", index=i) for i in range(8)]
    theirs = [make_run(tmp_path / "b" / f"r{i}", index=100 + i) for i in range(8)]
    both = make_run(tmp_path / "both", index=500)
    lines = record_concurrently(url, [[both, *mine], [both, *theirs]])
    assert sorted(lines).count("recorded") == 17 and lines.count("already in the store") == 1
    store = open_store(resolve(url), create=False)
    try:
        with store.session() as session:
            assert session.scalar(select(func.count()).select_from(RunRecord)) == 17
            assert session.scalar(select(func.count()).select_from(RunSecond)) == 17 * 10
        assert current_revision(store.engine) == head_revision()
    finally:
        store.close()


def test_two_processes_recording_at_once_into_one_sqlite_file(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    check_concurrent_writers(url, tmp_path)
    with sqlite3.connect(tmp_path / "store" / "results.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# --- migrations


def check_migrations_match_the_models(url: str) -> None:
    """Shared with the PostgreSQL test: an empty database migrated to the head is what the models
    declare, and the migration goes down and up again."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext

    from harness.store.db import MIGRATIONS, ensure_schema

    store = open_store(resolve(url), create=True)
    try:
        assert current_revision(store.engine) == head_revision() == "0001"
        with store.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                    Base.metadata)
        assert diff == []
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert current_revision(store.engine) is None
        ensure_schema(store.engine)
        assert current_revision(store.engine) == "0001"
    finally:
        store.close()


def test_migrations_from_an_empty_sqlite_file_match_the_models(tmp_path: Path) -> None:
    check_migrations_match_the_models(sqlite_url(tmp_path))


def test_reading_a_store_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such file") as info:
        open_store(resolve(str(tmp_path / "none.db")), create=False)
    assert info.value.code == 2 and not (tmp_path / "none.db").exists()


# --- where the store is


def test_the_store_url_comes_from_the_flag_then_the_variable_then_the_default(tmp_path: Path) -> None:
    env = {STORE_ENV: "postgresql://u@h/db"}
    assert resolve("x.db", tmp_path, env) == resolve("x.db", tmp_path, {})
    assert resolve("x.db", tmp_path, env).source == "--store"
    from_env = resolve(None, tmp_path, env)
    assert from_env is not None
    assert (from_env.url, from_env.source) == ("postgresql+psycopg://u@h/db", STORE_ENV)
    default = resolve(None, tmp_path, {})
    assert default is not None and default.url == f"sqlite:///{tmp_path.resolve() / 'results.db'}"
    assert resolve(None, tmp_path, {}, default=False) is None
    assert to_url("sqlite:///rel.db") == "sqlite:///rel.db"


def test_a_url_sqlalchemy_does_not_know_names_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"^HARNESS_STORE: 'nosuch://x' is not a database URL") as info:
        open_store(resolve(None, tmp_path, {STORE_ENV: "nosuch://x"}), create=True)
    assert info.value.code == 2


# --- seconds


def test_long_runs_seconds_are_merged_into_at_most_the_limit() -> None:
    rows = ({"t": t, "requests": 10, "ok": 9, "errors": 1, "p50_ms": float(t % 3), "p99_ms": float(t)}
            for t in range(10))
    merged = coarse_seconds(rows, limit=4)
    assert [r["t"] for r in merged] == [0, 3, 6, 9]
    assert [r["requests"] for r in merged] == [30, 30, 30, 10]
    assert merged[0]["p99_ms"] == 2.0 and merged[0]["p50_ms"] == pytest.approx(1.0)
    short = [{"t": 1, "requests": 1, "ok": 1, "errors": 0, "p50_ms": None, "p99_ms": None}]
    assert coarse_seconds(iter(short)) == short


# --- the hook at the end of a run


def test_the_after_reports_hook_records_where_harness_store_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.features import RunHooksContext
    from harness.store.hook import record_after_report

    run_dir = make_run(tmp_path / "runs" / "unit-1")
    ctx = RunHooksContext(scenario=None, run_dir=run_dir, journal=None)  # type: ignore[arg-type]
    monkeypatch.delenv(STORE_ENV, raising=False)
    record_after_report(ctx)
    assert capsys.readouterr().out == ""
    url = sqlite_url(tmp_path)
    monkeypatch.setenv(STORE_ENV, url)
    record_after_report(ctx)
    assert "store: 1 run(s) recorded in" in capsys.readouterr().out
    assert [r.scenario for r in all_runs(url)] == ["unit"]


def test_a_store_migrated_by_a_newer_harness_is_left_alone(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    open_store(resolve(url), create=True).close()
    with sqlite3.connect(tmp_path / "store" / "results.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
    out = io.StringIO()
    assert record_run(make_run(tmp_path / "runs" / "unit-1"), url, out=out) is None
    assert "schema is at revision 0099, newer than this harness knows (0001)" in out.getvalue()


def test_a_cycle_or_a_repetition_given_alone_is_still_known_for_what_it_is(tmp_path: Path) -> None:
    from harness.store.folders import classify

    soak = make_soak(tmp_path / "soak-1", cycles=2)
    series = make_series(tmp_path / "unit-series-1", repetitions=2)
    cycle = classify(soak / "cycles" / "0002")
    assert (cycle.kind, cycle.position, cycle.group, cycle.scenario_file) == (
        "soak_cycle", 2, soak.resolve(), soak.resolve() / "scenario.yaml")
    rep = classify(series / "unit-rep2")
    assert (rep.kind, rep.position, rep.group) == ("repetition", 2, series.resolve())
    (series / "series.json").unlink()  # while the series still runs: its folder is still known
    assert (classify(series / "unit-rep1").kind, classify(series / "unit-rep2").position) == ("repetition", 2)
