"""The WebSocket wire protocol, version 1: one pydantic model per message (see docs/protocol.md).

Pure: imports only the standard library and pydantic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, field_validator, model_validator

SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

PeerId = Annotated[str, Field(min_length=1, max_length=64)]
# Strict: the echo must be what was sent (lax mode would turn `true` into 1 and 1.0 into 1).
RequestId = Annotated[StrictStr | StrictInt, Field(union_mode="left_to_right")] | None
Sdp = Annotated[str, Field(min_length=1)]


def negotiate(offered: list[int]) -> int | None:
    """The highest version both sides speak, or None."""
    common = set(offered) & set(SUPPORTED_VERSIONS)
    return max(common) if common else None


class ClientMessage(BaseModel):
    # Strict: "yes" is not true and "3" is not 3; unknown fields are errors.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    request_id: RequestId = None


class Hello(ClientMessage):
    type: Literal["hello"]
    protocol: list[int] = Field(min_length=1, max_length=16)
    token: str = Field(min_length=1, max_length=4096)
    resume: str | None = Field(None, max_length=256)
    device: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="A random id the browser keeps (localStorage): a device admitted once is trusted afterwards "
        "by the `unverified` lobby.",
    )


class IceCandidate(BaseModel):
    """An RTCIceCandidateInit; an empty `candidate` string means end of candidates."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    candidate: str = Field(max_length=2048)
    sdpMid: str | None = Field(None, max_length=64)
    sdpMLineIndex: int | None = Field(None, ge=0, le=1024)
    usernameFragment: str | None = Field(None, max_length=256)


class Offer(ClientMessage):
    type: Literal["offer"]
    to: PeerId
    sdp: Sdp


class Answer(ClientMessage):
    type: Literal["answer"]
    to: PeerId
    sdp: Sdp


SFU = "sfu"  # the `to`/`from` of candidates exchanged with the SFU
PcName = Literal["publish:camera", "publish:screen", "publish:interpretation", "subscribe"]
Source = Literal["camera", "screen", "interpretation"]
# ISO 639-1 (or 639-2) lower-case code of a workshop language; `null` in `listen` is the floor ("original").
LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]


class Candidate(ClientMessage):
    """A trickled ICE candidate: to a peer (mesh rooms), or `to: "sfu"` with the connection it belongs to."""

    type: Literal["candidate"]
    to: PeerId
    candidate: IceCandidate
    pc: PcName | None = None


class Leave(ClientMessage):
    type: Literal["leave"]


class ChatSend(ClientMessage):
    type: Literal["chat"]
    text: str = Field(min_length=1, max_length=2000)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be blank")
        if "\x00" in value:  # PostgreSQL text cannot hold NUL
            raise ValueError("text must not contain NUL characters")
        return value


class Update(ClientMessage):
    """A change of one's own media or hand state; omitted fields keep their value."""

    type: Literal["update"]
    audio: bool | None = None
    video: bool | None = None
    screen: bool | None = None
    hand: bool | None = None


class LowerHand(ClientMessage):
    """A moderator lowers someone's raised hand."""

    type: Literal["lower_hand"]
    peer_id: PeerId


# Server to client ---------------------------------------------------------------------------------


class ServerMessage(BaseModel):
    # `from` is a Python keyword: fields are named `from_` and written with their alias.
    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class Publish(ClientMessage):
    """Publish one's camera (with microphone) or screen to the SFU: the offer of a send-only connection.

    Interpreters publish `interpretation`: their microphone only, into the channel they interpret into."""

    type: Literal["publish"]
    source: Source
    sdp: Sdp = Field(max_length=250_000)


class Unpublish(ClientMessage):
    type: Literal["unpublish"]
    feed_id: str = Field(min_length=1, max_length=100)


Quality = Literal["low", "medium", "high"]  # a simulcast layer: Janus substream 0, 1, 2


class WantedFeed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    feed_id: str = Field(min_length=1, max_length=100)
    audio: bool = True
    video: bool = True
    quality: Quality = Field("high", description="The simulcast layer to receive (ignored for feeds without layers).")


class Subscribe(ClientMessage):
    """The feeds this client wants to receive (replaces the previous set) on its one subscriber connection."""

    type: Literal["subscribe"]
    feeds: list[WantedFeed] = Field(max_length=500)


class SubscriptionAnswer(ClientMessage):
    type: Literal["subscription_answer"]
    sdp: Sdp = Field(max_length=250_000)


