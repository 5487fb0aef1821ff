"""A dead or paused owner costs nobody their place on the stage (issue 12): the floor, the spotlight and the help
requests waiting outlive the owner that held them in memory, and an owner that lost its lease can move nobody.

The fenced writes are tested against the stores directly, two keepers on two pools standing for two nodes (as in
tests/nodes/test_leases.py); the handover itself with three real nodes (tests/nodes/test_any_node.py), the owner
SIGKILLed while a participant has the floor and the spotlight and another waits for help."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest

from signaling.audit import SYSTEM
from signaling.breakout_store import BreakoutStore
from signaling.breakouts import BreakoutCoordinator
from signaling.fence import LeaseLost
from signaling.protocol import RoomInfo
from signaling.rooms import Member as LiveMember
from signaling.rooms import Profile
from signaling.stage_store import PgStageStore, RoomStage, Stage
from tests.helpers import ADMIN
from tests.nodes.test_any_node import WAIT_S, Node, http, join, new_workshop, nodes, resume
from tests.nodes.test_leases import QuietHub, _keeper, _lapse, _workshop, pools

__all__ = ["http", "nodes", "pools"]  # the fixtures, imported for the tests below


class Homes:
    def __init__(self, plenary: RoomInfo) -> None:
        self.plenary = plenary

    async def home_room(self, workshop_id: str, participant_id: str) -> RoomInfo:
        return self.plenary


async def _person(pool: asyncpg.Pool, workshop: uuid.UUID, name: str, role: str = "participant") -> uuid.UUID:
    pid: uuid.UUID = await pool.fetchval(
        "INSERT INTO participants (workshop_id, display_name, country, role) VALUES ($1, $2, 'PT', $3) RETURNING id",
        workshop,
        name,
        role,
    )
    return pid


async def test_a_paused_owner_can_move_nobody_after_a_takeover_and_postgresql_keeps_the_new_owners_places(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    a, b = await _keeper(pools[0], "node-a"), await _keeper(pools[1], "node-b")
    workshop = await _workshop(pools[0])
    ana = await _person(pools[0], workshop, "Ana")
    eve = await _person(pools[0], workshop, "Eve", "moderator")
    plenary = RoomInfo(
        id=str(uuid.uuid4()), workshop_id=str(workshop), name="Plenary", kind="plenary", media="mesh", capacity=9
    )
    on_a, on_b = (
        BreakoutCoordinator(BreakoutStore(pool), QuietHub(), Homes(plenary), ownership=keeper)  # type: ignore[arg-type]
        for pool, keeper in ((pools[0], a), (pools[1], b))
    )
    plan = await on_a.store.create_plan(
        workshop, name="Pairs", strategy="self_select", roles=["participant", "moderator"], self_select_cap=None,
        duration_s=None, countdown_s=0, seed=0, room_names=["Room 1", "Room 2"], capacity=5, assignments={},
    )  # fmt: skip
    room1, room2 = plan.room_ids()
    assert await a.acquire(workshop) is not None
    await on_a.open(workshop, plan.id, 600, SYSTEM)
    await on_a.move(workshop, plan.id, ana, room1, SYSTEM)  # the owner moves people

    # a pauses past its lease; b takes the workshop over. Awake, a still has its old fence in memory.
    await _lapse(pools[0], workshop)
    assert await b.acquire(workshop) is not None
    eve_on_a = LiveMember(
        id=str(eve), workshop_id=str(workshop), profile=Profile("Eve", "PT", "", "moderator"), room_id=plenary.id,
        resume_secret="s",
    )  # fmt: skip
    with pytest.raises(LeaseLost):
        await on_a.move(workshop, plan.id, ana, room2, SYSTEM)
    with pytest.raises(LeaseLost):
        await on_a.choose_room(eve_on_a, str(room2))
    with pytest.raises(LeaseLost):
        await on_a.put_assignments(workshop, plan.id, {ana: 1, eve: 1}, SYSTEM)
    assert (await on_b.store.get_plan(workshop, plan.id)).assignments == {ana: room1}, "nothing a did changed"
    actions = await pools[1].fetch("SELECT action FROM audit_entries WHERE workshop_id = $1 ORDER BY seq", workshop)
    assert [r["action"] for r in actions] == ["breakouts.open", "breakouts.move"], "nor did it log a move"

    # The new owner moves them.
    await on_b.move(workshop, plan.id, ana, room2, SYSTEM)
    assert (await on_b.store.get_plan(workshop, plan.id)).assignments == {ana: room2}
    await on_a.shutdown()
    await on_b.shutdown()


async def test_a_paused_owner_cannot_overwrite_the_stage_the_new_owner_keeps(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    a, b = await _keeper(pools[0], "node-a"), await _keeper(pools[1], "node-b")
    workshop = await _workshop(pools[0])
    ana = str(await _person(pools[0], workshop, "Ana"))
    room = str(
        await pools[0].fetchval(
            "INSERT INTO rooms (workshop_id, name, kind, capacity) VALUES ($1, 'Plenary', 'plenary', 9) RETURNING id",
            workshop,
        )
    )
    on_a, on_b = PgStageStore(pools[0], fence_of=a.fence), PgStageStore(pools[1], fence_of=b.fence)
    with pytest.raises(LeaseLost):  # not the owner yet: nothing is written
        await on_a.save(Stage(str(workshop), (RoomStage(room, frozenset({ana}), ana),)))
    assert await a.acquire(workshop) is not None
    await on_a.save(Stage(str(workshop), (RoomStage(room, frozenset({ana}), ana),)))

    await _lapse(pools[0], workshop)
    assert await b.acquire(workshop) is not None
    # a, awake, sees Ana leave (its sessions end) and would write an empty stage: refused.
    with pytest.raises(LeaseLost):
        await on_a.save(Stage(str(workshop)))
    rows = await pools[1].fetch(
        "SELECT participant_id, floor, spotlight FROM live_stage WHERE workshop_id = $1", workshop
    )
    assert [(str(r["participant_id"]), r["floor"], r["spotlight"]) for r in rows] == [(ana, True, True)]
    await on_b.save(Stage(str(workshop)))
    assert await pools[1].fetchval("SELECT count(*) FROM live_stage") == 0


# Real nodes ---------------------------------------------------------------------------------------------------

# Test-only: each write of the stage is announced, so that the test waits for it instead of polling.
STAGE_NOTIFY = """
CREATE FUNCTION rt_test_stage_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('rt_test_stage', ''); RETURN NULL; END $$;
CREATE TRIGGER rt_test_stage AFTER INSERT ON live_stage FOR EACH STATEMENT EXECUTE FUNCTION rt_test_stage_notify();
CREATE TRIGGER rt_test_help AFTER INSERT ON live_help FOR EACH STATEMENT EXECUTE FUNCTION rt_test_stage_notify();
"""
STAGE_WRITTEN = """
SELECT (SELECT count(*) FROM live_stage WHERE workshop_id = $1 AND floor AND spotlight) = 1
    AND (SELECT count(*) FROM live_help WHERE workshop_id = $1) = 1
