"""Setting interpretation up over the API (docs/interpretation.md): a workshop's languages and interpreters' pairs,
validated, audited in the same transaction, and followed at once by the live signalling."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from server import keys
from tests.helpers import ADMIN, add_participant, create_workshop, error_of

Client = TestClient[Any, Any]


async def last_entry(client: Client, action: str) -> dict[str, Any]:
    row = await client.app[keys.POOL].fetchrow(
        "SELECT details::text AS details FROM audit_entries WHERE action = $1 ORDER BY id DESC LIMIT 1", action
    )
    assert row is not None, action
    details: dict[str, Any] = json.loads(row["details"])
    return details


async def test_a_workshop_keeps_its_languages_and_an_interpreter_their_pair_with_audit_entries(client: Client) -> None:
    workshop = await create_workshop(client, languages=["en", "ru"])
    assert workshop["languages"] == ["en", "ru"]
    assert (await last_entry(client, "workshop.create"))["languages"] == ["en", "ru"]
    plain = await create_workshop(client)
    assert plain["languages"] == []

    irina = await add_participant(client, workshop["id"], display_name="Irina", interpreter={"languages": ["ru", "en"]})
    assert irina["interpreter"] == {"languages": ["ru", "en"]}
    assert (await last_entry(client, "participant.create"))["interpreter"] == {"languages": ["ru", "en"]}
    ben = await add_participant(client, workshop["id"], display_name="Ben")
    assert ben["interpreter"] is None

    url = f"/api/v1/workshops/{workshop['id']}"
    resp = await client.patch(url, json={"languages": ["en", "ru", "zh"]}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert (await last_entry(client, "workshop.update"))["changes"] == {"languages": ["en", "ru", "zh"]}
    resp = await client.patch(
        f"{url}/participants/{ben['id']}", json={"interpreter": {"languages": ["en", "zh"]}}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["interpreter"] == {"languages": ["en", "zh"]}
    assert (await last_entry(client, "participant.update"))["changes"] == {"interpreter": {"languages": ["en", "zh"]}}
    roster = await (await client.get(f"{url}/participants", headers=ADMIN)).json()
    assert {p["display_name"]: p["interpreter"] for p in roster["items"]} == {
        "Irina": {"languages": ["ru", "en"]},
        "Ben": {"languages": ["en", "zh"]},
    }
    assert (await (await client.get(url, headers=ADMIN)).json())["languages"] == ["en", "ru", "zh"]
    # The live signalling knows at once, without anyone having joined.
    setup = client.app[keys.SIGNALING].interpretation_setup(workshop["id"])
    assert setup.languages == ("en", "ru", "zh") and setup.interpreters == {irina["id"], ben["id"]}


async def test_bad_languages_and_pairs_outside_the_workshop_are_refused_and_change_nothing(client: Client) -> None:
    for languages in (["EN"], ["english"], ["en", "en"], [f"l{chr(97 + i)}" for i in range(13)], [None]):
        resp = await client.post(
            "/api/v1/workshops",
            json={
                "title": "T",
                "timezone": "UTC",
                "starts_at": "2026-12-01T08:00:00Z",
                "ends_at": "2026-12-01T18:00:00Z",
                "languages": languages,
            },
            headers=ADMIN,
        )
        await error_of(resp, 400, "invalid_argument")
    workshop = await create_workshop(client, languages=["en", "ru"])
    base = f"/api/v1/workshops/{workshop['id']}/participants"
    for pair in (
        {"languages": ["en", "zh"]},
        {"languages": ["en"]},
        {"languages": ["ru", "ru"]},
        {"languages": []},
        {"languages": ["en", "ru"], "into": "ru"},
        ["en", "ru"],
    ):
        body = {"display_name": "X", "country": "PT", "interpreter": pair}
        resp = await client.post(base, json=body, headers=ADMIN)
        await error_of(resp, 400, "invalid_argument")
    roster = await (await client.get(base, headers=ADMIN)).json()
    assert roster["items"] == []

    irina = await add_participant(client, workshop["id"], display_name="Irina", interpreter={"languages": ["en", "ru"]})
    resp = await client.patch(f"/api/v1/workshops/{workshop['id']}", json={"languages": ["en"]}, headers=ADMIN)
    error = await error_of(resp, 409, "conflict")
    assert "Irina" in error["message"]
    resp = await client.patch(f"/api/v1/workshops/{workshop['id']}", json={"languages": None}, headers=ADMIN)
    await error_of(resp, 400, "invalid_argument")
    assert (await (await client.get(f"/api/v1/workshops/{workshop['id']}", headers=ADMIN)).json())["languages"] == [
        "en",
        "ru",
    ]
    resp = await client.patch(f"{base}/{irina['id']}", json={"interpreter": {"languages": ["en", "de"]}}, headers=ADMIN)
    await error_of(resp, 400, "invalid_argument")


async def test_an_interpreter_pair_can_be_imported_with_a_json_roster(client: Client) -> None:
    workshop = await create_workshop(client, languages=["en", "ru"])
    url = f"/api/v1/workshops/{workshop['id']}/participants/import"
    people = [
        {"display_name": "Irina", "country": "RU", "interpreter": {"languages": ["en", "ru"]}},
        {"display_name": "Ana", "country": "PT"},
    ]
    resp = await client.post(url, json=people, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    items = (await resp.json())["items"]
    assert [p["interpreter"] for p in items] == [{"languages": ["en", "ru"]}, None]
    bad = [{"display_name": "Zed", "country": "RU", "interpreter": {"languages": ["en", "zh"]}}]
    resp = await client.post(url, json=bad, headers=ADMIN)
    await error_of(resp, 400, "invalid_argument")
