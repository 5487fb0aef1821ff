"""Opaque keyset cursors for list endpoints."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from server.api.routing import page_limit
from server.api.schemas import Time
from server.store import PageKey
from signaling.errors import InvalidArgument

R = TypeVar("R")


def encode_cursor(key: PageKey) -> str:
    raw = json.dumps([key.created_at.isoformat(), str(key.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# What encode_cursor writes, and nothing else: unpadded URL-safe base64 of ["<aware time>", "<uuid>"].
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,200}")
_KEY = TypeAdapter(tuple[Time, uuid.UUID])


def decode_cursor(cursor: str) -> PageKey:
    try:
        if not _CURSOR.fullmatch(cursor):
            raise ValueError("not base64url")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = _KEY.validate_json(raw, strict=True)
        return PageKey(created_at=created_at, id=row_id)
    except (ValueError, binascii.Error, ValidationError) as exc:
        raise InvalidArgument(
            "cursor is not valid", details=[{"field": "cursor", "message": "not a cursor from this API"}]
        ) from exc


def page_request(request: web.Request) -> tuple[int, PageKey | None]:
    limit = page_limit(request)
    cursor = request.query.get("cursor")
    return limit, decode_cursor(cursor) if cursor else None


def page_of(rows: Sequence[Any], limit: int, present: Callable[[Any], R]) -> dict[str, Any]:
    """Rows were fetched with limit+1 so that a next page is known without a count."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(PageKey(rows[-1]["created_at"], rows[-1]["id"])) if more and rows else None
    return {"items": [present(row) for row in rows], "next_cursor": next_cursor}
