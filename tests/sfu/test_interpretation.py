"""Simultaneous interpretation through Janus (docs/interpretation.md): a floor speaker with one tone, an interpreter
with another into `ru`, and listeners who choose what they hear. The server only orchestrates: what each member
receives is decided by what Janus forwards to its subscription."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import av
import numpy

from recordings.composition import CompositionConfig, CompositionSupervisor
from server import keys
from tests.helpers import ADMIN
from tests.recordings.media import decode_audio, tone_strength
from tests.sfu.conftest import Room
from tests.sfu.peer import BLUE, SfuPeer, dominant_hz
from tests.sfu.test_recording import download, start_recording, stop_recording

FLOOR_HZ = 400.0
RU_HZ = 800.0  # 960-sample frames at 48 kHz: 50 Hz bins, so both tones fall on a bin exactly
PAIR = {"languages": ["en", "ru"]}


def hears_tone(peer: SfuPeer, feed_id: str, hz: float, frames: int = 10) -> bool:
    got = peer.got(feed_id, "audio")
    return got.loud >= frames and got.hz is not None and abs(got.hz - hz) <= 60


async def ok(peer: SfuPeer, message: dict[str, Any]) -> dict[str, Any]:
    reply = await peer.request(message)
    assert reply["type"] == "ack", reply
    return reply


async def refused(peer: SfuPeer, message: dict[str, Any], code: str) -> dict[str, Any]:
    reply = await peer.request(message)
    assert reply["type"] == "error" and reply["code"] == code, reply
    return reply


def channel(message: dict[str, Any], language: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in message["channels"] if c["language"] == language)
    return found


def last_ru(peer: SfuPeer) -> dict[str, Any]:
    """The ru channel in the last `interpretation` the peer received ({} before any)."""
    seen = peer.seen("interpretation")
    return channel(seen[-1], "ru") if seen and seen[-1]["channels"] else {}


def ru_live(peer: SfuPeer, peer_id: str | None) -> bool:
    return bool(last_ru(peer)) and last_ru(peer)["live_peer_id"] == peer_id


async def interpreted_room(room: Room) -> None:
    resp = await room.client.patch(
        f"/api/v1/workshops/{room.workshop['id']}", json={"languages": ["en", "ru"]}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()


async def go_live(interpreter: SfuPeer, into: str = "ru") -> str:
    """Publish the interpreter's microphone into their channel and take the channel; the feed id."""
    reply = await interpreter.publish("interpretation", hz=RU_HZ, video=False)
    assert reply["type"] == "published", reply
    await ok(interpreter, {"type": "interpret", "into": into, "live": True})
    feed_id: str = reply["feed_id"]
    return feed_id


