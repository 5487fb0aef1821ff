"""200 clients join 10 rooms at once, then half of them leave at once, then they come back at once:
every client always ends with the exact roster of its room, the one the server holds.

No timing assertions: every phase is bounded by a generous timeout only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from server import keys
from server.app import create_app
from tests.conftest import make_settings
from tests.helpers import ADMIN, create_workshop

ROOMS = 10
PER_ROOM = 20
PHASE_TIMEOUT_S = 60.0


class Tracker:
    """One client: a reader task that keeps the roster as the protocol describes it
    (welcome.peers, plus peer_joined, minus peer_left) and notes anything inconsistent."""

    def __init__(self, person: dict[str, Any], ws: aiohttp.ClientWebSocketResponse) -> None:
        self.person = person
        self.ws = ws
        self.id: str = person["id"]
        self.room_id: str = ""
        self.roster: set[str] = set()
        self.polite: dict[str, bool] = {}
        self.acks: set[Any] = set()
        self.problems: list[str] = []
        self.welcomed = False
        self.bye = False
        self.changed = asyncio.Condition()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:  # ends at the close frame
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            self._apply(json.loads(msg.data))
            async with self.changed:
                self.changed.notify_all()
        async with self.changed:
            self.changed.notify_all()

    def _apply(self, m: dict[str, Any]) -> None:
        kind = m["type"]
        if kind == "welcome":
            if self.welcomed:
                self.problems.append("second welcome")
            self.welcomed = True
            self.room_id = m["room"]["id"]
            for p in m["peers"]:
                self._add(p)
            if m["self"]["id"] != self.id:
                self.problems.append(f"welcome for {m['self']['id']}")
        elif not self.welcomed:
            self.problems.append(f"{kind} before welcome")
        elif kind == "peer_joined":
            self._add(m["peer"])
        elif kind == "peer_left":
            if m["peer_id"] not in self.roster:
                self.problems.append(f"peer_left for absent {m['peer_id']}")
            self.roster.discard(m["peer_id"])
        elif kind == "ack":
            self.acks.add(m["request_id"])
        elif kind == "bye":
            self.bye = True
        else:
            self.problems.append(f"unexpected {kind}: {m}")

    def _add(self, peer: dict[str, Any]) -> None:
        if peer["id"] == self.id:
            self.problems.append("told about itself")
        if peer["id"] in self.roster:
            self.problems.append(f"duplicate {peer['id']}")
        if peer["reconnecting"]:
            self.problems.append(f"{peer['id']} reconnecting")
        self.roster.add(peer["id"])
        self.polite[peer["id"]] = peer["polite"]

    async def until(self, condition: Callable[[], bool]) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: condition() or self.task.done())
        assert condition(), (self.id, self.problems)

    async def settle(self, tag: str) -> None:
        """Everything queued for this client before now has been read (a no-op update is acked after it)."""
        await self.ws.send_str(json.dumps({"type": "update", "request_id": tag}))
        await self.until(lambda: tag in self.acks)


async def open_ws(session: aiohttp.ClientSession, url: Any, person: dict[str, Any]) -> Tracker:
    ws = await session.ws_connect(url)
    tracker = Tracker(person, ws)
    await ws.send_str(json.dumps({"type": "hello", "protocol": [1], "token": person["join_token"]}))
    await tracker.until(lambda: tracker.welcomed)
    return tracker


@pytest.fixture
async def roomy(database_url: str, tmp_path: Path, aiohttp_client: Any) -> TestClient[Any, Any]:
    # A long heartbeat: on a slow machine a phase may take a while, and the readers always pong anyway.
    settings = make_settings(database_url, tmp_path / "var", ws_heartbeat_s=30.0)
    result: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return result


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # Our own session: the test client's connector holds at most 100 connections, and each socket keeps one.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        yield s


async def build_workshop(client: TestClient[Any, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    room_ids = [workshop["plenary_room_id"]]
    for n in range(1, ROOMS):
        resp = await client.post(f"/api/v1/workshops/{wid}/rooms", json={"name": f"Breakout {n}"}, headers=ADMIN)
        assert resp.status == 201, await resp.text()
        room_ids.append((await resp.json())["id"])
    people = [
        {
            "display_name": f"Person {r}-{i}",
            "country": "PT",
            **({"room_id": room_ids[r]} if r else {}),
        }
        for r in range(ROOMS)
        for i in range(PER_ROOM)
    ]
    resp = await client.post(f"/api/v1/workshops/{wid}/participants/import", json=people, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    items = (await resp.json())["items"]
    by_room: dict[str, list[dict[str, Any]]] = {rid: [] for rid in room_ids}
    for person in items:
        by_room[person["room_id"] or workshop["plenary_room_id"]].append(person)
    assert all(len(v) == PER_ROOM for v in by_room.values())
    return workshop, by_room


def check_rooms(client: TestClient[Any, Any], trackers: list[Tracker], expected: dict[str, set[str]]) -> None:
    service = client.server.app[keys.SIGNALING]
    for room_id, ids in expected.items():
        assert set(service.roster(room_id)) == ids, room_id
    for t in trackers:
        assert t.room_id in expected
        assert t.roster == expected[t.room_id] - {t.id}, t.id
        assert not t.problems, (t.id, t.problems)
    by_id = {t.id: t for t in trackers}
    for t in trackers:  # exactly one polite side per pair
        for other, polite in t.polite.items():
            if other in by_id and other in t.roster:
                assert polite != by_id[other].polite[t.id], (t.id, other)


async def converge(trackers: list[Tracker], expected: dict[str, set[str]], tag: str) -> None:
    async with asyncio.timeout(PHASE_TIMEOUT_S):
        await asyncio.gather(*(t.until(lambda t=t: t.roster == expected[t.room_id] - {t.id}) for t in trackers))
        await asyncio.gather(*(t.settle(tag) for t in trackers))


@pytest.mark.slow
async def test_200_clients_join_leave_and_rejoin_10_rooms_at_once_and_keep_exact_rosters(
    roomy: TestClient[Any, Any], session: aiohttp.ClientSession
) -> None:
    client = roomy
    _, by_room = await build_workshop(client)
    url = client.make_url("/ws")
    everyone = [p for people in by_room.values() for p in people]
    assert len(everyone) == ROOMS * PER_ROOM == 200

    # Phase 1: everyone at once.
    async with asyncio.timeout(PHASE_TIMEOUT_S):
        trackers = list(await asyncio.gather(*(open_ws(session, url, p) for p in everyone)))
    expected = {rid: {p["id"] for p in people} for rid, people in by_room.items()}
    await converge(trackers, expected, "joined")
    check_rooms(client, trackers, expected)

    # Phase 2: half of every room leaves at once.
    leavers = [t for t in trackers if int(t.person["display_name"].rsplit("-", 1)[1]) % 2 == 0]
    stayers = [t for t in trackers if t not in leavers]

    async def leave(t: Tracker) -> None:
        await t.ws.send_str(json.dumps({"type": "leave"}))
        await t.task  # read to the close frame
        assert t.bye and t.ws.close_code == 1000, (t.id, t.ws.close_code)

    async with asyncio.timeout(PHASE_TIMEOUT_S):
        await asyncio.gather(*(leave(t) for t in leavers))
    gone = {t.id for t in leavers}
    expected = {rid: ids - gone for rid, ids in expected.items()}
    await converge(stayers, expected, "left")
    check_rooms(client, stayers, expected)

    # Phase 3: they all come back at once, into a room that is busy settling.
    async with asyncio.timeout(PHASE_TIMEOUT_S):
        back = list(await asyncio.gather(*(open_ws(session, url, t.person) for t in leavers)))
    everyone_now = stayers + back
    expected = {rid: {p["id"] for p in people} for rid, people in by_room.items()}
    await converge(everyone_now, expected, "rejoined")
    check_rooms(client, everyone_now, expected)

    async with asyncio.timeout(PHASE_TIMEOUT_S):
        await asyncio.gather(*(t.ws.close() for t in everyone_now))
        await asyncio.gather(*(t.task for t in everyone_now))
