"""PostgreSQL for recordings: metadata, tracks, the consent ledger, grants and downloads."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from signaling.audit import SYSTEM, Change
from signaling.audit_store import AuditLog
from signaling.errors import Conflict, NotFound
from signaling.fence import Fence

REC_COLUMNS = """id, workshop_id, room_id, room_name, state, partial, failure_reason, consent_mode, started_by,
    started_by_role, started_at, stopped_at, ready_at, deleted_at, deleted_by, created_at, continues,
    continuation_pending"""
TRACK_COLUMNS = """id, recording_id, participant_id, kind, codec, file_key, state, bytes, duration_s, sha256, offset_s,
    started_at, ended_at, source, language"""

INSERT_RECORDING = f"""
INSERT INTO recordings (workshop_id, room_id, room_name, consent_mode, started_by, started_by_role, node_id)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {REC_COLUMNS}
"""
SELECT_RECORDING = f"SELECT {REC_COLUMNS} FROM recordings WHERE id = $1"
# Transitions are guarded in SQL: only one writer can move a recording out of a given state.
TRANSITION = f"""
UPDATE recordings SET state = $3,
    stopped_at = CASE WHEN $3 = 'stopping' THEN now() ELSE stopped_at END,
    ready_at = CASE WHEN $3 = 'ready' THEN now() ELSE ready_at END,
    failure_reason = COALESCE($4, failure_reason),
    partial = partial OR $5,
    continuation_pending = continuation_pending OR $6
WHERE id = $1 AND state = $2 RETURNING {REC_COLUMNS}
"""
# A live recording whose writer failed: partial now, with the reason, whatever its state.
MARK_PARTIAL = "UPDATE recordings SET partial = true, failure_reason = $2 WHERE id = $1 AND state <> 'deleted'"
STATE_COUNTS = "SELECT state, count(*) AS n FROM recordings GROUP BY state"
LIVE_RECORDINGS = f"SELECT {REC_COLUMNS} FROM recordings WHERE state IN ('starting', 'recording', 'stopping')"
# Several nodes: the live recordings whose node is gone (not seen for $1 seconds, or made before nodes were known).
LIVE_OF_GONE_NODES = f"""
SELECT {REC_COLUMNS} FROM recordings r WHERE state IN ('starting', 'recording', 'stopping')
  AND (r.node_id IS NULL OR NOT EXISTS (
      SELECT 1 FROM nodes n WHERE n.id = r.node_id AND n.seen_at > now() - make_interval(secs => $1)))
"""
# The sweep at every node (server.sweep): the live recordings of gone nodes in workshops nobody holds a live lease
# of (a workshop somebody took over is its new owner's to finalise, when it takes the lease).
LIVE_OF_GONE_NODES_UNLEASED = f"""
SELECT {REC_COLUMNS} FROM recordings r WHERE state IN ('starting', 'recording', 'stopping')
  AND (r.node_id IS NULL OR NOT EXISTS (
      SELECT 1 FROM nodes n WHERE n.id = r.node_id AND n.seen_at > now() - make_interval(secs => $1)))
  AND NOT EXISTS (SELECT 1 FROM workshop_leases l WHERE l.workshop_id = r.workshop_id AND l.expires_at > now())
"""
# A workshop's live recordings that another node started (a previous owner's, once this node owns the workshop).
LIVE_OF_WORKSHOP_BY_OTHERS = f"""
SELECT {REC_COLUMNS} FROM recordings
WHERE workshop_id = $1 AND state IN ('starting', 'recording', 'stopping') AND node_id IS DISTINCT FROM $2
"""
# Continuation (docs/recordings.md): the finalised recordings whose room waits to be recorded on, newest first, of
# one workshop ($1) or of all; finalised less than $2 seconds ago (an old one is not continued any more).
PENDING_CONTINUATIONS = f"""
SELECT {REC_COLUMNS} FROM recordings
WHERE continuation_pending AND state = 'ready' AND ($1::uuid IS NULL OR workshop_id = $1)
  AND ready_at > now() - make_interval(secs => $2)
