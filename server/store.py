"""SQL for workshops, rooms, participants and server secrets: all of it, in one place."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from server.join_cache import JoinCache
from signaling.audit import SYSTEM, Actor
from signaling.audit_store import AuditLog
from signaling.errors import Conflict, InvalidArgument, NotFound

WORKSHOP_COLUMNS = """w.id, w.title, w.description, w.timezone, w.starts_at, w.ends_at, w.status,
    w.recording_consent, w.records_retention_days, w.lobby, w.languages, w.created_at, w.updated_at,
    (SELECT r.id FROM rooms r WHERE r.workshop_id = w.id AND r.kind = 'plenary') AS plenary_room_id"""
INSERT_WORKSHOP = """
INSERT INTO workshops (title, description, timezone, starts_at, ends_at, status, recording_consent,
    records_retention_days, lobby, languages)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id
"""
INSERT_ROOM = """
INSERT INTO rooms (workshop_id, name, kind, capacity, media, publishing) VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, workshop_id, name, kind, capacity, media, publishing, locked, created_at
"""
SELECT_WORKSHOP = f"SELECT {WORKSHOP_COLUMNS} FROM workshops w WHERE w.id = $1"
LIST_WORKSHOPS = f"""
SELECT {WORKSHOP_COLUMNS} FROM workshops w
WHERE ($1::timestamptz IS NULL OR (w.created_at, w.id) > ($1, $2::uuid))
  AND ($3::uuid IS NULL OR w.id = $3)
ORDER BY w.created_at, w.id LIMIT $4
"""
UPDATE_WORKSHOP = """
UPDATE workshops SET
    title = COALESCE($2, title), description = COALESCE($3, description), timezone = COALESCE($4, timezone),
    starts_at = COALESCE($5, starts_at), ends_at = COALESCE($6, ends_at), status = COALESCE($7, status),
    recording_consent = COALESCE($8, recording_consent),
    records_retention_days = CASE WHEN $9 THEN $10 ELSE records_retention_days END, lobby = COALESCE($11, lobby),
    languages = COALESCE($12, languages), updated_at = now()
WHERE id = $1 RETURNING id
"""
DELETE_WORKSHOP = "DELETE FROM workshops WHERE id = $1 RETURNING id, title, ends_at, records_retention_days"

ROOM_COLUMNS = "id, workshop_id, name, kind, capacity, media, publishing, locked, created_at"
LIST_ROOMS = f"""
SELECT {ROOM_COLUMNS} FROM rooms
WHERE workshop_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id LIMIT $4
"""
SELECT_ROOM = f"SELECT {ROOM_COLUMNS} FROM rooms WHERE id = $1"
SELECT_PLENARY = f"SELECT {ROOM_COLUMNS} FROM rooms WHERE workshop_id = $1 AND kind = 'plenary'"
# A live participant and the room it belongs in now, in one round trip (joining is the hot path of a burst).
SELECT_PARTICIPANT_AND_ROOM = f"""
SELECT p.id, p.workshop_id, p.display_name, p.country, p.organisation, p.email, p.role, p.room_id,
       p.token_generation, p.created_at, p.updated_at, p.banned_at, p.ban_reason, p.interpreter_languages,
       r.id AS r_id, r.workshop_id AS r_workshop_id, r.name AS r_name, r.kind AS r_kind, r.capacity AS r_capacity,
       r.media AS r_media, r.publishing AS r_publishing, r.locked AS r_locked,
       (SELECT w.lobby FROM workshops w WHERE w.id = p.workshop_id) AS w_lobby
