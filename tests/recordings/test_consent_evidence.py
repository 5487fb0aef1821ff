"""A recording's consent evidence: who was asked, every answer with its connection, who is in which track, who was
never recorded, and every download; as JSON and as a PDF for a data-protection officer."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pypdf
import pytest
from aiohttp.test_utils import TestClient

from server.app import SIGNALING_STORE
from tests.helpers import ADMIN, add_participant, bearer, create_workshop
from tests.recordings.peer import RecordedPeer
from tests.signaling.rtc_peer import loopback_ice


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_ice(monkeypatch)


@pytest.fixture
async def peers() -> AsyncIterator[list[RecordedPeer]]:
    made: list[RecordedPeer] = []
    yield made
    for peer in made:
        await peer.close()


def connection_of(peer: RecordedPeer) -> str:
    """The session id the server gave the peer's WebSocket (X-Request-Id), as its logs name it."""
    assert peer.signal is not None
    response = peer.signal.ws._response
    session_id: str = response.headers["X-Request-Id"]
    return session_id


async def test_consent_export_lists_exactly_the_consenting_declining_and_withdrawn_people_and_the_downloads(
    client: TestClient[Any, Any], peers: list[RecordedPeer]
) -> None:
    workshop = await create_workshop(client, timezone="Europe/Kyiv")
    wid, room_id = workshop["id"], workshop["plenary_room_id"]
    organiser = await add_participant(client, wid, display_name="Olga", country="UA", role="organiser")
    moderator = await add_participant(client, wid, display_name="Mod", country="BE", role="moderator")
    yes_p = await add_participant(client, wid, display_name="Ana Żółć", country="PL", organisation="KGP")
    no_p = await add_participant(client, wid, display_name="Борис Ельцин", country="UA", organisation="НПУ")
    quit_p = await add_participant(client, wid, display_name="Chloé", country="FR", organisation="OFAC")
    silent_p = await add_participant(client, wid, display_name="Dan Silent", country="IE")
    await add_participant(client, wid, display_name="Never There", country="DE")
    yes = await RecordedPeer(client, yes_p["join_token"], "red", 440).join()
    no = await RecordedPeer(client, no_p["join_token"], "green", 300).join()
    quitter = await RecordedPeer(client, quit_p["join_token"], "blue", 660).join()
    silent = await RecordedPeer(client, silent_p["join_token"], "red", 500).join()
    peers += [yes, no, quitter, silent]

    resp = await client.post(f"/api/v1/rooms/{room_id}/recordings", headers=bearer(organiser["join_token"]))
    assert resp.status == 201, await resp.text()
    rec = await resp.json()
    for peer in peers:
        started = await peer.next("recording_started")
    recorder = started["recorder_peer_id"]
    await yes.consent(rec["id"], True)
    await no.consent(rec["id"], False)
    await quitter.consent(rec["id"], True)
    await yes.send_media(recorder)
    await quitter.send_media(recorder)
    await yes.wait_sending()
    await quitter.wait_sending()
    await quitter.consent(rec["id"], False)  # withdrawn
    resp = await client.post(f"/api/v1/recordings/{rec['id']}/stop", headers=ADMIN)
    assert resp.status == 200, await resp.text()

    # Two downloads: the organiser through a signed URL, the admin with the bearer token.
    resp = await client.get(f"/api/v1/recordings/{rec['id']}", headers=bearer(organiser["join_token"]))
    detail = await resp.json()
    track_of = {(t["participant_id"], t["kind"]): t for t in detail["tracks"]}
    url = urlsplit(track_of[(yes.id, "video")]["download_url"])
    resp = await client.get(f"{url.path}?{url.query}")
    assert resp.status == 200
    await resp.read()
    resp = await client.get(
        f"/api/v1/recordings/{rec['id']}/tracks/{track_of[(quitter.id, 'audio')]['id']}/file", headers=ADMIN
    )
    assert resp.status == 200
    await resp.read()

    await asyncio.wait_for(client.server.app[SIGNALING_STORE].flushed(), 10)  # the visits that say who was asked
    resp = await client.get(f"/api/v1/recordings/{rec['id']}/consent-evidence", headers=bearer(organiser["join_token"]))
    assert resp.status == 200, await resp.text()
    evidence = await resp.json()
    people = {p["display_name"]: p for p in evidence["people"]}
    assert {name: (p["status"], p["tracks"]) for name, p in people.items()} == {
        "Ana Żółć": ("consented", ["audio", "video"]),
        "Борис Ельцин": ("declined", []),
        "Chloé": ("withdrawn", ["audio", "video"]),
        "Dan Silent": ("no_answer", []),
    }
    assert all(p["asked_at"] is not None for p in people.values())
    assert not people["Dan Silent"]["consent_held"] and people["Ana Żółć"]["consent_held"]
    assert sorted(evidence["never_recorded"]) == sorted([no.id, silent.id])
    assert [(e["display_name"], e["granted"], e["connection_id"]) for e in evidence["ledger"]] == [
        ("Ana Żółć", True, connection_of(yes)),
        ("Борис Ельцин", False, connection_of(no)),
        ("Chloé", True, connection_of(quitter)),
        ("Chloé", False, connection_of(quitter)),
    ]
    # The ledger at every moment: after each answer, who stood where.
    assert [(s["consented"], s["declined"], s["withdrawn"]) for s in evidence["states"]] == [
        ([yes.id], [], []),
        ([yes.id], [no.id], []),
        (sorted([yes.id, quitter.id]), [no.id], []),
        ([yes.id], [no.id], [quitter.id]),
    ]
    assert [
        (d["by_name"], d["track_owner"], d["track_kind"], d["via"], d["status"]) for d in evidence["downloads"]
    ] == [
        ("Olga", "Ana Żółć", "video", "signed_url", 200),
        ("admin", "Chloé", "audio", "bearer", 200),
    ]
    assert {(t["participant_id"], t["kind"]) for t in evidence["tracks"]} == set(track_of)

    resp = await client.get(f"/api/v1/recordings/{rec['id']}/consent-evidence.pdf", headers=ADMIN)
    assert resp.status == 200 and resp.content_type == "application/pdf"
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(await resp.read())).pages)
    lines = text.splitlines()
    for name, status in (
        ("Ana Żółć", "consented"),
        ("Борис Ельцин", "declined"),
        ("Chloé", "withdrawn"),
        ("Dan Silent", "no_answer"),
    ):
        assert any(name in line and status in line for line in lines), (name, status, text)
    assert text.count("never recorded") == 2
    assert "Olga" in text and "signed_url" in text and "bearer" in text
    assert connection_of(quitter) in text
    assert "Never There" not in text

    # The organiser's (and the admin's) alone.
    other = await create_workshop(client, title="Other")
    stranger = await add_participant(client, other["id"], display_name="Stranger", role="organiser")
    for token, status in (
        (moderator["join_token"], 403),
        (yes_p["join_token"], 403),
        (stranger["join_token"], 404),
    ):
        for suffix in ("", ".pdf"):
            resp = await client.get(f"/api/v1/recordings/{rec['id']}/consent-evidence{suffix}", headers=bearer(token))
            assert resp.status == status, (token, suffix, await resp.text())
    resp = await client.get(f"/api/v1/recordings/{rec['id']}/consent-evidence")
    assert resp.status == 401