"""


async def _ack(member: Any, message: dict[str, Any], request_id: str) -> None:
    await member.signal.send({**message, "request_id": request_id})
    await member.signal.wait_for("ack", WAIT_S, request_id=request_id)


async def test_after_the_owner_is_killed_the_floor_the_spotlight_and_a_waiting_help_request_are_there_on_the_new_owner(
    nodes: list[Node], http: aiohttp.ClientSession, database_url: str
) -> None:
    a, b, c = nodes
    wid, tokens = await new_workshop(http, b, "eve", "ana", "ben", roles={"eve": "moderator"})
    db = await asyncpg.connect(database_url)
    try:
        # The plenary is a moderated sfu room (set in SQL: these nodes run no Janus), so that the floor decides who
        # may publish; nobody publishes in this test.
        await db.execute(
            "UPDATE rooms SET media = 'sfu', publishing = 'moderated' WHERE workshop_id = $1 AND kind = 'plenary'",
            uuid.UUID(wid),
        )
        await db.execute(STAGE_NOTIFY)
        written: asyncio.Queue[str] = asyncio.Queue()
        await db.add_listener("rt_test_stage", lambda *_: written.put_nowait(""))

        eve = await join(http, a, tokens["eve"], "eve")  # a owns the workshop
        ana = await join(http, b, tokens["ana"], "ana")
        ben = await join(http, c, tokens["ben"], "ben")
        assert ana.signal.welcome["self"]["may_publish"] is False
        await _ack(eve, {"type": "grant_floor", "peer_id": ana.id}, "floor")
        assert (await ana.signal.wait_for("floor", WAIT_S))["granted"] is True
        await _ack(eve, {"type": "spotlight", "peer_id": ana.id}, "spot")
        await _ack(ben, {"type": "ask_help", "text": "no sound"}, "help")
        async with asyncio.timeout(WAIT_S):  # written by the owner in the background: wait for it
            while not await db.fetchval(STAGE_WRITTEN, uuid.UUID(wid)):
                await written.get()

        await a.kill()
        assert await asyncio.gather(*(m.signal.wait_closed(WAIT_S) for m in (ana, ben))) == [1012, 1012]
        # Everyone comes back through a live node; one of b and c takes the workshop over.
        eve2, ana2, ben2 = await asyncio.gather(
            resume(http, b, tokens["eve"], eve),
            resume(http, c, tokens["ana"], ana),
            resume(http, b, tokens["ben"], ben),
        )
        for member in (eve2, ana2, ben2):
            assert member.signal.welcome["resumed"] is True, member.name
            assert member.signal.welcome["spotlight"] == ana.id, member.name
        assert ana2.signal.welcome["self"]["may_publish"] is True, "still has the floor"
        assert ben2.signal.welcome["self"]["may_publish"] is False
        async with http.get(f"{c.url}/api/v1/workshops/{wid}/presence", headers=ADMIN) as resp:
            assert resp.status == 200, await resp.text()
            waiting = (await resp.json())["help_requests"]
        assert [(h["participant_id"], h["text"]) for h in waiting] == [(ben.id, "no sound")]

        # The new owner keeps the stage as its own: the spotlight ends, and that is written fenced by its lease.
        await _ack(eve2, {"type": "spotlight", "peer_id": None}, "unspot")
        async with asyncio.timeout(WAIT_S):
            while await db.fetchval(
                "SELECT count(*) FROM live_stage WHERE spotlight AND workshop_id = $1", uuid.UUID(wid)
            ):
                await written.get()
        for member in (eve2, ana2, ben2):
            await member.signal.close()
    finally:
        await db.close()