async def test_a_listener_on_ru_hears_the_interpreter_over_the_floor_and_one_on_the_original_never_gets_it(
    sfu_room: Room,
) -> None:
    await interpreted_room(sfu_room)
    speaker = await sfu_room.person("Speaker")
    interpreter = await sfu_room.person("Irina", interpreter=PAIR)
    on_ru = await sfu_room.person("Listener RU")
    original = await sfu_room.person("Listener EN")

    # The speaker came before the workshop had an interpreter: the plenary gained interpretation live.
    assert speaker.welcome["interpretation"] is None
    assert (await speaker.wait_message("interpretation"))["languages"] == ["en", "ru"]
    state = on_ru.welcome["interpretation"]
    assert state["languages"] == ["en", "ru"] and state["listening"] is None
    assert [c["language"] for c in state["channels"]] == ["en", "ru"]
    assert interpreter.welcome["self"]["interpreter"] == {"languages": ["en", "ru"], "into": "ru", "live": False}
    assert speaker.welcome["self"]["interpreter"] is None

    # An interpreter's camera never reaches the floor.
    denied = await interpreter.publish("camera", hz=FLOOR_HZ)
    assert denied["type"] == "error" and denied["code"] == "permission_denied", denied
    floor_feed = (await speaker.publish(colour=BLUE, hz=FLOOR_HZ))["feed_id"]
    ru_feed = await go_live(interpreter)
    added = await on_ru.wait_message("feed_added")
    await on_ru.wait_until(lambda: ru_feed in on_ru.feeds and floor_feed in on_ru.feeds, "both feeds")
    assert on_ru.feeds[ru_feed] == {
        "feed_id": ru_feed,
        "peer_id": interpreter.id,
        "source": "interpretation",
        "audio": True,
        "video": False,
        "language": "ru",
    }, added
    await on_ru.wait_until(lambda: last_ru(on_ru).get("feed_id") == ru_feed, "the ru channel's feed")
    assert last_ru(on_ru)["live_peer_id"] == interpreter.id

    await ok(on_ru, {"type": "listen", "language": "ru"})
    assert (await on_ru.wait_message("interpretation", listening="ru"))["listening"] == "ru"
    reply = await on_ru.subscribe([floor_feed, ru_feed])
    assert {(s["feed_id"], s["kind"]) for s in reply["streams"]} == {
        (floor_feed, "audio"),
        (floor_feed, "video"),
        (ru_feed, "audio"),
    }
    # The original listener asks for everything, the interpreter's feed included: it is left out.
    reply = await original.subscribe([floor_feed, ru_feed])
    assert reply["limited"] is False
    assert {s["feed_id"] for s in reply["streams"]} == {floor_feed}

    await on_ru.wait_until(
        lambda: hears_tone(on_ru, ru_feed, RU_HZ) and hears_tone(on_ru, floor_feed, FLOOR_HZ), "the floor and ru"
    )
    await original.wait_until(lambda: hears_tone(original, floor_feed, FLOOR_HZ), "the floor")
    assert original.got(ru_feed, "audio").frames == 0
    assert {feed for feed, _kind in original.received} == {floor_feed}

    # The floor: every feed without a language, and none of them is the interpreter's.
    floor = [f for f in speaker.feeds.values() if f["language"] is None]
    assert [f["peer_id"] for f in floor] == [speaker.id]
    janus = await sfu_room.client.app[keys.SFU].participants(sfu_room.id)
    publishing = {p["id"] for p in janus if p.get("publisher")}
    assert f"{interpreter.id}:camera" not in publishing and f"{interpreter.id}:interpretation" in publishing

    # Back to the original: the channel's feed leaves the subscription at once (an unprompted renegotiation).
    await ok(on_ru, {"type": "listen", "language": None})
    await on_ru.wait_until(lambda: ru_feed not in {s["feed_id"] for s in on_ru.streams.values()}, "ru dropped")
    assert floor_feed in {s["feed_id"] for s in on_ru.streams.values()}


