"""Participants: the roster, roster import, join tokens and revocation."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from server import keys
from server.api import API, PREFIX
from server.api.paging import page_of, page_request
from server.api.routing import json_model, path_uuid, read_body, read_json
from server.api.schemas import (
    ImportResult,
    JoinToken,
    MePatch,
    Page,
    Participant,
    ParticipantCreate,
    ParticipantPatch,
)
from server.api.workshops import actor_for, require_member
from server.auth import Principal, banned
from server.directory import profile_of
from server.http_errors import validation_details
from signaling.audit import Change
from signaling.errors import Conflict, InvalidArgument, PermissionDenied
from signaling.service import CLOSE_REMOVED, CLOSE_UNAUTHENTICATED

IMPORT_COLUMNS = ("display_name", "country", "organisation", "email", "role", "language", "timezone")
MAX_IMPORT_ROWS = 5000


def _present(request: web.Request, row: Any, workshop: Any, *, with_token: bool) -> Participant:
    out = Participant.model_validate(dict(row))
    if with_token and row["banned_at"] is None:  # no join link is minted for a banned participant
        issued = request.app[keys.ISSUER].issue(row, workshop_ends_at=workshop["ends_at"])
        out.join_token, out.join_url, out.token_expires_at = issued.token, issued.url, issued.expires_at
    return out


async def _check_room(store: Any, workshop_id: uuid.UUID, room_id: uuid.UUID | None) -> None:
    if room_id is not None and room_id not in await store.room_ids(workshop_id):
        raise InvalidArgument(
            "room_id is not a room of this workshop", details=[{"field": "room_id", "message": "unknown room"}]
        )


def _email_taken() -> Conflict:
    """The roster's only unique key is the e-mail: name the field, not the database index."""
    return Conflict(
        "a participant with this e-mail address already exists in this workshop",
        details=[{"field": "email", "message": "already on this workshop's roster"}],
    )


def _require_manager(who: Principal, workshop_id: uuid.UUID) -> None:
    require_member(who, workshop_id)
    if not who.manages(workshop_id):
        raise PermissionDenied("only the organiser may change the roster")


