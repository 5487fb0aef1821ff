"""The workshop's agenda: timed sessions that everyone of the workshop reads and the organiser writes; a moderator
may hold a session's automatic actions (docs/agenda.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from server import keys
from server.api import API, PREFIX
from server.api.paging import decode_cursor, encode_cursor
from server.api.routing import json_model, page_limit, path_uuid, read_body
from server.api.schemas import (
    MAX_SESSION_S,
    AgendaHold,
    AgendaSession,
    AgendaSessionCreate,
    AgendaSessionPatch,
    Page,
)
from server.api.workshops import actor_for, require_member
from server.auth import Principal
from server.store import PageKey
from signaling.errors import InvalidArgument, PermissionDenied


def session_out(row: Any) -> AgendaSession:
    return AgendaSession.model_validate({k: row[k] for k in AgendaSession.model_fields})


def _require_manager(who: Principal, workshop_id: uuid.UUID) -> None:
    require_member(who, workshop_id)
    if not who.manages(workshop_id):
        raise PermissionDenied("only the organiser may change the agenda")


def _check(kind: str, plan_id: uuid.UUID | None, starts_at: datetime, ends_at: datetime) -> None:
    """What holds for the session as it will be (after a PATCH, with the fields it leaves alone)."""
    if plan_id is not None and kind != "breakouts":
        raise InvalidArgument(
            "only a breakouts session opens a breakout plan",
            details=[{"field": "breakout_plan_id", "message": "the session's kind is not breakouts"}],
        )
    if ends_at <= starts_at:
        raise InvalidArgument(
            "ends_at must be after starts_at", details=[{"field": "ends_at", "message": "not after starts_at"}]
        )
    if (ends_at - starts_at).total_seconds() > MAX_SESSION_S:
        raise InvalidArgument(
            "a session lasts at most 24 hours", details=[{"field": "ends_at", "message": "more than 24 hours"}]
        )


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/agenda",
    summary="The workshop's agenda, ordered by start (everyone of the workshop, the join page included).",
    response=Page[AgendaSession],
    paged=True,
    tags=("agenda",),
)
async def list_agenda(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    require_member(who, workshop_id)
    await request.app[keys.STORE].get_workshop(workshop_id)
    limit = page_limit(request)
    cursor = request.query.get("cursor")
    after = None
    if cursor:
        key = decode_cursor(cursor)
        after = (key.created_at, key.id)
    rows = await request.app[keys.AGENDA].list_sessions(workshop_id, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    # The cursor is the (starts_at, id) of the last session of the page.
    next_cursor = encode_cursor(PageKey(rows[-1]["starts_at"], rows[-1]["id"])) if more and rows else None
    return json_model({"items": [session_out(r).model_dump(mode="json") for r in rows], "next_cursor": next_cursor})


@API.route(
    "POST",
    f"{PREFIX}/workshops/{{workshop_id}}/agenda",
    summary="Add a session to the agenda (admin, organiser). Times in UTC or with an offset; stored in UTC.",
    body=AgendaSessionCreate,
    response=AgendaSession,
    status=201,
    tags=("agenda",),
)
async def create_session(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    _require_manager(who, workshop_id)
    body = await read_body(request, AgendaSessionCreate)
    await request.app[keys.STORE].get_workshop(workshop_id)
    _check(body.kind, body.breakout_plan_id, body.starts_at, body.ends_at)
    row = await request.app[keys.AGENDA].create_session(
        workshop_id, body.model_dump(), actor=await actor_for(request, who)
    )
    request.app[keys.AGENDA_SCHEDULER].poke()
    return json_model(session_out(row), status=201)


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/agenda/{{session_id}}",
    summary="Read one session of the agenda (everyone of the workshop).",
    response=AgendaSession,
    tags=("agenda",),
)
async def get_session(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    session_id = path_uuid(request, "session_id")
    require_member(who, workshop_id)
    return json_model(session_out(await request.app[keys.AGENDA].get_session(workshop_id, session_id)))


@API.route(
    "PATCH",
    f"{PREFIX}/workshops/{{workshop_id}}/agenda/{{session_id}}",
    summary="Change a session (admin, organiser); an edge already fired does not fire again.",
    body=AgendaSessionPatch,
    response=AgendaSession,
    tags=("agenda",),
)
async def patch_session(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    session_id = path_uuid(request, "session_id")
    _require_manager(who, workshop_id)
    body = await read_body(request, AgendaSessionPatch)
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and name != "breakout_plan_id":
            raise InvalidArgument(f"{name} cannot be null", details=[{"field": name, "message": "not nullable"}])
    agenda = request.app[keys.AGENDA]
    current = await agenda.get_session(workshop_id, session_id)
    merged = {**dict(current), **changes}
    _check(merged["kind"], merged["breakout_plan_id"], merged["starts_at"], merged["ends_at"])
    actor = await actor_for(request, who)
    row = await agenda.update_session(workshop_id, session_id, changes, actor=actor)
    await _follow_end(request, current, row, actor)
    request.app[keys.AGENDA_SCHEDULER].poke()
    return json_model(session_out(row))


async def _follow_end(request: web.Request, before: Any, after: Any, actor: Any) -> None:
    """A running session's end moved later: the breakouts it opened get the same deadline (an earlier end needs
    nothing: the session's end edge closes them then)."""
    later = (after["ends_at"] - before["ends_at"]).total_seconds()
    plan_id = after["breakout_plan_id"]
    if later <= 0 or plan_id is None or after["started_fired_at"] is None or after["ended_fired_at"] is not None:
        return
    breakouts = request.app[keys.BREAKOUTS]
    running = await breakouts.store.running_plan(after["workshop_id"])
    if running is None or running.id != plan_id or running.state != "open" or running.row["ends_at"] is None:
        return
    seconds = int((after["ends_at"] - running.row["ends_at"]).total_seconds())
    if seconds > 0:
        await breakouts.extend(after["workshop_id"], plan_id, seconds, actor)


@API.route(
    "DELETE",
    f"{PREFIX}/workshops/{{workshop_id}}/agenda/{{session_id}}",
    summary="Remove a session from the agenda (admin, organiser); what it opened stays open.",
    status=204,
    tags=("agenda",),
)
async def delete_session(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    session_id = path_uuid(request, "session_id")
    _require_manager(who, workshop_id)
    await request.app[keys.AGENDA].delete_session(workshop_id, session_id, actor=await actor_for(request, who))
    request.app[keys.AGENDA_SCHEDULER].poke()
    return web.Response(status=204)


@API.route(
    "POST",
    f"{PREFIX}/workshops/{{workshop_id}}/agenda/{{session_id}}/hold",
    summary="Hold (held: true) or release (false) a session's automatic actions (admin, organiser, moderator).",
    body=AgendaHold,
    response=AgendaSession,
    tags=("agenda",),
)
async def hold_session(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    session_id = path_uuid(request, "session_id")
    require_member(who, workshop_id)
    if not who.moderates(workshop_id):
        raise PermissionDenied("only moderators and the organiser may hold the agenda")
    body = await read_body(request, AgendaHold)
    row = await request.app[keys.AGENDA].hold_session(
        workshop_id, session_id, body.held, actor=await actor_for(request, who)
    )
    request.app[keys.AGENDA_SCHEDULER].poke()
    return json_model(session_out(row))
