"""Admission over HTTP (the organiser page): the lobby, bans, and the room controls (docs/moderation.md)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints, model_validator

from server import keys
from server.api import API, PREFIX
from server.api.breakouts import actor_of
from server.api.paging import page_of, page_request
from server.api.routing import json_model, optional_body, path_uuid, read_body
from server.api.schemas import Body, Page, Participant
from server.api.workshops import require_member
from server.auth import Principal
from signaling.audit import Actor, Change
from signaling.errors import PermissionDenied
from signaling.lobby import AdmitSelector
from signaling.lobby_actions import LobbyActions
from signaling.lobby_store import ActorRef
from signaling.protocol import Knock, Sender

TAGS = ("admission",)
KnockId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _workshop_path(suffix: str) -> str:
    return f"{PREFIX}/workshops/{{workshop_id}}{suffix}"


def _ref(actor: Actor) -> ActorRef:
    return ActorRef(id=str(actor.id) if actor.id else None, role=actor.role, display_name=actor.display_name)


def _sender(actor: Actor) -> Sender:
    return Sender(id=str(actor.id) if actor.id else None, display_name=actor.display_name)


def _lobby(request: web.Request) -> LobbyActions:
    return request.app[keys.LOBBY_ACTIONS]


# The lobby ----------------------------------------------------------------------------------------


class LobbyView(BaseModel):
    lobby: Literal["off", "everyone", "unverified"]
    knocks: list[Knock] = Field(description="Pending knocks, oldest first.")


class AdmitBody(Body):
    knock_ids: list[KnockId] | None = Field(None, min_length=1, max_length=500)
    all: Literal[True] | None = None
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")

    @model_validator(mode="after")
    def _one_selector(self) -> AdmitBody:
        if sum(value is not None for value in (self.knock_ids, self.all, self.country)) != 1:
            raise ValueError("give exactly one of knock_ids, all or country")
        return self


class Admitted(BaseModel):
    admitted: int


class DenyBody(Body):
    message: str | None = Field(None, max_length=500, description="Shown to the person on the waiting page.")


class Decided(BaseModel):
    knock_id: str
    outcome: Literal["denied"]


@API.route(
    "GET",
    _workshop_path("/lobby"),
    summary="The workshop's lobby: its setting and who is waiting (moderators).",
    response=LobbyView,
    tags=TAGS,
)
async def get_lobby(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    await actor_of(request, who, workshop_id)
    workshop = await request.app[keys.STORE].get_workshop(workshop_id)
    return json_model(LobbyView(lobby=workshop["lobby"], knocks=await _lobby(request).knocks(str(workshop_id))))


@API.route(
    "POST",
    _workshop_path("/lobby/admit"),
    summary="Admit people waiting: exactly one of knock_ids, all or country (moderators).",
    body=AdmitBody,
    response=Admitted,
    tags=TAGS,
)
async def admit(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    actor = await actor_of(request, who, workshop_id)
    body = await read_body(request, AdmitBody)
    selector = AdmitSelector(knock_ids=body.knock_ids, all=body.all is True, country=body.country)
    count = await _lobby(request).admit(str(workshop_id), selector, _ref(actor))
    return json_model(Admitted(admitted=count))


@API.route(
    "POST",
    _workshop_path("/lobby/{knock_id}/deny"),
    summary="Deny one knock, with an optional message: the waiting socket gets `denied` and closes with 4405 "
    "(moderators).",
    body=DenyBody,
    response=Decided,
    tags=TAGS,
)
async def deny(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    actor = await actor_of(request, who, workshop_id)
    knock_id = path_uuid(request, "knock_id")
    body = await optional_body(request, DenyBody)
    await _lobby(request).deny(str(workshop_id), str(knock_id), _ref(actor), body.message)
    return json_model(Decided(knock_id=str(knock_id), outcome="denied"))


# Bans ---------------------------------------------------------------------------------------------


@API.route(
    "GET",
    _workshop_path("/bans"),
    summary="The workshop's banned participants (moderators).",
    response=Page[Participant],
    paged=True,
    tags=TAGS,
)
async def list_bans(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    await actor_of(request, who, workshop_id)
    limit, after = page_request(request)
    rows = await request.app[keys.STORE].list_bans(workshop_id, limit=limit + 1, after=after)
    return json_model(page_of(rows, limit, lambda r: Participant.model_validate(dict(r)).model_dump(mode="json")))


@API.route(
    "POST",
    _workshop_path("/participants/{participant_id}/unban"),
    summary="Lift a ban (admin, organiser). Tokens from before stay revoked: mint a new join link. Lifting no ban "
    "changes nothing.",
    response=Participant,
    tags=TAGS,
)
async def unban(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    require_member(who, workshop_id)
    if not who.manages(workshop_id):
        raise PermissionDenied("only the organiser may lift a ban")
    actor = await actor_of(request, who, workshop_id)
    store = request.app[keys.STORE]
    current = await store.get_participant(workshop_id, participant_id)
    if current["banned_at"] is None:
        return json_model(Participant.model_validate(dict(current)))  # nothing to lift: nothing is logged
    row = await store.unban_participant(workshop_id, participant_id, actor=actor)
    return json_model(Participant.model_validate(dict(row)))


# Room controls ------------------------------------------------------------------------------------


class MuteAllBody(Body):
    kind: Literal["audio", "video"] = "audio"


class RoomControlled(BaseModel):
    room_id: uuid.UUID
    affected: int = Field(description="How many people it changed (0 when the room is empty).")


class AskUnmuteBody(Body):
    kind: Literal["audio", "video"] = "audio"


class Asked(BaseModel):
    participant_id: uuid.UUID
    live: bool = Field(description="False when the participant is not connected (nothing was sent).")


class FloorGiven(BaseModel):
    participant_id: uuid.UUID
    live: bool
    how: Literal["floor", "unmute_request"] | None = Field(
        description="floor: an sfu room's floor (and an unmute request when muted); unmute_request: a mesh room."
    )


async def _room_call(request: web.Request, who: Principal) -> tuple[uuid.UUID, uuid.UUID, Actor]:
    workshop_id = path_uuid(request, "workshop_id")
    room_id = path_uuid(request, "room_id")
    actor = await actor_of(request, who, workshop_id)
    await request.app[keys.STORE].get_workshop_room(workshop_id, room_id)
    return workshop_id, room_id, actor


async def _record(
    request: web.Request,
    workshop_id: uuid.UUID,
    actor: Actor,
    action: str,
    target: dict[str, object],
    **details: object,
) -> None:
    """A live change: its audit entry first (none goes unrecorded; while PostgreSQL is away it is refused), then
    the change, as the moderation routes do."""
    store = request.app[keys.STORE]
    await store.audit.write_alone(store.pool, Change(workshop_id, actor, action, target=target, details=details))


@API.route(
    "POST",
    _workshop_path("/rooms/{room_id}/mute-all"),
    summary="Mute everyone in a live room but the presenters: moderators, the organiser, whoever holds the floor, "
    "shares a screen or is in the spotlight (moderators).",
    body=MuteAllBody,
    response=RoomControlled,
    tags=TAGS,
)
async def mute_all(request: web.Request, who: Principal) -> web.Response:
    workshop_id, room_id, actor = await _room_call(request, who)
    body = await optional_body(request, MuteAllBody)
    await _record(request, workshop_id, actor, "room.mute_all", {"room_id": str(room_id)}, kind=body.kind)
    count = await request.app[keys.COMMANDS].mute_room(str(workshop_id), str(room_id), body.kind, _sender(actor))
    return json_model(RoomControlled(room_id=room_id, affected=count))


@API.route(
    "POST",
    _workshop_path("/rooms/{room_id}/lower-hands"),
    summary="Lower every raised hand in a live room (moderators).",
    response=RoomControlled,
    tags=TAGS,
)
async def lower_hands(request: web.Request, who: Principal) -> web.Response:
    workshop_id, room_id, actor = await _room_call(request, who)
    await _record(request, workshop_id, actor, "room.lower_hands", {"room_id": str(room_id)})
    count = await request.app[keys.COMMANDS].lower_hands(str(workshop_id), str(room_id))
    return json_model(RoomControlled(room_id=room_id, affected=count))


async def _participant_call(request: web.Request, who: Principal) -> tuple[uuid.UUID, uuid.UUID, Actor]:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    actor = await actor_of(request, who, workshop_id)
    await request.app[keys.STORE].get_participant(workshop_id, participant_id)
    return workshop_id, participant_id, actor


@API.route(
    "POST",
    _workshop_path("/participants/{participant_id}/ask-unmute"),
    summary="Ask a participant to switch their microphone (or camera) on: a request only they can answer (moderators).",
    body=AskUnmuteBody,
    response=Asked,
    tags=TAGS,
)
async def ask_unmute(request: web.Request, who: Principal) -> web.Response:
    workshop_id, participant_id, actor = await _participant_call(request, who)
    body = await optional_body(request, AskUnmuteBody)
    target: dict[str, object] = {"participant_id": str(participant_id)}
    await _record(request, workshop_id, actor, "participant.ask_unmute", target, kind=body.kind)
    commands = request.app[keys.COMMANDS]
    live = await commands.request_unmute(str(workshop_id), str(participant_id), body.kind, _sender(actor))
    return json_model(Asked(participant_id=participant_id, live=live))


@API.route(
    "POST",
    _workshop_path("/participants/{participant_id}/give-floor"),
    summary="The hand queue's give the floor: their hand goes down; the floor in an sfu room, an unmute request "
    "in a mesh room (moderators).",
    response=FloorGiven,
    tags=TAGS,
)
async def give_floor(request: web.Request, who: Principal) -> web.Response:
    workshop_id, participant_id, actor = await _participant_call(request, who)
    await _record(request, workshop_id, actor, "participant.give_floor", {"participant_id": str(participant_id)})
    how = await request.app[keys.COMMANDS].hand_floor(str(workshop_id), str(participant_id), _sender(actor))
    return json_model(FloorGiven(participant_id=participant_id, live=how is not None, how=how))
