"""The SFU tests: the real server with a real embedded Janus, and aiortc peers, all on 127.0.0.2 inside the
test run's private network namespace (tests/netns.py): no media leaves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from tests import netns
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, create_workshop
from tests.sfu.peer import RED, SfuPeer


def sfu_settings(database_url: str, data_dir: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "sfu": "auto",
        "sfu_ice_address": netns.MEDIA_ADDRESS,
        "sfu_rtp_ports": "20000-20999",
        "sfu_install": True,
        "mesh_max": 0,
    }
    values.update(overrides)
    return make_settings(database_url, data_dir, **values)


@pytest.fixture
def media_address(monkeypatch: pytest.MonkeyPatch) -> str:
    if not netns.private():
        pytest.fail(f"the SFU tests need the private network namespace: {netns.why_not()} (see tests/netns.py)")
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [netns.MEDIA_ADDRESS])
    return netns.MEDIA_ADDRESS


@pytest.fixture
async def sfu_client(
    media_address: str, database_url: str, tmp_path: Path, aiohttp_client: Any
) -> TestClient[Any, Any]:
    app = create_app(sfu_settings(database_url, tmp_path / "var"))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    from server import keys

    assert keys.SFU in client.app, "the embedded Janus did not start: see the log above"
    return client


class Room:
    """A workshop with people in it, and their SFU peers (closed at the end of the test)."""

    def __init__(self, client: TestClient[Any, Any], workshop: dict[str, Any]) -> None:
        self.client = client
        self.workshop = workshop
        self.peers: list[SfuPeer] = []

    @property
    def id(self) -> str:
        room_id: str = self.workshop["plenary_room_id"]
        return room_id

    async def person(
        self,
        name: str,
        *,
        role: str = "participant",
        decode: bool = True,
        start: bool = True,
        colour: tuple[int, int, int] = RED,
        **extra: Any,
    ) -> SfuPeer:
        participant = await add_participant(
            self.client, self.workshop["id"], display_name=name, country="PT", role=role, **extra
        )
        peer = SfuPeer(self.client, participant["join_token"], name, decode=decode, colour=colour)
        self.peers.append(peer)
        if start:
            await peer.start()
        return peer

    async def patch(self, **changes: Any) -> dict[str, Any]:
        resp = await self.client.patch(
            f"/api/v1/workshops/{self.workshop['id']}/rooms/{self.id}", json=changes, headers=ADMIN
        )
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


@pytest.fixture
async def sfu_room(sfu_client: TestClient[Any, Any]) -> AsyncIterator[Room]:
    workshop = await create_workshop(sfu_client)
    room = Room(sfu_client, workshop)
    try:
        yield room
    finally:
        for peer in room.peers:
            await peer.close()
