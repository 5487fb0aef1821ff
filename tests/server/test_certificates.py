"""Certificates of attendance: issued to those present for at least the chosen share, readable PDFs, verification."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pypdf
from aiohttp.test_utils import TestClient

from server import keys
from server.app import SIGNALING_STORE, create_app
from server.records_store import CODE_ALPHABET, new_code
from signaling.clock import ManualClock
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, bearer, create_workshop
from tests.signaling.client import join

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # 09:00 in Brussels
HOURS = 4


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


async def present(client: TestClient[Any, Any], clock: ManualClock, token: str, start: int, end: int) -> None:
    """One person in the plenary from `start` to `end` minutes."""
    clock.set(at(start))
    sc = await join(client, token)
    clock.set(at(end))
    await sc.send({"type": "leave"})
    assert await sc.wait_closed() == 1000


async def test_certificates_go_only_to_those_above_the_threshold_and_verify_by_their_code(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    clock = ManualClock(at(0))
    app = create_app(make_settings(database_url, tmp_path / "var"))
    app[keys.CLOCK] = clock
    client: TestClient[Any, Any] = await aiohttp_client(app)
    workshop = await create_workshop(
        client,
        title="Cross-border investigations",
        timezone="Europe/Brussels",
        starts_at=START.isoformat(),
        ends_at=at(HOURS * 60).isoformat(),
    )
    wid = workshop["id"]
    organiser = await add_participant(client, wid, display_name="Olga", country="BE", role="organiser")
    irina = await add_participant(
        client, wid, display_name="Ирина Петрова", country="UA", organisation="Національна поліція"
    )
    jose = await add_participant(client, wid, display_name="José Muñoz", country="ES", organisation="Guardia Civil")
    brief = await add_participant(client, wid, display_name="Brief Visitor", country="DE", organisation="BKA")
    await add_participant(client, wid, display_name="Absent", country="FR")
    # Irina: the whole day, before the start included; José: three hours exactly (75 %); Brief: an hour.
    await present(client, clock, irina["join_token"], -30, HOURS * 60)
    await present(client, clock, jose["join_token"], 30, 210)
    await present(client, clock, brief["join_token"], 0, 60)
    await asyncio.wait_for(client.server.app[SIGNALING_STORE].flushed(), 10)

    url = f"/api/v1/workshops/{wid}/certificates"
    resp = await client.post(url, json={"min_share": 0.75}, headers=bearer(organiser["join_token"]))
    assert resp.status == 201, await resp.text()
    result = await resp.json()
    issued = {c["display_name"]: c for c in result["issued"]}
    assert sorted(issued) == ["José Muñoz", "Ирина Петрова"]
    assert result["already_issued"] == []
    assert issued["Ирина Петрова"]["minutes_attended"] == HOURS * 60  # within the scheduled time
    assert issued["José Muñoz"]["minutes_attended"] == 180
    for cert in issued.values():
        assert re.fullmatch(f"[{CODE_ALPHABET}]{{20}}", cert["code"])
        assert cert["dates"] == "01 December 2026, 09:00\N{EN DASH}13:00 (Europe/Brussels)"
    assert issued["Ирина Петрова"]["code"] != issued["José Muñoz"]["code"]

    # Issuing again with a lower threshold adds Brief and keeps the others' certificates as they were.
    resp = await client.post(url, json={"min_share": 0.25}, headers=ADMIN)
    again = await resp.json()
    assert [c["display_name"] for c in again["issued"]] == ["Brief Visitor"]
    assert sorted(again["already_issued"]) == sorted([irina["id"], jose["id"]])
    resp = await client.get(url, headers=ADMIN)
    listed = {c["display_name"]: c for c in (await resp.json())["items"]}
    assert sorted(listed) == ["Brief Visitor", "José Muñoz", "Ирина Петрова"]
    assert listed["José Muñoz"]["code"] == issued["José Muñoz"]["code"]

    # The PDF states it all, Cyrillic included; the participant may fetch their own, nobody else's.
    cert = issued["Ирина Петрова"]
    resp = await client.get(f"{url}/{irina['id']}/pdf", headers=bearer(irina["join_token"]))
    assert resp.status == 200 and resp.content_type == "application/pdf"
    text = pdf_text(await resp.read())
    for expected in (
        "Certificate of attendance",
        "Ирина Петрова",
        "Національна поліція, UA",
        "Cross-border investigations",
        "01 December 2026, 09:00\N{EN DASH}13:00 (Europe/Brussels)",
        "240 minutes",
        "-".join(cert["code"][i : i + 4] for i in range(0, 20, 4)),
        cert["verify_url"],
    ):
        assert expected in text, (expected, text)
    resp = await client.get(f"{url}/{irina['id']}/pdf", headers=bearer(jose["join_token"]))
    assert resp.status == 403
    resp = await client.get(f"{url}/{organiser['id']}/pdf", headers=ADMIN)
    assert resp.status == 404  # the organiser never attended: no certificate

    # Verification: no login; JSON or a page; only what the certificate states.
    resp = await client.get(f"/verify/{cert['code']}")
    assert resp.status == 200, await resp.text()
    verified = await resp.json()
    assert verified == {
        "valid": True,
        "code": "-".join(cert["code"][i : i + 4] for i in range(0, 20, 4)),
        "display_name": "Ирина Петрова",
        "organisation": "Національна поліція",
        "country": "UA",
        "workshop_title": "Cross-border investigations",
        "dates": cert["dates"],
        "minutes_attended": 240,
        "issued_at": cert["issued_at"],
    }
    resp = await client.get(f"/verify/{verified['code'].lower()}", headers={"Accept": "text/html"})
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "Ирина Петрова" in page and "Cross-border investigations" in page
    assert '<html lang="en">' in page and "Minutes attended" in page
    resp = await client.get(
        f"/verify/{verified['code']}",
        headers={"Accept": "text/html", "Accept-Language": "de;q=1, ru-RU;q=0.8, en;q=0.5"},
    )
    page = await resp.text()
    assert '<html lang="ru">' in page and "Минут участия" in page and "Ирина Петрова" in page
    made_up = new_code()
    for code in (made_up, "not-a-code", cert["code"][:-1] + ("A" if cert["code"][-1] != "A" else "B")):
        resp = await client.get(f"/verify/{code}")
        assert resp.status == 404, code
        assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.get(f"/verify/{made_up}", headers={"Accept": "text/html"})
    assert resp.status == 404 and "not found" in (await resp.text())
    resp = await client.get(f"/verify/{made_up}", headers={"Accept": "text/html", "Accept-Language": "ru"})
    assert resp.status == 404 and "Сертификат не найден" in (await resp.text())


async def test_issuing_needs_a_share_between_zero_and_one(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    for body in ({"min_share": 0}, {"min_share": 1.5}, {"min_share": "0.5"}, {}):
        resp = await client.post(f"/api/v1/workshops/{workshop['id']}/certificates", json=body, headers=ADMIN)
        assert resp.status == 400, body
