"""Workshop leases and fencing against a real PostgreSQL: two keepers on two pools stand for two nodes.

A lapse is made either by the keepers' own short TTLs (a keeper that stops renewing, waited for on events) or by
moving a lease's expiry into the past in SQL: the database's clock is the only one that decides expiry, and that
is how a test moves it without waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from server.leases import ACQUIRE, LeaseKeeper, NodeInfo
from signaling.audit import SYSTEM
from signaling.breakout_store import BreakoutStore
from signaling.breakouts import BreakoutCoordinator
from signaling.fence import Fence, LeaseLost, fence_holds

WAIT_S = 5.0


@pytest.fixture
async def pools(database_url: str) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    """One pool per node, as two processes would have."""
    a = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    b = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _workshop(pool: asyncpg.Pool) -> uuid.UUID:
    workshop_id: uuid.UUID = await pool.fetchval(
        """INSERT INTO workshops (title, timezone, starts_at, ends_at)
           VALUES ('Leases', 'UTC', now(), now() + interval '2 hours') RETURNING id"""
    )
    return workshop_id


async def _keeper(pool: asyncpg.Pool, name: str, **options: Any) -> LeaseKeeper:
    keeper = LeaseKeeper(pool, NodeInfo(id=name, address=f"{name}:8080"), **options)
    await keeper.register()
    return keeper


async def _lapse(pool: asyncpg.Pool, workshop_id: uuid.UUID) -> None:
    await pool.execute(
        "UPDATE workshop_leases SET expires_at = now() - interval '1 second' WHERE workshop_id = $1", workshop_id
    )


async def _draft_plan(store: BreakoutStore, workshop_id: uuid.UUID) -> uuid.UUID:
    plan = await store.create_plan(
        workshop_id,
        name="Groups",
        strategy="manual",
        roles=["participant"],
        self_select_cap=None,
        duration_s=None,
        countdown_s=0,
        seed=0,
        room_names=["Room 1"],
        capacity=5,
        assignments={},
    )
    return plan.id


async def test_a_free_workshop_is_leased_to_the_first_node_and_refused_to_the_others(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    a, b = await _keeper(pools[0], "node-a"), await _keeper(pools[1], "node-b")
    workshop = await _workshop(pools[0])
    fence = await a.acquire(workshop)
    assert fence is not None and fence.node_id == "node-a"
    assert await b.acquire(workshop) is None
    assert await a.acquire(workshop) == fence  # held already: the same lease, the same fence
    owner = await b.owner(workshop)
    assert owner is not None and (owner.node_id, owner.fence, owner.live) == ("node-a", fence.value, True)
    assert a.held() == [workshop] and b.held() == []


async def test_concurrent_acquires_on_one_node_take_the_lease_once_with_one_fence(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    taken: list[Fence] = []
    a = await _keeper(pools[0], "node-a", on_acquired=taken.append)
    workshop = await _workshop(pools[0])
    # The hellos of many members reach a new owner at once: one takeover, not one per hello (each with a fence of
    # its own, all but the last stale, and the one held perhaps not the database's).
    fences = await asyncio.gather(*(a.acquire(workshop) for _ in range(5)))
    assert len(set(fences)) == 1 and fences[0] is not None
    assert taken == [fences[0]]
    owner = await a.owner(workshop)
    assert owner is not None and owner.fence == fences[0].value


async def test_a_renewal_moves_the_expiry_on_and_beats_the_node(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> None:
    a = LeaseKeeper(pools[0], NodeInfo(id="node-a", janus_url="ws://127.0.0.1:8188"), janus_rooms=lambda: 3)
    await a.register()
    workshop = await _workshop(pools[0])
    assert await a.acquire(workshop) is not None
    before = await pools[0].fetchval("SELECT expires_at FROM workshop_leases WHERE workshop_id = $1", workshop)
    seen_before = await pools[0].fetchval("SELECT seen_at FROM nodes WHERE id = 'node-a'")
    await a.renew()
    after = await pools[0].fetchval("SELECT expires_at FROM workshop_leases WHERE workshop_id = $1", workshop)
    node = await pools[0].fetchrow("SELECT seen_at, janus_url, janus_rooms, draining FROM nodes WHERE id = 'node-a'")
    assert after > before
    assert node["seen_at"] > seen_before
    assert (node["janus_url"], node["janus_rooms"], node["draining"]) == ("ws://127.0.0.1:8188", 3, False)


async def test_a_lapsed_lease_is_taken_over_with_a_larger_fence_and_the_old_owner_learns_it_lost(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    lost: list[uuid.UUID] = []
    a = await _keeper(pools[0], "node-a", on_lost=lost.append)
    b = await _keeper(pools[1], "node-b")
    workshop = await _workshop(pools[0])
    first = await a.acquire(workshop)
    assert first is not None
    await _lapse(pools[0], workshop)
    assert [(lease.workshop_id, lease.node_id) for lease in await b.lapsed()] == [(workshop, "node-a")]
    second = await b.acquire(workshop)
    assert second is not None and second.node_id == "node-b"
    assert second.value > first.value
    await a.renew()  # finds its fence gone
    assert lost == [workshop]
    assert a.fence(workshop) is None and a.held() == []
    owner = await a.owner(workshop)
    assert owner is not None and owner.node_id == "node-b"


async def test_a_running_keeper_takes_over_a_wanted_workshop_once_its_owner_stops_renewing(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    # node-a holds the lease with a short TTL and never renews it (as if paused); node-b renews every 50 ms and
    # wants the workshop: it gets it as soon as PostgreSQL says the lease has lapsed.
    a = await _keeper(pools[0], "node-a", ttl_s=0.3)
    got: asyncio.Queue[Fence] = asyncio.Queue()
    b = await _keeper(pools[1], "node-b", ttl_s=0.3, renew_every_s=0.05, on_acquired=got.put_nowait)
    workshop = await _workshop(pools[0])
    first = await a.acquire(workshop)
    assert first is not None
    b.want(workshop)
    b.start()
    try:
        taken = await asyncio.wait_for(got.get(), WAIT_S)
    finally:
        await b.close()
    assert (taken.workshop_id, taken.node_id) == (workshop, "node-b")
    assert taken.value > first.value
    assert await a.lapsed() == []  # taken over: nothing is left for a failover sweep


async def test_a_paused_owner_cannot_move_breakouts_on_after_a_takeover(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    a = await _keeper(pools[0], "node-a")
    b = await _keeper(pools[1], "node-b")
    store_a, store_b = BreakoutStore(pools[0]), BreakoutStore(pools[1])
    workshop = await _workshop(pools[0])
    plan = await _draft_plan(store_a, workshop)
    old = await a.acquire(workshop)
    assert old is not None
    # node-a pauses (stops renewing); its lease lapses and node-b takes the workshop over.
    await _lapse(pools[0], workshop)
    new = await b.acquire(workshop)
    assert new is not None
    # node-a wakes up still holding its old fence in memory: the database refuses its write.
    with pytest.raises(LeaseLost) as refused:
        await store_a.open_plan(workshop, plan, None, fence=old)
    assert (refused.value.code, refused.value.message) == ("conflict", "lease lost")
    assert (await store_a.get_plan(workshop, plan)).state == "draft"
    # The new owner's write goes through, and its own later transitions too.
    opened = await store_b.open_plan(workshop, plan, None, fence=new)
    assert opened.state == "open"
    with pytest.raises(LeaseLost):
        await store_a.close_plan(workshop, plan, fence=old)
    assert (await store_b.close_plan(workshop, plan, fence=new)).state == "closed"


async def test_without_a_fence_a_breakout_transition_behaves_as_on_one_node(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    store = BreakoutStore(pools[0])
    workshop = await _workshop(pools[0])
    plan = await _draft_plan(store, workshop)
    assert (await store.open_plan(workshop, plan, None)).state == "open"  # no lease anywhere, no fence asked
    other = await _workshop(pools[0])
    a = await _keeper(pools[0], "node-a")
    fence = await a.acquire(other)
    assert fence is not None
    with pytest.raises(ValueError, match="another workshop"):
        await store.close_plan(workshop, plan, fence=fence)


async def test_a_lapsed_lease_nobody_took_refuses_writes_until_its_owner_renews_it(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    a = await _keeper(pools[0], "node-a")
    workshop = await _workshop(pools[0])
    fence = await a.acquire(workshop)
    assert fence is not None
    await _lapse(pools[0], workshop)
    async with pools[0].acquire() as conn, conn.transaction():
        with pytest.raises(LeaseLost):
            await fence.check(conn)
    await a.renew()  # nobody owned it in between: the same fence is good again
    assert a.fence(workshop) == fence
    async with pools[0].acquire() as conn, conn.transaction():
        await fence.check(conn)


async def test_a_takeover_waits_for_the_old_owners_guarded_write_in_flight(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    a = await _keeper(pools[0], "node-a")
    await _keeper(pools[1], "node-b")
    workshop = await _workshop(pools[0])
    fence = await a.acquire(workshop)
    assert fence is not None
    async with pools[0].acquire() as writer, pools[1].acquire() as taker:
        await taker.execute("SET lock_timeout = '100ms'")
        tx = writer.transaction()
        await tx.start()
        await fence.check(writer)  # node-a's write passed its check and has not committed yet
        # Any change of the lease (a takeover, a renewal, moving its expiry) must wait for that write to end: the
        # write that passed its check commits before a new owner can begin.
        with pytest.raises(asyncpg.LockNotAvailableError):
            await taker.fetchval(ACQUIRE, workshop, "node-b", 10.0)
        await tx.commit()
        await _lapse(pools[1], workshop)
        assert await taker.fetchval(ACQUIRE, workshop, "node-b", 10.0) > fence.value


async def test_a_draining_node_hands_every_workshop_back_at_once(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> None:
    a = await _keeper(pools[0], "node-a")
    b = await _keeper(pools[1], "node-b")
    workshops = [await _workshop(pools[0]) for _ in range(2)]
    held = [await a.acquire(w) for w in workshops]
    await a.drain()
    assert a.held() == []
    assert await pools[0].fetchval("SELECT draining FROM nodes WHERE id = 'node-a'") is True
    for workshop, old in zip(workshops, held, strict=True):
        new = await b.acquire(workshop)  # no lapse to wait for
        assert new is not None and old is not None and new.value > old.value
    assert await a.acquire(workshops[0]) is None  # a draining node takes nothing new


async def test_fences_keep_increasing_after_a_lease_is_released_and_taken_again(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    a = await _keeper(pools[0], "node-a")
    b = await _keeper(pools[1], "node-b")
    workshop = await _workshop(pools[0])
    first = await a.acquire(workshop)
    assert first is not None
    await a.release(workshop)
    second = await b.acquire(workshop)
    assert second is not None and second.value > first.value
    with pytest.raises(LeaseLost):
        async with pools[0].acquire() as conn, conn.transaction():
            await first.check(conn)


async def test_an_unhealthy_node_stops_renewing_and_gives_its_workshops_up(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    # The bus is down for node-a (healthy() is False): nobody could forward to it, so it lets its leases lapse, drops
    # them itself once its TTL has passed, and node-b takes over.
    lost: asyncio.Queue[uuid.UUID] = asyncio.Queue()
    got: asyncio.Queue[Fence] = asyncio.Queue()
    a = await _keeper(pools[0], "node-a", ttl_s=0.3, renew_every_s=0.05, healthy=lambda: False, on_lost=lost.put_nowait)
    b = await _keeper(pools[1], "node-b", ttl_s=0.3, renew_every_s=0.05, on_acquired=got.put_nowait)
    workshop = await _workshop(pools[0])
    first = await a.acquire(workshop)
    assert first is not None
    a.start()
    b.want(workshop)
    b.start()
    try:
        assert await asyncio.wait_for(lost.get(), WAIT_S) == workshop
        taken = await asyncio.wait_for(got.get(), WAIT_S)
    finally:
        await a.close()
        await b.close()
    assert a.fence(workshop) is None
    assert taken.value > first.value


async def test_the_fence_condition_inside_a_statement_makes_a_lost_lease_change_no_row(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    a = await _keeper(pools[0], "node-a")
    b = await _keeper(pools[1], "node-b")
    workshop = await _workshop(pools[0])
    old = await a.acquire(workshop)
    assert old is not None
    rename = f"UPDATE workshops SET title = $1 WHERE id = $2 AND {fence_holds(3)} RETURNING title"
    assert await pools[0].fetchval(rename, "Renamed by its owner", workshop, *old.params()) == "Renamed by its owner"
    await _lapse(pools[0], workshop)
    new = await b.acquire(workshop)
    assert new is not None
    assert await pools[0].fetchval(rename, "Renamed after the takeover", workshop, *old.params()) is None
    assert (
        await pools[1].fetchval(rename, "Renamed by the new owner", workshop, *new.params())
        == "Renamed by the new owner"
    )


async def test_a_node_that_stopped_counting_on_its_lease_takes_it_again_with_a_new_fence(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    # node-a's local deadline passed (its renewals were failing) while the database still shows its lease as live:
    # it may take it again at once, with a new fence that retires the old one.
    lost: asyncio.Queue[uuid.UUID] = asyncio.Queue()
    a = await _keeper(pools[0], "node-a", ttl_s=0.2, renew_every_s=0.05, healthy=lambda: False, on_lost=lost.put_nowait)
    workshop = await _workshop(pools[0])
    old = await a.acquire(workshop)
    assert old is not None
    await pools[0].execute(
        "UPDATE workshop_leases SET expires_at = now() + interval '1 hour' WHERE workshop_id = $1", workshop
    )
    a.start()
    try:
        assert await asyncio.wait_for(lost.get(), WAIT_S) == workshop
    finally:
        await a.close()
    new = await a.acquire(workshop)
    assert new is not None and new.value > old.value
    with pytest.raises(LeaseLost):
        async with pools[0].acquire() as conn, conn.transaction():
            await old.check(conn)


class QuietHub:
    """The part of the hub a coordinator talks to, with nobody connected: what it was told is kept."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.members: dict[str, Any] = {}

    def set_breakout(self, workshop_id: str, status: Any) -> None:
        pass

    def breakout_status(self, workshop_id: str) -> Any:
        return None

    def send_to_workshop(self, workshop_id: str, message: Any) -> None:
        self.sent.append(message.type)

    def members_of(self, workshop_id: str) -> list[Any]:
        return []