FROM participants p
CROSS JOIN LATERAL (
    SELECT {ROOM_COLUMNS}, 0 AS rank FROM rooms WHERE id = (
        SELECT a.room_id FROM breakout_assignments a JOIN breakout_plans bp ON bp.id = a.plan_id
        WHERE bp.workshop_id = p.workshop_id AND bp.state IN ('open', 'closing') AND a.participant_id = p.id)
    UNION ALL
    SELECT {ROOM_COLUMNS}, 1 FROM rooms WHERE workshop_id = p.workshop_id AND id = p.room_id
    UNION ALL
    SELECT {ROOM_COLUMNS}, 2 FROM rooms WHERE workshop_id = p.workshop_id AND kind = 'plenary'
    ORDER BY rank LIMIT 1
) r
WHERE p.id = $1 AND p.deleted_at IS NULL
"""
# Where a participant belongs now: its room in the running breakout plan, else its home room, else the plenary.
SELECT_ASSIGNED_ROOM = f"""
SELECT {ROOM_COLUMNS}, 0 AS rank FROM rooms WHERE id = (
    SELECT a.room_id FROM breakout_assignments a JOIN breakout_plans p ON p.id = a.plan_id
    WHERE p.workshop_id = $1 AND p.state IN ('open', 'closing') AND a.participant_id = $2)
UNION ALL
SELECT {ROOM_COLUMNS}, 1 FROM rooms
WHERE workshop_id = $1 AND id = (SELECT room_id FROM participants WHERE id = $2 AND workshop_id = $1)
UNION ALL
SELECT {ROOM_COLUMNS}, 2 FROM rooms WHERE workshop_id = $1 AND kind = 'plenary'
ORDER BY rank LIMIT 1
"""
# Where a participant goes when breakouts close: its home room, else the plenary.
SELECT_HOME_ROOM = f"""
SELECT {ROOM_COLUMNS}, 1 AS rank FROM rooms
WHERE workshop_id = $1 AND id = (SELECT room_id FROM participants WHERE id = $2 AND workshop_id = $1)
UNION ALL
SELECT {ROOM_COLUMNS}, 2 FROM rooms WHERE workshop_id = $1 AND kind = 'plenary'
ORDER BY rank LIMIT 1
"""
SELECT_WORKSHOP_ROOM = f"SELECT {ROOM_COLUMNS} FROM rooms WHERE id = $1 AND workshop_id = $2"
UPDATE_ROOM = f"""
UPDATE rooms SET name = COALESCE($3, name), capacity = COALESCE($4, capacity), media = COALESCE($5, media),
    publishing = COALESCE($6, publishing), locked = COALESCE($7, locked)
WHERE id = $1 AND workshop_id = $2 RETURNING {ROOM_COLUMNS}
"""
DELETE_ROOM = "DELETE FROM rooms WHERE id = $1 AND workshop_id = $2 AND kind = 'breakout' RETURNING id"

PARTICIPANT_COLUMNS = """id, workshop_id, display_name, country, organisation, email, role, room_id,
    token_generation, created_at, updated_at, banned_at, banned_by, ban_reason, timezone, language,
    interpreter_languages"""
INSERT_PARTICIPANT = f"""
INSERT INTO participants (workshop_id, display_name, country, organisation, email, role, room_id, timezone,
    created_at, updated_at, language, interpreter_languages)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp(), clock_timestamp(), $9, $10) RETURNING {PARTICIPANT_COLUMNS}
"""
LIST_PARTICIPANTS = f"""
SELECT {PARTICIPANT_COLUMNS} FROM participants
WHERE workshop_id = $1 AND deleted_at IS NULL AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id LIMIT $4
"""
SELECT_PARTICIPANT = f"""
SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE id = $1 AND workshop_id = $2 AND deleted_at IS NULL
"""
SELECT_TAKEN_EMAILS = """
SELECT DISTINCT lower(email) FROM participants
WHERE workshop_id = $1 AND deleted_at IS NULL AND lower(email) = ANY($2::text[])
"""
SELECT_PARTICIPANT_ANY_WORKSHOP = f"""
SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE id = $1 AND deleted_at IS NULL
"""
UPDATE_PARTICIPANT = f"""
UPDATE participants SET
    display_name = COALESCE($3, display_name), country = COALESCE($4, country),
    organisation = COALESCE($5, organisation), email = CASE WHEN $6 THEN $7 ELSE email END,
    role = COALESCE($8, role), room_id = CASE WHEN $9 THEN $10 ELSE room_id END,
    timezone = CASE WHEN $11 THEN $12 ELSE timezone END,
    language = CASE WHEN $13 THEN $14 ELSE language END,
    interpreter_languages = CASE WHEN $15 THEN $16 ELSE interpreter_languages END, updated_at = now()
