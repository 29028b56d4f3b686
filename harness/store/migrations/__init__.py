"""Alembic migrations of the store, shipped in the package: `harness.store.db.migrate` runs them
with a configuration made in code (no alembic.ini at the user's working directory)."""
