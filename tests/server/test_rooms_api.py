"""The rooms routes: GET/POST .../rooms and GET/PATCH/DELETE .../rooms/{room_id}."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, add_participant, bearer, create_workshop, error_of, page_ids

Client = TestClient[Any, Any]


def rooms_url(workshop_id: str, *rest: str) -> str:
    return "/".join([f"/api/v1/workshops/{workshop_id}/rooms", *rest])


async def rooms(client: Client, workshop_id: str) -> list[dict[str, Any]]:
    resp = await client.get(rooms_url(workshop_id), params={"limit": "500"}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def add_room(client: Client, workshop_id: str, **body: Any) -> dict[str, Any]:
    resp = await client.post(rooms_url(workshop_id), json={"name": "Breakout", **body}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    room: dict[str, Any] = await resp.json()
    return room


async def test_list_rooms_of_a_new_workshop_holds_only_the_plenary(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.get(rooms_url(workshop["id"]), headers=ADMIN)
    assert resp.status == 200
    body = await resp.json()
    assert body["next_cursor"] is None
    (plenary,) = body["items"]
    assert plenary["id"] == workshop["plenary_room_id"]
    assert (plenary["workshop_id"], plenary["kind"], plenary["media"]) == (workshop["id"], "plenary", "mesh")


async def test_list_rooms_pages_through_seven_with_limit_three(client: Client) -> None:
    workshop = await create_workshop(client)
    created = [workshop["plenary_room_id"]]
    created += [(await add_room(client, workshop["id"], name=f"Breakout {i}"))["id"] for i in range(6)]
    pages = await page_ids(client, rooms_url(workshop["id"]), 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    paged = [i for page in pages for i in page]
    assert sorted(paged) == sorted(created)
    assert paged == [r["id"] for r in await rooms(client, workshop["id"])]


async def test_list_rooms_refuses_a_bad_limit(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.get(rooms_url(workshop["id"]), params={"limit": "0"}, headers=ADMIN)
    error = await error_of(resp, 400, "invalid_argument")
    assert [d["field"] for d in error["details"]] == ["limit"]


async def test_list_rooms_of_a_workshop_that_does_not_exist_is_not_found(client: Client) -> None:
    resp = await client.get(rooms_url(str(uuid.uuid4())), headers=ADMIN)
    await error_of(resp, 404, "not_found")


async def test_create_room_makes_a_breakout_with_default_capacity(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.post(rooms_url(workshop["id"]), json={"name": " Breakout A "}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    room = await resp.json()
    assert uuid.UUID(room["id"])
    assert (room["workshop_id"], room["name"], room["kind"]) == (workshop["id"], "Breakout A", "breakout")
    assert (room["capacity"], room["media"]) == (50, "mesh")
    assert [r["id"] for r in await rooms(client, workshop["id"])] == [workshop["plenary_room_id"], room["id"]]


async def test_create_room_by_a_moderator_with_capacity_and_publishing(client: Client) -> None:
    workshop = await create_workshop(client)
    moderator = await add_participant(client, workshop["id"], role="moderator")
    resp = await client.post(
        rooms_url(workshop["id"]),
        json={"name": "Large", "capacity": 12, "publishing": "moderated"},
        headers=bearer(moderator["join_token"]),
    )
    assert resp.status == 201, await resp.text()
    room = await resp.json()
    assert (room["capacity"], room["media"], room["publishing"], room["kind"]) == (12, "mesh", "moderated", "breakout")


async def test_a_room_asking_for_sfu_on_a_server_without_one_is_refused_clearly(client: Client) -> None:
    workshop = await create_workshop(client)
    assert workshop["plenary_room_id"]
    resp = await client.post(rooms_url(workshop["id"]), json={"name": "Large", "media": "sfu"}, headers=ADMIN)
    error = await error_of(resp, 400, "invalid_argument")
    assert "no SFU" in error["message"] and error["details"][0]["field"] == "media"
    resp = await client.patch(
        rooms_url(workshop["id"], workshop["plenary_room_id"]), json={"media": "sfu"}, headers=ADMIN
    )
    await error_of(resp, 400, "invalid_argument")


async def test_create_room_refuses_an_invalid_body_and_creates_nothing(client: Client) -> None:
    workshop = await create_workshop(client)
    body = {"name": "", "capacity": 0, "media": "p2p", "kind": "plenary"}
    resp = await client.post(rooms_url(workshop["id"]), json=body, headers=ADMIN)
    error = await error_of(resp, 400, "invalid_argument")
    assert {d["field"] for d in error["details"]} == {"name", "capacity", "media", "kind"}
    assert len(await rooms(client, workshop["id"])) == 1


async def test_create_room_in_a_workshop_that_does_not_exist_is_not_found(client: Client) -> None:
    resp = await client.post(rooms_url(str(uuid.uuid4())), json={"name": "Lost"}, headers=ADMIN)
    await error_of(resp, 404, "not_found")


async def test_get_room_returns_what_create_returned(client: Client) -> None:
    workshop = await create_workshop(client)
    room = await add_room(client, workshop["id"])
    person = await add_participant(client, workshop["id"], role="observer")
    for headers in (ADMIN, bearer(person["join_token"])):
        resp = await client.get(rooms_url(workshop["id"], room["id"]), headers=headers)
        assert resp.status == 200
        assert await resp.json() == room


async def test_get_room_of_another_workshop_or_unknown_is_not_found(client: Client) -> None:
    workshop = await create_workshop(client)
    other = await create_workshop(client, title="Other")
    for room_id in (other["plenary_room_id"], str(uuid.uuid4()), "nope"):
        resp = await client.get(rooms_url(workshop["id"], room_id), headers=ADMIN)
        await error_of(resp, 404, "not_found")


async def test_patch_room_renames_and_resizes_only_what_is_given(client: Client) -> None:
    workshop = await create_workshop(client)
    room = await add_room(client, workshop["id"], name="Old", capacity=8)
    resp = await client.patch(rooms_url(workshop["id"], room["id"]), json={"name": "New"}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {**room, "name": "New"}
    resp = await client.patch(
        rooms_url(workshop["id"], room["id"]), json={"capacity": 20, "publishing": "moderated"}, headers=ADMIN
    )
    assert await resp.json() == {**room, "name": "New", "capacity": 20, "publishing": "moderated"}
    resp = await client.get(rooms_url(workshop["id"], room["id"]), headers=ADMIN)
    assert (await resp.json())["capacity"] == 20


async def test_patch_room_refuses_null_and_bad_values_and_changes_nothing(client: Client) -> None:
    workshop = await create_workshop(client)
    room = await add_room(client, workshop["id"])
    resp = await client.patch(rooms_url(workshop["id"], room["id"]), json={"name": None}, headers=ADMIN)
    error = await error_of(resp, 400, "invalid_argument")
    assert [d["field"] for d in error["details"]] == ["name"]
    resp = await client.patch(rooms_url(workshop["id"], room["id"]), json={"capacity": 10_001}, headers=ADMIN)
    error = await error_of(resp, 400, "invalid_argument")
    assert [d["field"] for d in error["details"]] == ["capacity"]
    resp = await client.get(rooms_url(workshop["id"], room["id"]), headers=ADMIN)
    assert await resp.json() == room


async def test_patch_room_of_another_workshop_is_not_found_and_unchanged(client: Client) -> None:
    workshop = await create_workshop(client)
    other = await create_workshop(client, title="Other")
    foreign = await add_room(client, other["id"], name="Theirs")
    resp = await client.patch(rooms_url(workshop["id"], foreign["id"]), json={"name": "Mine"}, headers=ADMIN)
    await error_of(resp, 404, "not_found")
    assert [r["name"] for r in await rooms(client, other["id"])] == ["Plenary", "Theirs"]


async def test_delete_room_sends_its_assignees_back_to_the_plenary(client: Client) -> None:
    workshop = await create_workshop(client)
    room = await add_room(client, workshop["id"])
    person = await add_participant(client, workshop["id"], room_id=room["id"])
    assert person["room_id"] == room["id"]
    resp = await client.delete(rooms_url(workshop["id"], room["id"]), headers=ADMIN)
    assert resp.status == 204
    assert [r["id"] for r in await rooms(client, workshop["id"])] == [workshop["plenary_room_id"]]
    resp = await client.get(rooms_url(workshop["id"], room["id"]), headers=ADMIN)
    await error_of(resp, 404, "not_found")
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}/participants/{person['id']}", headers=ADMIN)
    assert (await resp.json())["room_id"] is None


async def test_delete_the_plenary_conflicts_and_keeps_it(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.delete(rooms_url(workshop["id"], workshop["plenary_room_id"]), headers=ADMIN)
    await error_of(resp, 409, "conflict")
    assert [r["id"] for r in await rooms(client, workshop["id"])] == [workshop["plenary_room_id"]]


async def test_delete_room_unknown_or_of_another_workshop_is_not_found(client: Client) -> None:
    workshop = await create_workshop(client)
    other = await create_workshop(client, title="Other")
    foreign = await add_room(client, other["id"])
    for room_id in (foreign["id"], str(uuid.uuid4())):
        resp = await client.delete(rooms_url(workshop["id"], room_id), headers=ADMIN)
        await error_of(resp, 404, "not_found")
    assert len(await rooms(client, other["id"])) == 2
