"""Rooms and who is in them: pure rules, no I/O (the service does the talking)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from signaling.protocol import InterpreterInfo, PeerInfo, PeerState, RoomInfo, SelfInfo


class Outbox(Protocol):
    """Where a member's messages go: one live connection (see signaling.connection)."""

    def send(self, text: str) -> bool:
        """Queue `text`; False when the connection is gone or too slow to keep up."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Close the connection after what is queued (or at once when it is stuck)."""
        ...


@dataclass
class Profile:
    display_name: str
    country: str
    organisation: str
    role: str
    # An interpreter's pair of workshop languages (docs/interpretation.md); None: not an interpreter.
    interpreter: tuple[str, ...] | None = None


@dataclass(eq=False)
class Member:
    """A participant's presence in signalling. It outlives a dropped socket for the resume grace period."""

    id: str
    workshop_id: str
    profile: Profile
    room_id: str
    resume_secret: str
    state: PeerState = field(default_factory=PeerState)
    # The resume token this member last came back with: still good, since the welcome that carried the new one may
    # never have reached the client (a socket that died right after, a client that timed out and tried again).
    previous_resume_token: str | None = None
    outbox: Outbox | None = None
    # Hidden members (the recorder) receive relayed messages but are in no roster.
    hidden: bool = False
    # Whether the member may publish in its room (kept by the service from the room's rules and the floor).
    may_publish: bool = True
    # The attendance visit it is on (a new one with every join and move), and the connection it speaks through
    # (the WebSocket session id of the logs; it changes with a resume).
    visit_id: str = ""
    connection_id: str = ""
    # Interpretation (docs/interpretation.md): the channel this member hears (None: the original); for an
    # interpreter, the language they interpret into and their booth state as the room sees it (replaced, never
    # mutated, by the service).
    listening: str | None = None
    into: str | None = None
    interp: InterpreterInfo | None = None
    # This member as roster entries, built once per state (see `_views`).
    _views_cache: _PeerViews | None = field(default=None, repr=False)

    @property
    def connected(self) -> bool:
        return self.outbox is not None

    def _views(self) -> _PeerViews:
        """The roster entries (model and JSON, for either side of `polite`) of this member as it is now.

        Rebuilt when anything they show changes: the service replaces `state` and `profile` on every change (never
        mutates them), so comparing by identity is enough."""
        views = self._views_cache
        connected = self.outbox is not None
        if (
            views is None
            or views.state is not self.state
            or views.profile is not self.profile
            or views.may_publish != self.may_publish
            or views.connected != connected
            or views.interp is not self.interp
        ):
            impolite, polite = self._build_peer(False), self._build_peer(True)
            views = self._views_cache = _PeerViews(
                self.state,
                self.profile,
                self.may_publish,
                connected,
                self.interp,
                (impolite, polite),
                (impolite.model_dump_json(), polite.model_dump_json()),
            )
        return views

    def self_info(self) -> SelfInfo:
        p = self.profile
        return SelfInfo(
            id=self.id,
            display_name=p.display_name,
            country=p.country,
            organisation=p.organisation,
            role=p.role,
            state=self.state,
            may_publish=self.may_publish,
            interpreter=self.interp,
        )

    def as_peer(self, polite: bool) -> PeerInfo:
        """This member as a roster entry for a receiver who is `polite` towards it."""
        return self._views().models[polite]

    def peer_json(self, polite: bool) -> str:
        """`as_peer(polite)` as JSON, as the wire has it."""
        return self._views().json[polite]

    def _build_peer(self, polite: bool) -> PeerInfo:
        p = self.profile
        return PeerInfo(
            id=self.id,
            display_name=p.display_name,
            country=p.country,
            organisation=p.organisation,
            role=p.role,
            polite=polite,
            state=self.state,
            reconnecting=not self.connected,
            may_publish=self.may_publish,
            interpreter=self.interp,
        )

    def seen_by(self, receiver_id: str) -> PeerInfo:
        return self.as_peer(is_polite(receiver_id, self.id))


@dataclass(frozen=True, slots=True)
class _PeerViews:
    state: PeerState
    profile: Profile
    may_publish: bool
    connected: bool
    interp: InterpreterInfo | None
    models: tuple[PeerInfo, PeerInfo]  # indexed by `polite`
    json: tuple[str, str]


def room_info(row: Mapping[str, Any]) -> RoomInfo:
    """A stored room (a database row or any mapping with its columns) as the wire describes it."""
    return RoomInfo(
        id=str(row["id"]),
        workshop_id=str(row["workshop_id"]),
        name=row["name"],
        kind=row["kind"],
        media=row["media"],
        capacity=row["capacity"],
        publishing=_publishing(row),
        locked=_column(row, "locked", False),
    )


def _publishing(row: Mapping[str, Any]) -> Any:
    return _column(row, "publishing", "open")


def _column(row: Mapping[str, Any], name: str, default: Any) -> Any:
    try:
        return row[name]
    except KeyError:  # rows and mappings from before rooms had it
        return default


def is_polite(receiver_id: str, other_id: str) -> bool:
    """Perfect negotiation needs exactly one polite side per pair; the smaller id is polite.

    Stable across resumes and room moves, and both sides compute it the same way.
    """
    return receiver_id < other_id


PUBLISHERS_IN_MODERATED_ROOMS = frozenset({"organiser", "moderator"})


def may_publish(role: str, room: RoomInfo, has_floor: bool) -> bool:
    """Who may publish: nobody who observes; in a moderated sfu room, moderators and who has the floor."""
    if role == "observer":
        return False
    if room.media != "sfu" or room.publishing == "open":
        return True
    return role in PUBLISHERS_IN_MODERATED_ROOMS or has_floor


def is_presenter(member: Member, room: Room) -> bool:
    """Who "mute everyone" leaves alone: moderators and the organiser, whoever holds the floor, shares a screen or
    is in the spotlight, and interpreters (their booth is not the floor)."""
    return (
        member.profile.role in PUBLISHERS_IN_MODERATED_ROOMS
        or bool(member.profile.interpreter)
        or member.id in room.floor
        or member.state.screen
        or room.spotlight == member.id
    )


@dataclass(eq=False)
class Room:
    info: RoomInfo
    members: dict[str, Member] = field(default_factory=dict)
    # Participants a moderator gave the floor to (moderated rooms); it outlives their drops and resumes.
    floor: set[str] = field(default_factory=set)
    switching: bool = False  # a switch of media is being persisted
    spotlight: str | None = None  # who a moderator put on everyone's stage
    # Interpretation: the live interpreter of each channel (language -> peer id: one at most, by construction), and
    # whether the room had interpretation when last looked at (to announce a change).
    live: dict[str, str] = field(default_factory=dict)
    interpreted: bool = False

    @property
    def id(self) -> str:
        return self.info.id

    def roster(self) -> list[Member]:
        return [m for m in self.members.values() if not m.hidden]

    def others(self, member_id: str) -> list[Member]:
        return [m for m in self.members.values() if m.id != member_id and not m.hidden]

    def is_full(self) -> bool:
        return len(self.roster()) >= self.info.capacity

    def peers_for(self, receiver_id: str) -> list[PeerInfo]:
        return [m.seen_by(receiver_id) for m in self.others(receiver_id)]

    def peers_json_for(self, receiver_id: str) -> str:
        """`peers_for(receiver_id)` as a JSON array, from each member's cached entries (no model is built)."""
        return (
            "["
            + ",".join(
                m.peer_json(receiver_id < m.id)  # is_polite, inline: this runs for every peer of every welcome
                for m in self.members.values()
                if m.id != receiver_id and not m.hidden
            )
            + "]"
        )