ORDER BY ready_at DESC
"""
LOCK_PENDING = f"""
SELECT {REC_COLUMNS} FROM recordings WHERE id = $1 AND continuation_pending AND state = 'ready' FOR UPDATE
"""
INSERT_CONTINUATION = f"""
INSERT INTO recordings (workshop_id, room_id, room_name, consent_mode, started_by, started_by_role, node_id, continues)
VALUES ($1, $2, $3, $4, NULL, 'system', $5, $6) RETURNING {REC_COLUMNS}
"""
END_PENDING = "UPDATE recordings SET continuation_pending = false WHERE id = $1 AND continuation_pending RETURNING id"
# Each participant's latest answer to the recording continued, carried to its continuation.
CARRY_CONSENTS = """
INSERT INTO recording_consents (recording_id, participant_id, granted, carried_from)
SELECT $1, participant_id, granted, $2 FROM (
    SELECT DISTINCT ON (participant_id) participant_id, granted FROM recording_consents
    WHERE recording_id = $2 ORDER BY participant_id, id DESC
) latest ORDER BY participant_id
RETURNING participant_id, granted
"""
CONTINUED_BY = "SELECT id FROM recordings WHERE continues = $1"
# The recording at the end of a chain of continuations from $1 (itself when none continues it).
CHAIN_TAIL = f"""
WITH RECURSIVE chain AS (
    SELECT id, 0 AS depth FROM recordings WHERE id = $1
    UNION ALL SELECT r.id, c.depth + 1 FROM recordings r JOIN chain c ON r.continues = c.id WHERE c.depth < 1000
)
SELECT {REC_COLUMNS} FROM recordings WHERE id = (SELECT id FROM chain ORDER BY depth DESC LIMIT 1)
"""
LIST_RECORDINGS = f"""
SELECT {REC_COLUMNS} FROM recordings r
WHERE workshop_id = $1
  AND ($2::uuid IS NULL OR room_id = $2)
  AND ($3::text IS NULL OR state = $3)
  AND ($4::uuid IS NULL OR EXISTS (SELECT 1 FROM recording_tracks t WHERE t.recording_id = r.id
                                   AND t.participant_id = $4))
  AND ($5::timestamptz IS NULL OR started_at >= $5)
  AND ($6::timestamptz IS NULL OR started_at < $6)
  AND ($7::timestamptz IS NULL OR (created_at, id) > ($7, $8::uuid))
  AND ($9::uuid IS NULL OR EXISTS (SELECT 1 FROM recording_grants g WHERE g.recording_id = r.id
                                   AND g.participant_id = $9))
