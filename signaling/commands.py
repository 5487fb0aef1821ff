"""The one port between the edges and the live rooms.

HTTP handlers (and any other edge: a CLI, the agenda scheduler) never reach into the signalling service's
dictionaries; they call `RoomCommands`. Every command names its workshop, so that with several nodes a bus client
can implement the same interface by sending the command to the workshop's owner (docs/scaling.md); with one node,
`LocalRoomCommands` calls the service in this process. The methods are coroutines for that reason, even where the
local implementation does not await anything.

What the commands return is plain data (`LiveMember`, `LivePresence`), never the service's `Member` objects, which
belong to the owner's event loop.

The coordinators that already have an interface of their own (breakouts, recordings, the lobby) keep it; they are
owned by the same node as the rooms and are wrapped the same way when commands travel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from signaling.protocol import BreakoutStatus, HelpRequested, PeerState, RoomInfo, Sender
from signaling.rooms import Profile

if TYPE_CHECKING:
    from signaling.service import SignalingService

Kind = Literal["audio", "video"]
FloorHow = Literal["floor", "unmute_request"]


@dataclass(frozen=True)
class LiveMember:
    """A member of a workshop in signalling: connected, or within their resume grace period."""

    id: str
    room_id: str
    display_name: str
    country: str
    role: str
    connected: bool
    state: PeerState


@dataclass(frozen=True)
class LiveRoom:
    info: RoomInfo
    recording_id: str | None


@dataclass(frozen=True)
class LivePresence:
    """Who is where right now, the rooms they are in, the breakouts' state and the help requests waiting, oldest
    first."""

    members: list[LiveMember]
    rooms: dict[str, LiveRoom]
    breakout: BreakoutStatus | None
    help: list[HelpRequested]


class RoomCommands(Protocol):
    """What the edges may ask of the live rooms of a workshop."""

    async def presence(self, workshop_id: str) -> LivePresence: ...

    async def live_room(self, workshop_id: str, room_id: str) -> RoomInfo | None:
        """The room as signalling knows it while someone is in it; None when nobody is."""
        ...

    async def present_in(self, workshop_id: str, room_id: str) -> list[tuple[str, str | None]]:
        """Who would knock to come back into the room were it locked: (participant id, device)."""
        ...

    async def room_changed(self, workshop_id: str, info: RoomInfo) -> None:
        """A room was changed in PostgreSQL: the live room follows."""
        ...

    async def send_home(self, workshop_id: str, room_id: str, *, reason: str) -> int:
        """Everyone in the room goes to their home room (the plenary); how many moved."""
        ...

    async def participant_changed(self, workshop_id: str, participant_id: str, profile: Profile) -> None: ...

    async def remove_participant(
        self, workshop_id: str, participant_id: str, *, close_code: int, reason: str, by: str | None
    ) -> bool:
        """Close the participant's session (and their waiting socket); True when a session was open."""
        ...

    async def close_workshop(self, workshop_id: str) -> int: ...

    async def interpretation_changed(
        self, workshop_id: str, languages: Sequence[str], interpreters: Sequence[str]
    ) -> None:
        """The workshop's languages or interpreters changed in PostgreSQL: its live rooms follow."""
        ...

    async def is_interpreted(self, workshop_id: str, room_id: str) -> bool:
        """Whether the live room has interpretation now (it must stay in the SFU)."""
        ...

    async def request_mute(self, workshop_id: str, participant_id: str, kind: Kind, by: Sender) -> bool: ...

    async def request_unmute(self, workshop_id: str, participant_id: str, kind: Kind, by: Sender) -> bool: ...

    async def set_floor(self, workshop_id: str, participant_id: str, granted: bool, by: Sender) -> bool: ...

    async def hand_floor(self, workshop_id: str, participant_id: str, by: Sender) -> FloorHow | None: ...

    async def mute_room(self, workshop_id: str, room_id: str, kind: Kind, by: Sender) -> int: ...

    async def lower_hands(self, workshop_id: str, room_id: str) -> int: ...


HomeRoom = Callable[[str, str], Awaitable[RoomInfo]]


