"""The workshops routes: POST/GET /api/v1/workshops and GET/PATCH/DELETE /api/v1/workshops/{id}."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient

from server import keys
from tests.helpers import ADMIN, WORKSHOP, add_participant, bearer, create_workshop, error_of, page_ids

Client = TestClient[Any, Any]
WORKSHOPS = "/api/v1/workshops"


async def all_workshops(client: Client) -> list[dict[str, Any]]:
    resp = await client.get(WORKSHOPS, params={"limit": "500"}, headers=ADMIN)
    assert resp.status == 200
    body = await resp.json()
    assert body["next_cursor"] is None
    items: list[dict[str, Any]] = body["items"]
    return items


async def test_create_workshop_answers_201_with_the_workshop_and_its_plenary_room(client: Client) -> None:
    resp = await client.post(WORKSHOPS, json={**WORKSHOP, "plenary_capacity": 120}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    workshop = await resp.json()
    assert uuid.UUID(workshop["id"])
    assert workshop["title"] == WORKSHOP["title"]
    assert workshop["description"] == WORKSHOP["description"]
    assert workshop["timezone"] == "Europe/Brussels"
    assert datetime.fromisoformat(workshop["starts_at"]) == datetime.fromisoformat(WORKSHOP["starts_at"])
    assert datetime.fromisoformat(workshop["ends_at"]) == datetime.fromisoformat(WORKSHOP["ends_at"])
    assert workshop["status"] == "scheduled"
    assert workshop["recording_consent"] == "explicit"
    assert workshop["created_at"] == workshop["updated_at"]

    resp = await client.get(f"{WORKSHOPS}/{workshop['id']}/rooms", headers=ADMIN)
    (plenary,) = (await resp.json())["items"]
    assert plenary["id"] == workshop["plenary_room_id"]
    assert (plenary["kind"], plenary["capacity"], plenary["name"]) == ("plenary", 120, "Plenary")
    assert [w["id"] for w in await all_workshops(client)] == [workshop["id"]]


async def test_create_workshop_defaults_the_plenary_capacity_from_settings(client: Client) -> None:
    workshop = await create_workshop(client, status="live", recording_consent="assumed")
    assert (workshop["status"], workshop["recording_consent"]) == ("live", "assumed")
    resp = await client.get(f"{WORKSHOPS}/{workshop['id']}/rooms/{workshop['plenary_room_id']}", headers=ADMIN)
    assert (await resp.json())["capacity"] == client.app[keys.SETTINGS].plenary_capacity == 300


async def test_create_workshop_refuses_an_invalid_body_and_creates_nothing(client: Client) -> None:
    resp = await client.post(WORKSHOPS, json={**WORKSHOP, "title": "  ", "plenary_capacity": 0}, headers=ADMIN)
    error = await error_of(resp, 400, "invalid_argument")
    assert {d["field"] for d in error["details"]} == {"title", "plenary_capacity"}
    assert await all_workshops(client) == []


async def test_create_workshop_without_a_token_is_unauthenticated(client: Client) -> None:
    resp = await client.post(WORKSHOPS, json=WORKSHOP)
    await error_of(resp, 401, "unauthenticated")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert await all_workshops(client) == []


async def test_list_workshops_pages_through_seven_with_limit_three(client: Client) -> None:
    created = [(await create_workshop(client, title=f"Workshop {i}"))["id"] for i in range(7)]
    pages = await page_ids(client, WORKSHOPS, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    paged = [i for page in pages for i in page]
    assert sorted(paged) == sorted(created)
    assert paged == [w["id"] for w in await all_workshops(client)]


async def test_list_workshops_with_exactly_a_full_page_has_no_next_cursor(client: Client) -> None:
    for i in range(3):
        await create_workshop(client, title=f"Workshop {i}")
    resp = await client.get(WORKSHOPS, params={"limit": "3"}, headers=ADMIN)
    body = await resp.json()
    assert len(body["items"]) == 3
    assert body["next_cursor"] is None


async def test_list_workshops_defaults_to_a_page_of_100(client: Client) -> None:
    # Inserted directly, in one statement (so all share created_at and the cursor must break ties by id):
    # 101 workshops through the API would only slow the suite down.
    await client.app[keys.POOL].execute(
        """WITH w AS (
               INSERT INTO workshops (title, timezone, starts_at, ends_at)
               SELECT 'W' || n, 'UTC', now(), now() + interval '1 hour' FROM generate_series(1, 101) n
               RETURNING id)
           INSERT INTO rooms (workshop_id, name, kind, capacity) SELECT id, 'Plenary', 'plenary', 10 FROM w"""
    )
    resp = await client.get(WORKSHOPS, headers=ADMIN)
    first = await resp.json()
    assert len(first["items"]) == 100
    assert first["next_cursor"] is not None
    resp = await client.get(WORKSHOPS, params={"cursor": first["next_cursor"]}, headers=ADMIN)
    second = await resp.json()
    assert len(second["items"]) == 1
    assert second["next_cursor"] is None
    assert len({w["id"] for w in first["items"] + second["items"]}) == 101


async def test_list_workshops_refuses_a_limit_outside_1_to_500_and_a_bad_cursor(client: Client) -> None:
    await create_workshop(client)
    resp = await client.get(WORKSHOPS, params={"limit": "500"}, headers=ADMIN)
    assert resp.status == 200
    for limit in ("0", "501", "-1", "ten", "2.5"):
        resp = await client.get(WORKSHOPS, params={"limit": limit}, headers=ADMIN)
        error = await error_of(resp, 400, "invalid_argument")
        assert [d["field"] for d in error["details"]] == ["limit"]
    for cursor in ("not-a-cursor", "W10=", "eyJhIjogMX0"):
        resp = await client.get(WORKSHOPS, params={"cursor": cursor}, headers=ADMIN)
        error = await error_of(resp, 400, "invalid_argument")
        assert [d["field"] for d in error["details"]] == ["cursor"]


async def test_list_workshops_shows_a_participant_only_their_own_workshop(client: Client) -> None:
    mine = await create_workshop(client, title="Mine")
    await create_workshop(client, title="Theirs")
    person = await add_participant(client, mine["id"])
    resp = await client.get(WORKSHOPS, headers=bearer(person["join_token"]))
    assert resp.status == 200
    body = await resp.json()
    assert [w["id"] for w in body["items"]] == [mine["id"]]
    assert body["next_cursor"] is None


async def test_get_workshop_returns_what_create_returned(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.get(f"{WORKSHOPS}/{workshop['id']}", headers=ADMIN)
    assert resp.status == 200
    assert await resp.json() == workshop


async def test_get_workshop_that_does_not_exist_is_not_found(client: Client) -> None:
    for workshop_id in (str(uuid.uuid4()), "not-a-uuid", "1"):
        resp = await client.get(f"{WORKSHOPS}/{workshop_id}", headers=ADMIN)
        await error_of(resp, 404, "not_found")


async def test_patch_workshop_changes_only_the_given_fields(client: Client) -> None:
    workshop = await create_workshop(client)
    change = {"title": "Renamed", "status": "live", "timezone": "America/Sao_Paulo", "description": ""}
    resp = await client.patch(f"{WORKSHOPS}/{workshop['id']}", json=change, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    for name, value in change.items():
        assert patched[name] == value
    for name in ("starts_at", "ends_at", "recording_consent", "plenary_room_id", "created_at"):
        assert patched[name] == workshop[name]
    assert patched["updated_at"] > workshop["updated_at"]
    resp = await client.get(f"{WORKSHOPS}/{workshop['id']}", headers=ADMIN)
    assert await resp.json() == patched


async def test_patch_workshop_moves_both_times_together(client: Client) -> None:
    workshop = await create_workshop(client)
    times = {"starts_at": "2027-03-01T09:00:00+00:00", "ends_at": "2027-03-01T12:00:00+00:00"}
    resp = await client.patch(f"{WORKSHOPS}/{workshop['id']}", json=times, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    assert datetime.fromisoformat(patched["starts_at"]) == datetime.fromisoformat(times["starts_at"])
    assert datetime.fromisoformat(patched["ends_at"]) == datetime.fromisoformat(times["ends_at"])


async def test_patch_workshop_by_its_organiser_is_allowed(client: Client) -> None:
    workshop = await create_workshop(client)
    organiser = await add_participant(client, workshop["id"], role="organiser")
    resp = await client.patch(
        f"{WORKSHOPS}/{workshop['id']}", json={"title": "Organiser's title"}, headers=bearer(organiser["join_token"])
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["title"] == "Organiser's title"


async def test_patch_workshop_refuses_null_for_a_required_field(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.patch(f"{WORKSHOPS}/{workshop['id']}", json={"title": None}, headers=ADMIN)
    error = await error_of(resp, 400, "invalid_argument")
    assert [d["field"] for d in error["details"]] == ["title"]
    resp = await client.get(f"{WORKSHOPS}/{workshop['id']}", headers=ADMIN)
    assert await resp.json() == workshop


async def test_patch_workshop_that_does_not_exist_is_not_found(client: Client) -> None:
    resp = await client.patch(f"{WORKSHOPS}/{uuid.uuid4()}", json={"title": "x"}, headers=ADMIN)
    await error_of(resp, 404, "not_found")


async def test_delete_workshop_removes_it_with_its_rooms_and_roster(client: Client) -> None:
    workshop = await create_workshop(client)
    kept = await create_workshop(client, title="Kept")
    person = await add_participant(client, workshop["id"])
    resp = await client.delete(f"{WORKSHOPS}/{workshop['id']}", headers=ADMIN)
    assert resp.status == 204
    assert await resp.read() == b""
    resp = await client.get(f"{WORKSHOPS}/{workshop['id']}", headers=ADMIN)
    await error_of(resp, 404, "not_found")
    resp = await client.get(f"{WORKSHOPS}/{workshop['id']}/rooms", headers=ADMIN)
    await error_of(resp, 404, "not_found")
    assert [w["id"] for w in await all_workshops(client)] == [kept["id"]]
    resp = await client.get(WORKSHOPS, headers=bearer(person["join_token"]))
    await error_of(resp, 401, "unauthenticated")


async def test_delete_workshop_twice_is_not_found_the_second_time(client: Client) -> None:
    workshop = await create_workshop(client)
    assert (await client.delete(f"{WORKSHOPS}/{workshop['id']}", headers=ADMIN)).status == 204
    resp = await client.delete(f"{WORKSHOPS}/{workshop['id']}", headers=ADMIN)
    await error_of(resp, 404, "not_found")


async def test_delete_workshop_is_refused_to_its_organiser(client: Client) -> None:
    workshop = await create_workshop(client)
    organiser = await add_participant(client, workshop["id"], role="organiser")
    resp = await client.delete(f"{WORKSHOPS}/{workshop['id']}", headers=bearer(organiser["join_token"]))
    await error_of(resp, 403, "permission_denied")
    assert [w["id"] for w in await all_workshops(client)] == [workshop["id"]]