def _coordinator(pool: asyncpg.Pool, keeper: LeaseKeeper, hub: QuietHub) -> BreakoutCoordinator:
    return BreakoutCoordinator(BreakoutStore(pool), hub, None, ownership=keeper)  # type: ignore[arg-type]


async def test_only_the_owners_coordinator_moves_a_plan_on_and_a_new_owner_rearms_it_from_the_database(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    a, b = await _keeper(pools[0], "node-a"), await _keeper(pools[1], "node-b")
    hub_a, hub_b = QuietHub(), QuietHub()
    on_a, on_b = _coordinator(pools[0], a, hub_a), _coordinator(pools[1], b, hub_b)
    adopted: list[asyncio.Task[None]] = []
    b.on_acquired = lambda fence: adopted.append(on_b.adopt(fence.workshop_id))
    workshop = await _workshop(pools[0])
    plan = await _draft_plan(on_a.store, workshop)
    assert await a.acquire(workshop) is not None

    with pytest.raises(LeaseLost):  # b does not own the workshop: it opens nothing
        await on_b.open(workshop, plan, 600, SYSTEM)
    assert (await on_b.store.get_plan(workshop, plan)).state == "draft" and hub_b.sent == []
    assert (await on_a.open(workshop, plan, 600, SYSTEM)).state == "open"
    assert on_a.armed() == {workshop}
    await on_b.start()  # a node starting while the plan runs arms nothing of a workshop it does not own
    assert on_b.armed() == set()

    # a pauses past its lease; b takes the workshop over and arms the stored deadline.
    await _lapse(pools[0], workshop)
    assert await b.acquire(workshop) is not None
    async with asyncio.timeout(WAIT_S):
        await adopted[0]
    assert on_b.armed() == {workshop}
    with pytest.raises(LeaseLost):  # a, awake with its old fence in memory, cannot move the plan on
        await on_a.extend(workshop, plan, 60, SYSTEM)
    with pytest.raises(LeaseLost):
        await on_a.close(workshop, plan, 0, SYSTEM)
    on_a.disown(workshop)  # what its keeper's on_lost does at the next renewal
    assert on_a.armed() == set()
    assert (await on_b.close(workshop, plan, 0, SYSTEM)).state == "closed"
    assert hub_b.sent == ["breakouts_closed"] and hub_a.sent == ["breakouts_opened"]
    assert on_b.armed() == set()
    await on_a.shutdown()
    await on_b.shutdown()
