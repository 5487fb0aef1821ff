"""PostgreSQL reads and writes of the workshop's record: visits, consent evidence, certificates."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from server.attendance import Person, Visit
from signaling.audit import Actor
from signaling.audit_store import AuditLog
from signaling.errors import NotFound

# Certificate codes: 20 characters of the RFC 4648 base32 alphabet, 100 bits from the OS's CSPRNG.
CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
CODE_LENGTH = 20

# Everyone on the roster, and anyone removed from it who attended.
PEOPLE = """
SELECT id, display_name, country, organisation, role, deleted_at IS NULL AS on_roster FROM participants p
WHERE workshop_id = $1
  AND (deleted_at IS NULL OR EXISTS (SELECT 1 FROM visits v WHERE v.workshop_id = $1 AND v.participant_id = p.id))
ORDER BY country, organisation, display_name, id
"""
VISITS = """
SELECT participant_id, room_id, room_name, started_at, ended_at, ended_how, drops FROM visits
WHERE workshop_id = $1 ORDER BY started_at, id
"""
OPEN_VISITS = "SELECT count(*) FROM visits WHERE ended_at IS NULL AND ($1::uuid IS NULL OR workshop_id = $1)"
# Who was in the recorded room while it recorded: they were told (recording_started, or `recording` in welcome).
VISITS_DURING = """
SELECT participant_id, started_at, ended_at, ended_how FROM visits
WHERE room_id = $1 AND started_at <= $3 AND (ended_at IS NULL OR ended_at >= $2)
ORDER BY started_at, participant_id
"""
CONSENT_LEDGER = """
SELECT id, participant_id, granted, at, connection_id FROM recording_consents WHERE recording_id = $1 ORDER BY id
"""
PEOPLE_BY_ID = """
SELECT id, display_name, country, organisation, role, deleted_at IS NULL AS on_roster FROM participants
WHERE id = ANY($1::uuid[])
"""
INSERT_CERTIFICATE = """
INSERT INTO certificates (code, workshop_id, participant_id, display_name, organisation, country, workshop_title,
    timezone, starts_at, ends_at, seconds_present, min_share, issued_at, issued_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (workshop_id, participant_id) DO NOTHING
RETURNING *
"""
CERTIFICATES = "SELECT * FROM certificates WHERE workshop_id = $1 ORDER BY country, organisation, display_name, code"
CERTIFICATE_OF = "SELECT * FROM certificates WHERE workshop_id = $1 AND participant_id = $2"
CERTIFICATE = "SELECT * FROM certificates WHERE code = $1"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(raw: str) -> str | None:
    """A code as people type it (any case, with dashes or spaces between groups), or None if it cannot be one."""
    code = "".join(ch for ch in raw.upper() if ch not in "- ")
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


@dataclass(frozen=True)
class CertificateDraft:
    participant_id: uuid.UUID
    display_name: str
    organisation: str
    country: str
    seconds_present: int


class RecordsStore:
    def __init__(self, pool: asyncpg.Pool, *, audit: AuditLog) -> None:
        self.audit = audit
        self.pool = pool

    # Attendance
    async def people(self, workshop_id: uuid.UUID) -> list[Person]:
        return [
            Person(
                id=r["id"],
                display_name=r["display_name"],
                country=r["country"],
                organisation=r["organisation"],
                role=r["role"],
                on_roster=r["on_roster"],
            )
            for r in await self.pool.fetch(PEOPLE, workshop_id)
        ]

    async def people_by_id(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Person]:
        rows = await self.pool.fetch(PEOPLE_BY_ID, list(ids))
        return {
            r["id"]: Person(
                id=r["id"],
                display_name=r["display_name"],
                country=r["country"],
                organisation=r["organisation"],
                role=r["role"],
                on_roster=r["on_roster"],
            )
            for r in rows
        }

    async def visits(self, workshop_id: uuid.UUID) -> list[Visit]:
        return [Visit(**dict(r)) for r in await self.pool.fetch(VISITS, workshop_id)]

    async def open_visits(self, workshop_id: uuid.UUID | None = None) -> int:
        count: int = await self.pool.fetchval(OPEN_VISITS, workshop_id)
        return count

    # Consent evidence
    async def visits_during(self, room_id: uuid.UUID, start: datetime, end: datetime) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(VISITS_DURING, room_id, start, end))

    async def consent_ledger(self, recording_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(CONSENT_LEDGER, recording_id))

    # Certificates
    async def issue_certificates(
        self,
        workshop: asyncpg.Record,
        drafts: Sequence[CertificateDraft],
        *,
        min_share: float,
        issued_at: datetime,
        issued_by: str,
        actor: Actor,
    ) -> list[asyncpg.Record]:
        """Issue one certificate to each draft's person who has none yet for this workshop, in one transaction
        (all or none) with its audit entry. Returns the new ones; who already has one keeps it, as it stands."""
        issued = []
        async with self.pool.acquire() as conn, conn.transaction():
            for d in drafts:
                row = await conn.fetchrow(
                    INSERT_CERTIFICATE,
                    new_code(),
                    workshop["id"],
                    d.participant_id,
                    d.display_name,
                    d.organisation,
                    d.country,
                    workshop["title"],
                    workshop["timezone"],
                    workshop["starts_at"],
                    workshop["ends_at"],
                    d.seconds_present,
                    min_share,
                    issued_at,
                    issued_by,
                )
                if row is not None:
                    issued.append(row)
            await self.audit.append(
                conn,
                workshop_id=workshop["id"],
                actor=actor,
                action="certificates.issue",
                target={"workshop_id": str(workshop["id"])},
                details={
                    # A share as a whole percentage: the canonical encoding of an entry holds no floats.
                    "min_share_percent": round(min_share * 100),
                    "issued": [str(r["participant_id"]) for r in issued],
                },
            )
        return issued

    async def certificates(self, workshop_id: uuid.UUID) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(CERTIFICATES, workshop_id))

    async def certificate_of(self, workshop_id: uuid.UUID, participant_id: uuid.UUID) -> asyncpg.Record:
        row = await self.pool.fetchrow(CERTIFICATE_OF, workshop_id, participant_id)
        if row is None:
            raise NotFound("no certificate for this participant")
        return row

    async def certificate(self, code: str) -> Any:
        return await self.pool.fetchrow(CERTIFICATE, code)
