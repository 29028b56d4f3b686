"""Journals written before stacks declared their roles, read as if they had.

Until then `process_exited` carried no `loss`, and the supervisor knew one entry role only: the
role named `server` (Triton's, and a container's main process); every other role's exit was
treated as a helper's. Reading an old journal that way keeps its `harness report` the same.
This is the one place that knows that old convention.
"""

from typing import Any

_OLD_ENTRY_ROLE = "server"


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    if record.get("type") != "event":
        return record
    name = record.get("event")
    if name == "process_exited" and "loss" not in record:
        record["loss"] = "entry" if record.get("role") == _OLD_ENTRY_ROLE else "replica"
    elif name in ("hang_detected", "liveness_kill") and "role" not in record:
        record["role"] = _OLD_ENTRY_ROLE  # the old supervisor probed and killed that role only
    return record
