"""Which node owns a new workshop: the least loaded (server/node_selector.py, docs/scaling.md "Which node owns a
workshop"). The choice alone; two nodes' `Placement`s on one in-process bus and the real PostgreSQL; and three real
`python -m server` nodes, where workshops whose first sessions all land on one node are spread over the others, a
node that does not answer (SIGSTOP) holds no join up, a draining node is never chosen, and a margin keeps a workshop
where it landed."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from server.leases import LeaseKeeper, NodeInfo
from server.node_selector import NodeLoad, Placement, choose
from server.nodes import Node as NodeOfApp
from signaling.bus import InProcessBus
from tests.nodes.test_any_node import WAIT_S, Member, Node, join, new_workshop, open_breakouts, three_nodes

# The choice ---------------------------------------------------------------------------------------------------


def test_the_lightest_other_node_is_chosen_when_it_is_lighter_by_the_margin() -> None:
    me = NodeLoad("a", sessions=12, workshops=1)  # load 22
    others = [NodeLoad("b", sessions=3, workshops=1), NodeLoad("c", sessions=0, workshops=1)]  # 13, 10
    assert choose(me, others, margin=10) == "c"
    assert choose(me, others, margin=12) == "c"  # 10 <= 22 - 12
    assert choose(me, others, margin=13) is None  # not lighter by a clear margin: kept here


def test_equal_loads_keep_the_workshop_here_and_ties_between_others_go_to_the_smaller_id() -> None:
    assert choose(NodeLoad("a", 0, 0), [NodeLoad("b", 0, 0), NodeLoad("c", 0, 0)], margin=1) is None
    assert choose(NodeLoad("m", 30, 0), [NodeLoad("z", 0, 0), NodeLoad("b", 0, 0)], margin=10) == "b"
    assert choose(NodeLoad("a", 5, 0), [], margin=1) is None  # alone


def test_a_node_at_its_soft_limit_or_draining_is_never_chosen_and_hands_every_workshop_away() -> None:
    full = NodeLoad("b", sessions=0, workshops=2, max_workshops=2)
    assert choose(NodeLoad("a", 40, 3), [full, NodeLoad("c", 60, 3)], margin=10) is None  # c is heavier than a
    assert choose(NodeLoad("a", 40, 3), [full, NodeLoad("c", 30, 3)], margin=10) == "c"
    me_full = NodeLoad("a", 0, 1, max_workshops=1)
    assert choose(me_full, [NodeLoad("c", 50, 4)], margin=10) == "c"  # heavier, but a takes no more
    assert choose(me_full, [full], margin=10) is None  # nobody else can: taken here after all
    leaving = NodeLoad("a", 0, 0, draining=True)
    assert choose(leaving, [NodeLoad("c", 50, 4)], margin=10) == "c"  # a draining node hands everything on
    assert choose(NodeLoad("a", 50, 4), [NodeLoad("b", 0, 0, draining=True)], margin=10) is None


# Two nodes' placements on the real PostgreSQL ------------------------------------------------------------------


async def _workshop(pool: asyncpg.Pool) -> uuid.UUID:
    workshop_id: uuid.UUID = await pool.fetchval(
        """INSERT INTO workshops (title, timezone, starts_at, ends_at)
           VALUES ('Placement', 'UTC', now(), now() + interval '2 hours') RETURNING id"""
    )
    return workshop_id


class Fake:
    """A node's placement without its server: its keeper (real leases) and a settable session count."""

    def __init__(self, pool: asyncpg.Pool, bus: InProcessBus, name: str, max_workshops: int | None = None) -> None:
        info = NodeInfo(id=name, max_workshops=max_workshops)
        self.sessions = 0
        self.keeper = LeaseKeeper(pool, info, ttl_s=30.0, sessions=lambda: self.sessions)
        self.placement = Placement(
            NodeOfApp(info=info, bus=bus, engine="in_process", leases=self.keeper), sessions=lambda: self.sessions
        )

    async def start(self) -> Fake:
        await self.keeper.register()
        await self.keeper.renew()  # publishes the sessions
        await self.placement.start()
        return self


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_workshop_nobody_holds_is_adopted_by_a_lighter_node_and_kept_here_at_equal_load(
    pool: asyncpg.Pool,
) -> None:
    bus = InProcessBus()
    a, b = await Fake(pool, bus, "node-a").start(), await Fake(pool, bus, "node-b").start()
    try:
        first, second, third = [await _workshop(pool) for _ in range(3)]
        assert await a.placement.place(first) is None  # equal loads: a takes it itself
        assert await a.keeper.acquire(first) is not None
        a.sessions = 1  # load 11 against b's 0
        assert await a.placement.place(second) == "node-b"
        assert b.keeper.fence(second) is not None  # b holds the lease: the session goes there
        assert await a.placement.place(second) is None  # it has an owner now
        # b holds one workshop (10, counted from its lease at once), a one and a session (11): a keeps the next.
        assert await a.placement.place(third) is None
        assert b.keeper.fence(third) is None
    finally:
        await a.placement.close()
        await b.placement.close()
        await bus.close()


