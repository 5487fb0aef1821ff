"""What a dead node leaves behind when nobody takes its workshops over, and leases given back when a workshop goes
quiet, against a real PostgreSQL with real short TTLs (docs/scaling.md): the sweep at every node finalises gone
nodes' recordings in workshops nobody holds and closes their visits, once with two sweepers, never a live node's;
a node's start among several closes only gone nodes' visits; a resumed member's visit moves to its new node; a
quiet workshop's lease is released only when PostgreSQL has nothing of it either."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from recordings.service import RecordingCoordinator
from recordings.storage import Storage
from recordings.store import RecordingStore
from server.leases import LeaseKeeper, NodeInfo
from server.sweep import NodeSweeper
from signaling.store import PgSignalingStore

DEAD_AFTER_S = 2.0
WAIT_S = 20.0


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    made = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
    try:
        yield made
    finally:
        await made.close()


async def _node(pool: asyncpg.Pool, name: str, *, seen_ago_s: float = 0, alive_at: datetime | None = None) -> str:
    node_id = f"{name}-{uuid.uuid4().hex[:6]}"
    await LeaseKeeper(pool, NodeInfo(id=node_id)).register()
    await pool.execute(
        "UPDATE nodes SET seen_at = now() - make_interval(secs => $2), alive_at = $3 WHERE id = $1",
        node_id,
        seen_ago_s,
        alive_at,
    )
    return node_id


async def _workshop(pool: asyncpg.Pool) -> uuid.UUID:
    workshop_id: uuid.UUID = await pool.fetchval(
        """INSERT INTO workshops (title, timezone, starts_at, ends_at)
           VALUES ('Sweep', 'UTC', now(), now() + interval '2 hours') RETURNING id"""
    )
    return workshop_id


async def _participant(pool: asyncpg.Pool, workshop_id: uuid.UUID) -> uuid.UUID:
    participant_id: uuid.UUID = await pool.fetchval(
        "INSERT INTO participants (workshop_id, display_name, country, role) VALUES ($1, 'Ana', 'PT', 'participant') "
        "RETURNING id",
        workshop_id,
    )
    return participant_id


async def _open_visit(pool: asyncpg.Pool, workshop_id: uuid.UUID, node_id: str | None, started: datetime) -> uuid.UUID:
    visit_id = uuid.uuid4()
    participant_id = await _participant(pool, workshop_id)
    await pool.execute(
        "INSERT INTO visits (id, workshop_id, participant_id, room_id, room_name, started_at, node_id) "
        "VALUES ($1, $2, $3, gen_random_uuid(), 'Plenary', $4, $5)",
        visit_id,
        workshop_id,
        participant_id,
        started,
        node_id,
    )
    return visit_id


async def _live_recording(pool: asyncpg.Pool, workshop_id: uuid.UUID, node_id: str | None) -> uuid.UUID:
    recording_id: uuid.UUID = await pool.fetchval(
        """INSERT INTO recordings (workshop_id, room_id, room_name, consent_mode, started_by_role, state, node_id)
           VALUES ($1, gen_random_uuid(), 'Plenary', 'explicit', 'admin', 'recording', $2) RETURNING id""",
        workshop_id,
        node_id,
    )
    return recording_id


def _sweeper(pool: asyncpg.Pool, tmp_path: Path, node_id: str) -> NodeSweeper:
    recordings = RecordingCoordinator(
        RecordingStore(pool),
        Storage(tmp_path),
        None,  # type: ignore[arg-type]  # recovery never talks to the hub
        ice_servers=lambda peer_id: [],
        node_id=node_id,
        several_nodes=True,
        dead_after_s=DEAD_AFTER_S,
    )
    return NodeSweeper(pool, PgSignalingStore(pool, node_id=node_id), recordings, dead_after_s=DEAD_AFTER_S, every_s=60)


async def _visit(pool: asyncpg.Pool, visit_id: uuid.UUID) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT ended_at, ended_how, node_id FROM visits WHERE id = $1", visit_id)
    assert row is not None
    return row


async def _leaves(pool: asyncpg.Pool, visit_id: uuid.UUID) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM attendance_events WHERE visit_id = $1 AND event = 'leave'", visit_id
    )
    return count


async def _state(pool: asyncpg.Pool, recording_id: uuid.UUID) -> tuple[str, bool]:
    row = await pool.fetchrow("SELECT state, partial FROM recordings WHERE id = $1", recording_id)
    assert row is not None
    return row["state"], row["partial"]


async def test_two_sweeping_nodes_finalise_a_gone_nodes_unowned_recordings_and_close_its_visits_once(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    now: datetime = await pool.fetchval("SELECT now()")
    died_at = now - timedelta(seconds=30)
    gone = await _node(pool, "gone", seen_ago_s=60, alive_at=died_at)
    live = await _node(pool, "live")
    b, c = await _node(pool, "b"), await _node(pool, "c")
    nobodys, taken, lives = await _workshop(pool), await _workshop(pool), await _workshop(pool)
    left = await _live_recording(pool, nobodys, gone)
    left_visit = await _open_visit(pool, nobodys, gone, died_at - timedelta(minutes=5))
    dropped_visit = await _open_visit(pool, nobodys, gone, died_at - timedelta(minutes=5))
    await pool.execute("UPDATE visits SET dropped_at = $2 WHERE id = $1", dropped_visit, died_at - timedelta(minutes=1))
    # A gone node's recording in a workshop another node took over is the new owner's, not the sweep's.
    new_owner = LeaseKeeper(pool, NodeInfo(id=live), ttl_s=30)
    assert await new_owner.acquire(taken) is not None
    owned = await _live_recording(pool, taken, gone)
    # A live node's recording and visit are never touched.
    running = await _live_recording(pool, lives, live)
    live_visit = await _open_visit(pool, lives, live, now - timedelta(minutes=1))
    kept_visit = await _open_visit(pool, nobodys, gone, died_at - timedelta(minutes=2))
    await pool.execute(  # a place kept for the grace period: the grant sweep's, once it is over
        """INSERT INTO resume_grants (participant_id, workshop_id, token_sha256, room_id, state, visit_id, node_id)
           SELECT participant_id, workshop_id, sha256('t'::bytea), room_id, '{}', id::text, $2 FROM visits
           WHERE id = $1""",
        kept_visit,
        gone,
    )

    sweepers = [_sweeper(pool, tmp_path / "b", b), _sweeper(pool, tmp_path / "c", c)]
    results = []
    for _round in range(3):
        results += await asyncio.gather(*(s.sweep() for s in sweepers))
    assert sum(r.recordings for r in results) == 1
    assert sum(r.visits for r in results) == 2
    assert any(r.swept for r in results)

    assert await _state(pool, left) == ("ready", True)
    assert await _state(pool, owned) == ("recording", False)
    assert await _state(pool, running) == ("recording", False)
    closed = await _visit(pool, left_visit)
    assert (closed["ended_at"], closed["ended_how"]) == (died_at, "crash")
    dropped = await _visit(pool, dropped_visit)
    assert (dropped["ended_at"], dropped["ended_how"]) == (died_at - timedelta(minutes=1), "crash")
    assert [await _leaves(pool, v) for v in (left_visit, dropped_visit)] == [1, 1]
    assert (await _visit(pool, live_visit))["ended_at"] is None
    assert (await _visit(pool, kept_visit))["ended_at"] is None


async def test_a_recording_finalised_by_a_new_owner_while_the_sweep_runs_is_finalised_once(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    gone = await _node(pool, "gone", seen_ago_s=60)
    b, c = await _node(pool, "b"), await _node(pool, "c")
    workshop = await _workshop(pool)
    recording = await _live_recording(pool, workshop, gone)
    sweep = _sweeper(pool, tmp_path / "b", b)
    owner = _sweeper(pool, tmp_path / "c", c).recordings
    found, adopted = await asyncio.gather(sweep.sweep(), owner.recover_workshop(workshop))
    assert found.recordings + len(adopted) == 1
    assert await _state(pool, recording) == ("ready", True)
    transitions: int = await pool.fetchval(
        "SELECT count(*) FROM recordings WHERE id = $1 AND state = 'ready'", recording
    )
    assert transitions == 1


async def test_a_start_among_several_nodes_closes_only_the_visits_of_gone_nodes_and_a_node_alone_every_other(
    pool: asyncpg.Pool,
) -> None:
    now: datetime = await pool.fetchval("SELECT now()")
    gone = await _node(pool, "gone", seen_ago_s=60, alive_at=now - timedelta(seconds=60))
    live = await _node(pool, "live")
    me = await _node(pool, "me")
    workshop = await _workshop(pool)
    of_gone = await _open_visit(pool, workshop, gone, now - timedelta(minutes=3))
    of_live = await _open_visit(pool, workshop, live, now - timedelta(minutes=2))
    of_nobody = await _open_visit(pool, workshop, None, now - timedelta(minutes=2))

    store = PgSignalingStore(pool, node_id=me)
    assert await store.close_open_visits(None, dead_after_s=DEAD_AFTER_S) >= 2
    assert (await _visit(pool, of_gone))["ended_at"] == now - timedelta(seconds=60)
    assert (await _visit(pool, of_nobody))["ended_how"] == "crash"
    assert (await _visit(pool, of_live))["ended_at"] is None  # another live node's member

    # A node alone owns the database: whatever another process left is a previous incarnation's.
    assert await store.close_open_visits(None) >= 1
    assert (await _visit(pool, of_live))["ended_how"] == "crash"


async def test_a_resumed_members_visit_moves_to_the_node_it_resumed_on_and_is_no_sweep_of_the_gone_node(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from signaling.resume_store import PgResumeStore, token_hash

    gone = await _node(pool, "gone", seen_ago_s=1)
    b = await _node(pool, "b")
    workshop = await _workshop(pool)
    visit = await _open_visit(pool, workshop, gone, datetime.now().astimezone() - timedelta(minutes=1))
    row = await pool.fetchrow("SELECT participant_id FROM visits WHERE id = $1", visit)
    assert row is not None
    await pool.execute(
        """INSERT INTO resume_grants (participant_id, workshop_id, token_sha256, room_id, state, visit_id, node_id,
               grace_s)
           SELECT participant_id, workshop_id, $2, room_id, '{}', id::text, $3, 60 FROM visits WHERE id = $1""",
        visit,
        token_hash("resume-me"),
        gone,
    )
    taken = await PgResumeStore(pool, node_id=b).take(str(row["participant_id"]), "resume-me")
    assert taken is not None and taken.visit_id == str(visit)
    assert (await _visit(pool, visit))["node_id"] == b
    await pool.execute("UPDATE nodes SET seen_at = now() - interval '1 minute' WHERE id = $1", gone)
    await _sweeper(pool, tmp_path, b).sweep()
    assert (await _visit(pool, visit))["ended_at"] is None


# Leases given back ---------------------------------------------------------------------------------------------


async def _released(keeper: LeaseKeeper, workshop_id: uuid.UUID) -> None:
    """Renewal rounds until the keeper gave the workshop back (bounded)."""
    async with asyncio.timeout(WAIT_S):
        while keeper.fence(workshop_id) is not None:
            await keeper.renew()
            await asyncio.sleep(keeper.renew_every_s)  # pacing of the rounds, as the keeper's own loop


async def test_a_quiet_workshops_lease_is_released_after_the_idle_time_and_taken_by_another_node_with_a_new_fence(
    pool: asyncpg.Pool,
) -> None:
    workshop = await _workshop(pool)
    quiet = {workshop: False}
    a = LeaseKeeper(
        pool, NodeInfo(id=await _node(pool, "a")), ttl_s=5, renew_every_s=0.1, idle_s=0.3, quiet=quiet.__getitem__
    )
    released: list[uuid.UUID] = []
    a.on_released = released.append
    first = await a.acquire(workshop)
    assert first is not None
    for _ in range(5):  # not quiet here (a member): kept, however long
        await a.renew()
    assert a.fence(workshop) == first
    quiet[workshop] = True
    await _released(a, workshop)
    assert released == [workshop]
    assert await a.owner(workshop) is None and a.held() == []

    b = LeaseKeeper(pool, NodeInfo(id=await _node(pool, "b")), ttl_s=5)
    taken = await b.acquire(workshop)
    assert taken is not None and taken.value > first.value


@pytest.mark.parametrize("what", ["grant", "knock", "breakout", "recording"])
async def test_a_workshop_quiet_in_memory_keeps_its_lease_while_postgresql_holds_its(
    pool: asyncpg.Pool, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    workshop = await _workshop(pool)
    participant = await _participant(pool, workshop)
    node_id = await _node(pool, "a")
    if what == "grant":  # a member within the grace period, who will come back for its place
        await pool.execute(
            """INSERT INTO resume_grants (participant_id, workshop_id, token_sha256, room_id, state, node_id)
               VALUES ($1, $2, sha256('t'::bytea), gen_random_uuid(), '{}', $3)""",
            participant,
            workshop,
            node_id,
        )
    elif what == "knock":
        await pool.execute(
            "INSERT INTO lobby_knocks (workshop_id, participant_id, room_id, reason) "
            "VALUES ($1, $2, gen_random_uuid(), 'lobby')",
            workshop,
            participant,
        )
    elif what == "breakout":
        await pool.execute(
            "INSERT INTO breakout_plans (workshop_id, name, strategy, state, opened_at, ends_at) "
            "VALUES ($1, 'Groups', 'random', 'open', now(), now() + interval '10 minutes')",
            workshop,
        )
    else:
        await _live_recording(pool, workshop, node_id)
    keeper = LeaseKeeper(pool, NodeInfo(id=node_id), ttl_s=5, renew_every_s=0.05, idle_s=0.1, quiet=lambda w: True)
    fence = await keeper.acquire(workshop)
    assert fence is not None
    caplog.set_level(logging.INFO, logger="server.leases")
    async with asyncio.timeout(WAIT_S):
        while sum("kept although quiet" in r.getMessage() for r in caplog.records) < 2:  # two attempts refused
            await keeper.renew()
            await asyncio.sleep(keeper.renew_every_s)  # pacing of the rounds, as the keeper's own loop
    assert keeper.fence(workshop) == fence
    owner = await keeper.owner(workshop)
    assert owner is not None and owner.node_id == node_id and owner.fence == fence.value


async def test_a_session_arriving_while_a_quiet_lease_is_released_takes_it_again_after_the_release(
    pool: asyncpg.Pool,
) -> None:
    workshop = await _workshop(pool)
    keeper = LeaseKeeper(
        pool, NodeInfo(id=await _node(pool, "a")), ttl_s=5, renew_every_s=0.05, idle_s=0.0, quiet=lambda w: True
    )
    first = await keeper.acquire(workshop)
    assert first is not None
    # The release and an acquire at once: the acquire waits for the release and takes the lease anew.
    released, again = await asyncio.gather(keeper.release_idle(), keeper.acquire(workshop))
    assert released == [workshop]
    assert again is not None and again.value > first.value
    owner = await keeper.owner(workshop)
    assert owner is not None and owner.fence == again.value and keeper.fence(workshop) == again
