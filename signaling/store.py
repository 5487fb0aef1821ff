"""PostgreSQL records of signalling: attendance events and visits (written in the background) and chat."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime

import asyncpg

from signaling.protocol import ChatMessage
from signaling.service import Attendance, visit_end

log = logging.getLogger(__name__)

# Conditional: a workshop deleted while people were in it takes their attendance events with it (ON DELETE CASCADE),
# and its leaves, recorded after the delete, must be skipped, not retried forever in front of everyone else's.
INSERT_ATTENDANCE = """
INSERT INTO attendance_events (workshop_id, room_id, participant_id, event, at, reason, visit_id)
SELECT $1::uuid, $2::uuid, $3::uuid, $4::text, $5::timestamptz, $6::text, $7::uuid
WHERE EXISTS (SELECT 1 FROM participants WHERE id = $3::uuid AND workshop_id = $1::uuid)
"""
# Visits, in the same transaction as their events. Idempotent: a batch retried after a lost commit changes nothing.
# Each open visit names the node that writes it (several nodes: the node running the member's session).
OPEN_VISIT = """
INSERT INTO visits (id, workshop_id, participant_id, room_id, room_name, started_at, node_id)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING
"""
CLOSE_VISIT = """
UPDATE visits SET ended_at = GREATEST($2, started_at), ended_how = $3, dropped_at = NULL,
    drops = drops + ($3 = 'dropped')::int
