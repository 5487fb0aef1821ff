"""Small test helpers that talk to the real API."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

WORKSHOP = {
    "title": "Cross-border investigations",
    "description": "Two days, twenty countries.",
    "timezone": "Europe/Brussels",
    "starts_at": "2026-12-01T08:00:00+01:00",
    "ends_at": "2026-12-02T17:00:00+01:00",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_workshop(client: TestClient[Any, Any], **changes: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/workshops", json={**WORKSHOP, **changes}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def add_participant(
    client: TestClient[Any, Any],
    workshop_id: str,
    *,
    display_name: str = "Ana Pereira",
    country: str = "PT",
    role: str = "participant",
    **extra: Any,
) -> dict[str, Any]:
    body = {"display_name": display_name, "country": country, "role": role, **extra}
    resp = await client.post(f"/api/v1/workshops/{workshop_id}/participants", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    out: dict[str, Any] = await resp.json()
    return out


async def error_of(resp: Any, status: int, code: str) -> dict[str, Any]:
    """The `error` object of an HTTP error answer, checked for its status, shape and code."""
    text = await resp.text()
    assert resp.status == status, text
    body = await resp.json()
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


async def page_ids(client: TestClient[Any, Any], url: str, limit: int) -> list[list[str]]:
    """Follow `next_cursor` through a list endpoint as the admin; the ids of each page, in order."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        resp = await client.get(url, params=params, headers=ADMIN)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
