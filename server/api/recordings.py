"""Recordings: start/stop per room, listing, metadata with the consent summary, downloads, deletion."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from server import keys
from server.api import API, PREFIX
from server.api.paging import decode_cursor, encode_cursor
from server.api.routing import json_model, page_limit, path_uuid, read_body
from server.api.schemas import Body, Time
from server.api.workshops import actor_for, require_member
from server.auth import Principal, banned, bearer_token
from server.store import PageKey
from signaling.audit import ADMIN, Actor, Change
from signaling.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from signaling.rooms import room_info

RecordingState = Literal["starting", "recording", "stopping", "ready", "failed", "deleted"]
SIGNED_URL_TTL_S = 600


class Track(BaseModel):
    id: uuid.UUID
    participant_id: uuid.UUID
    kind: Literal["audio", "video"]
    codec: str
    state: str = Field(description="writing | complete | partial | deleted")
    bytes: int | None
    duration_s: float | None
    sha256: str | None = Field(description="Of the file exactly as served.")
    offset_s: float = Field(description="When the track starts, from the recording's start.")
    language: str | None = Field(
        None, description="The interpretation channel this track was spoken into; null: the floor."
    )
    started_at: datetime
    ended_at: datetime | None
    download_url: str | None = Field(description="Short-lived signed URL: plays in a <video> element, no header.")
    source: Literal["camera", "screen"] | None = Field(
        None, description="What the video showed, where the capture knows it (sfu rooms); null otherwise."
    )


class ComposedFile(BaseModel):
    id: uuid.UUID = Field(description="New at each composition; the download log names the file by it (`track_id`).")
    format: Literal["webm", "mp4"]
    codec: str = Field(description="vp8+opus")
    bytes: int
    sha256: str = Field(description="Of the file exactly as served.")
    duration_s: float
    width: int
    height: int
    language: str | None = Field(
        None,
        description="null: the floor, as spoken; a language: that interpretation channel's version (the same "
        "picture, the interpreter over the floor at about a quarter of its level).",
    )
    download_url: str = Field(description="Short-lived signed URL (ten minutes): plays and seeks in a <video> element.")


class Composition(BaseModel):
    state: Literal["none", "queued", "running", "ready", "failed"] = Field(
        "none", description="none: nothing to compose (no track), or not queued yet."
    )
    progress: float = Field(0.0, ge=0, le=1)
    error: str | None = None
    files: list[ComposedFile] = Field(default_factory=list, description="In the recording's detail only.")


class ConsentAnswer(BaseModel):
    participant_id: uuid.UUID
    display_name: str
    granted: bool
    at: datetime


class ConsentSummary(BaseModel):
    mode: Literal["explicit", "assumed"]
    granted: list[uuid.UUID]
    declined: list[uuid.UUID]
    answers: list[ConsentAnswer] = Field(description="Each participant's latest answer.")
    ledger: list[dict[str, Any]] = Field(
        description="Every answer in order (participant_id, granted, at, carried_from: the recording a "
        "continuation carried the answer over from, else null)."
    )


class Recording(BaseModel):
    id: uuid.UUID
    workshop_id: uuid.UUID
    room_id: uuid.UUID
    room_name: str
    state: RecordingState
    partial: bool
    failure_reason: str | None
    started_by: uuid.UUID | None
    started_at: datetime
    stopped_at: datetime | None
    ready_at: datetime | None
    deleted_at: datetime | None
    deleted_by: str | None
    recorder_peer_id: str | None = None
    continues: uuid.UUID | None = Field(
        None,
        description="A continuation (docs/recordings.md#continuation-after-a-failover): the recording it continues, "
        "which a failover (partial) or a drain ended; started by the server (`started_by` null).",
    )
    continued_by: uuid.UUID | None = Field(
        None,
        description="The continuation that recorded the rest of the session after this recording was ended by a "
        "failover or a drain; a stop of this recording stops it.",
    )
    tracks: list[Track] = Field(default_factory=list)
    consent: ConsentSummary | None = None
    composition: Composition = Field(
        default_factory=Composition, description="The composed video (docs/recordings.md#composed-video)."
    )


class RecordingPage(BaseModel):
    items: list[Recording]
    next_cursor: str | None


class GrantBody(Body):
    participant_id: uuid.UUID


class Download(BaseModel):
    track_id: uuid.UUID
    principal: str
    via: str
    range_header: str | None
    status: int
    at: datetime


class DownloadPage(BaseModel):
    items: list[Download]


def _sign(secret: str, recording_id: uuid.UUID, file_id: uuid.UUID, exp: int, by: str) -> str:
    """Signs a download of one file: a track's id, or a composed file's (a new composition is a new id)."""
    message = f"{recording_id}:{file_id}:{exp}:{by}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _principal_name(who: Principal) -> str:
    return "admin" if who.is_admin else str(who.participant_id)


async def _load(request: web.Request, who: Principal, recording_id: uuid.UUID) -> Any:
    """The recording, if the caller may see it: moderators of its workshop, or a participant granted it."""
    store = request.app[keys.RECORDING_STORE]
    row = await store.get(recording_id)
    require_member(who, row["workshop_id"])
    if not who.moderates(row["workshop_id"]) and (
        who.participant_id is None or not await store.has_grant(recording_id, who.participant_id)
    ):
        raise NotFound("recording not found")
    return row


async def _load_for_moderator(request: web.Request, who: Principal, recording_id: uuid.UUID, action: str) -> Any:
    """The recording, if the caller moderates its workshop (a participant granted it may only read it)."""
    row = await _load(request, who, recording_id)
    if not who.moderates(row["workshop_id"]):
        raise PermissionDenied(f"only moderators and the organiser may {action}")
    return row


async def _present(request: web.Request, row: Any, who: Principal, *, detail: bool) -> Recording:
    app = request.app
    out = Recording.model_validate({k: v for k, v in dict(row).items() if k in Recording.model_fields})
    if row["state"] in ("starting", "recording", "stopping"):  # the recorder runs on the workshop's owner
        out.recorder_peer_id = await app[keys.RECORDING_ACTIONS].recorder_peer(row["workshop_id"], row["id"])
    store = app[keys.RECORDING_STORE]
    out.continued_by = await store.continued_by(row["id"])
    compositions = app[keys.COMPOSITIONS]
    job = await compositions.get(row["id"])
    if job is not None:
        out.composition = Composition(state=job["state"], progress=job["progress"], error=job["error"])
    if not detail:
        return out
    base = _base_url(request)
    secret = app[keys.SIGNING_SECRET]
    exp = int(time.time()) + SIGNED_URL_TTL_S
    by = _principal_name(who)
    if row["state"] != "deleted":
        for composed in await compositions.files(row["id"]):
            sig = _sign(secret, row["id"], composed["id"], exp, by)
            name = f"languages/{composed['language']}/composed" if composed["language"] else "composed"
            link = f"{base}{PREFIX}/recordings/{row['id']}/{name}.{composed['format']}?exp={exp}&by={by}&sig={sig}"
            out.composition.files.append(ComposedFile.model_validate({**dict(composed), "download_url": link}))
    for track in await store.tracks(row["id"]):
        url = None
        if track["file_key"] and track["state"] != "writing":
            sig = _sign(secret, row["id"], track["id"], exp, by)
            url = f"{base}{PREFIX}/recordings/{row['id']}/tracks/{track['id']}/file?exp={exp}&by={by}&sig={sig}"
        out.tracks.append(Track.model_validate({**dict(track), "download_url": url}))
    latest = await store.latest_consents(row["id"])
    out.consent = ConsentSummary(
        mode=row["consent_mode"],
        granted=[r["participant_id"] for r in latest if r["granted"]],
        declined=[r["participant_id"] for r in latest if not r["granted"]],
        answers=[ConsentAnswer.model_validate(dict(r)) for r in latest],
        ledger=[
            {
                "participant_id": str(r["participant_id"]),
                "granted": r["granted"],
                "at": r["at"].isoformat(),
                "carried_from": str(r["carried_from"]) if r["carried_from"] else None,
            }
            for r in await store.consent_ledger(row["id"])
        ],
    )
    return out


def _base_url(request: web.Request) -> str:
    settings = request.app[keys.SETTINGS]
    if settings.public_url is not None:
        return settings.base_url
    return str(request.url.origin())


@API.route(
    "POST",
    f"{PREFIX}/rooms/{{room_id}}/recordings",
    summary="Start recording a room (moderators, organiser). The body may be empty.",
    response=Recording,
    status=201,
    errors=(409,),
    tags=("recordings",),
)
async def start_recording(request: web.Request, who: Principal) -> web.Response:
    room_id = path_uuid(request, "room_id")
    store = request.app[keys.STORE]
    room = await store.get_room(room_id)
    if room is None:
        raise NotFound("room not found")
    require_member(who, room["workshop_id"])
    if not who.moderates(room["workshop_id"]):
        raise PermissionDenied("only moderators and the organiser may record")
    workshop = await store.get_workshop(room["workshop_id"])
    from recordings.service import Starter

    actor = await actor_for(request, who)
    starter = Starter(
        id=who.participant_id, role="admin" if who.is_admin else str(who.role), display_name=actor.display_name
    )
    recording_id = await request.app[keys.RECORDING_ACTIONS].start(
        room["workshop_id"], room_info(room), workshop["recording_consent"], starter
    )
    row = await request.app[keys.RECORDING_STORE].get(recording_id)
    return json_model(await _present(request, row, who, detail=False), status=201)


@API.route(
    "POST",
    f"{PREFIX}/recordings/{{recording_id}}/stop",
    summary="Stop a recording; its files are finished and it becomes ready.",
    response=Recording,
    errors=(409,),
    tags=("recordings",),
)
async def stop_recording(request: web.Request, who: Principal) -> web.Response:
    recording_id = path_uuid(request, "recording_id")
    row = await _load_for_moderator(request, who, recording_id, "stop a recording")
    actor = await actor_for(request, who)
    await request.app[keys.RECORDING_ACTIONS].stop(row["workshop_id"], recording_id, None, actor)
    row = await request.app[keys.RECORDING_STORE].get(recording_id)
    return json_model(await _present(request, row, who, detail=True))


_DATE = TypeAdapter(Time)
_EXP = re.compile(r"[0-9]{1,12}")  # ASCII digits: str.isdigit also takes "²", which int() refuses
_BY = re.compile(r"admin|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # what _principal_name writes
_SIG = re.compile(r"[0-9a-f]{64}")


def _query_uuid(request: web.Request, name: str) -> uuid.UUID | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{name} must be a UUID", details=[{"field": name, "message": "not a UUID"}]) from exc


def _query_date(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return _DATE.validate_python(raw)
    except ValidationError as exc:
        raise InvalidArgument(
            f"{name} must be an ISO 8601 time with a zone", details=[{"field": name, "message": "not a time"}]
        ) from exc


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/recordings",
    summary="List recordings; filters: room_id, state, participant_id, since, until (started_at).",
    response=RecordingPage,
    paged=True,
    tags=("recordings",),
)
async def list_recordings(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    require_member(who, workshop_id)
    limit = page_limit(request)
    cursor = request.query.get("cursor")
    after = decode_cursor(cursor) if cursor else None
    state = request.query.get("state")
    if state is not None and state not in ("starting", "recording", "stopping", "ready", "failed", "deleted"):
        raise InvalidArgument("unknown state", details=[{"field": "state", "message": "unknown state"}])
    granted_to = None if who.moderates(workshop_id) else who.participant_id
    rows = await request.app[keys.RECORDING_STORE].search(
        workshop_id,
        room_id=_query_uuid(request, "room_id"),
        state=state,
        participant_id=_query_uuid(request, "participant_id"),
        since=_query_date(request, "since"),
        until=_query_date(request, "until"),
        after=(after.created_at, after.id) if after else None,
        granted_to=granted_to,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    items = [await _present(request, r, who, detail=False) for r in rows]
    next_cursor = encode_cursor(PageKey(rows[-1]["created_at"], rows[-1]["id"])) if more and rows else None
    return json_model(RecordingPage(items=items, next_cursor=next_cursor))


@API.route(
    "GET",
    f"{PREFIX}/recordings/{{recording_id}}",
    summary="A recording with its tracks (signed download URLs) and consent summary.",
    response=Recording,
    tags=("recordings",),
)
async def get_recording(request: web.Request, who: Principal) -> web.Response:
    recording_id = path_uuid(request, "recording_id")
    row = await _load(request, who, recording_id)
    return json_model(await _present(request, row, who, detail=True))


@API.route(
    "DELETE",
    f"{PREFIX}/recordings/{{recording_id}}",
    summary="Delete a recording's files; a tombstone (who, when) stays (moderators, organiser).",
    status=204,
    errors=(409,),
    tags=("recordings",),
)
async def delete_recording(request: web.Request, who: Principal) -> web.Response:
    recording_id = path_uuid(request, "recording_id")
    await _load_for_moderator(request, who, recording_id, "delete recordings")
    await request.app[keys.RECORDINGS].delete(
        recording_id, by=_principal_name(who), actor=await actor_for(request, who)
    )
    return web.Response(status=204)


@API.route(
    "POST",
    f"{PREFIX}/recordings/{{recording_id}}/grants",
    summary="Let a participant see and download a recording (moderators, organiser).",
    body=GrantBody,
    status=204,
    tags=("recordings",),
)
async def grant(request: web.Request, who: Principal) -> web.Response:
    recording_id = path_uuid(request, "recording_id")
    row = await _load_for_moderator(request, who, recording_id, "grant access")
    body = await read_body(request, GrantBody)
    await request.app[keys.STORE].get_participant(row["workshop_id"], body.participant_id)
    change = Change(
        row["workshop_id"],
        await actor_for(request, who),
        "recording.grant",
        target={"recording_id": recording_id, "participant_id": body.participant_id},
    )
    await request.app[keys.RECORDING_STORE].grant(
        recording_id, body.participant_id, _principal_name(who), change=change
    )
    return web.Response(status=204)


@API.route(
    "GET",
    f"{PREFIX}/recordings/{{recording_id}}/downloads",
    summary="Every download of the recording's files: who, what, when (moderators, organiser).",
    response=DownloadPage,
    tags=("recordings",),
)
async def downloads(request: web.Request, who: Principal) -> web.Response:
    recording_id = path_uuid(request, "recording_id")
    await _load_for_moderator(request, who, recording_id, "read the download log")
    items = await request.app[keys.RECORDING_STORE].downloads(recording_id)
    return json_model(DownloadPage(items=[Download.model_validate(i) for i in items]))


@API.route(
    "GET",
    f"{PREFIX}/recordings/{{recording_id}}/tracks/{{track_id}}/file",
    summary="A track's WebM file, with Range, If-Range and ETag; a bearer token or the signed download_url.",
    authenticated=False,
    binary_response="video/webm",
    errors=(401, 403, 404),
    tags=("recordings",),
)
async def track_file(request: web.Request) -> web.StreamResponse:
    recording_id = path_uuid(request, "recording_id")
    track_id = path_uuid(request, "track_id")
    store = request.app[keys.RECORDING_STORE]

    async def lookup() -> tuple[uuid.UUID, ServedFile]:
        track = await store.track(recording_id, track_id)
        return track_id, ServedFile(
            file_key=track["file_key"],
            target={"track_id": track_id, "participant_id": track["participant_id"]},
            content_type="video/webm" if track["kind"] == "video" else "audio/webm",
            filename=f"{track_id}.webm",
        )

    return await _serve_download(request, recording_id, lookup, signed_for=track_id)


@API.route(
    "GET",
    f"{PREFIX}/recordings/{{recording_id}}/composed.webm",
    summary="The composed video (VP8 + Opus WebM), with Range, If-Range and ETag; a bearer token or the signed "
    "download_url of composition.files. Who may: as for tracks.",
    authenticated=False,
    binary_response="video/webm",
    errors=(401, 403, 404),
    tags=("recordings",),
)
async def composed_file(request: web.Request) -> web.StreamResponse:
    return await _serve_composed(request, None)


_LANGUAGE = re.compile(r"[a-z]{2,3}")


@API.route(
    "GET",
    f"{PREFIX}/recordings/{{recording_id}}/languages/{{language}}/composed.webm",
    summary="One interpretation channel's version of the composed video (docs/interpretation.md): the same picture, "
    "the interpreter over the floor; as composed.webm otherwise.",
    authenticated=False,
    binary_response="video/webm",
    errors=(401, 403, 404),
    tags=("recordings",),
)
async def composed_channel_file(request: web.Request) -> web.StreamResponse:
    language = request.match_info["language"]
    if not _LANGUAGE.fullmatch(language):
        raise NotFound("no such language")
    return await _serve_composed(request, language)


async def _serve_composed(request: web.Request, language: str | None) -> web.StreamResponse:
    recording_id = path_uuid(request, "recording_id")
    compositions = request.app[keys.COMPOSITIONS]

    async def lookup() -> tuple[uuid.UUID, ServedFile]:
        composed = await compositions.file(recording_id, "webm", language)
        if composed is None:
            what = f"a {language} version of its composed video" if language else "a composed video"
            raise NotFound(f"the recording has no {what} (yet)")
        target: dict[str, Any] = {"composed_file_id": composed["id"], "format": "webm"}
        if language:
            target["language"] = language
        return composed["id"], ServedFile(
            file_key=composed["file_key"],
            target=target,
            content_type="video/webm",
            filename=f"{recording_id}.{language}.webm" if language else f"{recording_id}.webm",
        )

    return await _serve_download(request, recording_id, lookup)


async def _refuse_banned(request: web.Request, principal: str) -> None:
    """A signed link outlives nothing it was given for: not the ban of whoever it was signed for."""
    if principal != "admin":
        person = await request.app[keys.STORE].find_participant(uuid.UUID(principal))
        if person is not None and person["banned_at"] is not None:
            raise banned(person["ban_reason"])


@dataclass(frozen=True)
class ServedFile:
    """One downloadable file of a recording: where it is and how the download log and the response name it."""

    file_key: str | None
    target: dict[str, Any]
    content_type: str
    filename: str


async def _serve_download(
    request: web.Request,
    recording_id: uuid.UUID,
    lookup: Callable[[], Awaitable[tuple[uuid.UUID, ServedFile]]],
    *,
    signed_for: uuid.UUID | None = None,
) -> web.StreamResponse:
    """A recording's file (a track, the composed video) to a bearer token or a signed URL, with Range, If-Range and
    ETag; every download logged (and audited) in one transaction. `lookup` names the file (404 when absent); a file
    whose id is in its path (`signed_for`: a track) has a signed link checked before it is looked up."""
    app = request.app
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None:
        who = await app[keys.AUTH].principal(token)
        row = await _load(request, who, recording_id)
        principal, via = _principal_name(who), "bearer"
        file_id, found = await lookup()
    else:
        _signed_query(request)  # a malformed or expired link is refused before anything is looked up
        if signed_for is not None:  # a track: its link is checked (and its holder's ban) before the lookup
            principal, via = _check_signature(request, recording_id, signed_for)
            await _refuse_banned(request, principal)
        file_id, found = await lookup()
        if signed_for is None:
            principal, via = _check_signature(request, recording_id, file_id)
            await _refuse_banned(request, principal)
        row = await app[keys.RECORDING_STORE].get(recording_id)
    if row["state"] == "deleted" or not found.file_key:
        raise NotFound("the file was deleted")
    path = app[keys.STORAGE].path(found.file_key)
    if not path.is_file():
        raise NotFound("file not found")
    range_header = request.headers.get("Range")
    stale_range = _stale_if_range(request, path)
    if stale_range:
        range_header = None
    status = 206 if range_header else 200
    change = Change(
        row["workshop_id"],
        await _downloader(request, principal),
        "recording.download",
        target={"recording_id": recording_id, **found.target},
        details={"via": via, "range": range_header, "status": status},
    )
    await app[keys.RECORDING_STORE].log_download(
        recording_id,
        file_id,
        principal=principal,
        via=via,
        range_header=range_header,
        status=status,
        change=change,
    )
    headers = {
        "Content-Type": found.content_type,
        "Content-Disposition": f'inline; filename="{found.filename}"',
        "Cache-Control": "private, no-store",
    }
    if stale_range:
        return await _whole_file(request, path, headers)
    return web.FileResponse(path, headers=headers)


@API.route(
    "POST",
    f"{PREFIX}/recordings/{{recording_id}}/composition",
    summary="Compose the recording's video again, from scratch (e.g. after `failed`); moderators, organiser. "
    "The body may be empty. 409 while a composition runs, or when there is nothing to compose.",
    response=Composition,
    status=202,
    errors=(409,),
    tags=("recordings",),
)
async def requeue_composition(request: web.Request, who: Principal) -> web.Response:
    recording_id = path_uuid(request, "recording_id")
    row = await _load_for_moderator(request, who, recording_id, "compose a recording")
    change = Change(
        row["workshop_id"],
        await actor_for(request, who),
        "recording.compose",
        target={"recording_id": recording_id, "room_id": row["room_id"]},
    )
    await request.app[keys.COMPOSITIONS].requeue(recording_id, change=change)
    if keys.COMPOSER in request.app:
        request.app[keys.COMPOSER].wake()
    job = await request.app[keys.COMPOSITIONS].get(recording_id)
    assert job is not None
    return json_model(Composition(state=job["state"], progress=job["progress"], error=job["error"]), status=202)


async def _downloader(request: web.Request, principal: str) -> Actor:
    """Who downloads, as the audit log records it (a signed URL names the principal it was made for)."""
    if principal == "admin":
        return ADMIN
    person_id = uuid.UUID(principal)
    row = await request.app[keys.STORE].find_participant(person_id)
    if row is None:
        return Actor(id=person_id, role="participant")
    return Actor(id=person_id, role=row["role"], display_name=row["display_name"])


def _etag(path: Path) -> str:
    st = path.stat()
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'  # the same strong tag aiohttp's FileResponse sends


def _size(path: Path) -> int:
    return path.stat().st_size


def _stale_if_range(request: web.Request, path: Path) -> bool:
    """aiohttp honours If-Range only with a date. With an entity tag that does not match (weak tags never
    do), RFC 9110 says to send the whole file instead of the range."""
    if_range = request.headers.get("If-Range", "").strip()
    return bool(request.headers.get("Range")) and if_range.startswith(('"', "W/")) and if_range != _etag(path)


async def _whole_file(request: web.Request, path: Path, headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(
        status=200,
        headers={**headers, "ETag": _etag(path), "Accept-Ranges": "bytes", "Content-Length": str(_size(path))},
    )
    await response.prepare(request)
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, 256 * 1024):
            await response.write(chunk)
    await response.write_eof()
    return response


def _signed_query(request: web.Request) -> tuple[str, str, str]:
    """The signed link's parts, well formed and not expired (its signature is checked by `_check_signature`)."""
    q = request.query
    exp, by, sig = q.get("exp", ""), q.get("by", ""), q.get("sig", "")
    if not (exp and by and sig):
        raise Unauthenticated("a bearer token or a signed download URL is required")
    if not (_EXP.fullmatch(exp) and _BY.fullmatch(by) and _SIG.fullmatch(sig)):
        raise Unauthenticated("the download URL is not valid")
    if int(exp) < time.time():
        raise Unauthenticated("the download URL has expired")
    return exp, by, sig


def _check_signature(request: web.Request, recording_id: uuid.UUID, file_id: uuid.UUID) -> tuple[str, str]:
    exp, by, sig = _signed_query(request)
    expected = _sign(request.app[keys.SIGNING_SECRET], recording_id, file_id, int(exp), by)
    if not hmac.compare_digest(expected, sig):
        raise Unauthenticated("the download URL is not valid")
    return by, "signed_url"
