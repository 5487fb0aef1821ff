"""The stage's protocol: layers asked per feed, the moderator's spotlight, and rate-limited reactions."""

from __future__ import annotations

import asyncio

from server import keys
from signaling.sfu.bridge import MAX_HIGH_VIDEOS, MAX_OTHER_VIDEOS
from tests.sfu.conftest import Room
from tests.sfu.peer import RED, SfuPeer


async def test_asking_another_layer_needs_no_renegotiation_and_media_keeps_flowing(sfu_room: Room) -> None:
    speaker = await sfu_room.person("Speaker")
    viewer = await sfu_room.person("Viewer")
    feed_id = (await speaker.publish(colour=RED))["feed_id"]
    await viewer.wait_until(lambda: feed_id in viewer.feeds, "the feed")
    await viewer.subscribe()
    await viewer.wait_until(lambda: viewer.sees(feed_id, RED), "the speaker")
    reply = await viewer.request(
        {"type": "subscribe", "feeds": [{"feed_id": feed_id, "audio": True, "video": True, "quality": "low"}]}
    )
    assert reply["type"] == "subscription" and reply["sdp"] is None, reply
    assert {s["kind"] for s in reply["streams"]} == {"audio", "video"}
    bridge = sfu_room.client.app[keys.SFU]
    assert bridge.members[viewer.id].layers[feed_id] == 0  # substream 0 asked of Janus
    frames = viewer.got(feed_id, "video").frames
    # aiortc sends no simulcast: Janus keeps forwarding its one layer.
    await viewer.wait_until(lambda: viewer.got(feed_id, "video").frames > frames + 20, "video after the change")
    bad = await viewer.request({"type": "subscribe", "feeds": [{"feed_id": feed_id, "quality": "ultra"}]})
    assert bad["type"] == "error" and bad["code"] == "invalid_argument"


async def test_a_moderators_spotlight_reaches_the_room_and_ends_when_the_person_leaves(sfu_room: Room) -> None:
    chair = await sfu_room.person("Chair", role="moderator")
    presenter = await sfu_room.person("Presenter")
    viewer = await sfu_room.person("Viewer")
    denied = await viewer.request({"type": "spotlight", "peer_id": presenter.id})
    assert denied["type"] == "error" and denied["code"] == "permission_denied"
    assert (await chair.request({"type": "spotlight", "peer_id": presenter.id}))["type"] == "ack"
    shown = await viewer.wait_message("spotlight", peer_id=presenter.id)
    assert shown["by"]["display_name"] == "Chair"
    late = await sfu_room.person("Late")
    assert late.welcome["spotlight"] == presenter.id
    await presenter.close()
    sfu_room.peers.remove(presenter)
    await viewer.wait_message("spotlight", peer_id=None)


async def test_reactions_reach_the_room_and_a_burst_is_rate_limited(sfu_room: Room) -> None:
    fan = await sfu_room.person("Fan")
    viewer = await sfu_room.person("Viewer")
    assert (await fan.request({"type": "react", "emoji": "👏"}))["type"] == "ack"
    got = await viewer.wait_message("reaction", peer_id=fan.id)
    assert got["emoji"] == "👏"
    second = await fan.request({"type": "react", "emoji": "🎉"})
    assert second["type"] == "error" and second["code"] == "rate_limited"
    odd = await fan.request({"type": "react", "emoji": "💩"})
    assert odd["type"] == "error" and odd["code"] == "invalid_argument"


