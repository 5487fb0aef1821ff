"""Room operations: join, resume, leave, relay, chat, state. The single owner of who is where.

All roster changes happen in synchronous blocks (no `await` between the check and the change), so
the roster stays exact under concurrent joins and leaves; slow work (authentication, reading the
room assignment and chat history) is done before such a block and re-checked after it.
Relaying never touches PostgreSQL; attendance is handed to a background writer.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from signaling.audit import Actor, Change
from signaling.clock import Clock, SystemClock
from signaling.errors import (
    Conflict,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceError,
    Unavailable,
)
from signaling.grant_writer import GrantWriter
from signaling.lobby import AdmissionLobby, AdmitSelector, Waiter
from signaling.lobby_store import ActorRef
from signaling.protocol import (
    Ack,
    Admit,
    AgendaNext,
    AgendaNextMessage,
    Answer,
    AskHelp,
    AskUnmute,
    BreakoutStatus,
    Bye,
    Candidate,
    ChatMessage,
    ChatSend,
    ChooseRoom,
    Consent,
    Deny,
    DismissHelp,
    FeedAdded,
    FeedInfo,
    FeedRemoved,
    Floor,
    GiveFloor,
    GrantFloor,
    Hello,
    HelpHandled,
    HelpHandledReason,
    HelpRequested,
    IceServer,
    Interpret,
    Interpretation,
    InterpretationChannel,
    InterpretationState,
    InterpreterInfo,
    Knock,
    Limits,
    Listen,
    LockRoom,
    LowerAllHands,
    LowerHand,
    Moved,
    MuteAll,
    MuteRequested,
    Offer,
    PeerLeft,
    PeerReconnecting,
    PeerResumed,
    Publish,
    Published,
    React,
    Reaction,
    RecordingStatus,
    RelayedAnswer,
    RelayedCandidate,
    RelayedOffer,
    RevokeFloor,
    RoomInfo,
    RoomMediaChanged,
    RoomUpdated,
    Sender,
    ServerMessage,
    SfuRestored,
    SfuUnavailable,
    Speaking,
    Spotlight,
    SpotlightSet,
    Subscribe,
    SubscriptionAnswer,
    UnmuteRequested,
    Unpublish,
    Update,
    Welcome,
)
from signaling.resume_store import InMemoryResumeStore, ResumeGrant, ResumeStore
from signaling.rooms import Member, Outbox, Profile, Room, is_polite, is_presenter, may_publish
from signaling.stage_store import InMemoryStageStore, RoomStage, Stage, StageStore, StageWriter
from signaling.tasks import OwnedTasks
from signaling.telemetry import NoTelemetry, SignalingTelemetry

if TYPE_CHECKING:
    from signaling.sfu.bridge import SfuBridge

log = logging.getLogger(__name__)

# WebSocket close codes (docs/protocol.md); kept here because the service decides them.
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009  # sent by aiohttp itself for a frame over the hard cap
CLOSE_PROTOCOL = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_REMOVED = 4403
CLOSE_REPLACED = 4409
CLOSE_ROOM_FULL = 4429
CLOSE_INTERNAL = 1011
CLOSE_UNAVAILABLE = 4503  # the database is away: retry with backoff, the resume token stays good
CLOSE_SERVICE_RESTART = 1012  # drained: reconnect at once with the resume token, the place is kept

MODERATOR_ROLES = frozenset({"organiser", "moderator"})
HELP_COALESCE_S = 60.0
REACTION_INTERVAL_S = 0.8  # "about one a second": a little slack for clients that throttle at 1 s
JOIN_READ_ATTEMPTS = 3
EMPTY_PEERS = '"peers":[]'
# The JSON of PeerJoined and PeerUpdated up to their one field, `peer` (tests check it against the models).
PEER_JOINED_HEAD = '{"type":"peer_joined","peer":'
PEER_UPDATED_HEAD = '{"type":"peer_updated","peer":'


@dataclass(frozen=True)
class Identity:
    """Who a join token says is connecting, with their current profile from the roster."""

    participant_id: str
    workshop_id: str
    profile: Profile
    # The room the participant belongs in, when the directory read it together with the identity.
    room: RoomInfo | None = None
    # When the directory read it, in the directory's own terms (see Directory.still_valid).
    read_at: int = 0
    # The workshop's lobby setting (off, everyone, unverified).
    lobby: str = "off"


AttendanceEvent = Literal["join", "leave", "drop", "resume"]
VisitEnd = Literal["left", "moved", "dropped", "expired", "removed", "replaced", "shutdown", "crash"]
# How a visit ended, from the reason of its leave. A protocol violation is the client's own leaving; a socket that
# ends with no grace period to resume in is a drop that ended the visit at once.
_VISIT_ENDS: dict[str, VisitEnd] = {
    "left": "left",
    "protocol_violation": "left",
    "moved": "moved",
    "disconnected": "dropped",
    "timeout": "expired",
    "removed": "removed",
    "replaced": "replaced",
    "server_shutdown": "shutdown",
    "server_crash": "crash",
}


def visit_end(reason: str) -> VisitEnd:
    return _VISIT_ENDS.get(reason, "left")


@dataclass(frozen=True)
class Attendance:
    """One attendance event, with the visit it opens (join), changes (drop, resume) or closes (leave)."""

    workshop_id: str
    room_id: str
    participant_id: str
    event: AttendanceEvent
    at: datetime
    reason: str
    visit_id: str = ""
    room_name: str = ""


class Directory(Protocol):
    """What signalling needs from the rest of the server (implemented in server.directory)."""

    async def authenticate(self, token: str) -> Identity:
        """The identity behind a join token; raises Unauthenticated."""
        ...

    async def assigned_room(self, identity: Identity) -> RoomInfo:
        """The room this participant belongs in right now (the plenary unless a breakout says otherwise)."""
        ...

    def still_valid(self, identity: Identity) -> bool:
        """False when the participant (or where it belongs) changed after `identity` was read: revoked, edited,
        moved. Must not block: the service asks it in the step that admits the member."""
        ...


class BreakoutHooks(Protocol):
    """What the breakout coordinator does for messages that arrive over a member's socket."""

    async def choose_room(self, member: Member, room_id: str) -> None: ...


class RecordingHooks(Protocol):
    """What the recordings coordinator decides for signalling: consent, and who may send to a recorder."""

    async def consent(self, member: Member, message: Consent) -> None: ...

    def check_send(self, sender: Member, recorder: Member) -> None:
        """Raise PermissionDenied unless the sender's consent holds. Must not block: it is on the relay path."""
        ...

    def room_entered(self, room: RoomInfo) -> None:
        """A member entered the room (joined, resumed from another process, moved in): a recording's continuation
        waiting for the room's members starts. Must not block."""
        ...


class HubPorts:
    """The coordinators the hub calls back, declared in one place and plugged once by the composition root
    (server/app.py) before the first join, instead of each coordinator setting an attribute of the service.
    An unplugged port means the capability is off: its messages get `not_found`."""

    def __init__(self) -> None:
        self._breakouts: BreakoutHooks | None = None
        self._recordings: RecordingHooks | None = None

    @property
    def breakouts(self) -> BreakoutHooks | None:
        return self._breakouts

    @property
    def recordings(self) -> RecordingHooks | None:
        return self._recordings

    def plug_breakouts(self, hooks: BreakoutHooks) -> None:
        if self._breakouts is not None:
            raise RuntimeError("the breakouts port is plugged already")
        self._breakouts = hooks

    def plug_recordings(self, hooks: RecordingHooks) -> None:
        if self._recordings is not None:
            raise RuntimeError("the recordings port is plugged already")
        self._recordings = hooks


class RoomsPort(Protocol):
    """Persisting a room's media when the hub switches it by itself (a mesh room that grew too large), and a
    moderator's lock of the room they are in (logged in the same transaction)."""

    async def set_media(self, room: RoomInfo, media: str) -> RoomInfo: ...

    async def set_locked(
        self, room: RoomInfo, locked: bool, actor: ActorRef, present: Sequence[tuple[str, str | None]] = ()
    ) -> RoomInfo: ...


class AuditTrail(Protocol):
    """Where a moderator's live action (spotlight, floor, lowering a hand) is recorded before it is applied."""

    async def record(self, change: Change) -> None:
        """Write the entry; raises (e.g. `Unavailable`) when it cannot, and then the action is not applied."""
        ...


@dataclass(frozen=True)
class WorkshopInterpretation:
    """A workshop's languages (the floor's usual one first) and the participant ids of its interpreters."""

    languages: tuple[str, ...] = ()
    interpreters: frozenset[str] = frozenset()


class InterpretationPort(Protocol):
    """Reads a workshop's interpretation setup (docs/interpretation.md) when the first of its members joins."""

    async def interpretation(self, workshop_id: str) -> tuple[list[str], list[str]]:
        """(languages, interpreter participant ids)."""
        ...


class SignalingStore(Protocol):
    """Records that signalling keeps: attendance (queued, never dropped) and chat (persist, then publish)."""

    def record_attendance(self, event: Attendance) -> None:
        """Queue an event for the database. Must not block and must not drop it."""
        ...

    def attendance_congested(self) -> bool:
        """True while the attendance backlog is too long to take new joins (back-pressure: joins wait, the
        leaves and moves of those already in are still recorded)."""
        ...

    async def save_chat(
        self, *, workshop_id: str, room_id: str, participant_id: str, display_name: str, text: str
    ) -> ChatMessage: ...

    async def recent_chat(self, room_id: str, limit: int) -> list[ChatMessage]: ...


@dataclass(frozen=True)
class SignalingConfig:
    max_message_bytes: int = 64 * 1024
    max_sdp_message_bytes: int = 256 * 1024
    rate_per_s: float = 50.0
    rate_burst: int = 200
    resume_grace_s: float = 30.0
    chat_history: int = 50
    ice_servers: Callable[[str], list[IceServer]] = field(default=lambda _pid: [])
    # A mesh room growing past this many people switches to sfu by itself (0: never; needs an SFU).
    mesh_max: int = 0

    def limits(self) -> Limits:
        return Limits(
            max_message_bytes=self.max_message_bytes,
            max_sdp_message_bytes=self.max_sdp_message_bytes,
            rate_per_s=self.rate_per_s,
            rate_burst=self.rate_burst,
            resume_grace_s=self.resume_grace_s,
        )


