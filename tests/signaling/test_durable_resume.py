"""Durable resume in the service (signaling/service.py with signaling/grant_writer.py): every member's place is a
grant from its welcome on, a drain keeps it and records no leave, and a new process (a second service on the same
store) gives it back once with its room, media state, hand and attendance visit. Component tests with fakes of our
own ports and the in-memory store; tests/server/test_durable_resume.py does the same with real processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signaling.clock import ManualClock
from signaling.errors import Conflict
from signaling.protocol import ChatMessage, Hello, RoomInfo, Update
from signaling.resume_store import InMemoryResumeStore, ResumeGrant
from signaling.rooms import Member, Profile
from signaling.service import (
    CLOSE_SERVICE_RESTART,
    Attendance,
    Identity,
    SignalingConfig,
    SignalingService,
)

T0 = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
GRACE_S = 30.0
PLENARY = RoomInfo(id="r1", workshop_id="w1", name="Plenary", kind="plenary", media="mesh", capacity=10)
BREAKOUT = RoomInfo(id="b1", workshop_id="w1", name="Room 1", kind="breakout", media="mesh", capacity=10)


class Directory:
    def __init__(self) -> None:
        self.room = {"ana": PLENARY, "ben": PLENARY}

    async def authenticate(self, token: str) -> Identity:
        return Identity(token, "w1", Profile(token.title(), "PT", "", "participant"), room=self.room[token])

    async def assigned_room(self, identity: Identity) -> RoomInfo:
        return self.room[identity.participant_id]

    def still_valid(self, identity: Identity) -> bool:
        return True


class Record:
    """The attendance a service records, in order."""

    def __init__(self) -> None:
        self.events: list[Attendance] = []

    def record_attendance(self, event: Attendance) -> None:
        self.events.append(event)

    def attendance_congested(self) -> bool:
        return False

    async def save_chat(self, **_: Any) -> ChatMessage:
        raise AssertionError("no chat here")

    async def recent_chat(self, room_id: str, limit: int) -> list[ChatMessage]:
        return []

    def of(self, pid: str) -> list[tuple[str, str, str]]:
        return [(e.event, e.reason, e.visit_id) for e in self.events if e.participant_id == pid]


class Box:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def send(self, text: str) -> bool:
        self.sent.append(json.loads(text))
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]

    def welcome(self) -> dict[str, Any]:
        (welcome,) = [m for m in self.sent if m["type"] == "welcome"]
        return welcome


class Process:
    """One server process: a service with its own memory and record, on the store that outlives it."""

    def __init__(self, store: InMemoryResumeStore, clock: ManualClock, directory: Directory | None = None) -> None:
        self.record = Record()
        self.directory = directory or Directory()
        self.service = SignalingService(
            self.directory, self.record, SignalingConfig(resume_grace_s=GRACE_S), clock=clock, resume_store=store
        )

    async def hello(self, pid: str, resume: str | None = None) -> tuple[Member, Box]:
        box = Box()
        member = await self.service.join(Hello(type="hello", protocol=[1], token=pid, resume=resume), 1, box)
        assert isinstance(member, Member)
        return member, box

    async def drain(self) -> None:
        self.service.shutdown()
        await self.service.drain_tasks()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture(autouse=True)
async def writers_closed() -> AsyncIterator[None]:
    """Every process's writer is stopped at the end (a process that "died" is only abandoned by the test)."""
    yield
    for task in asyncio.all_tasks():
        if task.get_name() == "resume-grants":
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
def store(clock: ManualClock) -> InMemoryResumeStore:
    return InMemoryResumeStore(clock)


async def test_a_place_is_a_grant_from_the_welcome_on_and_follows_state_and_room_until_the_member_leaves(
    store: InMemoryResumeStore, clock: ManualClock
) -> None:
    one = Process(store, clock)
    ana, box = await one.hello("ana")
    await one.service.grants.flushed()
    grant = store.get("ana")
    assert grant is not None and grant.detached_at is None, "connected: no drop, no expiry of its own"
    assert (grant.room_id, grant.visit_id) == ("r1", ana.visit_id)
    assert grant.token_sha256 != box.welcome()["resume"].encode()
    for hand in (True, False, True):  # coalesced: the last one is what the store keeps
        one.service.update(ana, Update(type="update", hand=hand, audio=False))
    one.service.move(ana, BREAKOUT, reason="breakouts")
    await one.service.grants.flushed()
    grant = store.get("ana")
    assert grant is not None and grant.state.hand is True and grant.state.audio is False
    assert (grant.room_id, grant.visit_id) == ("b1", ana.visit_id)
    one.service.leave(ana)
    await one.service.grants.flushed()
    assert store.get("ana") is None


