"""The join cache across nodes (server.join_cache_bus), on the in-process bus: every forget one node's cache makes
is applied by the others and never comes back; a node whose bus is down serves nothing from its cache, and a node
whose forgets could not go out makes the others forget everything once it is back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from server.join_cache import JoinCache, JoinEntry
from server.join_cache_bus import SUBJECT, SharedForgets
from signaling.bus import BusUnavailable, Handler, InProcessBus, Message, QueuedSubscription, StateCallback
from signaling.protocol import RoomInfo
from signaling.rooms import Profile

WAIT_S = 5.0


def entry(room_id: str = "r1") -> JoinEntry:
    wid = uuid.uuid4()
    return JoinEntry(
        participant_id=uuid.uuid4(),
        workshop_id=wid,
        token_generation=0,
        profile=Profile(display_name="Ana", country="PT", organisation="", role="participant"),
        room=RoomInfo(id=room_id, workshop_id=str(wid), name="Plenary", kind="plenary", media="mesh", capacity=10),
    )


class SwitchableBus(InProcessBus):
    """The in-process bus, with a switch for this node's connection (publishes fail while it is off) and the state
    callbacks the real engine runs."""

    def __init__(self, shared: InProcessBus) -> None:
        super().__init__()
        self.shared = shared
        self.up = True
        self.disconnected: list[StateCallback] = []
        self.reconnected: list[StateCallback] = []

    @property
    def connected(self) -> bool:
        return self.up

    async def publish(self, subject: str, data: bytes) -> None:
        if not self.up:
            raise BusUnavailable("down")
        await self.shared.publish(subject, data)

    async def subscribe(
        self, subject: str, handler: Handler | None = None, *, queue_size: int = 1024
    ) -> QueuedSubscription:
        return await self.shared.subscribe(subject, handler, queue_size=queue_size)

    def on_disconnect(self, callback: StateCallback) -> None:
        self.disconnected.append(callback)

    def on_reconnect(self, callback: StateCallback) -> None:
        self.reconnected.append(callback)

    def cut(self) -> None:
        self.up = False
        for callback in self.disconnected:
            callback()

    def mend(self) -> None:
        self.up = True
        for callback in self.reconnected:
            callback()


@pytest.fixture
async def shared() -> AsyncIterator[InProcessBus]:
    bus = InProcessBus()
    try:
        yield bus
    finally:
        await bus.close()


async def _node(shared: InProcessBus, name: str) -> tuple[JoinCache, SharedForgets, SwitchableBus]:
    cache = JoinCache()
    bus = SwitchableBus(shared)
    forgets = SharedForgets(cache, bus, name)
    await forgets.start()
    return cache, forgets, bus


async def _heard(forgets: SharedForgets, count: int) -> None:
    async with asyncio.timeout(WAIT_S):
        await forgets.heard(count)


async def test_a_forget_on_one_node_is_applied_by_every_other_and_never_comes_back(shared: InProcessBus) -> None:
    heard: list[bytes] = []

    async def listen(message: Message) -> None:
        heard.append(message.data)

    await shared.subscribe(SUBJECT, listen)
    (a, fa, _), (b, fb, _), (c, fc, _) = [await _node(shared, n) for n in ("a", "b", "c")]
    try:
        ana, ben, eva = entry("r1"), entry("r1"), entry("r2")
        for cache in (b, c):
            for e in (ana, ben, eva):
                cache.put(e, read_at=cache.version)

        a.forget(ana.participant_id)  # a revoke on node a
        await fa.flushed()
        await asyncio.gather(_heard(fb, 1), _heard(fc, 1))
        assert b.get(ana.participant_id) is None and c.get(ana.participant_id) is None
        assert b.get(ben.participant_id) is ben

        a.forget_room("r1")
        await _heard(fb, 2)
        assert b.get(ben.participant_id) is None and b.get(eva.participant_id) is eva

        b.forget_all()  # a breakout plan on node b
        await _heard(fc, 3)
        assert c.get(eva.participant_id) is None
        await _heard(fa, 1)

        # Applying announces nothing: exactly the three forgets travelled, none came back.
        await fb.flushed()
        await fc.flushed()
        assert len(heard) == 3
        assert (fa.applied, fb.applied, fc.applied) == (1, 2, 3)
    finally:
        for forgets in (fa, fb, fc):
            await forgets.close()


async def test_a_node_whose_bus_is_down_serves_nothing_from_its_cache_and_the_others_forget_all_after_it(
    shared: InProcessBus,
) -> None:
    (a, fa, bus_a), (b, fb, _) = [await _node(shared, n) for n in ("a", "b")]
    try:
        ana, ben = entry(), entry()
        a.put(ana, read_at=a.version)
        b.put(ben, read_at=b.version)

        bus_a.cut()  # deaf to the others: nothing is served or kept from memory
        assert a.get(ana.participant_id) is None
        a.put(ana, read_at=a.version)
        assert a.get(ana.participant_id) is None and len(a) == 0

        a.forget(uuid.uuid4())  # a write on a while it cannot tell anyone
        await fa.flushed()
        assert b.get(ben.participant_id) is ben

        bus_a.mend()
        a.put(ana, read_at=a.version)
        assert a.get(ana.participant_id) is ana  # served again
        await _heard(fb, 1)  # what a could not say: b forgets everything
        assert b.get(ben.participant_id) is None
    finally:
        await fa.close()
        await fb.close()