WHERE id = $1 AND workshop_id = $2 AND deleted_at IS NULL RETURNING {PARTICIPANT_COLUMNS}
"""
# Interpretation (docs/interpretation.md): the workshop's languages and its interpreters' pairs.
SELECT_INTERPRETATION = """
SELECT w.languages,
       coalesce((SELECT array_agg(p.id::text ORDER BY p.id) FROM participants p
                 WHERE p.workshop_id = w.id AND p.deleted_at IS NULL AND p.interpreter_languages IS NOT NULL),
                '{}') AS interpreters
FROM workshops w WHERE w.id = $1
"""
LOCK_WORKSHOP_LANGUAGES = "SELECT languages FROM workshops WHERE id = $1 FOR SHARE"
PAIRS_OUTSIDE = """
SELECT display_name FROM participants
WHERE workshop_id = $1 AND deleted_at IS NULL AND interpreter_languages IS NOT NULL
  AND NOT interpreter_languages <@ $2::text[] ORDER BY display_name LIMIT 3
"""
DELETE_PARTICIPANT = """
UPDATE participants SET deleted_at = now(), token_generation = token_generation + 1
WHERE id = $1 AND workshop_id = $2 AND deleted_at IS NULL RETURNING id
"""
REVOKE_PARTICIPANT = f"""
UPDATE participants SET token_generation = token_generation + 1, updated_at = now()
WHERE id = $1 AND workshop_id = $2 AND deleted_at IS NULL RETURNING {PARTICIPANT_COLUMNS}
"""

BAN_PARTICIPANT = f"""
UPDATE participants SET banned_at = now(), banned_by = $3, ban_reason = $4,
    token_generation = token_generation + 1, updated_at = now()
WHERE id = $1 AND workshop_id = $2 AND deleted_at IS NULL RETURNING {PARTICIPANT_COLUMNS}
"""
# Lifting a ban does not un-revoke: the generation stays where the ban left it, so only tokens minted now work.
UNBAN_PARTICIPANT = f"""
UPDATE participants SET banned_at = NULL, banned_by = NULL, ban_reason = NULL, updated_at = now()
WHERE id = $1 AND workshop_id = $2 AND deleted_at IS NULL RETURNING {PARTICIPANT_COLUMNS}
"""
LIST_BANS = f"""
SELECT {PARTICIPANT_COLUMNS} FROM participants
WHERE workshop_id = $1 AND deleted_at IS NULL AND banned_at IS NOT NULL
  AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id LIMIT $4
