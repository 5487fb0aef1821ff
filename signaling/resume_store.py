"""Durable resume: a member's place, kept where any node can read it, so that it outlives the process.

A `ResumeGrant` is what a node needs to give a place back without the memory of the process that issued the resume
token: the token's hash (never the token), the room, the media state and hand, the attendance visit it is on, and
when its socket dropped. The signalling service keeps one per member from its `welcome` on (`GrantWriter`, in the
background), so that a process killed without warning still leaves every place behind; a drop or a drain dates it,
and the grace period then runs from that write. While the member is connected its grant lasts as long as its node
is alive, and expires `grace_s` after the node was last seen.

A grant is taken (read and deleted at once, so that only one node can resume it) by the node the member comes back
to. `PgResumeStore` is the durable engine; `InMemoryResumeStore` the one-process default with the same contract.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg

from signaling.clock import Clock, SystemClock
from signaling.protocol import PeerState
from signaling.rooms import Member

log = logging.getLogger(__name__)

# A node's own grant is replaced in place. A grant of another node (a dead or drained process) replaced by one for
# another visit means its place was given up (a new join without the token): that visit ends as it ended there (at
# its drop, or when that node was last alive), "replaced", with its leave in the event log.
PUT = """
WITH old AS (
    SELECT g.visit_id, g.detached_at, (SELECT n.alive_at FROM nodes n WHERE n.id = g.node_id) AS alive_at
    FROM resume_grants g WHERE g.participant_id = $1 AND g.node_id <> $8 AND g.visit_id <> $6
), closed AS (
    UPDATE visits v SET ended_at = GREATEST(v.started_at, COALESCE(v.dropped_at, old.detached_at, old.alive_at,
            v.started_at)),
        ended_how = 'replaced', dropped_at = NULL
    FROM old WHERE v.id::text = old.visit_id AND v.ended_at IS NULL
    RETURNING v.id, v.workshop_id, v.participant_id, v.room_id, v.ended_at
), logged AS (
    INSERT INTO attendance_events (workshop_id, room_id, participant_id, event, at, reason, visit_id)
    SELECT c.workshop_id, c.room_id, c.participant_id, 'leave', c.ended_at, 'replaced', c.id
    FROM closed c JOIN participants p ON p.id = c.participant_id AND p.workshop_id = c.workshop_id
)
INSERT INTO resume_grants (participant_id, workshop_id, token_sha256, room_id, state, visit_id, detached_at, node_id,
    grace_s, expires_at, previous_sha256)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9,
    CASE WHEN $7::timestamptz IS NULL THEN NULL ELSE now() + make_interval(secs => $9) END, $10)
ON CONFLICT (participant_id) DO UPDATE SET workshop_id = EXCLUDED.workshop_id, token_sha256 = EXCLUDED.token_sha256,
    previous_sha256 = EXCLUDED.previous_sha256,
    room_id = EXCLUDED.room_id, state = EXCLUDED.state, visit_id = EXCLUDED.visit_id,
    detached_at = EXCLUDED.detached_at, node_id = EXCLUDED.node_id, grace_s = EXCLUDED.grace_s,
    expires_at = EXCLUDED.expires_at
