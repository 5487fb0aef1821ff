"""Recordings' crash recovery among several nodes, against a real PostgreSQL: a node finalises (`partial`) only the
live recordings of nodes that are gone, never another live node's, and a new owner those a previous owner of the
workshop left."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from recordings.service import LiveRecording, RecordingCoordinator
from recordings.storage import Storage
from recordings.store import RecordingStore
from server.leases import LeaseKeeper, NodeInfo
from signaling.audit import SYSTEM, Change
from signaling.fence import Fence, LeaseLost
from signaling.rooms import Member, Profile


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    made = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    try:
        yield made
    finally:
        await made.close()


async def _node(pool: asyncpg.Pool, name: str, *, seen_ago_s: float = 0) -> str:
    node_id = f"{name}-{uuid.uuid4().hex[:6]}"
    await LeaseKeeper(pool, NodeInfo(id=node_id)).register()
    await pool.execute(
        "UPDATE nodes SET seen_at = now() - make_interval(secs => $2) WHERE id = $1", node_id, seen_ago_s
    )
    return node_id


async def _live_recording(pool: asyncpg.Pool, workshop_id: uuid.UUID, node_id: str | None) -> uuid.UUID:
    recording_id: uuid.UUID = await pool.fetchval(
        """INSERT INTO recordings (workshop_id, room_id, room_name, consent_mode, started_by_role, state, node_id)
           VALUES ($1, gen_random_uuid(), 'Plenary', 'explicit', 'admin', 'recording', $2) RETURNING id""",
        workshop_id,
        node_id,
    )
    return recording_id


async def _workshop(pool: asyncpg.Pool) -> uuid.UUID:
    workshop_id: uuid.UUID = await pool.fetchval(
        """INSERT INTO workshops (title, timezone, starts_at, ends_at)
           VALUES ('Recovery', 'UTC', now(), now() + interval '2 hours') RETURNING id"""
    )
    return workshop_id


def _coordinator(pool: asyncpg.Pool, tmp_path: Path, node_id: str, *, several: bool) -> RecordingCoordinator:
    return RecordingCoordinator(
        RecordingStore(pool),
        Storage(tmp_path),
        None,  # type: ignore[arg-type]  # recovery never talks to the hub
        ice_servers=lambda peer_id: [],
        node_id=node_id,
        several_nodes=several,
        dead_after_s=10,
    )


async def _state(pool: asyncpg.Pool, recording_id: uuid.UUID) -> tuple[str, bool]:
    row = await pool.fetchrow("SELECT state, partial FROM recordings WHERE id = $1", recording_id)
    assert row is not None
    return row["state"], row["partial"]


async def test_recovery_at_start_finalises_only_the_recordings_of_nodes_that_are_gone(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    me, alive = await _node(pool, "me"), await _node(pool, "alive")
    gone = await _node(pool, "gone", seen_ago_s=60)
    workshop = await _workshop(pool)
    of_alive = await _live_recording(pool, workshop, alive)
    of_gone = await _live_recording(pool, workshop, gone)
    of_unknown = await _live_recording(pool, workshop, None)  # made before nodes were recorded

    recovered = await _coordinator(pool, tmp_path, me, several=True).recover()
    assert of_gone in recovered and of_unknown in recovered and of_alive not in recovered
    assert await _state(pool, of_gone) == ("ready", True)
    assert await _state(pool, of_unknown) == ("ready", True)
    assert await _state(pool, of_alive) == ("recording", False)  # another live node's: left alone

    # A node alone finalises every live recording it does not run, as before.
    assert of_alive in await _coordinator(pool, tmp_path, me, several=False).recover()
    assert await _state(pool, of_alive) == ("ready", True)


async def test_a_new_owner_finalises_the_recordings_a_previous_owner_left_in_the_workshop_and_no_others(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    me, before = await _node(pool, "me"), await _node(pool, "before")
    workshop, elsewhere = await _workshop(pool), await _workshop(pool)
    left = await _live_recording(pool, workshop, before)  # its node still beats, but lost the workshop
    other_workshop = await _live_recording(pool, elsewhere, before)
    mine = await _live_recording(pool, workshop, me)

    assert await _coordinator(pool, tmp_path, me, several=True).recover_workshop(workshop) == [left]
    assert await _state(pool, left) == ("ready", True)
    assert await _state(pool, other_workshop) == ("recording", False)
    assert await _state(pool, mine) == ("recording", False)


class StoppedRecorder:
    """A recorder that only counts its stop."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.stopped = 0

    async def stop(self) -> None:
        self.stopped += 1


