"""Opening the store: the engine, its settings for concurrent writers, and its migrations.

Nightly jobs may write to one store at once. SQLite: WAL (readers never block the writer), a
busy timeout (a writer waits for the other instead of failing), and every transaction begun
with `BEGIN IMMEDIATE`, so a writer takes the write lock when it starts: two deferred
transactions that both read and then both write deadlock, and SQLite answers that at once with
"database is locked", whatever the timeout. PostgreSQL: one transaction per run, and a unique
run key, so the slower of two writers of the same run finds it there.

Migrations run in one transaction under a lock (SQLite's write lock; PostgreSQL's advisory
lock), so two processes meeting an empty database do not both create the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError
from harness.store.url import StoreUrl

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.orm import Session

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another's lock before giving up
CONNECT_TIMEOUT_S = 10
_PG_MIGRATION_LOCK = 0x6861726E  # pg_advisory_xact_lock key: "harn"


class StoreError(UsageError):
    """The store cannot be used: a bad URL, unreachable, locked, missing its driver. One line."""


@dataclass
class Store:
    where: StoreUrl
    engine: Engine

    @property
    def shown(self) -> str:
        return shown(self.where)

    def session(self) -> Session:
        from sqlalchemy.orm import Session

        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()


def shown(where: StoreUrl) -> str:
    """The URL for messages, its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(where.url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return where.url


def open_store(where: StoreUrl, *, create: bool, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Store:
    """An engine on the store, its schema at the newest revision.

    `create`: make an SQLite file that is not there yet (recording); otherwise a missing file is
    an error (reading: `history` on a store nobody wrote is a typo more often than not).
    """
    path = where.sqlite_path
    if path is not None:
        if not path.exists() and not create:
            raise StoreError(f"store {where.url} ({where.source}): no such file; record a run "
                             "(`harness run --store`) or `harness store import RUN_DIR` first")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"store {where.url}: cannot make its folder: {exc.strerror or exc}") from None
    engine = make_engine(where.url, busy_timeout_s, source=where.source)
    store = Store(where, engine)
    try:
        ensure_schema(engine)
    except Exception as exc:
        store.close()
        raise StoreError(f"store {store.shown}: {describe(exc)}") from None
    return store


def make_engine(url: str, busy_timeout_s: float = BUSY_TIMEOUT_S, source: str = "--store") -> Engine:
    try:
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    except ImportError:
        raise StoreError("the results store needs SQLAlchemy: pip install 'serving-harness[store]'") from None
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        connect_args: dict[str, Any] = {}
        if backend == "sqlite":
            connect_args["timeout"] = busy_timeout_s
        elif backend == "postgresql":
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        engine = create_engine(parsed, connect_args=connect_args)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise StoreError(f"{source}: {url!r} is not a database URL SQLAlchemy knows: {exc}") from None
    except ImportError as exc:
        raise StoreError(f"{source}: {url!r}: its driver is not installed ({exc.name}); "
                         "pip install 'serving-harness[store]'") from None
    if backend == "sqlite":
        timeout_ms = int(busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _sqlite_settings(dbapi_connection: Any, _record: Any) -> None:
            # The driver's own transaction handling off: `_begin` below says how each one starts.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def migration_lock(connection: Connection) -> None:
    """Serialise migrations: inside the caller's transaction (SQLite holds its write lock already)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy import text

        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, "the store's migrations have no head"
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_schema(engine: Engine) -> None:
    """Migrate to the newest revision; a store already there costs one read."""
    current = current_revision(engine)
    if current == head_revision():
        return
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if current is not None:
        try:
            ScriptDirectory(str(MIGRATIONS)).get_revision(current)
        except CommandError:  # a newer harness migrated this store: this one must not touch it
            raise StoreError(f"its schema is at revision {current}, newer than this harness knows "
                             f"({head_revision()}): upgrade the harness that records here") from None

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection, connection.begin():
        migration_lock(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def describe(exc: BaseException) -> str:
    """A database error as one line: the driver's first line, not SQLAlchemy's paragraph."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if "locked" in first or "busy" in first:
        return f"locked by another writer past the busy timeout ({first})"
    return first
