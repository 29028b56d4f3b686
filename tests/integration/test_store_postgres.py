"""The results store on a real PostgreSQL server, started by this test in a temporary folder.

The cluster (`initdb`, then `pg_ctl start`) listens on a free loopback port, its unix socket in
the same temporary folder, and is stopped and removed after. PostgreSQL refuses to run as root:
as root, the server runs as the `postgres` user (Debian's `postgresql` package makes it) through
`runuser`. Without PostgreSQL's binaries the tests skip, except in CI, where they fail.
"""

import glob
import io
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("psycopg")

from harness.store.importer import RECORDED, import_runs, record_run  # noqa: E402
from harness.store.url import resolve  # noqa: E402
from tests.unit.store_runs import make_run, tree_digest  # noqa: E402
from tests.unit.test_store import (  # noqa: E402
    all_runs,
    check_concurrent_writers,
    check_migrations_match_the_models,
    check_round_trip,
)

USER = "harness"


def pg_bin() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<newest>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    def major(initdb: str) -> int:
        name = Path(initdb).parent.parent.name
        return int(name) if name.isdigit() else 0

    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=major)
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    def __init__(self, bindir: Path, root: Path):
        self.bindir, self.root = bindir, root
        self.data, self.log = root / "data", root / "server.log"
        self.port = free_port()
        # As root the server runs as `postgres`: initdb and the server refuse root.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("as root, the server needs a `postgres` user (apt-get install postgresql)")
            os.chown(root, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        if not self.data.exists():
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust",
                      "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    bindir = pg_bin()
    if bindir is None:
        message = "PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Not under pytest's tmp_path: the `postgres` user must reach it, and root's is 0700.
    root = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    server = Cluster(bindir, root)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


_counter = iter(range(1000))


@pytest.fixture
def database(cluster: Cluster) -> str:
    """A fresh, empty database per test: each starts from no schema at all."""
    return cluster.create_database(f"store_{next(_counter)}_{int(time.time())}")


def test_a_recorded_run_reads_back_from_postgresql(database: str, tmp_path: Path) -> None:
    check_round_trip(database, make_run(tmp_path / "runs" / "unit-1"))


def test_migrations_from_an_empty_postgresql_database_match_the_models(database: str) -> None:
    check_migrations_match_the_models(database)


def test_two_processes_recording_at_once_into_postgresql(database: str, tmp_path: Path) -> None:
    check_concurrent_writers(database, tmp_path)


def test_a_stopped_server_costs_one_line_and_the_import_records_the_run_later(tmp_path: Path) -> None:
    bindir = pg_bin()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="harness-pg-down-"))
    server = Cluster(bindir, root)
    try:
        server.start()
        url = server.url()
        server.stop()  # the nightly's store went away before the run ended
        run_dir = make_run(tmp_path / "runs" / "unit-1")
        before = tree_digest(run_dir)
        out = io.StringIO()
        assert record_run(run_dir, url, out=out) is None
        assert out.getvalue().count("\n") == 1 and "store: run not recorded (" in out.getvalue()
        assert tree_digest(run_dir) == before
        server.start()  # back: `harness store import` records what the run could not
        outcomes = import_runs([run_dir], resolve(url), out=io.StringIO())
        assert [o.status for o in outcomes] == [RECORDED]
        assert [r.run_key for r in all_runs(url)] == [outcomes[0].detail]
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
