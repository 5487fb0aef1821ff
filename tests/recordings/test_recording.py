"""Recording through the real server: an aiortc recorder peer, consent, files that decode, downloads."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import pytest
from aiohttp.test_utils import TestClient

from server import keys
from tests.helpers import ADMIN, add_participant, bearer, create_workshop
from tests.recordings.peer import COLOURS, RecordedPeer
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


async def start_recording(client: TestClient[Any, Any], room_id: str, token: str) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/rooms/{room_id}/recordings", headers=bearer(token))
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert body["state"] == "recording"
    return body


async def get(client: TestClient[Any, Any], url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = await client.get(url, headers=headers or ADMIN)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def plane_mean(plane: Any) -> float:
    """Mean of a plane's visible bytes (each row is padded to `line_size`)."""
    data, width = bytes(plane), plane.width
    rows = [data[r * plane.line_size : r * plane.line_size + width] for r in range(plane.height)]
    return sum(sum(row) for row in rows) / (width * plane.height)


def mean_chroma(path: Path) -> tuple[float, float, int]:
    """Average U and V of the decoded video frames, and how many there were."""
    total_u = total_v = 0.0
    frames = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yuv = frame.reformat(format="yuv420p")
            total_u += plane_mean(yuv.planes[1])
            total_v += plane_mean(yuv.planes[2])
            frames += 1
    return total_u / max(frames, 1), total_v / max(frames, 1), frames


def audio_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(audio=0))


async def download(client: TestClient[Any, Any], url: str, headers: dict[str, str] | None = None) -> bytes:
    parts = urlsplit(url)
    resp = await client.get(f"{parts.path}?{parts.query}", headers=headers or {})
    assert resp.status == 200, await resp.text()
    return await resp.read()


async def test_two_consenting_participants_are_recorded_in_files_that_decode_to_their_media(
    client: TestClient[Any, Any], peers: list[RecordedPeer], tmp_path: Path
) -> None:
    workshop = await create_workshop(client)
    room_id = workshop["plenary_room_id"]
    moderator = await add_participant(client, workshop["id"], display_name="Mod", role="moderator")
    red_p = await add_participant(client, workshop["id"], display_name="Red", country="AT")
    blue_p = await add_participant(client, workshop["id"], display_name="Blue", country="BE")
    red = await RecordedPeer(client, red_p["join_token"], "red", 440).join()
    blue = await RecordedPeer(client, blue_p["join_token"], "blue", 660).join()
    peers += [red, blue]

    rec = await start_recording(client, room_id, moderator["join_token"])
    for peer in (red, blue):
        started = await peer.next("recording_started")
        assert started["recording_id"] == rec["id"]
        await peer.consent(rec["id"], True)
        await peer.send_media(started["recorder_peer_id"])
    await asyncio.gather(red.wait_sending(), blue.wait_sending())

    resp = await client.post(f"/api/v1/recordings/{rec['id']}/stop", headers=bearer(moderator["join_token"]))
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["state"] == "ready"
    for peer in (red, blue):
        assert (await peer.next("recording_stopped"))["recording_id"] == rec["id"]

    detail = await get(client, f"/api/v1/recordings/{rec['id']}")
    assert sorted(detail["consent"]["granted"]) == sorted([red.id, blue.id])
    tracks = detail["tracks"]
    assert sorted((t["participant_id"], t["kind"]) for t in tracks) == sorted(
        (p.id, k) for p in (red, blue) for k in ("audio", "video")
    )
    colour_of = {red.id: "red", blue.id: "blue"}
    for track in tracks:
        data = await download(client, track["download_url"])
        assert hashlib.sha256(data).hexdigest() == track["sha256"]
        assert len(data) == track["bytes"]
        path = tmp_path / f"{track['id']}.webm"
        path.write_bytes(data)
        assert 0.5 < track["duration_s"] < 30
        if track["kind"] == "video":
            assert track["codec"] == "vp8"
            u, v, frames = mean_chroma(path)
            assert frames >= 10
            _, want_u, want_v = COLOURS[colour_of[track["participant_id"]]]
            assert abs(u - want_u) < 20 and abs(v - want_v) < 20, (colour_of[track["participant_id"]], u, v)
        else:
            assert track["codec"] == "opus"
            assert audio_frames(path) >= 10


