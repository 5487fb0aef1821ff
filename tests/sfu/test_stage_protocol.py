"""The stage's protocol: layers asked per feed, the moderator's spotlight, and rate-limited reactions."""

from __future__ import annotations

from server import keys
from tests.sfu.conftest import Room
from tests.sfu.peer import RED


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
