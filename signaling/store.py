"""PostgreSQL records of signalling: attendance (written in the background) and chat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

import asyncpg

from signaling.protocol import ChatMessage
from signaling.service import Attendance

log = logging.getLogger(__name__)

# Conditional: a workshop deleted while people were in it takes their attendance with it (ON DELETE CASCADE), and
# its leaves, recorded after the delete, must be skipped, not retried forever in front of everyone else's.
INSERT_ATTENDANCE = """
INSERT INTO attendance_events (workshop_id, room_id, participant_id, event, at, reason)
SELECT $1::uuid, $2::uuid, $3::uuid, $4::text, $5::timestamptz, $6::text
WHERE EXISTS (SELECT 1 FROM participants WHERE id = $3::uuid AND workshop_id = $1::uuid)
"""
# Crash leftovers: the latest event of each participant is its current state (one room at a time), and ids give
# the order in which the one writer recorded them. GREATEST ignores a NULL `last alive`: the join time is used then.
CLOSE_OPEN_VISITS = """
INSERT INTO attendance_events (workshop_id, room_id, participant_id, event, at, reason)
SELECT latest.workshop_id, latest.room_id, latest.participant_id, 'leave', GREATEST(latest.at, $1), 'server_crash'
FROM (
    SELECT DISTINCT ON (participant_id) workshop_id, room_id, participant_id, event, at
    FROM attendance_events ORDER BY participant_id, id DESC
) latest
WHERE latest.event = 'join'
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

MAX_PENDING = 100_000
BATCH = 500
# The queue is kept while PostgreSQL is away (in order: one writer, one batch at a time, each batch atomic); this caps
# how long after its return the backlog waits.
MAX_RETRY_DELAY_S = 4.0


class PgSignalingStore:
    """Implements `signaling.service.SignalingStore`.

    Attendance goes through a queue to one writer task so that joins and leaves never wait on the
    database; the writer batches, retries while the database is away, and flushes on close.
    """

    def __init__(self, pool: asyncpg.Pool, *, on_db_error: Callable[[str], None] | None = None) -> None:
        self.pool = pool
        self._on_db_error = on_db_error
        self._pending: asyncio.Queue[Attendance] = asyncio.Queue(maxsize=MAX_PENDING)
        self._writer: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def close_open_visits(self, last_alive: datetime | None) -> int:
        """At start, before anyone joins: close the visits a dead process left open, at the time it was last
        alive (`server_crash`). Returns how many were closed."""
        status: str = await self.pool.execute(CLOSE_OPEN_VISITS, last_alive)
        closed = int(status.rsplit(maxsplit=1)[-1])
        if closed:
            log.warning(
                "closed %d attendance visit(s) left open by a previous process (last alive %s)", closed, last_alive
            )
        return closed

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="attendance-writer")

    def record_attendance(self, event: Attendance) -> None:
        try:
            self._pending.put_nowait(event)
            self._idle.clear()
        except asyncio.QueueFull:
            log.error("attendance queue full; dropping %s of %s", event.event, event.participant_id)

    async def flushed(self) -> None:
        """Wait until every recorded event is in the database (tests, shutdown)."""
        await self._idle.wait()

    async def _write_loop(self) -> None:
        delay = 0.5
        while True:
            batch = [await self._pending.get()]
            while len(batch) < BATCH and not self._pending.empty():
                batch.append(self._pending.get_nowait())
            while True:
                try:
                    await self._insert(batch)
                    delay = 0.5
                    break
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("attendance write failed (%s); retrying in %.1fs", exc, delay)
                    if self._on_db_error is not None:
                        self._on_db_error("attendance")
                    await asyncio.sleep(delay)  # back-off while the database is away
                    delay = min(delay * 2, MAX_RETRY_DELAY_S)
            if self._pending.empty():
                self._idle.set()

    async def _insert(self, batch: list[Attendance]) -> None:
        await self.pool.executemany(
            INSERT_ATTENDANCE,
            [
                (
                    uuid.UUID(e.workshop_id),
                    uuid.UUID(e.room_id),
                    uuid.UUID(e.participant_id),
                    e.event,
                    e.at,
                    e.reason,
                )
                for e in batch
            ],
        )

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
