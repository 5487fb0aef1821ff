"""The audit log over HTTP: a workshop's entries (paged, filtered), its JSON Lines export, its verification, and
signed anchors (docs/records.md). The admin and the workshop's organisers; not moderators, whose actions it records
(they keep the moderators' action log, GET .../moderator-actions)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from server import audit as records
from server import keys
from server.api import API, PREFIX
from server.api.routing import json_model, page_limit, path_uuid
from server.api.schemas import Time
from server.api.workshops import require_member
from server.auth import Principal
from signaling.audit import chain_of
from signaling.audit_store import EntryFilter
from signaling.errors import InvalidArgument, NotFound, PermissionDenied

_CURSOR = re.compile(r"[0-9]{1,18}")  # an entry id, in ASCII digits
_ACTION = re.compile(r"[a-z_]{1,50}(\.[a-z_]{1,50}){0,3}")
_ROLE = re.compile(r"[a-z_]{1,20}")
_TIME = TypeAdapter(Time)
WORKSHOP_EXISTS = "SELECT EXISTS (SELECT 1 FROM workshops WHERE id = $1)"


class AuditActor(BaseModel):
    id: uuid.UUID | None = Field(description="The participant; null for the admin token and the server itself.")
    role: str = Field(description="admin, system, or the participant's role at the time.")
    name: str


class AuditEntry(BaseModel):
    id: int
    chain: str = Field(description="The workshop id, or 'server'.")
    seq: int = Field(description="1, 2, 3... within the chain, without gaps.")
    workshop_id: uuid.UUID | None
    at: str = Field(description="UTC, as hashed: YYYY-MM-DDTHH:MM:SS.ffffffZ.")
    actor: AuditActor
    action: str = Field(description="e.g. participant.remove, breakouts.open, recording.download.")
    target: dict[str, Any]
    details: dict[str, Any]
    prev_hash: str
    entry_digest: str = Field(description="sha256 of the entry's canonical encoding.")
    hash: str = Field(description="sha256 of the canonical encoding of {entry_digest, prev_hash}.")
    redacted_at: str | None = Field(description="Set when retention erased actor, target and details.")


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None


class AuditMismatch(BaseModel):
    seq: int
    entry_id: int | None
    reason: str


class AuditVerification(BaseModel):
    chain: str
    ok: bool
    entries: int = Field(description="Entries that verified, from the first.")
    head_seq: int
    head_hash: str
    mismatch: AuditMismatch | None


class AnchorChain(BaseModel):
    chain: str
    seq: int
    hash: str


class Anchor(BaseModel):
    format: str
    created_at: str
    server: str
    key_id: str
    public_key: str = Field(description="The server's Ed25519 public key, base64 (32 bytes).")
    public_key_pem: str
    chains: list[AnchorChain]
    signature: str = Field(description="Ed25519 over the canonical encoding of every other field, base64.")


class AnchorItem(BaseModel):
    id: int
    anchor: Anchor


class AnchorPage(BaseModel):
    items: list[AnchorItem]
    next_cursor: str | None


async def _readable_chain(request: web.Request, who: Principal) -> uuid.UUID:
    """The workshop of the path, if the caller may read its audit log (its log outlives it: the admin still may)."""
    workshop_id = path_uuid(request, "workshop_id")
    require_member(who, workshop_id)
    if not who.manages(workshop_id):
        raise PermissionDenied("only the organiser and the admin may read the audit log")
    store = request.app[keys.STORE]
    exists = await store.pool.fetchval(WORKSHOP_EXISTS, workshop_id)
    if not exists and await store.audit.head(store.pool, chain_of(workshop_id)) is None:
        raise NotFound("workshop not found")
    return workshop_id


def _cursor(request: web.Request) -> int | None:
    cursor = request.query.get("cursor")
    if cursor and not _CURSOR.fullmatch(cursor):
        raise InvalidArgument(
            "cursor is not valid", details=[{"field": "cursor", "message": "not a cursor from this API"}]
        )
    return int(cursor) if cursor else None


def _query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return _TIME.validate_python(raw)
    except ValidationError as exc:
        raise InvalidArgument(
            f"{name} must be an ISO 8601 time with a zone", details=[{"field": name, "message": "not a time"}]
        ) from exc


def _query_text(request: web.Request, name: str, pattern: re.Pattern[str]) -> str | None:
    raw = request.query.get(name)
    if raw is not None and not pattern.fullmatch(raw):
        raise InvalidArgument(f"{name} is not valid", details=[{"field": name, "message": "unknown value"}])
    return raw


def _filter(request: web.Request) -> EntryFilter:
    actor_id = None
    if (raw := request.query.get("actor_id")) is not None:
        try:
            actor_id = uuid.UUID(raw)
        except ValueError as exc:
            raise InvalidArgument(
                "actor_id must be a UUID", details=[{"field": "actor_id", "message": "not a UUID"}]
            ) from exc
    return EntryFilter(
        actor_id=actor_id,
        actor_role=_query_text(request, "actor_role", _ROLE),
        action=_query_text(request, "action", _ACTION),
        since=_query_time(request, "since"),
        until=_query_time(request, "until"),
    )


FILTER_PARAMS = (
    {"name": "actor_id", "description": "Entries by this participant.", "schema": {"type": "string", "format": "uuid"}},
    {
        "name": "actor_role",
        "description": "Entries by actors of this role (admin, system, organiser, moderator, participant, …).",
        "schema": {"type": "string", "pattern": _ROLE.pattern},
    },
    {
        "name": "action",
        "description": "An action (participant.remove) or its family (breakouts).",
        "schema": {"type": "string", "pattern": _ACTION.pattern},
    },
    {
        "name": "since",
        "description": "Entries at or after this time.",
        "schema": {"type": "string", "format": "date-time"},
    },
    {"name": "until", "description": "Entries before this time.", "schema": {"type": "string", "format": "date-time"}},
)


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/audit",
    summary="The workshop's audit log, oldest first; filters: actor_id, actor_role, action (an action or its "
    "family, e.g. breakouts), since, until (admin, organiser).",
    response=AuditPage,
    paged=True,
    tags=("audit",),
    query=FILTER_PARAMS,
)
async def list_audit(request: web.Request, who: Principal) -> web.Response:
    workshop_id = await _readable_chain(request, who)
    limit = page_limit(request)
    after = _cursor(request)
    store = request.app[keys.STORE]
    entries = await store.audit.page(
        store.pool, chain_of(workshop_id), after_id=after, limit=limit + 1, where=_filter(request)
    )
    items = [AuditEntry.model_validate(e.as_json()) for e in entries[:limit]]
    next_cursor = str(items[-1].id) if len(entries) > limit and items else None
    return json_model(AuditPage(items=items, next_cursor=next_cursor))


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/audit.jsonl",
    summary="The workshop's whole audit chain as JSON Lines, one entry a line, oldest first (admin, organiser).",
    binary_response="application/jsonl",
    tags=("audit",),
)
async def export_audit(request: web.Request, who: Principal) -> web.StreamResponse:
    workshop_id = await _readable_chain(request, who)
    store = request.app[keys.STORE]
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/jsonl; charset=utf-8",
            "Content-Disposition": f'attachment; filename="audit-{workshop_id}.jsonl"',
            "Cache-Control": "private, no-store",
        }
    )
    await response.prepare(request)
    async for line in records.export_lines(store.pool, store.audit, chain_of(workshop_id)):
        await response.write(line.encode("utf-8"))
    await response.write_eof()
    return response


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/audit/verify",
    summary="Recompute the workshop's chain; names the first entry that does not match (admin, organiser).",
    response=AuditVerification,
    tags=("audit",),
)
async def verify_audit(request: web.Request, who: Principal) -> web.Response:
    workshop_id = await _readable_chain(request, who)
    store = request.app[keys.STORE]
    (check,) = await records.verify(store.pool, store.audit, workshop_id=workshop_id)
    mismatch = check.mismatch
    return json_model(
        AuditVerification(
            chain=check.chain,
            ok=mismatch is None,
            entries=check.count,
            head_seq=check.head_seq,
            head_hash=check.head_hash,
            mismatch=AuditMismatch(seq=mismatch.seq, entry_id=mismatch.entry_id, reason=mismatch.reason)
            if mismatch
            else None,
        )
    )


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/audit/anchor",
    summary="A signed anchor of the workshop's chain as it is now, to keep outside the server (admin, organiser).",
    response=Anchor,
    tags=("audit",),
)
async def workshop_anchor(request: web.Request, who: Principal) -> web.Response:
    workshop_id = await _readable_chain(request, who)
    store = request.app[keys.STORE]
    document = await records.make_anchor(
        store.pool, store.audit, server=request.app[keys.SETTINGS].base_url, chain=chain_of(workshop_id), store=False
    )
    return json_model(document)


def _require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise PermissionDenied("only the admin may read or sign the server's anchors")


@API.route(
    "GET",
    f"{PREFIX}/audit/anchors",
    summary="The anchors the server signed (periodically and on request), oldest first (admin).",
    response=AnchorPage,
    paged=True,
    tags=("audit",),
)
async def list_anchors(request: web.Request, who: Principal) -> web.Response:
    _require_admin(who)
    limit = page_limit(request)
    rows = await records.anchors_page(request.app[keys.POOL], after_id=_cursor(request), limit=limit + 1)
    items = [AnchorItem(id=i, anchor=Anchor.model_validate(doc)) for i, doc in rows[:limit]]
    next_cursor = str(items[-1].id) if len(rows) > limit and items else None
    return json_model(AnchorPage(items=items, next_cursor=next_cursor))


@API.route(
    "POST",
    f"{PREFIX}/audit/anchors",
    summary="Sign the head of every chain now and keep the anchor (admin).",
    response=Anchor,
    status=201,
    tags=("audit",),
)
async def create_anchor(request: web.Request, who: Principal) -> web.Response:
    _require_admin(who)
    store = request.app[keys.STORE]
    document = await records.make_anchor(store.pool, store.audit, server=request.app[keys.SETTINGS].base_url)
    return web.Response(text=json.dumps(document), status=201, content_type="application/json")
