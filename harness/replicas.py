"""Replicas lost and back: the partial failures of a stack, counted per role.

A replica role (Triton's stubs, TorchServe's and Dynamo's workers) is expected to have as many
live processes as it had when the stack became ready. A replica that dies unplanned opens a
loss; the loss closes (`replicas_restored`) when the role is back at its expected count, by new
processes the stack started itself.
"""

from harness.journal import Journal
from harness.procs import ProcessId
from harness.roles import Loss, Role


class ReplicaTracker:
    def __init__(self, journal: Journal, roles: dict[str, Role]):
        self.journal = journal
        self.replica_roles = {name for name, role in roles.items() if role.loss is Loss.REPLICA}
        self.expected: dict[str, int] = {}
        self.lost_since: dict[str, float] = {}  # role -> when its first open loss began
        self.lost_count: dict[str, int] = {}

    def rebase(self, live: dict[str, list[ProcessId]]) -> None:
        """At ready (and after a planned restart): what is live now is what is expected."""
        self.expected = {role: len(live.get(role, [])) for role in self.replica_roles}
        self.lost_since.clear()
        self.lost_count.clear()

    def lost(self, role: str, t: float) -> None:
        self.lost_since.setdefault(role, t)
        self.lost_count[role] = self.lost_count.get(role, 0) + 1

    def seen(self, live: dict[str, list[ProcessId]]) -> None:
        """The live processes now; closes the losses of roles back at their expected count."""
        for role in self.replica_roles:
            count = len(live.get(role, []))
            if count > self.expected.get(role, 0):
                self.expected[role] = count  # scaled up (a management API call): the new normal
            since = self.lost_since.get(role)
            if since is not None and count >= self.expected.get(role, 0):
                self.journal.event("replicas_restored", role=role, live=count, expected=self.expected[role],
                                   lost=self.lost_count.pop(role, 0),
                                   after_s=round(self.journal.now() - since, 3))
                del self.lost_since[role]
