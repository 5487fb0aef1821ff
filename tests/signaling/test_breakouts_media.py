"""aiortc peers moved into the same breakout negotiate there and exchange media, and again back home."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, add_participant, create_workshop
from tests.signaling.rtc_peer import RtcPeer, loopback_ice


@pytest.mark.slow
async def test_peers_moved_into_a_breakout_negotiate_there_and_exchange_media(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)
    workshop = await create_workshop(client)
    wid, plenary = workshop["id"], workshop["plenary_room_id"]
    ana_p = await add_participant(client, wid, display_name="Ana", country="PT")
    ben_p = await add_participant(client, wid, display_name="Ben", country="DE")
    ana = await RtcPeer(client, ana_p["join_token"], name="ana").start()
    ben = await RtcPeer(client, ben_p["join_token"], name="ben").start()
    try:
        await ana.wait_media([ben.id])
        await ben.wait_media([ana.id])

        resp = await client.post(
            f"/api/v1/workshops/{wid}/breakouts",
            json={
                "name": "Pairs",
                "rooms": ["Pair 1", "Pair 2"],
                "strategy": "manual",
                "assignments": {ana.id: "Pair 1", ben.id: 0},
                "countdown_s": 0,
            },
            headers=ADMIN,
        )
        assert resp.status == 201, await resp.text()
        plan = await resp.json()
        room = plan["rooms"][0]["id"]
        resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", headers=ADMIN)
        assert resp.status == 200, await resp.text()

        for peer in (ana, ben):
            await peer.wait_until(
                lambda p=peer: any(e["type"] == "moved" and e["room"]["id"] == room for e in p.events),
                "moved into Pair 1",
            )
        await ana.wait_media([ben.id])
        await ben.wait_media([ana.id])

        resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/close", headers=ADMIN)
        assert resp.status == 200, await resp.text()
        for peer in (ana, ben):
            await peer.wait_until(
                lambda p=peer: any(e["type"] == "moved" and e["room"]["id"] == plenary for e in p.events),
                "moved back to the plenary",
            )
        await ana.wait_media([ben.id])
        await ben.wait_media([ana.id])
        assert not ana.errors and not ben.errors
    finally:
        await ana.close()
        await ben.close()