class GrantFloor(ClientMessage):
    """A moderator lets a participant publish in a `moderated` room."""

    type: Literal["grant_floor"]
    peer_id: PeerId


class RevokeFloor(ClientMessage):
    """A moderator takes the floor back: the participant's feeds stop."""

    type: Literal["revoke_floor"]
    peer_id: PeerId


REACTIONS = ("👍", "👏", "❤️", "😂", "😮", "🎉", "✋")
Reaction_ = Literal["👍", "👏", "❤️", "😂", "😮", "🎉", "✋"]


class SpotlightSet(ClientMessage):
    """A moderator puts someone on everyone's stage (null ends it)."""

    type: Literal["spotlight"]
    peer_id: PeerId | None


class React(ClientMessage):
    type: Literal["react"]
    emoji: Reaction_


class Listen(ClientMessage):
    """Choose the language channel one hears beside the floor (null: the original only)."""

    type: Literal["listen"]
    language: LanguageCode | None


class Interpret(ClientMessage):
    """An interpreter sets the direction of their pair (`into`) and whether they are the channel's live one."""

    type: Literal["interpret"]
    into: LanguageCode
    live: bool


class PeerState(BaseModel):
    audio: bool = True
    video: bool = True
    screen: bool = False
    hand: bool = False
    hand_raised_at: datetime | None = Field(None, description="When the hand went up (the hand queue's order).")


class InterpreterInfo(BaseModel):
    """An interpreter: their pair, the language they interpret into now, whether they are its live one."""

    languages: list[str]
    into: str | None
    live: bool


class PeerInfo(BaseModel):
    id: PeerId
    display_name: str
    country: str
    organisation: str = ""
    role: str
    polite: bool = Field(description="Whether the receiver is the polite side towards this peer.")
    state: PeerState
    reconnecting: bool = False
    may_publish: bool = Field(True, description="Whether this peer may publish in its room (sfu rooms).")
    interpreter: InterpreterInfo | None = Field(None, description="Set for interpreters: show a booth, not a tile.")


class SelfInfo(BaseModel):
    id: PeerId
    display_name: str
    country: str
    organisation: str = ""
    role: str
    state: PeerState
    may_publish: bool = Field(True, description="Whether one may publish in this room (sfu rooms).")
    interpreter: InterpreterInfo | None = Field(None, description="Set when one is an interpreter.")


MediaMode = Literal["mesh", "sfu"]
PublishingMode = Literal["open", "moderated"]


class RoomInfo(BaseModel):
    id: str
    workshop_id: str
    name: str
    kind: Literal["plenary", "breakout"]
    media: MediaMode
    capacity: int
    publishing: PublishingMode = Field(
        "open", description="open: everyone but observers may publish; moderated: moderators and those given the floor."
    )
    locked: bool = Field(False, description="Nobody new enters (moderators excepted): joiners wait in the lobby.")


class FeedInfo(BaseModel):
    """A published stream in an sfu room."""

    feed_id: str
    peer_id: PeerId
    source: Source
    audio: bool
    video: bool
    language: str | None = Field(None, description="The channel of an `interpretation` feed; null for the floor.")


class InterpretationChannel(BaseModel):
    language: str
    live_peer_id: PeerId | None = Field(description="The interpreter listeners of this channel hear, if any.")
    feed_id: str | None = Field(description="The live interpreter's feed, once published.")
    interpreters: list[PeerId] = Field(description="Interpreters in the room who can interpret into this language.")


class InterpretationState(BaseModel):
    """The interpretation of a room, as one member sees it."""

    room_id: str
    languages: list[str] = Field(description="The workshop's languages (the first is the floor's usual one).")
    channels: list[InterpretationChannel]
    listening: str | None = Field(description="The receiver's own channel (null: the original).")


