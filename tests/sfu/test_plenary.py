"""A plenary through Janus: one publisher to ten subscribers, and a second publisher that appears."""

from __future__ import annotations

import asyncio

from tests.sfu.conftest import Room
from tests.sfu.peer import BLUE, RED


async def test_ten_subscribers_decode_the_publishers_colour_and_tone_and_see_a_second_publisher(
    sfu_room: Room,
) -> None:
    speaker = await sfu_room.person("Speaker")
    assert speaker.welcome["room"]["media"] == "sfu"
    assert speaker.welcome["self"]["may_publish"] is True
    reply = await speaker.publish(colour=RED, hz=440)
    assert reply["type"] == "published", reply
    feed_id = reply["feed_id"]
    listeners = [await sfu_room.person(f"Listener {i}") for i in range(10)]
    for listener in listeners:
        await listener.wait_until(lambda p=listener: feed_id in p.feeds, "the speaker's feed")  # type: ignore[misc]
        assert listener.feeds[feed_id] == {
            "feed_id": feed_id,
            "peer_id": speaker.id,
            "source": "camera",
            "audio": True,
            "video": True,
            "language": None,
        }
    replies = await asyncio.gather(*(listener.subscribe() for listener in listeners))
    for answer in replies:
        assert answer["type"] == "subscription", answer
        assert {(s["feed_id"], s["kind"]) for s in answer["streams"]} == {(feed_id, "audio"), (feed_id, "video")}
    for listener in listeners:
        await listener.wait_until(lambda p=listener: p.sees(feed_id, RED) and p.hears(feed_id), "red and a tone")  # type: ignore[misc]

    second = await sfu_room.person("Second")
    second_feed = (await second.publish(colour=BLUE, hz=660))["feed_id"]
    for listener in listeners[:3]:
        await listener.wait_until(
            lambda p=listener: any(m["feed"]["feed_id"] == second_feed for m in p.seen("feed_added")),  # type: ignore[misc]
            "feed_added of the second publisher",
        )
        # The listener resubscribes to every feed (SfuPeer does on feed_added): the same connection.
        await listener.wait_until(lambda p=listener: p.sees(second_feed, BLUE), "the second publisher in blue")  # type: ignore[misc]
        assert listener.sees(feed_id, RED)
