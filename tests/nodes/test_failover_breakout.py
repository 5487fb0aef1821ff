"""A dead owner costs nobody their place in a running breakout (issue 12): thirty members spread over three real
nodes (tests/nodes/test_any_node.py), the owner SIGKILLed while they sit in five breakout rooms; each comes back
through a live node into the room it was in, the new owner ends the plan once at its stored deadline, and the
attendance record keeps no visit of the dead owner's time open."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.helpers import ADMIN
from tests.nodes.test_any_node import WAIT_S, Node, http, join, new_workshop, nodes, plan_closings, resume

__all__ = ["http", "nodes"]  # the fixtures, imported for the test below

MEMBERS = 30
ROOMS = 5
DEADLINE_S = 20  # past the lease TTL of these nodes (3 s), the 30 resumes and a loaded 2-core machine

# Every write to the attendance record is announced, so the test re-reads it only when something changed.
VISITS_NOTIFY = """
CREATE FUNCTION rt_test_visits_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('rt_test_visits', ''); RETURN NULL; END $$;
CREATE TRIGGER rt_test_visits AFTER INSERT OR UPDATE ON visits FOR EACH ROW EXECUTE FUNCTION rt_test_visits_notify();
"""


async def presence(http: aiohttp.ClientSession, node: Node, wid: str) -> list[tuple[str, str, bool]]:
    """(member, room, connected) for every member the owner holds, as any node's HTTP API reports it."""
    async with http.get(f"{node.url}/api/v1/workshops/{wid}/presence", headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    return [(m["id"], room["room_id"], m["connected"]) for room in body["rooms"] for m in room["members"]]


@pytest.mark.slow
async def test_thirty_members_of_a_breakout_resume_in_their_rooms_after_the_owner_is_killed_and_return_once(
    nodes: list[Node], http: aiohttp.ClientSession, database_url: str
) -> None:
    a, b, c = nodes
    names = [f"p{i:02}" for i in range(MEMBERS)]
    wid, tokens = await new_workshop(http, b, *names)
    homes = dict(zip(names, [a, b, c] * MEMBERS, strict=False))
    first = await join(http, a, tokens[names[0]], names[0])  # a owns the workshop
    members = [first, *await asyncio.gather(*(join(http, homes[n], tokens[n], n) for n in names[1:]))]
    plenary = first.signal.welcome["room"]["id"]
    everyone = {m.id for m in members}
    await asyncio.gather(*(m.roster_becomes(everyone - {m.id}) for m in members))

    base = f"{c.url}/api/v1/workshops/{wid}/breakouts"  # through a node that owns nothing
    spec = {"name": "Fives", "rooms": ROOMS, "strategy": "random", "countdown_s": 0}
    async with http.post(base, json=spec, headers=ADMIN) as resp:
        assert resp.status == 201, await resp.text()
        plan: dict[str, Any] = await resp.json()
    async with http.post(f"{base}/{plan['id']}/open", json={"duration_s": DEADLINE_S}, headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
    rooms: dict[str, str] = plan["assignments"]
    assert set(rooms) == everyone and len(set(rooms.values())) == ROOMS
    mates = {m.id: {o for o in everyone if o != m.id and rooms[o] == rooms[m.id]} for m in members}
    for m in members:
        assert (await m.signal.wait_for("moved", WAIT_S))["room"]["id"] == rooms[m.id], m.name

    db = await asyncpg.connect(database_url)
    written: asyncio.Queue[str] = asyncio.Queue()
    try:
        await db.execute(VISITS_NOTIFY)
        await db.add_listener("rt_test_visits", lambda *_: written.put_nowait(""))

        killed_at = datetime.now(UTC)
        await a.kill()
        codes = await asyncio.gather(*(m.signal.wait_closed(WAIT_S) for m in members))
        for m, code in zip(members, codes, strict=True):
            if homes[m.name] is not a:  # told to come back by their own node (a's own sockets just dropped)
                assert code == 1012, (m.name, code)

        # Everyone comes back with its resume token: a's members through b and c in turn, the others where they were.
        live = [b, c]
        again = [homes[m.name] if homes[m.name] is not a else live[i % 2] for i, m in enumerate(members)]
        back = await asyncio.gather(*(resume(http, n, tokens[m.name], m) for n, m in zip(again, members, strict=True)))
        for m, was in zip(back, members, strict=True):
            welcome = m.signal.welcome
            assert welcome["resumed"] is True and welcome["self"]["id"] == was.id, (was.name, welcome)
            assert welcome["room"]["id"] == rooms[was.id], was.name  # the same breakout room
            peers = [p["id"] for p in welcome["peers"]]
            assert len(peers) == len(set(peers)) and set(peers) <= mates[was.id], was.name
        await asyncio.gather(*(m.roster_becomes(mates[m.id]) for m in back))
        # Nobody twice, nobody missing, everyone live in its room: as the new owner holds it, asked through b and c.
        for node in live:
            present = await presence(http, node, wid)
            assert Counter(pid for pid, _room, _connected in present) == Counter(everyone), node.name
            assert {pid: (room, connected) for pid, room, connected in present} == {
                pid: (room, True) for pid, room in rooms.items()
            }
        assert sorted([await b.leases(http), await c.leases(http)]) == [0, 1]

        # The stored deadline, armed by the new owner: everyone back in the plenary once.
        # (Every socket is read meanwhile: one left unread this long would miss its node's heartbeat and be closed.)
        returns = await asyncio.gather(*(m.signal.wait_for("moved", WAIT_S) for m in back))
        for m, moved in zip(back, returns, strict=True):
            assert moved["room"]["id"] == plenary, m.name
        await back[0].signal.send({"type": "update", "hand": True})  # a round trip through the owner, then count
        for m in back[1:]:
            await m.signal.wait_for("peer_updated", WAIT_S)
        for m in back:
            types = [t["type"] for t in m.signal.seen]
            assert types.count("moved") == 1 and types.count("breakouts_closed") == 1, (m.name, types)
        assert await plan_closings(database_url, wid) == 1

        # The record: every visit open at the kill has ended; each person is on one visit, in the plenary.
        workshop = uuid.UUID(wid)
        query = """SELECT count(*) FILTER (WHERE started_at < $2) AS stale, count(*) AS open,
                          count(DISTINCT participant_id) AS people, bool_and(room_id = $3) AS plenary
                   FROM visits WHERE workshop_id = $1 AND ended_at IS NULL"""
        expected = {"stale": 0, "open": MEMBERS, "people": MEMBERS, "plenary": True}
        async with asyncio.timeout(WAIT_S):
            while dict(await db.fetchrow(query, workshop, killed_at, uuid.UUID(plenary))) != expected:
                await written.get()
    finally:
        await db.close()
    # One takeover, although thirty hellos reached the new owner at once (each used to take the lease anew).
    logs = b.log() + c.log()
    assert logs.count(f"lease of workshop {wid} acquired") == 1 and logs.count("took over breakouts") == 1, logs
