from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, add_participant, bearer, create_workshop


async def test_admin_creates_workshop_with_plenary_and_participant_reads_it(
    client: TestClient[Any, Any],
) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"])
    assert person["join_url"].startswith("http://127.0.0.1:8080/join#")
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}/rooms", headers=bearer(person["join_token"]))
    assert resp.status == 200
    rooms = (await resp.json())["items"]
    assert [r["kind"] for r in rooms] == ["plenary"]
    assert rooms[0]["id"] == workshop["plenary_room_id"]
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}/participants", headers=bearer(person["join_token"]))
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "permission_denied"
    resp = await client.get("/api/v1/workshops", headers=ADMIN)
    assert [w["id"] for w in (await resp.json())["items"]] == [workshop["id"]]
