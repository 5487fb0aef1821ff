"""Recording in sfu rooms: Janus records the consenting publishers; at stop their files become WebM tracks."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import numpy

from recordings.composition import CompositionConfig, CompositionSupervisor
from recordings.service import CRASH_REASON
from server import keys
from server.app import JANUS
from tests.helpers import ADMIN
from tests.sfu.conftest import Room
from tests.sfu.peer import BLUE, GREEN, RED, SfuPeer, close_to


async def start_recording(room: Room) -> dict[str, Any]:
    resp = await room.client.post(f"/api/v1/rooms/{room.id}/recordings", headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert body["state"] == "recording"
    return body


async def stop_recording(room: Room, recording_id: str) -> dict[str, Any]:
    resp = await room.client.post(f"/api/v1/recordings/{recording_id}/stop", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    done: dict[str, Any] = await resp.json()
    assert done["state"] == "ready", done
    resp = await room.client.get(f"/api/v1/recordings/{recording_id}", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    detail: dict[str, Any] = await resp.json()
    return detail


async def consent(peer: SfuPeer, recording_id: str, granted: bool) -> None:
    reply = await peer.request({"type": "consent", "recording_id": recording_id, "granted": granted})
    assert reply["type"] == "ack", reply


async def download(room: Room, url: str) -> bytes:
    parts = urlsplit(url)
    resp = await room.client.get(f"{parts.path}?{parts.query}")
    assert resp.status == 200, await resp.text()
    return await resp.read()


def mean_colour(path: Path) -> tuple[tuple[int, int, int], int]:
    """The average RGB of the decoded frames (the last half: the first ones may be a grey start), and how many."""
    colours = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            colours.append(frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0))
    if not colours:
        return (0, 0, 0), 0
    mean = numpy.mean(colours[len(colours) // 2 :], axis=0)
    return (int(mean[0]), int(mean[1]), int(mean[2])), len(colours)


def audio_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(audio=0))


async def more_video(listener: SfuPeer, feed_ids: list[str], frames: int) -> None:
    """Media is the clock: wait until `frames` more video frames of each feed have arrived at the listener."""
    start = {f: listener.got(f, "video").frames for f in feed_ids}
    await listener.wait_until(
        lambda: all(listener.got(f, "video").frames >= start[f] + frames for f in feed_ids),
        f"{frames} more video frames of {feed_ids}",
    )


def files_naming(root: Path, participant_id: str) -> list[Path]:
    return [p for p in root.rglob("*") if participant_id in p.name]


def files_matching(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


Person = tuple[str, tuple[int, int, int], float]


async def publishing_room(room: Room, *people: Person) -> tuple[list[SfuPeer], SfuPeer]:
    """Publishers (name, colour, tone) and a listener subscribed to all of them, receiving their media."""
    publishers = []
    for name, colour, hz in people:
        peer = await room.person(name, colour=colour)
        reply = await peer.publish(colour=colour, hz=hz)
        assert reply["type"] == "published", reply
        publishers.append(peer)
    listener = await room.person("Listener")
    feeds = [p.published["camera"].feed_id for p in publishers]
    await listener.wait_until(lambda: all(f in listener.feeds for f in feeds), "every publisher's feed")
    await listener.subscribe()
    for peer in publishers:
        feed = peer.published["camera"].feed_id
        colour = peer.published["camera"].colour
        await listener.wait_until(lambda f=feed, c=colour: listener.sees(f, c), f"{peer.name}'s colour")  # type: ignore[misc]
    return publishers, listener


async def test_sfu_recording_keeps_the_consenting_publishers_in_decodable_tracks_and_nothing_of_the_decliner(
    sfu_room: Room,
) -> None:
    (red, blue, green), listener = await publishing_room(
        sfu_room, ("Red", RED, 440), ("Blue", BLUE, 550), ("Green", GREEN, 660)
    )
    storage_root: Path = sfu_room.client.app[keys.STORAGE].root
    bridge = sfu_room.client.app[keys.SFU]
    assert bridge.rec_dir is not None
    rec_dir = Path(bridge.rec_dir)

    rec = await start_recording(sfu_room)
    for peer in (red, blue, green, listener):
        started = await peer.wait_message("recording_started")
        assert started["recording_id"] == rec["id"]
        assert started["recorder_peer_id"] == "sfu"
    await consent(red, rec["id"], True)
    await consent(blue, rec["id"], True)
    await consent(green, rec["id"], False)
    recorded = {f.peer_id for f in bridge.recorded_feeds(sfu_room.id)}
    assert recorded == {red.id, blue.id}
    feeds = [p.published["camera"].feed_id for p in (red, blue, green)]
    await more_video(listener, feeds, 60)
    assert files_naming(rec_dir, red.id) and files_naming(rec_dir, blue.id)
    assert not files_naming(storage_root, green.id), "the decliner's media was written"
    assert not files_matching(rec_dir, "videoroom-*"), "Janus recorded someone under a name of its own"

    detail = await stop_recording(sfu_room, rec["id"])
    assert detail["partial"] is False, (detail["failure_reason"], detail["tracks"])
    assert sorted(detail["consent"]["granted"]) == sorted([red.id, blue.id])
    assert detail["consent"]["declined"] == [green.id]
    tracks = detail["tracks"]
    assert sorted((t["participant_id"], t["kind"]) for t in tracks) == sorted(
        (p.id, kind) for p in (red, blue) for kind in ("audio", "video")
    )
    colour_of = {red.id: RED, blue.id: BLUE}
    for track in tracks:
        assert track["state"] == "complete", track
        assert 0 <= track["offset_s"] < 10, track
        assert 1.0 < track["duration_s"] < 60, track
        data = await download(sfu_room, track["download_url"])
        assert hashlib.sha256(data).hexdigest() == track["sha256"]
        assert len(data) == track["bytes"]
        path = storage_root / f"check-{track['id']}.webm"
        path.write_bytes(data)
        if track["kind"] == "video":
            assert track["codec"] == "vp8"
            colour, frames = mean_colour(path)
            assert frames >= 20, track
            assert close_to(colour, colour_of[track["participant_id"]]), (colour, track)
        else:
            assert track["codec"] == "opus"
            assert audio_frames(path) >= 50, track
        path.unlink()
    assert not files_naming(storage_root, green.id), "the decliner's media was written"
    assert not files_matching(rec_dir, f"{rec['id']}.*"), "the raw .mjr files outlived their conversion"
    assert {t["source"] for t in tracks if t["kind"] == "video"} == {"camera"}

    # The composed video (queued at stop; this app runs no composer, so a supervisor is started here): the two
    # consenting colours, never the decliner's.
    composer = CompositionSupervisor(
        sfu_room.client.app[keys.COMPOSITIONS], sfu_room.client.app[keys.STORAGE], CompositionConfig(workers=1)
    )
    ended: asyncio.Queue[str] = asyncio.Queue()
    composer.listeners.append(
        lambda rid, event, detail: ended.put_nowait(detail["state"]) if event == "ended" else None
    )
    await composer.start()
    try:
        async with asyncio.timeout(120):
            assert await ended.get() == "ready"
    finally:
        await composer.close()
    resp = await sfu_room.client.get(f"/api/v1/recordings/{rec['id']}", headers=ADMIN)
    (composed,) = (await resp.json())["composition"]["files"]
    path = storage_root / "check-composed.webm"
    path.write_bytes(await download(sfu_room, composed["download_url"]))
    shares = {RED: 0.0, BLUE: 0.0, GREEN: 0.0}
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    for frame in frames[len(frames) // 2 :]:
        rgb = frame.to_ndarray(format="rgb24").astype(int)
        for colour, share in list(shares.items()):
            near = (numpy.abs(rgb - numpy.array(colour)) <= 40).all(axis=2)
            shares[colour] = max(share, float(near.mean()))
    assert shares[RED] > 0.02 and shares[BLUE] > 0.02 and shares[GREEN] < 0.001, shares
    path.unlink()


async def test_withdrawing_consent_in_an_sfu_room_ends_that_publishers_tracks_there_and_the_others_go_on(
    sfu_room: Room,
) -> None:
    (red, blue), listener = await publishing_room(sfu_room, ("Red", RED, 440), ("Blue", BLUE, 550))
    bridge = sfu_room.client.app[keys.SFU]
    feeds = [p.published["camera"].feed_id for p in (red, blue)]
    rec = await start_recording(sfu_room)
    await consent(red, rec["id"], True)
    await consent(blue, rec["id"], True)
    await more_video(listener, feeds, 45)

    await consent(blue, rec["id"], False)
    # Acknowledged only once Janus has stopped recording the feed.
    assert {f.peer_id for f in bridge.recorded_feeds(sfu_room.id)} == {red.id}
    await more_video(listener, feeds, 75)
    detail = await stop_recording(sfu_room, rec["id"])

    assert detail["partial"] is False, detail["failure_reason"]
    assert [a["granted"] for a in detail["consent"]["ledger"] if a["participant_id"] == blue.id] == [True, False]
    ends = {(t["participant_id"], t["kind"]): t["offset_s"] + t["duration_s"] for t in detail["tracks"]}
    assert set(ends) == {(p.id, kind) for p in (red, blue) for kind in ("audio", "video")}
    for kind in ("audio", "video"):
        # 75 frames at 30 fps: red went on for about 2.5 s after blue's recording ended.
        assert ends[(red.id, kind)] - ends[(blue.id, kind)] > 1.5, (kind, ends)


async def test_janus_killed_mid_recording_keeps_what_it_wrote_and_the_recording_ends_ready_and_partial(
    sfu_room: Room,
) -> None:
    (red,), listener = await publishing_room(sfu_room, ("Red", RED, 440))
    feed = red.published["camera"].feed_id
    rec = await start_recording(sfu_room)
    await consent(red, rec["id"], True)
    # Janus writes its files through a stdio buffer (4 KiB) that a SIGKILL loses; this tiny solid-colour video
    # needs about five seconds to put more than that on disk.
    await more_video(listener, [feed], 150)

    janus = sfu_room.client.app[JANUS]
    assert janus.pid is not None
    os.kill(janus.pid, signal.SIGKILL)
    for peer in (red, listener):
        await peer.wait_message("sfu_unavailable")
        await peer.wait_message("sfu_restored")
    # The clients publish and subscribe again by themselves; the recording goes on with a new segment.
    await listener.wait_until(lambda: listener.sees(feed, RED), "red again")
    await more_video(listener, [feed], 45)
    detail = await stop_recording(sfu_room, rec["id"])

    assert detail["state"] == "ready" and detail["partial"] is True, detail
    assert "SFU" in detail["failure_reason"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for track in detail["tracks"]:
        assert track["participant_id"] == red.id
        by_kind.setdefault(track["kind"], []).append(track)
    for kind, tracks in by_kind.items():
        before, after = sorted(tracks, key=lambda t: t["offset_s"])
        assert (before["state"], after["state"]) == ("partial", "complete"), (kind, tracks)
        assert before["duration_s"] > 0.5 and after["duration_s"] > 0.5, (kind, tracks)
        assert before["offset_s"] + before["duration_s"] <= after["offset_s"] + 0.1, (kind, tracks)
    assert set(by_kind) == {"audio", "video"}


async def test_an_sfu_recording_left_running_by_a_dead_process_is_finished_from_janus_files_as_ready_and_partial(
    sfu_room: Room,
) -> None:
    (red,), listener = await publishing_room(sfu_room, ("Red", RED, 440))
    feed = red.published["camera"].feed_id
    coordinator = sfu_room.client.app[keys.RECORDINGS]
    bridge = sfu_room.client.app[keys.SFU]
    rec = await start_recording(sfu_room)
    await consent(red, rec["id"], True)
    await more_video(listener, [feed], 60)

    # The process dies: its memory of the recording is gone, and Janus closes the files when its session
    # times out. The next process finds the recording live in PostgreSQL and finishes it from the files.
    live = coordinator.live.pop(uuid.UUID(rec["id"]))
    await bridge.record_feed(feed, None)
    assert live.sfu is not None
    assert [r for r in await coordinator.recover() if str(r) == rec["id"]]

    resp = await sfu_room.client.get(f"/api/v1/recordings/{rec['id']}", headers=ADMIN)
    detail = await resp.json()
    assert detail["state"] == "ready" and detail["partial"] is True, detail
    assert detail["failure_reason"].startswith(CRASH_REASON)
    assert sorted(t["kind"] for t in detail["tracks"]) == ["audio", "video"]
    storage_root: Path = sfu_room.client.app[keys.STORAGE].root
    for track in detail["tracks"]:
        assert track["participant_id"] == red.id and track["state"] == "partial", track
        assert track["duration_s"] > 1.0, track
        data = await download(sfu_room, track["download_url"])
        assert hashlib.sha256(data).hexdigest() == track["sha256"]
        if track["kind"] == "video":
            path = storage_root / "check.webm"
            path.write_bytes(data)
            colour, frames = mean_colour(path)
            assert frames >= 20 and close_to(colour, RED), (colour, frames)
