"""What a role of a stack means when one of its processes is lost.

Each stack kind declares its roles once (its settings class's `ROLES`). The supervisor, the
restart policy, the crash/hang/replica metrics and the report read only these declarations, so
every stack is judged the same way and no generic code names a role.
"""

from dataclasses import dataclass
from enum import StrEnum


class Loss(StrEnum):
    ENTRY = "entry"  # the process that serves the stack's endpoint: its death or hang is the stack's
    REPLICA = "replica"  # one of several doing the work: its loss is a partial failure
    DEPENDENCY = "dependency"  # something the stack relies on (a registry, a store): its own event


@dataclass(frozen=True)
class Role:
    name: str
    loss: Loss
    meaning: str = ""


def role_table(roles: tuple[Role, ...]) -> dict[str, Role]:
    return {role.name: role for role in roles}


def loss_of(table: dict[str, Role], role: str) -> Loss:
    """A role the stack reports but never declared is treated as a replica: a partial failure
    is the claim that neither hides a crash nor invents one."""
    declared = table.get(role)
    return declared.loss if declared is not None else Loss.REPLICA


def entry_roles(table: dict[str, Role]) -> list[str]:
    return [role.name for role in table.values() if role.loss is Loss.ENTRY]
