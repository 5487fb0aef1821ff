"""PostgreSQL for the audit log: append an entry inside the transaction of the change it records; read, export
and verify the chains.

Chains: one per workshop (its id) and one for server-wide events (`server`). Appends to one chain are serialised by
a transaction-scoped advisory lock on the chain, taken just before the head is read: two concurrent writers queue
instead of both reading the same head and forking the chain, and the lock is released when the change commits or
rolls back, so a rolled-back change leaves neither its entry nor a gap. Appends need READ COMMITTED (the default):
the head is read after the lock, in a statement of its own, so it sees the entry the previous holder committed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from signaling.audit import (
    GENESIS_HASH,
    Actor,
    ChainCheck,
    Change,
    Entry,
    canonical_text,
    chain_of,
    digest_of,
    entry_form,
    link_hash,
)

# pg_advisory_xact_lock(int, int): the first key is Roundtable's audit namespace ("Audi"), the second the chain.
LOCK_NAMESPACE = 0x41756469
LOCK_CHAIN = "SELECT pg_advisory_xact_lock($1, hashtext($2))"
HEAD = """
SELECT clock_timestamp() AS now, h.seq, h.hash
FROM (SELECT 1) one LEFT JOIN LATERAL (
    SELECT seq, hash FROM audit_entries WHERE chain = $1 ORDER BY seq DESC LIMIT 1
) h ON true
"""
INSERT_ENTRY = """
INSERT INTO audit_entries (chain, seq, workshop_id, at, actor_id, actor_role, actor_name, action, target, details,
    prev_hash, entry_digest, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11, $12, $13) RETURNING id
"""
ENTRY_COLUMNS = """id, chain, seq, workshop_id, at, actor_id, actor_role, actor_name, action, target::text AS target,
    details::text AS details, prev_hash, entry_digest, hash, redacted_at"""
PAGE = f"""
SELECT {ENTRY_COLUMNS} FROM audit_entries
WHERE chain = $1
  AND ($2::bigint IS NULL OR id > $2)
  AND ($3::uuid IS NULL OR actor_id = $3)
  AND ($4::text IS NULL OR action = $4 OR action LIKE $4 || '.%')
  AND ($5::timestamptz IS NULL OR at >= $5)
  AND ($6::timestamptz IS NULL OR at < $6)
  AND ($7::text IS NULL OR actor_role = $7)
  AND ($8::text[] IS NULL OR action = ANY($8) OR split_part(action, '.', 1) = ANY($8))