async def test_a_draining_or_full_node_is_not_asked_and_one_that_is_not_there_holds_nothing_up(
    pool: asyncpg.Pool,
) -> None:
    bus = InProcessBus()
    a = await Fake(pool, bus, "node-a").start()
    b = await Fake(pool, bus, "node-b", max_workshops=1).start()
    try:
        a.sessions = 50
        full_of, fresh = await _workshop(pool), await _workshop(pool)
        assert await b.keeper.acquire(full_of) is not None
        assert [(n.node_id, n.workshops, n.full) for n in await a.placement.loads()] == [("node-b", 1, True)]
        assert await a.placement.place(fresh) is None  # b is at its soft limit
        assert b.placement.refuses() == "at its soft limit of workshops"
        await b.keeper.release(full_of)
        await b.keeper.drain()
        assert await a.placement.loads() == []  # draining: never a candidate
        assert b.placement.refuses() == "draining"
        await pool.execute("UPDATE nodes SET draining = false, seen_at = now() - interval '1 minute'")
        assert await a.placement.loads() == []  # not seen within the lease TTL

        await pool.execute("UPDATE nodes SET seen_at = now()")
        await b.placement.close()  # b still looks live, but nobody answers for it: no responders at once
        assert await a.placement.place(fresh) is None
        assert await a.keeper.acquire(fresh) is not None
    finally:
        await a.placement.close()
        await b.placement.close()
        await bus.close()


# Three real nodes -----------------------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def node_id(http: aiohttp.ClientSession, node: Node) -> str:
    async with http.get(f"{node.url}/readyz") as resp:
        found: str = (await resp.json())["node"]["id"]
    return found


async def holder(database_url: str, workshop_id: str) -> str | None:
    conn = await asyncpg.connect(database_url)
    try:
        found: str | None = await conn.fetchval(
            "SELECT node_id FROM workshop_leases WHERE workshop_id = $1::uuid AND expires_at > now()",
            uuid.UUID(workshop_id),
        )
    finally:
        await conn.close()
    return found


async def pair(http: aiohttp.ClientSession, first: Node, second: Node, tokens: dict[str, str]) -> list[Member]:
    """The workshop's first member through `first`, then the second through `second`; both see each other."""
    names = list(tokens)
    one = await join(http, first, tokens[names[0]], names[0])
    two = await join(http, second, tokens[names[1]], names[1])
    await one.roster_becomes({two.id})
    assert two.roster == {one.id}
    return [one, two]