ORDER BY created_at, id LIMIT $10
"""
DELETE_RECORDING = f"""
UPDATE recordings SET state = 'deleted', deleted_at = now(), deleted_by = $2
WHERE id = $1 AND state IN ('ready', 'failed') RETURNING {REC_COLUMNS}
"""
EXPIRED = "SELECT id FROM recordings WHERE state IN ('ready', 'failed') AND started_at < $1"

INSERT_TRACK = f"""
INSERT INTO recording_tracks (id, recording_id, participant_id, kind, codec, file_key, offset_s, source, language)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {TRACK_COLUMNS}
"""
FINISH_TRACK = f"""
UPDATE recording_tracks SET state = $2, bytes = $3, duration_s = $4, sha256 = $5, ended_at = COALESCE(ended_at, now())
WHERE id = $1 RETURNING {TRACK_COLUMNS}
"""
TRACKS_OF = f"SELECT {TRACK_COLUMNS} FROM recording_tracks WHERE recording_id = $1 ORDER BY started_at, id"
TRACK = f"SELECT {TRACK_COLUMNS} FROM recording_tracks WHERE id = $1 AND recording_id = $2"
ALL_FILE_KEYS = """
SELECT file_key FROM recording_tracks WHERE file_key IS NOT NULL
UNION ALL SELECT file_key FROM recording_composed_files WHERE file_key IS NOT NULL
"""
DELETE_TRACK_FILES = "UPDATE recording_tracks SET file_key = NULL, state = 'deleted' WHERE recording_id = $1"
DELETE_COMPOSED_FILES = "UPDATE recording_composed_files SET file_key = NULL WHERE recording_id = $1"
# A recording that becomes ready with at least one track file is queued for composition (recordings/composition.py),
# in the transaction of the transition: mesh and sfu, plenary and breakouts, after a crash too.
QUEUE_COMPOSITION = """
INSERT INTO recording_compositions (recording_id)
SELECT $1 WHERE EXISTS (SELECT 1 FROM recording_tracks WHERE recording_id = $1 AND file_key IS NOT NULL)
ON CONFLICT (recording_id) DO NOTHING
"""

INSERT_CONSENT = """
INSERT INTO recording_consents (recording_id, participant_id, granted, connection_id) VALUES ($1, $2, $3, $4)
RETURNING at
"""
LATEST_CONSENTS = """
SELECT DISTINCT ON (c.participant_id) c.participant_id, c.granted, c.at, p.display_name
FROM recording_consents c JOIN participants p ON p.id = c.participant_id
WHERE c.recording_id = $1 ORDER BY c.participant_id, c.id DESC
"""
CONSENT_LEDGER = """
SELECT participant_id, granted, at, carried_from FROM recording_consents WHERE recording_id = $1 ORDER BY id
"""
UPSERT_GRANT = """
INSERT INTO recording_grants (recording_id, participant_id, granted_by) VALUES ($1, $2, $3)
ON CONFLICT (recording_id, participant_id) DO NOTHING
"""
DELETE_GRANT = "DELETE FROM recording_grants WHERE recording_id = $1 AND participant_id = $2"
HAS_GRANT = "SELECT EXISTS (SELECT 1 FROM recording_grants WHERE recording_id = $1 AND participant_id = $2)"
INSERT_DOWNLOAD = """
INSERT INTO recording_downloads (recording_id, track_id, principal, via, range_header, status)
VALUES ($1, $2, $3, $4, $5, $6)
"""
DOWNLOADS = """
SELECT track_id, principal, via, range_header, status, at FROM recording_downloads
WHERE recording_id = $1 ORDER BY id
"""


# The player page and the organiser page: what a recording's chapters come from, who may watch what.
ROOM_VISITS = """
SELECT v.participant_id, p.display_name, v.started_at, v.ended_at, v.ended_how
FROM visits v JOIN participants p ON p.id = v.participant_id
WHERE v.room_id = $1 AND v.started_at <= $3 AND (v.ended_at IS NULL OR v.ended_at >= $2)
ORDER BY v.started_at
"""
# Breakout runs of the workshop, from the entries their opening and closing wrote (a redacted entry keeps its
# action and time; its plan's name is then unknown).
BREAKOUT_RUN_EDGES = """
SELECT a.action, a.at, a.details, b.name AS plan_name
FROM audit_entries a LEFT JOIN breakout_plans b ON b.id::text = a.target->>'plan_id'
WHERE a.workshop_id = $1 AND a.action IN ('breakouts.open', 'breakouts.close', 'breakouts.finish')
  AND a.at BETWEEN $2 AND $3
ORDER BY a.id
"""
CONSENT_LEDGER_NAMED = """
SELECT c.participant_id, p.display_name, c.granted, c.at
FROM recording_consents c JOIN participants p ON p.id = c.participant_id
WHERE c.recording_id = $1 ORDER BY c.id
"""
GRANTS_OF = """
SELECT g.participant_id, p.display_name, g.granted_by, g.at
FROM recording_grants g JOIN participants p ON p.id = g.participant_id
WHERE g.recording_id = $1 ORDER BY g.at, g.participant_id
"""
# What a participant may watch: every recording of its workshop for moderators, else the granted ones.
WATCHABLE = f"""
SELECT {REC_COLUMNS} FROM recordings r
WHERE workshop_id = $1 AND state <> 'deleted'
  AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM recording_grants g WHERE g.recording_id = r.id
                                   AND g.participant_id = $2))
