"""SQL of invitations: the outbox, the reminder setting, and what a calendar file is made of."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from server.store import PageKey
from signaling.audit import Actor
from signaling.audit_store import AuditLog
from signaling.errors import NotFound

# Who an invitation can go to: on the roster, not banned, with an e-mail address.
REACHABLE = "p.deleted_at IS NULL AND p.banned_at IS NULL AND p.email IS NOT NULL"

# `all`: everyone reachable not yet sent an invitation; a list: those listed, sent or not (a resend).
QUEUE = f"""
INSERT INTO invitations AS i (workshop_id, participant_id, kind, state, next_attempt_at, created_at, updated_at)
SELECT p.workshop_id, p.id, $3, 'queued', $4, clock_timestamp(), clock_timestamp() FROM participants p
WHERE p.workshop_id = $1 AND {REACHABLE} AND ($2::uuid[] IS NULL OR p.id = ANY($2::uuid[]))
ON CONFLICT (participant_id, kind) DO UPDATE SET
    state = 'queued', attempts = 0, next_attempt_at = $4, claimed_until = NULL, last_error = NULL,
    updated_at = clock_timestamp()
WHERE $2::uuid[] IS NOT NULL OR i.state <> 'sent'
RETURNING i.participant_id
"""
SELECT_LISTED = "SELECT id FROM participants WHERE workshop_id = $1 AND deleted_at IS NULL AND id = ANY($2::uuid[])"

LIST = """
SELECT p.id, p.created_at, p.display_name, p.email IS NOT NULL AS has_email, p.language, p.banned_at IS NOT NULL
       AS banned, {columns}
FROM participants p
LEFT JOIN invitations i ON i.participant_id = p.id AND i.kind = 'invitation'
LEFT JOIN invitations r ON r.participant_id = p.id AND r.kind = 'reminder'
WHERE p.workshop_id = $1 AND p.deleted_at IS NULL AND ($2::timestamptz IS NULL OR (p.created_at, p.id) > ($2, $3::uuid))
ORDER BY p.created_at, p.id LIMIT $4
""".replace(
    "{columns}",
    """i.state, i.attempts, i.last_attempt_at, i.last_error, i.sent_at, i.next_attempt_at,
       r.state AS reminder_state, r.sent_at AS reminder_sent_at, r.last_error AS reminder_error""",
)

# Claim due rows: a lease, so that a second sender (or this one after a restart) leaves them alone meanwhile.
CLAIM = """
UPDATE invitations SET claimed_until = $2, attempts = attempts + 1, last_attempt_at = $1, updated_at = clock_timestamp()
WHERE id IN (
    SELECT id FROM invitations
    WHERE state = 'queued' AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)
    ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING id, workshop_id, participant_id, kind, attempts, claimed_until
"""
MARK_SENT = """
UPDATE invitations SET state = 'sent', sent_at = $2, claimed_until = NULL, last_error = NULL,
    updated_at = clock_timestamp()
WHERE id = $1 AND state = 'queued' AND claimed_until = $3
"""
MARK_FAILED = """
UPDATE invitations SET state = 'failed', last_error = $2, claimed_until = NULL, updated_at = clock_timestamp()
WHERE id = $1 AND state = 'queued' AND claimed_until = $3
"""
MARK_RETRY = """
UPDATE invitations SET next_attempt_at = $2, last_error = $3, claimed_until = NULL, updated_at = clock_timestamp()
WHERE id = $1 AND state = 'queued' AND claimed_until = $4
"""

SELECT_PARTICIPANT = """
SELECT id, workshop_id, display_name, email, role, token_generation, banned_at, language, timezone
FROM participants WHERE id = $1 AND workshop_id = $2 AND deleted_at IS NULL
"""
SELECT_WORKSHOP = """
SELECT id, title, description, timezone, starts_at, ends_at, created_at, updated_at FROM workshops WHERE id = $1
"""

SELECT_SETTINGS = """
SELECT reminder_minutes_before, reminders_queued_at FROM invitation_settings WHERE workshop_id = $1
"""
# A changed reminder time may be due again (each participant still gets one reminder: see QUEUE's conflict key).
PUT_SETTINGS = """
INSERT INTO invitation_settings AS s (workshop_id, reminder_minutes_before) VALUES ($1, $2)
ON CONFLICT (workshop_id) DO UPDATE SET reminder_minutes_before = $2,
    reminders_queued_at = CASE WHEN s.reminder_minutes_before IS DISTINCT FROM $2 THEN NULL
                               ELSE s.reminders_queued_at END,
    updated_at = now()
RETURNING reminder_minutes_before, reminders_queued_at
"""
# The first session: the workshop's start (or its agenda's first session). Claimed once by this conditional UPDATE.
DUE_REMINDERS = """
UPDATE invitation_settings s SET reminders_queued_at = $1
FROM workshops w
WHERE w.id = s.workshop_id AND s.reminders_queued_at IS NULL AND s.reminder_minutes_before IS NOT NULL
  AND w.status IN ('scheduled', 'live')
  AND ({first_start}) > $1
  AND ({first_start}) - make_interval(mins => s.reminder_minutes_before) <= $1
