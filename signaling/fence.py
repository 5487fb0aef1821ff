"""Fencing: a write that matters proves, inside its own transaction, that this node still owns the workshop.

A node owns a workshop's live state through a lease (`server.leases.LeaseKeeper`); each new owner gets a larger
fencing number. A node that was paused or cut off may still believe it owns the workshop after another took over:
its writes carry the number it was given, and the check below fails for it in the database, whatever its own clock
or memory says.

The check locks the lease row (FOR SHARE) until the transaction ends, so a takeover waits for a guarded write in
flight and a write that passed the check commits before any new owner begins. It uses `clock_timestamp()`, not the
transaction's `now()`: a transaction that began before the lease lapsed but checks after it fails.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from signaling.errors import Conflict


def fence_holds(first: int) -> str:
    """The check as a SQL condition, for a statement that wants it in its own WHERE clause: the workshop, node and
    fence are its parameters `$first`, `$first+1` and `$first+2` (`Fence.params()`). Only placeholder numbers are
    put in the text, never values."""
    workshop, node, fence = (f"${first + i}" for i in range(3))
    return (
        f"EXISTS (SELECT 1 FROM workshop_leases WHERE workshop_id = {workshop} AND node_id = {node} "
        f"AND fence = {fence} AND expires_at > clock_timestamp() FOR SHARE)"
    )


CHECK_FENCE = "SELECT " + fence_holds(1)


class LeaseLost(Conflict):
    """This node no longer holds the workshop's lease (it lapsed, or another node took it over)."""

    def __init__(self, message: str = "lease lost") -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Fence:
    """The lease a node was given for one workshop: pass it to a write so that the write is refused once lost."""

    workshop_id: uuid.UUID
    node_id: str
    value: int

    def params(self) -> tuple[uuid.UUID, str, int]:
        """The parameters of `fence_holds`, in order."""
        return (self.workshop_id, self.node_id, self.value)

    async def check(self, conn: asyncpg.Connection) -> None:
        """Raise LeaseLost unless this lease is still held; call it inside the transaction of the write."""
        if not await conn.fetchval(CHECK_FENCE, *self.params()):
            raise LeaseLost()
