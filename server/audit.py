"""The audit log's server side: signed anchors, verification of every chain, export, and records retention.

An anchor is a small JSON document: the head (seq, hash) of chains at a moment, signed with the server's Ed25519
key (kept in `server_secrets`). Whoever keeps a copy can later prove that the log up to those heads was not
rewritten: `python -m server audit verify --anchor FILE`, or with openssl alone (docs/records.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from signaling.audit import SERVER_CHAIN, SYSTEM, Actor, ChainCheck, canonical_bytes, chain_of, format_time
from signaling.audit_store import AuditLog

log = logging.getLogger(__name__)

ANCHOR_FORMAT = "roundtable-audit-anchor/1"
ANCHOR_KEY_SECRET = "audit_anchor_ed25519"
SELECT_SECRET = "SELECT value FROM server_secrets WHERE name = $1"
INSERT_SECRET = "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
INSERT_ANCHOR = "INSERT INTO audit_anchors (created_at, document) VALUES ($1, $2) RETURNING id"
LATEST_ANCHOR = "SELECT document FROM audit_anchors ORDER BY id DESC LIMIT 1"
ANCHORS_PAGE = "SELECT id, document FROM audit_anchors WHERE ($1::bigint IS NULL OR id > $1) ORDER BY id LIMIT $2"


class AnchorError(ValueError):
    """An anchor document that is malformed or whose signature does not hold."""


# Keys ---------------------------------------------------------------------------------------------


async def anchor_key(pool: asyncpg.Pool) -> Ed25519PrivateKey:
    """The server's anchor key, made on first use (two processes racing keep the first one stored)."""
    raw = await pool.fetchval(SELECT_SECRET, ANCHOR_KEY_SECRET)
    if raw is None:
        fresh = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        await pool.execute(INSERT_SECRET, ANCHOR_KEY_SECRET, base64.b64encode(fresh).decode())
        raw = await pool.fetchval(SELECT_SECRET, ANCHOR_KEY_SECRET)
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw))


def _public_facts(public: Ed25519PublicKey) -> dict[str, str]:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return {
        "key_id": hashlib.sha256(raw).hexdigest()[:16],
        "public_key": base64.b64encode(raw).decode(),
        "public_key_pem": pem,
    }


# Anchors ------------------------------------------------------------------------------------------


def sign_anchor(
    key: Ed25519PrivateKey, heads: Sequence[tuple[str, int, str]], *, at: datetime, server: str
) -> dict[str, Any]:
    """The signed document: the signature covers the canonical encoding of every other field."""
    document: dict[str, Any] = {
        "format": ANCHOR_FORMAT,
        "created_at": format_time(at),
        "server": server,
        **_public_facts(key.public_key()),
        "chains": [{"chain": c, "seq": seq, "hash": h} for c, seq, h in sorted(heads)],
    }
    document["signature"] = base64.b64encode(key.sign(canonical_bytes(document))).decode()
    return document


def check_anchor(document: Mapping[str, Any], *, trusted_public_key: str | None = None) -> dict[int | str, Any]:
    """Check an anchor's form and signature (against `trusted_public_key`, base64, when given; otherwise against the
    key it carries: that proves integrity, and the key must then be known to be the server's by other means).
    Returns {chain: {seq: hash}}."""
    try:
        if document.get("format") != ANCHOR_FORMAT:
            raise AnchorError(f"not a {ANCHOR_FORMAT} document")
        signed = {k: v for k, v in document.items() if k != "signature"}
        public_b64 = str(document["public_key"])
        if trusted_public_key is not None and public_b64 != trusted_public_key:
            raise AnchorError("the anchor is signed with another key than the trusted one")
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
        public.verify(base64.b64decode(str(document["signature"])), canonical_bytes(signed))
        heads: dict[int | str, Any] = {}
        for item in document["chains"]:
            heads.setdefault(str(item["chain"]), {})[int(item["seq"])] = str(item["hash"])
        return heads
    except InvalidSignature as exc:
        raise AnchorError("the anchor's signature does not hold (the document was changed)") from exc
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, AnchorError):
            raise
        raise AnchorError(f"malformed anchor: {exc}") from exc


