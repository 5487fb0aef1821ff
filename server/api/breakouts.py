"""Breakout plans: prepare, assign, open, extend, close, broadcast, move (moderators and the organiser)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, BeforeValidator, Field, StringConstraints, ValidationError, model_validator

from server import keys
from server.api import API, PREFIX
from server.api.paging import decode_cursor, encode_cursor
from server.api.routing import json_model, optional_body, page_limit, path_uuid, read_body, read_json
from server.api.schemas import Body
from server.api.workshops import require_member
from server.auth import Principal
from server.http_errors import invalid
from server.store import PageKey
from signaling.assignment import Strategy
from signaling.audit import Actor
from signaling.breakout_store import PlanView
from signaling.breakouts import PlanSpec
from signaling.errors import InvalidArgument, PermissionDenied, ServiceError
from signaling.rooms import room_info

RoomKey = int | Annotated[str, StringConstraints(min_length=1, max_length=200)]
PlanName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
log = logging.getLogger(__name__)
ROLE_NAMES = ("organiser", "moderator", "participant", "observer")


def _room_list(value: Any) -> Any:
    """`rooms` is a count or a list of names."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 100:
            raise ValueError("between 1 and 100 rooms")
        return [f"Room {i + 1}" for i in range(value)]
    return value


class PlanCreate(Body):
    name: PlanName
    rooms: Annotated[
        list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]],
        BeforeValidator(_room_list),
        Field(min_length=1, max_length=100, description="A number of rooms, or their names."),
    ]
    strategy: Strategy = "manual"
    assignments: dict[uuid.UUID, RoomKey] = Field(
        default_factory=dict, description="participant id -> room index (0-based) or room name."
    )
    roles: list[str] = Field(
        default_factory=lambda: ["participant"], description="Roles the strategy places (default: participants)."
    )
    self_select_cap: int | None = Field(None, ge=1, le=10_000)
    duration_s: int | None = Field(None, ge=1, le=7 * 24 * 3600)
    countdown_s: int = Field(60, ge=0, le=3600)
    capacity: int | None = Field(None, ge=1, le=10_000)

    @model_validator(mode="after")
    def _check(self) -> PlanCreate:
        if len(set(self.rooms)) != len(self.rooms):
            raise ValueError("room names must be distinct")
        if bad := [r for r in self.roles if r not in ROLE_NAMES]:
            raise ValueError(f"unknown roles {bad}")
        return self


class PlanPatch(Body):
    name: PlanName | None = None
    strategy: Strategy | None = Field(None, description="Changing to random/balanced/country_mixed draws anew.")
    roles: list[str] | None = None
    self_select_cap: int | None = Field(None, ge=1, le=10_000)
    duration_s: int | None = Field(None, ge=1, le=7 * 24 * 3600)
    countdown_s: int | None = Field(None, ge=0, le=3600)


class Assignments(Body):
    assignments: dict[uuid.UUID, RoomKey]


class OpenBody(Body):
    duration_s: int | None = Field(None, ge=1, le=7 * 24 * 3600)
    record: bool = Field(
        False,
        description="Record every room of the plan from the opening (each its own recording; consent as always).",
    )


class ExtendBody(Body):
    seconds: int = Field(ge=1, le=24 * 3600)


class CloseBody(Body):
    countdown_s: int | None = Field(None, ge=0, le=3600, description="Defaults to the plan's countdown (60 s).")


class BroadcastBody(Body):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class MoveBody(Body):
    participant_id: uuid.UUID
    room_id: uuid.UUID


class CopyBody(Body):
    name: PlanName | None = None


class PlanRoom(BaseModel):
    id: uuid.UUID
    name: str
    position: int
    capacity: int
    participant_ids: list[uuid.UUID]


