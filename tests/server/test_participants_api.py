"""The roster routes: participants CRUD, join tokens and revocation (import has its own module)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, add_participant, bearer, create_workshop, error_of, page_ids

Client = TestClient[Any, Any]
TOKEN_FIELDS = ("join_token", "join_url", "token_expires_at")


def roster_url(workshop_id: str, *rest: str) -> str:
    return "/".join([f"/api/v1/workshops/{workshop_id}/participants", *rest])


async def roster(client: Client, workshop_id: str) -> list[dict[str, Any]]:
    """The live roster as the admin sees it, without the freshly minted join links."""
    resp = await client.get(roster_url(workshop_id), params={"limit": "500"}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    return [{k: v for k, v in p.items() if k not in TOKEN_FIELDS} for p in (await resp.json())["items"]]


def member_routes(workshop: dict[str, Any], person: dict[str, Any]) -> list[tuple[str, str]]:
    """Every authenticated route, aimed at this person's own workshop and record."""
    w, p, r = workshop["id"], person["id"], workshop["plenary_room_id"]
    base = f"/api/v1/workshops/{w}"
    return [
        ("POST", "/api/v1/workshops"),
        ("GET", "/api/v1/workshops"),
        ("GET", base),
        ("PATCH", base),
        ("DELETE", base),
        ("POST", f"{base}/participants"),
        ("GET", f"{base}/participants"),
        ("POST", f"{base}/participants/import"),
        ("GET", f"{base}/participants/{p}"),
        ("PATCH", f"{base}/participants/{p}"),
        ("DELETE", f"{base}/participants/{p}"),
        ("POST", f"{base}/participants/{p}/token"),
        ("POST", f"{base}/participants/{p}/revoke"),
        ("GET", f"{base}/rooms"),
        ("POST", f"{base}/rooms"),
        ("GET", f"{base}/rooms/{r}"),
        ("PATCH", f"{base}/rooms/{r}"),
        ("DELETE", f"{base}/rooms/{r}"),
    ]


async def test_create_participant_answers_201_with_a_working_join_link(client: Client) -> None:
    workshop = await create_workshop(client)
    body = {
        "display_name": "  Ana Pereira ",
        "country": "pt",
        "organisation": "Público",
        "email": "ana@example.org",
        "role": "moderator",
    }
    resp = await client.post(roster_url(workshop["id"]), json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    person = await resp.json()
    assert uuid.UUID(person["id"])
    assert person["workshop_id"] == workshop["id"]
    assert (person["display_name"], person["country"], person["organisation"]) == ("Ana Pereira", "PT", "Público")
    assert (person["email"], person["role"], person["room_id"]) == ("ana@example.org", "moderator", None)
    assert person["join_url"] == f"http://127.0.0.1:8080/join#{person['join_token']}"
    assert datetime.fromisoformat(person["token_expires_at"]) > datetime.fromisoformat(workshop["ends_at"])
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}", headers=bearer(person["join_token"]))
    assert resp.status == 200
    assert [p["id"] for p in await roster(client, workshop["id"])] == [person["id"]]


async def test_create_participant_by_the_organiser_with_defaults_and_a_room(client: Client) -> None:
    workshop = await create_workshop(client)
    organiser = await add_participant(client, workshop["id"], role="organiser", display_name="Olga")
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/rooms", json={"name": "Breakout A"}, headers=ADMIN)
    room = await resp.json()
    resp = await client.post(
        roster_url(workshop["id"]),
        json={"display_name": "Bo", "country": "SE", "room_id": room["id"]},
        headers=bearer(organiser["join_token"]),
    )
    assert resp.status == 201, await resp.text()
    person = await resp.json()
    assert (person["role"], person["organisation"], person["email"]) == ("participant", "", None)
    assert person["room_id"] == room["id"]
    assert person["join_token"]


async def test_create_participant_refuses_a_room_of_another_workshop(client: Client) -> None:
    workshop = await create_workshop(client)
    other = await create_workshop(client, title="Other")
    resp = await client.post(
        roster_url(workshop["id"]),
        json={"display_name": "Bo", "country": "SE", "room_id": other["plenary_room_id"]},
        headers=ADMIN,
    )
    error = await error_of(resp, 400, "invalid_argument")
    assert [d["field"] for d in error["details"]] == ["room_id"]
    assert await roster(client, workshop["id"]) == []