class IceServer(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Limits(BaseModel):
    max_message_bytes: int
    max_sdp_message_bytes: int = Field(
        256 * 1024, description="The larger limit of publish and subscription_answer (SFU SDPs grow with the streams)."
    )
    rate_per_s: float
    rate_burst: int
    resume_grace_s: float
    chat_max_chars: int = 2000


class ChatMessage(ServerMessage):
    type: Literal["chat"] = "chat"
    id: int
    room_id: str
    from_: PeerId = Field(alias="from")
    display_name: str
    text: str
    sent_at: datetime


class BreakoutRoomInfo(BaseModel):
    id: str
    name: str


class BreakoutStatus(BaseModel):
    """The running breakout plan of the workshop, as every client sees it."""

    plan_id: str
    name: str
    strategy: str
    state: Literal["open", "closing"]
    ends_at: datetime | None = Field(description="Deadline; null when the breakouts run until closed.")
    remaining_s: float | None
    closes_at: datetime | None = Field(None, description="End of the closing countdown.")
    rooms: list[BreakoutRoomInfo]
    self_select_cap: int | None = None


class RecordingStatus(BaseModel):
    """A recording running in the room: consenting members send their media to `recorder_peer_id`."""

    recording_id: str
    recorder_peer_id: str
    consent_mode: Literal["explicit", "assumed"]
    started_at: datetime
    # A continuation (after a failover or a drain): the recording it continues, whose answers carry over.
    continues: str | None = None


KnockReason = Literal["lobby", "unverified", "locked"]


class Knock(BaseModel):
    """Someone waiting in the lobby, as moderators see them."""

    id: str
    participant_id: str
    display_name: str
    country: str
    organisation: str
    role: str
    room_id: str
    room_name: str = ""
    knocked_at: datetime
    reason: KnockReason
    link_used_elsewhere: bool = Field(
        description="The join link was used before from another device (or is in use right now)."
    )
    connected: bool = Field(description="False while the knocker's socket is away (the knock is kept for a while).")


AgendaAction = Literal["open_breakouts", "close_breakouts", "start_recording", "stop_recording"]


class AgendaNext(BaseModel):
    """The next automatic action of the workshop's agenda (moderators and the organiser see it)."""

    session_id: str
    title: str
    edge: Literal["start", "end"] = Field(description="The session's start or its end.")
    at: datetime = Field(description="When it fires (UTC).")
    actions: list[AgendaAction]
    held: bool = Field(description="A moderator holds the session: nothing fires until released.")


class AgendaNextMessage(ServerMessage):
    """To moderators and the organiser when the next automatic action of the agenda changes (or there is none)."""

    type: Literal["agenda_next"] = "agenda_next"
    next: AgendaNext | None


class Welcome(ServerMessage):
    type: Literal["welcome"] = "welcome"
    protocol: int
    self_: SelfInfo = Field(alias="self")
    room: RoomInfo
    peers: list[PeerInfo]
    ice_servers: list[IceServer]
    resume: str
    resumed: bool = False
    media_kept: bool = Field(
        False,
        description="A resume in the same server process: its SFU handles were kept, keep the media connections. "
        "False after a restart (resumed from PostgreSQL): publish and subscribe again.",
    )
    limits: Limits
    chat: list[ChatMessage] = Field(default_factory=list, description="Recent chat history of the room.")
    breakout: BreakoutStatus | None = Field(None, description="The running breakout plan, if any.")
    recording: RecordingStatus | None = Field(None, description="The recording running in this room, if any.")
    feeds: list[FeedInfo] = Field(default_factory=list, description="Published feeds of the room (sfu rooms).")
    sfu_available: bool = Field(True, description="False while the SFU is down (sfu rooms): wait for sfu_restored.")
    spotlight: PeerId | None = Field(None, description="Who a moderator put on everyone's stage, if anyone.")
    knocks: list[Knock] = Field(
        default_factory=list, description="Moderators and the organiser: the workshop's pending knocks."
    )
    agenda_next: AgendaNext | None = Field(
        None, description="Moderators and the organiser: the agenda's next automatic action, if any."
    )
    interpretation: InterpretationState | None = Field(
        None, description="The room's interpretation channels (null when the room has no interpretation)."
    )
    request_id: RequestId = None


class PeerJoined(ServerMessage):
    type: Literal["peer_joined"] = "peer_joined"
    peer: PeerInfo


class PeerLeft(ServerMessage):
    type: Literal["peer_left"] = "peer_left"
    peer_id: PeerId
    reason: str = "left"


class PeerReconnecting(ServerMessage):
    type: Literal["peer_reconnecting"] = "peer_reconnecting"
    peer_id: PeerId


class PeerResumed(ServerMessage):
    type: Literal["peer_resumed"] = "peer_resumed"
    peer_id: PeerId


class PeerUpdated(ServerMessage):
    type: Literal["peer_updated"] = "peer_updated"
    peer: PeerInfo


class RelayedOffer(ServerMessage):
    type: Literal["offer"] = "offer"
    from_: PeerId = Field(alias="from")
    sdp: str


class RelayedAnswer(ServerMessage):
    type: Literal["answer"] = "answer"
    from_: PeerId = Field(alias="from")
    sdp: str


class RelayedCandidate(ServerMessage):
    type: Literal["candidate"] = "candidate"
    from_: PeerId = Field(alias="from")
    candidate: IceCandidate
    pc: PcName | None = Field(None, description='With `from: "sfu"`: the connection the candidate belongs to.')


class Sender(BaseModel):
    id: str | None
    display_name: str


class Published(ServerMessage):
    type: Literal["published"] = "published"
    feed_id: str
    sdp: str
    request_id: RequestId = None


class SubscribedStream(BaseModel):
    mid: str
    feed_id: str
    kind: Literal["audio", "video"]
    quality: Quality | None = Field(
        None, description="Video: the simulcast layer served (the one asked for, or less past the per-viewer cap)."
    )


class Subscription(ServerMessage):
    """The SFU's offer for the subscriber connection; answer with `subscription_answer`.

    Sent in reply to `subscribe` (with its request_id) and unprompted when the SFU renegotiates
    (a subscribed feed went away). `sdp` is null when nothing changed."""

    type: Literal["subscription"] = "subscription"
    sdp: str | None
    streams: list[SubscribedStream]
    limited: bool = Field(
        False, description="The subscribe asked for more video than one viewer may receive: less was served."
    )
    request_id: RequestId = None


class FeedAdded(ServerMessage):
    type: Literal["feed_added"] = "feed_added"
    feed: FeedInfo


class FeedRemoved(ServerMessage):
    type: Literal["feed_removed"] = "feed_removed"
    feed_id: str
    peer_id: PeerId
    reason: str


class SfuUnavailable(ServerMessage):
    """The SFU went away: every feed and subscription of the room is gone until `sfu_restored`."""

    type: Literal["sfu_unavailable"] = "sfu_unavailable"
    reason: str


class SfuRestored(ServerMessage):
    """The SFU is back: publish and subscribe again (new connections)."""

    type: Literal["sfu_restored"] = "sfu_restored"


class RoomMediaChanged(ServerMessage):
    """The room switched between mesh and sfu: close the old connections and set up the new ones."""

    type: Literal["room_media_changed"] = "room_media_changed"
    room: RoomInfo
    peers: list[PeerInfo]
    feeds: list[FeedInfo]
    interpretation: InterpretationState | None = None


class Spotlight(ServerMessage):
    """Who is on everyone's stage now (null: each viewer's own choice again)."""

    type: Literal["spotlight"] = "spotlight"
    peer_id: PeerId | None
    by: Sender


class Reaction(ServerMessage):
    type: Literal["reaction"] = "reaction"
    peer_id: PeerId
    emoji: str


class RoomUpdated(ServerMessage):
    """The room was renamed, resized or changed who may publish (its media unchanged)."""

    type: Literal["room_updated"] = "room_updated"
    room: RoomInfo


class Interpretation(ServerMessage):
    """The room's interpretation changed (live interpreter, a channel's feed, interpreters, one's own channel)."""

    type: Literal["interpretation"] = "interpretation"
    room_id: str
    languages: list[str]
    channels: list[InterpretationChannel]
    listening: str | None


class Speaking(ServerMessage):
    type: Literal["speaking"] = "speaking"
    peer_id: PeerId
    speaking: bool


class Floor(ServerMessage):
    """To a participant: a moderator granted (or took back) the floor in a moderated room."""

    type: Literal["floor"] = "floor"
    granted: bool
    by: Sender


class Ack(ServerMessage):
    """Sent for a message that carried `request_id` and has no other reply."""

    type: Literal["ack"] = "ack"
    request_id: RequestId
    admitted: int | None = Field(
        None, exclude_if=lambda v: v is None, description="`admit`: how many knocks were admitted."
    )
    affected: int | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="`mute_all`, `lower_all_hands`: how many people it changed.",
    )


