"""Durable resume grants: one contract, kept in memory (one node) or in PostgreSQL (any node reads it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from signaling.clock import ManualClock
from signaling.protocol import PeerState
from signaling.resume_store import InMemoryResumeStore, PgResumeStore, ResumeGrant, ResumeStore, token_hash
from signaling.rooms import Member, Profile

GRACE_S = 30.0
DROPPED_AT = datetime(2026, 12, 10, 9, 15, tzinfo=UTC)


@dataclass
class Place:
    workshop_id: str
    participant_id: str
    room_id: str


@dataclass
class Stores:
    """Two nodes' views of the same grants (in memory: one store, as one process has)."""

    writer: ResumeStore
    reader: ResumeStore
    clock: ManualClock | None
    pool: asyncpg.Pool | None
    place: Place

    async def expire(self, participant_id: str) -> None:
        """The grace period ends: the in-memory clock moves on, or the database's row expires."""
        if self.clock is not None:
            self.clock.set(self.clock.now() + timedelta(seconds=GRACE_S + 1))
        else:
            assert self.pool is not None
            await self.pool.execute(
                "UPDATE resume_grants SET expires_at = now() - interval '1 second' WHERE participant_id = $1",
                uuid.UUID(participant_id),
            )


async def _place(pool: asyncpg.Pool) -> Place:
    workshop_id = await pool.fetchval(
        """INSERT INTO workshops (title, timezone, starts_at, ends_at)
           VALUES ('Resume', 'UTC', now(), now() + interval '2 hours') RETURNING id"""
    )
    room_id = await pool.fetchval(
        "INSERT INTO rooms (workshop_id, name, kind, capacity) VALUES ($1, 'Plenary', 'plenary', 50) RETURNING id",
        workshop_id,
    )
    participant_id = await pool.fetchval(
        """INSERT INTO participants (workshop_id, display_name, country, role)
           VALUES ($1, 'Ana', 'PT', 'participant') RETURNING id""",
        workshop_id,
    )
    return Place(str(workshop_id), str(participant_id), str(room_id))


@pytest.fixture(params=["in_memory", "postgresql"])
async def stores(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Stores]:
    if request.param == "in_memory":
        clock = ManualClock(DROPPED_AT)
        store = InMemoryResumeStore(clock)
        yield Stores(store, store, clock, None, Place(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())))
        return
    a = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    b = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        yield Stores(PgResumeStore(a, node_id="node-a"), PgResumeStore(b, node_id="node-b"), None, a, await _place(a))
    finally:
        await a.close()
        await b.close()


def _member(place: Place) -> Member:
    return Member(
        id=place.participant_id,
        workshop_id=place.workshop_id,
        profile=Profile(display_name="Ana", country="PT", organisation="", role="participant"),
        room_id=place.room_id,
        resume_secret="s3cret",
        state=PeerState(audio=False, video=True, hand=True, hand_raised_at=DROPPED_AT - timedelta(minutes=2)),
        visit_id="visit-1",
    )


def _token(member: Member) -> str:
    return f"{member.id}.{member.resume_secret}"  # the shape SignalingService gives its members


async def test_a_grant_written_by_one_node_resumes_the_member_on_another_with_its_room_media_and_hand(
    stores: Stores,
) -> None:
    member = _member(stores.place)
    await stores.writer.put(
        [ResumeGrant.of(member, _token(member), detached_at=DROPPED_AT, node_id="node-a")], grace_s=GRACE_S
    )

    grant = await stores.reader.take(member.id, _token(member))
    assert grant is not None
    assert (grant.participant_id, grant.workshop_id, grant.room_id) == (member.id, member.workshop_id, member.room_id)
    assert grant.state == member.state  # muted, camera on, hand up since two minutes before the drop
    assert (grant.visit_id, grant.detached_at, grant.node_id) == ("visit-1", DROPPED_AT, "node-a")
    assert grant.expires_at is not None
    assert grant.token_sha256 == token_hash(_token(member)) != _token(member).encode()
    # Taken once: a second hello with the same token finds nothing (the first node to resume it has it).
    assert await stores.reader.take(member.id, _token(member)) is None


async def test_a_wrong_token_resumes_nobody_and_leaves_the_grant_in_place(stores: Stores) -> None:
    member = _member(stores.place)
    await stores.writer.put([ResumeGrant.of(member, _token(member), detached_at=DROPPED_AT)], grace_s=GRACE_S)
    assert await stores.reader.take(member.id, f"{member.id}.guessed") is None
    assert await stores.reader.take("not-a-participant-id", _token(member)) is None
    assert await stores.reader.take(member.id, _token(member)) is not None


async def test_a_grant_past_its_grace_period_resumes_nobody_and_is_purged(stores: Stores) -> None:
    member = _member(stores.place)
    await stores.writer.put([ResumeGrant.of(member, _token(member), detached_at=DROPPED_AT)], grace_s=GRACE_S)
    await stores.expire(member.id)
    assert await stores.reader.take(member.id, _token(member)) is None
    assert await stores.reader.purge_expired() == 1
    assert await stores.reader.purge_expired() == 0


async def test_a_newer_grant_replaces_the_older_one_of_the_same_member(stores: Stores) -> None:
    member = _member(stores.place)
    first = _token(member)
    await stores.writer.put([ResumeGrant.of(member, first, detached_at=DROPPED_AT)], grace_s=GRACE_S)
    # It resumed, got a new token and a new room, and dropped again.
    member.resume_secret = "n3wer"
    member.state = PeerState(audio=True, video=False)
    await stores.writer.put([ResumeGrant.of(member, _token(member), detached_at=DROPPED_AT)], grace_s=GRACE_S)
    assert await stores.reader.take(member.id, first) is None
    grant = await stores.reader.take(member.id, _token(member))
    assert grant is not None and grant.state == PeerState(audio=True, video=False)


async def test_a_grant_is_taken_with_its_token_or_the_one_its_member_last_came_back_with_and_no_other(
    stores: Stores,
) -> None:
    member = _member(stores.place)
    came_back_with = _token(member)
    member.resume_secret = "n3wer"  # the welcome that carried this one may never have reached the client
    grant = ResumeGrant.of(member, _token(member), previous=came_back_with, detached_at=DROPPED_AT)
    for token in (came_back_with, _token(member)):
        await stores.writer.put([grant], grace_s=GRACE_S)
        assert await stores.reader.take(member.id, f"{member.id}.older") is None
        taken = await stores.reader.take(member.id, token)
        assert taken is not None and taken.room_id == stores.place.room_id
        assert await stores.reader.take(member.id, token) is None  # taken once


async def test_a_discarded_grant_resumes_nobody(stores: Stores) -> None:
    member = _member(stores.place)
    await stores.writer.put([ResumeGrant.of(member, _token(member), detached_at=DROPPED_AT)], grace_s=GRACE_S)
    await stores.writer.discard(member.id)
    await stores.writer.discard("not-a-participant-id")
    assert await stores.reader.take(member.id, _token(member)) is None


async def test_two_nodes_racing_for_one_grant_resume_it_once(database_url: str) -> None:
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=2) for _ in range(3)]
    try:
        place = await _place(pools[0])
        member = _member(place)
        await PgResumeStore(pools[0]).put(
            [ResumeGrant.of(member, _token(member), detached_at=DROPPED_AT)], grace_s=GRACE_S
        )
        results = await asyncio.gather(*(PgResumeStore(p).take(member.id, _token(member)) for p in pools))
        assert sum(r is not None for r in results) == 1
    finally:
        for pool in pools:
            await pool.close()
