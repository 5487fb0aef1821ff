"""Workshops and their rooms."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import keys
from server.api import API, PREFIX
from server.api.paging import page_of, page_request
from server.api.routing import json_model, path_uuid, read_body
from server.api.schemas import Page, Room, RoomCreate, RoomPatch, Workshop, WorkshopCreate, WorkshopPatch
from server.auth import Principal
from signaling.audit import ADMIN, Actor
from signaling.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from signaling.rooms import room_info


def workshop_out(row: Any) -> Workshop:
    return Workshop.model_validate(dict(row))


def room_out(row: Any) -> Room:
    return Room.model_validate(dict(row))


def require_member(who: Principal, workshop_id: Any) -> None:
    """Another workshop's objects do not exist for this caller."""
    if not who.member_of(workshop_id):
        raise NotFound("workshop not found")


async def actor_for(request: web.Request, who: Principal) -> Actor:
    """The caller as the audit log records it: the admin, or a participant with its role and name now."""
    if who.is_admin or who.participant_id is None or who.workshop_id is None:
        return ADMIN
    row = await request.app[keys.STORE].get_participant(who.workshop_id, who.participant_id)
    return Actor(id=who.participant_id, role=row["role"], display_name=row["display_name"])


@API.route(
    "POST",
    f"{PREFIX}/workshops",
    summary="Create a workshop and its plenary room (admin).",
    body=WorkshopCreate,
    response=Workshop,
    status=201,
    tags=("workshops",),
)
async def create_workshop(request: web.Request, who: Principal) -> web.Response:
    if not who.is_admin:
        raise PermissionDenied("only the admin may create workshops")
    body = await read_body(request, WorkshopCreate)
    settings = request.app[keys.SETTINGS]
    data = body.model_dump(exclude={"plenary_capacity"})
    # With an SFU the plenary of a new workshop runs through it: a mesh cannot carry 60 people.
    row = await request.app[keys.STORE].create_workshop(
        data,
        plenary_capacity=body.plenary_capacity or settings.plenary_capacity,
        plenary_media="sfu" if keys.SFU in request.app else "mesh",
        actor=ADMIN,
    )
    return json_model(workshop_out(row), status=201)


