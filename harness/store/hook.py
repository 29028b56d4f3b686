"""Recording at the end of a run's lifecycle: the store feature's `after_report` hook.

Called once a run's reports are written (a soak's: soak.json and every cycle's summary), in the
harness process, with the run still on the screen. It records where `HARNESS_STORE` says (`--store`
on `run` and `soak` sets it), and nothing when it is unset. It imports SQLAlchemy only then,
and it never raises: harness.store.importer.record_run answers a bad store with one line.
"""

import os

from harness.features import RunHooksContext
from harness.store.url import STORE_ENV


def record_after_report(ctx: RunHooksContext) -> None:
    if not os.environ.get(STORE_ENV, "").strip():
        return  # no store asked for: not even an import
    from harness.store.importer import record_run

    record_run(ctx.run_dir, None)
