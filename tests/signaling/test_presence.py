from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import add_participant, create_workshop
from tests.signaling.client import join


async def test_second_peer_sees_first_and_first_gets_peer_joined_and_relay_is_stamped(
    client: TestClient[Any, Any],
) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    ben = await add_participant(client, workshop["id"], display_name="Ben", country="DE")

    a = await join(client, ana["join_token"])
    assert a.welcome["self"]["id"] == ana["id"]
    assert a.welcome["peers"] == []
    assert a.welcome["room"]["id"] == workshop["plenary_room_id"]
    assert a.welcome["room"]["media"] == "mesh"

    b = await join(client, ben["join_token"])
    assert [p["id"] for p in b.welcome["peers"]] == [ana["id"]]
    joined = await a.wait_for("peer_joined")
    assert joined["peer"]["id"] == ben["id"]
    assert joined["peer"]["country"] == "DE"
    # exactly one side of the pair is polite
    assert joined["peer"]["polite"] != b.welcome["peers"][0]["polite"]

    await b.send({"type": "offer", "to": ana["id"], "sdp": "v=0 fake"})
    offer = await a.wait_for("offer")
    assert offer == {"type": "offer", "from": ben["id"], "sdp": "v=0 fake"}

    await b.send({"type": "leave"})
    left = await a.wait_for("peer_left")
    assert left["peer_id"] == ben["id"]
    await a.close()
