"""A room switches between mesh and sfu while people are in it: nobody rejoins, everyone sees everyone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.app import create_app
from tests.helpers import ADMIN, create_workshop
from tests.sfu.conftest import Room, sfu_settings
from tests.sfu.peer import BLUE, GREEN, RED, SfuPeer


async def _everyone_sees_everyone(people: list[tuple[SfuPeer, tuple[int, int, int]]], media: str) -> None:
    for viewer, _ in people:
        assert viewer.media == media
        for other, colour in people:
            if other is viewer:
                continue
            await viewer.wait_until(
                lambda v=viewer, o=other, c=colour: v.sees_peer(o.id, c) and v.hears_peer(o.id),  # type: ignore[misc]
                f"{other.name} over {media}",
            )


async def test_a_room_switched_from_mesh_to_sfu_and_back_keeps_everyone_seeing_and_hearing_everyone(
    sfu_room: Room,
) -> None:
    await sfu_room.patch(media="mesh")
    people = [
        (await sfu_room.person("Ana", colour=RED), RED),
        (await sfu_room.person("Bo", colour=GREEN), GREEN),
        (await sfu_room.person("Cy", colour=BLUE), BLUE),
    ]
    await _everyone_sees_everyone(people, "mesh")

    room = await sfu_room.patch(media="sfu")
    assert room["media"] == "sfu"
    for peer, _ in people:
        changed = await peer.wait_message("room_media_changed")
        assert changed["room"]["media"] == "sfu"
    await _everyone_sees_everyone(people, "sfu")
    for peer, _ in people:
        offer = await peer.request(
            {"type": "offer", "to": people[0][0].id if peer is not people[0][0] else people[1][0].id, "sdp": "v=0"}
        )
        assert offer["type"] == "error" and offer["code"] == "invalid_argument"
        assert len(peer.published) == 1 and not peer.mesh  # one upload, no mesh connection

    await sfu_room.patch(media="mesh")
    for peer, _ in people:
        await peer.wait_until(lambda p=peer: p.media == "mesh", "room_media_changed to mesh")  # type: ignore[misc]
    await _everyone_sees_everyone(people, "mesh")
    for peer, _ in people:
        assert not peer.published and peer.subscriber is None


async def test_a_mesh_room_growing_past_mesh_max_switches_to_sfu_by_itself(
    media_address: str, database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(sfu_settings(database_url, tmp_path / "var", mesh_max=2)))
    room = Room(client, await create_workshop(client))
    try:
        await room.patch(media="mesh")
        first = await room.person("Ana")
        second = await room.person("Bo")
        assert first.welcome["room"]["media"] == second.welcome["room"]["media"] == "mesh"
        third = await room.person("Cy")
        for peer in (first, second, third):
            changed = await peer.wait_message("room_media_changed")
            assert changed["room"]["media"] == "sfu"
        resp = await client.get(f"/api/v1/workshops/{room.workshop['id']}/rooms/{room.id}", headers=ADMIN)
        assert (await resp.json())["media"] == "sfu"  # persisted: the API and later joiners agree
    finally:
        for peer in room.peers:
            await peer.close()