async def test_workshops_whose_first_sessions_all_land_on_one_node_go_to_the_least_loaded_nodes(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with three_nodes(database_url, bus_url, tmp_path) as (a, b, c):
        ids = {n.name: await node_id(http, n) for n in (a, b, c)}
        by_id = {v: k for k, v in ids.items()}
        # b is busy first: a workshop whose first session landed there (all idle: b keeps it).
        w0, t0 = await new_workshop(http, b, "b1", "b2")
        members = await pair(http, b, b, t0)
        assert by_id[await holder(database_url, w0) or ""] == "b"

        # Every other workshop's first session lands on a.
        w1, t1 = await new_workshop(http, a, "a1", "a2")
        members += await pair(http, a, c, t1)  # a and c are equally idle: a keeps it (ties: this node)
        assert by_id[await holder(database_url, w1) or ""] == "a"

        w2, t2 = await new_workshop(http, a, "c1", "c2")
        mark = len(a.server.output)
        members += await pair(http, a, b, t2)  # a holds one and serves two (12), b 10 or more, c 0: c adopts it
        assert by_id[await holder(database_url, w2) or ""] == "c"
        await a.logs(f"workshop {w2} handed to node {ids['c']}, the least loaded", after=mark)
        assert members[-2].signal.welcome["room"]["id"] == members[-1].signal.welcome["room"]["id"]

        w3, t3 = await new_workshop(http, a, "d1", "d2")
        members += await pair(http, a, c, t3)  # everyone holds one: nobody is lighter by the margin, a keeps it
        assert by_id[await holder(database_url, w3) or ""] == "a"
        assert [await n.leases(http) for n in (a, b, c)] == [2, 1, 1]

        # The forwarded members' rosters stay exact: one leaves, the other sees it, and comes back through b.
        c1, c2 = members[4], members[5]
        await c2.signal.send({"type": "leave"})
        assert await c2.signal.wait_closed(WAIT_S) == 1000
        await c1.roster_becomes(set())
        back = await join(http, b, t2["c2"], "c2")
        assert {p["id"] for p in back.signal.welcome["peers"]} == {c1.id}
        await c1.roster_becomes({back.id})


async def test_a_breakout_opened_in_a_workshop_nobody_holds_goes_to_the_least_loaded_node(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with three_nodes(database_url, bus_url, tmp_path) as (a, b, c):
        ids = {n.name: await node_id(http, n) for n in (a, b, c)}
        _w1, t1 = await new_workshop(http, a, "a1", "a2")
        await pair(http, a, a, t1)
        w2, t2 = await new_workshop(http, a, "ana", "ben", "eva")
        await open_breakouts(http, a, w2, 600)  # through a, with nobody connected: a lease-taking action
        adopter = await holder(database_url, w2)
        assert adopter in {ids["b"], ids["c"]}
        ana = await join(http, a, t2["ana"], "ana")  # forwarded to the adopter, into its breakout room
        assert ana.signal.welcome["room"]["kind"] == "breakout", ana.signal.welcome["room"]


async def test_a_node_that_does_not_answer_the_adopt_request_does_not_hold_up_a_join(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with three_nodes(database_url, bus_url, tmp_path) as (a, b, c):
        ids = {n.name: await node_id(http, n) for n in (a, b, c)}
        _w1, t1 = await new_workshop(http, a, "a1", "a2")
        await pair(http, a, a, t1)  # a: 12
        w2, t2 = await new_workshop(http, a, "p1", "p2")
        paused = [b, c]
        for node in paused:
            os.kill(node.server.proc.pid, signal.SIGSTOP)
        try:
            mark = len(a.server.output)
            async with asyncio.timeout(WAIT_S):
                p1 = await join(http, a, t2["p1"], "p1")  # asked b or c (looking live, idle), heard nothing in 1 s
            await a.logs(f"did not adopt workshop {w2}", after=mark)
            assert await holder(database_url, w2) == ids["a"]
        finally:
            for node in paused:
                os.kill(node.server.proc.pid, signal.SIGCONT)
        # The late answer takes nothing: the lease is a's.
        asked = b if any(f"node {ids['b']} did not adopt" in line for line in a.server.output[mark:]) else c
        await asked.logs(f"adopting workshop {w2} refused: another node holds it")
        assert await holder(database_url, w2) == ids["a"]
        p2 = await join(http, c, t2["p2"], "p2")
        await p1.roster_becomes({p2.id})


async def test_a_draining_node_is_never_chosen(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with three_nodes(database_url, bus_url, tmp_path, ROUNDTABLE_NODE_LOAD_MARGIN="2") as (a, b, c):
        ids = {n.name: await node_id(http, n) for n in (a, b, c)}
        _w0, t0 = await new_workshop(http, c, "c1")
        await join(http, c, t0["c1"], "c1")  # c: one workshop, one session (11)
        w1, t1 = await new_workshop(http, a, "a1", "a2", "a3")
        first = await join(http, a, t1["a1"], "a1")  # a and b idle: a keeps it
        others = [await join(http, a, t1[n], n) for n in ("a2", "a3")]
        await first.roster_becomes({m.id for m in others})  # a: 13
        assert await holder(database_url, w1) == ids["a"]
        # b, idle and the lightest, is draining (as a node is from the moment its drain begins): c is chosen.
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("UPDATE nodes SET draining = true WHERE id = $1", ids["b"])
        finally:
            await conn.close()
        w2, t2 = await new_workshop(http, a, "p1")
        await join(http, a, t2["p1"], "p1")
        assert await holder(database_url, w2) == ids["c"]
        assert "adopting workshop" not in b.log()


async def test_a_margin_larger_than_the_difference_keeps_every_workshop_where_it_landed(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with three_nodes(database_url, bus_url, tmp_path, ROUNDTABLE_NODE_LOAD_MARGIN="1000") as (a, b, c):
        workshops = [await new_workshop(http, a, "x", "y") for _ in range(3)]
        for _wid, tokens in workshops:
            await pair(http, a, b, tokens)
        assert [await n.leases(http) for n in (a, b, c)] == [3, 0, 0]
        assert "handed to node" not in a.log()


async def test_a_node_at_its_soft_limit_hands_new_workshops_away_and_takes_one_when_everyone_is_full(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # A margin nobody reaches: only the soft limit moves a workshop.
    limits = {"ROUNDTABLE_NODE_LOAD_MARGIN": "1000", "ROUNDTABLE_NODE_MAX_WORKSHOPS": "1"}
    async with three_nodes(database_url, bus_url, tmp_path, **limits) as (a, b, c):
        ids = {n.name: await node_id(http, n) for n in (a, b, c)}
        holders = []
        for _ in range(4):
            wid, tokens = await new_workshop(http, a, "x", "y")
            await pair(http, a, b, tokens)
            holders.append(await holder(database_url, wid))
        assert holders[0] == ids["a"]  # a was under its limit
        assert set(holders[1:3]) == {ids["b"], ids["c"]}  # a full: to the others, until they are full too
        assert holders[3] == ids["a"]  # everyone full: the node it landed on takes it after all
        assert [await n.leases(http) for n in (a, b, c)] == [2, 1, 1]
