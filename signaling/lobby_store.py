"""SQL for the lobby: knocks, admissions and trusted devices (signaling.lobby keeps the live picture)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from signaling.audit import Actor
from signaling.audit_store import AuditLog

# What a fresh join needs to decide whether it knocks, in one round trip.
GATE_FACTS = """
SELECT w.id AS workshop_id, w.title, w.starts_at, w.ends_at, w.timezone,
    EXISTS (SELECT 1 FROM participant_devices d WHERE d.participant_id = $1 AND d.device = $2) AS trusted,
    (EXISTS (SELECT 1 FROM participant_devices d WHERE d.participant_id = $1)
     OR EXISTS (SELECT 1 FROM attendance_events a WHERE a.participant_id = $1 AND a.event = 'join')) AS used_before,
    EXISTS (SELECT 1 FROM lobby_knocks k
            WHERE k.participant_id = $1 AND k.state = 'admitted' AND k.ended_at IS NULL
              AND k.device IS NOT DISTINCT FROM $2 AND ($3::uuid IS NULL OR k.room_id = $3)) AS admitted
FROM participants p JOIN workshops w ON w.id = p.workshop_id
WHERE p.id = $1
"""
KNOCK_COLUMNS = """k.id, k.workshop_id, k.participant_id, k.room_id, k.device, k.reason, k.link_used_elsewhere,
    k.state, k.knocked_at"""
# One pending knock per participant: knocking again (a reconnect, a second tab) finds the same knock, with its
# id and waiting time; what the new knock says about the device, room and reason replaces the old.
UPSERT_KNOCK = f"""
INSERT INTO lobby_knocks AS k (workshop_id, participant_id, room_id, device, reason, link_used_elsewhere)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (participant_id) WHERE state = 'pending' DO UPDATE SET
    room_id = EXCLUDED.room_id, device = EXCLUDED.device, reason = EXCLUDED.reason,
    link_used_elsewhere = k.link_used_elsewhere OR EXCLUDED.link_used_elsewhere
RETURNING {KNOCK_COLUMNS}
"""
PENDING_KNOCKS = f"""
SELECT {KNOCK_COLUMNS}, p.display_name, p.country, p.organisation, p.role, r.name AS room_name
FROM lobby_knocks k JOIN participants p ON p.id = k.participant_id LEFT JOIN rooms r ON r.id = k.room_id
WHERE k.state = 'pending' ORDER BY k.knocked_at, k.id
"""
PENDING_KNOCKS_OF = f"""
SELECT {KNOCK_COLUMNS}, p.display_name, p.country, p.organisation, p.role, r.name AS room_name
FROM lobby_knocks k JOIN participants p ON p.id = k.participant_id LEFT JOIN rooms r ON r.id = k.room_id
WHERE k.state = 'pending' AND k.workshop_id = $1 ORDER BY k.knocked_at, k.id
"""
ADMIT_KNOCKS = """
UPDATE lobby_knocks SET state = 'admitted', decided_at = now(), decided_by = $3
WHERE id = ANY($1::uuid[]) AND workshop_id = $2 AND state = 'pending' RETURNING id, participant_id, device
"""
DENY_KNOCK = """
UPDATE lobby_knocks SET state = 'denied', decided_at = now(), decided_by = $3, message = $4
WHERE id = $1 AND workshop_id = $2 AND state = 'pending' RETURNING participant_id
"""
LEFT_KNOCK = "UPDATE lobby_knocks SET state = 'left', decided_at = now() WHERE id = $1 AND state = 'pending'"
TRUST_DEVICE = """
INSERT INTO participant_devices (participant_id, device) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""
END_ADMISSIONS = """
UPDATE lobby_knocks SET ended_at = now() WHERE participant_id = $1 AND state = 'admitted' AND ended_at IS NULL
"""


@dataclass(frozen=True)
class GateFacts:
    workshop: Mapping[str, Any]
    trusted: bool  # this device entered as this participant before
    used_before: bool  # the join link was used before (any device, or a client that sends none)
    admitted: bool  # an admission of this participant on this device (for this room, when asked) still holds


@dataclass(frozen=True)
class KnockRow:
    id: str
    participant_id: str
    room_id: str
    knocked_at: datetime
    link_used_elsewhere: bool


