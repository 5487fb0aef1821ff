"""The service admits a member only with what the directory still vouches for: a revocation (or a move) that lands
while a join is reading is seen before the member is added. Component test with fakes of our own ports."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signaling.errors import Unauthenticated
from signaling.protocol import ChatMessage, Hello, RoomInfo
from signaling.rooms import Profile
from signaling.service import Attendance, Identity, SignalingConfig, SignalingService

ROOM = RoomInfo(id="r1", workshop_id="w1", name="Plenary", kind="plenary", media="mesh", capacity=10)


class SlowDirectory:
    """The first read waits on `gate`; `revoke` bumps the version, as server.join_cache's forget does."""

    def __init__(self) -> None:
        self.version = 0
        self.revoked = False
        self.reading = asyncio.Event()
        self.gate = asyncio.Event()
        self.reads = 0

    async def authenticate(self, token: str) -> Identity:
        self.reads += 1
        read_at, revoked = self.version, self.revoked  # what the row said when it was read
        if self.reads == 1:
            self.reading.set()
            await self.gate.wait()
        if revoked:
            raise Unauthenticated("token revoked")
        return Identity("p1", "w1", Profile("Ana", "PT", "", "participant"), room=ROOM, read_at=read_at)

    async def assigned_room(self, identity: Identity) -> RoomInfo:
        raise AssertionError("the identity carries its room")

    def still_valid(self, identity: Identity) -> bool:
        return identity.read_at == self.version

    def revoke(self) -> None:
        self.revoked = True
        self.version += 1


class NoStore:
    def record_attendance(self, event: Attendance) -> None:
        pass

    def attendance_congested(self) -> bool:
        return False

    async def save_chat(self, **_: Any) -> ChatMessage:
        raise AssertionError("no chat here")

    async def recent_chat(self, room_id: str, limit: int) -> list[ChatMessage]:
        return []


class Box:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, text: str) -> bool:
        self.sent.append(text)
        return True

    def close(self, code: int, reason: str) -> None:
        pass


async def test_a_revocation_during_the_read_keeps_the_member_out() -> None:
    directory = SlowDirectory()
    service = SignalingService(directory, NoStore(), SignalingConfig())
    hello = Hello(type="hello", protocol=[1], token="t")
    joining = asyncio.create_task(service.join(hello, 1, Box()))
    async with asyncio.timeout(5):
        await directory.reading.wait()
    directory.revoke()  # committed and forgotten while the join's read is in flight
    directory.gate.set()
    with pytest.raises(Unauthenticated):
        await joining
    assert directory.reads == 2, "the join read again"
    assert service.members == {}
    assert service.roster(ROOM.id) == []


async def test_an_unchanged_read_admits_at_once() -> None:
    directory = SlowDirectory()
    directory.reads = 1  # no waiting
    service = SignalingService(directory, NoStore(), SignalingConfig())
    member = await service.join(Hello(type="hello", protocol=[1], token="t"), 1, Box())
    assert (member.id, directory.reads) == ("p1", 2)
    assert service.roster(ROOM.id) == ["p1"]


def test_the_welcome_roster_from_cached_entries_is_what_the_models_encode_and_follows_changes() -> None:
    from pydantic import TypeAdapter

    from signaling.protocol import PeerInfo
    from signaling.rooms import Member, Room

    room = Room(info=ROOM)
    for pid, name in (("b", "Ben"), ("a", "Ana"), ("c", 'Cleo "C" \u00e9')):
        room.members[pid] = Member(pid, "w1", Profile(name, "PT", "", "participant"), ROOM.id, "s", outbox=Box())
    hidden = Member("z", "w1", Profile("Recorder", "", "", "recorder"), ROOM.id, "s", hidden=True)
    room.members["z"] = hidden
    peers = TypeAdapter(list[PeerInfo])

    def expected(receiver: str) -> str:
        return peers.dump_json(room.peers_for(receiver)).decode()

    for receiver in ("a", "b", "c", "nobody"):
        assert room.peers_json_for(receiver) == expected(receiver)
    ana = room.members["a"]
    ana.state = ana.state.model_copy(update={"hand": True})
    ana.may_publish = False
    room.members["b"].outbox = None  # reconnecting
    assert room.peers_json_for("c") == expected("c")
    assert '"hand":true' in room.peers_json_for("c")


def test_peer_news_envelopes_are_what_the_models_encode() -> None:
    from signaling.protocol import PeerJoined, PeerUpdated
    from signaling.rooms import Member
    from signaling.service import PEER_JOINED_HEAD, PEER_UPDATED_HEAD, encode

    ana = Member("a", "w1", Profile('Ana "A"', "PT", "Org", "moderator"), ROOM.id, "s", outbox=Box())
    ana.state = ana.state.model_copy(update={"hand": True})
    for polite in (False, True):
        assert PEER_JOINED_HEAD + ana.peer_json(polite) + "}" == encode(PeerJoined(peer=ana.as_peer(polite)))
        assert PEER_UPDATED_HEAD + ana.peer_json(polite) + "}" == encode(PeerUpdated(peer=ana.as_peer(polite)))
