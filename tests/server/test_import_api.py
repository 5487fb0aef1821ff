"""POST .../participants/import: a CSV or JSON roster, all or nothing."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, add_participant, bearer, create_workshop, error_of

Client = TestClient[Any, Any]
HEADER = "display_name,country,organisation,email,role"
CSV = {"Content-Type": "text/csv"}
TOKEN_FIELDS = ("join_token", "join_url", "token_expires_at")


def import_url(workshop_id: str) -> str:
    return f"/api/v1/workshops/{workshop_id}/participants/import"


async def roster(client: Client, workshop_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/v1/workshops/{workshop_id}/participants", params={"limit": "500"}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    # Without the join links: each listing mints them afresh.
    return [{k: v for k, v in p.items() if k not in TOKEN_FIELDS} for p in (await resp.json())["items"]]


async def test_import_csv_creates_everyone_with_join_links(client: Client) -> None:
    workshop = await create_workshop(client)
    text = "\n".join(
        [
            HEADER,
            "Ana Pereira,PT,Público,ana@example.org,organiser",
            '"Okafor, Chidi",ng,,,',
            "Lena Berg,SE,Dagens Nyheter,,observer",
            "",
        ]
    )
    resp = await client.post(import_url(workshop["id"]), data=text.encode(), headers={**ADMIN, **CSV})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["imported"] == 3
    people = body["items"]
    assert [(p["display_name"], p["country"], p["organisation"], p["email"], p["role"]) for p in people] == [
        ("Ana Pereira", "PT", "Público", "ana@example.org", "organiser"),
        ("Okafor, Chidi", "NG", "", None, "participant"),
        ("Lena Berg", "SE", "Dagens Nyheter", None, "observer"),
    ]
    assert all(p["join_token"] and p["join_url"].endswith(p["join_token"]) for p in people)
    assert sorted(p["id"] for p in await roster(client, workshop["id"])) == sorted(p["id"] for p in people)
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}", headers=bearer(people[1]["join_token"]))
    assert resp.status == 200


async def test_import_csv_accepts_a_byte_order_mark_crlf_and_reordered_columns(client: Client) -> None:
    workshop = await create_workshop(client)
    text = "\ufeffrole,email,country,display_name\r\nmoderator,mo@example.org,DE,Mo\r\n"
    resp = await client.post(
        import_url(workshop["id"]), data=text.encode(), headers={**ADMIN, "Content-Type": "text/csv; charset=utf-8"}
    )
    assert resp.status == 201, await resp.text()
    (person,) = (await resp.json())["items"]
    assert (person["display_name"], person["country"], person["role"]) == ("Mo", "DE", "moderator")
    assert person["organisation"] == ""


async def test_import_json_list_creates_everyone_including_room_assignments(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/rooms", json={"name": "Breakout A"}, headers=ADMIN)
    room = await resp.json()
    items = [
        {"display_name": "Ana", "country": "PT", "email": "ana@example.org"},
        {"display_name": "Bo", "country": "SE", "role": "moderator", "room_id": room["id"]},
    ]
    resp = await client.post(import_url(workshop["id"]), json=items, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["imported"] == 2
    assert [(p["display_name"], p["role"], p["room_id"]) for p in body["items"]] == [
        ("Ana", "participant", None),
        ("Bo", "moderator", room["id"]),
    ]
    assert len(await roster(client, workshop["id"])) == 2


async def test_import_by_the_organiser_is_allowed(client: Client) -> None:
    workshop = await create_workshop(client)
    organiser = await add_participant(client, workshop["id"], role="organiser")
    resp = await client.post(
        import_url(workshop["id"]),
        data=f"{HEADER}\nBo,SE,,,\n".encode(),
        headers={**bearer(organiser["join_token"]), **CSV},
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["imported"] == 1


async def test_import_csv_lists_every_bad_row_by_line_and_imports_nothing(client: Client) -> None:
    workshop = await create_workshop(client)
    text = "\n".join(
        [
            HEADER,  # line 1
            "Ana,PT,,,",  # line 2: fine
            "Bo,ZZ,,,",  # line 3: unknown country
            "Cy,FR,,,chair",  # line 4: unknown role
            ",DE,,,",  # line 5: no display name
            "Di,IT,,",  # line 6: a column short
            "Ed,ES,,,,extra",  # line 7: a column too many
            "Flo,BE,,not-an-email,",  # line 8: not an e-mail
        ]
    )
    resp = await client.post(import_url(workshop["id"]), data=text.encode(), headers={**ADMIN, **CSV})
    error = await error_of(resp, 400, "invalid_argument")
    assert "nothing was imported" in error["message"]
    assert [(d["line"], d["field"]) for d in error["details"]] == [
        (3, "country"),
        (4, "role"),
        (5, "display_name"),
        (6, "(row)"),
        (7, "(row)"),
        (8, "email"),
    ]
    assert all(d["message"] for d in error["details"])
    assert await roster(client, workshop["id"]) == []


async def test_import_csv_refuses_e_mails_repeated_in_the_file_or_already_on_the_roster(client: Client) -> None:
    workshop = await create_workshop(client)
    await add_participant(client, workshop["id"], email="taken@example.org")
    before = await roster(client, workshop["id"])
    text = "\n".join(
        [
            HEADER,
            "Ana,PT,,ana@example.org,",
            "Bo,SE,,TAKEN@example.org,",
            "Ana again,PT,,Ana@Example.org,",
        ]
    )
    resp = await client.post(import_url(workshop["id"]), data=text.encode(), headers={**ADMIN, **CSV})
    error = await error_of(resp, 400, "invalid_argument")
    assert [(d["line"], d["field"]) for d in error["details"]] == [(3, "email"), (4, "email")]
    assert "line 2" in error["details"][1]["message"]
    assert await roster(client, workshop["id"]) == before


async def test_import_csv_with_a_wrong_header_names_line_one(client: Client) -> None:
    workshop = await create_workshop(client)
    for header in ("name,country", "display_name,country,phone", "display_name,country,country", ""):
        resp = await client.post(
            import_url(workshop["id"]), data=f"{header}\nAna,PT\n".encode(), headers={**ADMIN, **CSV}
        )
        error = await error_of(resp, 400, "invalid_argument")
        assert [d["line"] for d in error["details"]] == [1]
    assert await roster(client, workshop["id"]) == []


async def test_import_csv_with_only_a_header_has_nothing_to_import(client: Client) -> None:
    workshop = await create_workshop(client)
    resp = await client.post(import_url(workshop["id"]), data=f"{HEADER}\n".encode(), headers={**ADMIN, **CSV})
    await error_of(resp, 400, "invalid_argument")
    resp = await client.post(import_url(workshop["id"]), json=[], headers=ADMIN)
    await error_of(resp, 400, "invalid_argument")


async def test_import_csv_that_is_not_utf8_is_refused(client: Client) -> None:
    workshop = await create_workshop(client)
    data = f"{HEADER}\nJosé,PT,,,\n".encode("latin-1")
    resp = await client.post(import_url(workshop["id"]), data=data, headers={**ADMIN, **CSV})
    error = await error_of(resp, 400, "invalid_argument")
    assert "UTF-8" in error["message"]
    assert await roster(client, workshop["id"]) == []


async def test_import_refuses_more_than_5000_rows(client: Client) -> None:
    workshop = await create_workshop(client)
    data = (HEADER + "\n" + "Ana,PT,,,\n" * 5001).encode()
    resp = await client.post(import_url(workshop["id"]), data=data, headers={**ADMIN, **CSV})
    error = await error_of(resp, 400, "invalid_argument")
    assert "5000" in error["message"]
    assert await roster(client, workshop["id"]) == []


async def test_import_json_lists_bad_items_by_zero_based_index(client: Client) -> None:
    workshop = await create_workshop(client)
    items = [
        {"display_name": "Ana", "country": "PT", "email": "ana@example.org"},
        {"display_name": "Bo", "country": "XX"},
        {"display_name": "Cy", "country": "FR", "shoe_size": 44},
        {"display_name": "Di", "country": "IT", "room_id": str(uuid.uuid4())},
        {"display_name": "Ed", "country": "ES", "email": "ANA@example.org"},
    ]
    resp = await client.post(import_url(workshop["id"]), json=items, headers=ADMIN)
    error = await error_of(resp, 400, "invalid_argument")
    assert [(d["index"], d["field"]) for d in error["details"]] == [
        (1, "country"),
        (2, "shoe_size"),
        (3, "room_id"),
        (4, "email"),
    ]
    assert error["details"][3]["message"] == "same e-mail as index 0"
    assert await roster(client, workshop["id"]) == []


async def test_import_json_that_is_not_a_list_of_objects_is_refused(client: Client) -> None:
    workshop = await create_workshop(client)
    for body in ({"display_name": "Ana", "country": "PT"}, ["Ana"], "Ana"):
        resp = await client.post(import_url(workshop["id"]), json=body, headers=ADMIN)
        await error_of(resp, 400, "invalid_argument")
    resp = await client.post(
        import_url(workshop["id"]), data=b"display_name\nAna", headers={**ADMIN, "Content-Type": "text/plain"}
    )
    await error_of(resp, 400, "invalid_argument")
    assert await roster(client, workshop["id"]) == []


async def test_import_into_a_workshop_that_does_not_exist_is_not_found(client: Client) -> None:
    resp = await client.post(import_url(str(uuid.uuid4())), data=f"{HEADER}\nAna,PT,,,\n", headers={**ADMIN, **CSV})
    await error_of(resp, 404, "not_found")
