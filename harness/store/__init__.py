"""The results store: every finished run recorded in a database, its history, its regressions.

A plugin of the core (it never imports this package): `harness store import`, `harness history`
and `harness regress` are its commands, and recording after a run is its hook. This package's
top level imports nothing heavy: the feature registry loads `harness.store.feature` for every run,
and SQLAlchemy is imported only when a store is actually used (the `store` extra).
"""
