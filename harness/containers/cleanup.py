"""Undo for the restore record: remove a run's labelled containers after a killed harness.

`harness cleanup RUN_DIR` calls this with the plan the run recorded before it made any
container; it acts only on containers that carry that run's label, and is idempotent.
"""

from typing import Any

from harness.containers.engine import connect, run_filter


def remove_run_containers(plan: dict[str, Any]) -> list[str]:
    client = connect(plan["docker_host"])
    done = []
    for container in client.containers.list(all=True, filters=run_filter(plan["run_id"])):
        status = container.status
        container.remove(force=True)
        done.append(f"removed container {container.name} ({status})")
    return done
