"""Opaque keyset cursors for list endpoints."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web

from server.api.routing import page_limit
from server.store import PageKey
from signaling.errors import InvalidArgument

R = TypeVar("R")


def encode_cursor(key: PageKey) -> str:
    raw = json.dumps([key.created_at.isoformat(), str(key.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> PageKey:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return PageKey(created_at=datetime.fromisoformat(created_at), id=uuid.UUID(row_id))
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
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
