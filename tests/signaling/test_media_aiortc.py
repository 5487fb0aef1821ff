"""Real WebRTC media between aiortc peers whose offers, answers and candidates go through the real
server on 127.0.0.1: a three-person mesh, a resume in the middle of a call, and a grace period
that runs out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server import keys
from server.app import create_app
from tests.conftest import make_settings
from tests.helpers import add_participant, create_workshop
from tests.signaling.rtc_peer import WAIT_S, RtcPeer, loopback_ice

SHORT_GRACE_S = 0.5  # expiry test
RESUME_GRACE_S = 3.0  # resume test: room to resume on a loaded machine, short enough to outwait

pytestmark = pytest.mark.slow


class Peers:
    """The RtcPeers of one test, all closed at teardown whatever happened."""

    def __init__(self) -> None:
        self.all: list[RtcPeer] = []

    async def join(self, client: TestClient[Any, Any], participant: dict[str, Any], **kwargs: Any) -> RtcPeer:
        peer = RtcPeer(client, participant["join_token"], name=participant["display_name"], **kwargs)
        self.all.append(peer)
        await peer.start()
        return peer

    async def close(self) -> None:
        async with asyncio.timeout(WAIT_S):
            results = await asyncio.gather(*(p.close() for p in self.all), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]


@pytest.fixture
async def peers(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Peers]:
    """Request it after the client fixture, so that peers close before the app does."""
    loopback_ice(monkeypatch)
    group = Peers()
    yield group
    await group.close()


ClientFactory = Callable[[float], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def client_with_grace(database_url: str, tmp_path: Path, aiohttp_client: Any) -> ClientFactory:
    """The real app, like the `client` fixture, with another resume grace period."""

    async def make(resume_grace_s: float) -> TestClient[Any, Any]:
        settings = make_settings(database_url, tmp_path / "var", resume_grace_s=resume_grace_s)
        result: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
        return result

    return make


async def three_participants(client: TestClient[Any, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    workshop = await create_workshop(client)
    people = [
        await add_participant(client, workshop["id"], display_name=name, country=country)
        for name, country in (("Ana", "PT"), ("Ben", "DE"), ("Cleo", "FR"))
    ]
    return workshop, people


async def all_of(*waits: Coroutine[Any, Any, object]) -> None:
    """Run the waits together; the first failure cancels the rest."""
    async with asyncio.TaskGroup() as group:
        for wait in waits:
            group.create_task(wait)


async def in_call(peers: Peers, client: TestClient[Any, Any], **kwargs: Any) -> tuple[RtcPeer, RtcPeer, RtcPeer]:
    """Ana, Ben and Cleo join one after the other and wait until each decodes both others."""
    _, (ana, ben, cleo) = await three_participants(client)
    a = await peers.join(client, ana, **kwargs)
    b = await peers.join(client, ben, **kwargs)
    c = await peers.join(client, cleo, **kwargs)
    await all_of(a.wait_media([b.id, c.id]), b.wait_media([a.id, c.id]), c.wait_media([a.id, b.id]))
    return a, b, c


def got_all_candidates(peer: RtcPeer) -> Callable[[], bool]:
    return lambda: all(link.candidates_received and link.end_of_candidates for link in peer.links.values())


async def test_three_peers_decode_audio_and_video_from_each_other_with_trickled_candidates(
    client: TestClient[Any, Any], peers: Peers
) -> None:
    workshop, (ana, ben, cleo) = await three_participants(client)
    a = await peers.join(client, ana)
    b = await peers.join(client, ben)
    c = await peers.join(client, cleo)
    assert (a.id, b.id, c.id) == (ana["id"], ben["id"], cleo["id"])
    assert {p.welcome["room"]["id"] for p in (a, b, c)} == {workshop["plenary_room_id"]}
    assert [p["id"] for p in b.welcome["peers"]] == [a.id]
    assert sorted(p["id"] for p in c.welcome["peers"]) == sorted([a.id, b.id])

    await all_of(a.wait_media([b.id, c.id]), b.wait_media([a.id, c.id]), c.wait_media([a.id, b.id]))
    # ICE may complete on one side before it has handled the last relayed candidate.
    await all_of(*(p.wait_until(got_all_candidates(p), "every relayed candidate") for p in (a, b, c)))

    # The newcomer offered to everyone already there; the others answered.
    assert {pid: link.offered for pid, link in a.links.items()} == {b.id: False, c.id: False}
    assert {pid: link.offered for pid, link in b.links.items()} == {a.id: True, c.id: False}
    assert {pid: link.offered for pid, link in c.links.items()} == {a.id: True, b.id: True}
    for peer in (a, b, c):
        assert peer.errors == []
        assert peer.discarded == []  # one connection per pair, never renegotiated
        descriptions = [e for e in peer.events if e["type"] in ("offer", "answer")]
        assert len(descriptions) == 2
        for link in peer.links.values():
            # The descriptions carried no candidate: ICE succeeded with the relayed ones alone.
            assert link.candidates_received >= 1
            assert link.states[-1] == "connected"
        for description in descriptions:
            assert "a=candidate" not in description["sdp"]
            relayed = [e for e in peer.events if e["type"] == "candidate" and e["from"] == description["from"]]
            assert relayed[-1]["candidate"]["candidate"] == ""  # end of candidates
            assert all(r["candidate"]["candidate"].startswith("candidate:") for r in relayed[:-1])


async def test_a_resumed_peer_renegotiates_and_media_flows_again(
    client_with_grace: ClientFactory, peers: Peers
) -> None:
    client = await client_with_grace(RESUME_GRACE_S)
    # Full SDPs plus trickled copies of their candidates: the duplicates must be harmless.
    a, b, c = await in_call(peers, client, trickle_only=False)
    first = c.welcome
    old_a_to_c, old_b_to_c, a_to_b = a.links[c.id], b.links[c.id], a.links[b.id]
    loop = asyncio.get_running_loop()

    cut_at = loop.time()
    await c.cut()
    await all_of(a.wait_event("peer_reconnecting", c.id), b.wait_event("peer_reconnecting", c.id))

    welcome = await c.resume()
    assert welcome["resumed"] is True
    assert welcome["self"]["id"] == first["self"]["id"] == c.id
    assert welcome["room"] == first["room"]
    assert sorted(p["id"] for p in welcome["peers"]) == sorted([a.id, b.id])
    assert welcome["resume"] != first["resume"]
    assert client.app[keys.SIGNALING].roster(first["room"]["id"]) == sorted([a.id, b.id, c.id])

    await all_of(c.wait_media([a.id, b.id]), a.wait_media([c.id]), b.wait_media([c.id]))
    for other, old in ((a, old_a_to_c), (b, old_b_to_c)):
        new = other.links[c.id]
        assert new is not old and old.closed and old in other.discarded
        assert not new.offered  # the resumed peer offered again, like a newcomer
    assert all(link.offered for link in c.links.values())
    assert len(c.discarded) == 2  # its connections from before the cut
    # The pair that was not interrupted kept its connection.
    assert a.links[b.id] is a_to_b and not a_to_b.closed

    # Media keeps flowing on the new connections past the end of the grace period, and the
    # others never hear that the resumed peer left.
    deadline = cut_at + RESUME_GRACE_S + 0.5

    def outlasted_grace(peer: RtcPeer) -> Callable[[], bool]:
        # Woken by every decoded frame: no sleep, and it proves that media kept flowing meanwhile.
        return lambda: loop.time() > deadline and all(link.frames["video"] >= 30 for link in peer.links.values())

    await all_of(*(p.wait_until(outlasted_grace(p), "media past the grace period") for p in (a, b, c)))
    for other in (a, b):
        assert other.presence_about(c.id) == ["peer_joined", "peer_reconnecting", "peer_resumed"]
        assert other.links[c.id].pc.connectionState == "connected"
    for peer in (a, b, c):
        assert peer.errors == []


async def test_peers_are_told_peer_left_when_the_grace_period_runs_out(
    client_with_grace: ClientFactory, peers: Peers
) -> None:
    a, b, c = await in_call(peers, await client_with_grace(SHORT_GRACE_S))
    gone = c.id
    cut_at = asyncio.get_running_loop().time()
    await c.cut()

    for other in (a, b):
        left = await other.wait_event("peer_left", gone)
        assert left["reason"] == "timeout"
        assert other.time_of(left) - cut_at >= SHORT_GRACE_S
        assert other.presence_about(gone) == ["peer_joined", "peer_reconnecting", "peer_left"]
        assert gone not in other.links  # its connection was discarded
        assert other.errors == []

    # The two who stayed still receive each other.
    before = a.links[b.id].frames["video"], b.links[a.id].frames["video"]
    await all_of(
        a.wait_until(lambda: a.links[b.id].frames["video"] >= before[0] + 5, "more video from Ben"),
        b.wait_until(lambda: b.links[a.id].frames["video"] >= before[1] + 5, "more video from Ana"),
    )