RETURNING s.workshop_id
"""
# Breaks are not events of the calendar file, nor the "first session" of a reminder.
FIRST_START = """COALESCE(
    (SELECT min(a.starts_at) FROM agenda_sessions a WHERE a.workshop_id = w.id AND a.kind <> 'break'), w.starts_at)"""
# SEQUENCE of the calendar file: how many changes the workshop and its agenda have had, from the audit log (append
# only, so it never goes down; a deleted session counts too, which no updated_at could show).
CALENDAR_CHANGES = """
SELECT count(*) FROM audit_entries
WHERE workshop_id = $1 AND action IN ('workshop.update', 'agenda.create', 'agenda.update', 'agenda.delete')
"""
SELECT_SESSIONS = """
SELECT id, title, description, presenters, starts_at, ends_at, updated_at FROM agenda_sessions
WHERE workshop_id = $1 AND kind <> 'break' ORDER BY starts_at, id
"""
QUEUE_REMINDERS = f"""
INSERT INTO invitations (workshop_id, participant_id, kind, state, next_attempt_at, created_at, updated_at)
SELECT p.workshop_id, p.id, 'reminder', 'queued', $2, clock_timestamp(), clock_timestamp() FROM participants p
WHERE p.workshop_id = $1 AND {REACHABLE}
ON CONFLICT (participant_id, kind) DO NOTHING
"""


class InvitationStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditLog) -> None:
        self.pool = pool
        self.audit = audit

    async def queue(
        self,
        workshop_id: uuid.UUID,
        participant_ids: Sequence[uuid.UUID] | None,
        *,
        now: datetime,
        actor: Actor,
        action: str,
    ) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        """Queue invitations and write `action`'s entry in the same transaction; (queued, skipped) participant ids.

        Skipped: listed but without an e-mail address or banned. An unknown id is a NotFound."""
        async with self.pool.acquire() as conn, conn.transaction():
            if participant_ids is not None:
                found = {r["id"] for r in await conn.fetch(SELECT_LISTED, workshop_id, list(participant_ids))}
                if missing := [str(p) for p in participant_ids if p not in found]:
                    raise NotFound("participant not found", details={"participant_ids": missing})
            rows = await conn.fetch(
                QUEUE, workshop_id, list(participant_ids) if participant_ids is not None else None, "invitation", now
            )
            queued = [r["participant_id"] for r in rows]
            skipped = [p for p in participant_ids or () if p not in set(queued)]
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action=action,
                target={"participant_ids": queued},
                details={"all": participant_ids is None, "queued": len(queued), "skipped": skipped},
            )
        return queued, skipped

    async def statuses(self, workshop_id: uuid.UUID, *, limit: int, after: PageKey | None) -> list[asyncpg.Record]:
        """Everyone on the roster with their invitation and reminder rows (if any), in roster order."""
        key = (after.created_at, after.id) if after else (None, None)
        return list(await self.pool.fetch(LIST, workshop_id, *key, limit))

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(CLAIM, now, lease_until, limit))

    async def sent(self, row_id: uuid.UUID, now: datetime, lease: datetime) -> None:
        await self.pool.execute(MARK_SENT, row_id, now, lease)

    async def failed(self, row_id: uuid.UUID, reason: str, lease: datetime) -> None:
        await self.pool.execute(MARK_FAILED, row_id, reason, lease)

    async def retry(self, row_id: uuid.UUID, at: datetime, reason: str, lease: datetime) -> None:
        await self.pool.execute(MARK_RETRY, row_id, at, reason, lease)

    async def participant(self, workshop_id: uuid.UUID, participant_id: uuid.UUID) -> asyncpg.Record:
        row = await self.pool.fetchrow(SELECT_PARTICIPANT, participant_id, workshop_id)
        if row is None:
            raise NotFound("participant not found")
        return row

    async def workshop(self, workshop_id: uuid.UUID) -> asyncpg.Record:
        row = await self.pool.fetchrow(SELECT_WORKSHOP, workshop_id)
        if row is None:
            raise NotFound("workshop not found")
        return row

    async def sequence(self, workshop_id: uuid.UUID) -> int:
        """How many times what the calendar file shows has changed: its SEQUENCE."""
        return int(await self.pool.fetchval(CALENDAR_CHANGES, workshop_id))

    async def sessions(self, workshop: Any) -> tuple[list[dict[str, Any]], datetime]:
        """The events of the calendar file and the moment of the last change to them: the agenda's sessions but
        its breaks, or the workshop itself when it has none."""
        rows = await self.pool.fetch(SELECT_SESSIONS, workshop["id"])
        if rows:
            return (
                [
                    {
                        "id": r["id"],
                        "title": r["title"],
                        "description": "\n".join(x for x in (r["description"], r["presenters"]) if x),
                        "starts_at": r["starts_at"],
                        "ends_at": r["ends_at"],
                    }
                    for r in rows
                ],
                max([workshop["updated_at"], *(r["updated_at"] for r in rows)]),
            )
        return (
            [
                {
                    "id": workshop["id"],
                    "title": workshop["title"],
                    "description": workshop["description"],
                    "starts_at": workshop["starts_at"],
                    "ends_at": workshop["ends_at"],
                }
            ],
            workshop["updated_at"],
        )

    async def settings(self, workshop_id: uuid.UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow(SELECT_SETTINGS, workshop_id)

    async def put_settings(self, workshop_id: uuid.UUID, minutes: int | None, *, actor: Actor) -> asyncpg.Record:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(PUT_SETTINGS, workshop_id, minutes)
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=actor,
                action="invitation.settings",
                target={"workshop_id": workshop_id},
                details={"reminder_minutes_before": minutes},
            )
        assert row is not None
        return row

    async def queue_due_reminders(self, now: datetime) -> list[uuid.UUID]:
        """Queue the reminders of every workshop whose reminder time has come, once (restart-safe)."""
        async with self.pool.acquire() as conn, conn.transaction():
            due = [r["workshop_id"] for r in await conn.fetch(DUE_REMINDERS.format(first_start=FIRST_START), now)]
            for workshop_id in due:
                await conn.execute(QUEUE_REMINDERS, workshop_id, now)
        return due