"""

# Who is in a room when it is locked is let back into it (a reload, a server restart) as if admitted.
ADMIT_PRESENT = """
INSERT INTO lobby_knocks (workshop_id, participant_id, room_id, device, reason, state, decided_at, decided_by)
SELECT $1, $2, $3, $4, 'locked', 'admitted', now(), $5
WHERE EXISTS (SELECT 1 FROM participants WHERE id = $2 AND workshop_id = $1 AND deleted_at IS NULL)
"""
END_ADMISSIONS = """
UPDATE lobby_knocks SET ended_at = now() WHERE participant_id = $1 AND state = 'admitted' AND ended_at IS NULL
"""
DENY_PENDING_OF = """
UPDATE lobby_knocks SET state = 'denied', decided_at = now(), decided_by = $2
WHERE participant_id = $1 AND state = 'pending'
"""

SELECT_SECRET = "SELECT value FROM server_secrets WHERE name = $1"
INSERT_SECRET = "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"


AUDITED_WORKSHOP_FIELDS = (
    "title",
    "timezone",
    "starts_at",
    "ends_at",
    "status",
    "recording_consent",
    "records_retention_days",
    "lobby",
    "languages",
)


def _audited_person(row: Any) -> dict[str, Any]:
    """What the audit log keeps of a roster entry (the e-mail address only as present or not)."""
    return {
        "participant_id": row["id"],
        "display_name": row["display_name"],
        "country": row["country"],
        "organisation": row["organisation"],
        "role": row["role"],
        "room_id": row["room_id"],
        "timezone": row["timezone"],
        "has_email": row["email"] is not None,
        "language": row["language"],
        "interpreter": _interpreter_of(row),
    }


def _interpreter_of(row: Any) -> dict[str, Any] | None:
    pair = row["interpreter_languages"]
    return {"languages": list(pair)} if pair is not None else None


def _pair(value: Any) -> list[str] | None:
    """The `interpreter` of a request ({"languages": [...]} or None) as the column stores it."""
    if value is None:
        return None
    return list(value["languages"])


async def _check_pairs(conn: asyncpg.Connection, workshop_id: uuid.UUID, pairs: Sequence[list[str] | None]) -> None:
    """Every interpreter's pair must be two of the workshop's languages (read under a share lock, so that a change
    of the languages cannot slip in between)."""
    if all(p is None for p in pairs):
        return
    languages = await conn.fetchval(LOCK_WORKSHOP_LANGUAGES, workshop_id)
    if languages is None:
        raise NotFound("workshop not found")
    for pair in pairs:
        if pair is not None and not set(pair) <= set(languages):
            raise InvalidArgument(
                "an interpreter's languages must be two of the workshop's languages "
                f"({', '.join(languages) or 'none'})",
                details=[{"field": "interpreter.languages", "message": "not a language of this workshop"}],
            )


@dataclass(frozen=True)
class PageKey:
    """Keyset position: the (created_at, id) of the last row of the previous page."""

    created_at: datetime
    id: uuid.UUID


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict("already exists", details={"constraint": exc.constraint_name})
    if isinstance(exc, asyncpg.CheckViolationError):
        return InvalidArgument("value out of range", details={"constraint": exc.constraint_name})
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return NotFound("referenced object not found")
    return exc


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Turn driver errors into service errors; nothing of asyncpg's text reaches a client."""
    try:
        yield
    except (
        asyncpg.UniqueViolationError,
        asyncpg.CheckViolationError,
        asyncpg.ForeignKeyViolationError,
    ) as exc:
        raise _translate(exc) from exc


def _page_args(after: PageKey | None) -> tuple[datetime | None, uuid.UUID | None]:
    return (after.created_at, after.id) if after else (None, None)