class Error(ServerMessage):
    type: Literal["error"] = "error"
    code: str
    message: str
    request_id: RequestId = None


class Bye(ServerMessage):
    """The last message before the server closes a session on purpose."""

    type: Literal["bye"] = "bye"
    reason: str
    reconnect: bool = Field(
        False, description="True when the server is restarting: reconnect with backoff and send `resume`."
    )


# Breakouts (protocol v1 additions) ----------------------------------------------------------------


class AskHelp(ClientMessage):
    """Ask the moderators for help in one's current room. Repeated asks coalesce."""

    type: Literal["ask_help"]
    text: str | None = Field(None, max_length=500)


class DismissHelp(ClientMessage):
    """A moderator marks someone's help request as handled: every moderator's queue drops it (`help_handled`)."""

    type: Literal["dismiss_help"]
    participant_id: PeerId


class ChooseRoom(ClientMessage):
    """Self-select breakouts: pick a room. Moderators may use it any time to visit a room."""

    type: Literal["choose_room"]
    room_id: str = Field(min_length=1, max_length=64)


class Consent(ClientMessage):
    """A participant's answer to a recording; sending it again changes it (withdrawing stops its tracks)."""

    type: Literal["consent"]
    recording_id: str = Field(min_length=1, max_length=64)
    granted: bool


