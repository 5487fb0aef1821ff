"""SQL for a workshop's agenda: its timed sessions and the scheduler's record of which edges have fired."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from server.store import translated
from signaling.audit import Actor
from signaling.audit_store import AuditLog
from signaling.errors import InvalidArgument, NotFound

SESSION_COLUMNS = """id, workshop_id, title, description, kind, starts_at, ends_at, presenters, breakout_plan_id,
    record, held, started_fired_at, ended_fired_at, fired_effects, created_at, updated_at"""
LIST_SESSIONS = f"""
SELECT {SESSION_COLUMNS} FROM agenda_sessions
WHERE workshop_id = $1 AND ($2::timestamptz IS NULL OR (starts_at, id) > ($2, $3::uuid))
ORDER BY starts_at, id LIMIT $4
"""
SELECT_SESSION = f"SELECT {SESSION_COLUMNS} FROM agenda_sessions WHERE id = $1 AND workshop_id = $2"
INSERT_SESSION = f"""
INSERT INTO agenda_sessions (workshop_id, title, description, kind, starts_at, ends_at, presenters,
    breakout_plan_id, record)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {SESSION_COLUMNS}
"""
UPDATE_SESSION = f"""
UPDATE agenda_sessions SET
    title = COALESCE($3, title), description = COALESCE($4, description), kind = COALESCE($5, kind),
    starts_at = COALESCE($6, starts_at), ends_at = COALESCE($7, ends_at), presenters = COALESCE($8, presenters),
    breakout_plan_id = CASE WHEN $9 THEN $10 ELSE breakout_plan_id END, record = COALESCE($11, record),
    updated_at = now()
