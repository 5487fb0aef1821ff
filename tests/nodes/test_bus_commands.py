"""BusRoomCommands with fakes of its ports (an in-process bus, leases held in a dict, a fake local hub): a command
travels to the workshop's owner with its arguments and comes back with its result or its error; it runs here when
this node owns the workshop or nobody does; an owner that lost the lease sends the caller back to the lease."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from recordings.actions import RecordingActions
from recordings.service import Starter
from server.bus_commands import (
    BREAKOUT_ACTIONS,
    COMMANDS,
    LOBBY_ACTIONS,
    RECORDING_ACTIONS,
    BusBreakoutActions,
    BusLobbyActions,
    BusRecordingActions,
    BusRoomCommands,
    _shape,
)
from server.leases import LeaseKeeper, NodeInfo
from server.nodes import Node
from signaling.audit import SYSTEM, Actor
from signaling.breakout_actions import BreakoutActions
from signaling.bus import InProcessBus
from signaling.commands import LiveMember, LivePresence, LiveRoom, LocalRoomCommands, RoomCommands
from signaling.errors import NotFound, Unavailable
from signaling.fence import Fence
from signaling.lobby_actions import LobbyActions
from signaling.protocol import HelpRequested, PeerState, RoomInfo, Sender

WORKSHOP = uuid.uuid4()


@dataclass
class Owner:
    node_id: str
    live: bool = True


@dataclass
class Leases:
    """The leases table as every node reads it (one dict shared by the fakes of all nodes)."""

    owners: dict[uuid.UUID, Owner] = field(default_factory=dict)


class FakeKeeper:
    def __init__(self, table: Leases, node_id: str) -> None:
        self.table = table
        self.node_id = node_id
        self.stale: set[uuid.UUID] = set()  # leases this node lost without the table saying so yet

    def fence(self, workshop_id: uuid.UUID) -> Fence | None:
        owner = self.table.owners.get(workshop_id)
        if owner is None or owner.node_id != self.node_id or workshop_id in self.stale:
            return None
        return Fence(workshop_id, self.node_id, 1)

    async def owner(self, workshop_id: uuid.UUID) -> Owner | None:
        return self.table.owners.get(workshop_id)


class FakeLocal:
    """The hub's answers, and the calls it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def request_mute(self, workshop_id: str, participant_id: str, kind: str, by: Sender) -> bool:
        self.calls.append(("request_mute", (workshop_id, participant_id, kind, by)))
        return True

    async def remove_participant(
        self, workshop_id: str, participant_id: str, *, close_code: int, reason: str, by: str | None
    ) -> bool:
        raise NotFound(f"no {participant_id} on {self.name}")

    async def present_in(self, workshop_id: str, room_id: str) -> list[tuple[str, str | None]]:
        self.calls.append(("present_in", (workshop_id, room_id)))
        return [("p1", None), ("p2", "laptop")]

    async def presence(self, workshop_id: str) -> LivePresence:
        self.calls.append(("presence", (workshop_id,)))
        room = RoomInfo(id="r1", workshop_id=workshop_id, name="Plenary", kind="plenary", media="mesh", capacity=10)
        at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
        return LivePresence(
            members=[LiveMember("p1", "r1", "Ana", "PT", "participant", True, PeerState(hand=True, hand_raised_at=at))],
            rooms={"r1": LiveRoom(info=room, recording_id=None)},
            breakout=None,
            help=[HelpRequested(room_id="r1", room_name="Plenary", participant_id="p1", display_name="Ana", at=at)],
        )


@dataclass
class Cluster:
    leases: Leases
    commands: dict[str, BusRoomCommands]
    locals: dict[str, FakeLocal]
    forgotten: list[str]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    bus = InProcessBus()
    table = Leases()
    commands, locals_, forgotten = {}, {}, []
    for name in ("a", "b"):
        local = FakeLocal(name)
        keeper = cast(LeaseKeeper, FakeKeeper(table, name))
        node = Node(info=NodeInfo(id=name), bus=bus, engine="in_process", leases=keeper)
        commands[name] = BusRoomCommands(
            cast(LocalRoomCommands, local), node, timeout_s=2, before_remote=lambda name=name: forgotten.append(name)
        )
        locals_[name] = local
        await commands[name].start()
    yield Cluster(table, commands, locals_, forgotten)
    for c in commands.values():
        await c.close()
    await bus.close()


def test_every_command_of_the_ports_travels() -> None:
    port = {n for n in dir(RoomCommands) if not n.startswith("_")}
    assert port == COMMANDS
    for name in COMMANDS:
        _shape(name)  # every argument and result has a JSON adapter
        assert callable(getattr(BusRoomCommands, name))
    actions = {n for n in dir(BreakoutActions) if not n.startswith("_")}
    assert actions == BREAKOUT_ACTIONS
    for name in BREAKOUT_ACTIONS:
        _shape(name, BreakoutActions)
        assert callable(getattr(BusBreakoutActions, name))
    assert {n for n in dir(LobbyActions) if not n.startswith("_")} == LOBBY_ACTIONS == {"knocks", "admit", "deny"}
    for name in LOBBY_ACTIONS:
        _shape(name, LobbyActions)
        assert callable(getattr(BusLobbyActions, name))
    assert {n for n in dir(RecordingActions) if not n.startswith("_")} == RECORDING_ACTIONS
    assert {"start", "stop", "recorder_peer", "stop_workshop"} == RECORDING_ACTIONS
    for name in RECORDING_ACTIONS:
        _shape(name, RecordingActions)
        assert callable(getattr(BusRecordingActions, name))