class Store:
    """Workshops, rooms and participants in PostgreSQL.

    `joins` is what joins read from memory; every write below that can change it forgets the entries concerned,
    before the write and again after it (see server.join_cache)."""

    def __init__(self, pool: asyncpg.Pool, *, joins: JoinCache | None = None, audit: AuditLog | None = None) -> None:
        self.pool = pool
        self.joins = joins if joins is not None else JoinCache()
        # Every change below writes its audit entry in its own transaction (docs/records.md).
        self.audit = audit if audit is not None else AuditLog()

    @asynccontextmanager
    async def _changing(
        self, participant_id: uuid.UUID | None = None, *, room_id: uuid.UUID | None = None
    ) -> AsyncIterator[None]:
        """Around a write: forget one participant's entry, one room's entries, or every entry."""
        self._forget(participant_id, room_id)
        try:
            yield
        finally:
            self._forget(participant_id, room_id)
            if self.joins.flushed is not None:  # several nodes: the other nodes' caches hear it before we answer
                await self.joins.flushed()

    @asynccontextmanager
    async def _changing_if(self, changing: bool) -> AsyncIterator[None]:
        if not changing:
            yield
            return
        async with self._changing():
            yield

    def _forget(self, participant_id: uuid.UUID | None, room_id: uuid.UUID | None) -> None:
        if participant_id is not None:
            self.joins.forget(participant_id)
        elif room_id is not None:
            self.joins.forget_room(str(room_id))
        else:
            self.joins.forget_all()

    # Workshops -----------------------------------------------------------------------------------
    async def create_workshop(
        self, data: dict[str, Any], *, plenary_capacity: int, plenary_media: str = "mesh", actor: Actor
    ) -> asyncpg.Record:
        """Insert a workshop and its plenary room in one transaction; its chain starts with `workshop.create`."""
        async with translated(), self.pool.acquire() as conn, conn.transaction():
            workshop_id = await conn.fetchval(
                INSERT_WORKSHOP,
                data["title"],
                data["description"],
                data["timezone"],
                data["starts_at"],
                data["ends_at"],
                data["status"],
                data["recording_consent"],
                data.get("records_retention_days"),
                data.get("lobby", "off"),
                data.get("languages", []),
            )
            plenary = await conn.fetchrow(
                INSERT_ROOM, workshop_id, "Plenary", "plenary", plenary_capacity, plenary_media, "open"
            )
            row = await conn.fetchrow(SELECT_WORKSHOP, workshop_id)
            assert row is not None and plenary is not None
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="workshop.create",
                target={"workshop_id": workshop_id},
                details={
                    **{k: row[k] for k in AUDITED_WORKSHOP_FIELDS},
                    "plenary_room_id": plenary["id"],
                    "plenary_capacity": plenary_capacity,
                    "plenary_media": plenary_media,
                },
            )
        return row

    async def get_workshop(self, workshop_id: uuid.UUID) -> asyncpg.Record:
        row = await self.pool.fetchrow(SELECT_WORKSHOP, workshop_id)
        if row is None:
            raise NotFound("workshop not found")
        return row

    async def list_workshops(
        self, *, limit: int, after: PageKey | None, only: uuid.UUID | None = None
    ) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(LIST_WORKSHOPS, *_page_args(after), only, limit))

    async def update_workshop(self, workshop_id: uuid.UUID, changes: dict[str, Any], *, actor: Actor) -> asyncpg.Record:
        # The lobby setting is part of every join entry of the workshop: a change of it forgets them all.
        async with translated(), self._changing_if("lobby" in changes), self.pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                UPDATE_WORKSHOP,
                workshop_id,
                changes.get("title"),
                changes.get("description"),
                changes.get("timezone"),
                changes.get("starts_at"),
                changes.get("ends_at"),
                changes.get("status"),
                changes.get("recording_consent"),
                "records_retention_days" in changes,
                changes.get("records_retention_days"),
                changes.get("lobby"),
                changes.get("languages"),
            )
            if found is None:
                raise NotFound("workshop not found")
            if "languages" in changes:
                outside = await conn.fetch(PAIRS_OUTSIDE, workshop_id, changes["languages"])
                if outside:
                    raise Conflict(
                        "interpreters use a language that would be removed: "
                        + ", ".join(r["display_name"] for r in outside)
                        + "; change their pairs first",
                        details=[{"field": "languages", "message": "in use by an interpreter's pair"}],
                    )
            row = await conn.fetchrow(SELECT_WORKSHOP, workshop_id)
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="workshop.update",
                target={"workshop_id": workshop_id},
                details={"changes": changes},
            )
        assert row is not None
        return row

    async def delete_workshop(self, workshop_id: uuid.UUID, *, actor: Actor) -> None:
        """Delete the workshop with everything in it but its audit log, whose last entry says so (with what
        retention needs once the workshop's row is gone)."""
        async with self._changing(), self.pool.acquire() as conn, conn.transaction():
            gone = await conn.fetchrow(DELETE_WORKSHOP, workshop_id)
            if gone is None:
                raise NotFound("workshop not found")
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="workshop.delete",
                target={"workshop_id": workshop_id},
                details={
                    "title": gone["title"],
                    "ends_at": gone["ends_at"],
                    "records_retention_days": gone["records_retention_days"],
                },
            )

    # Rooms ---------------------------------------------------------------------------------------
    async def room_ids(self, workshop_id: uuid.UUID) -> set[uuid.UUID]:
        return {r["id"] for r in await self.pool.fetch("SELECT id FROM rooms WHERE workshop_id = $1", workshop_id)}

    async def list_rooms(self, workshop_id: uuid.UUID, *, limit: int, after: PageKey | None) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(LIST_ROOMS, workshop_id, *_page_args(after), limit))

    async def get_room(self, room_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow(SELECT_ROOM, room_id)

    async def create_room(
        self,
        workshop_id: uuid.UUID,
        *,
        name: str,
        kind: str,
        capacity: int,
        media: str,
        publishing: str = "open",
        actor: Actor,
    ) -> asyncpg.Record:
        async with translated(), self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(INSERT_ROOM, workshop_id, name, kind, capacity, media, publishing)
            assert row is not None
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="room.create",
                target={"room_id": row["id"]},
                details={"name": name, "kind": kind, "capacity": capacity, "media": media, "publishing": publishing},
            )
        return row

    async def get_workshop_room(self, workshop_id: uuid.UUID, room_id: uuid.UUID) -> asyncpg.Record:
        row = await self.pool.fetchrow(SELECT_WORKSHOP_ROOM, room_id, workshop_id)
        if row is None:
            raise NotFound("room not found")
        return row

    async def update_room(
        self,
        workshop_id: uuid.UUID,
        room_id: uuid.UUID,
        changes: dict[str, Any],
        *,
        actor: Actor,
        present: Sequence[tuple[str, str | None]] = (),
    ) -> asyncpg.Record:
        """Change a room, with its audit entry (`room.lock`/`room.unlock` for a change of the lock alone, else
        `room.update`). Locking it admits `present` (participant id, device) to it, so that those already in are
        not newcomers when they come back."""
        async with (
            translated(),
            self._changing(room_id=room_id),
            self.pool.acquire() as conn,
            conn.transaction(),
        ):
            row = await conn.fetchrow(
                UPDATE_ROOM,
                room_id,
                workshop_id,
                changes.get("name"),
                changes.get("capacity"),
                changes.get("media"),
                changes.get("publishing"),
                changes.get("locked"),
            )
            if row is None:
                raise NotFound("room not found")
            # Media and publishing decide who may be seen and heard: they are in the changes like the rest.
            action = "room.update"
            if set(changes) == {"locked"}:
                action = "room.lock" if changes["locked"] else "room.unlock"
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action=action,
                target={"room_id": room_id},
                details={"changes": changes},
            )
            if changes.get("locked") and present:
                await conn.executemany(
                    ADMIT_PRESENT, [(workshop_id, uuid.UUID(pid), room_id, device, actor.id) for pid, device in present]
                )
        return row

    async def delete_room(self, workshop_id: uuid.UUID, room_id: uuid.UUID, *, actor: Actor) -> None:
        """Delete a breakout room; its assignees fall back to the plenary. The plenary cannot be deleted."""
        async with self._changing(), self.pool.acquire() as conn, conn.transaction():
            deleted = await conn.fetchval(DELETE_ROOM, room_id, workshop_id)
            if deleted is not None:
                await self.audit.append(
                    conn, workshop_id=workshop_id, actor=actor, action="room.delete", target={"room_id": room_id}
                )
        if deleted is None:
            room = await self.get_workshop_room(workshop_id, room_id)
            raise Conflict(f"the {room['kind']} room cannot be deleted")

    async def assigned_room(self, workshop_id: uuid.UUID, participant_id: uuid.UUID) -> asyncpg.Record:
        """The participant's assigned room, or the plenary."""
        row = await self.pool.fetchrow(SELECT_ASSIGNED_ROOM, workshop_id, participant_id)
        if row is None:
            raise NotFound("workshop not found")
        return row

    async def home_room(self, workshop_id: uuid.UUID, participant_id: uuid.UUID) -> asyncpg.Record:
        """Where the participant goes when breakouts close."""
        row = await self.pool.fetchrow(SELECT_HOME_ROOM, workshop_id, participant_id)
        if row is None:
            raise NotFound("workshop not found")
        return row

    async def get_plenary(self, workshop_id: uuid.UUID) -> asyncpg.Record:
        row = await self.pool.fetchrow(SELECT_PLENARY, workshop_id)
        if row is None:
            raise NotFound("workshop not found")
        return row

    # Participants --------------------------------------------------------------------------------
    async def create_participants(
        self, workshop_id: uuid.UUID, people: Sequence[dict[str, Any]], *, actor: Actor, imported: bool = False
    ) -> list[asyncpg.Record]:
        """Insert all or none, with one entry: `participant.create`, or `participant.import` for a roster."""
        rows = []
        async with translated(), self.pool.acquire() as conn, conn.transaction():
            await _check_pairs(conn, workshop_id, [_pair(p.get("interpreter")) for p in people])
            for p in people:
                row = await conn.fetchrow(
                    INSERT_PARTICIPANT,
                    workshop_id,
                    p["display_name"],
                    p["country"],
                    p["organisation"],
                    p["email"],
                    p["role"],
                    p.get("room_id"),
                    p.get("timezone"),
                    p.get("language"),
                    _pair(p.get("interpreter")),
                )
                rows.append(row)
            if imported:
                await self.audit.append(
                    conn,
                    workshop_id=workshop_id,
                    actor=actor,
                    action="participant.import",
                    details={"count": len(rows), "participants": [_audited_person(r) for r in rows]},
                )
            else:
                (only,) = rows
                await self.audit.append(
                    conn,
                    workshop_id=workshop_id,
                    actor=actor,
                    action="participant.create",
                    target={"participant_id": only["id"]},
                    details=_audited_person(only),
                )
        return rows

    async def list_participants(
        self, workshop_id: uuid.UUID, *, limit: int, after: PageKey | None
    ) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(LIST_PARTICIPANTS, workshop_id, *_page_args(after), limit))

    async def get_participant(self, workshop_id: uuid.UUID, participant_id: uuid.UUID) -> asyncpg.Record:
        row = await self.pool.fetchrow(SELECT_PARTICIPANT, participant_id, workshop_id)
        if row is None:
            raise NotFound("participant not found")
        return row

    async def taken_emails(self, workshop_id: uuid.UUID, emails: Sequence[str]) -> set[str]:
        """Which of these lower-cased e-mails already belong to a live participant of the workshop."""
        rows = await self.pool.fetch(SELECT_TAKEN_EMAILS, workshop_id, list(emails))
        return {r[0] for r in rows}

    async def participant_and_room(self, participant_id: uuid.UUID) -> asyncpg.Record | None:
        """A live participant with its current room (columns prefixed `r_`), from PostgreSQL (joins use
        server.directory, which keeps the answer in `joins`)."""
        return await self.pool.fetchrow(SELECT_PARTICIPANT_AND_ROOM, participant_id)

    async def interpretation(self, workshop_id: uuid.UUID) -> tuple[list[str], list[str]]:
        """The workshop's languages and the ids of its interpreters (docs/interpretation.md)."""
        row = await self.pool.fetchrow(SELECT_INTERPRETATION, workshop_id)
        if row is None:
            return [], []
        return list(row["languages"]), list(row["interpreters"])

    async def find_participant(self, participant_id: uuid.UUID) -> asyncpg.Record | None:
        """A live participant by id alone (for authentication)."""
        return await self.pool.fetchrow(SELECT_PARTICIPANT_ANY_WORKSHOP, participant_id)

    async def update_participant(
        self, workshop_id: uuid.UUID, participant_id: uuid.UUID, changes: dict[str, Any], *, actor: Actor
    ) -> asyncpg.Record:
        async with translated(), self._changing(participant_id), self.pool.acquire() as conn, conn.transaction():
            if "interpreter" in changes:
                await _check_pairs(conn, workshop_id, [_pair(changes["interpreter"])])
            row = await conn.fetchrow(
                UPDATE_PARTICIPANT,
                participant_id,
                workshop_id,
                changes.get("display_name"),
                changes.get("country"),
                changes.get("organisation"),
                "email" in changes,
                changes.get("email"),
                changes.get("role"),
                "room_id" in changes,
                changes.get("room_id"),
                "timezone" in changes,
                changes.get("timezone"),
                "language" in changes,
                changes.get("language"),
                "interpreter" in changes,
                _pair(changes.get("interpreter")),
            )
            if row is None:
                raise NotFound("participant not found")
            audited = {k: v for k, v in changes.items() if k != "email"}
            if "email" in changes:
                audited["email_changed"] = True
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="participant.update",
                target={"participant_id": participant_id},
                details={"changes": audited},
            )
        return row

    async def delete_participant(self, workshop_id: uuid.UUID, participant_id: uuid.UUID, *, actor: Actor) -> None:
        async with self._changing(participant_id), self.pool.acquire() as conn, conn.transaction():
            deleted = await conn.fetchval(DELETE_PARTICIPANT, participant_id, workshop_id)
            if deleted is None:
                raise NotFound("participant not found")
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="participant.delete",
                target={"participant_id": participant_id},
            )

    async def revoke_participant(
        self,
        workshop_id: uuid.UUID,
        participant_id: uuid.UUID,
        *,
        actor: Actor,
        action: str = "participant.revoke_tokens",
    ) -> asyncpg.Record:
        """Every join token of the participant stops working (a revocation, or a moderator's `participant.remove`),
        and their lobby admissions end: whoever holds the next link knocks again."""
        async with self._changing(participant_id), self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(REVOKE_PARTICIPANT, participant_id, workshop_id)
            if row is None:
                raise NotFound("participant not found")
            await conn.execute(END_ADMISSIONS, participant_id)
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action=action,
                target={"participant_id": participant_id},
                details={"token_generation": row["token_generation"]},
            )
        return row

    async def ban_participant(
        self, workshop_id: uuid.UUID, participant_id: uuid.UUID, *, reason: str | None, actor: Actor
    ) -> asyncpg.Record:
        """Ban (and revoke every token of) a participant; ends their admissions, withdraws their pending knock;
        `participant.ban` in the audit log."""
        async with self._changing(participant_id), self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(BAN_PARTICIPANT, participant_id, workshop_id, actor.id, reason)
            if row is None:
                raise NotFound("participant not found")
            await conn.execute(END_ADMISSIONS, participant_id)
            await conn.execute(DENY_PENDING_OF, participant_id, actor.id)
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="participant.ban",
                target={"participant_id": participant_id},
                details={"reason": reason, "token_generation": row["token_generation"]},
            )
        return row

    async def unban_participant(
        self, workshop_id: uuid.UUID, participant_id: uuid.UUID, *, actor: Actor
    ) -> asyncpg.Record:
        """Lift a ban (old tokens stay revoked): `participant.unban` in the audit log."""
        async with self._changing(participant_id), self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(UNBAN_PARTICIPANT, participant_id, workshop_id)
            if row is None:
                raise NotFound("participant not found")
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="participant.unban",
                target={"participant_id": participant_id},
            )
        return row

    async def list_bans(self, workshop_id: uuid.UUID, *, limit: int, after: PageKey | None) -> list[asyncpg.Record]:
        """Banned participants, in roster order (as the roster pages)."""
        return list(await self.pool.fetch(LIST_BANS, workshop_id, *_page_args(after), limit))

    # Secrets -------------------------------------------------------------------------------------
    async def get_secret(self, name: str) -> str | None:
        value: str | None = await self.pool.fetchval(SELECT_SECRET, name)
        return value

    async def put_secret_if_absent(self, name: str, value: str, *, audited: str | None = None) -> bool:
        """Store `value` unless another process stored one first; True when ours won. With `audited` (an action),
        the server's chain records that the secret was made (never the secret)."""
        async with self.pool.acquire() as conn, conn.transaction():
            result: str = await conn.execute(INSERT_SECRET, name, value)
            won = result.endswith(" 1")
            if won and audited is not None:
                await self.audit.append(conn, workshop_id=None, actor=SYSTEM, action=audited, details={"secret": name})
        return won