WHERE id = $1 AND workshop_id = $2 RETURNING {SESSION_COLUMNS}
"""
DELETE_SESSION = "DELETE FROM agenda_sessions WHERE id = $1 AND workshop_id = $2 RETURNING id, title"
HOLD_SESSION = f"""
UPDATE agenda_sessions SET held = $3, updated_at = now() WHERE id = $1 AND workshop_id = $2
RETURNING {SESSION_COLUMNS}
"""
# The plan must belong to the session's workshop (the foreign key alone would accept another workshop's plan).
PLAN_OF_WORKSHOP = "SELECT 1 FROM breakout_plans WHERE id = $1 AND workshop_id = $2"

# The scheduler: edges not yet fired, every workshop, soonest first.
PENDING_SESSIONS = f"""
SELECT {SESSION_COLUMNS} FROM agenda_sessions WHERE ended_fired_at IS NULL ORDER BY starts_at, id
"""
# Claim an edge: the one UPDATE that wins is the one firing; run in the transaction of the edge's effect.
CLAIM_START = """
UPDATE agenda_sessions SET started_fired_at = $2, updated_at = now()
WHERE id = $1 AND started_fired_at IS NULL AND ended_fired_at IS NULL AND NOT held RETURNING id
"""
CLAIM_END = """
UPDATE agenda_sessions SET ended_fired_at = $2, updated_at = now()
WHERE id = $1 AND ended_fired_at IS NULL AND NOT held RETURNING id
"""
SET_EFFECTS = "UPDATE agenda_sessions SET fired_effects = fired_effects || $2::jsonb WHERE id = $1"

AUDITED_FIELDS = ("title", "kind", "starts_at", "ends_at", "presenters", "breakout_plan_id", "record")


def audited_session(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in AUDITED_FIELDS}


class AgendaStore:
    """A workshop's agenda sessions in PostgreSQL; every change writes its audit entry in its transaction."""

    def __init__(self, pool: asyncpg.Pool, *, audit: AuditLog | None = None) -> None:
        self.pool = pool
        self.audit = audit if audit is not None else AuditLog()

    async def list_sessions(
        self,
        workshop_id: uuid.UUID,
        *,
        limit: int = 1000,
        after: tuple[datetime, uuid.UUID] | None = None,
    ) -> list[asyncpg.Record]:
        """The workshop's sessions ordered by start (keyset pages on (starts_at, id))."""
        start, sid = after if after else (None, None)
        return list(await self.pool.fetch(LIST_SESSIONS, workshop_id, start, sid, limit))

    async def get_session(self, workshop_id: uuid.UUID, session_id: uuid.UUID) -> asyncpg.Record:
        row = await self.pool.fetchrow(SELECT_SESSION, session_id, workshop_id)
        if row is None:
            raise NotFound("agenda session not found")
        return row

    @staticmethod
    async def _check_plan(conn: asyncpg.Connection, workshop_id: uuid.UUID, plan_id: uuid.UUID | None) -> None:
        if plan_id is not None and await conn.fetchval(PLAN_OF_WORKSHOP, plan_id, workshop_id) is None:
            raise InvalidArgument(
                "breakout_plan_id is not a plan of this workshop",
                details=[{"field": "breakout_plan_id", "message": "unknown plan"}],
            )

    async def create_session(self, workshop_id: uuid.UUID, data: Mapping[str, Any], *, actor: Actor) -> asyncpg.Record:
        async with translated(), self.pool.acquire() as conn, conn.transaction():
            await self._check_plan(conn, workshop_id, data.get("breakout_plan_id"))
            row = await conn.fetchrow(
                INSERT_SESSION,
                workshop_id,
                data["title"],
                data.get("description", ""),
                data["kind"],
                data["starts_at"],
                data["ends_at"],
                data.get("presenters", ""),
                data.get("breakout_plan_id"),
                data.get("record", False),
            )
            assert row is not None
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="agenda.create",
                target={"session_id": row["id"]},
                details=audited_session(row),
            )
        return row

    async def update_session(
        self, workshop_id: uuid.UUID, session_id: uuid.UUID, changes: Mapping[str, Any], *, actor: Actor
    ) -> asyncpg.Record:
        async with translated(), self.pool.acquire() as conn, conn.transaction():
            if "breakout_plan_id" in changes:
                await self._check_plan(conn, workshop_id, changes["breakout_plan_id"])
            row = await conn.fetchrow(
                UPDATE_SESSION,
                session_id,
                workshop_id,
                changes.get("title"),
                changes.get("description"),
                changes.get("kind"),
                changes.get("starts_at"),
                changes.get("ends_at"),
                changes.get("presenters"),
                "breakout_plan_id" in changes,
                changes.get("breakout_plan_id"),
                changes.get("record"),
            )
            if row is None:
                raise NotFound("agenda session not found")
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="agenda.update",
                target={"session_id": session_id},
                details={"changes": {k: v for k, v in changes.items() if k != "description"}},
            )
        return row

    async def delete_session(self, workshop_id: uuid.UUID, session_id: uuid.UUID, *, actor: Actor) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            gone = await conn.fetchrow(DELETE_SESSION, session_id, workshop_id)
            if gone is None:
                raise NotFound("agenda session not found")
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="agenda.delete",
                target={"session_id": session_id},
                details={"title": gone["title"]},
            )

    async def hold_session(
        self, workshop_id: uuid.UUID, session_id: uuid.UUID, held: bool, *, actor: Actor
    ) -> asyncpg.Record:
        """Hold (or release) a session's automatic actions: a held session fires neither edge."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(HOLD_SESSION, session_id, workshop_id, held)
            if row is None:
                raise NotFound("agenda session not found")
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="agenda.hold" if held else "agenda.release",
                target={"session_id": session_id},
            )
        return row

    # The scheduler -------------------------------------------------------------------------------
    async def pending_sessions(self) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(PENDING_SESSIONS))

    @staticmethod
    async def claim_start(conn: asyncpg.Connection, session_id: uuid.UUID, at: datetime) -> bool:
        return await conn.fetchval(CLAIM_START, session_id, at) is not None

    @staticmethod
    async def claim_end(conn: asyncpg.Connection, session_id: uuid.UUID, at: datetime) -> bool:
        return await conn.fetchval(CLAIM_END, session_id, at) is not None

    @staticmethod
    async def set_effects(conn: asyncpg.Connection, session_id: uuid.UUID, effects: Mapping[str, Any]) -> None:
        await conn.execute(SET_EFFECTS, session_id, json.dumps(effects))
