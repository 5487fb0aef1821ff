"""Active speaker from Janus's audio levels, and resumes that keep one's feeds."""

from __future__ import annotations

from tests.sfu.conftest import Room
from tests.sfu.peer import RED


async def test_the_room_hears_who_is_speaking_from_the_sfus_audio_levels(sfu_room: Room) -> None:
    speaker = await sfu_room.person("Speaker")
    listener = await sfu_room.person("Listener")
    assert (await speaker.publish(colour=RED, hz=440))["type"] == "published"
    started = await listener.wait_message("speaking", peer_id=speaker.id, speaking=True)
    assert started == {"type": "speaking", "peer_id": speaker.id, "speaking": True}
    assert speaker.tone is not None
    speaker.tone.silent = True
    await listener.wait_message("speaking", peer_id=speaker.id, speaking=False)
    # Only changes are sent, and never a burst: one start and one stop for one stretch of speech.
    assert len(listener.seen("speaking", peer_id=speaker.id)) == 2


async def test_a_dropped_publisher_resumes_with_its_feed_and_the_others_see_no_feed_removed(sfu_room: Room) -> None:
    speaker = await sfu_room.person("Speaker")
    listener = await sfu_room.person("Listener")
    feed_id = (await speaker.publish(colour=RED))["feed_id"]
    await listener.wait_until(lambda: feed_id in listener.feeds, "the feed")
    await listener.subscribe()
    await listener.wait_until(lambda: listener.sees(feed_id, RED), "the speaker")

    await speaker.cut()
    await listener.wait_message("peer_reconnecting", peer_id=speaker.id)
    # The speaker's media connection to Janus is untouched by the signalling drop: media keeps flowing.
    frames = listener.got(feed_id, "video").frames
    await listener.wait_until(lambda: listener.got(feed_id, "video").frames > frames + 30, "media during the drop")
    welcome = await speaker.resume()
    assert welcome["resumed"] is True
    assert [f["feed_id"] for f in welcome["feeds"]] == [feed_id]
    await listener.wait_message("peer_resumed", peer_id=speaker.id)
    assert not listener.seen("feed_removed"), "a resumed publisher's feed must not be removed"


async def test_a_publisher_who_never_comes_back_loses_its_feed_when_the_grace_period_ends(sfu_room: Room) -> None:
    speaker = await sfu_room.person("Speaker")
    listener = await sfu_room.person("Listener")
    feed_id = (await speaker.publish(colour=RED))["feed_id"]
    await listener.wait_until(lambda: feed_id in listener.feeds, "the feed")
    await speaker.cut()
    removed = await listener.wait_message("feed_removed", feed_id=feed_id, timeout=30)  # grace is 5 s in tests
    assert removed["reason"] == "timeout"