async def make_anchor(
    pool: asyncpg.Pool, audit: AuditLog, *, server: str, chain: str | None = None, store: bool = True
) -> dict[str, Any]:
    """Sign the current head of every chain (or of one), and keep the document in `audit_anchors` if `store`."""
    key = await anchor_key(pool)
    if chain is None:
        heads = await audit.heads(pool)
    else:
        head = await audit.head(pool, chain)
        heads = [(chain, *head)] if head else []
    at = datetime.now(UTC)
    document = sign_anchor(key, heads, at=at, server=server)
    if store:
        await pool.execute(INSERT_ANCHOR, at, json.dumps(document, sort_keys=True))
    return document


async def latest_anchor(pool: asyncpg.Pool) -> dict[str, Any] | None:
    text = await pool.fetchval(LATEST_ANCHOR)
    return json.loads(text) if text else None


async def anchors_page(pool: asyncpg.Pool, *, after_id: int | None, limit: int) -> list[tuple[int, dict[str, Any]]]:
    return [(r["id"], json.loads(r["document"])) for r in await pool.fetch(ANCHORS_PAGE, after_id, limit)]


class PeriodicAnchor:
    """Signs the heads every `interval_s` when any chain moved since the last anchor. Owned by the app."""

    def __init__(self, pool: asyncpg.Pool, audit: AuditLog, *, interval_s: float, server: str) -> None:
        self.pool = pool
        self.audit = audit
        self.interval_s = interval_s
        self.server = server
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> dict[str, Any] | None:
        """One round: an anchor if the heads differ from the latest anchor's, else None."""
        heads = sorted(await self.audit.heads(self.pool))
        last = await latest_anchor(self.pool)
        if not heads or (last is not None and [(c["chain"], c["seq"], c["hash"]) for c in last["chains"]] == heads):
            return None
        document = await make_anchor(self.pool, self.audit, server=self.server)
        log.info("audit anchor signed: %d chain(s), key %s", len(document["chains"]), document["key_id"])
        return document

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-anchor")

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("audit anchor failed: %s", exc)
            await asyncio.sleep(self.interval_s)  # pacing, not synchronisation

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


# Verification -------------------------------------------------------------------------------------


async def verify(
    pool: asyncpg.Pool,
    audit: AuditLog,
    *,
    workshop_id: uuid.UUID | None = None,
    anchor: Mapping[str, Any] | None = None,
) -> list[ChainCheck]:
    """Recompute every chain (or the workshop's), checking it against `anchor` when given."""
    anchored: dict[int | str, Any] = check_anchor(anchor) if anchor is not None else {}
    if workshop_id is not None:
        chains = [chain_of(workshop_id)]
    else:
        chains = sorted(set(await audit.chains(pool)) | {str(c) for c in anchored})
    return [await audit.verify_chain(pool, chain, anchored.get(chain)) for chain in chains]


async def export_lines(pool: asyncpg.Pool, audit: AuditLog, chain: str) -> AsyncIterator[str]:
    """The chain as JSON Lines: one entry a line, oldest first (what `as_json` shows)."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        async for entry in audit.chain_entries(conn, chain):
            yield json.dumps(entry.as_json(), sort_keys=True, ensure_ascii=False) + "\n"


# Retention ----------------------------------------------------------------------------------------

EXPIRED_WORKSHOPS = """
SELECT id FROM workshops
WHERE COALESCE(records_retention_days, $2) > 0
  AND ends_at + make_interval(days => COALESCE(records_retention_days, $2)) < $1
"""
# Chains whose workshop is gone: the deletion entry says when it ended and what it kept.
DELETED_WORKSHOPS = """
SELECT e.workshop_id, e.details::text AS details FROM audit_entries e
WHERE e.action = 'workshop.delete' AND e.workshop_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM workshops w WHERE w.id = e.workshop_id)
  AND e.redacted_at IS NULL
