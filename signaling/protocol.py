"""The WebSocket wire protocol, version 1: one pydantic model per message (see docs/protocol.md).

Pure: imports only the standard library and pydantic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

PeerId = Annotated[str, Field(min_length=1, max_length=64)]
RequestId = Annotated[str | int, Field(union_mode="left_to_right")] | None
Sdp = Annotated[str, Field(min_length=1)]


def negotiate(offered: list[int]) -> int | None:
    """The highest version both sides speak, or None."""
    common = set(offered) & set(SUPPORTED_VERSIONS)
    return max(common) if common else None


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: RequestId = None


class Hello(ClientMessage):
    type: Literal["hello"]
    protocol: list[int] = Field(min_length=1, max_length=16)
    token: str = Field(min_length=1, max_length=4096)
    resume: str | None = Field(None, max_length=256)


class IceCandidate(BaseModel):
    """An RTCIceCandidateInit; an empty `candidate` string means end of candidates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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


class Candidate(ClientMessage):
    type: Literal["candidate"]
    to: PeerId
    candidate: IceCandidate


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


AnyClientMessage = Annotated[
    Hello | Offer | Answer | Candidate | Leave | ChatSend | Update | LowerHand,
    Field(discriminator="type"),
]
CLIENT_MESSAGES: TypeAdapter[Any] = TypeAdapter(AnyClientMessage)
CLIENT_TYPES = frozenset({"hello", "offer", "answer", "candidate", "leave", "chat", "update", "lower_hand"})


# Server to client ---------------------------------------------------------------------------------


class ServerMessage(BaseModel):
    # `from` is a Python keyword: fields are named `from_` and written with their alias.
    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class PeerState(BaseModel):
    audio: bool = True
    video: bool = True
    screen: bool = False
    hand: bool = False


class PeerInfo(BaseModel):
    id: PeerId
    display_name: str
    country: str
    organisation: str = ""
    role: str
    polite: bool = Field(description="Whether the receiver is the polite side towards this peer.")
    state: PeerState
    reconnecting: bool = False


class SelfInfo(BaseModel):
    id: PeerId
    display_name: str
    country: str
    organisation: str = ""
    role: str
    state: PeerState


class RoomInfo(BaseModel):
    id: str
    workshop_id: str
    name: str
    kind: Literal["plenary", "breakout"]
    media: Literal["mesh", "sfu"]
    capacity: int


class IceServer(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Limits(BaseModel):
    max_message_bytes: int
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


class Welcome(ServerMessage):
    type: Literal["welcome"] = "welcome"
    protocol: int
    self_: SelfInfo = Field(alias="self")
    room: RoomInfo
    peers: list[PeerInfo]
    ice_servers: list[IceServer]
    resume: str
    resumed: bool = False
    limits: Limits
    chat: list[ChatMessage] = Field(default_factory=list, description="Recent chat history of the room.")
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


class Ack(ServerMessage):
    """Sent for a message that carried `request_id` and has no other reply."""

    type: Literal["ack"] = "ack"
    request_id: RequestId


class Error(ServerMessage):
    type: Literal["error"] = "error"
    code: str
    message: str
    request_id: RequestId = None


class Bye(ServerMessage):
    """The last message before the server closes a session on purpose."""

    type: Literal["bye"] = "bye"
    reason: str


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
    | Bye,
    Field(discriminator="type"),
]
SERVER_MESSAGES: TypeAdapter[Any] = TypeAdapter(AnyServerMessage)


def protocol_schema() -> dict[str, Any]:
    """The JSON schema of both directions, snapshotted by a test so that changes show in review."""
    return {
        "client": CLIENT_MESSAGES.json_schema(),
        "server": SERVER_MESSAGES.json_schema(mode="serialization", by_alias=True),
    }
