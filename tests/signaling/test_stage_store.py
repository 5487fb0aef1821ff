"""The stage in PostgreSQL (signaling/stage_store.py): a workshop's floor, spotlights and help requests are saved
whole and read back with only the entries of people whose resume grant still holds; the service writes them in the
background and a second service on the same stores (a restarted process) gives them back to those who resume."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from signaling.protocol import AskHelp, ChatMessage, GrantFloor, Hello, HelpRequested, PeerState, RoomInfo, SpotlightSet
from signaling.resume_store import InMemoryResumeStore, PgResumeStore, ResumeGrant
from signaling.rooms import Member, Profile
from signaling.service import Identity, SignalingConfig, SignalingService
from signaling.stage_store import InMemoryStageStore, PgStageStore, RoomStage, Stage

ASKED_AT = datetime(2026, 12, 10, 9, 30, tzinfo=UTC)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        yield p
    finally:
        await p.close()


async def _workshop(pool: asyncpg.Pool, *names: str) -> tuple[str, str, dict[str, str]]:
    wid = await pool.fetchval(
        """INSERT INTO workshops (title, timezone, starts_at, ends_at)
           VALUES ('Stage', 'UTC', now(), now() + interval '2 hours') RETURNING id"""
    )
    room = await pool.fetchval(
        "INSERT INTO rooms (workshop_id, name, kind, capacity) VALUES ($1, 'Plenary', 'plenary', 50) RETURNING id", wid
    )
    people = {}
    for name in names:
        people[name] = str(
            await pool.fetchval(
                """INSERT INTO participants (workshop_id, display_name, country, role)
                   VALUES ($1, $2, 'PT', 'participant') RETURNING id""",
                wid,
                name,
            )
        )
    return str(wid), str(room), people


def _help(room: str, pid: str, name: str) -> HelpRequested:
    return HelpRequested(
        room_id=room, room_name="Plenary", participant_id=pid, display_name=name, text="stuck", at=ASKED_AT
    )


async def _grant(pool: asyncpg.Pool, wid: str, room: str, pid: str, grace_s: float) -> None:
    member = Member(
        id=pid,
        workshop_id=wid,
        profile=Profile(display_name="x", country="PT", organisation="", role="participant"),
        room_id=room,
        resume_secret="s",
        state=PeerState(),
    )
    grant = ResumeGrant.of(member, f"{pid}.s", detached_at=ASKED_AT, node_id="node-a")
    await PgResumeStore(pool, node_id="node-a").put([grant], grace_s=grace_s)


async def test_a_saved_stage_is_read_back_with_only_the_entries_of_people_whose_resume_grant_holds(
    pool: asyncpg.Pool,
) -> None:
    wid, room, people = await _workshop(pool, "ana", "ben", "cleo")
    ana, ben, cleo = people["ana"], people["ben"], people["cleo"]
    store = PgStageStore(pool)
    await _grant(pool, wid, room, ana, 30.0)
    await _grant(pool, wid, room, cleo, 30.0)
    # Ben has no grant (he left for good, or his grace period ran out): nothing of his comes back.
    await store.save(
        Stage(wid, (RoomStage(room, frozenset({ana, ben}), ben),), (_help(room, cleo, "cleo"), _help(room, ben, "ben")))
    )

    back = await store.load(wid)
    assert back.rooms == (RoomStage(room, frozenset({ana}), None),)
    assert [(h.participant_id, h.text, h.at) for h in back.help] == [(cleo, "stuck", ASKED_AT)]
    assert set(back.left_s) == {ana, cleo}
    assert all(left is not None and 0 < left <= 30.0 for left in back.left_s.values())

    # A grant that ran out takes its entries with it.
    await pool.execute(
        "UPDATE resume_grants SET expires_at = now() - interval '1 second' WHERE participant_id = $1", uuid.UUID(ana)
    )
    assert (await store.load(wid)).rooms == ()

    # Saving the stage replaces it whole: the settled request and the ended floor are gone.
    await store.save(Stage(wid))
    assert await pool.fetchval("SELECT count(*) FROM live_stage") == 0
    assert await pool.fetchval("SELECT count(*) FROM live_help") == 0


async def test_a_stage_naming_a_deleted_participant_is_saved_without_them(pool: asyncpg.Pool) -> None:
    wid, room, people = await _workshop(pool, "ana", "ben")
    await pool.execute("UPDATE participants SET deleted_at = now() WHERE id = $1", uuid.UUID(people["ben"]))
    await PgStageStore(pool).save(Stage(wid, (RoomStage(room, frozenset(people.values()), None),)))
    rows = await pool.fetch("SELECT participant_id FROM live_stage")
    assert [str(r["participant_id"]) for r in rows] == [people["ana"]]


# The service: a second process on the same stores gives the stage back ------------------------------------------

STAGE_ROOM = RoomInfo(
    id="r1", workshop_id="w1", name="Plenary", kind="plenary", media="sfu", publishing="moderated", capacity=10
)
ROLES = {"eve": "moderator", "ben": "participant", "cleo": "participant"}


class Directory:
    async def authenticate(self, token: str) -> Identity:
        return Identity(token, "w1", Profile(token.title(), "PT", "", ROLES[token]), room=STAGE_ROOM)

    async def assigned_room(self, identity: Identity) -> RoomInfo:
        return STAGE_ROOM

    def still_valid(self, identity: Identity) -> bool:
        return True


class Quiet:
    def record_attendance(self, event: object) -> None:
        pass

    def attendance_congested(self) -> bool:
        return False

    async def save_chat(self, **_: object) -> ChatMessage:
        raise AssertionError("no chat here")

    async def recent_chat(self, room_id: str, limit: int) -> list[ChatMessage]:
        return []


class Box:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, text: str) -> bool:
        self.sent.append(json.loads(text))
        return True

    def close(self, code: int, reason: str) -> None:
        pass

    def welcome(self) -> dict[str, Any]:
        return [m for m in self.sent if m["type"] == "welcome"][-1]


def _process(grants: InMemoryResumeStore, stages: InMemoryStageStore) -> SignalingService:
    return SignalingService(
        Directory(), Quiet(), SignalingConfig(resume_grace_s=30.0), resume_store=grants, stage_store=stages
    )


async def _hello(service: SignalingService, pid: str, resume: str | None = None) -> tuple[Member, Box]:
    box = Box()
    member = await service.join(Hello(type="hello", protocol=[1], token=pid, resume=resume), 1, box)
    assert isinstance(member, Member)
    return member, box


async def test_a_restarted_process_gives_back_the_floor_the_spotlight_and_the_waiting_help_request() -> None:
    grants = InMemoryResumeStore()
    stages = InMemoryStageStore(has_grant=lambda pid: grants.get(pid) is not None)
    one = _process(grants, stages)
    eve, eve_box = await _hello(one, "eve")
    _ben, ben_box = await _hello(one, "ben")
    cleo, _ = await _hello(one, "cleo")
    assert ben_box.welcome()["self"]["may_publish"] is False, "a moderated room: the floor is the moderators'"
    await one.grant_floor(eve, GrantFloor(type="grant_floor", peer_id="ben"))
    await one.spotlight(eve, SpotlightSet(type="spotlight", peer_id="ben"))
    one.ask_help(cleo, AskHelp(type="ask_help", text="no sound"))
    await one.stage.flushed()
    await one.grants.flushed()  # then the process dies: nothing more is written

    two = _process(grants, stages)
    tokens = {"ben": ben_box, "eve": eve_box}
    back = {pid: (await _hello(two, pid, resume=box.welcome()["resume"]))[1] for pid, box in tokens.items()}
    for box in back.values():
        assert box.welcome()["resumed"] is True and box.welcome()["spotlight"] == "ben"
    assert back["ben"].welcome()["self"]["may_publish"] is True
    # Eve came back into the room of the request: a resume is no visit, the request still waits for a moderator.
    assert [(h.participant_id, h.text) for h in two.help_requests("w1")] == [("cleo", "no sound")]

    # Ben leaves for good: his floor and spotlight end, also in the store.
    two.leave(two.members["ben"])
    await two.stage.flushed()
    saved = stages.stages["w1"]
    assert all(not r.floor and r.spotlight is None for r in saved.rooms)
    assert [h.participant_id for h in saved.help] == ["cleo"]
    for service in (one, two):
        await service.stage.close()
        await service.grants.close()
