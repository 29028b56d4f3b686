"""The restore record: what the harness did that must be undone, written *before* doing it.

One JSON object a line in `<run>/restore.jsonl`, fsynced, so `harness cleanup RUN_DIR` can undo
faults and stop stack processes after the harness was killed with SIGKILL.
"""

import json
import os
from pathlib import Path
from typing import Any

from harness.procs import ProcessId, kill_all

RESTORE_NAME = "restore.jsonl"


class RestoreLog:
    def __init__(self, run_dir: Path):
        self.path = run_dir / RESTORE_NAME
        self._file = self.path.open("a", encoding="utf-8")

    def _append(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def process(self, role: str, ident: ProcessId) -> None:
        self._append({"op": "process", "role": role, "pid": ident.pid, "create_time": ident.create_time,
                      "name": ident.name})

    def processes_stopped(self) -> None:
        self._append({"op": "processes_stopped"})

    def resource(self, undo: str, plan: dict[str, Any]) -> None:
        """Something a stack makes besides processes; `undo` (`module:function`) removes it."""
        self._append({"op": "resource", "undo": undo, "plan": plan})

    def fault_planned(self, fault_id: str, kind: str, plan: dict[str, Any]) -> None:
        self._append({"op": "fault", "id": fault_id, "kind": kind, "plan": plan})

    def fault_restored(self, fault_id: str) -> None:
        self._append({"op": "restored", "id": fault_id})

    def close(self) -> None:
        self._file.close()


def read_restore(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / RESTORE_NAME
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # torn last line
    return out


def cleanup(run_dir: Path) -> list[str]:
    """Undo what a killed harness left: faults not restored, then stack processes. Idempotent."""
    from faults.base import fault_class, known_faults

    records = read_restore(run_dir)
    done: list[str] = []
    restored = {r["id"] for r in records if r["op"] == "restored"}
    for record in records:
        if record["op"] == "fault" and record["id"] not in restored and record["kind"] in known_faults():
            fault_class(record["kind"]).undo(record["plan"])
            done.append(f"undid fault {record['id']} ({record['kind']})")
    for record in records:
        if record["op"] == "resource":
            done += _undo_resource(record["undo"], record["plan"])
    stopped_at = max((i for i, r in enumerate(records) if r["op"] == "processes_stopped"), default=-1)
    idents = [
        ProcessId(r["pid"], r["create_time"], r.get("name", ""))
        for i, r in enumerate(records)
        if r["op"] == "process" and i > stopped_at
    ]
    for ident in kill_all(idents, grace=5.0):
        done.append(f"stopped {ident.name or 'process'} pid {ident.pid}")
    undone = [r["id"] for r in records if r["op"] == "fault" and r["id"] not in restored]
    with (run_dir / RESTORE_NAME).open("a", encoding="utf-8") as handle:
        for fault_id in undone:  # so a second cleanup finds nothing left to do
            handle.write(json.dumps({"op": "restored", "id": fault_id, "by": "cleanup"}) + "\n")
        handle.write(json.dumps({"op": "processes_stopped", "by": "cleanup"}) + "\n")
        handle.write(json.dumps({"op": "cleanup_done", "actions": done}) + "\n")
    return done


def _undo_resource(undo: str, plan: dict[str, Any]) -> list[str]:
    """Call a stack's undo function (idempotent: it reports only what it found and removed)."""
    from importlib import import_module

    module_name, _, attr = undo.partition(":")
    if not module_name.startswith("harness."):  # a record names only the harness's own code
        return [f"skipped {undo!r}: not a harness function"]
    return list(getattr(import_module(module_name), attr)(plan))
