"""Which processes a memory fault acts on: every live process of a role, or of the whole stack."""

from typing import Any

from faults.base import FaultContext, FaultError
from harness.procs import ProcessId


def stack_processes(ctx: FaultContext, role: str | None) -> list[ProcessId]:
    """All live processes of `role` (None: of every role), each once."""
    by_role = ctx.roles()
    roles = [role] if role is not None else list(by_role)
    found: dict[int, ProcessId] = {}
    for name in roles:
        for ident in by_role.get(name, []):
            found.setdefault(ident.pid, ident)
    if not found:
        raise FaultError(f"no live process has role {role!r}" if role else "the stack has no live process")
    return sorted(found.values(), key=lambda p: p.pid)


def ident_of(record: dict[str, Any]) -> ProcessId:
    return ProcessId(record["pid"], record["create_time"], record.get("name", ""))
