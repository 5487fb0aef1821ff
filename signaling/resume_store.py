"""Durable resume: a dropped member's place, kept where any node can read it for the grace period.

Today a resume token lives in the memory of the process that issued it (`SignalingService._resume*`): the member
stays in `members` for `resume_grace_s` after its socket ends, and a `hello` with the token within that time gets
`resumed: true`. A process that dies or restarts takes every such place with it. A `ResumeGrant` is what a node
needs to give the place back without that memory: the token's hash (never the token), the room, the media state
and hand, the attendance visit it was on and when the socket dropped; it expires with the grace period.

A grant is written when a member goes into its grace period or when its node drains, and taken (read and deleted
at once, so that only one node can resume it) by the node the member comes back to. `PgResumeStore` is the durable
engine; `InMemoryResumeStore` the one-process default with the same contract. The service does not use either yet:
docs/scaling.md says what wiring it takes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg

from signaling.clock import Clock, SystemClock
from signaling.protocol import PeerState
from signaling.rooms import Member

PUT = """
INSERT INTO resume_grants (participant_id, workshop_id, token_sha256, room_id, state, visit_id, detached_at, node_id,
    expires_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, now() + make_interval(secs => $9))
ON CONFLICT (participant_id) DO UPDATE SET workshop_id = EXCLUDED.workshop_id, token_sha256 = EXCLUDED.token_sha256,
    room_id = EXCLUDED.room_id, state = EXCLUDED.state, visit_id = EXCLUDED.visit_id,
    detached_at = EXCLUDED.detached_at, node_id = EXCLUDED.node_id, expires_at = EXCLUDED.expires_at
"""
# Taken once: the DELETE is the read, so two nodes racing for the same grant cannot both resume it.
TAKE = """
DELETE FROM resume_grants WHERE participant_id = $1 AND token_sha256 = $2 AND expires_at > now()
RETURNING participant_id, workshop_id, token_sha256, room_id, state::text AS state, visit_id, detached_at, node_id,
    expires_at
"""
DISCARD = "DELETE FROM resume_grants WHERE participant_id = $1"
PURGE = "DELETE FROM resume_grants WHERE expires_at <= now()"


def token_hash(token: str) -> bytes:
    """SHA-256 of a resume token: what is stored, so that the table alone resumes nobody."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class ResumeGrant:
    participant_id: str
    workshop_id: str
    room_id: str
    token_sha256: bytes
    state: PeerState
    visit_id: str
    detached_at: datetime
    node_id: str = ""
    # Set by the store when the grant is read back (the end of the grace period, by the store's clock).
    expires_at: datetime | None = None

    @classmethod
    def of(cls, member: Member, token: str, *, detached_at: datetime, node_id: str = "") -> ResumeGrant:
        """The grant of a member (in its grace period, or about to be drained) that was given `token`."""
        return cls(
            participant_id=member.id,
            workshop_id=member.workshop_id,
            room_id=member.room_id,
            token_sha256=token_hash(token),
            state=member.state,
            visit_id=member.visit_id,
            detached_at=detached_at,
            node_id=node_id,
        )


class ResumeStore(Protocol):
    async def put(self, grants: Sequence[ResumeGrant], *, grace_s: float) -> None:
        """Keep these grants for `grace_s` from now (replacing each participant's older one)."""
        ...

    async def take(self, participant_id: str, token: str) -> ResumeGrant | None:
        """The participant's grant if `token` is its token and it has not expired, removed in the same step;
        None otherwise (a wrong token leaves the grant in place)."""
        ...

    async def discard(self, participant_id: str) -> None:
        """Forget the participant's grant (it resumed in memory, left, or timed out)."""
        ...

    async def purge_expired(self) -> int:
        """Remove the grants whose grace period is over; returns how many."""
        ...


class InMemoryResumeStore:
    """The one-process engine: a dict, expiring by the injected clock."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._grants: dict[str, ResumeGrant] = {}

    async def put(self, grants: Sequence[ResumeGrant], *, grace_s: float) -> None:
        expires_at = self.clock.now() + timedelta(seconds=grace_s)
        for grant in grants:
            self._grants[grant.participant_id] = replace(grant, expires_at=expires_at)

    async def take(self, participant_id: str, token: str) -> ResumeGrant | None:
        grant = self._grants.get(participant_id)
        if grant is None or grant.token_sha256 != token_hash(token):
            return None
        assert grant.expires_at is not None
        if grant.expires_at <= self.clock.now():
            return None
        del self._grants[participant_id]
        return grant

    async def discard(self, participant_id: str) -> None:
        self._grants.pop(participant_id, None)

    async def purge_expired(self) -> int:
        now = self.clock.now()
        gone = [pid for pid, g in self._grants.items() if g.expires_at is not None and g.expires_at <= now]
        for pid in gone:
            del self._grants[pid]
        return len(gone)


class PgResumeStore:
    """The durable engine (table `resume_grants`); expiry by PostgreSQL's clock, the same for every node."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def put(self, grants: Sequence[ResumeGrant], *, grace_s: float) -> None:
        if not grants:
            return
        await self.pool.executemany(
            PUT,
            [
                (
                    uuid.UUID(g.participant_id),
                    uuid.UUID(g.workshop_id),
                    g.token_sha256,
                    uuid.UUID(g.room_id),
                    g.state.model_dump_json(),
                    g.visit_id,
                    g.detached_at,
                    g.node_id,
                    grace_s,
                )
                for g in grants
            ],
        )

    async def take(self, participant_id: str, token: str) -> ResumeGrant | None:
        try:
            pid = uuid.UUID(participant_id)
        except ValueError:
            return None
        row = await self.pool.fetchrow(TAKE, pid, token_hash(token))
        return _grant(row) if row is not None else None

    async def discard(self, participant_id: str) -> None:
        try:
            pid = uuid.UUID(participant_id)
        except ValueError:
            return
        await self.pool.execute(DISCARD, pid)

    async def purge_expired(self) -> int:
        status: str = await self.pool.execute(PURGE)
        return int(status.rsplit(" ", 1)[-1])


def _grant(row: Any) -> ResumeGrant:
    return ResumeGrant(
        participant_id=str(row["participant_id"]),
        workshop_id=str(row["workshop_id"]),
        room_id=str(row["room_id"]),
        token_sha256=bytes(row["token_sha256"]),
        state=PeerState.model_validate_json(row["state"]),
        visit_id=row["visit_id"],
        detached_at=row["detached_at"],
        node_id=row["node_id"],
        expires_at=row["expires_at"],
    )