"""
# The end of a grant's grace period: its own for a dropped member, else grace_s after its node was last seen (a grant
# of a node that is gone from `nodes` has none: it is over).
EXPIRES = (
    "COALESCE(g.expires_at, (SELECT n.seen_at FROM nodes n WHERE n.id = g.node_id) + make_interval(secs => g.grace_s))"
)
# Taken once: the DELETE is the read, so two nodes racing for the same grant cannot both resume it. When its node
# was last alive, never before the visit began (a heartbeat may lag the visit's start by one interval). The visit
# moves to the taking node ($3) in the same statement: without its grant, a visit of a gone node is the sweep's.
TAKE = f"""
WITH taken AS (
    DELETE FROM resume_grants g
    WHERE g.participant_id = $1 AND (g.token_sha256 = $2 OR g.previous_sha256 = $2) AND {EXPIRES} > now()
    RETURNING g.participant_id, g.workshop_id, g.token_sha256, g.room_id, g.state::text AS state, g.visit_id,
        g.detached_at, g.node_id, {EXPIRES} AS expires_at,
        GREATEST((SELECT n.alive_at FROM nodes n WHERE n.id = g.node_id),
            (SELECT v.started_at FROM visits v WHERE v.id::text = g.visit_id)) AS node_alive_at
), moved AS (
    UPDATE visits v SET node_id = $3 FROM taken
    WHERE $3::text <> '' AND v.id::text = taken.visit_id AND v.ended_at IS NULL
)
SELECT * FROM taken
"""
# The participant left this node. A grant of another node that was still there (they joined here without the token,
# and left before the new grant was written) is given up the same way as in PUT.
DISCARD = """
WITH gone AS (
    DELETE FROM resume_grants g WHERE g.participant_id = $1
    RETURNING g.visit_id, g.node_id, g.detached_at, (SELECT n.alive_at FROM nodes n WHERE n.id = g.node_id) AS alive_at
), closed AS (
    UPDATE visits v SET ended_at = GREATEST(v.started_at, COALESCE(v.dropped_at, gone.detached_at, gone.alive_at,
            v.started_at)),
        ended_how = 'replaced', dropped_at = NULL
    FROM gone WHERE gone.node_id <> $2 AND v.id::text = gone.visit_id AND v.ended_at IS NULL
    RETURNING v.id, v.workshop_id, v.participant_id, v.room_id, v.ended_at
)
INSERT INTO attendance_events (workshop_id, room_id, participant_id, event, at, reason, visit_id)
SELECT c.workshop_id, c.room_id, c.participant_id, 'leave', c.ended_at, 'replaced', c.id
FROM closed c JOIN participants p ON p.id = c.participant_id AND p.workshop_id = c.workshop_id
"""
# The grants of other nodes that nobody took in time, once their node is gone too (not seen for $2 s: a live node
# expires its own members itself): each visit such a grant kept open ends at its drop ("expired"), or, for a member
# who was connected when its node died, when that node was last alive ("crash"). Two nodes sweeping at once cannot
# both close one visit: the DELETE decides.
PURGE = f"""
WITH gone AS (
    DELETE FROM resume_grants g
    WHERE g.node_id <> $1 AND COALESCE({EXPIRES}, '-infinity') <= now()
        AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = g.node_id AND n.seen_at > now() - make_interval(secs => $2))
    RETURNING g.visit_id, g.detached_at, (SELECT n.alive_at FROM nodes n WHERE n.id = g.node_id) AS alive_at
), closed AS (
    UPDATE visits v SET ended_at = GREATEST(v.started_at, COALESCE(v.dropped_at, gone.detached_at, gone.alive_at,
            v.started_at)),
        ended_how = CASE WHEN gone.detached_at IS NULL THEN 'crash' ELSE 'expired' END, dropped_at = NULL
    FROM gone WHERE v.id::text = gone.visit_id AND v.ended_at IS NULL
    RETURNING v.id, v.workshop_id, v.participant_id, v.room_id, v.ended_at, v.ended_how
), logged AS (
    INSERT INTO attendance_events (workshop_id, room_id, participant_id, event, at, reason, visit_id)
    SELECT c.workshop_id, c.room_id, c.participant_id, 'leave', c.ended_at,
        CASE c.ended_how WHEN 'crash' THEN 'server_crash' ELSE 'timeout' END, c.id
    FROM closed c JOIN participants p ON p.id = c.participant_id AND p.workshop_id = c.workshop_id
)
SELECT (SELECT count(*) FROM gone) AS grants, (SELECT count(*) FROM closed) AS visits
"""


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
    # When the socket dropped (or its node drained); None while the member is connected.
    detached_at: datetime | None
    node_id: str = ""
    # Set by the store when the grant is read back: the end of the grace period (by the store's clock), and when the
    # node that wrote it was last alive (its heartbeat, on the record's clock), if it still knows.
    expires_at: datetime | None = None
    node_alive_at: datetime | None = None
    # The token the member last came back with, which takes the grant too: the welcome carrying `token` may never
    # have reached the client (signaling.rooms.Member.previous_resume_token).
    previous_sha256: bytes | None = None

    def takes(self, token: str) -> bool:
        digest = token_hash(token)
        return digest == self.token_sha256 or (self.previous_sha256 is not None and digest == self.previous_sha256)

    @classmethod
    def of(
        cls,
        member: Member,
        token: str,
        *,
        detached_at: datetime | None,
        node_id: str = "",
        previous: str | None = None,
    ) -> ResumeGrant:
        """The grant of a member that was given `token` (and came back with `previous`): connected (`detached_at`
        None), dropped or drained."""
        return cls(
            participant_id=member.id,
            workshop_id=member.workshop_id,
            room_id=member.room_id,
            token_sha256=token_hash(token),
            state=member.state,
            visit_id=member.visit_id,
            detached_at=detached_at,
            node_id=node_id,
            previous_sha256=token_hash(previous) if previous is not None else None,
        )


class ResumeStore(Protocol):
    async def put(self, grants: Sequence[ResumeGrant], *, grace_s: float) -> None:
        """Keep these grants (replacing each participant's older one): a dropped member's for `grace_s` from now, a
        connected member's until `grace_s` after its node was last seen."""
        ...

    async def take(self, participant_id: str, token: str) -> ResumeGrant | None:
        """The participant's grant if `token` is its token and it has not expired, removed in the same step;
        None otherwise (a wrong token leaves the grant in place)."""
        ...

    async def discard(self, participant_id: str) -> None:
        """Forget the participant's grant (it left this node, timed out or was removed); one that another node left
        is given up ("replaced")."""
        ...

    async def purge_expired(self) -> int:
        """Remove the grants whose grace period is over and that no live node answers for, ending what they kept
        open; returns how many."""
        ...


class InMemoryResumeStore:
    """The one-process engine: a dict, expiring by the injected clock. Its node is this process: a connected
    member's grant lasts as long as the store."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._grants: dict[str, ResumeGrant] = {}

    async def put(self, grants: Sequence[ResumeGrant], *, grace_s: float) -> None:
        expires_at = self.clock.now() + timedelta(seconds=grace_s)
        for grant in grants:
            self._grants[grant.participant_id] = replace(
                grant, expires_at=expires_at if grant.detached_at is not None else None
            )

    async def take(self, participant_id: str, token: str) -> ResumeGrant | None:
        grant = self._grants.get(participant_id)
        if grant is None or not grant.takes(token):
            return None
        if grant.expires_at is not None and grant.expires_at <= self.clock.now():
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

    def get(self, participant_id: str) -> ResumeGrant | None:
        """The participant's grant as kept now (tests)."""
        return self._grants.get(participant_id)


AttendanceWritten = Callable[[], Awaitable[None]]


async def _nothing_pending() -> None:
    return None


class PgResumeStore:
    """The durable engine (table `resume_grants`) of one node; expiry by PostgreSQL's clock, the same for every node.

    `written_first` is awaited before each write: the attendance that a grant's visit refers to must be in the
    database before the grant is, or a crash in between would leave a grant for a visit that never was.
    `dead_after_s`: a node not seen for that long is gone, and the grants it left are swept by any other."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        node_id: str = "",
        dead_after_s: float = 10.0,
        written_first: AttendanceWritten = _nothing_pending,
    ) -> None:
        self.pool = pool
        self.node_id = node_id
        self.dead_after_s = dead_after_s
        self.written_first = written_first

    async def put(self, grants: Sequence[ResumeGrant], *, grace_s: float) -> None:
        if not grants:
            return
        await self.written_first()
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
                    g.node_id or self.node_id,
                    grace_s,
                    g.previous_sha256,
                )
                for g in grants
            ],
        )

    async def take(self, participant_id: str, token: str) -> ResumeGrant | None:
        try:
            pid = uuid.UUID(participant_id)
        except ValueError:
            return None
        row = await self.pool.fetchrow(TAKE, pid, token_hash(token), self.node_id)
        return _grant(row) if row is not None else None

    async def discard(self, participant_id: str) -> None:
        try:
            pid = uuid.UUID(participant_id)
        except ValueError:
            return
        await self.written_first()
        await self.pool.execute(DISCARD, pid, self.node_id)

    async def purge_expired(self) -> int:
        row = await self.pool.fetchrow(PURGE, self.node_id, self.dead_after_s)
        assert row is not None
        if row["visits"]:
            log.warning("closed %d attendance visit(s) of resume grants nobody took in time", row["visits"])
        return int(row["grants"])


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
        node_alive_at=row["node_alive_at"],
    )