@dataclass(frozen=True)
class ActorRef:
    """Who decided, as the audit log records it."""

    id: str | None
    role: str
    display_name: str = ""

    def as_actor(self) -> Actor:
        return Actor(id=_uuid(self.id), role=self.role, display_name=self.display_name)


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None


class PgLobbyStore:
    """Knocks and admissions in PostgreSQL. A decision is an audit entry in the transaction that makes it."""

    def __init__(self, pool: asyncpg.Pool, *, audit: AuditLog) -> None:
        self.pool = pool
        self.audit = audit

    async def gate_facts(self, participant_id: str, device: str | None, room_id: str | None) -> GateFacts:
        row = await self.pool.fetchrow(GATE_FACTS, uuid.UUID(participant_id), device, _uuid(room_id))
        assert row is not None, "the participant was read a moment ago"
        return GateFacts(workshop=row, trusted=row["trusted"], used_before=row["used_before"], admitted=row["admitted"])

    async def knock(
        self,
        *,
        workshop_id: str,
        participant_id: str,
        room_id: str,
        device: str | None,
        reason: str,
        link_used_elsewhere: bool,
    ) -> KnockRow:
        row = await self.pool.fetchrow(
            UPSERT_KNOCK,
            uuid.UUID(workshop_id),
            uuid.UUID(participant_id),
            uuid.UUID(room_id),
            device,
            reason,
            link_used_elsewhere,
        )
        assert row is not None
        return _knock_row(row)

    async def pending(self) -> list[Mapping[str, Any]]:
        """Every pending knock (a restarted server takes them up again)."""
        return list(await self.pool.fetch(PENDING_KNOCKS))

    async def pending_of(self, workshop_id: str) -> list[Mapping[str, Any]]:
        """One workshop's pending knocks (its new owner takes them up)."""
        return list(await self.pool.fetch(PENDING_KNOCKS_OF, uuid.UUID(workshop_id)))

    async def admit(
        self, workshop_id: str, knock_ids: Sequence[str], actor: ActorRef, selector: Mapping[str, Any]
    ) -> list[str]:
        """Admit the knocks still pending among `knock_ids`; their devices become trusted. The admitted ids."""
        wid = uuid.UUID(workshop_id)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(ADMIT_KNOCKS, [uuid.UUID(k) for k in knock_ids], wid, _uuid(actor.id))
            devices = [(r["participant_id"], r["device"]) for r in rows if r["device"] is not None]
            if devices:
                await conn.executemany(TRUST_DEVICE, devices)
            if rows:
                await self.audit.append(
                    conn,
                    workshop_id=wid,
                    actor=actor.as_actor(),
                    action="lobby.admit",
                    target={"participant_ids": [str(r["participant_id"]) for r in rows]},
                    details={**selector, "knock_ids": [str(r["id"]) for r in rows]},
                )
        return [str(r["id"]) for r in rows]

    async def deny(self, workshop_id: str, knock_id: str, actor: ActorRef, message: str | None) -> bool:
        wid = uuid.UUID(workshop_id)
        async with self.pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval(DENY_KNOCK, uuid.UUID(knock_id), wid, _uuid(actor.id), message)
            if found is None:
                return False
            await self.audit.append(
                conn,
                workshop_id=wid,
                actor=actor.as_actor(),
                action="lobby.deny",
                target={"knock_id": knock_id, "participant_id": str(found)},
                details={"message": message},
            )
        return True

    async def left(self, knock_id: str) -> None:
        await self.pool.execute(LEFT_KNOCK, uuid.UUID(knock_id))

    async def trust_device(self, participant_id: str, device: str) -> None:
        await self.pool.execute(TRUST_DEVICE, uuid.UUID(participant_id), device)

    async def end_admissions(self, participant_id: str) -> None:
        await self.pool.execute(END_ADMISSIONS, uuid.UUID(participant_id))


def _knock_row(row: Mapping[str, Any]) -> KnockRow:
    return KnockRow(
        id=str(row["id"]),
        participant_id=str(row["participant_id"]),
        room_id=str(row["room_id"]),
        knocked_at=row["knocked_at"],
        link_used_elsewhere=row["link_used_elsewhere"],
    )
