"""The composed video: real aiortc peers recorded and composed by the real supervisor and composer subprocess, the
layout checked in the decoded pixels and the mix by frequency; kills, failures, restarts, ranged downloads."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient

from recordings.composition import CompositionConfig, CompositionSupervisor
from recordings.storage import file_facts
from server import keys
from server.settings import Settings
from signaling.audit import ADMIN as ADMIN_ACTOR
from signaling.audit import Change
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, bearer, create_workshop
from tests.recordings.media import (
    Frame,
    decode_audio,
    decode_frames,
    tiles_at,
    tone_strength,
    write_colour,
    write_tone,
)
from tests.recordings.peer import COLOURS, RecordedPeer
from tests.signaling.rtc_peer import loopback_ice

Client = TestClient[Any, Any]
UV = {name: (u, v) for name, (_, u, v) in COLOURS.items()}


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_ice(monkeypatch)


@pytest.fixture
def composition_settings() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, composition_settings: dict[str, Any]) -> Settings:
    return make_settings(database_url, tmp_path / "var", composition_workers=1, **composition_settings)


@pytest.fixture
async def peers() -> AsyncIterator[list[RecordedPeer]]:
    made: list[RecordedPeer] = []
    yield made
    for peer in made:
        await peer.close()


class Events:
    """What the supervisor tells of its runs, in order."""

    def __init__(self, supervisor: CompositionSupervisor) -> None:
        self.queue: asyncio.Queue[tuple[uuid.UUID, str, dict[str, Any]]] = asyncio.Queue()
        supervisor.listeners.append(lambda rid, event, detail: self.queue.put_nowait((rid, event, detail)))

    async def until(self, recording_id: str, event: str, timeout: float = 120) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                rid, name, detail = await self.queue.get()
                if str(rid) == recording_id and name == event:
                    return detail


async def get(client: Client, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = await client.get(url, headers=headers or ADMIN)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def layout_of(client: Client, recording_id: str) -> list[dict[str, Any]]:
    raw = await client.app[keys.POOL].fetchval(
        "SELECT layout FROM recording_compositions WHERE recording_id = $1", uuid.UUID(recording_id)
    )
    layout: list[dict[str, Any]] = json.loads(raw)
    return layout


async def download_ranged(client: Client, url: str, size: int, chunk: int = 64 * 1024) -> bytes:
    parts = urlsplit(url)
    pieces, start = [], 0
    while start < size:
        end = min(start + chunk - 1, size - 1)
        resp = await client.get(f"{parts.path}?{parts.query}", headers={"Range": f"bytes={start}-{end}"})
        assert resp.status == 206, await resp.text()
        assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        assert resp.headers["Content-Type"] == "video/webm"
        pieces.append(await resp.read())
        start = end + 1
    return b"".join(pieces)


def at(frames: list[Frame], t: float) -> Frame:
    return min(frames, key=lambda f: abs(f.t - t))


def seconds_since(started_at: str, when: str) -> float:
    return (datetime.fromisoformat(when) - datetime.fromisoformat(started_at)).total_seconds()


async def record(client: Client, workshop: dict[str, Any], moderator: dict[str, Any]) -> dict[str, Any]:
    room_id = workshop["plenary_room_id"]
    resp = await client.post(f"/api/v1/rooms/{room_id}/recordings", headers=bearer(moderator["join_token"]))
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def stop_and_compose(client: Client, events: Events, recording_id: str) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/recordings/{recording_id}/stop", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert (await events.until(recording_id, "ended"))["state"] == "ready"
    return await get(client, f"/api/v1/recordings/{recording_id}")


async def test_the_composed_video_shows_and_mixes_the_consenting_never_the_decliner(
    client: Client, peers: list[RecordedPeer], tmp_path: Path
) -> None:
    events = Events(client.app[keys.COMPOSER])
    workshop = await create_workshop(client)
    moderator = await add_participant(client, workshop["id"], display_name="Mod", role="moderator")
    people = {
        colour: await add_participant(client, workshop["id"], display_name=colour.title(), country="AT")
        for colour in ("red", "blue", "green")
    }
    red, blue, green = [
        await RecordedPeer(client, people[c]["join_token"], c, hz).join()
        for c, hz in (("red", 440), ("blue", 660), ("green", 300))
    ]
    peers += [red, blue, green]
    rec = await record(client, workshop, moderator)
    await green.next("recording_started")
    await green.consent(rec["id"], False)
    for peer in (red, blue):
        started = await peer.next("recording_started")
        await peer.consent(rec["id"], True)
        await peer.send_media(started["recorder_peer_id"])
    await asyncio.gather(red.wait_sending(), blue.wait_sending())
    await red.wait_sending()  # a second and a half more, both sending

    detail = await stop_and_compose(client, events, rec["id"])
    composition = detail["composition"]
    assert composition["state"] == "ready" and composition["progress"] == 1.0 and composition["error"] is None
    (composed,) = composition["files"]
    assert (composed["format"], composed["codec"], composed["width"], composed["height"]) == (
        "webm",
        "vp8+opus",
        960,
        540,
    )

    # Downloaded by ranges through the signed URL, like a <video> element: the bytes are the sha256 listed.
    data = await download_ranged(client, composed["download_url"], composed["bytes"])
    assert hashlib.sha256(data).hexdigest() == composed["sha256"]
    path = tmp_path / "composed.webm"
    path.write_bytes(data)
    log = await get(client, f"/api/v1/recordings/{rec['id']}/downloads")
    assert sum(1 for d in log["items"] if d["via"] == "signed_url") >= 1

    tracks = {(t["participant_id"], t["kind"]): t for t in detail["tracks"]}
    assert {pid for pid, _ in tracks} == {red.id, blue.id}
    end = max(t["offset_s"] + t["duration_s"] for t in tracks.values())
    frames = decode_frames(path)
    assert frames[-1].t >= end - 0.5, "decodes for the whole duration"
    assert len(frames) >= int(end * 15) - 2

    # Both consenting colours, each in its own tile by the layout; the decliner's nowhere.
    videos = [tracks[(p.id, "video")] for p in (red, blue)]
    both_from = max(v["offset_s"] for v in videos) + 0.5
    both_to = min(v["offset_s"] + v["duration_s"] for v in videos) - 0.5
    layout = await layout_of(client, rec["id"])
    checked = 0
    for frame in frames:
        assert frame.share_of(UV["green"]) < 0.001, f"the decliner's colour at {frame.t}"
        if not both_from <= frame.t <= both_to:
            continue
        tiles = tiles_at(layout, frame.t)
        for peer in (red, blue):
            tile = tiles[peer.id]
            u, v = frame.chroma(tile["x"], tile["y"], tile["w"], tile["h"])
            want_u, want_v = UV[peer.colour]
            assert abs(u - want_u) < 20 and abs(v - want_v) < 20, (peer.colour, frame.t, tile, u, v)
        checked += 1
    assert checked >= 15

    # The mix: both consenting tones where both spoke, never the decliner's.
    audios = [tracks[(p.id, "audio")] for p in (red, blue)]
    lo = max(a["offset_s"] for a in audios) + 0.2
    hi = min(a["offset_s"] + a["duration_s"] for a in audios) - 0.2
    samples = decode_audio(path)[int(lo * 48000) : int(hi * 48000)]
    assert len(samples) > 48000
    strength = {hz: tone_strength(samples, hz) for hz in (300, 440, 660)}
    assert strength[440] > 30 * strength[300] and strength[660] > 30 * strength[300], strength


async def test_a_late_joiner_s_tile_starts_and_a_withdrawn_one_ends_where_their_tracks_do(
    client: Client, peers: list[RecordedPeer], tmp_path: Path
) -> None:
    events = Events(client.app[keys.COMPOSER])
    workshop = await create_workshop(client)
    moderator = await add_participant(client, workshop["id"], display_name="Mod", role="moderator")
    stay_p, quit_p, late_p = [
        await add_participant(client, workshop["id"], display_name=name, country="FR")
        for name in ("Stays", "Quits", "Late")
    ]
    stays = await RecordedPeer(client, stay_p["join_token"], "red", 440).join()
    quits = await RecordedPeer(client, quit_p["join_token"], "blue", 660).join()
    peers += [stays, quits]
    rec = await record(client, workshop, moderator)
    for peer in (stays, quits):
        started = await peer.next("recording_started")
        await peer.consent(rec["id"], True)
        await peer.send_media(started["recorder_peer_id"])
    await asyncio.gather(stays.wait_sending(), quits.wait_sending())

    late = await RecordedPeer(client, late_p["join_token"], "green", 300).join()
    peers.append(late)
    assert late.signal is not None
    await late.consent(rec["id"], True)
    await late.send_media(late.signal.welcome["recording"]["recorder_peer_id"])
    await late.wait_sending()
    await quits.consent(rec["id"], False)  # acknowledged once the recorder has ended their tracks
    await late.wait_sending()

    detail = await stop_and_compose(client, events, rec["id"])
    path = tmp_path / "composed.webm"
    path.write_bytes(
        await download_ranged(
            client, detail["composition"]["files"][0]["download_url"], detail["composition"]["files"][0]["bytes"]
        )
    )
    frames = decode_frames(path)
    layout = await layout_of(client, rec["id"])
    joined = next(t for t in detail["tracks"] if t["participant_id"] == late.id and t["kind"] == "video")["offset_s"]
    withdrawn = seconds_since(
        detail["started_at"],
        next(e["at"] for e in detail["consent"]["ledger"] if e["participant_id"] == quits.id and not e["granted"]),
    )
    assert 1.0 < joined < withdrawn

    # In the layout: the late tile's first moment and the withdrawn tile's last, within half a second.
    first_late = min(s["from_s"] for s in layout if any(t["participant_id"] == late.id for t in s["tiles"]))
    last_quit = max(s["to_s"] for s in layout if any(t["participant_id"] == quits.id for t in s["tiles"]))
    assert abs(first_late - joined) <= 0.5, (first_late, joined)
    assert abs(last_quit - withdrawn) <= 0.5, (last_quit, withdrawn)

    # In the pixels: the colours are there just inside those bounds and nowhere just outside.
    before, after = at(frames, joined - 0.55), at(frames, joined + 0.55)
    assert before.share_of(UV["green"]) < 0.001
    tile = tiles_at(layout, after.t)[late.id]
    u, v = after.chroma(tile["x"], tile["y"], tile["w"], tile["h"])
    assert abs(u - UV["green"][0]) < 20 and abs(v - UV["green"][1]) < 20, (after.t, u, v)
    before, after = at(frames, withdrawn - 0.55), at(frames, withdrawn + 0.55)
    tile = tiles_at(layout, before.t)[quits.id]
    u, v = before.chroma(tile["x"], tile["y"], tile["w"], tile["h"])
    assert abs(u - UV["blue"][0]) < 20 and abs(v - UV["blue"][1]) < 20, (before.t, u, v)
    assert after.share_of(UV["blue"]) < 0.001
    assert quits.id not in tiles_at(layout, after.t)


async def synthetic_recording(client: Client, tmp: Path, people: list[tuple[str, str, float, float, float]]) -> str:
    """A ready recording made through the stores: per (participant id, colour, tone Hz, offset, seconds) a video and
    an audio track file on disk. Becoming ready queues it."""
    store, storage = client.app[keys.RECORDING_STORE], client.app[keys.STORAGE]
    participant = await client.app[keys.STORE].find_participant(uuid.UUID(people[0][0]))
    assert participant is not None
    wid = participant["workshop_id"]
    workshop = await get(client, f"/api/v1/workshops/{wid}")
    row = await store.create(
        workshop_id=wid,
        room_id=uuid.UUID(workshop["plenary_room_id"]),
        room_name="Plenary",
        consent_mode="explicit",
        started_by=None,
        started_by_role="admin",
        change=Change(wid, ADMIN_ACTOR, "recording.start"),
    )
    for pid, colour, hz, offset, seconds in people:
        for kind in ("video", "audio"):
            track_id = uuid.uuid4()
            key = storage.key_for(row["id"], track_id)
            path = storage.path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "video":
                write_colour(path, COLOURS[colour], seconds)
            else:
                write_tone(path, hz, seconds)
            await store.add_track(
                row["id"],
                uuid.UUID(pid),
                track_id=track_id,
                kind=kind,
                codec="vp8" if kind == "video" else "opus",
                file_key=key,
                offset_s=offset,
            )
            facts = file_facts(path)
            await store.finish_track(
                track_id, state="complete", size=facts.size, duration_s=facts.duration_s, sha256=facts.sha256
            )
    for expected, target in (("starting", "recording"), ("recording", "stopping")):
        await store.transition(row["id"], expected, target)
    return str(row["id"])


async def ready(client: Client, recording_id: str) -> None:
    await client.app[keys.RECORDING_STORE].transition(uuid.UUID(recording_id), "stopping", "ready")
    client.app[keys.COMPOSER].wake()


async def two_people(client: Client) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    workshop = await create_workshop(client)
    red = await add_participant(client, workshop["id"], display_name="Red", country="AT")
    blue = await add_participant(client, workshop["id"], display_name="Blue", country="BE")
    return workshop, red, blue


async def test_a_composer_killed_midway_is_run_again_from_scratch_and_ends_ready(
    client: Client, tmp_path: Path
) -> None:
    events = Events(client.app[keys.COMPOSER])
    _, red, blue = await two_people(client)
    rid = await synthetic_recording(
        client, tmp_path, [(red["id"], "red", 440, 0.0, 8.0), (blue["id"], "blue", 660, 1.0, 6.0)]
    )
    await ready(client, rid)
    first = await events.until(rid, "started")
    assert first["attempt"] == 1
    await events.until(rid, "progress")  # composing now
    os.kill(first["pid"], signal.SIGKILL)
    assert (await events.until(rid, "ended"))["state"] == "queued"
    second = await events.until(rid, "started")
    assert second["attempt"] == 2 and second["pid"] != first["pid"]
    assert (await events.until(rid, "ended"))["state"] == "ready"

    detail = await get(client, f"/api/v1/recordings/{rid}")
    assert detail["composition"]["state"] == "ready"
    (composed,) = detail["composition"]["files"]
    resp = await client.get(f"/api/v1/recordings/{rid}/composed.webm", headers=ADMIN)
    assert resp.status == 200
    assert hashlib.sha256(await resp.read()).hexdigest() == composed["sha256"]
    assert composed["duration_s"] == pytest.approx(8.0, abs=0.3)
    pool = client.app[keys.POOL]
    assert (
        await pool.fetchval("SELECT attempts FROM recording_compositions WHERE recording_id = $1", uuid.UUID(rid)) == 2
    )
    outcome = await pool.fetchrow(
        "SELECT actor_role, details::text AS details FROM audit_entries WHERE action = 'recording.composed'"
    )
    assert outcome is not None and outcome["actor_role"] == "system"
    assert json.loads(outcome["details"])["state"] == "ready"
    leftovers = sorted(p.name for p in client.app[keys.STORAGE].path(rid).iterdir() if p.name.startswith("composed"))
    assert leftovers == ["composed.webm"], "the killed run's temporary file is gone"

    # Deleting the recording removes the composed file too.
    resp = await client.delete(f"/api/v1/recordings/{rid}", headers=ADMIN)
    assert resp.status == 204
    assert not client.app[keys.STORAGE].path(f"{rid}/composed.webm").exists()
    resp = await client.get(f"/api/v1/recordings/{rid}/composed.webm", headers=ADMIN)
    assert resp.status == 404
    assert (await get(client, f"/api/v1/recordings/{rid}"))["composition"]["files"] == []


async def test_a_corrupt_track_fails_the_composition_with_a_reason_and_every_track_still_downloads(
    client: Client, tmp_path: Path
) -> None:
    events = Events(client.app[keys.COMPOSER])
    _, red, blue = await two_people(client)
    rid = await synthetic_recording(
        client, tmp_path, [(red["id"], "red", 440, 0.0, 2.0), (blue["id"], "blue", 660, 0.0, 2.0)]
    )
    tracks = await client.app[keys.RECORDING_STORE].tracks(uuid.UUID(rid))
    broken = next(t for t in tracks if t["kind"] == "video")
    client.app[keys.STORAGE].path(broken["file_key"]).write_bytes(b"\x1a\x45\xdf\xa3 this is not a WebM file")
    await ready(client, rid)
    assert (await events.until(rid, "ended"))["state"] == "failed"

    detail = await get(client, f"/api/v1/recordings/{rid}")
    composition = detail["composition"]
    assert composition["state"] == "failed"
    assert "cannot be read" in composition["error"] and str(broken["id"]) in composition["error"]
    assert composition["files"] == []
    for track in detail["tracks"]:
        resp = await client.get(f"/api/v1/recordings/{rid}/tracks/{track['id']}/file", headers=ADMIN)
        assert resp.status == 200
    resp = await client.get(f"/api/v1/recordings/{rid}/composed.webm", headers=ADMIN)
    assert resp.status == 404

    # Asking again runs it again (and it fails again, for the same reason); participants may not ask.
    resp = await client.post(f"/api/v1/recordings/{rid}/composition", headers=bearer(red["join_token"]))
    assert resp.status == 404
    resp = await client.post(f"/api/v1/recordings/{rid}/composition", headers=ADMIN)
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["state"] == "queued"
    assert (await events.until(rid, "ended"))["state"] == "failed"
    assert (await get(client, f"/api/v1/recordings/{rid}"))["composition"]["error"] == composition["error"]


@pytest.mark.parametrize("composition_settings", [{"composition_time_limit_s": 0.5}])
async def test_a_composer_over_its_time_limit_is_killed_and_the_composition_fails(
    client: Client, tmp_path: Path
) -> None:
    events = Events(client.app[keys.COMPOSER])
    _, red, blue = await two_people(client)
    rid = await synthetic_recording(
        client, tmp_path, [(red["id"], "red", 440, 0.0, 8.0), (blue["id"], "blue", 660, 0.0, 8.0)]
    )
    await ready(client, rid)
    started = await events.until(rid, "started")
    assert (await events.until(rid, "ended"))["state"] == "failed"
    composition = (await get(client, f"/api/v1/recordings/{rid}"))["composition"]
    assert composition["error"] == "the composer took longer than its limit of 0.5 s"
    with pytest.raises(ProcessLookupError):
        os.kill(started["pid"], 0)  # killed, and reaped
    assert not any(p.name.startswith("composed") for p in client.app[keys.STORAGE].path(rid).iterdir())


async def test_a_composition_left_running_by_a_dead_server_is_queued_again_at_start(
    client: Client, tmp_path: Path
) -> None:
    _, red, blue = await two_people(client)
    rid = await synthetic_recording(
        client, tmp_path, [(red["id"], "red", 440, 0.0, 2.0), (blue["id"], "blue", 660, 0.5, 1.5)]
    )
    pool = client.app[keys.POOL]
    # What a server killed mid-composition leaves: running, its worker's pid, a heartbeat long past.
    await pool.execute(
        "INSERT INTO recording_compositions (recording_id, state, attempts, worker_pid, heartbeat_at, progress) "
        "VALUES ($1, 'running', 1, 999999, now() - interval '1 hour', 0.4)",
        uuid.UUID(rid),
    )
    await client.app[keys.RECORDING_STORE].transition(uuid.UUID(rid), "stopping", "ready")
    assert (await get(client, f"/api/v1/recordings/{rid}"))["composition"]["state"] == "running"

    # A server starting: its supervisor queues the lapsed job again and runs it.
    restarted = CompositionSupervisor(
        client.app[keys.COMPOSITIONS], client.app[keys.STORAGE], CompositionConfig(workers=1, lapse_s=30)
    )
    events = Events(restarted)
    await restarted.start()
    try:
        assert (await events.until(rid, "ended"))["state"] == "ready"
    finally:
        await restarted.close()
    detail = await get(client, f"/api/v1/recordings/{rid}")
    assert detail["composition"]["state"] == "ready" and len(detail["composition"]["files"]) == 1
    assert (
        await pool.fetchval("SELECT attempts FROM recording_compositions WHERE recording_id = $1", uuid.UUID(rid)) == 2
    )


async def test_a_breakout_room_s_recording_is_composed_like_the_plenary_s(
    client: Client, peers: list[RecordedPeer], tmp_path: Path
) -> None:
    events = Events(client.app[keys.COMPOSER])
    workshop = await create_workshop(client)
    red_p = await add_participant(client, workshop["id"], display_name="Red", country="AT")
    blue_p = await add_participant(client, workshop["id"], display_name="Blue", country="BE")
    red = await RecordedPeer(client, red_p["join_token"], "red", 440).join()
    blue = await RecordedPeer(client, blue_p["join_token"], "blue", 660).join()
    peers += [red, blue]
    resp = await client.post(
        f"/api/v1/workshops/{workshop['id']}/breakouts",
        json={"name": "Groups", "rooms": ["A"], "assignments": {red.id: 0, blue.id: 0}},
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    resp = await client.post(
        f"/api/v1/workshops/{workshop['id']}/breakouts/{plan['id']}/open", json={"duration_s": 600}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    room_id = plan["rooms"][0]["id"]
    for peer in (red, blue):
        assert (await peer.next("moved"))["room"]["id"] == room_id

    resp = await client.post(f"/api/v1/rooms/{room_id}/recordings", headers=ADMIN)
    assert resp.status == 201, await resp.text()
    rec = await resp.json()
    for peer in (red, blue):
        started = await peer.next("recording_started")
        await peer.consent(rec["id"], True)
        await peer.send_media(started["recorder_peer_id"])
    await asyncio.gather(red.wait_sending(), blue.wait_sending())

    detail = await stop_and_compose(client, events, rec["id"])
    assert detail["room_id"] == room_id
    (composed,) = detail["composition"]["files"]
    path = tmp_path / "composed.webm"
    path.write_bytes(await download_ranged(client, composed["download_url"], composed["bytes"]))
    layout = await layout_of(client, rec["id"])
    frame = at(decode_frames(path), composed["duration_s"] - 0.7)
    tiles = tiles_at(layout, frame.t)
    for peer in (red, blue):
        tile = tiles[peer.id]
        u, v = frame.chroma(tile["x"], tile["y"], tile["w"], tile["h"])
        assert abs(u - UV[peer.colour][0]) < 20 and abs(v - UV[peer.colour][1]) < 20, (peer.colour, u, v)