async def test_a_viewer_gets_at_most_one_high_and_fifteen_other_videos_and_every_publishers_sound(
    sfu_room: Room,
) -> None:
    """The per-viewer cap (MAX_HIGH_VIDEOS, MAX_OTHER_VIDEOS) clamps a subscribe that asks for more: in the order of
    the list, a second `high` is served `medium` and video past the fifteenth other feed is left out, while every
    feed's audio stays; frames prove what Janus really forwards."""
    # Eighteen cameras at the peers' usual 160x120: at 64x48 the viewer decoded only some of them on an AMD EPYC
    # machine (libvpx reported invalid data; the same code passed on a Xeon one), at any load and frame rate.
    assert (MAX_HIGH_VIDEOS, MAX_OTHER_VIDEOS) == (1, 15)
    count = MAX_HIGH_VIDEOS + MAX_OTHER_VIDEOS + 2
    publishers = [await sfu_room.person(f"Publisher {i:02d}", decode=False) for i in range(count)]
    feed_ids = []
    for i, publisher in enumerate(publishers):
        reply = await publisher.publish(colour=(30 + 12 * i, 200 - 10 * i, 90), hz=300.0 + 25 * i)
        assert reply["type"] == "published", reply
        feed_ids.append(reply["feed_id"])
    viewer = await sfu_room.person("Viewer")
    await viewer.wait_until(lambda: set(feed_ids) <= set(viewer.feeds), "every publisher's feed")

    # Within the caps: exactly what was asked, not limited (one feed first: aiortc's answerer, see SfuPeer).
    first = await viewer.request({"type": "subscribe", "feeds": [{"feed_id": feed_ids[0], "quality": "high"}]})
    assert first["type"] == "subscription" and first["limited"] is False, first

    # Asking for everything, the first two at `high`, the rest at `low`.
    asked = [{"feed_id": f, "quality": "high" if i < 2 else "low"} for i, f in enumerate(feed_ids)]
    reply = await viewer.request({"type": "subscribe", "feeds": asked})
    assert reply["type"] == "subscription" and reply["limited"] is True, reply
    video = {s["feed_id"]: s["quality"] for s in reply["streams"] if s["kind"] == "video"}
    audio = {s["feed_id"] for s in reply["streams"] if s["kind"] == "audio"}
    assert audio == set(feed_ids)  # every publisher's sound
    carried, dropped = feed_ids[: MAX_HIGH_VIDEOS + MAX_OTHER_VIDEOS], feed_ids[MAX_HIGH_VIDEOS + MAX_OTHER_VIDEOS :]
    assert video == {feed_ids[0]: "high", feed_ids[1]: "medium", **dict.fromkeys(carried[2:], "low")}, video
    layers = sfu_room.client.app[keys.SFU].members[viewer.id].layers
    assert layers.get(feed_ids[0], 2) == 2 and layers[feed_ids[1]] == 1 and layers[feed_ids[2]] == 0  # Janus's ids

    # What arrives: all eighteen tones (decoded), RTP of the sixteen videos, and nothing of the two left out. The
    # videos are counted in packets Janus forwarded, not in frames decoded: with eighteen encoders and a decoder in
    # this one process, libvpx on some machines (an AMD EPYC one) drops some streams' frames as invalid.
    await viewer.wait_until(
        lambda: all(viewer.got(f, "audio").frames >= 10 for f in feed_ids), "eighteen sounds", timeout=60
    )
    forwarded: dict[str, int] = {}
    async with asyncio.timeout(60):
        while not all(forwarded.get(f, 0) >= 20 for f in carried):
            forwarded = await video_packets(viewer)
            await asyncio.sleep(0.2)  # pacing a read of the receivers' counters, not synchronisation
    assert all(forwarded.get(f, 0) == 0 for f in dropped), forwarded
    assert all(viewer.got(f, "video").frames == 0 for f in dropped), viewer.received

    # Asking again within the caps serves it all: the reply is no longer limited.
    within = [{"feed_id": f, "quality": "low", "video": f in carried[1:]} for f in feed_ids]
    again = await viewer.request({"type": "subscribe", "feeds": within})
    assert again["type"] == "subscription" and again["limited"] is False, again
    assert {s["feed_id"] for s in again["streams"] if s["kind"] == "video"} == set(carried[1:])


async def video_packets(peer: SfuPeer) -> dict[str, int]:
    """RTP packets received so far on each video stream of the peer's subscription, by feed."""
    counts: dict[str, int] = {}
    pc = peer.subscriber
    if pc is None:
        return counts
    for transceiver in pc.getTransceivers():
        stream = peer.streams.get(transceiver.mid or "")
        if stream is None or stream["kind"] != "video":
            continue
        report = await transceiver.receiver.getStats()
        counts[stream["feed_id"]] = sum(
            getattr(s, "packetsReceived", 0) for s in report.values() if getattr(s, "type", "") == "inbound-rtp"
        )
    return counts