WHERE id = $1 AND ended_at IS NULL
"""
DROP_VISIT = "UPDATE visits SET dropped_at = $2, drops = drops + $3::int WHERE id = $1 AND ended_at IS NULL"
RESUME_VISIT = "UPDATE visits SET dropped_at = NULL, node_id = COALESCE($2, node_id) WHERE id = $1 AND ended_at IS NULL"
# Crash leftovers: every open visit ends when its socket dropped, if it had, else when the dead process was last
# known alive (its node's last heartbeat, `nodes.alive_at`; else $1: the last heartbeat of any, or the latest start or
# drop of an open visit, whichever is later), and never
# before it began. A visit that a resume grant keeps is left alone: its member may still come back within the grace
# period, and if nobody does, the sweep of expired grants ends it (signaling/resume_store.py).
# The matching leave events go into the event log with them.
# Whose: a node alone ($2 NULL) closes every such visit but its own; among several nodes, only the visits of nodes
# that are gone (not seen for $3 s, or unknown: the visit's node is NULL or long deleted), never another live node's.
CLOSE_OPEN_VISITS = """
WITH closed AS (
    UPDATE visits SET ended_at = COALESCE(dropped_at, GREATEST(started_at,
            COALESCE((SELECT n.alive_at FROM nodes n WHERE n.id = visits.node_id), $1::timestamptz))),
        ended_how = 'crash', dropped_at = NULL
    WHERE ended_at IS NULL AND NOT EXISTS (SELECT 1 FROM resume_grants g WHERE g.visit_id = visits.id::text)
        AND visits.node_id IS DISTINCT FROM $4
        AND ($2::boolean IS NULL OR NOT EXISTS (SELECT 1 FROM nodes n
            WHERE n.id = visits.node_id AND n.seen_at > now() - make_interval(secs => $3)))
    RETURNING id, workshop_id, participant_id, room_id, ended_at
), logged AS (
    INSERT INTO attendance_events (workshop_id, room_id, participant_id, event, at, reason, visit_id)
    SELECT c.workshop_id, c.room_id, c.participant_id, 'leave', c.ended_at, 'server_crash', c.id
    FROM closed c JOIN participants p ON p.id = c.participant_id AND p.workshop_id = c.workshop_id
)
SELECT count(*) FROM closed
"""
# The latest sign of life among the open visits (cheap: the partial index of open visits).
LATEST_OPEN = """
SELECT max(GREATEST(started_at, dropped_at)) FROM visits
WHERE ended_at IS NULL AND NOT EXISTS (SELECT 1 FROM resume_grants g WHERE g.visit_id = visits.id::text)
"""
INSERT_CHAT = """
INSERT INTO chat_messages (workshop_id, room_id, participant_id, display_name, text)
VALUES ($1, $2, $3, $4, $5) RETURNING id, sent_at
"""
RECENT_CHAT = """
SELECT id, room_id, participant_id, display_name, text, sent_at FROM (
    SELECT * FROM chat_messages WHERE room_id = $1 ORDER BY id DESC LIMIT $2
) recent ORDER BY id
"""

# Past this backlog, new joins are refused until the writer catches up (`attendance_congested`); events of people
# already in are always queued, so nothing is dropped.
MAX_PENDING = 100_000
BATCH = 500
# The queue is kept while PostgreSQL is away (in order: one writer, one batch at a time, each batch atomic); this caps
# how long after its return the backlog waits.
MAX_RETRY_DELAY_S = 4.0


def _visit_ops(event: Attendance, node_id: str | None = None) -> list[tuple[str, tuple[object, ...]]]:
    """The statements that record one event: the event itself, and what it does to its visit."""
    wid, rid, pid = uuid.UUID(event.workshop_id), uuid.UUID(event.room_id), uuid.UUID(event.participant_id)
    vid = uuid.UUID(event.visit_id) if event.visit_id else None
    ops: list[tuple[str, tuple[object, ...]]] = [
        (INSERT_ATTENDANCE, (wid, rid, pid, event.event, event.at, event.reason, vid))
    ]
    if vid is None:
        return ops
    if event.event == "join":
        ops.append((OPEN_VISIT, (vid, wid, pid, rid, event.room_name, event.at, node_id)))
    elif event.event == "leave":
        ops.append((CLOSE_VISIT, (vid, event.at, visit_end(event.reason))))
    elif event.event == "drop":
        ops.append((DROP_VISIT, (vid, event.at, event.reason == "disconnected")))
    else:
        ops.append((RESUME_VISIT, (vid, node_id)))
    return ops


class PgSignalingStore:
    """Implements `signaling.service.SignalingStore`.

    Attendance goes through a queue to one writer task so that joins and leaves never wait on the
    database; the writer batches (each batch one transaction: events and the visits they open, change and
    close), retries while the database is away, and flushes on close. Nothing is dropped: a backlog past
    MAX_PENDING refuses new joins instead (back-pressure), and `oldest_pending` bounds the heartbeat, so that
    after a crash everything before the last heartbeat is known to be in the database.
    """

    def __init__(
        self, pool: asyncpg.Pool, *, on_db_error: Callable[[str], None] | None = None, node_id: str | None = None
    ) -> None:
        self.pool = pool
        # The node whose visits these are (written into each); None: a node alone, as before nodes were known.
        self.node_id = node_id
        self._on_db_error = on_db_error
        self._pending: deque[Attendance] = deque()
        self._in_flight: list[Attendance] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        # How many events were recorded, and how many of them are in the database (`written`).
        self._recorded = 0
        self._written = 0
        self._progress = asyncio.Event()

    async def close_open_visits(self, last_alive: datetime | None, *, dead_after_s: float | None = None) -> int:
        """At start, before anyone joins: close the visits a dead process left open (`crash`): at their drop
        if the socket was down, else at the time the process was last alive. Visits kept by a resume grant stay
        open (see CLOSE_OPEN_VISITS). With `dead_after_s` (several nodes), only the visits of nodes not seen for
        that long (the rest are swept once their node is gone: server.sweep). Returns how many were closed."""
        async with self.pool.acquire() as conn, conn.transaction():
            latest: datetime | None = await conn.fetchval(LATEST_OPEN)
            known = max((t for t in (last_alive, latest) if t is not None), default=None)
            several = True if dead_after_s is not None else None
            closed = int(await conn.fetchval(CLOSE_OPEN_VISITS, known, several, dead_after_s or 0.0, self.node_id))
        if closed:
            log.warning("closed %d attendance visit(s) left open by a previous process (last alive %s)", closed, known)
        return closed

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="attendance-writer")

    def record_attendance(self, event: Attendance) -> None:
        self._recorded += 1
        self._pending.append(event)
        self._idle.clear()
        self._wake.set()

    def attendance_congested(self) -> bool:
        return len(self._pending) + len(self._in_flight) >= MAX_PENDING

    def backlog(self) -> int:
        return len(self._pending) + len(self._in_flight)

    def oldest_pending(self) -> datetime | None:
        """The time of the oldest event not yet in the database (None when all are)."""
        if self._in_flight:
            return self._in_flight[0].at
        return self._pending[0].at if self._pending else None

    async def written(self) -> None:
        """Wait until every event recorded before this call is in the database (later ones need not be: this
        never waits for an idle queue). A resume grant is written after the visit it names."""
        mark = self._recorded
        while self._written < mark:
            await self._progress.wait()

    async def flushed(self) -> None:
        """Wait until every recorded event is in the database (tests, shutdown)."""
        await self._idle.wait()

    async def _write_loop(self) -> None:
        delay = 0.5
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            count = min(BATCH, len(self._pending))
            self._in_flight = [self._pending.popleft() for _ in range(count)]
            while True:
                try:
                    await self._insert(self._in_flight)
                    delay = 0.5
                    break
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("attendance write failed (%s); retrying in %.1fs", exc, delay)
                    if self._on_db_error is not None:
                        self._on_db_error("attendance")
                    await asyncio.sleep(delay)  # back-off while the database is away
                    delay = min(delay * 2, MAX_RETRY_DELAY_S)
            self._written += len(self._in_flight)
            self._in_flight = []
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()

    async def _insert(self, batch: list[Attendance]) -> None:
        ops = [op for event in batch for op in _visit_ops(event, self.node_id)]
        async with self.pool.acquire() as conn, conn.transaction():
            # In order; consecutive statements of one kind go as one executemany.
            for sql, group in itertools.groupby(ops, key=lambda op: op[0]):
                await conn.executemany(sql, [args for _sql, args in group])

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._writer is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.flushed()
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    async def save_chat(
        self, *, workshop_id: str, room_id: str, participant_id: str, display_name: str, text: str
    ) -> ChatMessage:
        row = await self.pool.fetchrow(
            INSERT_CHAT,
            uuid.UUID(workshop_id),
            uuid.UUID(room_id),
            uuid.UUID(participant_id),
            display_name,
            text,
        )
        assert row is not None
        return ChatMessage(
            id=row["id"],
            room_id=room_id,
            from_=participant_id,
            display_name=display_name,
            text=text,
            sent_at=row["sent_at"],
        )

    async def recent_chat(self, room_id: str, limit: int) -> list[ChatMessage]:
        if limit <= 0:
            return []
        rows = await self.pool.fetch(RECENT_CHAT, uuid.UUID(room_id), limit)
        return [
            ChatMessage(
                id=r["id"],
                room_id=str(r["room_id"]),
                from_=str(r["participant_id"]),
                display_name=r["display_name"],
                text=r["text"],
                sent_at=r["sent_at"],
            )
            for r in rows
        ]
