"""A drained owner hands its workshops over (docs/scaling.md, "Drain"): once every place is a grant, it gives each
lease back and offers the workshop to the least loaded other node, which takes it at once, so that the workshop's
breakout timer runs there before, and whether or not, anybody comes back. Three real nodes, one NATS server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.nodes.test_any_node import (
    WAIT_S,
    Node,
    http,  # noqa: F401 (the fixture)
    join,
    new_workshop,
    open_breakouts,
    plan_closings,
    resume,
    three_nodes,
)
from tests.nodes.test_quiet_and_gone_nodes import until


async def test_a_drained_owner_hands_its_workshop_to_another_node_whose_timer_ends_the_breakouts_with_nobody_back(
    http: aiohttp.ClientSession,  # noqa: F811
    database_url: str,
    bus_url: str,
    tmp_path: Path,
) -> None:
    # A grace period longer than the breakouts: the places outlast them.
    async with three_nodes(database_url, bus_url, tmp_path, ROUNDTABLE_RESUME_GRACE_S="60") as nodes:
        await handed_over(nodes, http, database_url)


async def handed_over(nodes: list[Node], http: aiohttp.ClientSession, database_url: str) -> None:  # noqa: F811
    a, b, c = nodes
    wid, tokens = await new_workshop(http, b, "ana", "ben")
    ana = await join(http, a, tokens["ana"], "ana")  # a owns the workshop
    ben = await join(http, b, tokens["ben"], "ben")  # forwarded to a
    plenary = ana.signal.welcome["room"]["id"]
    await ana.roster_becomes({ben.id})
    plan = await open_breakouts(http, c, wid, duration_s=8)
    for m in (ana, ben):
        assert (await m.signal.wait_for("moved", WAIT_S))["room"]["id"] == plan["assignments"][m.id]

    assert await a.terminate() == 0
    assert await asyncio.gather(ana.signal.wait_closed(WAIT_S), ben.signal.wait_closed(WAIT_S)) == [1012, 1012]
    assert "handed to node" in a.log() and "drain: 1 of 1 workshop(s) handed over" in a.log()

    # Nobody comes back, yet another node owns the workshop and its stored deadline ends the breakouts, once.
    async def owned_elsewhere() -> bool:
        return await b.leases(http) + await c.leases(http) == 1

    await until(owned_elsewhere, "the workshop adopted by b or c")

    async def closed() -> bool:
        return await plan_closings(database_url, wid) == 1

    await until(closed, "the breakouts closed by the adopter at their deadline")
    assert "took over breakouts" in b.log() + c.log()

    # Then they come back, through any node: their places were kept, in the plenary where they belong now.
    back = await asyncio.gather(resume(http, b, tokens["ana"], ana), resume(http, c, tokens["ben"], ben))
    for m in back:
        assert m.signal.welcome["resumed"] is True and m.signal.welcome["room"]["id"] == plenary
    assert await plan_closings(database_url, wid) == 1