class QuietHub:
    def __init__(self) -> None:
        self.hidden_removed: list[str] = []

    def set_recording(self, room_id: str, status: object) -> None:
        pass

    def remove_hidden(self, member: Member) -> None:
        self.hidden_removed.append(member.id)


async def test_a_node_that_loses_a_workshops_lease_ends_its_recordings_of_it_and_keeps_what_was_written(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    me = await _node(pool, "me")
    workshop, elsewhere = await _workshop(pool), await _workshop(pool)
    hub = QuietHub()
    coordinator = RecordingCoordinator(
        RecordingStore(pool),
        Storage(tmp_path),
        hub,
        ice_servers=lambda peer_id: [],
        node_id=me,
        several_nodes=True,  # type: ignore[arg-type]
    )
    recorders = {}
    for wid in (workshop, elsewhere):
        recording_id = await _live_recording(pool, wid, me)
        recorders[wid] = StoppedRecorder()
        member = Member(
            id=f"recorder-{recording_id.hex[:12]}",
            workshop_id=str(wid),
            profile=Profile(display_name="Recorder", country="", organisation="", role="recorder"),
            room_id="r1",
            resume_secret="",
            hidden=True,
        )
        coordinator.live[recording_id] = LiveRecording(
            id=recording_id,
            workshop_id=str(wid),
            room_id="r1",
            consent_mode="explicit",
            started_at=datetime.now(UTC),
            recorder=recorders[wid],  # type: ignore[arg-type]
            member=member,
        )
    lost = next(r for r, live in coordinator.live.items() if live.workshop_id == str(workshop))
    kept = next(r for r, live in coordinator.live.items() if live.workshop_id == str(elsewhere))

    await coordinator._abandon(str(workshop))  # what abandon_workshop runs when the keeper reports the loss
    assert list(coordinator.live) == [kept]
    assert recorders[workshop].stopped == 1 and recorders[elsewhere].stopped == 0
    assert hub.hidden_removed == [f"recorder-{lost.hex[:12]}"]
    assert await _state(pool, lost) == ("ready", True)
    assert await _state(pool, kept) == ("recording", False)


async def test_a_node_that_lost_the_workshops_lease_can_neither_start_nor_stop_its_recordings(
    pool: asyncpg.Pool,
) -> None:
    a = LeaseKeeper(pool, NodeInfo(id=f"a-{uuid.uuid4().hex[:6]}"))
    b = LeaseKeeper(pool, NodeInfo(id=f"b-{uuid.uuid4().hex[:6]}"))
    await a.register()
    await b.register()
    workshop = await _workshop(pool)
    store = RecordingStore(pool)
    old = await a.acquire(workshop)
    assert old is not None
    running = await _live_recording(pool, workshop, a.node.id)
    # a pauses past its lease and b takes the workshop over.
    await pool.execute(
        "UPDATE workshop_leases SET expires_at = now() - interval '1 second' WHERE workshop_id = $1", workshop
    )
    new = await b.acquire(workshop)
    assert new is not None

    def start(fence: Fence) -> Any:
        return store.create(
            workshop_id=workshop,
            room_id=uuid.uuid4(),
            room_name="Plenary",
            consent_mode="explicit",
            started_by=None,
            started_by_role="admin",
            change=Change(workshop, SYSTEM, "recording.start"),
            node_id=fence.node_id,
            fence=fence,
        )

    with pytest.raises(LeaseLost):
        await start(old)
    with pytest.raises(LeaseLost):
        await store.transition(running, "recording", "stopping", fence=old)
    assert await _state(pool, running) == ("recording", False)
    assert (await start(new))["state"] == "starting"  # the new owner's go through
    assert (await store.transition(running, "recording", "stopping", fence=new))["state"] == "stopping"
