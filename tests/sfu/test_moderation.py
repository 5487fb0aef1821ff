"""Who may publish in an sfu room, and moderation that holds at the SFU, not at the sender's good will."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from server import keys
from server.app import JANUS
from tests.helpers import ADMIN
from tests.sfu.conftest import Room
from tests.sfu.peer import BLUE, RED, SfuPeer


async def test_a_moderated_room_refuses_publishing_until_the_floor_is_given_and_stops_the_feed_when_taken_back(
    sfu_room: Room,
) -> None:
    await sfu_room.patch(publishing="moderated")
    chair = await sfu_room.person("Chair", role="moderator")
    delegate = await sfu_room.person("Delegate")
    watcher = await sfu_room.person("Watcher")
    assert delegate.welcome["room"]["publishing"] == "moderated"
    assert delegate.welcome["self"]["may_publish"] is False
    assert chair.welcome["self"]["may_publish"] is True

    refused = await delegate.publish(colour=BLUE)
    assert refused["type"] == "error" and refused["code"] == "permission_denied", refused

    denied = await delegate.request({"type": "grant_floor", "peer_id": delegate.id})
    assert denied["type"] == "error" and denied["code"] == "permission_denied"

    granted = await chair.request({"type": "grant_floor", "peer_id": delegate.id})
    assert granted["type"] == "ack", granted
    floor = await delegate.wait_message("floor")
    assert floor["granted"] is True and floor["by"]["display_name"] == "Chair"
    await watcher.wait_until(
        lambda: any(m["peer"]["id"] == delegate.id and m["peer"]["may_publish"] for m in watcher.seen("peer_updated")),
        "the delegate shown with the floor",
    )
    feed_id = (await delegate.publish(colour=BLUE))["feed_id"]
    await watcher.wait_until(lambda: feed_id in watcher.feeds, "the delegate's feed")
    await watcher.subscribe()
    await watcher.wait_until(lambda: watcher.sees(feed_id, BLUE), "the delegate in blue")

    resp = await sfu_room.client.delete(
        f"/api/v1/workshops/{sfu_room.workshop['id']}/participants/{delegate.id}/floor", headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["live"] is True
    removed = await watcher.wait_message("feed_removed", feed_id=feed_id)
    assert removed["reason"] == "floor_revoked"
    revoked = await delegate.wait_message("floor", granted=False)
    assert revoked["by"]["display_name"]
    again = await delegate.publish(colour=BLUE)
    assert again["type"] == "error" and again["code"] == "permission_denied"


async def test_an_observer_may_not_publish_even_in_an_open_room(sfu_room: Room) -> None:
    observer = await sfu_room.person("Observer", role="observer")
    assert observer.welcome["self"]["may_publish"] is False
    refused = await observer.publish()
    assert refused["type"] == "error" and refused["code"] == "permission_denied"


async def _audio_frames(peer: SfuPeer, feed_id: str) -> int:
    return peer.got(feed_id, "audio").frames


async def test_a_moderators_mute_stops_the_feed_at_the_sfu_and_unmuting_oneself_lifts_it(sfu_room: Room) -> None:
    speaker = await sfu_room.person("Speaker")
    listener = await sfu_room.person("Listener")
    feed_id = (await speaker.publish(colour=RED))["feed_id"]
    await listener.wait_until(lambda: feed_id in listener.feeds, "the feed")
    await listener.subscribe()
    await listener.wait_until(lambda: listener.hears(feed_id) and listener.sees(feed_id, RED), "the speaker")

    resp = await sfu_room.client.post(
        f"/api/v1/workshops/{sfu_room.workshop['id']}/participants/{speaker.id}/mute",
        json={"kind": "audio"},
        headers=ADMIN,
    )
    assert resp.status == 200, await resp.text()
    await speaker.wait_message("mute_requested", kind="audio")
    # The speaker's client ignores the request (it keeps sending): the SFU must stop the audio anyway.
    bridge = sfu_room.client.app[keys.SFU]
    await listener.wait_until(lambda: bridge.is_moderated(speaker.id, "audio"), "the mute at the SFU")
    # Media is the clock: once a second of video has arrived after the block, audio must have stopped.
    await _wait_video_frames(listener, feed_id, 20)
    audio_then = listener.got(feed_id, "audio").frames
    await _wait_video_frames(listener, feed_id, 45)
    assert listener.got(feed_id, "audio").frames - audio_then <= 3, "audio still arrives after the moderator's mute"

    await speaker.request({"type": "update", "audio": True})
    await listener.wait_until(lambda: listener.got(feed_id, "audio").frames > audio_then + 20, "audio back")


async def _wait_video_frames(peer: SfuPeer, feed_id: str, more: int) -> None:
    start = peer.got(feed_id, "video").frames
    await peer.wait_until(lambda: peer.got(feed_id, "video").frames >= start + more, f"{more} more video frames")


async def test_removing_a_participant_kicks_them_from_janus(sfu_room: Room) -> None:
    speaker = await sfu_room.person("Speaker")
    listener = await sfu_room.person("Listener")
    feed_id = (await speaker.publish(colour=RED))["feed_id"]
    await listener.wait_until(lambda: feed_id in listener.feeds, "the feed")
    bridge = sfu_room.client.app[keys.SFU]
    ids = {p["id"] for p in await bridge.participants(sfu_room.id)}
    assert feed_id in ids
    pc = speaker.published["camera"].pc
    closed = asyncio.Event()
    pc.on("connectionstatechange", lambda: closed.set() if pc.connectionState in ("closed", "failed") else None)

    resp = await sfu_room.client.post(
        f"/api/v1/workshops/{sfu_room.workshop['id']}/participants/{speaker.id}/remove", headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    removed = await listener.wait_message("feed_removed", feed_id=feed_id)
    assert removed["reason"] == "removed"
    async with asyncio.timeout(20):
        await closed.wait()  # Janus hung up the removed publisher's connection
    remaining: list[dict[str, Any]] = await bridge.participants(sfu_room.id)
    assert feed_id not in {p["id"] for p in remaining}


async def test_janus_killed_mid_session_is_restarted_and_publishers_and_subscribers_come_back(sfu_room: Room) -> None:
    speaker = await sfu_room.person("Speaker")
    listener = await sfu_room.person("Listener")
    feed_id = (await speaker.publish(colour=RED))["feed_id"]
    await listener.wait_until(lambda: feed_id in listener.feeds, "the feed")
    await listener.subscribe()
    await listener.wait_until(lambda: listener.sees(feed_id, RED), "the speaker")

    janus = sfu_room.client.app[JANUS]
    pid = janus.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    for peer in (speaker, listener):
        await peer.wait_message("sfu_unavailable")
        await peer.wait_message("sfu_restored")
    assert janus.pid not in (None, pid)
    # The clients publish and subscribe again on their own (as the browser client does).
    await listener.wait_until(lambda: listener.sees(feed_id, RED) and listener.hears(feed_id), "media again")


async def test_making_a_live_room_moderated_stops_the_feeds_of_those_who_lost_the_right_to_publish(
    sfu_room: Room,
) -> None:
    chair = await sfu_room.person("Chair", role="moderator")
    delegate = await sfu_room.person("Delegate")
    chair_feed = (await chair.publish(colour=RED))["feed_id"]
    delegate_feed = (await delegate.publish(colour=BLUE))["feed_id"]
    await chair.wait_until(lambda: delegate_feed in chair.feeds, "the delegate's feed")

    await sfu_room.patch(publishing="moderated")
    updated = await delegate.wait_message("room_updated")
    assert updated["room"]["publishing"] == "moderated" and updated["room"]["media"] == "sfu"
    removed = await chair.wait_message("feed_removed", feed_id=delegate_feed)
    assert removed["reason"] == "floor_revoked"
    await chair.wait_until(
        lambda: any(
            m["peer"]["id"] == delegate.id and not m["peer"]["may_publish"] for m in chair.seen("peer_updated")
        ),
        "the delegate shown without the right to publish",
    )
    assert chair_feed in delegate.feeds  # the moderator keeps publishing
    assert not delegate.seen("room_media_changed")  # nobody renegotiates for it
