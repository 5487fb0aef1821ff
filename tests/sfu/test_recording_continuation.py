"""Continuation in sfu rooms (docs/recordings.md "Continuation after a failover"): a recording left running by a
process that died is finalised `partial` and continued as soon as the room has members, Janus recording only the
publishers whose answer to the first part carries over; a stop of the first part stops the continuation."""

from __future__ import annotations

import uuid

from server import keys
from tests.helpers import ADMIN
from tests.sfu.conftest import Room
from tests.sfu.peer import BLUE, RED
from tests.sfu.test_recording import consent, more_video, publishing_room, start_recording, stop_recording


async def test_an_sfu_recording_left_by_a_dead_process_is_continued_with_the_consenting_publisher_alone(
    sfu_room: Room,
) -> None:
    (red, blue), listener = await publishing_room(sfu_room, ("Red", RED, 440), ("Blue", BLUE, 550))
    feeds = [p.published["camera"].feed_id for p in (red, blue)]
    app = sfu_room.client.app
    coordinator, bridge = app[keys.RECORDINGS], app[keys.SFU]
    rec = await start_recording(sfu_room)
    await consent(red, rec["id"], True)
    await consent(blue, rec["id"], False)
    await more_video(listener, feeds, 30)

    # The process dies (as in test_recording.py): its memory of the recording is gone, Janus closes the files. The
    # next process finalises the recording from them and, its room having members, continues it.
    coordinator.live.pop(uuid.UUID(rec["id"]))
    await bridge.record_feed(feeds[0], None)
    app[keys.SIGNALING].set_recording(sfu_room.id, None)
    assert [r for r in await coordinator.recover() if str(r) == rec["id"]]
    await coordinator._load_pending(None)  # what a node alone does at its start, after the recovery
    for peer in (red, blue, listener):
        started = await peer.wait_message("recording_started", continues=rec["id"])
    new_id = started["recording_id"]
    assert new_id != rec["id"] and started["recorder_peer_id"] == "sfu"
    await listener.wait_until(
        lambda: {f.peer_id for f in bridge.recorded_feeds(sfu_room.id)} == {red.id}, "Janus recording red alone"
    )
    await more_video(listener, feeds, 30)

    await stop_recording(sfu_room, rec["id"])  # the first part's id: the room's recording stops
    resp = await sfu_room.client.get(f"/api/v1/recordings/{new_id}", headers=ADMIN)
    new = await resp.json()
    assert (new["state"], new["continues"]) == ("ready", rec["id"]), new
    assert sorted((t["participant_id"], t["kind"]) for t in new["tracks"]) == [(red.id, "audio"), (red.id, "video")]
    resp = await sfu_room.client.get(f"/api/v1/recordings/{rec['id']}", headers=ADMIN)
    old = await resp.json()
    assert (old["partial"], old["continued_by"]) == (True, new_id)
    assert {t["participant_id"] for t in old["tracks"]} == {red.id}