async def test_a_drain_closes_with_1012_keeps_every_place_and_a_new_process_gives_it_back_with_state_and_visit(
    store: InMemoryResumeStore, clock: ManualClock
) -> None:
    one = Process(store, clock)
    ana, a_box = await one.hello("ana")
    ben, b_box = await one.hello("ben")
    one.service.update(ana, Update(type="update", hand=True, audio=False))
    visits = {"ana": ana.visit_id, "ben": ben.visit_id}
    clock.set(T0 + timedelta(minutes=5))
    await one.drain()
    for box in (a_box, b_box):
        assert box.closed == (CLOSE_SERVICE_RESTART, "server restarting")
        assert box.sent[-1] == {"type": "bye", "reason": "server restarting", "reconnect": True}
        assert "peer_left" not in box.types()
    for pid in ("ana", "ben"):
        assert [(e, r) for e, r, _ in one.record.of(pid)] == [("join", "joined"), ("drop", "server_restart")]
        grant = store.get(pid)
        assert grant is not None and grant.detached_at == T0 + timedelta(minutes=5)

    two = Process(store, clock)
    clock.set(T0 + timedelta(minutes=5, seconds=4))
    ben2, b2 = await two.hello("ben", resume=b_box.welcome()["resume"])
    assert b2.welcome()["resumed"] is True and b2.welcome()["peers"] == []
    ana2, a2 = await two.hello("ana", resume=a_box.welcome()["resume"])
    welcome = a2.welcome()
    assert welcome["resumed"] is True and welcome["room"]["id"] == "r1"
    assert welcome["media_kept"] is False, "a new process has none of the old one's SFU handles"
    assert welcome["self"]["state"]["hand"] is True and welcome["self"]["state"]["audio"] is False
    assert [p["id"] for p in welcome["peers"]] == ["ben"]
    # Ben's process never knew Ana: who she is first, then that she is back (his client waits for her offer).
    news = [m for m in b2.sent if m["type"] in ("peer_joined", "peer_resumed")]
    assert [m["type"] for m in news] == ["peer_joined", "peer_resumed"]
    assert news[0]["peer"]["state"]["hand"] is True and news[0]["peer"]["reconnecting"] is False
    # The visits go on: a resume of the same visit, not a leave and a new join.
    assert (ana2.visit_id, ben2.visit_id) == (visits["ana"], visits["ben"])
    assert two.record.of("ana") == [("resume", "resumed", visits["ana"])]
    # Taken once: the old token is spent, the new one is in the store.
    await two.service.grants.flushed()
    grant = store.get("ana")
    assert grant is not None and grant.detached_at is None


async def test_a_place_left_by_a_process_that_died_resumes_its_visit(
    store: InMemoryResumeStore, clock: ManualClock
) -> None:
    one = Process(store, clock)
    ana, box = await one.hello("ana")
    await one.service.grants.flushed()  # then the process dies: no drain, nothing more is written
    two = Process(store, clock)
    _, box2 = await two.hello("ana", resume=box.welcome()["resume"])
    assert box2.welcome()["resumed"] is True
    assert two.record.of("ana") == [("resume", "resumed", ana.visit_id)]


async def test_a_member_whose_room_changed_while_away_resumes_where_it_belongs_with_a_move_in_the_record(
    store: InMemoryResumeStore, clock: ManualClock
) -> None:
    one = Process(store, clock)
    ana, box = await one.hello("ana")
    one.service.move(ana, BREAKOUT, reason="breakouts")
    old_visit = ana.visit_id
    clock.set(T0 + timedelta(minutes=20))
    await one.drain()
    directory = Directory()  # the breakouts closed meanwhile: Ana belongs in the plenary again
    two = Process(store, clock, directory)
    clock.set(T0 + timedelta(minutes=20, seconds=3))
    again, box2 = await two.hello("ana", resume=box.welcome()["resume"])
    assert box2.welcome()["resumed"] is True and box2.welcome()["room"]["id"] == "r1"
    events = two.record.events
    assert [(e.event, e.reason, e.room_id, e.at) for e in events] == [
        ("leave", "moved", "b1", T0 + timedelta(minutes=20)),
        ("join", "resumed", "r1", T0 + timedelta(minutes=20, seconds=3)),
    ]
    assert events[0].visit_id == old_visit and again.visit_id not in ("", old_visit)


async def test_an_expired_grant_resumes_nothing(store: InMemoryResumeStore, clock: ManualClock) -> None:
    one = Process(store, clock)
    _, box = await one.hello("ana")
    await one.drain()
    clock.set(T0 + timedelta(seconds=GRACE_S + 1))
    two = Process(store, clock)
    _, box2 = await two.hello("ana", resume=box.welcome()["resume"])
    assert box2.welcome()["resumed"] is False
    assert [(e, r) for e, r, _ in two.record.of("ana")] == [("join", "joined")]