class Plan(BaseModel):
    id: uuid.UUID
    workshop_id: uuid.UUID
    name: str
    strategy: Strategy
    state: str = Field(description="draft | open | closing | closed")
    roles: list[str]
    self_select_cap: int | None
    duration_s: int | None
    countdown_s: int
    opened_at: datetime | None
    ends_at: datetime | None
    remaining_s: float | None
    closes_at: datetime | None
    closed_at: datetime | None
    copied_from: uuid.UUID | None
    rooms: list[PlanRoom]
    assignments: dict[uuid.UUID, uuid.UUID] = Field(description="participant id -> room id")
    created_at: datetime
    updated_at: datetime


class PlanPage(BaseModel):
    items: list[Plan]
    next_cursor: str | None


def plan_out(view: PlanView) -> Plan:
    row = view.row
    by_room: dict[uuid.UUID, list[uuid.UUID]] = {r["id"]: [] for r in view.rooms}
    for pid, rid in view.assignments.items():
        by_room.setdefault(rid, []).append(pid)
    now = datetime.now(row["created_at"].tzinfo)
    ends_at = row["ends_at"]
    return Plan(
        id=row["id"],
        workshop_id=row["workshop_id"],
        name=row["name"],
        strategy=row["strategy"],
        state=row["state"],
        roles=list(row["roles"]),
        self_select_cap=row["self_select_cap"],
        duration_s=row["duration_s"],
        countdown_s=row["countdown_s"],
        opened_at=row["opened_at"],
        ends_at=ends_at,
        remaining_s=max(0.0, (ends_at - now).total_seconds()) if ends_at and row["state"] == "open" else None,
        closes_at=row["closes_at"],
        closed_at=row["closed_at"],
        copied_from=row["copied_from"],
        rooms=[
            PlanRoom(
                id=r["id"],
                name=r["name"],
                position=r["position"],
                capacity=r["capacity"],
                participant_ids=sorted(by_room.get(r["id"], []), key=str),
            )
            for r in view.rooms
        ],
        assignments=view.assignments,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def actor_of(request: web.Request, who: Principal, workshop_id: uuid.UUID) -> Actor:
    """The caller as recorded in the moderators' action log; refuses anyone but moderators."""
    require_member(who, workshop_id)
    if not who.moderates(workshop_id):
        raise PermissionDenied("only moderators and the organiser may manage breakouts")
    if who.is_admin or who.participant_id is None:
        return Actor(id=None, role="admin", display_name="Organiser")
    row = await request.app[keys.STORE].get_participant(workshop_id, who.participant_id)
    return Actor(id=who.participant_id, role=row["role"], display_name=row["display_name"])


async def _plan_call(request: web.Request, who: Principal) -> tuple[uuid.UUID, uuid.UUID, Actor]:
    """The workshop and plan of the path, and the caller if it may manage breakouts there."""
    workshop_id = path_uuid(request, "workshop_id")
    plan_id = path_uuid(request, "plan_id")
    return workshop_id, plan_id, await actor_of(request, who, workshop_id)


def _plan_path(suffix: str = "") -> str:
    return f"{PREFIX}/workshops/{{workshop_id}}/breakouts/{{plan_id}}{suffix}"


@API.route(
    "POST",
    f"{PREFIX}/workshops/{{workshop_id}}/breakouts",
    summary="Create a breakout plan (draft) with its rooms and assignments.",
    body=PlanCreate,
    response=Plan,
    status=201,
    tags=("breakouts",),
)
async def create_plan(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    actor = await actor_of(request, who, workshop_id)
    body = await read_body(request, PlanCreate)
    await request.app[keys.STORE].get_workshop(workshop_id)
    spec = PlanSpec(
        name=body.name,
        room_names=body.rooms,
        strategy=body.strategy,
        assignments=dict(body.assignments),
        roles=body.roles,
        self_select_cap=body.self_select_cap,
        duration_s=body.duration_s,
        countdown_s=body.countdown_s,
        capacity=body.capacity or request.app[keys.SETTINGS].breakout_capacity,
    )
    view = await request.app[keys.BREAKOUTS].create(workshop_id, spec, actor)
    return json_model(plan_out(view), status=201)


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/breakouts",
    summary="List breakout plans.",
    response=PlanPage,
    paged=True,
    tags=("breakouts",),
)
async def list_plans(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    await actor_of(request, who, workshop_id)
    limit = page_limit(request)
    cursor = request.query.get("cursor")
    after = decode_cursor(cursor) if cursor else None
    views = await request.app[keys.BREAKOUT_STORE].list_plans(
        workshop_id, limit=limit + 1, after=(after.created_at, after.id) if after else None
    )
    more = len(views) > limit
    views = views[:limit]
    next_cursor = encode_cursor(PageKey(views[-1].row["created_at"], views[-1].id)) if more and views else None
    return json_model(PlanPage(items=[plan_out(v) for v in views], next_cursor=next_cursor))


@API.route("GET", _plan_path(), summary="Read a breakout plan.", response=Plan, tags=("breakouts",))
async def get_plan(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    plan_id = path_uuid(request, "plan_id")
    await actor_of(request, who, workshop_id)
    return json_model(plan_out(await request.app[keys.BREAKOUT_STORE].get_plan(workshop_id, plan_id)))


@API.route(
    "PATCH", _plan_path(), summary="Change a plan.", body=PlanPatch, response=Plan, errors=(409,), tags=("breakouts",)
)
async def patch_plan(request: web.Request, who: Principal) -> web.Response:
    workshop_id, plan_id, actor = await _plan_call(request, who)
    body = await read_body(request, PlanPatch)
    changes = body.model_dump(exclude_unset=True)
    for name in ("name", "strategy", "roles", "countdown_s"):
        if name in changes and changes[name] is None:
            raise InvalidArgument(f"{name} cannot be null", details=[{"field": name, "message": "not nullable"}])
    if bad := [r for r in changes.get("roles") or [] if r not in ROLE_NAMES]:
        raise InvalidArgument(f"unknown roles {bad}", details=[{"field": "roles", "message": "unknown role"}])
    view = await request.app[keys.BREAKOUTS].update(workshop_id, plan_id, changes, actor)
    return json_model(plan_out(view))


@API.route(
    "DELETE", _plan_path(), summary="Delete a plan that is not running.", status=204, errors=(409,), tags=("breakouts",)
)
async def delete_plan(request: web.Request, who: Principal) -> web.Response:
    workshop_id, plan_id, actor = await _plan_call(request, who)
    await request.app[keys.BREAKOUTS].delete(workshop_id, plan_id, actor)
    return web.Response(status=204)


@API.route(
    "PUT",
    _plan_path("/assignments"),
    summary="Replace the plan's assignments ({participant id: room index, name or id}); applied live while open.",
    body=Assignments,
    response=Plan,
    tags=("breakouts",),
)
async def put_assignments(request: web.Request, who: Principal) -> web.Response:
    workshop_id, plan_id, actor = await _plan_call(request, who)
    data = await read_json(request)
    # Accept {"assignments": {...}} and, for convenience, the bare mapping.
    if isinstance(data, dict) and set(data) != {"assignments"}:
        data = {"assignments": data}
    try:
        body = Assignments.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from exc
    view = await request.app[keys.BREAKOUTS].put_assignments(workshop_id, plan_id, dict(body.assignments), actor)
    return json_model(plan_out(view))


@API.route(
    "POST",
    _plan_path("/copy"),
    summary="Copy a plan (rooms and assignments) as a new draft, e.g. for day two.",
    body=CopyBody,
    response=Plan,
    status=201,
    tags=("breakouts",),
)
async def copy_plan(request: web.Request, who: Principal) -> web.Response:
    workshop_id, plan_id, actor = await _plan_call(request, who)
    body = await optional_body(request, CopyBody)
    view = await request.app[keys.BREAKOUTS].copy(workshop_id, plan_id, body.name, actor)
    return json_model(plan_out(view), status=201)


@API.route(
    "POST",
    _plan_path("/open"),
    summary="Open the breakouts: everyone connected is moved to their room.",
    body=OpenBody,
    response=Plan,
    errors=(409,),
    tags=("breakouts",),
)
async def open_plan(request: web.Request, who: Principal) -> web.Response:
    workshop_id, plan_id, actor = await _plan_call(request, who)
    body = await optional_body(request, OpenBody)
    view = await request.app[keys.BREAKOUT_ACTIONS].open(workshop_id, plan_id, body.duration_s, actor)
    if body.record:
        await _record_rooms(request, who, view, actor)
    return json_model(plan_out(view))


async def _record_rooms(request: web.Request, who: Principal, view: PlanView, actor: Actor) -> None:
    """Start a recording in each room of an opened plan. The breakouts are open by now: a room that cannot be
    recorded (already recorded, disk full) is logged and skipped rather than failing the opening."""
    from recordings.service import Starter

    workshop = await request.app[keys.STORE].get_workshop(view.workshop_id)
    starter = Starter(id=who.participant_id, role=actor.role, display_name=actor.display_name)
    for room in view.rooms:
        try:
            await request.app[keys.RECORDING_ACTIONS].start(
                view.workshop_id, room_info(room), workshop["recording_consent"], starter
            )
        except ServiceError as exc:
            log.warning("breakout room %s of plan %s not recorded: %s", room["id"], view.id, exc.message)


@API.route(
    "POST",
    _plan_path("/extend"),
    summary="Move the deadline of open breakouts.",
    body=ExtendBody,
    response=Plan,
    errors=(409,),
    tags=("breakouts",),
)
async def extend_plan(request: web.Request, who: Principal) -> web.Response:
    workshop_id, plan_id, actor = await _plan_call(request, who)
    body = await read_body(request, ExtendBody)
    view = await request.app[keys.BREAKOUT_ACTIONS].extend(workshop_id, plan_id, body.seconds, actor)
    return json_model(plan_out(view))


@API.route(
    "POST",
    _plan_path("/close"),
    summary="Close the breakouts after a countdown (default 60 s); everyone returns to the plenary.",
    body=CloseBody,
    response=Plan,
    errors=(409,),
    tags=("breakouts",),
)
async def close_plan(request: web.Request, who: Principal) -> web.Response:
    workshop_id, plan_id, actor = await _plan_call(request, who)
    body = await optional_body(request, CloseBody)
    view = await request.app[keys.BREAKOUT_ACTIONS].close(workshop_id, plan_id, body.countdown_s, actor)
    return json_model(plan_out(view))


@API.route(
    "POST",
    _plan_path("/broadcast"),
    summary="Send a message to every room of the workshop.",
    body=BroadcastBody,
    response=Plan,
    tags=("breakouts",),
)
async def broadcast(request: web.Request, who: Principal) -> web.Response:
    workshop_id, plan_id, actor = await _plan_call(request, who)
    body = await read_body(request, BroadcastBody)
    view = await request.app[keys.BREAKOUT_ACTIONS].broadcast(workshop_id, plan_id, body.text, actor)
    return json_model(plan_out(view))


@API.route(
    "POST",
    _plan_path("/move"),
    summary="Assign a participant to a room of the plan (or the plenary); moves them live while open.",
    body=MoveBody,
    response=Plan,
    tags=("breakouts",),
)
async def move(request: web.Request, who: Principal) -> web.Response:
    workshop_id, plan_id, actor = await _plan_call(request, who)
    body = await read_body(request, MoveBody)
    view = await request.app[keys.BREAKOUT_ACTIONS].move(workshop_id, plan_id, body.participant_id, body.room_id, actor)
    return json_model(plan_out(view))