class FakeRecordings:
    """A node's recordings: what it was asked, and a recording that runs here."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.running = uuid.uuid4()

    async def start(self, workshop_id: uuid.UUID, room: RoomInfo, consent_mode: str, starter: Starter) -> uuid.UUID:
        self.calls.append(("start", workshop_id, room, consent_mode, starter))
        return self.running

    async def stop(self, workshop_id: uuid.UUID, recording_id: uuid.UUID, reason: str | None, actor: Actor) -> None:
        self.calls.append(("stop", workshop_id, recording_id, reason, actor))

    async def recorder_peer(self, workshop_id: uuid.UUID, recording_id: uuid.UUID) -> str | None:
        return "recorder-1" if recording_id == self.running else None

    async def stop_workshop(self, workshop_id: uuid.UUID, actor: Actor) -> list[uuid.UUID]:
        return [self.running]


async def test_recording_start_and_stop_run_on_the_owner_and_return_what_it_returned() -> None:
    bus, table = InProcessBus(), Leases()
    recordings = {name: FakeRecordings() for name in ("a", "b")}
    actions = {}
    for name in ("a", "b"):
        node = Node(
            info=NodeInfo(id=name), bus=bus, engine="in_process", leases=cast(LeaseKeeper, FakeKeeper(table, name))
        )
        actions[name] = BusRecordingActions(cast(RecordingActions, recordings[name]), node, timeout_s=2)
        await actions[name].serve()
    try:
        table.owners[WORKSHOP] = Owner("a")
        room = RoomInfo(id="r1", workshop_id=str(WORKSHOP), name="Plenary", kind="plenary", media="mesh", capacity=10)
        starter = Starter(id=uuid.uuid4(), role="moderator", display_name="Mia")
        assert await actions["b"].start(WORKSHOP, room, "explicit", starter) == recordings["a"].running
        assert recordings["a"].calls == [("start", WORKSHOP, room, "explicit", starter)] and recordings["b"].calls == []
        assert await actions["b"].recorder_peer(WORKSHOP, recordings["a"].running) == "recorder-1"
        await actions["b"].stop(WORKSHOP, recordings["a"].running, None, SYSTEM)
        assert recordings["a"].calls[-1] == ("stop", WORKSHOP, recordings["a"].running, None, SYSTEM)
        assert await actions["b"].stop_workshop(WORKSHOP, SYSTEM) == [recordings["a"].running]
    finally:
        for a in actions.values():
            await a.close()
        await bus.close()


async def test_a_command_runs_on_the_owner_with_its_arguments_and_returns_its_result(cluster: Cluster) -> None:
    cluster.leases.owners[WORKSHOP] = Owner("a")
    by = Sender(id="m1", display_name="Moderator")
    assert await cluster.commands["b"].request_mute(str(WORKSHOP), "p1", "audio", by) is True
    assert cluster.locals["a"].calls == [("request_mute", (str(WORKSHOP), "p1", "audio", by))]
    assert cluster.locals["b"].calls == []
    assert cluster.forgotten == ["a"]  # the owner forgot its join cache first

    assert await cluster.commands["b"].present_in(str(WORKSHOP), "r1") == [("p1", None), ("p2", "laptop")]
    presence = await cluster.commands["b"].presence(str(WORKSHOP))
    assert presence == await cluster.locals["a"].presence(str(WORKSHOP))


async def test_an_error_on_the_owner_is_raised_on_the_caller_with_its_class(cluster: Cluster) -> None:
    cluster.leases.owners[WORKSHOP] = Owner("a")
    with pytest.raises(NotFound, match="no p9 on a"):
        await cluster.commands["b"].remove_participant(str(WORKSHOP), "p9", close_code=4403, reason="x", by=None)


async def test_a_command_runs_here_when_this_node_owns_the_workshop_or_nobody_does(cluster: Cluster) -> None:
    await cluster.commands["b"].present_in(str(WORKSHOP), "r1")  # nobody owns it
    cluster.leases.owners[WORKSHOP] = Owner("b")
    await cluster.commands["b"].present_in(str(WORKSHOP), "r2")
    assert cluster.locals["b"].calls == [("present_in", (str(WORKSHOP), "r1")), ("present_in", (str(WORKSHOP), "r2"))]
    assert cluster.locals["a"].calls == [] and cluster.forgotten == []


async def test_an_owner_that_lost_the_lease_sends_the_caller_back_to_the_lease(cluster: Cluster) -> None:
    cluster.leases.owners[WORKSHOP] = Owner("a")
    cast(FakeKeeper, cluster.commands["a"].node.leases).stale.add(WORKSHOP)  # a lost it; the table still names a
    with pytest.raises(Unavailable, match="moving between nodes"):
        await cluster.commands["b"].present_in(str(WORKSHOP), "r1")
    cluster.leases.owners[WORKSHOP] = Owner("a", live=False)  # it lapsed: nobody owns it, the command runs here
    await cluster.commands["b"].present_in(str(WORKSHOP), "r1")
    assert cluster.locals["b"].calls == [("present_in", (str(WORKSHOP), "r1"))]
    assert cluster.locals["a"].calls == []


async def test_an_owner_that_does_not_answer_is_unavailable(cluster: Cluster) -> None:
    cluster.leases.owners[WORKSHOP] = Owner("gone")
    with pytest.raises(Unavailable, match="did not answer"):
        await cluster.commands["b"].present_in(str(WORKSHOP), "r1")