ORDER BY started_at DESC, id LIMIT $3
"""
# The breakout plan a room belongs to (none: the plenary or an ordinary room).
PLANS_OF_ROOMS = """
SELECT br.room_id, br.plan_id, b.name AS plan_name FROM breakout_rooms br JOIN breakout_plans b ON b.id = br.plan_id
WHERE br.room_id = ANY($1::uuid[])
"""


class RecordingStore:
    """Every write that an actor makes (start, stop, consent, grant, download, deletion) takes the `Change` to record
    and writes its audit entry in the same transaction."""

    def __init__(self, pool: asyncpg.Pool, *, audit: AuditLog | None = None) -> None:
        self.pool = pool
        self.audit = audit if audit is not None else AuditLog()

    @asynccontextmanager
    async def _recorded(self, change: Change | None) -> AsyncIterator[asyncpg.Connection]:
        """A transaction whose last statement is the change's audit entry (none for what the server does alone)."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn
            if change is not None:
                await self.audit.write(conn, change)

    async def create(
        self,
        *,
        workshop_id: uuid.UUID,
        room_id: uuid.UUID,
        room_name: str,
        consent_mode: str,
        started_by: uuid.UUID | None,
        started_by_role: str,
        change: Change,
        node_id: str | None = None,
        fence: Fence | None = None,
    ) -> asyncpg.Record:
        """The recording's row, with `change` (completed with the new recording's id) as its audit entry;
        `node_id` is the node that runs it. With a `fence` (several nodes), refused (`LeaseLost`) unless that node
        still owns the workshop."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if fence is not None:
                    await fence.check(conn)
                row = await conn.fetchrow(
                    INSERT_RECORDING,
                    workshop_id,
                    room_id,
                    room_name,
                    consent_mode,
                    started_by,
                    started_by_role,
                    node_id,
                )
                assert row is not None
                target = {**change.target, "recording_id": row["id"]}
                await self.audit.write(
                    conn, Change(change.workshop_id, change.actor, change.action, target, change.details)
                )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("this room is already being recorded") from exc
        return row

    async def get(self, recording_id: uuid.UUID) -> asyncpg.Record:
        row = await self.pool.fetchrow(SELECT_RECORDING, recording_id)
        if row is None:
            raise NotFound("recording not found")
        return row

    async def transition(
        self,
        recording_id: uuid.UUID,
        expected: str,
        target: str,
        *,
        reason: str | None = None,
        partial: bool = False,
        change: Change | None = None,
        fence: Fence | None = None,
        continuation: bool = False,
    ) -> asyncpg.Record:
        """Move a recording from `expected` to `target` (guarded in SQL). With a `fence` (several nodes), refused
        (`LeaseLost`) unless that node still owns the recording's workshop. `continuation`: the room is to be
        recorded on by the workshop's next owner (a failover or a drain ended it, not a stop)."""
        async with self._recorded(None) as conn:
            if fence is not None:
                await fence.check(conn)
            row = await conn.fetchrow(TRANSITION, recording_id, expected, target, reason, partial, continuation)
            if row is not None and target == "ready":
                await conn.execute(QUEUE_COMPOSITION, recording_id)
            if row is not None and change is not None:
                await self.audit.write(conn, change)
        if row is None:
            current = await self.get(recording_id)
            raise Conflict(f"the recording is {current['state']}, not {expected}")
        return row

    async def mark_partial(self, recording_id: uuid.UUID, reason: str) -> None:
        await self.pool.execute(MARK_PARTIAL, recording_id, reason)

    async def state_counts(self) -> dict[str, int]:
        """How many recordings are in each state (for /metrics)."""
        return {r["state"]: r["n"] for r in await self.pool.fetch(STATE_COUNTS)}

    async def live(self) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(LIVE_RECORDINGS))

    async def live_of_gone_nodes(self, dead_after_s: float) -> list[asyncpg.Record]:
        """Live recordings whose node has not been seen for `dead_after_s` (several nodes)."""
        return list(await self.pool.fetch(LIVE_OF_GONE_NODES, dead_after_s))

    async def live_of_gone_nodes_unleased(self, dead_after_s: float) -> list[asyncpg.Record]:
        """Live recordings of nodes not seen for `dead_after_s`, in workshops no node holds a live lease of."""
        return list(await self.pool.fetch(LIVE_OF_GONE_NODES_UNLEASED, dead_after_s))

    async def live_of_workshop_by_others(self, workshop_id: uuid.UUID, node_id: str) -> list[asyncpg.Record]:
        """The workshop's live recordings started by any node but `node_id`."""
        return list(await self.pool.fetch(LIVE_OF_WORKSHOP_BY_OTHERS, workshop_id, node_id))

    # Continuation

    async def pending_continuations(self, workshop_id: uuid.UUID | None, within_s: float) -> list[asyncpg.Record]:
        """Finalised recordings whose room waits for its continuation (of one workshop, or of all)."""
        return list(await self.pool.fetch(PENDING_CONTINUATIONS, workshop_id, within_s))

    async def create_continuation(
        self,
        previous_id: uuid.UUID,
        *,
        node_id: str | None,
        media: str,
        fence: Fence | None = None,
    ) -> tuple[asyncpg.Record, dict[uuid.UUID, bool]] | None:
        """The continuation of `previous_id` (its room, its consent mode), started by the server: in one transaction
        the row, its `recording.continue` audit entry and each participant's latest answer to the previous recording
        carried to it (on the ledger with `carried_from`, each audited). None when there is nothing to continue any
        more: continued already (by another node: the unique `continues`), stopped meanwhile, or the room is being
        recorded anew. With a `fence`, refused (`LeaseLost`) unless that node still owns the workshop."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if fence is not None:
                    await fence.check(conn)
                previous = await conn.fetchrow(LOCK_PENDING, previous_id)
                if previous is None:
                    return None
                row = await conn.fetchrow(
                    INSERT_CONTINUATION,
                    previous["workshop_id"],
                    previous["room_id"],
                    previous["room_name"],
                    previous["consent_mode"],
                    node_id,
                    previous_id,
                )
                assert row is not None
                await conn.execute(END_PENDING, previous_id)
                await self.audit.write(
                    conn,
                    Change(
                        row["workshop_id"],
                        SYSTEM,
                        "recording.continue",
                        target={"recording_id": row["id"], "room_id": row["room_id"], "continues": previous_id},
                        details={
                            "room_name": row["room_name"],
                            "consent_mode": row["consent_mode"],
                            "media": media,
                            "node_id": node_id,
                        },
                    ),
                )
                carried = {}
                for answer in await conn.fetch(CARRY_CONSENTS, row["id"], previous_id):
                    carried[answer["participant_id"]] = answer["granted"]
                    await self.audit.write(
                        conn,
                        Change(
                            row["workshop_id"],
                            SYSTEM,
                            "recording.consent",
                            target={"recording_id": row["id"], "participant_id": answer["participant_id"]},
                            details={"granted": answer["granted"], "carried_from": previous_id},
                        ),
                    )
        except asyncpg.UniqueViolationError:
            # Continued by another node first, or a moderator started a new recording of the room: nothing to do.
            await self.pool.execute(END_PENDING, previous_id)
            return None
        return row, carried

    async def end_pending(self, previous_id: uuid.UUID, *, change: Change) -> bool:
        """The room's recording was stopped while its continuation waited for members: it will not start."""
        async with self._recorded(None) as conn:
            ended = await conn.fetchval(END_PENDING, previous_id)
            if ended is not None:
                await self.audit.write(conn, change)
        return ended is not None

    async def continued_by(self, recording_id: uuid.UUID) -> uuid.UUID | None:
        found: uuid.UUID | None = await self.pool.fetchval(CONTINUED_BY, recording_id)
        return found

    async def chain_tail(self, recording_id: uuid.UUID) -> asyncpg.Record:
        """The last continuation of `recording_id` (the recording itself when nothing continues it)."""
        row = await self.pool.fetchrow(CHAIN_TAIL, recording_id)
        if row is None:
            raise NotFound("recording not found")
        return row

    async def search(
        self,
        workshop_id: uuid.UUID,
        *,
        room_id: uuid.UUID | None,
        state: str | None,
        participant_id: uuid.UUID | None,
        since: datetime | None,
        until: datetime | None,
        after: tuple[datetime, uuid.UUID] | None,
        granted_to: uuid.UUID | None,
        limit: int,
    ) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                LIST_RECORDINGS,
                workshop_id,
                room_id,
                state,
                participant_id,
                since,
                until,
                *(after or (None, None)),
                granted_to,
                limit,
            )
        )

    async def mark_deleted(self, recording_id: uuid.UUID, by: str, *, change: Change) -> asyncpg.Record:
        async with self._recorded(None) as conn:
            row = await conn.fetchrow(DELETE_RECORDING, recording_id, by)
            if row is not None:
                await conn.execute(DELETE_TRACK_FILES, recording_id)
                await conn.execute(DELETE_COMPOSED_FILES, recording_id)
                await self.audit.write(conn, change)
        if row is None:
            current = await self.get(recording_id)
            raise Conflict(f"the recording is {current['state']}; stop it first")
        return row

    async def ids_of_workshop(self, workshop_id: uuid.UUID) -> list[uuid.UUID]:
        return [r["id"] for r in await self.pool.fetch("SELECT id FROM recordings WHERE workshop_id = $1", workshop_id)]

    async def expired(self, before: datetime) -> list[uuid.UUID]:
        return [r["id"] for r in await self.pool.fetch(EXPIRED, before)]

    # Tracks
    async def add_track(
        self,
        recording_id: uuid.UUID,
        participant_id: uuid.UUID,
        *,
        track_id: uuid.UUID,
        kind: str,
        codec: str,
        file_key: str,
        offset_s: float,
        source: str | None = None,
        language: str | None = None,
    ) -> asyncpg.Record:
        """`source` is `camera` or `screen` where the capture knows it (sfu rooms), else None."""
        row = await self.pool.fetchrow(
            INSERT_TRACK, track_id, recording_id, participant_id, kind, codec, file_key, offset_s, source, language
        )
        assert row is not None
        return row

    async def finish_track(
        self, track_id: uuid.UUID, *, state: str, size: int | None, duration_s: float | None, sha256: str | None
    ) -> None:
        await self.pool.execute(FINISH_TRACK, track_id, state, size, duration_s, sha256)

    async def tracks(self, recording_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(TRACKS_OF, recording_id))

    async def track(self, recording_id: uuid.UUID, track_id: uuid.UUID) -> asyncpg.Record:
        row = await self.pool.fetchrow(TRACK, track_id, recording_id)
        if row is None:
            raise NotFound("track not found")
        return row

    async def file_keys(self) -> set[str]:
        return {r["file_key"] for r in await self.pool.fetch(ALL_FILE_KEYS)}

    # Consent
    async def record_consent(
        self,
        recording_id: uuid.UUID,
        participant_id: uuid.UUID,
        granted: bool,
        *,
        change: Change,
        connection_id: str | None = None,
    ) -> datetime:
        """Append an answer to the ledger, with the connection it came from, and its audit entry."""
        async with self._recorded(change) as conn:
            at: datetime = await conn.fetchval(
                INSERT_CONSENT, recording_id, participant_id, granted, connection_id or None
            )
        return at

    async def latest_consents(self, recording_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(LATEST_CONSENTS, recording_id))

    async def consent_ledger(self, recording_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(CONSENT_LEDGER, recording_id))

    # Grants and downloads
    async def grant(self, recording_id: uuid.UUID, participant_id: uuid.UUID, by: str, *, change: Change) -> None:
        async with self._recorded(change) as conn:
            await conn.execute(UPSERT_GRANT, recording_id, participant_id, by)

    async def revoke_grant(self, recording_id: uuid.UUID, participant_id: uuid.UUID) -> None:
        await self.pool.execute(DELETE_GRANT, recording_id, participant_id)

    async def has_grant(self, recording_id: uuid.UUID, participant_id: uuid.UUID) -> bool:
        granted: bool = await self.pool.fetchval(HAS_GRANT, recording_id, participant_id)
        return granted

    async def log_download(
        self,
        recording_id: uuid.UUID,
        track_id: uuid.UUID,
        *,
        principal: str,
        via: str,
        range_header: str | None,
        status: int,
        change: Change,
    ) -> None:
        async with self._recorded(change) as conn:
            await conn.execute(INSERT_DOWNLOAD, recording_id, track_id, principal, via, range_header, status)

    async def downloads(self, recording_id: uuid.UUID) -> list[Mapping[str, Any]]:
        return [dict(r) for r in await self.pool.fetch(DOWNLOADS, recording_id)]

    # Watching: chapters, grants, what a participant may watch

    async def room_visits(self, room_id: uuid.UUID, since: datetime, until: datetime) -> list[asyncpg.Record]:
        """Attendance visits of a room that overlap [since, until]."""
        return list(await self.pool.fetch(ROOM_VISITS, room_id, since, until))

    async def breakout_run_edges(
        self, workshop_id: uuid.UUID, since: datetime, until: datetime
    ) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(BREAKOUT_RUN_EDGES, workshop_id, since, until))

    async def consent_ledger_named(self, recording_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(CONSENT_LEDGER_NAMED, recording_id))

    async def grants(self, recording_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(GRANTS_OF, recording_id))

    async def revoke(self, recording_id: uuid.UUID, participant_id: uuid.UUID, *, change: Change) -> bool:
        """Take a participant's grant away, with its audit entry; False if there was none (nothing written)."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(DELETE_GRANT, recording_id, participant_id)
            if status.endswith(" 0"):
                return False
            await self.audit.write(conn, change)
        return True

    async def watchable(
        self, workshop_id: uuid.UUID, granted_to: uuid.UUID | None, *, limit: int
    ) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(WATCHABLE, workshop_id, granted_to, limit))

    async def plans_of_rooms(self, room_ids: list[uuid.UUID]) -> dict[uuid.UUID, asyncpg.Record]:
        return {r["room_id"]: r for r in await self.pool.fetch(PLANS_OF_ROOMS, room_ids)}
