"""Watching recordings through the API: chapters, the recordings a participant may watch, grants taken away, and
recording every breakout room when breakouts open."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server import keys
from signaling.audit import ADMIN as ADMIN_ACTOR
from signaling.audit import Change
from tests.helpers import ADMIN, add_participant, bearer, create_workshop, error_of
from tests.signaling.client import join
from tests.signaling.rtc_peer import loopback_ice

Client = TestClient[Any, Any]


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_ice(monkeypatch)  # record-all starts real aiortc recorders


async def _recording(client: Client, workshop: dict[str, Any], *, room_id: str | None = None) -> Any:
    """A recording row made through the store (no recorder peer): the test writes its tracks and answers."""
    wid = uuid.UUID(workshop["id"])
    store = client.app[keys.RECORDING_STORE]
    row = await store.create(
        workshop_id=wid,
        room_id=uuid.UUID(room_id or workshop["plenary_room_id"]),
        room_name="Plenary",
        consent_mode="explicit",
        started_by=None,
        started_by_role="admin",
        change=Change(wid, ADMIN_ACTOR, "recording.start"),
    )
    await store.transition(row["id"], "starting", "recording")
    return row


async def _track(client: Client, recording_id: uuid.UUID, participant_id: str, kind: str, offset_s: float) -> None:
    track_id = uuid.uuid4()
    store = client.app[keys.RECORDING_STORE]
    await store.add_track(
        recording_id,
        uuid.UUID(participant_id),
        track_id=track_id,
        kind=kind,
        codec="opus" if kind == "audio" else "vp8",
        file_key=client.app[keys.STORAGE].key_for(recording_id, track_id),
        offset_s=offset_s,
    )


async def _consent(client: Client, workshop: dict[str, Any], recording_id: uuid.UUID, pid: str, granted: bool) -> None:
    change = Change(uuid.UUID(workshop["id"]), ADMIN_ACTOR, "recording.consent")
    await client.app[keys.RECORDING_STORE].record_consent(recording_id, uuid.UUID(pid), granted, change=change)


async def _stop(client: Client, recording_id: uuid.UUID) -> None:
    store = client.app[keys.RECORDING_STORE]
    await store.transition(recording_id, "recording", "stopping")
    await store.transition(recording_id, "stopping", "ready")


async def _json(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return None if status == 204 else await resp.json()


async def test_chapters_name_joins_leaves_breakouts_and_a_withdrawal_of_those_recorded_only(client: Client) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    ana = await add_participant(client, wid, display_name="Ana", country="PT")
    ben = await add_participant(client, wid, display_name="Ben", country="NG")
    dev = await add_participant(client, wid, display_name="Dev", country="IN")  # declines: never named
    row = await _recording(client, workshop)
    rid = row["id"]

    ana_ws = await join(client, ana["join_token"])
    ben_ws = await join(client, ben["join_token"])
    dev_ws = await join(client, dev["join_token"])
    for person in (ana, ben):
        await _consent(client, workshop, rid, person["id"], True)
        await _track(client, rid, person["id"], "audio", 0.5)
    await _consent(client, workshop, rid, dev["id"], False)

    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts", json={"name": "Groups", "rooms": 2}, headers=ADMIN)
    plan = await _json(resp, 201)
    await _json(await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", json={}, headers=ADMIN))
    close = {"countdown_s": 0}
    await _json(await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/close", json=close, headers=ADMIN))

    await _consent(client, workshop, rid, ben["id"], False)  # Ben withdraws
    await ben_ws.send({"type": "leave"})
    await ben_ws.wait_closed()
    await dev_ws.close()
    await ana_ws.wait_for("peer_left", peer_id=dev["id"])
    await _stop(client, rid)

    body = await _json(await client.get(f"/api/v1/recordings/{rid}/chapters", headers=ADMIN))
    chapters = body["chapters"]
    kinds = [(c["kind"], c["name"]) for c in chapters]
    assert kinds[0] == ("start", None)
    assert ("join", "Ana") in kinds and ("join", "Ben") in kinds
    assert ("breakouts_opened", "Groups") in kinds and ("breakouts_closed", "Groups") in kinds
    assert ("consent", "Ben") in kinds
    assert ("leave", "Ben") in kinds
    assert all(c["participant_id"] != dev["id"] and c["name"] != "Dev" for c in chapters)
    assert [c["at_s"] for c in chapters] == sorted(c["at_s"] for c in chapters)
    assert kinds.index(("breakouts_opened", "Groups")) < kinds.index(("breakouts_closed", "Groups"))
    assert kinds.index(("consent", "Ben")) < kinds.index(("leave", "Ben"))
    withdrawal = next(c for c in chapters if c["kind"] == "consent")
    assert withdrawal["participant_id"] == ben["id"] and "Ben" in withdrawal["label"]
    await ana_ws.close()

    # The same authorisation as the recording: a participant without a grant, and other workshops, get 404.
    url = f"/api/v1/recordings/{rid}/chapters"
    await error_of(await client.get(url, headers=bearer(ana["join_token"])), 404, "not_found")
    other = await create_workshop(client, title="Elsewhere")
    outsider = await add_participant(client, other["id"], display_name="Out", role="organiser")
    await error_of(await client.get(url, headers=bearer(outsider["join_token"])), 404, "not_found")
    await _json(
        await client.post(f"/api/v1/recordings/{rid}/grants", json={"participant_id": ana["id"]}, headers=ADMIN), 204
    )
    assert (await _json(await client.get(url, headers=bearer(ana["join_token"]))))["chapters"] == chapters


async def test_me_recordings_lists_only_what_the_participant_may_watch(client: Client) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    ana = await add_participant(client, wid, display_name="Ana")
    ben = await add_participant(client, wid, display_name="Ben", country="NG")
    mod = await add_participant(client, wid, display_name="Mia", country="IE", role="moderator")
    first = await _recording(client, workshop)
    await _stop(client, first["id"])
    second = await _recording(client, workshop)
    await _stop(client, second["id"])
    other = await create_workshop(client, title="Elsewhere")
    elsewhere = await _recording(client, other)
    await _stop(client, elsewhere["id"])

    async def mine(person: dict[str, Any]) -> list[dict[str, Any]]:
        body = await _json(await client.get("/api/v1/me/recordings", headers=bearer(person["join_token"])))
        items: list[dict[str, Any]] = body["items"]
        return items

    assert await mine(ana) == []
    grant = {"participant_id": ana["id"]}
    await _json(await client.post(f"/api/v1/recordings/{first['id']}/grants", json=grant, headers=ADMIN), 204)
    items = await mine(ana)
    assert [i["id"] for i in items] == [str(first["id"])]
    item = items[0]
    assert item["room_name"] == "Plenary" and item["state"] == "ready"
    assert item["title"] == f"{workshop['title']} · Plenary"
    assert item["duration_s"] is not None and item["duration_s"] >= 0
    assert item["player_url"].endswith(f"/recordings/{first['id']}")
    assert item["composition_state"] in ("none", "queued", "running", "ready", "failed")
    # Ben has no grant: nothing of it, and the recording itself is not found for him.
    assert await mine(ben) == []
    await error_of(
        await client.get(f"/api/v1/recordings/{first['id']}", headers=bearer(ben["join_token"])), 404, "not_found"
    )
    # A moderator watches every recording of the workshop, none of another's.
    assert {i["id"] for i in await mine(mod)} == {str(first["id"]), str(second["id"])}
    await error_of(
        await client.get(f"/api/v1/recordings/{elsewhere['id']}/chapters", headers=bearer(mod["join_token"])),
        404,
        "not_found",
    )
    # The admin token has no recordings of its own.
    await error_of(await client.get("/api/v1/me/recordings", headers=ADMIN), 403, "permission_denied")

    # Taking the grant away hides it again; the grants list says who holds one.
    grants = await _json(
        await client.get(f"/api/v1/recordings/{first['id']}/grants", headers=bearer(mod["join_token"]))
    )
    assert [g["participant_id"] for g in grants["items"]] == [ana["id"]]
    await error_of(
        await client.get(f"/api/v1/recordings/{first['id']}/grants", headers=bearer(ana["join_token"])),
        403,
        "permission_denied",
    )
    revoke = f"/api/v1/recordings/{first['id']}/grants/{ana['id']}"
    await error_of(await client.delete(revoke, headers=bearer(ana["join_token"])), 403, "permission_denied")
    assert (await client.delete(revoke, headers=bearer(mod["join_token"]))).status == 204
    await error_of(await client.delete(revoke, headers=ADMIN), 404, "not_found")
    assert await mine(ana) == []


async def test_opening_breakouts_with_record_records_every_room_of_the_run(client: Client) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    ana = await add_participant(client, wid, display_name="Ana")
    base = f"/api/v1/workshops/{wid}/breakouts"
    plan = await _json(await client.post(base, json={"name": "Groups", "rooms": 2}, headers=ADMIN), 201)
    rooms = [r["id"] for r in plan["rooms"]]
    await _json(await client.put(f"{base}/{plan['id']}/assignments", json={ana["id"]: 0}, headers=ADMIN))
    ana_ws = await join(client, ana["join_token"])

    await _json(await client.post(f"{base}/{plan['id']}/open", json={"record": True}, headers=ADMIN))
    listed = await _json(await client.get(f"/api/v1/workshops/{wid}/recordings", headers=ADMIN))
    by_room = {r["room_id"]: r for r in listed["items"]}
    assert set(by_room) == set(rooms)
    assert all(r["state"] == "recording" for r in by_room.values())
    # Consent as always: Ana, moved into the first room, is asked there.
    started = await ana_ws.wait_for("recording_started")
    assert started["recording_id"] == by_room[rooms[0]]["id"]
    await ana_ws.close()
    for rec in by_room.values():
        await _json(await client.post(f"/api/v1/recordings/{rec['id']}/stop", headers=ADMIN))

    # Without `record`, nothing is recorded; a bad value is refused.
    await _json(await client.post(f"{base}/{plan['id']}/close", json={"countdown_s": 0}, headers=ADMIN))
    await error_of(
        await client.post(f"{base}/{plan['id']}/open", json={"record": "yes"}, headers=ADMIN), 400, "invalid_argument"
    )
    await _json(await client.post(f"{base}/{plan['id']}/open", json={}, headers=ADMIN))
    listed = await _json(await client.get(f"/api/v1/workshops/{wid}/recordings?state=recording", headers=ADMIN))
    assert listed["items"] == []
