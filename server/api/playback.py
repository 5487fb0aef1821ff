"""Watching recordings: a recording's chapters, its grants (list, revoke), and the recordings a participant may
watch. The player page (/recordings/{id}) and the organiser page read these; the files themselves are served by
server/api/recordings.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from recordings.chapters import ChapterKind, build_chapters
from server import keys
from server.api import API, PREFIX
from server.api.recordings import RecordingState, _base_url, _load, _load_for_moderator, _present
from server.api.routing import json_model, path_uuid
from server.api.workshops import actor_for
from server.auth import Principal
from signaling.audit import Change
from signaling.errors import NotFound, PermissionDenied

MAX_WATCHABLE = 500


class ChapterOut(BaseModel):
    at_s: float = Field(description="Seconds from the recording's start.")
    kind: ChapterKind
    label: str = Field(description="In English; `name` is there for a client that words its own labels.")
    participant_id: uuid.UUID | None
    name: str | None = Field(description="The person's name, or the breakout plan's for breakouts_*.")


class ChapterList(BaseModel):
    chapters: list[ChapterOut]
    continues: uuid.UUID | None = Field(
        None, description="The recording this one continues (ended by a failover or a drain): its first part."
    )
    continued_by: uuid.UUID | None = Field(
        None, description="The recording that continues this one after a failover or a drain: the rest of the session."
    )


class GrantOut(BaseModel):
    participant_id: uuid.UUID
    display_name: str
    granted_by: str
    at: datetime


class GrantList(BaseModel):
    items: list[GrantOut]


class Watchable(BaseModel):
    id: uuid.UUID
    workshop_id: uuid.UUID
    title: str = Field(description="The workshop's title and the room's name.")
    room_id: uuid.UUID
    room_name: str
    state: RecordingState
    started_at: datetime
    stopped_at: datetime | None
    duration_s: float | None = Field(description="From start to stop; null while it records.")
    composition_state: str = Field(description="none | queued | running | ready | failed")
    player_url: str


class WatchableList(BaseModel):
    items: list[Watchable] = Field(description=f"Newest first, at most {MAX_WATCHABLE}.")


@API.route(
    "GET",
    f"{PREFIX}/recordings/{{recording_id}}/chapters",
    summary="What happened while the room was recorded (joins, leaves, shared screens, breakouts, consent "
    "withdrawn), as offsets into the recording; only people who appear in it are named.",
    response=ChapterList,
    tags=("recordings",),
)
async def chapters(request: web.Request, who: Principal) -> web.Response:
    recording_id = path_uuid(request, "recording_id")
    row = await _load(request, who, recording_id)
    store = request.app[keys.RECORDING_STORE]
    started_at: datetime = row["started_at"]
    ended_at: datetime = row["stopped_at"] or datetime.now(UTC)
    visits = await store.room_visits(row["room_id"], started_at, ended_at)
    ledger = await store.consent_ledger_named(recording_id)
    names = {r["participant_id"]: r["display_name"] for r in [*visits, *ledger]}
    built = build_chapters(
        started_at=started_at,
        ended_at=ended_at,
        tracks=await store.tracks(recording_id),
        visits=visits,
        breakout_edges=await store.breakout_run_edges(row["workshop_id"], started_at, ended_at),
        ledger=ledger,
        names=names,
    )
    return json_model(
        ChapterList(
            chapters=[
                ChapterOut(
                    at_s=round(c.at_s, 3), kind=c.kind, label=c.label, participant_id=c.participant_id, name=c.name
                )
                for c in built
            ],
            continues=row["continues"],
            continued_by=await store.continued_by(recording_id),
        )
    )


@API.route(
    "GET",
    f"{PREFIX}/recordings/{{recording_id}}/grants",
    summary="Who has been given access to a recording (moderators, organiser).",
    response=GrantList,
    tags=("recordings",),
)
async def list_grants(request: web.Request, who: Principal) -> web.Response:
    recording_id = path_uuid(request, "recording_id")
    await _load_for_moderator(request, who, recording_id, "read the grants")
    rows = await request.app[keys.RECORDING_STORE].grants(recording_id)
    return json_model(GrantList(items=[GrantOut.model_validate(dict(r)) for r in rows]))


@API.route(
    "DELETE",
    f"{PREFIX}/recordings/{{recording_id}}/grants/{{participant_id}}",
    summary="Take a participant's access to a recording away (moderators, organiser); signed URLs already handed "
    "out stop working within ten minutes.",
    status=204,
    tags=("recordings",),
)
async def revoke_grant(request: web.Request, who: Principal) -> web.Response:
    recording_id = path_uuid(request, "recording_id")
    participant_id = path_uuid(request, "participant_id")
    row = await _load_for_moderator(request, who, recording_id, "take access away")
    change = Change(
        row["workshop_id"],
        await actor_for(request, who),
        "recording.revoke",
        target={"recording_id": recording_id, "participant_id": participant_id},
    )
    if not await request.app[keys.RECORDING_STORE].revoke(recording_id, participant_id, change=change):
        raise NotFound("this participant has no grant for this recording")
    return web.Response(status=204)


@API.route(
    "GET",
    f"{PREFIX}/me/recordings",
    summary="The recordings you may watch, with your join token: those granted to you, or every recording of your "
    "workshop if you moderate it.",
    response=WatchableList,
    tags=("recordings",),
)
async def my_recordings(request: web.Request, who: Principal) -> web.Response:
    if who.participant_id is None or who.workshop_id is None:
        raise PermissionDenied("only a participant's join token has recordings of its own")
    workshop_id = who.workshop_id
    workshop = await request.app[keys.STORE].get_workshop(workshop_id)
    granted_to = None if who.moderates(workshop_id) else who.participant_id
    rows = await request.app[keys.RECORDING_STORE].watchable(workshop_id, granted_to, limit=MAX_WATCHABLE)
    base = _base_url(request)
    items = []
    for row in rows:
        presented = await _present(request, row, who, detail=False)
        items.append(
            Watchable(
                id=row["id"],
                workshop_id=workshop_id,
                title=f"{workshop['title']} · {row['room_name']}",
                room_id=row["room_id"],
                room_name=row["room_name"],
                state=row["state"],
                started_at=row["started_at"],
                stopped_at=row["stopped_at"],
                duration_s=(row["stopped_at"] - row["started_at"]).total_seconds() if row["stopped_at"] else None,
                composition_state=_composition_state(presented),
                player_url=f"{base}/recordings/{row['id']}",
            )
        )
    return json_model(WatchableList(items=items))


def _composition_state(presented: Any) -> str:
    composition = getattr(presented, "composition", None)
    state = getattr(composition, "state", None)
    return state if isinstance(state, str) else "none"