class RecordingStarted(ServerMessage):
    type: Literal["recording_started"] = "recording_started"
    recording_id: str
    recorder_peer_id: str
    consent_mode: Literal["explicit", "assumed"]
    started_at: datetime
    continues: str | None = None


class RecordingStopped(ServerMessage):
    type: Literal["recording_stopped"] = "recording_stopped"
    recording_id: str


class RecordingProblem(ServerMessage):
    """To the workshop's moderators: a track of a running recording cannot be written (full disk, I/O
    error). The recording goes on with its other tracks and will be partial."""

    type: Literal["recording_problem"] = "recording_problem"
    recording_id: str
    room_id: str
    participant_id: str | None = None
    kind: Literal["audio", "video"] | None = None
    reason: str


class Moved(ServerMessage):
    type: Literal["moved"] = "moved"
    room: RoomInfo
    peers: list[PeerInfo]
    breakout: BreakoutStatus | None = None
    recording: RecordingStatus | None = None
    reason: str
    feeds: list[FeedInfo] = Field(default_factory=list)
    spotlight: PeerId | None = None
    interpretation: InterpretationState | None = None


class BreakoutsOpened(ServerMessage):
    type: Literal["breakouts_opened"] = "breakouts_opened"
    plan_id: str
    ends_at: datetime | None
    remaining_s: float | None
    breakout: BreakoutStatus


class BreakoutsUpdated(ServerMessage):
    """The deadline moved (extend)."""

    type: Literal["breakouts_updated"] = "breakouts_updated"
    plan_id: str
    ends_at: datetime | None
    remaining_s: float | None
    breakout: BreakoutStatus


class BreakoutsClosing(ServerMessage):
    type: Literal["breakouts_closing"] = "breakouts_closing"
    plan_id: str
    seconds: float
    closes_at: datetime


class BreakoutsClosed(ServerMessage):
    type: Literal["breakouts_closed"] = "breakouts_closed"
    plan_id: str


class Broadcast(ServerMessage):
    type: Literal["broadcast"] = "broadcast"
    text: str
    from_: Sender = Field(alias="from")
    sent_at: datetime


class HelpRequested(ServerMessage):
    type: Literal["help_requested"] = "help_requested"
    room_id: str
    room_name: str
    participant_id: str
    display_name: str
    text: str | None = None
    at: datetime


HelpHandledReason = Literal["visited", "dismissed", "breakouts_closed", "moved", "left"]


class HelpHandled(ServerMessage):
    """A help request stopped waiting (to moderators): a moderator came into its room (`visited`) or dismissed it,
    the breakouts closed, or the asker moved to another room or left the workshop."""

    type: Literal["help_handled"] = "help_handled"
    participant_id: str
    room_id: str
    reason: HelpHandledReason
    by: Sender | None = Field(None, description="The moderator who visited or dismissed; null otherwise.")


class MuteRequested(ServerMessage):
    """A moderator asks this client to mute; the server already shows it muted to the room."""

    type: Literal["mute_requested"] = "mute_requested"
    kind: Literal["audio", "video"]
    by: Sender


# Admission and room controls (protocol v1 additions) -------------------------------------------------