class GatedStore(InMemoryResumeStore):
    """Takes wait at a gate, so that a second hello arrives while the first is taking."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.taking = asyncio.Event()
        self.gate = asyncio.Event()

    async def take(self, participant_id: str, token: str) -> ResumeGrant | None:
        self.taking.set()
        await self.gate.wait()
        return await super().take(participant_id, token)


async def test_two_hellos_racing_for_one_grant_one_resumes_and_the_other_is_refused(clock: ManualClock) -> None:
    store = GatedStore(clock)
    one = Process(store, clock)
    _, box = await one.hello("ana")
    await one.drain()
    two = Process(store, clock)
    token = box.welcome()["resume"]
    first = asyncio.create_task(two.hello("ana", resume=token))
    async with asyncio.timeout(5):
        await store.taking.wait()
    with pytest.raises(Conflict, match="being resumed by another connection"):
        await two.hello("ana", resume=token)
    store.gate.set()
    async with asyncio.timeout(5):
        member, box2 = await first
    assert box2.welcome()["resumed"] is True and box2.closed is None
    assert list(two.service.members) == ["ana"] and two.service.members["ana"] is member


async def test_a_new_join_while_the_grant_is_kept_starts_a_new_visit_and_replaces_the_grant(
    store: InMemoryResumeStore, clock: ManualClock
) -> None:
    one = Process(store, clock)
    ana, _ = await one.hello("ana")
    await one.drain()
    two = Process(store, clock)
    again, box = await two.hello("ana")  # no resume token: a new join
    assert box.welcome()["resumed"] is False and again.visit_id != ana.visit_id
    await two.service.grants.flushed()
    grant = store.get("ana")
    assert grant is not None and grant.visit_id == again.visit_id


async def test_a_resume_in_the_same_process_keeps_the_media_and_rewrites_the_grant_with_the_new_token(
    store: InMemoryResumeStore, clock: ManualClock
) -> None:
    one = Process(store, clock)
    ana, box = await one.hello("ana")
    one.service.detach(ana, box)
    await one.service.grants.flushed()
    dropped = store.get("ana")
    assert dropped is not None and dropped.detached_at is not None
    again, box2 = await one.hello("ana", resume=box.welcome()["resume"])
    assert again is ana and box2.welcome()["resumed"] is True and box2.welcome()["media_kept"] is True
    await one.service.grants.flushed()
    grant = store.get("ana")
    assert grant is not None and grant.detached_at is None and grant.token_sha256 != dropped.token_sha256


async def test_a_client_whose_resume_welcome_never_arrived_resumes_again_with_the_token_it_still_holds(
    store: InMemoryResumeStore, clock: ManualClock
) -> None:
    """A resume hands out a new token in its welcome; a client that never got that welcome (its socket died at once,
    or it gave up waiting and tried again) still holds the one before, and must get its place back with it: in the
    same process, and from the grant in a new one. A token older than that one is spent."""
    one = Process(store, clock)
    ana, box = await one.hello("ana")
    held = box.welcome()["resume"]
    one.service.detach(ana, box)
    again, lost = await one.hello("ana", resume=held)  # its welcome is lost with the socket
    assert again is ana and lost.welcome()["resumed"] is True and lost.welcome()["resume"] != held
    one.service.detach(again, lost)
    third, box3 = await one.hello("ana", resume=held)
    assert third is ana and box3.welcome()["resumed"] is True
    # One visit throughout: dropped and resumed twice, never a leave and a new join.
    assert [(e, v) for e, _, v in one.record.of("ana")] == [("join", ana.visit_id)] + [
        ("drop", ana.visit_id),
        ("resume", ana.visit_id),
    ] * 2
    await one.service.grants.flushed()  # then the process dies, right after the welcome that the client never got

    two = Process(store, clock)
    _, box4 = await two.hello("ana", resume=held)
    assert box4.welcome()["resumed"] is True
    assert two.record.of("ana") == [("resume", "resumed", ana.visit_id)]
    # Once the client came back with the newest token, the ones before it are spent.
    two.service.detach(two.service.members["ana"], box4)
    newest = box4.welcome()["resume"]
    _, box5 = await two.hello("ana", resume=newest)
    assert box5.welcome()["resumed"] is True
    two.service.detach(two.service.members["ana"], box5)
    _, box6 = await two.hello("ana", resume=held)
    assert box6.welcome()["resumed"] is False
