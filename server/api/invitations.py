"""Invitations: send by e-mail (all, a list, one again), their states, the reminder setting, a participant's
calendar file and the roster with everyone's join link (docs/invitations.md)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from server import keys
from server.api import API, PREFIX
from server.api.paging import page_of, page_request
from server.api.routing import json_model, path_uuid, read_body
from server.api.schemas import Body, Language, Page
from server.api.workshops import actor_for, require_member
from server.auth import Principal
from server.invitations.service import InvitationService
from server.store import PageKey
from signaling.audit import Change
from signaling.errors import Conflict, PermissionDenied

InvitationState = Literal["queued", "sent", "failed"]
MAX_LISTED = 5000


def _service(request: web.Request) -> InvitationService:
    return request.app[keys.INVITATIONS]


def _require_manager(who: Principal, workshop_id: uuid.UUID) -> None:
    require_member(who, workshop_id)
    if not who.manages(workshop_id):
        raise PermissionDenied("only the organiser may send invitations")


class InvitationSend(Body):
    all: bool = Field(False, description="Everyone on the roster with an e-mail address not yet sent one.")
    participant_ids: list[uuid.UUID] | None = Field(
        None, max_length=MAX_LISTED, description="These participants, whether sent one before or not (a resend)."
    )

    @model_validator(mode="after")
    def _one_of(self) -> InvitationSend:
        if self.all == (self.participant_ids is not None):
            raise ValueError("give either all: true or participant_ids")
        return self


class InvitationsQueued(BaseModel):
    queued: list[uuid.UUID] = Field(description="Queued now; the sender sends them in the background.")
    skipped: list[uuid.UUID] = Field(description="Listed, but without an e-mail address or banned.")
    sending: bool = Field(description="False while no SMTP server is configured: they wait in the queue.")


class InvitationStatus(BaseModel):
    participant_id: uuid.UUID
    display_name: str
    has_email: bool
    banned: bool
    language: Language | None
    state: InvitationState | None = Field(description="Of the invitation; null: never sent one.")
    attempts: int
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When a queued invitation is (re)tried.")
    last_error: str | None = Field(description="Why the last attempt failed (the SMTP server's answer).")
    sent_at: datetime | None
    reminder_state: InvitationState | None
    reminder_sent_at: datetime | None
    reminder_error: str | None


class InvitationSettings(BaseModel):
    reminder_minutes_before: int | None = Field(
        description="A reminder e-mail this long before the first session; null: none."
    )
    reminders_queued_at: datetime | None = Field(description="When the reminders were queued (once).")
    sending: bool = Field(description="Whether an SMTP server is configured (ROUNDTABLE_SMTP_HOST).")


class InvitationSettingsPut(Body):
    reminder_minutes_before: int | None = Field(..., ge=1, le=20160)


@API.route(
    "POST",
    f"{PREFIX}/workshops/{{workshop_id}}/invitations",
    summary="Queue invitation e-mails, with each person's calendar file: to everyone not yet invited (all) or to "
    "the participants listed (admin, organiser).",
    body=InvitationSend,
    response=InvitationsQueued,
    status=202,
    tags=("invitations",),
)
async def send_invitations(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    _require_manager(who, workshop_id)
    body = await read_body(request, InvitationSend)
    service = _service(request)
    await service.store.workshop(workshop_id)
    queued, skipped = await service.store.queue(
        workshop_id,
        list(dict.fromkeys(body.participant_ids)) if body.participant_ids is not None else None,
        now=service.clock.now(),
        actor=await actor_for(request, who),
        action="invitation.send",
    )
    service.kick()
    return json_model(InvitationsQueued(queued=queued, skipped=skipped, sending=service.sending), status=202)


@API.route(
    "POST",
    f"{PREFIX}/workshops/{{workshop_id}}/invitations/{{participant_id}}/resend",
    summary="Send one participant's invitation again, whatever its state (admin, organiser).",
    response=InvitationsQueued,
    status=202,
    errors=(409,),
    tags=("invitations",),
)
async def resend_invitation(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    _require_manager(who, workshop_id)
    service = _service(request)
    person = await service.store.participant(workshop_id, participant_id)
    if person["email"] is None or person["banned_at"] is not None:
        raise Conflict("this participant has no e-mail address, or is banned: nothing to send")
    queued, skipped = await service.store.queue(
        workshop_id,
        [participant_id],
        now=service.clock.now(),
        actor=await actor_for(request, who),
        action="invitation.resend",
    )
    service.kick()
    return json_model(InvitationsQueued(queued=queued, skipped=skipped, sending=service.sending), status=202)


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/invitations",
    summary="Everyone on the roster with the state of their invitation and reminder (admin, organiser).",
    response=Page[InvitationStatus],
    paged=True,
    tags=("invitations",),
)
async def list_invitations(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    _require_manager(who, workshop_id)
    service = _service(request)
    await service.store.workshop(workshop_id)
    limit, after = page_request(request)
    rows = await service.store.statuses(workshop_id, limit=limit + 1, after=after)

    def present(row: dict[str, object]) -> dict[str, object]:
        status = InvitationStatus.model_validate(
            {**dict(row), "participant_id": row["id"], "attempts": row["attempts"] or 0}
        )
        return status.model_dump(mode="json")

    return json_model(page_of(rows, limit, present))


async def _settings(request: web.Request, workshop_id: uuid.UUID) -> InvitationSettings:
    service = _service(request)
    row = await service.store.settings(workshop_id)
    return InvitationSettings(
        reminder_minutes_before=row["reminder_minutes_before"] if row else None,
        reminders_queued_at=row["reminders_queued_at"] if row else None,
        sending=service.sending,
    )


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/invitations/settings",
    summary="The reminder setting, and whether e-mail can be sent (admin, organiser).",
    response=InvitationSettings,
    tags=("invitations",),
)
async def get_invitation_settings(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    _require_manager(who, workshop_id)
    await _service(request).store.workshop(workshop_id)
    return json_model(await _settings(request, workshop_id))


@API.route(
    "PUT",
    f"{PREFIX}/workshops/{{workshop_id}}/invitations/settings",
    summary="Set the reminder: minutes before the first session, or null for none (admin, organiser).",
    body=InvitationSettingsPut,
    response=InvitationSettings,
    tags=("invitations",),
)
async def put_invitation_settings(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    _require_manager(who, workshop_id)
    body = await read_body(request, InvitationSettingsPut)
    service = _service(request)
    await service.store.workshop(workshop_id)
    await service.store.put_settings(workshop_id, body.reminder_minutes_before, actor=await actor_for(request, who))
    service.kick()
    return json_model(await _settings(request, workshop_id))


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/participants/{{participant_id}}/invitation.ics",
    summary="A participant's calendar file with their join link (admin, organiser, or the participant itself).",
    binary_response="text/calendar",
    tags=("invitations",),
)
async def invitation_ics(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    require_member(who, workshop_id)
    if not (who.manages(workshop_id) or who.participant_id == participant_id):
        raise PermissionDenied("only the organiser, or the participant, may have this calendar file")
    service = _service(request)
    person = await service.store.participant(workshop_id, participant_id)
    if person["banned_at"] is not None:
        raise Conflict("no join link is made for a banned participant")
    body, _, _, _ = await service.calendar(workshop_id, participant_id)
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="invitation-{workshop_id}.ics"',
            # It carries a join token: never kept by a cache on the way.
            "Cache-Control": "no-store",
        },
    )


ROSTER_COLUMNS = ("display_name", "country", "organisation", "email", "role", "language", "join_url", "expires_at")


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/roster.csv",
    summary="The roster as CSV with everyone's join link, for sending invitations another way (admin, organiser). "
    "Every export is recorded in the audit log.",
    binary_response="text/csv",
    tags=("invitations", "participants"),
)
async def roster_csv(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    _require_manager(who, workshop_id)
    store = request.app[keys.STORE]
    workshop = await store.get_workshop(workshop_id)
    issuer = request.app[keys.ISSUER]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ROSTER_COLUMNS)
    count = 0
    after = None
    while True:
        rows = await store.list_participants(workshop_id, limit=500, after=after)
        for row in rows:
            link, expires = "", ""
            if row["banned_at"] is None:  # a banned participant gets no link
                issued = issuer.issue(row, workshop_ends_at=workshop["ends_at"])
                link, expires = issued.url, issued.expires_at.isoformat()
            writer.writerow(
                [
                    _cell(row["display_name"]),
                    row["country"],
                    _cell(row["organisation"]),
                    _cell(row["email"] or ""),
                    row["role"],
                    row["language"] or "",
                    link,
                    expires,
                ]
            )
            count += 1
        if len(rows) < 500:
            break
        after = PageKey(rows[-1]["created_at"], rows[-1]["id"])
    # Every join link of the workshop handed out at once: recorded before it leaves the server.
    await store.audit.write_alone(
        store.pool,
        Change(
            workshop_id=workshop_id,
            actor=await actor_for(request, who),
            action="participant.roster_export",
            target={"workshop_id": workshop_id},
            details={"participants": count},
        ),
    )
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="roster-{workshop_id}.csv"',
            "Cache-Control": "no-store",
        },
    )


def _cell(value: str) -> str:
    """A spreadsheet runs a cell that starts with = + - @ as a formula: such text gets a leading apostrophe."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