def encode(message: ServerMessage) -> str:
    return message.model_dump_json(exclude_none=False)


class SignalingService:
    """Every room and member of this process. One instance per application, owned by its cleanup context."""

    def __init__(
        self,
        directory: Directory,
        store: SignalingStore,
        config: SignalingConfig,
        *,
        sfu: SfuBridge | None = None,
        rooms_port: RoomsPort | None = None,
        telemetry: SignalingTelemetry | None = None,
        clock: Clock | None = None,
        lobby: AdmissionLobby | None = None,
        audit: AuditTrail | None = None,
        ports: HubPorts | None = None,
        resume_store: ResumeStore | None = None,
        interpretation: InterpretationPort | None = None,
        stage_store: StageStore | None = None,
    ) -> None:
        self.directory = directory
        self.ports = ports if ports is not None else HubPorts()
        self.clock: Clock = clock or SystemClock()
        self.audit = audit
        self.store = store
        self.config = config
        self.telemetry: SignalingTelemetry = telemetry or NoTelemetry()
        self.rooms: dict[str, Room] = {}
        self.members: dict[str, Member] = {}
        self._grace: dict[str, asyncio.TimerHandle] = {}
        self._detached_at: dict[str, datetime] = {}
        self._closed = False
        self._recording: dict[str, RecordingStatus] = {}
        self._breakout: dict[str, BreakoutStatus] = {}
        # The agenda's next automatic action per workshop (server.agenda keeps it), shown to moderators.
        self._agenda_next: dict[str, AgendaNext] = {}
        # Help requests waiting for a moderator, by workshop, then by the asker's participant id.
        self._help: dict[str, dict[str, HelpRequested]] = {}
        self._reacted: dict[str, float] = {}
        # Recent chat of each live room, so that joining a room people are in reads no database.
        self._chat: dict[str, deque[ChatMessage]] = {}
        # Interpretation setup per workshop: read once per process (interpretation_port), then kept current by the
        # API (interpretation_changed).
        self.interpretation_port = interpretation
        self._interp: dict[str, WorkshopInterpretation] = {}
        self.sfu = sfu
        self.rooms_port = rooms_port
        self._tasks = OwnedTasks("signalling", expected=(ServiceError,))
        # Every member's place as a resume grant, written in the background (docs/scaling.md, "Durable resume"),
        # and the participants whose grant a hello is taking right now.
        self.resume_store: ResumeStore = resume_store if resume_store is not None else InMemoryResumeStore(self.clock)
        self.grants = GrantWriter(self.resume_store, grace_s=config.resume_grace_s)
        self._resuming: set[str] = set()
        # The floor, spotlights and help requests of each workshop, written in the background so that a new owner
        # (or this node restarted) reads them back (signaling/stage_store.py); read once per workshop (`_load_stage`),
        # the rooms not live yet keep what was read until they are (`_restored`), and what was read about people not
        # back yet ends with their resume grant (`_stage_expiry`).
        self.stage = StageWriter(stage_store if stage_store is not None else InMemoryStageStore())
        self._stage_loads: dict[str, asyncio.Task[None]] = {}
        self._restored: dict[str, tuple[str, RoomStage]] = {}
        self._stage_expiry: dict[tuple[str, str], asyncio.TimerHandle] = {}
        if sfu is not None:
            sfu.bind(self)
        self.lobby = lobby
        self.audit = audit
        if lobby is not None:
            lobby.bind(self)

    # Joining --------------------------------------------------------------------------------------

    async def join(
        self, hello: Hello, version: int, outbox: Outbox, *, connection_id: str = "", admitted: bool = False
    ) -> Member | Waiter:
        """Admit a connection that said hello: resume its member, or add a new one to its room, or (a workshop with
        a lobby, a locked room) put it in the lobby: the Waiter's decision says when to join again with
        `admitted=True`.

        `connection_id` names the connection in the record (the consent ledger says which one answered)."""
        began = time.monotonic()
        joined = await self._join(hello, version, outbox, connection_id=connection_id, admitted=admitted)
        if isinstance(joined, Waiter):
            return joined
        member, resumed = joined
        self.telemetry.joined(seconds=time.monotonic() - began, resumed=resumed)
        log.info(
            "%s %s in room %s",
            "resumed" if resumed else "joined",
            member.id,
            member.room_id,
            extra={"participant_id": member.id, "workshop_id": member.workshop_id, "room_id": member.room_id},
        )
        return member

    def start(self) -> None:
        """Start the writer of resume grants (and its sweep of the grants other processes left), before the first
        join; it would start with the first change anyway."""
        self.grants.start()

    async def _join(
        self, hello: Hello, version: int, outbox: Outbox, *, connection_id: str, admitted: bool
    ) -> tuple[Member, bool] | Waiter:
        claimed: list[str] = []  # the participant whose grant this hello is taking (see _take_grant)
        taken: list[ResumeGrant] = []
        try:
            return await self._admit(
                hello, version, outbox, connection_id=connection_id, admitted=admitted, claimed=claimed, taken=taken
            )
        except BaseException:
            if taken:  # taken, then not resumed after all: the place stays for the next try
                self.grants.put(taken[0])
            raise
        finally:
            for pid in claimed:
                self._resuming.discard(pid)

    async def _take_grant(self, pid: str, token: str, claimed: list[str]) -> ResumeGrant | None:
        """Take the participant's durable grant (a place this process does not hold in memory: kept by a process
        that stopped or died). Once only: a second hello with the token while the first is taking it is refused."""
        if pid in self._resuming:
            raise Conflict("this place is being resumed by another connection")
        self._resuming.add(pid)
        claimed.append(pid)
        return await self.resume_store.take(pid, token)

    async def _admit(
        self,
        hello: Hello,
        version: int,
        outbox: Outbox,
        *,
        connection_id: str,
        admitted: bool,
        claimed: list[str],
        taken: list[ResumeGrant],
    ) -> tuple[Member, bool] | Waiter:
        # What was read may change while reading the rest (a revocation, a move): then read again.
        grant: ResumeGrant | None = None
        for _attempt in range(JOIN_READ_ATTEMPTS):
            identity = await self.directory.authenticate(hello.token)
            pid = identity.participant_id
            # Before any grant is taken: what is read back keeps the entries of those whose grant holds.
            await self._load_stage(identity.workshop_id)
            existing = self.members.get(pid)
            if existing is not None and hello.resume and self._resume_matches(existing, hello.resume):
                # Chat sent while the socket was down: the recent history comes again (clients dedupe by id).
                missed = await self._recent_chat(existing.room_id)
                if not self.directory.still_valid(identity):
                    continue
                if (
                    self.members.get(pid) is existing
                    and existing.resume_secret
                    and self._resume_matches(existing, hello.resume)
                ):
                    self._resume(existing, identity, outbox, version, hello, history=missed)
                    existing.connection_id = connection_id
                    return existing, True
            if (
                existing is None
                and hello.resume
                and not claimed
                and not self._closed
                and self.grants.enabled
                and not self.grants.discarding(pid)  # given up here: a grant still in the store is stale
            ):
                grant = await self._take_grant(pid, hello.resume, claimed)
                if grant is not None:
                    taken.append(grant)

            room_info = identity.room or await self.directory.assigned_room(identity)
            history = await self._recent_chat(room_info.id)
            await self._load_interpretation(identity.workshop_id)
            # A live room's info is the current one (room_changed keeps it so): its lock included.
            live = self.rooms.get(room_info.id)
            if live is not None:
                room_info = live.info
            knock = None
            if self.lobby is not None and not admitted and grant is None:  # a resume is not a new entry
                knock = await self.lobby.check(identity, room_info, hello.device)
            if self.directory.still_valid(identity):
                break
        else:
            raise Unavailable("the roster kept changing while joining; try again")
        if knock is not None and self.lobby is not None:
            if self._closed:
                raise Unavailable("the server is shutting down")
            return await self.lobby.knock(identity, room_info, hello, version, outbox, decision=knock)

        # Nothing below awaits: the roster check and change are one step (the check above included).
        if self._closed:
            raise Unavailable("the server is shutting down")
        if grant is not None:
            member = self._resume_granted(
                grant,
                identity,
                room_info=room_info,
                outbox=outbox,
                version=version,
                hello=hello,
                history=history,
                connection_id=connection_id,
            )
            taken.clear()
            return member, True
        if self.store.attendance_congested():
            # Back-pressure: a join that could not be recorded is refused (the client retries); resumes, leaves
            # and moves of the people already in are still queued, so the backlog stays bounded by who is in.
            raise Unavailable("attendance is not being written fast enough; try again shortly")
        replaced = self.members.get(pid)
        if replaced is not None:
            self._remove(replaced, reason="replaced", close=(CLOSE_REPLACED, "replaced by a newer connection"))
        room = self.rooms.get(room_info.id)
        if room is None:
            room = self._open_room(room_info)
            # Nobody could chat in the room between the read above and now: the history is complete.
            if self.config.chat_history > 0:
                self._chat[room.id] = deque(history, maxlen=self.config.chat_history)
        if room.is_full():
            raise LimitExceeded(f"room {room_info.name!r} is full ({room_info.capacity} people)")
        member = Member(
            id=pid,
            workshop_id=identity.workshop_id,
            profile=identity.profile,
            room_id=room.id,
            resume_secret=secrets.token_urlsafe(24),
            outbox=outbox,
            connection_id=connection_id,
        )
        member.may_publish = may_publish(member.profile.role, room.info, pid in room.floor)
        # Tell the others before the newcomer hears welcome: the newcomer's first offers must find
        # their targets already knowing it (per-connection queues keep this order).
        room.members[pid] = member
        self.members[pid] = member
        self._interp_member(member, room)
        self._peer_news(room, member, PEER_JOINED_HEAD, include_self=False)
        outbox.send(self._welcome(member, room, version, hello, history=history, resumed=False))
        if member.profile.interpreter or not room.interpreted:
            self._interp_sync(room)
        self._attend(member, "join", "joined")
        self.grants.put(self._grant(member))
        self._arrived(member, room.id)
        if self.lobby is not None:
            self.lobby.entered(pid, hello.device)
        self._maybe_grow_to_sfu(room)
        self._entered(room)
        return member, False

    async def _recent_chat(self, room_id: str) -> list[ChatMessage]:
        """From memory while the room is live (filled when a join opened it), else from PostgreSQL."""
        if self.config.chat_history <= 0:
            return []
        cached = self._chat.get(room_id)
        if cached is not None:
            return list(cached)
        return await self.store.recent_chat(room_id, self.config.chat_history)

    def _resume_matches(self, member: Member, token: str) -> bool:
        # As bytes: compare_digest refuses str with non-ASCII characters (a resume token never has any).
        # The token of the last welcome, or the one before it (that welcome may never have arrived).
        current = secrets.compare_digest(token.encode(), self._resume_token(member).encode())
        previous = member.previous_resume_token is not None and secrets.compare_digest(
            token.encode(), member.previous_resume_token.encode()
        )
        return current or previous

    @staticmethod
    def _resume_token(member: Member) -> str:
        return f"{member.id}.{member.resume_secret}"

    def _resume(
        self,
        member: Member,
        identity: Identity,
        outbox: Outbox,
        version: int,
        hello: Hello,
        *,
        history: list[ChatMessage],
    ) -> None:
        room = self.rooms[member.room_id]
        old = member.outbox
        if old is not None:
            old.send(encode(Bye(reason="replaced by a newer connection")))
            old.close(CLOSE_REPLACED, "replaced by a newer connection")
        handle = self._grace.pop(member.id, None)
        if handle is not None:
            handle.cancel()
        if self._detached_at.pop(member.id, None) is not None:
            self._attend(member, "resume", "resumed")
        interpreter_before = member.profile.interpreter
        member.profile = identity.profile
        member.may_publish = may_publish(member.profile.role, room.info, member.id in room.floor)
        member.outbox = outbox
        if member.profile.interpreter != interpreter_before:
            self._interp_sync(room)
        member.resume_secret = secrets.token_urlsafe(24)
        member.previous_resume_token = hello.resume  # what the client holds until the welcome below reaches it
        self._to_others(room, member, lambda _p: PeerResumed(peer_id=member.id))
        outbox.send(self._welcome(member, room, version, hello, history=history, resumed=True, media_kept=True))
        self.grants.put(self._grant(member))  # the new token

    def _resume_granted(
        self,
        grant: ResumeGrant,
        identity: Identity,
        *,
        room_info: RoomInfo,
        outbox: Outbox,
        version: int,
        hello: Hello,
        history: list[ChatMessage],
        connection_id: str,
    ) -> Member:
        """Rebuild a member this process never had from its grant: its room (where it belongs now), media state and
        hand, and its attendance visit, which goes on (a drop, not a leave and a new join). Its place was held, so
        the room's capacity is not checked again."""
        pid = identity.participant_id
        replaced = self.members.get(pid)
        if replaced is not None:  # a new join that came in while this hello was taking the grant
            self._remove(replaced, reason="replaced", close=(CLOSE_REPLACED, "replaced by a newer connection"))
        room = self.rooms.get(room_info.id)
        if room is None:
            room = self._open_room(room_info)
            if self.config.chat_history > 0:
                self._chat[room.id] = deque(history, maxlen=self.config.chat_history)
        member = Member(
            id=pid,
            workshop_id=identity.workshop_id,
            profile=identity.profile,
            room_id=room.id,
            resume_secret=secrets.token_urlsafe(24),
            previous_resume_token=hello.resume,  # what the client holds until the welcome below reaches it
            state=grant.state,
            outbox=outbox,
            visit_id=grant.visit_id,
            connection_id=connection_id,
        )
        member.may_publish = may_publish(member.profile.role, room.info, pid in room.floor)
        room.members[pid] = member
        self.members[pid] = member
        # Nobody here knew the member (this process never had it): the room learns who it is, then that it is back.
        self._peer_news(room, member, PEER_JOINED_HEAD, include_self=False)
        self._to_others(room, member, lambda _p: PeerResumed(peer_id=pid))
        outbox.send(self._welcome(member, room, version, hello, history=history, resumed=True))
        if grant.room_id == room.id:
            if grant.detached_at is None and grant.node_alive_at is not None:
                # It was connected when its process died: the socket dropped when that process was last alive.
                self._attend(member, "drop", "server_crash", at=grant.node_alive_at)
            self._attend(member, "resume", "resumed")
        else:
            # Where it belongs changed while it was away (breakouts opened or closed): the old visit ends when it was
            # last there, and a new one begins here.
            self.store.record_attendance(
                Attendance(
                    workshop_id=member.workshop_id,
                    room_id=grant.room_id,
                    participant_id=pid,
                    event="leave",
                    at=grant.detached_at or grant.node_alive_at or self.clock.now(),
                    reason="moved",
                    visit_id=grant.visit_id,
                )
            )
            self._attend(member, "join", "resumed")
            self._arrived(member, room.id)  # somewhere new (a resume in place is no arrival: requests there wait)
        self.grants.put(self._grant(member))
        if self.lobby is not None:
            self.lobby.entered(pid, hello.device)
        self._maybe_grow_to_sfu(room)
        self._entered(room)
        return member

    def _grant(self, member: Member) -> ResumeGrant:
        """The member's place as it is now (dropped when its socket is down)."""
        return ResumeGrant.of(
            member,
            self._resume_token(member),
            previous=member.previous_resume_token,
            detached_at=self._detached_at.get(member.id),
        )

    def _welcome(
        self,
        member: Member,
        room: Room,
        version: int,
        hello: Hello,
        *,
        history: list[ChatMessage],
        resumed: bool,
        media_kept: bool = False,
    ) -> str:
        """`welcome`, encoded. The roster is most of it: it is spliced in from the members' cached entries
        (signaling.rooms.Member.peer_json) instead of being built and serialized per joiner."""
        text = encode(
            Welcome(
                protocol=version,
                self_=member.self_info(),
                room=room.info,
                peers=[],
                ice_servers=self.config.ice_servers(member.id),
                resume=self._resume_token(member),
                resumed=resumed,
                media_kept=media_kept,
                limits=self.config.limits(),
                chat=history,
                breakout=self.breakout_status(member.workshop_id),
                recording=self._recording.get(room.id),
                feeds=self._feeds(room),
                sfu_available=self._sfu_available(room),
                spotlight=room.spotlight,
                knocks=self._knocks_for(member),
                agenda_next=self._agenda_next.get(member.workshop_id)
                if member.profile.role in MODERATOR_ROLES
                else None,
                interpretation=self._interp_state(room, member),
                request_id=hello.request_id,
            )
        )
        # The first occurrence is the roster: only `type`, `protocol`, `self` and `room` come before it, and a
        # quote inside a JSON string is escaped, so no string value can hold this sequence.
        return text.replace(EMPTY_PEERS, '"peers":' + room.peers_json_for(member.id), 1)

    def _knocks_for(self, member: Member) -> list[Knock]:
        if self.lobby is None or member.profile.role not in MODERATOR_ROLES:
            return []
        return self.lobby.knocks_of(member.workshop_id)

    # Leaving --------------------------------------------------------------------------------------

    def leave(self, member: Member, reason: str = "left") -> None:
        """The member said `leave` (or broke the protocol): gone at once, no grace period. Leaving on purpose
        ends the member's admission: coming back knocks again where the workshop has a lobby."""
        if self.members.get(member.id) is member:
            self._remove(member, reason=reason, close=None)
            if self.lobby is not None:
                self.lobby.left_on_purpose(member.id)

    def detach(self, member: Member, outbox: Outbox) -> None:
        """The member's socket ended without `leave`: keep its place for the grace period."""
        if self.members.get(member.id) is not member or member.outbox is not outbox:
            return  # already replaced, resumed elsewhere, or removed
        member.outbox = None
        if self._closed or self.config.resume_grace_s <= 0:
            self._remove(member, reason="disconnected", close=None)
            return
        self._detached_at[member.id] = self._attend(member, "drop", "disconnected")
        self.grants.put(self._grant(member))
        room = self.rooms[member.room_id]
        self._to_others(room, member, lambda _p: PeerReconnecting(peer_id=member.id))
        loop = asyncio.get_running_loop()
        self._grace[member.id] = loop.call_later(self.config.resume_grace_s, self._expire, member)

    def _expire(self, member: Member) -> None:
        self._grace.pop(member.id, None)
        if self.members.get(member.id) is member and member.outbox is None:
            self._remove(member, reason="timeout", close=None)

    def _remove(self, member: Member, *, reason: str, close: tuple[int, str] | None, reconnect: bool = False) -> None:
        handle = self._grace.pop(member.id, None)
        if handle is not None:
            handle.cancel()
        left_at = self._detached_at.pop(member.id, None)
        if close is not None and member.outbox is not None:
            # Say why before closing: a client can show the reason, not just a close code.
            member.outbox.send(encode(Bye(reason=close[1], reconnect=reconnect)))
            member.outbox.close(*close)
        member.outbox = None
        if self.members.get(member.id) is member:
            del self.members[member.id]
        room = self.rooms.get(member.room_id)
        if room is not None and room.members.get(member.id) is member:
            del room.members[member.id]
            self._end_spotlight_of(room, member)
            if reason != "replaced" and member.id in room.floor:  # gone for good: the floor is not kept for them
                room.floor.discard(member.id)
                self._stage_changed(member.workshop_id)
            if self.sfu is not None:
                self.sfu.member_left(member.id, reason, kick=reason == "removed")
            if not member.hidden:
                self._to_others(room, member, lambda _p: PeerLeft(peer_id=member.id, reason=reason))
                self._tell_hidden(room, PeerLeft(peer_id=member.id, reason=reason))
            if not room.members:
                self._forget_room(room.id)
            elif member.profile.interpreter:
                self._interp_sync(room)
        if reason != "replaced" and not self._closed:  # replaced: the same person's newer connection takes over
            self._settle_help(member.workshop_id, "left", asker=member.id)
        self._attend(member, "leave", reason, at=left_at)
        if not member.hidden:
            self.grants.discard(member.id)

    def remove_participant(self, participant_id: str, *, close_code: int, reason: str, by: str | None = None) -> bool:
        """Close a participant's session on purpose (revoked, removed, banned), and their waiting socket if they
        knock. True when a session was open."""
        if self.lobby is not None:
            self.lobby.evict(participant_id, close=(close_code, reason), by=by)
        member = self.members.get(participant_id)
        if member is None:
            return False
        self._remove(member, reason="removed", close=(close_code, reason))
        return True

    def close_workshop(self, workshop_id: str) -> int:
        if self.lobby is not None:
            self.lobby.forget_workshop(workshop_id)
        gone = [m for m in self.members.values() if m.workshop_id == workshop_id]
        for member in gone:
            self._remove(member, reason="removed", close=(CLOSE_REMOVED, "workshop deleted"))
        self.forget_stage(workshop_id)  # its help requests too; its rows went with it
        return len(gone)

    def shutdown(self) -> None:
        """Drain: every member's place is kept as a resume grant, its visit left open as a drop, and every session
        is closed with 1012 after `bye` (`reconnect: true`): come back at once with the resume token, to this
        server once it is up again or to another node. Nobody's leave is recorded. Without a resume grace period
        (or for hidden members, the recorder) the sessions close with 1001 and the leaves are recorded."""
        self._closed = True
        for handle in self._stage_expiry.values():
            handle.cancel()
        self._stage_expiry.clear()
        if self.lobby is not None:
            self.lobby.shutdown()
        drained_at = self.clock.now()
        for member in list(self.members.values()):
            if self.grants.enabled and not member.hidden:
                self._drain(member, drained_at)
            else:
                self._remove(
                    member, reason="server_shutdown", close=(CLOSE_GOING_AWAY, "server restarting"), reconnect=True
                )

    def _drain(self, member: Member, at: datetime) -> None:
        """Write the member's place and let it go quietly: the others are being closed too."""
        handle = self._grace.pop(member.id, None)
        if handle is not None:
            handle.cancel()  # its grant, dated at its drop, expires on its own; no leave from this process
        if member.outbox is not None:
            self._detached_at[member.id] = self._attend(member, "drop", "server_restart", at=at)
            self.grants.put(self._grant(member))
            member.outbox.send(encode(Bye(reason="server restarting", reconnect=True)))
            member.outbox.close(CLOSE_SERVICE_RESTART, "server restarting")
            member.outbox = None
        self._detached_at.pop(member.id, None)
        if self.members.get(member.id) is member:
            del self.members[member.id]
        room = self.rooms.get(member.room_id)
        if room is not None and room.members.get(member.id) is member:
            del room.members[member.id]
            if self.sfu is not None:
                self.sfu.member_left(member.id, "server_shutdown")
            if not room.members:
                self._forget_room(room.id)

    # Breakouts ------------------------------------------------------------------------------------

    def set_breakout(self, workshop_id: str, status: BreakoutStatus | None) -> None:
        if status is None:
            self._breakout.pop(workshop_id, None)
            # Before anyone is moved home: the moderators read one `breakouts_closed` reason per request.
            self._settle_help(workshop_id, "breakouts_closed")
        else:
            self._breakout[workshop_id] = status

    def set_agenda_next(self, workshop_id: str, upcoming: AgendaNext | None) -> None:
        """The agenda's next automatic action changed: remember it for welcomes and tell the moderators."""
        if self._agenda_next.get(workshop_id) == upcoming:
            return
        if upcoming is None:
            self._agenda_next.pop(workshop_id, None)
        else:
            self._agenda_next[workshop_id] = upcoming
        self.send_to_workshop(workshop_id, AgendaNextMessage(next=upcoming), roles=MODERATOR_ROLES)

    def breakout_status(self, workshop_id: str) -> BreakoutStatus | None:
        """The running breakouts of a workshop, with the remaining time as of now."""
        status = self._breakout.get(workshop_id)
        if status is None or status.ends_at is None:
            return status
        remaining = max(0.0, (status.ends_at - datetime.now(UTC)).total_seconds())
        return status.model_copy(update={"remaining_s": remaining})

    def members_of(self, workshop_id: str) -> list[Member]:
        """Everyone of a workshop in signalling, connected or within their resume grace period."""
        return [m for m in self.members.values() if m.workshop_id == workshop_id and not m.hidden]

    def move(self, member: Member, target: RoomInfo, *, reason: str) -> None:
        """Move a member to another room of its workshop; the socket stays open.

        The old room sees peer_left, the new one peer_joined, and the member gets `moved` with the new
        room's roster, to which it offers as a newcomer does."""
        if self.members.get(member.id) is not member or member.room_id == target.id:
            return
        old = self.rooms.get(member.room_id)
        if old is not None and old.members.get(member.id) is member:
            del old.members[member.id]
            self._end_spotlight_of(old, member)
            if self.sfu is not None:
                self.sfu.member_left(member.id, "moved")
            self._to_others(old, member, lambda _p: PeerLeft(peer_id=member.id, reason="moved"))
            self._tell_hidden(old, PeerLeft(peer_id=member.id, reason="moved"))
            if not old.members:
                self._forget_room(old.id)
            elif member.profile.interpreter:
                self._interp_sync(old)
        self._attend(member, "leave", "moved")
        room = self.rooms.get(target.id)
        if room is None:
            room = self._open_room(target)
        member.room_id = room.id
        member.may_publish = may_publish(member.profile.role, room.info, member.id in room.floor)
        room.members[member.id] = member
        self._interp_member(member, room)
        self._peer_news(room, member, PEER_JOINED_HEAD, include_self=False)
        self._attend(member, "join", reason)
        self._settle_help(member.workshop_id, "moved", asker=member.id)
        self._arrived(member, room.id)
        if member.id in self._detached_at:
            # Moved while its socket is down: the new visit starts dropped, and an expiry ends it here. The drop
            # itself was counted in the old visit ("carried" drops do not count again).
            self._detached_at[member.id] = self._attend(member, "drop", "carried")
        if not member.hidden:
            self.grants.put(self._grant(member))  # the new room and visit
        if member.outbox is not None:
            moved = Moved(
                room=room.info,
                peers=room.peers_for(member.id),
                breakout=self.breakout_status(member.workshop_id),
                recording=self._recording.get(room.id),
                reason=reason,
                feeds=self._feeds(room),
                spotlight=room.spotlight,
                interpretation=self._interp_state(room, member),
            )
            member.outbox.send(encode(moved))
        if member.profile.interpreter or not room.interpreted:
            self._interp_sync(room)
        self._maybe_grow_to_sfu(room)
        if not member.hidden:
            self._entered(room)

    def _entered(self, room: Room) -> None:
        if (recordings := self.ports.recordings) is not None:
            recordings.room_entered(room.info)

    def _forget_room(self, room_id: str) -> None:
        room = self.rooms.pop(room_id, None)
        self._chat.pop(room_id, None)
        if room is not None and (room.floor or room.spotlight):
            self._stage_changed(room.info.workshop_id)
        if self.sfu is not None:
            self.sfu.room_ended(room_id)

    def room_changed(self, info: RoomInfo) -> None:
        """A room was changed over the API: the live room follows at once.

        A switch of media tells every member (`room_media_changed`) so that clients renegotiate without
        rejoining; a change of who may publish updates everyone's `may_publish` and stops the feeds of
        those who lost it."""
        room = self.rooms.get(info.id)
        if room is None:
            return
        old = room.info
        room.info = info
        if old.media == "sfu" and info.media != "sfu" and self.sfu is not None:
            self.sfu.room_ended(room.id)  # every feed ends; the members hear room_media_changed below
        if old.media == info.media:
            if old != info:  # renamed, resized, or who may publish changed: clients keep their connections
                self.send_to_room(room.id, RoomUpdated(room=info))
            self._refresh_may_publish(room)
            return
        self._refresh_may_publish(room)
        for member in room.roster():
            if member.outbox is not None:
                changed = RoomMediaChanged(
                    room=info,
                    peers=room.peers_for(member.id),
                    feeds=self._feeds(room),
                    interpretation=self._interp_state(room, member),
                )
                member.outbox.send(encode(changed))

    def _refresh_may_publish(self, room: Room) -> None:
        for member in room.roster():
            allowed = may_publish(member.profile.role, room.info, member.id in room.floor)
            if allowed != member.may_publish:
                member.may_publish = allowed
                self._publish_state(member)
                if not allowed and self.sfu is not None:
                    # The floor governs the floor's feeds; an interpreter's channel is theirs by their role.
                    stop = self.sfu.unpublish_sources(member.id, ("camera", "screen"), reason="floor_revoked")
                    self._tasks.spawn(stop, "sfu-unpublish")

    def _maybe_grow_to_sfu(self, room: Room) -> None:
        """A mesh room past `mesh_max` people switches to sfu (persisted, then announced as any switch)."""
        limit = self.config.mesh_max
        interpreted = self._has_interpretation(room)
        if (
            (not interpreted and (limit <= 0 or len(room.roster()) <= limit))
            or room.info.media != "mesh"
            or self.sfu is None
            or self.rooms_port is None
            or room.switching
        ):
            return
        room.switching = True
        port = self.rooms_port

        async def grow() -> None:
            try:
                info = await port.set_media(room.info, "sfu")
            finally:
                room.switching = False
            if interpreted:
                log.info("room %s has interpretation: switched to sfu", info.id)
            else:
                log.info("room %s grew past %d people: switched to sfu", info.id, limit)
            self.room_changed(info)

        self._tasks.spawn(grow(), "grow-to-sfu")

    async def drain_tasks(self) -> None:
        await self._tasks.cancel_all()
        await self.grants.close()  # after shutdown: the drained places are written before the pool closes
        await self.stage.close()  # and the last stages, as they were before the drain

    # The SFU --------------------------------------------------------------------------------------

    def _feeds(self, room: Room) -> list[FeedInfo]:
        if self.sfu is None or room.info.media != "sfu":
            return []
        return self.sfu.feeds(room.id)

    def _sfu_available(self, room: Room) -> bool:
        if room.info.media != "sfu":
            return True
        return self.sfu is not None and self.sfu.available_for(room.id)

    def _sfu_room(self, member: Member) -> tuple[Room, SfuBridge]:
        room = self.rooms.get(member.room_id)
        if room is None or room.info.media != "sfu":
            raise InvalidArgument("this room is a mesh: send offers to peers instead")
        if self.sfu is None:
            raise Unavailable("this server has no SFU (ROUNDTABLE_SFU=off or none could be started)")
        if not self.sfu.available_for(room.id):
            raise Unavailable("the SFU is not available right now; wait for sfu_restored")
        return room, self.sfu

    async def publish(self, member: Member, message: Publish) -> None:
        room, sfu = self._sfu_room(member)
        language: str | None = None
        if member.profile.interpreter:
            # The floor never carries an interpreter: their microphone goes into their channel only.
            if message.source != "interpretation":
                raise PermissionDenied(
                    'interpreters publish only their channel (source "interpretation"): '
                    "their camera and screen are not shown to the room"
                )
            language = member.into
        elif message.source == "interpretation":
            raise PermissionDenied("only interpreters publish interpretation")
        elif not member.may_publish:
            raise PermissionDenied(
                "you may not publish in this room"
                + (" until a moderator gives you the floor" if member.profile.role != "observer" else "")
            )
        feed_id, answer = await sfu.publish(
            member.id, member.profile.display_name, room.info, message.source, message.sdp, language=language
        )
        if member.outbox is not None:
            member.outbox.send(encode(Published(feed_id=feed_id, sdp=answer, request_id=message.request_id)))

    async def unpublish(self, member: Member, message: Unpublish) -> None:
        _room, sfu = self._sfu_room(member)
        await sfu.unpublish(member.id, message.feed_id)
        self._ack(member, message.request_id)

    async def subscribe(self, member: Member, message: Subscribe) -> None:
        room, sfu = self._sfu_room(member)
        reply = await sfu.subscribe(
            member.id, member.profile.display_name, room.info, list(message.feeds), message.request_id
        )
        if reply is not None and member.outbox is not None:  # None: it follows the answer to the last offer
            member.outbox.send(encode(reply))

    async def subscription_answer(self, member: Member, message: SubscriptionAnswer) -> None:
        _room, sfu = self._sfu_room(member)
        await sfu.subscription_answer(member.id, message.sdp)
        self._ack(member, message.request_id)

    async def trickle_to_sfu(self, member: Member, message: Candidate) -> None:
        _room, sfu = self._sfu_room(member)
        if message.pc is None:
            raise InvalidArgument('a candidate for the sfu needs "pc"')
        await sfu.trickle(member.id, message.pc, message.candidate.model_dump(exclude_none=True))
        self._ack(member, message.request_id)

    def set_floor(self, workshop_id: str, peer_id: str, granted: bool, by: Sender) -> bool:
        """Give (or take back) the floor in the participant's live room; False when they are not connected.
        The caller has checked that `by` moderates the workshop."""
        target = self.members.get(peer_id)
        room = self.rooms.get(target.room_id) if target is not None else None
        if target is None or target.hidden or target.workshop_id != workshop_id or room is None:
            return False
        if granted:
            room.floor.add(target.id)
        else:
            room.floor.discard(target.id)
        self._stage_changed(workshop_id)
        if target.outbox is not None:
            target.outbox.send(encode(Floor(granted=granted, by=by)))
        self._refresh_may_publish(room)
        return True

    async def grant_floor(self, member: Member, message: GrantFloor | RevokeFloor) -> None:
        if member.profile.role not in MODERATOR_ROLES:
            raise PermissionDenied("only moderators may give or take the floor")
        target = self.members.get(message.peer_id)
        if target is None or target.hidden or target.workshop_id != member.workshop_id:
            raise NotFound(f"peer {message.peer_id} is not in this workshop")
        granted = isinstance(message, GrantFloor)
        action = "participant.floor_grant" if granted else "participant.floor_revoke"
        await self._record(member, action, {"participant_id": message.peer_id}, {"room_id": target.room_id})
        by = Sender(id=member.id, display_name=member.profile.display_name)
        if not self.set_floor(member.workshop_id, message.peer_id, granted, by):
            raise NotFound(f"peer {message.peer_id} is not in this workshop")
        self._ack(member, message.request_id)

    async def _record(self, member: Member, action: str, target: dict[str, Any], details: dict[str, Any]) -> None:
        """Record a moderator's live action before applying it (the entry is the only trace it leaves)."""
        if self.audit is None:
            return
        actor = Actor(id=uuid.UUID(member.id), role=member.profile.role, display_name=member.profile.display_name)
        await self.audit.record(Change(uuid.UUID(member.workshop_id), actor, action, target, details))

    # Admission and room controls (docs/moderation.md) ------------------------------------------

    @staticmethod
    def _moderator(member: Member, what: str) -> ActorRef:
        if member.profile.role not in MODERATOR_ROLES:
            raise PermissionDenied(f"only moderators and the organiser may {what}")
        return ActorRef(id=member.id, role=member.profile.role, display_name=member.profile.display_name)

    async def admit(self, member: Member, message: Admit) -> None:
        actor = self._moderator(member, "admit people")
        if self.lobby is None:
            raise NotFound("this server has no lobby")
        selector = AdmitSelector(knock_ids=message.knock_ids, all=message.all is True, country=message.country)
        count = await self.lobby.admit(member.workshop_id, selector, actor)
        if message.request_id is not None and member.outbox is not None:
            member.outbox.send(encode(Ack(request_id=message.request_id, admitted=count)))

    async def deny(self, member: Member, message: Deny) -> None:
        actor = self._moderator(member, "deny entry")
        if self.lobby is None:
            raise NotFound(f"no pending knock {message.knock_id} in this workshop")
        await self.lobby.deny(member.workshop_id, message.knock_id, actor, message.message)
        self._ack(member, message.request_id)

    async def lock_room(self, member: Member, message: LockRoom) -> None:
        """Lock (or unlock) the sender's room: persisted with its log entry, then `room_updated` to the room."""
        actor = self._moderator(member, "lock a room")
        room = self.rooms.get(member.room_id)
        if room is None or self.rooms_port is None:
            raise NotFound("you are in no room")
        if room.info.locked != message.locked:
            info = await self.rooms_port.set_locked(room.info, message.locked, actor, self.present_in(room.id))
            self.room_changed(info)
        self._ack(member, message.request_id)

    def present_in(self, room_id: str) -> list[tuple[str, str | None]]:
        """Who would knock to come back into this room were it locked: (participant id, the device they entered
        from). Moderators and the organiser never knock."""
        room = self.rooms.get(room_id)
        if room is None:
            return []
        device_of = self.lobby.device_of if self.lobby is not None else (lambda _pid: None)
        return [(m.id, device_of(m.id)) for m in room.roster() if m.profile.role not in MODERATOR_ROLES]

    async def mute_all(self, member: Member, message: MuteAll) -> None:
        """Mute everyone in the sender's room but the presenters (signaling.rooms.is_presenter)."""
        self._moderator(member, "mute everyone")
        room = self.rooms.get(member.room_id)
        if room is None:
            raise NotFound("you are in no room")
        by = Sender(id=member.id, display_name=member.profile.display_name)
        await self._record(member, "room.mute_all", {"room_id": room.id}, {"kind": message.kind})
        count = self.mute_room(room.id, message.kind, by)
        if message.request_id is not None and member.outbox is not None:
            member.outbox.send(encode(Ack(request_id=message.request_id, affected=count)))

    def mute_room(self, room_id: str, kind: Literal["audio", "video"], by: Sender) -> int:
        """Mute everyone of a live room who is not a presenter and is not muted already; how many."""
        room = self.rooms.get(room_id)
        if room is None:
            return 0
        targets = [m for m in room.roster() if not is_presenter(m, room) and getattr(m.state, kind)]
        for target in targets:
            self.request_mute(target.id, kind, by)
        return len(targets)

    async def ask_unmute(self, member: Member, message: AskUnmute) -> None:
        self._moderator(member, "ask someone to unmute")
        by = Sender(id=member.id, display_name=member.profile.display_name)
        if not self._connected_here(member.workshop_id, message.peer_id):
            raise NotFound(f"peer {message.peer_id} is not in this workshop")
        target = {"participant_id": message.peer_id}
        await self._record(member, "participant.ask_unmute", target, {"kind": message.kind})
        if not self.request_unmute(member.workshop_id, message.peer_id, message.kind, by):
            raise NotFound(f"peer {message.peer_id} is not in this workshop")
        self._ack(member, message.request_id)

    def _connected_here(self, workshop_id: str, peer_id: str) -> bool:
        target = self.members.get(peer_id)
        return target is not None and not target.hidden and target.workshop_id == workshop_id

    def request_unmute(self, workshop_id: str, peer_id: str, kind: Literal["audio", "video"], by: Sender) -> bool:
        """Ask a participant to switch on their microphone or camera. Only a request: their state is theirs to
        change (with `update`); nothing here or anywhere else in the server turns a device on."""
        target = self.members.get(peer_id)
        if target is None or target.hidden or target.workshop_id != workshop_id:
            return False
        if target.outbox is not None:
            target.outbox.send(encode(UnmuteRequested(kind=kind, by=by)))
        return True

    async def lower_all_hands(self, member: Member, message: LowerAllHands) -> None:
        self._moderator(member, "lower everyone's hand")
        await self._record(member, "room.lower_hands", {"room_id": member.room_id}, {})
        count = self.lower_hands(member.room_id)
        if message.request_id is not None and member.outbox is not None:
            member.outbox.send(encode(Ack(request_id=message.request_id, affected=count)))

    def lower_hands(self, room_id: str) -> int:
        room = self.rooms.get(room_id)
        if room is None:
            return 0
        raised = [m for m in room.roster() if m.state.hand]
        for target in raised:
            target.state = target.state.model_copy(update={"hand": False, "hand_raised_at": None})
            self._publish_state(target)
        return len(raised)

    async def give_floor(self, member: Member, message: GiveFloor) -> None:
        self._moderator(member, "give the floor")
        by = Sender(id=member.id, display_name=member.profile.display_name)
        if not self._connected_here(member.workshop_id, message.peer_id):
            raise NotFound(f"peer {message.peer_id} is not in this workshop")
        await self._record(member, "participant.give_floor", {"participant_id": message.peer_id}, {})
        if self.hand_floor(member.workshop_id, message.peer_id, by) is None:
            raise NotFound(f"peer {message.peer_id} is not in this workshop")
        self._ack(member, message.request_id)

    def hand_floor(self, workshop_id: str, peer_id: str, by: Sender) -> Literal["floor", "unmute_request"] | None:
        """The hand queue's "give the floor": their hand goes down; in an sfu room they get the floor (they may
        publish), in a mesh room (or when their microphone is off) they are asked to unmute. Never more than
        asked: None when they are not connected to this workshop."""
        target = self.members.get(peer_id)
        room = self.rooms.get(target.room_id) if target is not None else None
        if target is None or target.hidden or target.workshop_id != workshop_id or room is None:
            return None
        if target.state.hand:
            target.state = target.state.model_copy(update={"hand": False, "hand_raised_at": None})
            self._publish_state(target)
        how: Literal["floor", "unmute_request"] = "unmute_request"
        if room.info.media == "sfu":
            self.set_floor(workshop_id, peer_id, True, by)
            how = "floor"
        if not target.state.audio:
            self.request_unmute(workshop_id, peer_id, "audio", by)
        return how

    # The stage: spotlight and reactions ---------------------------------------------------------

    async def spotlight(self, member: Member, message: SpotlightSet) -> None:
        if member.profile.role not in MODERATOR_ROLES:
            raise PermissionDenied("only moderators may put someone in the spotlight")
        room = self.rooms.get(member.room_id)
        if room is None:
            raise NotFound("you are in no room")
        target = room.members.get(message.peer_id) if message.peer_id is not None else None
        if message.peer_id is not None and (target is None or target.hidden):
            raise NotFound(f"peer {message.peer_id} is not in your room")
        if room.spotlight != message.peer_id:
            await self._record(member, "stage.spotlight", {"participant_id": message.peer_id}, {"room_id": room.id})
            if self.rooms.get(room.id) is not room:
                raise NotFound("your room has closed")
            room.spotlight = message.peer_id
            self._stage_changed(room.info.workshop_id)
            by = Sender(id=member.id, display_name=member.profile.display_name)
            self.send_to_room(room.id, Spotlight(peer_id=message.peer_id, by=by))
        self._ack(member, message.request_id)

    def _end_spotlight_of(self, room: Room, member: Member) -> None:
        if room.spotlight == member.id:
            room.spotlight = None
            self._stage_changed(room.info.workshop_id)
            self.send_to_room(room.id, Spotlight(peer_id=None, by=Sender(id=None, display_name="")))

    # The stage in PostgreSQL: it outlives this process (signaling/stage_store.py) ---------------------

    async def _load_stage(self, workshop_id: str) -> None:
        """Read the workshop's stage back once, before its first member here comes in (a previous owner's, or this
        node's before a restart); concurrent joins wait for the same read."""
        loading = self._stage_loads.get(workshop_id)
        if loading is None:
            loading = asyncio.get_running_loop().create_task(self._read_stage(workshop_id), name="stage-load")
            self._stage_loads[workshop_id] = loading
            loading.add_done_callback(lambda task: self._stage_read(workshop_id, task))
        if loading.done() and not loading.cancelled() and loading.exception() is None:
            return
        try:
            await asyncio.shield(loading)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise Unavailable("the room's stage could not be read; try again") from exc

    def _stage_read(self, workshop_id: str, task: asyncio.Task[None]) -> None:
        # The exception is retrieved here; after a failure, the next join reads again.
        failed = task.cancelled() or task.exception() is not None
        if failed and self._stage_loads.get(workshop_id) is task:
            del self._stage_loads[workshop_id]

    async def _read_stage(self, workshop_id: str) -> None:
        stage = await self.stage.store.load(workshop_id)
        if self._stage_loads.get(workshop_id) is not asyncio.current_task():
            return  # forgotten meanwhile (the lease was lost)
        for restored in stage.rooms:
            live = self.rooms.get(restored.room_id)
            if live is None:
                self._restored[restored.room_id] = (workshop_id, restored)
            else:  # opened without the read (a recorder): what was read joins what is there
                live.floor |= restored.floor
                live.spotlight = live.spotlight or restored.spotlight
        waiting = self._help.setdefault(workshop_id, {})
        for request in stage.help:
            waiting.setdefault(request.participant_id, request)
        if not waiting:
            del self._help[workshop_id]
        loop = asyncio.get_running_loop()
        for pid, left_s in stage.left_s.items():
            if left_s is not None:
                key = (workshop_id, pid)
                old = self._stage_expiry.pop(key, None)
                if old is not None:
                    old.cancel()
                self._stage_expiry[key] = loop.call_later(max(0.0, left_s), self._expire_stage, workshop_id, pid)
        if stage.rooms or stage.help:
            log.info(
                "stage of workshop %s read back: %d room(s), %d help request(s)",
                workshop_id,
                len(stage.rooms),
                len(stage.help),
                extra={"workshop_id": workshop_id},
            )

    def _open_room(self, info: RoomInfo) -> Room:
        """A room comes to life here: with the floor and spotlight read back for it, if any."""
        room = self.rooms[info.id] = Room(info=info)
        restored = self._restored.pop(info.id, None)
        if restored is not None:
            room.floor = set(restored[1].floor)
            room.spotlight = restored[1].spotlight
        return room

    def _stage_changed(self, workshop_id: str) -> None:
        """The workshop's floor, a spotlight or its help requests changed: write its whole stage, in the background.
        Never before it was read back (that would erase it), never while draining (the drain empties the rooms)."""
        if self._closed or workshop_id not in self._stage_loads:
            return
        rooms = [
            RoomStage(r.id, frozenset(r.floor), r.spotlight)
            for r in self.rooms.values()
            if r.info.workshop_id == workshop_id and (r.floor or r.spotlight)
        ]
        rooms += [restored for wid, restored in self._restored.values() if wid == workshop_id]
        self.stage.put(Stage(workshop_id, tuple(rooms), tuple(self.help_requests(workshop_id))))

    def _expire_stage(self, workshop_id: str, pid: str) -> None:
        """The resume grant of someone whose stage entries were read back ran out: unless they came back, the floor,
        spotlight and help request they had end."""
        self._stage_expiry.pop((workshop_id, pid), None)
        changed = False
        for room_id, (wid, restored) in list(self._restored.items()):
            if wid == workshop_id and (pid in restored.floor or restored.spotlight == pid):
                kept = RoomStage(
                    room_id, restored.floor - {pid}, None if restored.spotlight == pid else restored.spotlight
                )
                if kept.floor or kept.spotlight:
                    self._restored[room_id] = (wid, kept)
                else:
                    del self._restored[room_id]
                changed = True
        member = self.members.get(pid)
        if member is None or member.workshop_id != workshop_id:
            for room in [r for r in self.rooms.values() if r.info.workshop_id == workshop_id]:
                if pid in room.floor:
                    room.floor.discard(pid)
                    changed = True
                if room.spotlight == pid:
                    room.spotlight = None
                    self.send_to_room(room.id, Spotlight(peer_id=None, by=Sender(id=None, display_name="")))
                    changed = True
            self._settle_help(workshop_id, "left", asker=pid)
        if changed:
            self._stage_changed(workshop_id)

    def forget_stage(self, workshop_id: str) -> None:
        """This node lost the workshop's lease (or the workshop was deleted): what it read back or kept of its stage
        is the new owner's now (and is read again should the workshop come back here)."""
        self._stage_loads.pop(workshop_id, None)  # a read in flight finds itself forgotten and applies nothing
        for room_id in [r for r, (wid, _s) in self._restored.items() if wid == workshop_id]:
            del self._restored[room_id]
        for key in [k for k in self._stage_expiry if k[0] == workshop_id]:
            self._stage_expiry.pop(key).cancel()
        self._help.pop(workshop_id, None)

    def react(self, member: Member, message: React) -> None:
        """An emoji over the sender's tile for the room; about one a second per person."""
        now = time.monotonic()
        last = self._reacted.get(member.id)
        if last is not None and now - last < REACTION_INTERVAL_S:
            raise RateLimited("one reaction a second at most")
        self._reacted[member.id] = now
        self.send_to_room(member.room_id, Reaction(peer_id=member.id, emoji=message.emoji))
        self._ack(member, message.request_id)

    # Interpretation (docs/interpretation.md) ------------------------------------------------------

    async def _load_interpretation(self, workshop_id: str) -> None:
        """Read the workshop's languages and interpreters once; the API keeps them current afterwards."""
        if self.interpretation_port is None or workshop_id in self._interp:
            return
        languages, interpreters = await self.interpretation_port.interpretation(workshop_id)
        self._interp.setdefault(workshop_id, WorkshopInterpretation(tuple(languages), frozenset(interpreters)))

    def interpretation_changed(self, workshop_id: str, languages: Sequence[str], interpreters: Sequence[str]) -> None:
        """The workshop's languages or its interpreters changed (over the API): live rooms follow at once."""
        self._interp[workshop_id] = WorkshopInterpretation(tuple(languages), frozenset(interpreters))
        for member in self.members_of(workshop_id):
            if member.listening is not None and member.listening not in languages:
                member.listening = None
        for room in [r for r in self.rooms.values() if r.info.workshop_id == workshop_id]:
            self._interp_sync(room)

    def interpretation_setup(self, workshop_id: str) -> WorkshopInterpretation | None:
        """What this process knows of a workshop's languages and interpreters (None: not read yet)."""
        return self._interp.get(workshop_id)

    def _has_interpretation(self, room: Room) -> bool:
        """The plenary of a workshop with languages and an interpreter; a breakout room with an interpreter in it."""
        setup = self._interp.get(room.info.workshop_id)
        if setup is None or not setup.languages:
            return False
        if room.info.kind == "plenary" and setup.interpreters:
            return True
        return any(m.profile.interpreter for m in room.roster())

    def is_interpreted(self, room_id: str) -> bool:
        room = self.rooms.get(room_id)
        return room is not None and self._has_interpretation(room)

    def _default_into(self, member: Member) -> str | None:
        pair = member.profile.interpreter
        if not pair:
            return None
        setup = self._interp.get(member.workshop_id)
        floor = setup.languages[0] if setup is not None and setup.languages else None
        return next((lang for lang in pair if lang != floor), pair[-1])

    def _interp_member(self, member: Member, room: Room) -> bool:
        """Bring the member's booth state up to date with its pair and the room; True when it changed."""
        pair = member.profile.interpreter
        if not pair:
            member.into = None
        elif member.into not in pair:
            member.into = self._default_into(member)
        info = (
            InterpreterInfo(
                languages=list(pair),
                into=member.into,
                live=member.into is not None and room.live.get(member.into) == member.id,
            )
            if pair
            else None
        )
        if info == member.interp:
            return False
        member.interp = info
        return True

    def _interp_state(self, room: Room, member: Member) -> InterpretationState | None:
        """The room's interpretation as `member` sees it; None when the room has none."""
        if not self._has_interpretation(room):
            return None
        setup = self._interp[room.info.workshop_id]
        feeds = {f.peer_id: f for f in self._feeds(room) if f.source == "interpretation"}
        interpreters = [m for m in room.roster() if m.profile.interpreter]
        channels = []
        for language in setup.languages:
            live = room.live.get(language)
            feed = feeds.get(live) if live is not None else None
            channels.append(
                InterpretationChannel(
                    language=language,
                    live_peer_id=live,
                    feed_id=feed.feed_id if feed is not None and feed.language == language else None,
                    interpreters=[m.id for m in interpreters if language in (m.profile.interpreter or ())],
                )
            )
        return InterpretationState(
            room_id=room.id, languages=list(setup.languages), channels=channels, listening=member.listening
        )

    def _interp_sync(self, room: Room) -> None:
        """Work the room's interpretation out again after a change and tell everyone what changed: the
        `interpretation` message to the room, `peer_updated` for each interpreter whose booth state changed, and
        the SFU re-filters who receives which channel."""
        if self.rooms.get(room.id) is not room:
            return
        interpreted = self._has_interpretation(room)
        was, room.interpreted = room.interpreted, interpreted
        for language, peer_id in list(room.live.items()):
            live = room.members.get(peer_id)
            if not interpreted or live is None or not live.profile.interpreter or live.into != language:
                del room.live[language]
        changed = [m for m in room.roster() if self._interp_member(m, room)]
        if not interpreted and not was:
            return
        self._send_interpretation(room)
        for member in changed:
            self._publish_state(member)
        if self.sfu is not None:
            self.sfu.refilter(room.id)
        if interpreted:
            self._maybe_grow_to_sfu(room)

    def _send_interpretation(self, room: Room, only: Member | None = None) -> None:
        """`interpretation` to the room (or one member); encoded once per channel listened to."""
        texts: dict[str | None, str] = {}
        for member in [only] if only is not None else room.roster():
            if member.outbox is None:
                continue
            text = texts.get(member.listening)
            if text is None:
                state = self._interp_state(room, member)
                message = (
                    Interpretation(**state.model_dump())
                    if state is not None
                    else Interpretation(room_id=room.id, languages=[], channels=[], listening=member.listening)
                )
                text = texts[member.listening] = encode(message)
            member.outbox.send(text)

    def sfu_may_receive(self, member_id: str, feed: FeedInfo) -> bool:
        """The SFU's filter: the floor goes to everyone; an interpretation feed only to the members listening to
        its channel, and only while its interpreter is that channel's live one."""
        if feed.source != "interpretation":
            return True
        member = self.members.get(member_id)
        room = self.rooms.get(member.room_id) if member is not None else None
        if member is None or room is None or feed.language is None:
            return False
        return member.listening == feed.language and room.live.get(feed.language) == feed.peer_id

    def listen(self, member: Member, message: Listen) -> None:
        """Choose the channel one hears (None: the original). Kept for the connection, across rooms."""
        setup = self._interp.get(member.workshop_id)
        languages = setup.languages if setup is not None else ()
        if message.language is not None and message.language not in languages:
            raise InvalidArgument(
                f"{message.language} is not a language of this workshop"
                + (f" ({', '.join(languages)})" if languages else " (it has none)")
            )
        changed = member.listening != message.language
        member.listening = message.language
        self._ack(member, message.request_id)
        room = self.rooms.get(member.room_id)
        if room is None or not self._has_interpretation(room):
            return
        self._send_interpretation(room, only=member)
        if changed and self.sfu is not None:
            self.sfu.refilter(room.id)

    def interpret(self, member: Member, message: Interpret) -> None:
        """An interpreter's booth: the direction of their pair, and going live (taking over the channel) or not."""
        pair = member.profile.interpreter
        if not pair:
            raise PermissionDenied("only interpreters may interpret")
        if message.into not in pair:
            raise InvalidArgument(f"you interpret between {' and '.join(pair)}: {message.into} is not one of them")
        room = self.rooms.get(member.room_id)
        if room is None or not self._has_interpretation(room):
            raise Conflict("this room has no interpretation")
        before = member.into
        if before is not None and before != message.into and room.live.get(before) == member.id:
            del room.live[before]  # the old channel has nobody live now
        member.into = message.into
        if message.live:
            room.live[message.into] = member.id  # the handover: whoever was live here is not any more
        elif room.live.get(message.into) == member.id:
            del room.live[message.into]
        if before != message.into and self.sfu is not None:
            self.sfu.set_language(member.id, message.into)
        self._ack(member, message.request_id)
        self._interp_sync(room)

    # What the SFU bridge tells the hub (signaling.sfu.bridge.SfuListener).

    def sfu_feed_added(self, room_id: str, feed: FeedInfo) -> None:
        self.send_to_room(room_id, FeedAdded(feed=feed))
        room = self.rooms.get(room_id)
        if feed.source == "interpretation" and room is not None:
            self._interp_sync(room)  # the channel's feed_id

    def sfu_feed_removed(self, room_id: str, feed: FeedInfo, reason: str) -> None:
        self.send_to_room(room_id, FeedRemoved(feed_id=feed.feed_id, peer_id=feed.peer_id, reason=reason))
        room = self.rooms.get(room_id)
        if feed.source == "interpretation" and room is not None and reason != "language_changed":
            self._interp_sync(room)

    def sfu_to_member(self, member_id: str, message: ServerMessage) -> None:
        member = self.members.get(member_id)
        if member is not None and member.outbox is not None:
            member.outbox.send(encode(message))

    def sfu_speaking(self, room_id: str, peer_id: str, speaking: bool) -> None:
        self.send_to_room(room_id, Speaking(peer_id=peer_id, speaking=speaking))

    def sfu_down(self, reason: str, room_ids: Collection[str] | None = None) -> None:
        for info in self.sfu_rooms():
            if room_ids is None or info.id in room_ids:
                self.send_to_room(info.id, SfuUnavailable(reason=reason))

    def sfu_up(self, room_ids: Collection[str] | None = None) -> None:
        for info in self.sfu_rooms():
            if room_ids is None or info.id in room_ids:
                self.send_to_room(info.id, SfuRestored())

    def sfu_rooms(self) -> list[RoomInfo]:
        return [room.info for room in self.rooms.values() if room.info.media == "sfu"]

    # Recordings -----------------------------------------------------------------------------------

    def recording_status(self, room_id: str) -> RecordingStatus | None:
        return self._recording.get(room_id)

    def set_recording(self, room_id: str, status: RecordingStatus | None) -> None:
        if status is None:
            self._recording.pop(room_id, None)
        else:
            self._recording[room_id] = status

    def add_hidden(self, member: Member, room_info: RoomInfo) -> None:
        """Put a hidden member (the recorder) into a room: it is in no roster and sees no presence."""
        member.hidden = True
        room = self.rooms.get(room_info.id)
        if room is None:
            room = self._open_room(room_info)
        member.room_id = room.id
        room.members[member.id] = member
        self.members[member.id] = member

    def remove_hidden(self, member: Member) -> None:
        if self.members.get(member.id) is member:
            self._remove(member, reason="recording_stopped", close=None)

    def send_to_room(self, room_id: str, message: ServerMessage) -> int:
        room = self.rooms.get(room_id)
        if room is None:
            return 0
        text = encode(message)
        receivers = [m for m in room.roster() if m.outbox is not None]
        for member in receivers:
            assert member.outbox is not None
            member.outbox.send(text)
        return len(receivers)

    async def consent(self, member: Member, message: Consent) -> None:
        recordings = self.ports.recordings
        if recordings is None:
            raise NotFound("no recording is running")
        await recordings.consent(member, message)
        self._ack(member, message.request_id)

    @staticmethod
    def _tell_hidden(room: Room, message: ServerMessage) -> None:
        """The recorder learns that someone left its room, so it can end their tracks at once."""
        for m in room.members.values():
            if m.hidden and m.outbox is not None:
                m.outbox.send(encode(message))

    def send_to_workshop(self, workshop_id: str, message: ServerMessage, *, roles: frozenset[str] | None = None) -> int:
        """One message, encoded once, to every connected member of a workshop (optionally by role)."""
        text = encode(message)
        sent = 0
        for member in self.members_of(workshop_id):
            if member.outbox is not None and (roles is None or member.profile.role in roles):
                member.outbox.send(text)
                sent += 1
        return sent

    def ask_help(self, member: Member, message: AskHelp) -> None:
        """Notify the workshop's moderators. The request waits until it is handled (`_settle_help`); asks
        repeated within a minute of a waiting one coalesce into it, later ones remind the moderators."""
        now = datetime.now(UTC)
        waiting = self._help.setdefault(member.workshop_id, {})
        pending = waiting.get(member.id)
        if pending is None or (now - pending.at).total_seconds() >= HELP_COALESCE_S:
            room = self.rooms.get(member.room_id)
            request = HelpRequested(
                room_id=member.room_id,
                room_name=room.info.name if room else "",
                participant_id=member.id,
                display_name=member.profile.display_name,
                text=message.text,
                at=now,
            )
            waiting[member.id] = request
            self._stage_changed(member.workshop_id)
            self.send_to_workshop(member.workshop_id, request, roles=MODERATOR_ROLES)
        self._ack(member, message.request_id)

    def dismiss_help(self, member: Member, message: DismissHelp) -> None:
        """A moderator clears a help request for every moderator. Idempotent: one already handled is acked."""
        if member.profile.role not in MODERATOR_ROLES:
            raise PermissionDenied("only moderators may dismiss help requests")
        by = Sender(id=member.id, display_name=member.profile.display_name)
        self._settle_help(member.workshop_id, "dismissed", asker=message.participant_id, by=by)
        self._ack(member, message.request_id)

    def help_requests(self, workshop_id: str) -> list[HelpRequested]:
        """The help requests of a workshop still waiting for a moderator, oldest first."""
        return sorted(self._help.get(workshop_id, {}).values(), key=lambda r: r.at)

    def _arrived(self, member: Member, room_id: str) -> None:
        """A moderator who comes into a room (joining or moving) handles the help requests waiting there."""
        if member.profile.role in MODERATOR_ROLES and not member.hidden:
            by = Sender(id=member.id, display_name=member.profile.display_name)
            self._settle_help(member.workshop_id, "visited", room_id=room_id, by=by)

    def _settle_help(
        self,
        workshop_id: str,
        reason: HelpHandledReason,
        *,
        asker: str | None = None,
        room_id: str | None = None,
        by: Sender | None = None,
    ) -> None:
        """Drop the waiting requests that match (all of the workshop's without a filter) and tell the moderators."""
        waiting = self._help.get(workshop_id)
        if not waiting:
            return
        for pid, request in list(waiting.items()):
            if (asker is None or pid == asker) and (room_id is None or request.room_id == room_id):
                del waiting[pid]
                self._stage_changed(workshop_id)
                handled = HelpHandled(participant_id=pid, room_id=request.room_id, reason=reason, by=by)
                self.send_to_workshop(workshop_id, handled, roles=MODERATOR_ROLES)
        if not waiting:
            del self._help[workshop_id]

    async def choose_room(self, member: Member, message: ChooseRoom) -> None:
        breakouts = self.ports.breakouts
        if breakouts is None:
            raise NotFound("no breakouts are running")
        await breakouts.choose_room(member, message.room_id)
        self._ack(member, message.request_id)

    def request_mute(self, participant_id: str, kind: Literal["audio", "video"], by: Sender) -> bool:
        """A moderator mutes someone: the client is asked to mute and the room sees the state at once."""
        member = self.members.get(participant_id)
        if member is None or member.hidden:
            return False
        member.state = member.state.model_copy(update={kind: False})
        if member.outbox is not None:
            member.outbox.send(encode(MuteRequested(kind=kind, by=by)))
        self._publish_state(member)
        room = self.rooms.get(member.room_id)
        if self.sfu is not None and room is not None and room.info.media == "sfu":
            # In an sfu room the feed stops at the server, whatever the sender's client does.
            self._tasks.spawn(self.sfu.moderate(member.id, kind, True), "sfu-moderate")
        return True

    # Profile changes from the API -----------------------------------------------------------------

    def participant_changed(self, participant_id: str, profile: Profile) -> None:
        member = self.members.get(participant_id)
        if member is None:
            return
        before = member.profile.interpreter
        member.profile = profile
        self._publish_state(member)
        room = self.rooms.get(member.room_id)
        if profile.interpreter == before or room is None:
            return
        if self.sfu is not None:
            # An interpreter is never on the floor; a former interpreter has no channel any more.
            sources = ("camera", "screen") if profile.interpreter else ("interpretation",)
            reason = "interpreter" if profile.interpreter else "removed"
            self._tasks.spawn(self.sfu.unpublish_sources(member.id, sources, reason=reason), "sfu-unpublish")
        self._interp_sync(room)

    # Messages from a member -----------------------------------------------------------------------

    def relay(self, sender: Member, message: Offer | Answer | Candidate) -> None:
        """Forward signalling to a peer in the sender's room, stamped with `from`. Never awaits."""
        if message.to == sender.id:
            raise InvalidArgument("cannot send to yourself")
        room = self.rooms.get(sender.room_id)
        if room is not None and room.info.media == "sfu" and isinstance(message, Offer | Answer):
            raise InvalidArgument("this room's media go through the SFU: use publish and subscribe")
        target = room.members.get(message.to) if room is not None else None
        if target is None:
            raise NotFound(f"peer {message.to} is not in your room")
        if target.outbox is None:
            raise NotFound(f"peer {message.to} is reconnecting")
        if target.hidden and (recordings := self.ports.recordings) is not None:
            recordings.check_send(sender, target)
        out: RelayedOffer | RelayedAnswer | RelayedCandidate
        if isinstance(message, Offer):
            out = RelayedOffer(from_=sender.id, sdp=message.sdp)
        elif isinstance(message, Answer):
            out = RelayedAnswer(from_=sender.id, sdp=message.sdp)
        else:
            out = RelayedCandidate(from_=sender.id, candidate=message.candidate)
        text = encode(out)
        target.outbox.send(text)
        self.telemetry.relayed(out.type, len(text))
        self._ack(sender, message.request_id)

    def update(self, member: Member, message: Update) -> None:
        changes = message.model_dump(include={"audio", "video", "screen", "hand"}, exclude_none=True)
        hand = changes.get("hand")
        if hand is True and not member.state.hand:
            changes["hand_raised_at"] = datetime.now(UTC)  # the hand queue's order: when it went up
        elif hand is False:
            changes["hand_raised_at"] = None
        if changes:
            member.state = member.state.model_copy(update=changes)
            self._publish_state(member)
            if self.sfu is not None:
                for kind in ("audio", "video"):
                    # Unmuting oneself, visibly to the room, lifts a moderator's block at the SFU.
                    if changes.get(kind) is True and self.sfu.is_moderated(member.id, kind):
                        self._tasks.spawn(self.sfu.moderate(member.id, kind, False), "sfu-unmoderate")
        self._ack(member, message.request_id)

    async def lower_hand(self, member: Member, message: LowerHand) -> None:
        # Permission first: otherwise not_found vs permission_denied tells anyone who is online elsewhere.
        if message.peer_id != member.id and member.profile.role not in MODERATOR_ROLES:
            raise PermissionDenied("only moderators may lower someone else's hand")
        target = self.members.get(message.peer_id)
        if target is None or target.workshop_id != member.workshop_id or target.hidden:
            raise NotFound(f"peer {message.peer_id} is not in this workshop")
        if target.state.hand:
            if target.id != member.id:
                await self._record(member, "hand.lower", {"participant_id": target.id}, {"room_id": target.room_id})
            target.state = target.state.model_copy(update={"hand": False, "hand_raised_at": None})
            self._publish_state(target)
        self._ack(member, message.request_id)

    async def chat(self, member: Member, message: ChatSend) -> None:
        """Persist, then publish to the room (the sender included: its copy carries the stored id)."""
        saved = await self.store.save_chat(
            workshop_id=member.workshop_id,
            room_id=member.room_id,
            participant_id=member.id,
            display_name=member.profile.display_name,
            text=message.text,
        )
        cached = self._chat.get(saved.room_id)
        if cached is not None:
            cached.append(saved)
        room = self.rooms.get(saved.room_id)
        if room is not None:
            text = encode(saved)
            for receiver in room.roster():
                if receiver.outbox is not None:
                    receiver.outbox.send(text)
        self._ack(member, message.request_id)

    # Fan-out --------------------------------------------------------------------------------------

    def _publish_state(self, member: Member) -> None:
        """peer_updated to the room, the member included (a moderator may have changed its state)."""
        room = self.rooms.get(member.room_id)
        if room is not None:
            self._peer_news(room, member, PEER_UPDATED_HEAD, include_self=True)
        if not member.hidden:
            self.grants.put(self._grant(member))  # coalesced: written in the background

    @staticmethod
    def _peer_news(room: Room, subject: Member, head: str, *, include_self: bool) -> None:
        """peer_joined or peer_updated about `subject`: each variant (polite or not) is the subject's cached roster
        entry in the message's envelope, so news costs no model and no encoding beyond the entry's, once per state."""
        texts = (head + subject.peer_json(False) + "}", head + subject.peer_json(True) + "}")
        for receiver in room.members.values():
            if receiver.hidden or receiver.outbox is None or (receiver is subject and not include_self):
                continue
            receiver.outbox.send(texts[receiver.id < subject.id])  # is_polite, inline: once per delivery

    def _to_others(self, room: Room, subject: Member, build: Callable[[bool], ServerMessage]) -> None:
        self._fan_out(room, subject, build, include_self=False)

    @staticmethod
    def _fan_out(room: Room, subject: Member, build: Callable[[bool], ServerMessage], *, include_self: bool) -> None:
        """Send news about `subject` to the room. A message differs between receivers only in
        `polite`, so it is encoded at most twice, whatever the room's size."""
        cache: dict[bool, str] = {}
        for receiver in room.members.values():
            if receiver.hidden or receiver.outbox is None or (receiver is subject and not include_self):
                continue
            polite = is_polite(receiver.id, subject.id)
            text = cache.get(polite)
            if text is None:
                text = cache[polite] = encode(build(polite))
            receiver.outbox.send(text)

    def _ack(self, member: Member, request_id: str | int | None) -> None:
        if request_id is not None and member.outbox is not None:
            member.outbox.send(encode(Ack(request_id=request_id)))

    def _attend(self, member: Member, event: AttendanceEvent, reason: str, at: datetime | None = None) -> datetime:
        """Record an attendance event of the member's current visit (a join opens a new one); returns its time."""
        when = at or self.clock.now()
        if member.hidden:
            return when
        if event == "join":
            member.visit_id = str(uuid.uuid4())
        room = self.rooms.get(member.room_id)
        self.store.record_attendance(
            Attendance(
                workshop_id=member.workshop_id,
                room_id=member.room_id,
                participant_id=member.id,
                event=event,
                at=when,
                reason=reason,
                visit_id=member.visit_id,
                room_name=room.info.name if room is not None else "",
            )
        )
        return when

    # Introspection (tests, metrics) ---------------------------------------------------------------

    def live_room(self, room_id: str) -> RoomInfo | None:
        """The room as signalling knows it while someone is in it; None when nobody is."""
        room = self.rooms.get(room_id)
        return room.info if room else None

    def roster(self, room_id: str) -> list[str]:
        room = self.rooms.get(room_id)
        return sorted(m.id for m in room.roster()) if room else []
