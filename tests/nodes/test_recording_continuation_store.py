"""Recording continuation on a real PostgreSQL (docs/recordings.md "Continuation after a failover"): a recording a
failover ended is continued exactly once however many nodes race for it, only by the workshop's owner, with each
member's answer carried over in the same transaction; a stop of the room's recording while the continuation waits
cancels it, and a recording stopped before the failover is never continued."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from recordings.service import RecordingCoordinator
from recordings.storage import Storage
from recordings.store import RecordingStore
from server.leases import LeaseKeeper, NodeInfo
from signaling.audit import Actor, Change
from signaling.fence import LeaseLost


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    made = await asyncpg.create_pool(database_url, min_size=2, max_size=6)
    try:
        yield made
    finally:
        await made.close()


async def _workshop(pool: asyncpg.Pool) -> uuid.UUID:
    workshop_id: uuid.UUID = await pool.fetchval(
        """INSERT INTO workshops (title, timezone, starts_at, ends_at)
           VALUES ('Continuation', 'UTC', now(), now() + interval '2 hours') RETURNING id"""
    )
    return workshop_id


async def _participant(pool: asyncpg.Pool, workshop_id: uuid.UUID, name: str) -> uuid.UUID:
    pid: uuid.UUID = await pool.fetchval(
        "INSERT INTO participants (workshop_id, display_name, country, role) VALUES ($1, $2, 'PT', 'participant') "
        "RETURNING id",
        workshop_id,
        name,
    )
    return pid


async def _live_recording(
    pool: asyncpg.Pool, workshop_id: uuid.UUID, node_id: str, state: str = "recording"
) -> uuid.UUID:
    recording_id: uuid.UUID = await pool.fetchval(
        """INSERT INTO recordings (workshop_id, room_id, room_name, consent_mode, started_by_role, state, node_id)
           VALUES ($1, gen_random_uuid(), 'Plenary', 'explicit', 'admin', $3, $2) RETURNING id""",
        workshop_id,
        node_id,
        state,
    )
    return recording_id


async def _node(pool: asyncpg.Pool, name: str) -> LeaseKeeper:
    keeper = LeaseKeeper(pool, NodeInfo(id=f"{name}-{uuid.uuid4().hex[:6]}"))
    await keeper.register()
    return keeper


def _coordinator(pool: asyncpg.Pool, tmp_path: Path, node_id: str) -> RecordingCoordinator:
    return RecordingCoordinator(
        RecordingStore(pool),
        Storage(tmp_path),
        None,  # type: ignore[arg-type]  # recovery never talks to the hub
        ice_servers=lambda peer_id: [],
        node_id=node_id,
        several_nodes=True,
        dead_after_s=10,
    )


async def _answer(
    store: RecordingStore, recording_id: uuid.UUID, workshop_id: uuid.UUID, pid: uuid.UUID, yes: bool
) -> None:
    await store.record_consent(
        recording_id, pid, yes, change=Change(workshop_id, Actor(id=pid, role="participant"), "recording.consent")
    )


async def test_two_nodes_taking_over_at_once_finalise_once_and_start_exactly_one_continuation(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    dead, b, c = await _node(pool, "dead"), await _node(pool, "b"), await _node(pool, "c")
    workshop = await _workshop(pool)
    ana, eva, _ivo = [await _participant(pool, workshop, n) for n in ("ana", "eva", "ivo")]
    store = RecordingStore(pool)
    previous = await _live_recording(pool, workshop, dead.node.id)
    await _answer(store, previous, workshop, ana, False)
    await _answer(store, previous, workshop, ana, True)  # her latest answer counts
    await _answer(store, previous, workshop, eva, False)  # ivo never answered

    # Both take the workshop over at once (each believes the other is a previous owner): one finalises it.
    recovered = await asyncio.gather(
        _coordinator(pool, tmp_path / "b", b.node.id).recover_workshop(workshop),
        _coordinator(pool, tmp_path / "c", c.node.id).recover_workshop(workshop),
    )
    assert sorted(len(r) for r in recovered) == [0, 1]
    row = await store.get(previous)
    assert (row["state"], row["partial"], row["continuation_pending"]) == ("ready", True, True)
    assert [r["id"] for r in await store.pending_continuations(workshop, 3600)] == [previous]

    # Both try to start its continuation at once: one does, the other finds it continued.
    made = await asyncio.gather(
        *(store.create_continuation(previous, node_id=n.node.id, media="mesh") for n in (b, c, b, c))
    )
    started = [m for m in made if m is not None]
    assert len(started) == 1
    continuation, carried = started[0]
    assert continuation["continues"] == previous and continuation["room_id"] == row["room_id"]
    assert (continuation["consent_mode"], continuation["started_by"], continuation["state"]) == (
        "explicit",
        None,
        "starting",
    )
    assert carried == {ana: True, eva: False}  # ivo is asked as for any new recording
    assert await store.continued_by(previous) == continuation["id"]
    assert await store.pending_continuations(workshop, 3600) == []
    ledger = await pool.fetch(
        "SELECT participant_id, granted, carried_from FROM recording_consents WHERE recording_id = $1",
        continuation["id"],
    )
    assert {(r["participant_id"], r["granted"], r["carried_from"]) for r in ledger} == {
        (ana, True, previous),
        (eva, False, previous),
    }
    # The unique `continues` stands behind it: a second continuation cannot exist even if written by hand.
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(
            """INSERT INTO recordings (workshop_id, room_id, room_name, consent_mode, started_by_role, continues,
               state) VALUES ($1, gen_random_uuid(), 'x', 'explicit', 'system', $2, 'ready')""",
            workshop,
            previous,
        )
    audit = await pool.fetch(
        "SELECT action, actor_role, target, details FROM audit_entries WHERE workshop_id = $1 AND actor_role = "
        "'system' AND action IN ('recording.continue', 'recording.consent') ORDER BY id",
        workshop,
    )
    entries = [(a["action"], json.loads(a["target"]), json.loads(a["details"])) for a in audit]
    assert entries[0][0] == "recording.continue"
    assert entries[0][1] == {
        "recording_id": str(continuation["id"]),
        "room_id": str(row["room_id"]),
        "continues": str(previous),
    }
    assert sorted((e[1]["participant_id"], e[2]["granted"], e[2]["carried_from"]) for e in entries[1:]) == sorted(
        [(str(ana), True, str(previous)), (str(eva), False, str(previous))]
    )
    assert await store.chain_tail(previous) == await store.get(continuation["id"])


async def test_only_the_workshops_owner_starts_a_continuation(pool: asyncpg.Pool) -> None:
    a, b = await _node(pool, "a"), await _node(pool, "b")
    workshop = await _workshop(pool)
    store = RecordingStore(pool)
    old = await a.acquire(workshop)
    assert old is not None
    previous = await _live_recording(pool, workshop, a.node.id)
    await store.transition(previous, "recording", "stopping", partial=True)
    await store.transition(previous, "stopping", "ready", partial=True, continuation=True)
    await pool.execute(
        "UPDATE workshop_leases SET expires_at = now() - interval '1 second' WHERE workshop_id = $1", workshop
    )
    new = await b.acquire(workshop)
    assert new is not None
    with pytest.raises(LeaseLost):  # a paused old owner, awake again
        await store.create_continuation(previous, node_id=a.node.id, media="mesh", fence=old)
    assert (await store.get(previous))["continuation_pending"] is True
    made = await store.create_continuation(previous, node_id=b.node.id, media="mesh", fence=new)
    assert made is not None
    assert await pool.fetchval("SELECT node_id FROM recordings WHERE id = $1", made[0]["id"]) == b.node.id


async def test_a_stop_while_the_continuation_waits_cancels_it_and_a_recording_being_stopped_is_not_continued(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    dead, me = await _node(pool, "dead"), await _node(pool, "me")
    workshop = await _workshop(pool)
    store = RecordingStore(pool)
    recording = await _live_recording(pool, workshop, dead.node.id)
    stopping = await _live_recording(pool, workshop, dead.node.id, state="stopping")  # a stop was under way
    coordinator = _coordinator(pool, tmp_path, me.node.id)
    assert sorted(await coordinator.recover_workshop(workshop)) == sorted([recording, stopping])
    assert (await store.get(stopping))["continuation_pending"] is False
    assert [r["id"] for r in await store.pending_continuations(workshop, 3600)] == [recording]

    await coordinator.stop(recording, reason="enough")  # the moderator stops the room's recording meanwhile
    assert (await store.get(recording))["continuation_pending"] is False
    assert await store.create_continuation(recording, node_id=me.node.id, media="mesh") is None
    stop = await pool.fetchrow(
        "SELECT target, details FROM audit_entries WHERE workshop_id = $1 AND action = 'recording.stop'", workshop
    )
    assert stop is not None and json.loads(stop["details"]) == {"continuation": "cancelled", "reason": "enough"}

    # A stop of a live recording another node left behind finalises it without a continuation.
    left = await _live_recording(pool, workshop, dead.node.id)
    await coordinator.stop(left)
    row = await store.get(left)
    assert (row["state"], row["continuation_pending"]) == ("ready", False)
