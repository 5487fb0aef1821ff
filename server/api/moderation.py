"""Moderating live sessions: mute and remove participants, and the moderators' action log."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from server import keys
from server.api import API, PREFIX
from server.api.breakouts import actor_of
from server.api.routing import json_model, optional_body, page_limit, path_uuid, read_body
from server.api.schemas import Body
from server.auth import Principal, banned
from signaling.audit import Actor, Change, chain_of, normalise
from signaling.audit_store import EntryFilter
from signaling.errors import InvalidArgument, PermissionDenied
from signaling.protocol import BreakoutStatus, PeerState, Sender
from signaling.service import CLOSE_REMOVED

_ACTION_CURSOR = re.compile(r"[0-9]{1,18}")  # a bigint id, in ASCII digits

# What the moderators' action log has always shown, now read from the audit log (docs/records.md): live moderation
# and breakouts. Each item's `details` is the entry's target and details in one object, as before.
MODERATOR_ACTION_KINDS = (
    "breakouts",
    "participant.mute",
    "participant.remove",
    "participant.ban",
    "participant.unban",
    "participant.floor_grant",
    "participant.floor_revoke",
    "participant.ask_unmute",
    "participant.give_floor",
    "lobby",
    "room.lock",
    "room.unlock",
    "room.mute_all",
    "room.lower_hands",
    "stage",
    "hand",
)


class MuteBody(Body):
    kind: Literal["audio", "video"] = "audio"


class Moderated(BaseModel):
    participant_id: uuid.UUID
    live: bool


class ModeratorAction(BaseModel):
    id: int
    actor_id: uuid.UUID | None
    actor_role: str
    action: str
    details: dict[str, Any]
    at: datetime


class ModeratorActionPage(BaseModel):
    items: list[ModeratorAction]
    next_cursor: str | None


async def _may_act_on(request: web.Request, actor_role: str, workshop_id: uuid.UUID, participant_id: uuid.UUID) -> None:
    """Moderators moderate participants and each other, never the organiser (the admin and organiser may)."""
    target = await request.app[keys.STORE].get_participant(workshop_id, participant_id)
    if target["role"] == "organiser" and actor_role not in ("admin", "organiser"):
        raise PermissionDenied("moderators cannot mute or remove the organiser")


async def _record(
    request: web.Request,
    actor: Actor,
    *,
    workshop_id: uuid.UUID,
    action: str,
    participant_id: uuid.UUID,
    details: dict[str, Any],
) -> None:
    store = request.app[keys.STORE]
    change = Change(workshop_id, actor, action, target={"participant_id": participant_id}, details=details)
    await store.audit.write_alone(store.pool, change)


def _participant_path(suffix: str) -> str:
    return f"{PREFIX}/workshops/{{workshop_id}}/participants/{{participant_id}}{suffix}"


@API.route(
    "POST",
    _participant_path("/mute"),
    summary="Mute a participant: the client is asked to mute and the room sees it muted (moderators).",
    body=MuteBody,
    response=Moderated,
    tags=("moderation",),
)
async def mute(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    actor = await actor_of(request, who, workshop_id)
    body = await read_body(request, MuteBody)
    await _may_act_on(request, actor.role, workshop_id, participant_id)
    sender = Sender(id=str(actor.id) if actor.id else None, display_name=actor.display_name)
    # A live change: recorded first (no mute goes unrecorded; while PostgreSQL is away it is refused), then applied.
    await _record(
        request,
        actor,
        workshop_id=workshop_id,
        action="participant.mute",
        participant_id=participant_id,
        details={"kind": body.kind},
    )
    live = await request.app[keys.COMMANDS].request_mute(str(workshop_id), str(participant_id), body.kind, sender)
    return json_model(Moderated(participant_id=participant_id, live=live))


class RemoveBody(Body):
    ban: bool = Field(
        False,
        description="Also ban: every token of the participant, old or minted later, is refused (403/4403 `banned`) "
        "until the organiser lifts the ban.",
    )
    reason: str | None = Field(
        None, max_length=500, description="Why (shown to the banned participant in the close reason; kept)."
    )


@API.route(
    "POST",
    _participant_path("/remove"),
    summary="Remove a participant from the workshop: tokens revoked, live session closed with 4403; with "
    '{"ban": true} also banned, so no token of theirs works again until the ban is lifted (moderators).',
    body=RemoveBody,
    response=Moderated,
    tags=("moderation",),
)
async def remove(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    actor = await actor_of(request, who, workshop_id)
    body = await optional_body(request, RemoveBody)
    if body.reason is not None and not body.ban:
        raise InvalidArgument("reason goes with a ban", details=[{"field": "reason", "message": "only with ban"}])
    await _may_act_on(request, actor.role, workshop_id, participant_id)
    store = request.app[keys.STORE]
    if body.ban:
        await store.ban_participant(workshop_id, participant_id, reason=body.reason, actor=actor)
        close_reason = banned(body.reason).message
    else:
        await store.revoke_participant(workshop_id, participant_id, actor=actor, action="participant.remove")
        close_reason = "removed by a moderator"
    live = await request.app[keys.COMMANDS].remove_participant(
        str(workshop_id),
        str(participant_id),
        close_code=CLOSE_REMOVED,
        reason=close_reason,
        by=str(actor.id) if actor.id else None,
    )
    return json_model(Moderated(participant_id=participant_id, live=live))


class FloorOut(BaseModel):
    participant_id: uuid.UUID
    granted: bool
    live: bool = Field(description="False when the participant is not connected (nothing changed).")


async def _floor(request: web.Request, who: Principal, granted: bool) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    actor = await actor_of(request, who, workshop_id)
    await request.app[keys.STORE].get_participant(workshop_id, participant_id)
    sender = Sender(id=str(actor.id) if actor.id else None, display_name=actor.display_name)
    action = "participant.floor_grant" if granted else "participant.floor_revoke"
    await _record(request, actor, workshop_id=workshop_id, action=action, participant_id=participant_id, details={})
    live = await request.app[keys.COMMANDS].set_floor(str(workshop_id), str(participant_id), granted, sender)
    return json_model(FloorOut(participant_id=participant_id, granted=granted, live=live))


@API.route(
    "POST",
    _participant_path("/floor"),
    summary="Give a participant the floor in a moderated sfu room: they may publish (moderators).",
    response=FloorOut,
    tags=("moderation",),
)
async def grant_floor(request: web.Request, who: Principal) -> web.Response:
    return await _floor(request, who, True)


@API.route(
    "DELETE",
    _participant_path("/floor"),
    summary="Take the floor back: the participant's feeds stop at once (moderators).",
    response=FloorOut,
    tags=("moderation",),
)
async def revoke_floor(request: web.Request, who: Principal) -> web.Response:
    return await _floor(request, who, False)


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/moderator-actions",
    summary="The moderators' action log of a workshop, oldest first (moderators).",
    response=ModeratorActionPage,
    paged=True,
    tags=("moderation",),
)
async def moderator_actions(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    await actor_of(request, who, workshop_id)
    limit = page_limit(request)
    cursor = request.query.get("cursor")
    if cursor and not _ACTION_CURSOR.fullmatch(cursor):
        raise InvalidArgument(
            "cursor is not valid", details=[{"field": "cursor", "message": "not a cursor from this API"}]
        )
    after = int(cursor) if cursor else None
    store = request.app[keys.STORE]
    entries = await store.audit.page(
        store.pool,
        chain_of(workshop_id),
        after_id=after,
        limit=limit + 1,
        where=EntryFilter(kinds=MODERATOR_ACTION_KINDS),
    )
    rows = entries
    items = [
        ModeratorAction(
            id=e.id,
            actor_id=e.actor.id,
            actor_role=e.actor.role,
            action=e.action,
            details={**normalise(e.target), **normalise(e.details)},
            at=e.at,
        )
        for e in entries[:limit]
    ]
    next_cursor = str(items[-1].id) if len(rows) > limit and items else None
    return json_model(ModeratorActionPage(items=items, next_cursor=next_cursor))


class PresentMember(BaseModel):
    id: str
    display_name: str
    country: str
    role: str
    connected: bool = Field(description="False while the member is within its resume grace period.")
    state: PeerState


class RoomPresence(BaseModel):
    room_id: str
    name: str
    kind: str
    members: list[PresentMember]
    recording_id: str | None = None


class WaitingHelp(BaseModel):
    participant_id: str
    display_name: str
    room_id: str
    room_name: str
    text: str | None
    at: datetime


class Presence(BaseModel):
    rooms: list[RoomPresence]
    breakout: BreakoutStatus | None
    help_requests: list[WaitingHelp] = Field(
        default_factory=list,
        description="Help requests still waiting for a moderator, oldest first (see `help_handled` in the protocol).",
    )


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/presence",
    summary="Who is in which room right now, live from signalling, and the help requests waiting (moderators).",
    response=Presence,
    tags=("moderation",),
)
async def presence(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    await actor_of(request, who, workshop_id)
    live = await request.app[keys.COMMANDS].presence(str(workshop_id))
    by_room: dict[str, list[PresentMember]] = {}
    for member in live.members:
        by_room.setdefault(member.room_id, []).append(
            PresentMember(
                id=member.id,
                display_name=member.display_name,
                country=member.country,
                role=member.role,
                connected=member.connected,
                state=member.state,
            )
        )
    rooms = []
    for room_id, members in by_room.items():
        room = live.rooms.get(room_id)
        if room is None:
            continue
        rooms.append(
            RoomPresence(
                room_id=room_id,
                name=room.info.name,
                kind=room.info.kind,
                members=sorted(members, key=lambda m: m.display_name),
                recording_id=room.recording_id,
            )
        )
    rooms.sort(key=lambda r: (r.kind != "plenary", r.name))
    waiting = [
        WaitingHelp(
            participant_id=r.participant_id,
            display_name=r.display_name,
            room_id=r.room_id,
            room_name=r.room_name,
            text=r.text,
            at=r.at,
        )
        for r in live.help
    ]
    return json_model(Presence(rooms=rooms, breakout=live.breakout, help_requests=waiting))