async def test_two_interpreters_of_a_pair_hand_over_with_exactly_one_live_and_bad_input_is_refused_clearly(
    sfu_room: Room,
) -> None:
    await interpreted_room(sfu_room)
    listener = await sfu_room.person("Listener")
    anna = await sfu_room.person("Anna", interpreter=PAIR)
    boris = await sfu_room.person("Boris", interpreter=PAIR)
    await ok(listener, {"type": "listen", "language": "ru"})
    anna_feed = await go_live(anna)
    boris_reply = await boris.publish("interpretation", hz=RU_HZ + 200, video=False)
    assert boris_reply["type"] == "published", boris_reply
    boris_feed = boris_reply["feed_id"]
    await listener.wait_until(lambda: ru_live(listener, anna.id), "Anna live")
    await listener.wait_until(lambda: {anna_feed, boris_feed} <= set(listener.feeds), "both booth feeds")
    # Only the live interpreter's feed is served, whatever is asked for.
    reply = await listener.subscribe([anna_feed, boris_feed])
    assert {s["feed_id"] for s in reply["streams"]} == {anna_feed}
    first_live = len(listener.seen("interpretation")) - 1

    await ok(boris, {"type": "interpret", "into": "ru", "live": True})  # Boris takes over
    await listener.wait_until(lambda: ru_live(listener, boris.id), "Boris live")
    await listener.wait_until(lambda: anna_feed not in {s["feed_id"] for s in listener.streams.values()}, "drop")
    await ok(anna, {"type": "interpret", "into": "ru", "live": True})  # and Anna takes it back
    await listener.wait_until(lambda: ru_live(listener, anna.id), "Anna live again")
    await ok(boris, {"type": "interpret", "into": "ru", "live": True})
    await listener.wait_until(lambda: ru_live(listener, boris.id), "Boris live again")

    # Every `interpretation` anyone received names one live interpreter of ru, from the first on: a handover is one
    # step, never a moment with two or with none.
    for peer in (listener, anna, boris):
        lives = [channel(m, "ru")["live_peer_id"] for m in peer.seen("interpretation")]
        start = next(i for i, live in enumerate(lives) if live is not None)
        assert all(live in (anna.id, boris.id) for live in lives[start:]), lives
        assert lives[-1] == boris.id
    lives = [channel(m, "ru")["live_peer_id"] for m in listener.seen("interpretation")[first_live:]]
    changes = [live for i, live in enumerate(lives) if i == 0 or live != lives[i - 1]]
    assert changes == [anna.id, boris.id, anna.id, boris.id], lives
    # Each booth ends up knowing who is live: Boris, not Anna.
    for peer in (anna, boris):

        def booth(p: SfuPeer, who: str) -> list[bool]:
            return [m["peer"]["interpreter"]["live"] for m in p.seen("peer_updated") if m["peer"]["id"] == who]

        await peer.wait_until(
            lambda p=peer: booth(p, anna.id)[-1:] == [False] and booth(p, boris.id)[-1:] == [True],  # type: ignore[misc]
            "Boris live, Anna not, in the booth states",
        )
    final = listener.seen("interpretation")[-1]
    assert channel(final, "ru") == {
        "language": "ru",
        "live_peer_id": boris.id,
        "feed_id": boris_feed,
        "interpreters": [anna.id, boris.id],
    }
    assert channel(final, "en")["live_peer_id"] is None
    # Stepping down leaves the channel without a live interpreter (listeners fall back to the original).
    await ok(boris, {"type": "interpret", "into": "ru", "live": False})
    await listener.wait_until(lambda: ru_live(listener, None), "ru with nobody live")
    await listener.wait_until(lambda: boris_feed not in {s["feed_id"] for s in listener.streams.values()}, "drop")
    await ok(boris, {"type": "interpret", "into": "ru", "live": True})
    await listener.wait_until(lambda: ru_live(listener, boris.id), "Boris live once more")

    # Bad input: a clear error each, and the session goes on.
    await refused(listener, {"type": "interpret", "into": "ru", "live": True}, "permission_denied")
    await refused(anna, {"type": "interpret", "into": "zh", "live": True}, "invalid_argument")
    await refused(listener, {"type": "listen", "language": "de"}, "invalid_argument")
    await refused(listener, {"type": "listen", "language": "Russian"}, "invalid_argument")
    await refused(listener, {"type": "publish", "source": "interpretation", "sdp": "v=0"}, "permission_denied")
    await ok(listener, {"type": "listen", "language": "en"})

    # The organiser takes Boris off the booth, live: his channel feed ends and ru has nobody live.
    resp = await sfu_room.client.patch(
        f"/api/v1/workshops/{sfu_room.workshop['id']}/participants/{boris.id}",
        json={"interpreter": None},
        headers=ADMIN,
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["interpreter"] is None
    removed = await listener.wait_message("feed_removed", feed_id=boris_feed)
    assert removed["reason"] == "removed"
    await listener.wait_until(lambda: ru_live(listener, None), "ru without a live interpreter")
    assert last_ru(listener)["interpreters"] == [anna.id]
    await boris.wait_until(
        lambda: any(
            m["peer"]["id"] == boris.id and m["peer"]["interpreter"] is None for m in boris.seen("peer_updated")
        ),
        "Boris told he is no interpreter now",
    )
    entry = await sfu_room.client.app[keys.POOL].fetchrow(
        "SELECT details::text AS details FROM audit_entries WHERE action = 'participant.update' "
        "ORDER BY id DESC LIMIT 1"
    )
    assert entry is not None and json.loads(entry["details"])["changes"] == {"interpreter": None}, entry


def dominant_frequency(path: Path) -> float:
    """The median of the strongest frequency of each loud frame of a recorded audio track."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    # Opus decodes to floats in [-1, 1] here (aiortc hands out 16-bit integers).
    found = [dominant_hz(f) for f in frames if float(numpy.abs(f.to_ndarray()).mean()) > 0.01]
    assert found, f"{path.name} holds no sound"
    return float(numpy.median(found))


async def test_a_recording_keeps_the_floor_and_the_ru_channel_as_separate_tracks_with_their_language(
    sfu_room: Room,
) -> None:
    await interpreted_room(sfu_room)
    speaker = await sfu_room.person("Speaker")
    interpreter = await sfu_room.person("Irina", interpreter=PAIR)
    listener = await sfu_room.person("Listener")
    floor_feed = (await speaker.publish(colour=BLUE, hz=FLOOR_HZ))["feed_id"]
    ru_feed = await go_live(interpreter)
    await ok(listener, {"type": "listen", "language": "ru"})
    await listener.wait_until(lambda: {floor_feed, ru_feed} <= set(listener.feeds), "both feeds")
    await listener.wait_until(lambda: ru_live(listener, interpreter.id), "the interpreter live")
    await listener.subscribe([floor_feed, ru_feed])
    await listener.wait_until(lambda: hears_tone(listener, ru_feed, RU_HZ), "the ru channel")

    recording = await start_recording(sfu_room)
    for peer in (speaker, interpreter):
        await ok(peer, {"type": "consent", "recording_id": recording["id"], "granted": True})
    start = listener.got(ru_feed, "audio").frames
    await listener.wait_until(lambda: listener.got(ru_feed, "audio").frames >= start + 100, "two seconds of ru")
    detail = await stop_recording(sfu_room, recording["id"])

    tracks = {(t["participant_id"], t["kind"]): t for t in detail["tracks"]}
    assert set(tracks) == {(speaker.id, "audio"), (speaker.id, "video"), (interpreter.id, "audio")}, tracks
    assert tracks[(interpreter.id, "audio")]["language"] == "ru"
    assert tracks[(speaker.id, "audio")]["language"] is None and tracks[(speaker.id, "video")]["language"] is None
    for who, hz in ((speaker.id, FLOOR_HZ), (interpreter.id, RU_HZ)):
        path = Path(sfu_room.client.app[keys.STORAGE].root) / "check.webm"
        path.write_bytes(await download(sfu_room, tracks[(who, "audio")]["download_url"]))
        assert abs(dominant_frequency(path) - hz) <= 30
        path.unlink()

    # The composed video carries the floor: the interpreter's channel stays a track of its own.
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
    resp = await sfu_room.client.get(f"/api/v1/recordings/{recording['id']}", headers=ADMIN)
    files = {f["language"]: f for f in (await resp.json())["composition"]["files"]}
    assert set(files) == {None, "ru"}, files
    assert f"/recordings/{recording['id']}/languages/ru/composed.webm?" in files["ru"]["download_url"]
    strengths = {}
    for language, composed in files.items():
        path = Path(sfu_room.client.app[keys.STORAGE].root) / f"check-composed-{language}.webm"
        data = await download(sfu_room, composed["download_url"])
        assert len(data) == composed["bytes"]
        path.write_bytes(data)
        with av.open(str(path)) as container:  # the same picture in both
            assert container.streams.video[0].codec_context.width == composed["width"]
        samples = decode_audio(path)
        path.unlink()
        strengths[language] = (tone_strength(samples, FLOOR_HZ), tone_strength(samples, RU_HZ))
    # The floor's version carries the floor alone; the ru version the interpreter, with the floor well under it.
    floor, ru = strengths[None]
    assert floor > 20 * ru, strengths
    floor, ru = strengths["ru"]
    assert ru > 2 * floor > 0, strengths


async def test_an_interpreter_assigned_to_a_breakout_room_gives_that_room_interpretation(sfu_room: Room) -> None:
    await interpreted_room(sfu_room)
    client, workshop_id = sfu_room.client, sfu_room.workshop["id"]
    resp = await client.post(f"/api/v1/workshops/{workshop_id}/rooms", json={"name": "Breakout RU"}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    breakout = await resp.json()
    assert breakout["media"] == "mesh"
    speaker = await sfu_room.person("Speaker", room_id=breakout["id"])
    assert speaker.welcome["room"]["id"] == breakout["id"]
    assert speaker.welcome["interpretation"] is None  # no interpreter in it yet
    other = await sfu_room.person("Elsewhere")  # in the plenary: it has interpretation (the workshop has one)

    interpreter = await sfu_room.person("Irina", interpreter=PAIR, room_id=breakout["id"])
    assert interpreter.welcome["interpretation"]["channels"][1]["interpreters"] == [interpreter.id]
    changed = await speaker.wait_message("room_media_changed")
    assert changed["room"]["media"] == "sfu"
    assert channel(changed["interpretation"], "ru")["interpreters"] == [interpreter.id]
    await interpreter.wait_until(lambda: interpreter.media == "sfu", "the breakout room in sfu")
    ru_feed = await go_live(interpreter)
    await ok(speaker, {"type": "listen", "language": "ru"})
    await speaker.wait_until(lambda: ru_feed in speaker.feeds and ru_live(speaker, interpreter.id), "the booth")
    await speaker.subscribe([ru_feed])
    await speaker.wait_until(lambda: hears_tone(speaker, ru_feed, RU_HZ), "the ru channel in the breakout room")
    # The plenary gained interpretation when the workshop got an interpreter, but its channels list nobody: she is
    # in the breakout room, and nobody is live there.
    assert other.welcome["interpretation"] is None
    plenary = await other.wait_message("interpretation")
    assert plenary["room_id"] == sfu_room.id
    assert all(c["interpreters"] == [] and c["live_peer_id"] is None for c in plenary["channels"])
    assert all(channel(m, "ru")["live_peer_id"] is None for m in other.seen("interpretation"))


async def test_an_interpreter_relays_from_another_channel_into_their_own(sfu_room: Room) -> None:
    """Relay interpretation: the zh booth works from the ru channel (it has no English), listeners on zh hear it."""
    resp = await sfu_room.client.patch(
        f"/api/v1/workshops/{sfu_room.workshop['id']}", json={"languages": ["en", "ru", "zh"]}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    speaker = await sfu_room.person("Speaker")
    ru_booth = await sfu_room.person("Irina", interpreter=PAIR)
    zh_booth = await sfu_room.person("Li", interpreter={"languages": ["ru", "zh"]})
    listener = await sfu_room.person("Listener ZH")
    assert zh_booth.welcome["self"]["interpreter"]["into"] == "ru"  # the pair's language that is not the floor's
    floor_feed = (await speaker.publish(colour=BLUE, hz=FLOOR_HZ))["feed_id"]
    ru_feed = await go_live(ru_booth)
    await ok(zh_booth, {"type": "listen", "language": "ru"})
    await zh_booth.wait_until(lambda: ru_feed in zh_booth.feeds and ru_live(zh_booth, ru_booth.id), "the ru booth")
    await zh_booth.subscribe([floor_feed, ru_feed])
    await zh_booth.wait_until(lambda: hears_tone(zh_booth, ru_feed, RU_HZ), "the ru channel at the zh booth")

    zh_reply = await zh_booth.publish("interpretation", hz=1200, video=False)
    assert zh_reply["type"] == "published", zh_reply
    await ok(zh_booth, {"type": "interpret", "into": "zh", "live": True})
    zh_feed = zh_reply["feed_id"]
    await listener.wait_until(lambda: listener.feeds.get(zh_feed, {}).get("language") == "zh", "the zh feed")
    await ok(listener, {"type": "listen", "language": "zh"})
    reply = await listener.subscribe([floor_feed, ru_feed, zh_feed])
    assert {s["feed_id"] for s in reply["streams"]} == {floor_feed, zh_feed}
    await listener.wait_until(lambda: hears_tone(listener, zh_feed, 1200), "the zh channel")
    state = listener.seen("interpretation")[-1]
    assert channel(state, "zh")["live_peer_id"] == zh_booth.id and channel(state, "ru")["live_peer_id"] == ru_booth.id