"""
UNREDACTED = """
SELECT max(seq) FROM audit_entries WHERE chain = $1 AND redacted_at IS NULL AND action <> 'records.retention'
"""
DELETE_ATTENDANCE = "DELETE FROM attendance_events WHERE workshop_id = $1"
DELETE_CHAT = "DELETE FROM chat_messages WHERE workshop_id = $1"


@dataclass(frozen=True)
class RetentionResult:
    workshop_id: uuid.UUID
    attendance_events: int
    chat_messages: int
    audit_entries_redacted: int


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


class RecordsRetention:
    """Deletes a workshop's attendance and chat, and redacts its audit entries, once its retention has passed
    (the workshop's `records_retention_days`, else `default_days`; 0 keeps them). Each workshop in a transaction
    that ends with a `records.retention` entry saying what went; the chain still verifies. Run by the recordings'
    retention job (`RecordingCoordinator.apply_retention`)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        audit: AuditLog,
        *,
        default_days: int,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pool = pool
        self.audit = audit
        self.default_days = default_days
        self.now = now

    async def apply(self) -> list[RetentionResult]:
        now = self.now()
        due: list[uuid.UUID] = [r["id"] for r in await self.pool.fetch(EXPIRED_WORKSHOPS, now, self.default_days)]
        for row in await self.pool.fetch(DELETED_WORKSHOPS):
            details = json.loads(row["details"])
            days = details.get("records_retention_days") or self.default_days
            ends_at = details.get("ends_at")
            if days and ends_at and datetime.fromisoformat(ends_at.replace("Z", "+00:00")) + timedelta(days=days) < now:
                due.append(row["workshop_id"])
        results = []
        for workshop_id in due:
            result = await self._apply_one(workshop_id)
            if result is not None:
                results.append(result)
        return results

    async def _apply_one(self, workshop_id: uuid.UUID) -> RetentionResult | None:
        chain = chain_of(workshop_id)
        async with self.pool.acquire() as conn, conn.transaction():
            attendance = _count(await conn.execute(DELETE_ATTENDANCE, workshop_id))
            chat = _count(await conn.execute(DELETE_CHAT, workshop_id))
            upto = await conn.fetchval(UNREDACTED, chain)
            redacted = await self.audit.redact(conn, chain, upto) if upto else 0
            if not (attendance or chat or redacted):
                return None
            await self.audit.append(
                conn,
                workshop_id=workshop_id,
                actor=SYSTEM,
                action="records.retention",
                details={
                    "attendance_events_deleted": attendance,
                    "chat_messages_deleted": chat,
                    "audit_entries_redacted": redacted,
                    "redacted_up_to_seq": upto or 0,
                },
            )
        log.info(
            "records retention for workshop %s: %d attendance events, %d chat messages deleted, %d entries redacted",
            workshop_id,
            attendance,
            chat,
            redacted,
        )
        return RetentionResult(workshop_id, attendance, chat, redacted)


# Legacy ---------------------------------------------------------------------------------------------

LEGACY_ACTIONS = """
SELECT id, workshop_id, actor_id, actor_role, action, details::text AS details, at FROM moderator_actions ORDER BY id
"""
DELETE_LEGACY = "DELETE FROM moderator_actions WHERE id = ANY($1::bigint[])"
_ACTION_NAME = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")


async def import_legacy_actions(pool: asyncpg.Pool, audit: AuditLog) -> int:
    """Move what the moderators' action log held before the audit log (migration 0009) into the workshops' chains,
    oldest first, with the time each was logged in `details.logged_at`; in one transaction, once."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(LEGACY_ACTIONS)
        for row in rows:
            details = json.loads(row["details"])
            action = row["action"] if _ACTION_NAME.match(row["action"]) else "legacy.action"
            extra = {} if action == row["action"] else {"action": row["action"]}
            await audit.append(
                conn,
                workshop_id=row["workshop_id"],
                actor=Actor(id=row["actor_id"], role=row["actor_role"]),
                action=action,
                details={**details, **extra, "logged_at": row["at"], "legacy_id": row["id"]},
            )
        if rows:
            await conn.execute(DELETE_LEGACY, [r["id"] for r in rows])
    if rows:
        log.info("moved %d entries of the old moderators' action log into the audit log", len(rows))
    return len(rows)


__all__ = ["SERVER_CHAIN", "AnchorError", "PeriodicAnchor", "RecordsRetention", "make_anchor", "verify"]