@API.route(
    "POST",
    f"{PREFIX}/workshops/{{workshop_id}}/participants",
    summary="Add a participant; the answer carries its join_token and join_url (admin, organiser).",
    body=ParticipantCreate,
    response=Participant,
    status=201,
    errors=(409,),
    tags=("participants",),
)
async def create_participant(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    _require_manager(who, workshop_id)
    body = await read_body(request, ParticipantCreate)
    store = request.app[keys.STORE]
    workshop = await store.get_workshop(workshop_id)
    await _check_room(store, workshop_id, body.room_id)
    try:
        (row,) = await store.create_participants(workshop_id, [body.model_dump()], actor=await actor_for(request, who))
    except Conflict as exc:
        raise _email_taken() from exc
    if body.interpreter is not None:
        await request.app[keys.COMMANDS].interpretation_changed(
            str(workshop_id), *await store.interpretation(workshop_id)
        )
    return json_model(_present(request, row, workshop, with_token=True), status=201)


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/participants",
    summary="List the roster (admin, organiser, moderator); join links for the admin and organiser.",
    response=Page[Participant],
    paged=True,
    tags=("participants",),
)
async def list_participants(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    require_member(who, workshop_id)
    if not who.moderates(workshop_id):
        raise PermissionDenied("only moderators and the organiser may read the roster")
    store = request.app[keys.STORE]
    workshop = await store.get_workshop(workshop_id)
    limit, after = page_request(request)
    rows = await store.list_participants(workshop_id, limit=limit + 1, after=after)
    with_token = who.manages(workshop_id)
    return json_model(
        page_of(
            rows,
            limit,
            lambda r: _present(request, r, workshop, with_token=with_token).model_dump(mode="json"),
        )
    )


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/participants/{{participant_id}}",
    summary="Read one participant (admin, organiser, moderator, or the participant itself).",
    response=Participant,
    tags=("participants",),
)
async def get_participant(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    require_member(who, workshop_id)
    if not (who.moderates(workshop_id) or who.participant_id == participant_id):
        raise PermissionDenied("you may read only your own record")
    store = request.app[keys.STORE]
    workshop = await store.get_workshop(workshop_id)
    row = await store.get_participant(workshop_id, participant_id)
    return json_model(_present(request, row, workshop, with_token=who.manages(workshop_id)))


@API.route(
    "PATCH",
    f"{PREFIX}/workshops/{{workshop_id}}/participants/{{participant_id}}",
    summary="Change a participant (admin, organiser).",
    body=ParticipantPatch,
    response=Participant,
    errors=(409,),
    tags=("participants",),
)
async def patch_participant(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    _require_manager(who, workshop_id)
    body = await read_body(request, ParticipantPatch)
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and name not in ("email", "room_id", "language", "interpreter"):
            raise InvalidArgument(f"{name} cannot be null", details=[{"field": name, "message": "not nullable"}])
    store = request.app[keys.STORE]
    workshop = await store.get_workshop(workshop_id)
    await _check_room(store, workshop_id, changes.get("room_id"))
    try:
        row = await store.update_participant(workshop_id, participant_id, changes, actor=await actor_for(request, who))
    except Conflict as exc:
        raise _email_taken() from exc
    commands = request.app[keys.COMMANDS]
    if "interpreter" in changes:  # before the profile: the member's room may gain (or lose) interpretation
        await commands.interpretation_changed(str(workshop_id), *await store.interpretation(workshop_id))
    await commands.participant_changed(str(workshop_id), str(row["id"]), profile_of(row))
    return json_model(_present(request, row, workshop, with_token=True))


@API.route(
    "DELETE",
    f"{PREFIX}/workshops/{{workshop_id}}/participants/{{participant_id}}",
    summary="Remove a participant: tokens stop working, a live session is closed (admin, organiser).",
    status=204,
    tags=("participants",),
)
async def delete_participant(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    _require_manager(who, workshop_id)
    store = request.app[keys.STORE]
    await store.delete_participant(workshop_id, participant_id, actor=await actor_for(request, who))
    commands = request.app[keys.COMMANDS]
    await commands.remove_participant(
        str(workshop_id), str(participant_id), close_code=CLOSE_REMOVED, reason="removed from the workshop", by=None
    )
    await commands.interpretation_changed(str(workshop_id), *await store.interpretation(workshop_id))
    return web.Response(status=204)


@API.route(
    "POST",
    f"{PREFIX}/workshops/{{workshop_id}}/participants/{{participant_id}}/token",
    summary="Mint a new join token (admin, organiser); refused with 403 `banned` while the participant is banned.",
    response=JoinToken,
    tags=("participants",),
)
async def mint_token(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    _require_manager(who, workshop_id)
    store = request.app[keys.STORE]
    workshop = await store.get_workshop(workshop_id)
    row = await store.get_participant(workshop_id, participant_id)
    if row["banned_at"] is not None:
        raise banned(row["ban_reason"])
    issued = request.app[keys.ISSUER].issue(row, workshop_ends_at=workshop["ends_at"])
    # A credential handed out: recorded before it leaves the server (the token itself is not kept).
    await store.audit.write_alone(
        store.pool,
        Change(
            workshop_id=workshop_id,
            actor=await actor_for(request, who),
            action="participant.token_mint",
            target={"participant_id": participant_id},
            details={"expires_at": issued.expires_at, "token_generation": row["token_generation"]},
        ),
    )
    return json_model(JoinToken(join_token=issued.token, join_url=issued.url, expires_at=issued.expires_at))


@API.route(
    "POST",
    f"{PREFIX}/workshops/{{workshop_id}}/participants/{{participant_id}}/revoke",
    summary="Revoke every join token of a participant; a live session is closed (admin, organiser).",
    response=Participant,
    tags=("participants",),
)
async def revoke_tokens(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    _require_manager(who, workshop_id)
    store = request.app[keys.STORE]
    row = await store.revoke_participant(workshop_id, participant_id, actor=await actor_for(request, who))
    await request.app[keys.COMMANDS].remove_participant(
        str(workshop_id), str(participant_id), close_code=CLOSE_UNAUTHENTICATED, reason="token revoked", by=None
    )
    return json_model(Participant.model_validate(dict(row)))


_ROWS = TypeAdapter(list[dict[str, Any]])


def _parse_csv(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text), strict=True)
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ("display_name", "country") if c not in header]
    unknown = [c for c in header if c not in IMPORT_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise InvalidArgument(
            "the header row must be " + ",".join(IMPORT_COLUMNS),
            details=[{"line": 1, "missing": missing, "unknown": unknown}],
        )
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    try:
        for record in reader:
            line = reader.line_num
            if None in record or any(v is None for v in record.values()):
                errors.append({"line": line, "field": "(row)", "message": "wrong number of columns"})
                continue
            cleaned = {k: v for k, v in record.items() if v != "" or k in ("display_name", "country")}
            rows.append((line, cleaned))
    except csv.Error as exc:
        errors.append({"line": reader.line_num, "field": "(row)", "message": f"unreadable CSV: {exc}"})
    return rows, errors


@API.route(
    "POST",
    f"{PREFIX}/workshops/{{workshop_id}}/participants/import",
    summary="Import a roster, all or nothing: text/csv with header display_name,country,organisation,email,role "
    "(and optionally timezone), or a JSON list of participant objects (admin, organiser).",
    body=ParticipantCreate,
    extra_body_types={
        "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/ParticipantCreate"}}},
        "text/csv": {"schema": {"type": "string"}},
    },
    response=ImportResult,
    status=201,
    errors=(409, 413),
    tags=("participants",),
)
async def import_participants(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    _require_manager(who, workshop_id)
    store = request.app[keys.STORE]
    workshop = await store.get_workshop(workshop_id)
    where = "line"
    if request.content_type == "text/csv":
        raw = await request.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidArgument("CSV must be UTF-8") from exc
        rows, errors = _parse_csv(text)
    else:
        data = await read_json(request)
        try:
            items = _ROWS.validate_python(data)
        except ValidationError as exc:
            raise InvalidArgument("body must be a JSON list of participant objects") from exc
        # A JSON list is addressed by its zero-based index, as in a JSON pointer.
        rows, errors, where = list(enumerate(items)), [], "index"
    if len(rows) > MAX_IMPORT_ROWS:
        raise InvalidArgument(f"at most {MAX_IMPORT_ROWS} rows per import")
    if not rows and not errors:
        raise InvalidArgument("nothing to import")
    valid: list[dict[str, Any]] = []
    emails: dict[str, int] = {}
    rooms = await store.room_ids(workshop_id)
    for position, record in rows:
        try:
            person = ParticipantCreate.model_validate(record)
        except ValidationError as exc:
            errors += [{where: position, **detail} for detail in validation_details(exc)]
            continue
        if person.email:
            key = person.email.lower()
            if key in emails:
                errors.append({where: position, "field": "email", "message": f"same e-mail as {where} {emails[key]}"})
            emails.setdefault(key, position)
        if person.room_id is not None and person.room_id not in rooms:
            errors.append({where: position, "field": "room_id", "message": "not a room of this workshop"})
        valid.append(person.model_dump())
    # Report clashes with the roster by line like any other bad row; the unique index still guards the race.
    for key in await store.taken_emails(workshop_id, list(emails)):
        errors.append({where: emails[key], "field": "email", "message": "already on this workshop's roster"})
    if errors:
        errors.sort(key=lambda e: e.get(where, 0))
        raise InvalidArgument(f"{len(errors)} problem(s) in the roster; nothing was imported", details=errors)
    try:
        created = await store.create_participants(
            workshop_id, valid, actor=await actor_for(request, who), imported=True
        )
    except Conflict as exc:
        raise Conflict("a participant with one of these e-mail addresses already exists; nothing was imported") from exc
    if any(person.get("interpreter") for person in valid):
        await request.app[keys.COMMANDS].interpretation_changed(
            str(workshop_id), *await store.interpretation(workshop_id)
        )
    people = [_present(request, row, workshop, with_token=True) for row in created]
    return json_model(ImportResult(imported=len(people), items=people), status=201)


@API.route(
    "PATCH",
    f"{PREFIX}/me",
    summary="Change your own settings with your join token: your time zone (the join page's agenda shows it).",
    body=MePatch,
    response=Participant,
    tags=("participants",),
)
async def patch_me(request: web.Request, who: Principal) -> web.Response:
    if who.participant_id is None or who.workshop_id is None:
        raise PermissionDenied("only a participant's join token has its own settings")
    body = await read_body(request, MePatch)
    changes = body.model_dump(exclude_unset=True)
    row = await request.app[keys.STORE].update_participant(
        who.workshop_id, who.participant_id, changes, actor=await actor_for(request, who)
    )
    return json_model(Participant.model_validate(dict(row)))