async def test_create_participant_with_an_e_mail_already_on_the_roster_conflicts(client: Client) -> None:
    workshop = await create_workshop(client)
    await add_participant(client, workshop["id"], email="ana@example.org")
    before = await roster(client, workshop["id"])
    resp = await client.post(
        roster_url(workshop["id"]),
        json={"display_name": "Other Ana", "country": "BR", "email": "ANA@example.org"},
        headers=ADMIN,
    )
    error = await error_of(resp, 409, "conflict")
    assert [d["field"] for d in error["details"]] == ["email"]
    assert await roster(client, workshop["id"]) == before


async def test_the_same_e_mail_may_join_two_workshops(client: Client) -> None:
    first = await create_workshop(client)
    second = await create_workshop(client, title="Second")
    await add_participant(client, first["id"], email="ana@example.org")
    await add_participant(client, second["id"], email="ana@example.org")


async def test_create_participant_in_a_workshop_that_does_not_exist_is_not_found(client: Client) -> None:
    resp = await client.post(roster_url(str(uuid.uuid4())), json={"display_name": "Bo", "country": "SE"}, headers=ADMIN)
    await error_of(resp, 404, "not_found")


async def test_list_participants_pages_through_seven_with_limit_three(client: Client) -> None:
    workshop = await create_workshop(client)
    created = [(await add_participant(client, workshop["id"], display_name=f"P{i}"))["id"] for i in range(7)]
    pages = await page_ids(client, roster_url(workshop["id"]), 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    paged = [i for page in pages for i in page]
    assert sorted(paged) == sorted(created)
    assert paged == [p["id"] for p in await roster(client, workshop["id"])]


async def test_list_participants_shows_join_links_to_the_organiser_but_not_the_moderator(client: Client) -> None:
    workshop = await create_workshop(client)
    organiser = await add_participant(client, workshop["id"], role="organiser")
    moderator = await add_participant(client, workshop["id"], role="moderator")
    resp = await client.get(roster_url(workshop["id"]), headers=bearer(organiser["join_token"]))
    assert resp.status == 200
    assert all(p["join_token"] and p["join_url"] for p in (await resp.json())["items"])
    resp = await client.get(roster_url(workshop["id"]), headers=bearer(moderator["join_token"]))
    assert resp.status == 200
    items = (await resp.json())["items"]
    assert len(items) == 2
    assert all(p[k] is None for p in items for k in TOKEN_FIELDS)


async def test_list_participants_of_a_workshop_that_does_not_exist_is_not_found(client: Client) -> None:
    resp = await client.get(roster_url(str(uuid.uuid4())), headers=ADMIN)
    await error_of(resp, 404, "not_found")


async def test_get_participant_returns_the_record(client: Client) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"], email="ana@example.org")
    resp = await client.get(roster_url(workshop["id"], person["id"]), headers=ADMIN)
    assert resp.status == 200
    got = await resp.json()
    assert {k: v for k, v in got.items() if k not in TOKEN_FIELDS} == {
        k: v for k, v in person.items() if k not in TOKEN_FIELDS
    }
    assert got["join_token"]


async def test_get_participant_lets_a_participant_read_only_their_own_record_without_links(client: Client) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"])
    other = await add_participant(client, workshop["id"], display_name="Other")
    resp = await client.get(roster_url(workshop["id"], person["id"]), headers=bearer(person["join_token"]))
    assert resp.status == 200
    own = await resp.json()
    assert own["id"] == person["id"]
    assert all(own[k] is None for k in TOKEN_FIELDS)
    resp = await client.get(roster_url(workshop["id"], other["id"]), headers=bearer(person["join_token"]))
    await error_of(resp, 403, "permission_denied")


async def test_get_participant_that_does_not_exist_or_is_in_another_workshop_is_not_found(client: Client) -> None:
    workshop = await create_workshop(client)
    other = await create_workshop(client, title="Other")
    stranger = await add_participant(client, other["id"])
    for participant_id in (str(uuid.uuid4()), stranger["id"], "not-a-uuid"):
        resp = await client.get(roster_url(workshop["id"], participant_id), headers=ADMIN)
        await error_of(resp, 404, "not_found")


async def test_patch_participant_changes_only_the_given_fields(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/rooms", json={"name": "Breakout A"}, headers=ADMIN)
    room = await resp.json()
    person = await add_participant(client, workshop["id"], email="ana@example.org", organisation="Old")
    change = {"display_name": "Ana P.", "country": "br", "role": "observer", "room_id": room["id"]}
    resp = await client.patch(roster_url(workshop["id"], person["id"]), json=change, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    assert (patched["display_name"], patched["country"], patched["role"]) == ("Ana P.", "BR", "observer")
    assert patched["room_id"] == room["id"]
    assert (patched["email"], patched["organisation"]) == ("ana@example.org", "Old")
    assert patched["updated_at"] > person["updated_at"]
    assert patched["join_token"]
    # The role lives on the roster, not in the token: the old token now acts as an observer.
    resp = await client.get(roster_url(workshop["id"]), headers=bearer(person["join_token"]))
    await error_of(resp, 403, "permission_denied")


async def test_patch_participant_clears_e_mail_and_room_with_null(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/rooms", json={"name": "Breakout A"}, headers=ADMIN)
    room = await resp.json()
    person = await add_participant(client, workshop["id"], email="ana@example.org", room_id=room["id"])
    resp = await client.patch(
        roster_url(workshop["id"], person["id"]), json={"email": None, "room_id": None}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    assert (patched["email"], patched["room_id"]) == (None, None)


async def test_patch_participant_refuses_null_for_a_required_field(client: Client) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"])
    before = await roster(client, workshop["id"])
    resp = await client.patch(roster_url(workshop["id"], person["id"]), json={"display_name": None}, headers=ADMIN)
    error = await error_of(resp, 400, "invalid_argument")
    assert [d["field"] for d in error["details"]] == ["display_name"]
    assert await roster(client, workshop["id"]) == before


async def test_patch_participant_to_an_e_mail_already_on_the_roster_conflicts(client: Client) -> None:
    workshop = await create_workshop(client)
    await add_participant(client, workshop["id"], email="ana@example.org")
    person = await add_participant(client, workshop["id"], display_name="Bo", email="bo@example.org")
    before = await roster(client, workshop["id"])
    resp = await client.patch(
        roster_url(workshop["id"], person["id"]), json={"email": "Ana@Example.org"}, headers=ADMIN
    )
    error = await error_of(resp, 409, "conflict")
    assert [d["field"] for d in error["details"]] == ["email"]
    assert await roster(client, workshop["id"]) == before


async def test_patch_participant_that_does_not_exist_is_not_found(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.patch(roster_url(workshop["id"], str(uuid.uuid4())), json={"role": "observer"}, headers=ADMIN)
    await error_of(resp, 404, "not_found")


async def test_delete_participant_removes_them_from_lists_and_kills_their_token(client: Client) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"], email="ana@example.org")
    kept = await add_participant(client, workshop["id"], display_name="Kept")
    resp = await client.delete(roster_url(workshop["id"], person["id"]), headers=ADMIN)
    assert resp.status == 204
    assert [p["id"] for p in await roster(client, workshop["id"])] == [kept["id"]]
    resp = await client.get(roster_url(workshop["id"], person["id"]), headers=ADMIN)
    await error_of(resp, 404, "not_found")
    for method, path in member_routes(workshop, person):
        resp = await client.request(method, path, headers=bearer(person["join_token"]))
        await error_of(resp, 401, "unauthenticated")
    # The e-mail is free again for a new record.
    await add_participant(client, workshop["id"], email="ana@example.org")


async def test_delete_participant_twice_is_not_found_the_second_time(client: Client) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"])
    assert (await client.delete(roster_url(workshop["id"], person["id"]), headers=ADMIN)).status == 204
    resp = await client.delete(roster_url(workshop["id"], person["id"]), headers=ADMIN)
    await error_of(resp, 404, "not_found")
    resp = await client.post(roster_url(workshop["id"], person["id"], "token"), headers=ADMIN)
    await error_of(resp, 404, "not_found")


async def test_mint_token_gives_another_working_token_valid_past_the_workshop(client: Client) -> None:
    workshop = await create_workshop(client, ends_at="2030-06-01T12:00:00+00:00")
    person = await add_participant(client, workshop["id"])
    resp = await client.post(roster_url(workshop["id"], person["id"], "token"), headers=ADMIN)
    assert resp.status == 200, await resp.text()
    minted = await resp.json()
    assert set(minted) == {"join_token", "join_url", "expires_at"}
    assert minted["join_token"] != person["join_token"]
    assert minted["join_url"] == f"http://127.0.0.1:8080/join#{minted['join_token']}"
    # Default grace: 24 hours after the workshop ends.
    assert datetime.fromisoformat(minted["expires_at"]) == datetime(2030, 6, 2, 12, tzinfo=UTC)
    for token in (minted["join_token"], person["join_token"]):
        resp = await client.get(roster_url(workshop["id"], person["id"]), headers=bearer(token))
        assert resp.status == 200


async def test_mint_token_for_a_finished_workshop_still_lasts_an_hour(client: Client) -> None:
    workshop = await create_workshop(
        client, starts_at="2020-01-01T08:00:00+00:00", ends_at="2020-01-01T10:00:00+00:00", status="ended"
    )
    person = await add_participant(client, workshop["id"])
    resp = await client.post(roster_url(workshop["id"], person["id"], "token"), headers=ADMIN)
    expires = datetime.fromisoformat((await resp.json())["expires_at"])
    assert expires >= datetime.now(UTC) + timedelta(minutes=59)


async def test_mint_token_for_a_participant_that_does_not_exist_is_not_found(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.post(roster_url(workshop["id"], str(uuid.uuid4()), "token"), headers=ADMIN)
    await error_of(resp, 404, "not_found")


async def test_revoke_makes_every_old_token_401_everywhere_and_a_new_token_works(client: Client) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"], role="organiser")
    resp = await client.post(roster_url(workshop["id"], person["id"], "token"), headers=ADMIN)
    second_old_token = (await resp.json())["join_token"]

    resp = await client.post(roster_url(workshop["id"], person["id"], "revoke"), headers=ADMIN)
    assert resp.status == 200, await resp.text()
    revoked = await resp.json()
    assert revoked["id"] == person["id"]
    assert all(revoked[k] is None for k in TOKEN_FIELDS)

    for token in (person["join_token"], second_old_token):
        for method, path in member_routes(workshop, person):
            resp = await client.request(method, path, headers=bearer(token))
            error = await error_of(resp, 401, "unauthenticated")
            assert error["message"] == "token revoked"
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # Nothing was changed by the refused calls.
    assert [p["id"] for p in await roster(client, workshop["id"])] == [person["id"]]

    resp = await client.post(roster_url(workshop["id"], person["id"], "token"), headers=ADMIN)
    fresh = (await resp.json())["join_token"]
    resp = await client.get(roster_url(workshop["id"]), headers=bearer(fresh))
    assert resp.status == 200
    resp = await client.get(roster_url(workshop["id"], person["id"]), headers=ADMIN)
    assert (await resp.json())["join_token"] != person["join_token"]


async def test_revoke_by_the_organiser_of_another_participant(client: Client) -> None:
    workshop = await create_workshop(client)
    organiser = await add_participant(client, workshop["id"], role="organiser")
    person = await add_participant(client, workshop["id"], display_name="Bo")
    resp = await client.post(
        roster_url(workshop["id"], person["id"], "revoke"), headers=bearer(organiser["join_token"])
    )
    assert resp.status == 200
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}", headers=bearer(person["join_token"]))
    await error_of(resp, 401, "unauthenticated")
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}", headers=bearer(organiser["join_token"]))
    assert resp.status == 200


async def test_revoke_a_participant_that_does_not_exist_is_not_found(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.post(roster_url(workshop["id"], str(uuid.uuid4()), "revoke"), headers=ADMIN)
    await error_of(resp, 404, "not_found")
