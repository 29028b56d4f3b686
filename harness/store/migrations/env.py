"""Alembic's environment for the store, configured in code.

`harness.store.db.migrate` passes an open connection, already inside the transaction that holds
the store's migration lock, in `config.attributes["connection"]`. Run by hand (`alembic -x
url=sqlite:///runs/results.db upgrade head` with `script_location` pointing here), it opens its
own through `harness.store.db`, so the same SQLite settings apply.
"""

from alembic import context
from sqlalchemy import Connection

from harness.store.db import make_engine, migration_lock
from harness.store.models import Base

config = context.config


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                      compare_type=True)
    context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)  # the caller owns the transaction (alembic sees it and starts none)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the store: alembic -x url=URL ...")
    engine = make_engine(url)
    with engine.connect() as connection, connection.begin():
        migration_lock(connection)
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("the store's migrations run against a database, not as SQL text")
run_migrations_online()