ORDER BY id LIMIT $9
"""
CHAIN_ENTRIES = f"SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE chain = $1 ORDER BY seq"
CHAINS = "SELECT DISTINCT chain FROM audit_entries ORDER BY chain"
HEADS = """
SELECT DISTINCT ON (chain) chain, seq, hash FROM audit_entries ORDER BY chain, seq DESC
"""
CHAIN_HEAD = "SELECT seq, hash FROM audit_entries WHERE chain = $1 ORDER BY seq DESC LIMIT 1"
REDACT = "SELECT audit_redact($1, $2)"

# A hook that runs inside `append`, after the change's own statements and before its entry is written: the seam
# tests use to fail a change between the two (both must then be absent).
BeforeWrite = Callable[[Change], None]


def entry_of(row: Mapping[str, Any]) -> Entry:
    return Entry(
        id=row["id"],
        chain=row["chain"],
        seq=row["seq"],
        workshop_id=row["workshop_id"],
        at=row["at"],
        actor=Actor(id=row["actor_id"], role=row["actor_role"], display_name=row["actor_name"]),
        action=row["action"],
        target=json.loads(row["target"]),
        details=json.loads(row["details"]),
        prev_hash=row["prev_hash"],
        entry_digest=row["entry_digest"],
        hash=row["hash"],
        redacted_at=row["redacted_at"],
    )


@dataclass(frozen=True)
class EntryFilter:
    actor_id: uuid.UUID | None = None
    actor_role: str | None = None
    action: str | None = None  # an action ("participant.mute") or a family ("participant")
    since: datetime | None = None
    until: datetime | None = None
    kinds: tuple[str, ...] | None = None  # actions or families, any of them


class AuditLog:
    """Appends entries in the caller's transaction and reads them back. One per application."""

    def __init__(self, *, before_write: BeforeWrite | None = None) -> None:
        self.before_write = before_write

    async def append(
        self,
        conn: asyncpg.Connection,
        *,
        workshop_id: uuid.UUID | None,
        actor: Actor,
        action: str,
        target: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Entry:
        """Append one entry to the workshop's chain (the server's when `workshop_id` is None), in the open
        transaction of `conn`: it commits or rolls back with the change it records."""
        change = Change(workshop_id=workshop_id, actor=actor, action=action, target=target or {}, details=details or {})
        return await self.write(conn, change)

    async def write(self, conn: asyncpg.Connection, change: Change) -> Entry:
        """`append` for a change prepared elsewhere (a store handed the `Change` by its caller)."""
        if not conn.is_in_transaction():
            raise RuntimeError("audit entries are written inside the transaction of the change they record")
        # Refuse what cannot be encoded before anything is locked.
        target, details = canonical_text(change.target), canonical_text(change.details)
        if self.before_write is not None:
            self.before_write(change)
        chain = chain_of(change.workshop_id)
        await conn.execute(LOCK_CHAIN, LOCK_NAMESPACE, chain)
        head = await conn.fetchrow(HEAD, chain)
        assert head is not None
        seq = (head["seq"] or 0) + 1
        prev_hash = head["hash"] or GENESIS_HASH
        at: datetime = head["now"]
        digest = digest_of(
            entry_form(
                chain=chain,
                seq=seq,
                workshop_id=change.workshop_id,
                at=at,
                actor=change.actor,
                action=change.action,
                target=change.target,
                details=change.details,
            )
        )
        hash_ = link_hash(prev_hash, digest)
        entry_id = await conn.fetchval(
            INSERT_ENTRY,
            chain,
            seq,
            change.workshop_id,
            at,
            change.actor.id,
            change.actor.role,
            change.actor.display_name,
            change.action,
            target,
            details,
            prev_hash,
            digest,
            hash_,
        )
        return Entry(
            id=entry_id,
            chain=chain,
            seq=seq,
            workshop_id=change.workshop_id,
            at=at,
            actor=change.actor,
            action=change.action,
            target=json.loads(target),
            details=json.loads(details),
            prev_hash=prev_hash,
            entry_digest=digest,
            hash=hash_,
        )

    async def write_alone(self, pool: asyncpg.Pool, change: Change) -> Entry:
        """An entry for a change that lives outside PostgreSQL (a mute, a spotlight): its own transaction, written
        before the change is applied, so that no applied change goes unrecorded."""
        async with pool.acquire() as conn, conn.transaction():
            return await self.write(conn, change)

    # Reading -------------------------------------------------------------------------------------

    @staticmethod
    async def page(
        pool: asyncpg.Pool, chain: str, *, after_id: int | None, limit: int, where: EntryFilter = EntryFilter()
    ) -> list[Entry]:
        rows = await pool.fetch(
            PAGE,
            chain,
            after_id,
            where.actor_id,
            where.action,
            where.since,
            where.until,
            where.actor_role,
            list(where.kinds) if where.kinds is not None else None,
            limit,
        )
        return [entry_of(r) for r in rows]

    @staticmethod
    async def chain_entries(conn: asyncpg.Connection, chain: str) -> AsyncIterator[Entry]:
        """Every entry of a chain in order, streamed (call inside a transaction)."""
        async for row in conn.cursor(CHAIN_ENTRIES, chain, prefetch=500):
            yield entry_of(row)

    @staticmethod
    async def chains(pool: asyncpg.Pool) -> list[str]:
        return [r["chain"] for r in await pool.fetch(CHAINS)]

    @staticmethod
    async def heads(pool: asyncpg.Pool | asyncpg.Connection) -> list[tuple[str, int, str]]:
        return [(r["chain"], r["seq"], r["hash"]) for r in await pool.fetch(HEADS)]

    @staticmethod
    async def head(pool: asyncpg.Pool | asyncpg.Connection, chain: str) -> tuple[int, str] | None:
        row = await pool.fetchrow(CHAIN_HEAD, chain)
        return (row["seq"], row["hash"]) if row else None

    async def verify_chain(
        self, pool: asyncpg.Pool, chain: str, anchored: Mapping[int, str] | None = None
    ) -> ChainCheck:
        """Recompute a chain from its first entry; the check names the first entry that does not match."""
        check = ChainCheck(chain, anchored=anchored or {})
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            async for entry in self.chain_entries(conn, chain):
                if not check.feed(entry):
                    break
        return check.finish()

    @staticmethod
    async def redact(conn: asyncpg.Connection, chain: str, upto_seq: int) -> int:
        """Erase the personal content of a chain's entries up to `upto_seq` (retention); their hashes stay."""
        count: int = await conn.fetchval(REDACT, chain, upto_seq)
        return count


class PgAuditTrail:
    """The signalling service's `AuditTrail`: each live action's entry in a transaction of its own."""

    def __init__(self, pool: asyncpg.Pool, audit: AuditLog) -> None:
        self.pool = pool
        self.audit = audit

    async def record(self, change: Change) -> None:
        await self.audit.write_alone(self.pool, change)