class LocalRoomCommands:
    """`RoomCommands` for the rooms this process holds. A command for a room or participant of another workshop
    finds nothing (as it would on another owner): False, 0 or None, never another workshop's state."""

    def __init__(self, service: SignalingService, home_room: HomeRoom) -> None:
        self._service = service
        self._home_room = home_room

    def _room_of(self, workshop_id: str, room_id: str) -> bool:
        info = self._service.live_room(room_id)
        return info is not None and info.workshop_id == workshop_id

    def _member_of(self, workshop_id: str, participant_id: str) -> bool:
        member = self._service.members.get(participant_id)
        return member is not None and member.workshop_id == workshop_id

    async def presence(self, workshop_id: str) -> LivePresence:
        service = self._service
        members = [
            LiveMember(
                id=m.id,
                room_id=m.room_id,
                display_name=m.profile.display_name,
                country=m.profile.country,
                role=m.profile.role,
                connected=m.connected,
                state=m.state,
            )
            for m in service.members_of(workshop_id)
        ]
        rooms: dict[str, LiveRoom] = {}
        for room_id in {m.room_id for m in members}:
            info = service.live_room(room_id)
            if info is not None:
                status = service.recording_status(room_id)
                rooms[room_id] = LiveRoom(info=info, recording_id=status.recording_id if status else None)
        return LivePresence(
            members=members,
            rooms=rooms,
            breakout=service.breakout_status(workshop_id),
            help=service.help_requests(workshop_id),
        )

    async def live_room(self, workshop_id: str, room_id: str) -> RoomInfo | None:
        return self._service.live_room(room_id) if self._room_of(workshop_id, room_id) else None

    async def present_in(self, workshop_id: str, room_id: str) -> list[tuple[str, str | None]]:
        return self._service.present_in(room_id) if self._room_of(workshop_id, room_id) else []

    async def room_changed(self, workshop_id: str, info: RoomInfo) -> None:
        if info.workshop_id == workshop_id:
            self._service.room_changed(info)

    async def send_home(self, workshop_id: str, room_id: str, *, reason: str) -> int:
        service = self._service
        if not self._room_of(workshop_id, room_id):
            return 0
        moved = 0
        for member in [m for m in service.members_of(workshop_id) if m.room_id == room_id]:
            home = await self._home_room(workshop_id, member.id)
            if home.id != room_id:
                service.move(member, home, reason=reason)
                moved += 1
        return moved

    async def participant_changed(self, workshop_id: str, participant_id: str, profile: Profile) -> None:
        if self._member_of(workshop_id, participant_id):
            self._service.participant_changed(participant_id, profile)

    async def remove_participant(
        self, workshop_id: str, participant_id: str, *, close_code: int, reason: str, by: str | None
    ) -> bool:
        # Also when they are not connected: their waiting socket in the lobby is closed too.
        return self._service.remove_participant(participant_id, close_code=close_code, reason=reason, by=by)

    async def close_workshop(self, workshop_id: str) -> int:
        return self._service.close_workshop(workshop_id)

    async def interpretation_changed(
        self, workshop_id: str, languages: Sequence[str], interpreters: Sequence[str]
    ) -> None:
        self._service.interpretation_changed(workshop_id, languages, interpreters)

    async def is_interpreted(self, workshop_id: str, room_id: str) -> bool:
        return self._room_of(workshop_id, room_id) and self._service.is_interpreted(room_id)

    async def request_mute(self, workshop_id: str, participant_id: str, kind: Kind, by: Sender) -> bool:
        if not self._member_of(workshop_id, participant_id):
            return False
        return self._service.request_mute(participant_id, kind, by)

    async def request_unmute(self, workshop_id: str, participant_id: str, kind: Kind, by: Sender) -> bool:
        return self._service.request_unmute(workshop_id, participant_id, kind, by)

    async def set_floor(self, workshop_id: str, participant_id: str, granted: bool, by: Sender) -> bool:
        return self._service.set_floor(workshop_id, participant_id, granted, by)

    async def hand_floor(self, workshop_id: str, participant_id: str, by: Sender) -> FloorHow | None:
        return self._service.hand_floor(workshop_id, participant_id, by)

    async def mute_room(self, workshop_id: str, room_id: str, kind: Kind, by: Sender) -> int:
        return self._service.mute_room(room_id, kind, by) if self._room_of(workshop_id, room_id) else 0

    async def lower_hands(self, workshop_id: str, room_id: str) -> int:
        return self._service.lower_hands(room_id) if self._room_of(workshop_id, room_id) else 0
