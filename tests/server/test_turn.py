"""TURN for real networks: the embedded coturn, started by the app, relays media between two aiortc peers
that may use relay candidates only (as behind a strict NAT), with the credentials of their `welcome`.

coturn listens on 127.0.0.1 and relays from 127.0.0.2, the run's private network (tests/netns.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from server.app import create_app
from server.coturn import CoturnConfig
from tests import netns
from tests.conftest import make_settings
from tests.helpers import add_participant, create_workshop
from tests.signaling.client import join
from tests.signaling.rtc_peer import PatternVideoTrack

FRAMES = 15
WAIT_S = 30.0


def free_turn_port() -> int:
    """A port free for both UDP and TCP (coturn listens on both), below the kernel's ephemeral range: a port the
    kernel handed out for UDP may be the local port of someone's TCP connection (PostgreSQL, aiohttp), and
    turnserver then fails to bind its TCP listener."""
    low, _high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for port in random.sample(range(20000, max(21000, min(low, 32768))), 200):
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u,
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t,
        ):
            try:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for both UDP and TCP")


def relay_only(ice_servers: list[dict[str, Any]]) -> RTCPeerConnection:
    servers = [RTCIceServer(urls=s["urls"], username=s["username"], credential=s["credential"]) for s in ice_servers]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY))


def local_candidate_types(pc: RTCPeerConnection) -> set[str]:
    (transceiver,) = pc.getTransceivers()
    gatherer = transceiver.receiver.transport.transport.iceGatherer
    return {c.type for c in gatherer.getLocalCandidates()}


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_two_relay_only_peers_exchange_media_through_the_embedded_coturn(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    if not netns.private():
        pytest.fail(f"the TURN test needs the private network namespace with 127.0.0.2: {netns.why_not()}")
    port = free_turn_port()
    settings = make_settings(
        database_url,
        tmp_path / "var",
        turn="embedded",
        turn_port=port,
        turn_relay_ip=netns.MEDIA_ADDRESS,
        turn_allow_loopback_peers=True,
        turn_install=False,
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana")
    ben = await add_participant(client, workshop["id"], display_name="Ben", country="DE")
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    (turn,) = a.welcome["ice_servers"]
    assert turn["urls"] == CoturnConfig(secret="-", port=port).urls()
    assert turn["username"].endswith(":" + a.id) and turn["credential"]

    sender = relay_only(a.welcome["ice_servers"])
    receiver = relay_only(b.welcome["ice_servers"])
    frames: asyncio.Queue[object] = asyncio.Queue()
    tasks: list[asyncio.Task[None]] = []

    async def consume(track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):
            while True:
                frames.put_nowait(await track.recv())

    @receiver.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.create_task(consume(track)))

    try:
        sender.addTrack(PatternVideoTrack())
        # aiortc gathers every candidate before setLocalDescription returns: no trickle needed.
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        assert "typ host" not in sender.localDescription.sdp and "typ relay" in sender.localDescription.sdp
        async with asyncio.timeout(WAIT_S):
            for _ in range(FRAMES):
                await frames.get()
        # Relay candidates only, on both sides: every frame went through coturn.
        assert local_candidate_types(sender) == {"relay"} and local_candidate_types(receiver) == {"relay"}
        assert receiver.connectionState == "connected"
    finally:
        for task in tasks:
            task.cancel()
        await sender.close()
        await receiver.close()
        await a.close()
        await b.close()