async def test_a_decliner_is_never_recorded_and_a_withdrawal_ends_the_track_there(
    client: TestClient[Any, Any], peers: list[RecordedPeer]
) -> None:
    workshop = await create_workshop(client)
    room_id = workshop["plenary_room_id"]
    no_p = await add_participant(client, workshop["id"], display_name="No", country="DE")
    quit_p = await add_participant(client, workshop["id"], display_name="Quitter", country="FR")
    late_p = await add_participant(client, workshop["id"], display_name="Late", country="PL")
    decliner = await RecordedPeer(client, no_p["join_token"], "green", 300).join()
    quitter = await RecordedPeer(client, quit_p["join_token"], "red", 500).join()
    peers += [decliner, quitter]

    rec = await start_recording(client, room_id, ADMIN["Authorization"].removeprefix("Bearer "))
    recorder = (await decliner.next("recording_started"))["recorder_peer_id"]
    await quitter.next("recording_started")

    await decliner.consent(rec["id"], False)
    await decliner.send({"type": "offer", "to": recorder, "sdp": "v=0", "request_id": "o1"})
    refused = await decliner.next("error")
    assert refused["code"] == "permission_denied"
    assert refused["request_id"] == "o1"

    await quitter.consent(rec["id"], True)
    await quitter.send_media(recorder)
    await quitter.wait_sending()
    await quitter.consent(rec["id"], False)  # withdraw: the recorder stops their tracks now
    live = client.app[keys.RECORDINGS].live[__import__("uuid").UUID(rec["id"])]
    assert quitter.id not in live.recorder.pcs
    await quitter.send({"type": "offer", "to": recorder, "sdp": "v=0", "request_id": "o2"})
    assert (await quitter.next("error"))["code"] == "permission_denied"

    # Someone joining during the recording learns of it in welcome.
    late = await RecordedPeer(client, late_p["join_token"], "blue", 700).join()
    peers.append(late)
    assert late.signal is not None
    assert late.signal.welcome["recording"]["recording_id"] == rec["id"]

    resp = await client.post(f"/api/v1/recordings/{rec['id']}/stop", headers=ADMIN)
    assert resp.status == 200
    detail = await get(client, f"/api/v1/recordings/{rec['id']}")
    assert {t["participant_id"] for t in detail["tracks"]} == {quitter.id}
    stopped_at = detail["stopped_at"]
    for track in detail["tracks"]:
        assert track["ended_at"] is not None and track["ended_at"] < stopped_at, "the withdrawal ended it"
    assert detail["consent"]["declined"] == sorted([decliner.id, quitter.id]) or set(detail["consent"]["declined"]) == {
        decliner.id,
        quitter.id,
    }
    ledger = [(e["participant_id"], e["granted"]) for e in detail["consent"]["ledger"]]
    assert ledger == [(decliner.id, False), (quitter.id, True), (quitter.id, False)]


async def test_ranged_reads_reassemble_the_file_and_access_is_checked_and_logged(
    client: TestClient[Any, Any], peers: list[RecordedPeer]
) -> None:
    workshop = await create_workshop(client)
    other = await create_workshop(client, title="Other")
    room_id = workshop["plenary_room_id"]
    person = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    bystander = await add_participant(client, workshop["id"], display_name="Bo", country="SE")
    foreign = await add_participant(client, other["id"], display_name="Mod", country="NL", role="moderator")
    peer = await RecordedPeer(client, person["join_token"], "blue", 440).join()
    peers.append(peer)
    rec = await start_recording(client, room_id, ADMIN["Authorization"].removeprefix("Bearer "))
    started = await peer.next("recording_started")
    await peer.consent(rec["id"], True)
    await peer.send_media(started["recorder_peer_id"])
    await peer.wait_sending()
    await client.post(f"/api/v1/recordings/{rec['id']}/stop", headers=ADMIN)
    detail = await get(client, f"/api/v1/recordings/{rec['id']}")
    video = next(t for t in detail["tracks"] if t["kind"] == "video")
    file_url = f"/api/v1/recordings/{rec['id']}/tracks/{video['id']}/file"

    # A player-style sequence of ranged reads.
    chunks, start, size = [], 0, video["bytes"]
    while start < size:
        end = min(start + 4095, size - 1)
        resp = await client.get(file_url, headers={**ADMIN, "Range": f"bytes={start}-{end}"})
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        assert resp.headers["Content-Type"] == "video/webm"
        chunks.append(await resp.read())
        start = end + 1
    assert hashlib.sha256(b"".join(chunks)).hexdigest() == video["sha256"]
    resp = await client.get(file_url, headers={**ADMIN, "Range": "bytes=0-9", "If-Range": '"stale"'})
    assert resp.status == 200, "a stale If-Range gets the whole file"

    # The signed URL plays without a header; a tampered one does not.
    parts = urlsplit(video["download_url"])
    resp = await client.get(f"{parts.path}?{parts.query}", headers={"Range": "bytes=10-19"})
    assert resp.status == 206
    resp = await client.get(f"{parts.path}?{parts.query.replace('sig=', 'sig=0')}")
    assert resp.status == 401
    resp = await client.get(file_url)
    assert resp.status == 401

    # Participants need a grant; other workshops see nothing.
    for token, status in ((bystander["join_token"], 404), (foreign["join_token"], 404)):
        resp = await client.get(file_url, headers=bearer(token))
        assert resp.status == status
        resp = await client.get(f"/api/v1/recordings/{rec['id']}", headers=bearer(token))
        assert resp.status == status
    resp = await client.post(
        f"/api/v1/recordings/{rec['id']}/grants", json={"participant_id": bystander["id"]}, headers=ADMIN
    )
    assert resp.status == 204
    resp = await client.get(file_url, headers=bearer(bystander["join_token"]))
    assert resp.status == 200
    listed = await get(
        client, f"/api/v1/workshops/{workshop['id']}/recordings", headers=bearer(bystander["join_token"])
    )
    assert [r["id"] for r in listed["items"]] == [rec["id"]]

    log = await get(client, f"/api/v1/recordings/{rec['id']}/downloads")
    principals = {(d["principal"], d["via"]) for d in log["items"]}
    assert ("admin", "bearer") in principals
    assert ("admin", "signed_url") in principals
    assert (bystander["id"], "bearer") in principals
    assert len(log["items"]) == len(chunks) + 3

    # Deletion removes the files and keeps a tombstone.
    resp = await client.delete(f"/api/v1/recordings/{rec['id']}", headers=ADMIN)
    assert resp.status == 204
    gone = await get(client, f"/api/v1/recordings/{rec['id']}")
    assert gone["state"] == "deleted"
    assert gone["deleted_by"] == "admin"
    resp = await client.get(file_url, headers=ADMIN)
    assert resp.status == 404
