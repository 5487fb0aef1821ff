"""A repeated `open` of a forwarded session reaches the session that already runs: an edge whose first open got no
answer in time asks again with the same conn, and the owner must not run the hello a second time (the second run
would find the place resumed by the first and join the client as new: W11 found it with 600 members resuming on
one core). Component test: the owner's router over the in-process bus, a real signalling service with fakes of
our own ports, and the edge played by the test."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from server.leases import LeaseKeeper
from server.nodes import Node, NodeInfo
from server.routing import Router
from signaling.bus import InProcessBus, Message
from signaling.forwarding import CLOSE, TEXT, down_subject, open_request, open_subject, read_close
from signaling.service import Identity, SignalingConfig, SignalingService
from signaling.session import SessionLimits
from tests.nodes.test_bus_commands import FakeKeeper, Leases, Owner
from tests.signaling.test_commands import Directory, NoStore

WORKSHOP = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
WAIT_S = 10.0


class CountingDirectory(Directory):
    """Counts the hellos the service authenticates: one per session the owner ran."""

    def __init__(self) -> None:
        self.hellos: list[str] = []

    async def authenticate(self, token: str) -> Identity:
        self.hellos.append(token)
        return await super().authenticate(token)


@pytest.fixture
async def owner() -> AsyncIterator[tuple[InProcessBus, Router, CountingDirectory]]:
    bus = InProcessBus()
    table = Leases(owners={WORKSHOP: Owner("owner")})
    node = Node(
        info=NodeInfo(id="owner"), bus=bus, engine="in_process", leases=cast(LeaseKeeper, FakeKeeper(table, "owner"))
    )
    directory = CountingDirectory()
    service = SignalingService(directory, NoStore(), SignalingConfig())
    router = Router(node, service, SessionLimits(), cast(Any, None), keepalive_s=5.0)
    await router.start()
    yield bus, router, directory
    await router.close()
    service.shutdown()
    await bus.close()


async def test_a_repeated_open_reaches_the_running_session_and_the_hello_runs_once(
    owner: tuple[InProcessBus, Router, CountingDirectory],
) -> None:
    bus, _router, directory = owner
    frames: dict[str, asyncio.Queue[bytes]] = {"c1": asyncio.Queue(), "c2": asyncio.Queue()}
    for conn, queue in frames.items():

        async def down(message: Message, queue: asyncio.Queue[bytes] = queue) -> None:
            queue.put_nowait(message.data)

        await bus.subscribe(down_subject("edge", conn), down)
    hello = json.dumps({"type": "hello", "protocol": [1], "token": "ana"})

    def opening(conn: str) -> bytes:
        return open_request(workshop_id=str(WORKSHOP), edge="edge", conn=conn, hello=hello, connection_id=conn)

    # The first and a repeat racing it (the edge timed out), then one more once the session runs.
    answers = await asyncio.gather(
        bus.request(open_subject("owner"), opening("c1"), timeout_s=WAIT_S),
        bus.request(open_subject("owner"), opening("c1"), timeout_s=WAIT_S),
    )
    assert [json.loads(a) for a in answers] == [{"ok": True}, {"ok": True}]
    async with asyncio.timeout(WAIT_S):
        assert json.loads((await frames["c1"].get())[1:])["type"] == "welcome"
    assert json.loads(await bus.request(open_subject("owner"), opening("c1"), timeout_s=WAIT_S)) == {"ok": True}

    # A new connection of the same participant replaces the session (4409): the close frame is the last thing
    # c1 gets, so everything the owner sent c1 is in its queue by then, and a second hello would show there.
    assert json.loads(await bus.request(open_subject("owner"), opening("c2"), timeout_s=WAIT_S)) == {"ok": True}
    after: list[bytes] = []
    async with asyncio.timeout(WAIT_S):
        while not (after and after[-1][:1] == CLOSE):
            after.append(await frames["c1"].get())
        assert json.loads((await frames["c2"].get())[1:])["type"] == "welcome"
    assert read_close(after[-1])[0] == 4409
    texts = [json.loads(f[1:])["type"] for f in after if f[:1] == TEXT]
    assert "welcome" not in texts, texts
    assert directory.hellos == ["ana", "ana"]  # c1's hello once, for three opens; then c2's