class Admit(ClientMessage):
    """A moderator lets people in from the lobby: exactly one of `knock_ids`, `all` or `country`."""

    type: Literal["admit"]
    knock_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, min_length=1, max_length=500
    )
    all: Literal[True] | None = None
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")

    @model_validator(mode="after")
    def _one_selector(self) -> Admit:
        chosen = [name for name in ("knock_ids", "all", "country") if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of knock_ids, all or country")
        return self


class Deny(ClientMessage):
    type: Literal["deny"]
    knock_id: str = Field(min_length=1, max_length=64)
    message: str | None = Field(None, max_length=500)


class LockRoom(ClientMessage):
    """A moderator locks (or unlocks) the room they are in."""

    type: Literal["lock_room"]
    locked: bool


class MuteAll(ClientMessage):
    """A moderator mutes everyone in their room but the presenters."""

    type: Literal["mute_all"]
    kind: Literal["audio", "video"] = "audio"


class AskUnmute(ClientMessage):
    """A moderator asks someone to switch their microphone (or camera) on; only they can."""

    type: Literal["ask_unmute"]
    peer_id: PeerId
    kind: Literal["audio", "video"] = "audio"


class LowerAllHands(ClientMessage):
    type: Literal["lower_all_hands"]


class GiveFloor(ClientMessage):
    """The hand queue's "give the floor": the floor in sfu rooms, an unmute request in mesh rooms."""

    type: Literal["give_floor"]
    peer_id: PeerId


class LobbyWorkshop(BaseModel):
    id: str
    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str


class LobbyParticipant(BaseModel):
    id: str
    display_name: str
    country: str
    organisation: str
    role: str


class Lobby(ServerMessage):
    """Instead of `welcome`: wait until a moderator admits (then `welcome` follows on this socket) or denies."""

    type: Literal["lobby"] = "lobby"
    workshop: LobbyWorkshop
    participant: LobbyParticipant
    room_id: str
    knock_id: str
    reason: KnockReason
    waiting_since: datetime
    request_id: RequestId = None


class Denied(ServerMessage):
    """A moderator denied entry; the socket closes with 4405 next."""

    type: Literal["denied"] = "denied"
    message: str | None


class KnockMessage(ServerMessage):
    """To moderators and the organiser: a new knock, or news about one (same id: replace it)."""

    type: Literal["knock"] = "knock"
    knock: Knock


class KnockWithdrawn(ServerMessage):
    type: Literal["knock_withdrawn"] = "knock_withdrawn"
    knock_id: str
    participant_id: str
    outcome: Literal["admitted", "denied", "left"]
    by: str | None


class UnmuteRequested(ServerMessage):
    """A moderator asks this client to switch on its microphone (or camera). Nothing is switched on by the server."""

    type: Literal["unmute_requested"] = "unmute_requested"
    kind: Literal["audio", "video"]
    by: Sender


AnyClientMessage = Annotated[
    Hello
    | Offer
    | Answer
    | Candidate
    | Leave
    | ChatSend
    | Update
    | LowerHand
    | AskHelp
    | DismissHelp
    | ChooseRoom
    | Consent
    | Publish
    | Unpublish
    | Subscribe
    | SubscriptionAnswer
    | GrantFloor
    | RevokeFloor
    | SpotlightSet
    | React
    | Admit
    | Deny
    | LockRoom
    | MuteAll
    | AskUnmute
    | LowerAllHands
    | GiveFloor
    | Listen
    | Interpret,
    Field(discriminator="type"),
]
CLIENT_MESSAGES: TypeAdapter[Any] = TypeAdapter(AnyClientMessage)

AnyServerMessage = Annotated[
    Welcome
    | PeerJoined
    | PeerLeft
    | PeerReconnecting
    | PeerResumed
    | PeerUpdated
    | RelayedOffer
    | RelayedAnswer
    | RelayedCandidate
    | ChatMessage
    | Ack
    | Error
    | Bye
    | Moved
    | BreakoutsOpened
    | BreakoutsUpdated
    | BreakoutsClosing
    | BreakoutsClosed
    | Broadcast
    | HelpRequested
    | HelpHandled
    | MuteRequested
    | RecordingStarted
    | RecordingStopped
    | RecordingProblem
    | Published
    | Subscription
    | FeedAdded
    | FeedRemoved
    | SfuUnavailable
    | SfuRestored
    | RoomMediaChanged
    | RoomUpdated
    | Spotlight
    | Reaction
    | Speaking
    | Floor
    | Lobby
    | Denied
    | AgendaNextMessage
    | KnockMessage
    | KnockWithdrawn
    | UnmuteRequested
    | Interpretation,
    Field(discriminator="type"),
]
SERVER_MESSAGES: TypeAdapter[Any] = TypeAdapter(AnyServerMessage)


def protocol_schema() -> dict[str, Any]:
    """The JSON schema of both directions, snapshotted by a test so that changes show in review."""
    return {
        "client": CLIENT_MESSAGES.json_schema(),
        "server": SERVER_MESSAGES.json_schema(mode="serialization", by_alias=True),
    }