@API.route(
    "GET",
    f"{PREFIX}/workshops",
    summary="List the workshops the caller may see (all for the admin, its own for a participant).",
    response=Page[Workshop],
    paged=True,
    tags=("workshops",),
)
async def list_workshops(request: web.Request, who: Principal) -> web.Response:
    limit, after = page_request(request)
    only = None if who.is_admin else who.workshop_id
    rows = await request.app[keys.STORE].list_workshops(limit=limit + 1, after=after, only=only)
    return json_model(page_of(rows, limit, lambda r: workshop_out(r).model_dump(mode="json")))


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}",
    summary="Read a workshop (any member).",
    response=Workshop,
    tags=("workshops",),
)
async def get_workshop(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    require_member(who, workshop_id)
    return json_model(workshop_out(await request.app[keys.STORE].get_workshop(workshop_id)))


@API.route(
    "PATCH",
    f"{PREFIX}/workshops/{{workshop_id}}",
    summary="Change a workshop (admin, organiser); a change of `languages` takes effect in live rooms at once.",
    body=WorkshopPatch,
    response=Workshop,
    errors=(409,),
    tags=("workshops",),
)
async def patch_workshop(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    require_member(who, workshop_id)
    if not who.manages(workshop_id):
        raise PermissionDenied("only the organiser may change the workshop")
    body = await read_body(request, WorkshopPatch)
    changes = body.model_dump(exclude_unset=True)
    for name in (
        "title",
        "timezone",
        "starts_at",
        "ends_at",
        "status",
        "recording_consent",
        "description",
        "lobby",
        "languages",
    ):
        if name in changes and changes[name] is None:
            raise InvalidArgument(f"{name} cannot be null", details=[{"field": name, "message": "not nullable"}])
    store = request.app[keys.STORE]
    current = await store.get_workshop(workshop_id)
    starts = changes.get("starts_at", current["starts_at"])
    ends = changes.get("ends_at", current["ends_at"])
    if ends <= starts:
        # Name the field the caller sent: moving only starts_at past the end is a starts_at error.
        field, message = ("ends_at", "before starts_at") if "ends_at" in changes else ("starts_at", "after ends_at")
        raise InvalidArgument("ends_at must be after starts_at", details=[{"field": field, "message": message}])
    row = await store.update_workshop(workshop_id, changes, actor=await actor_for(request, who))
    if "languages" in changes:
        await request.app[keys.COMMANDS].interpretation_changed(
            str(workshop_id), *await store.interpretation(workshop_id)
        )
    return json_model(workshop_out(row))


@API.route(
    "DELETE",
    f"{PREFIX}/workshops/{{workshop_id}}",
    summary="Delete a workshop with everything in it (admin).",
    status=204,
    tags=("workshops",),
)
async def delete_workshop(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    require_member(who, workshop_id)
    if not who.is_admin:
        raise PermissionDenied("only the admin may delete a workshop")
    store = request.app[keys.STORE]
    await store.get_workshop(workshop_id)
    # Recordings first: live ones are finished, then every file goes with the workshop's rows.
    recording_ids = await request.app[keys.RECORDING_ACTIONS].stop_workshop(workshop_id, ADMIN)
    await store.delete_workshop(workshop_id, actor=ADMIN)
    await request.app[keys.COMMANDS].close_workshop(str(workshop_id))
    await request.app[keys.RECORDINGS].delete_files(recording_ids)
    return web.Response(status=204)


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/rooms",
    summary="List a workshop's rooms (any member).",
    response=Page[Room],
    paged=True,
    tags=("rooms",),
)
async def list_rooms(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    require_member(who, workshop_id)
    store = request.app[keys.STORE]
    await store.get_workshop(workshop_id)
    limit, after = page_request(request)
    rows = await store.list_rooms(workshop_id, limit=limit + 1, after=after)
    return json_model(page_of(rows, limit, lambda r: room_out(r).model_dump(mode="json")))


def require_sfu_for(request: web.Request, media: str | None) -> None:
    """A room asking for sfu on a server without one says so clearly instead of quietly running as a mesh."""
    if media == "sfu" and keys.SFU not in request.app:
        raise InvalidArgument(
            "this server has no SFU (ROUNDTABLE_SFU=off, or Janus could not be started): rooms run as a mesh",
            details=[{"field": "media", "message": "no SFU on this server"}],
        )


def require_moderator(who: Principal, workshop_id: Any) -> None:
    require_member(who, workshop_id)
    if not who.moderates(workshop_id):
        raise PermissionDenied("only moderators and the organiser may manage rooms")


@API.route(
    "POST",
    f"{PREFIX}/workshops/{{workshop_id}}/rooms",
    summary="Create a breakout room (admin, organiser, moderator).",
    body=RoomCreate,
    response=Room,
    status=201,
    tags=("rooms",),
)
async def create_room(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    require_moderator(who, workshop_id)
    body = await read_body(request, RoomCreate)
    require_sfu_for(request, body.media)
    store = request.app[keys.STORE]
    await store.get_workshop(workshop_id)
    row = await store.create_room(
        workshop_id,
        name=body.name,
        kind="breakout",
        capacity=body.capacity or request.app[keys.SETTINGS].breakout_capacity,
        media=body.media,
        publishing=body.publishing,
        actor=await actor_for(request, who),
    )
    return json_model(room_out(row), status=201)


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/rooms/{{room_id}}",
    summary="Read a room (any member).",
    response=Room,
    tags=("rooms",),
)
async def get_room(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    room_id = path_uuid(request, "room_id")
    require_member(who, workshop_id)
    return json_model(room_out(await request.app[keys.STORE].get_workshop_room(workshop_id, room_id)))


@API.route(
    "PATCH",
    f"{PREFIX}/workshops/{{workshop_id}}/rooms/{{room_id}}",
    summary="Rename a room, change its capacity, switch its media (mesh/sfu), who may publish, or lock it "
    "(admin, organiser, moderator); live rooms follow at once.",
    body=RoomPatch,
    response=Room,
    errors=(409,),
    tags=("rooms",),
)
async def patch_room(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    room_id = path_uuid(request, "room_id")
    require_moderator(who, workshop_id)
    body = await read_body(request, RoomPatch)
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise InvalidArgument(f"{name} cannot be null", details=[{"field": name, "message": "not nullable"}])
    require_sfu_for(request, changes.get("media"))
    commands = request.app[keys.COMMANDS]
    if changes.get("media") == "mesh" and await commands.is_interpreted(str(workshop_id), str(room_id)):
        raise Conflict(
            "this room has interpretation, which runs through the SFU: it cannot be a mesh now",
            details=[{"field": "media", "message": "the room has interpretation"}],
        )
    live = await commands.live_room(str(workshop_id), str(room_id))
    locking = bool(changes.get("locked")) and live is not None and not live.locked
    present = await commands.present_in(str(workshop_id), str(room_id)) if locking else []
    row = await request.app[keys.STORE].update_room(
        workshop_id, room_id, changes, actor=await actor_for(request, who), present=present
    )
    await commands.room_changed(str(workshop_id), room_info(row))
    return json_model(room_out(row))


@API.route(
    "DELETE",
    f"{PREFIX}/workshops/{{workshop_id}}/rooms/{{room_id}}",
    summary="Delete a breakout room; its assignees fall back to the plenary (admin, organiser, moderator).",
    status=204,
    errors=(409,),
    tags=("rooms",),
)
async def delete_room(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    room_id = path_uuid(request, "room_id")
    require_moderator(who, workshop_id)
    store = request.app[keys.STORE]
    await store.delete_room(workshop_id, room_id, actor=await actor_for(request, who))
    # Whoever is in the room now goes home (the plenary), as when breakouts close.
    await request.app[keys.COMMANDS].send_home(str(workshop_id), str(room_id), reason="room_deleted")
    return web.Response(status=204)
