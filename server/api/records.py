"""The workshop's record: attendance reports, consent evidence per recording, certificates of attendance.

All of it is for the organiser (and the admin): it names everyone. A participant may download their own
certificate; anyone may verify one by its code, and learns only what the certificate states.
"""

from __future__ import annotations

import csv
import html
import io
import re
import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from aiohttp import web
from pydantic import BaseModel, Field

from recordings.model import consent_holds
from server import keys
from server.api import API, PREFIX
from server.api.routing import json_model, path_uuid, read_body
from server.api.schemas import Body
from server.api.workshops import actor_for, require_member
from server.attendance import MAX_TIMELINE_POINTS, Report, build_report, timeline_points
from server.auth import Principal
from server.pdf import certificate_pdf, consent_pdf, group_code, workshop_dates
from server.records_store import CertificateDraft, normalise_code
from signaling.errors import InvalidArgument, NotFound, PermissionDenied

DEFAULT_MIN_SHARE = 0.75
DEFAULT_STEP_S = 300
_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")

MIN_SHARE_PARAM = {
    "name": "min_share",
    "description": "The share of the scheduled time (0 to 1) someone must be present for to count in "
    "`present_min_share` (default 0.75).",
    "schema": {"type": "number", "minimum": 0, "maximum": 1, "default": DEFAULT_MIN_SHARE},
}
STEP_PARAM = {
    "name": "step_s",
    "description": "Seconds between two points of the timeline (default 300).",
    "schema": {"type": "integer", "minimum": 1, "maximum": 86400, "default": DEFAULT_STEP_S},
}
CsvTable = Literal["people", "rooms", "countries", "organisations", "timeline"]
TABLES: tuple[str, ...] = get_args(CsvTable)
TABLE_PARAM = {
    "name": "table",
    "description": "Which table of the report (default people).",
    "schema": {"type": "string", "enum": list(TABLES)},
}


# Attendance ------------------------------------------------------------------------------------


class RoomMinutes(BaseModel):
    room_id: uuid.UUID
    room_name: str
    seconds: int
    minutes: float


class PersonAttendance(BaseModel):
    participant_id: uuid.UUID
    display_name: str
    country: str
    organisation: str
    role: str
    on_roster: bool = Field(description="False for someone removed from the roster after attending.")
    first_join: datetime | None
    last_leave: datetime | None = Field(description="None while present (or if never present).")
    present_now: bool
    seconds_present: int
    minutes_present: float
    share_of_schedule: float = Field(description="Presence within the scheduled time, over its length (0 to 1).")
    drops: int = Field(description="Connections lost (resumed within the grace period or not).")
    visits: int
    rooms: list[RoomMinutes]


class GroupAttendance(BaseModel):
    name: str = Field(description="The country code or the organisation.")
    invited: int
    present: int = Field(description="Present at any time.")
    present_min_share: int = Field(description="Present for at least `min_share` of the scheduled time.")
    average_minutes: float = Field(description="Over those present at any time.")


class TimelinePoint(BaseModel):
    at: datetime
    total: int
    by_country: dict[str, int]


class AttendanceReport(BaseModel):
    workshop_id: uuid.UUID
    scheduled_from: datetime
    scheduled_to: datetime
    scheduled_minutes: float
    min_share: float
    step_s: int
    generated_at: datetime
    people: list[PersonAttendance]
    countries: list[GroupAttendance]
    organisations: list[GroupAttendance]
    timeline: list[TimelinePoint]


def _query_number(request: web.Request, name: str, default: float, lo: float, hi: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _NUMBER.fullmatch(raw) or not lo <= float(raw) <= hi:
        raise InvalidArgument(
            f"{name} must be a number between {lo:g} and {hi:g}",
            details=[{"field": name, "message": f"must be a number between {lo:g} and {hi:g}"}],
        )
    return float(raw)


def require_manager(who: Principal, workshop_id: uuid.UUID, action: str) -> None:
    require_member(who, workshop_id)
    if not who.manages(workshop_id):
        raise PermissionDenied(f"only the organiser may {action}")


async def _report(request: web.Request, who: Principal) -> tuple[Any, Report]:
    workshop_id = path_uuid(request, "workshop_id")
    require_manager(who, workshop_id, "read the attendance report")
    workshop = await request.app[keys.STORE].get_workshop(workshop_id)
    min_share = _query_number(request, "min_share", DEFAULT_MIN_SHARE, 0, 1)
    step_s = int(_query_number(request, "step_s", DEFAULT_STEP_S, 1, 86400))
    if request.query.get("step_s") is not None and "." in request.query["step_s"]:
        raise InvalidArgument("step_s must be an integer", details=[{"field": "step_s", "message": "not an integer"}])
    records = request.app[keys.RECORDS]
    people = await records.people(workshop_id)
    visits = await records.visits(workshop_id)
    now = request.app[keys.CLOCK].now()
    scheduled = (workshop["starts_at"], workshop["ends_at"])
    if timeline_points(visits, scheduled, now, step_s) > MAX_TIMELINE_POINTS:
        raise InvalidArgument(
            f"step_s is too small: the timeline would have more than {MAX_TIMELINE_POINTS} points",
            details=[{"field": "step_s", "message": "too small for this workshop"}],
        )
    report = build_report(people, visits, scheduled=scheduled, min_share=min_share, step_s=step_s, now=now)
    return workshop, report


def _present(workshop: Any, report: Report) -> AttendanceReport:
    return AttendanceReport(
        workshop_id=workshop["id"],
        scheduled_from=report.scheduled_from,
        scheduled_to=report.scheduled_to,
        scheduled_minutes=round((report.scheduled_to - report.scheduled_from).total_seconds() / 60, 2),
        min_share=report.min_share,
        step_s=report.step_s,
        generated_at=report.now,
        people=[
            PersonAttendance(
                participant_id=p.person.id,
                display_name=p.person.display_name,
                country=p.person.country,
                organisation=p.person.organisation,
                role=p.person.role,
                on_roster=p.person.on_roster,
                first_join=p.first_join,
                last_leave=p.last_leave,
                present_now=p.present_now,
                seconds_present=round(p.seconds_present),
                minutes_present=round(p.seconds_present / 60, 2),
                share_of_schedule=round(p.share, 4),
                drops=p.drops,
                visits=p.visits,
                rooms=[
                    RoomMinutes(
                        room_id=r.room_id,
                        room_name=r.room_name,
                        seconds=round(r.seconds),
                        minutes=round(r.seconds / 60, 2),
                    )
                    for r in p.rooms
                ],
            )
            for p in report.people
        ],
        countries=[GroupAttendance(name=g.key, **_group(g)) for g in report.countries],
        organisations=[GroupAttendance(name=g.key, **_group(g)) for g in report.organisations],
        timeline=[TimelinePoint(at=t.at, total=t.total, by_country=t.by_country) for t in report.timeline],
    )


def _group(g: Any) -> dict[str, Any]:
    return {
        "invited": g.invited,
        "present": g.present,
        "present_min_share": g.present_min_share,
        "average_minutes": round(g.average_minutes, 2),
    }


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/attendance",
    summary="Attendance: per person, per country and organisation, and a timeline of presence by country (organiser).",
    response=AttendanceReport,
    query=(MIN_SHARE_PARAM, STEP_PARAM),
    tags=("records",),
)
async def attendance(request: web.Request, who: Principal) -> web.Response:
    workshop, report = await _report(request, who)
    return json_model(_present(workshop, report))


def _csv_rows(report: AttendanceReport, table: str) -> list[list[Any]]:
    def when(at: datetime | None) -> str:
        return at.isoformat() if at is not None else ""

    if table == "people":
        rows: list[list[Any]] = [
            [
                "participant_id",
                "display_name",
                "country",
                "organisation",
                "role",
                "first_join",
                "last_leave",
                "seconds_present",
                "minutes_present",
                "share_of_schedule",
                "drops",
                "visits",
                "minutes_per_room",
            ]
        ]
        rows += [
            [
                p.participant_id,
                p.display_name,
                p.country,
                p.organisation,
                p.role,
                when(p.first_join),
                when(p.last_leave),
                p.seconds_present,
                p.minutes_present,
                p.share_of_schedule,
                p.drops,
                p.visits,
                "; ".join(f"{r.room_name}: {r.minutes}" for r in p.rooms),
            ]
            for p in report.people
        ]
        return rows
    if table == "rooms":
        rows = [["participant_id", "display_name", "country", "room_id", "room_name", "seconds", "minutes"]]
        rows += [
            [p.participant_id, p.display_name, p.country, r.room_id, r.room_name, r.seconds, r.minutes]
            for p in report.people
            for r in p.rooms
        ]
        return rows
    if table in ("countries", "organisations"):
        groups = report.countries if table == "countries" else report.organisations
        rows = [["country" if table == "countries" else "organisation", "invited", "present", "present_min_share"]]
        rows[0].append("average_minutes")
        rows += [[g.name, g.invited, g.present, g.present_min_share, g.average_minutes] for g in groups]
        return rows
    countries = sorted({c for t in report.timeline for c in t.by_country})
    rows = [["at", "total", *countries]]
    rows += [[when(t.at), t.total, *(t.by_country.get(c, 0) for c in countries)] for t in report.timeline]
    return rows


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/attendance.csv",
    summary="The attendance report as CSV, one table at a time (organiser).",
    binary_response="text/csv",
    query=(TABLE_PARAM, MIN_SHARE_PARAM, STEP_PARAM),
    tags=("records",),
)
async def attendance_csv(request: web.Request, who: Principal) -> web.Response:
    table = request.query.get("table", "people")
    if table not in TABLES:
        raise InvalidArgument(
            "table must be people, rooms, countries, organisations or timeline",
            details=[{"field": "table", "message": "unknown table"}],
        )
    workshop, report = await _report(request, who)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(_csv_rows(_present(workshop, report), table))
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="attendance-{table}-{workshop["id"]}.csv"'},
    )


# Consent evidence ------------------------------------------------------------------------------

ConsentStatus = Literal["consented", "declined", "withdrawn", "no_answer"]


class EvidenceRecording(BaseModel):
    id: uuid.UUID
    workshop_id: uuid.UUID
    room_id: uuid.UUID
    room_name: str
    state: str
    partial: bool
    consent_mode: Literal["explicit", "assumed"]
    started_by: uuid.UUID | None
    started_by_role: str
    started_at: datetime
    stopped_at: datetime | None
    deleted_at: datetime | None


class LedgerEntry(BaseModel):
    at: datetime
    participant_id: uuid.UUID
    display_name: str
    granted: bool
    connection_id: str | None = Field(description="The WebSocket session the answer came from (X-Request-Id).")


class LedgerState(BaseModel):
    """Who had consented, declined and withdrawn from this moment until the next answer."""

    at: datetime
    consented: list[uuid.UUID]
    declined: list[uuid.UUID]
    withdrawn: list[uuid.UUID]


class EvidenceTrack(BaseModel):
    id: uuid.UUID
    participant_id: uuid.UUID
    kind: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    sha256: str | None


class EvidencePerson(BaseModel):
    participant_id: uuid.UUID
    display_name: str
    organisation: str
    country: str
    asked_at: datetime | None = Field(description="When they were first told of the recording in its room.")
    answers: int
    status: ConsentStatus = Field(description="Their last answer: consented, declined, withdrawn (yes, then no).")
    consent_held: bool = Field(description="Whether their media could be recorded, by the mode and last answer.")
    tracks: list[str] = Field(description="Kinds of the tracks they appear in; empty: never recorded.")


class EvidenceDownload(BaseModel):
    at: datetime
    by: str = Field(description="'admin', or the participant id (also behind a signed URL).")
    by_name: str
    track_id: uuid.UUID
    track_owner: str
    track_kind: str
    via: str
    range_header: str | None
    status: int


class ConsentEvidence(BaseModel):
    workshop_title: str
    generated_at: datetime
    recording: EvidenceRecording
    people: list[EvidencePerson]
    ledger: list[LedgerEntry]
    states: list[LedgerState]
    tracks: list[EvidenceTrack]
    never_recorded: list[uuid.UUID] = Field(description="People told of the recording who appear in no track.")
    downloads: list[EvidenceDownload]


def _status(answers: list[bool]) -> ConsentStatus:
    if not answers:
        return "no_answer"
    if answers[-1]:
        return "consented"
    return "withdrawn" if any(answers) else "declined"


async def consent_evidence(request: web.Request, who: Principal) -> tuple[Any, ConsentEvidence]:
    app = request.app
    recording_id = path_uuid(request, "recording_id")
    rec_store = app[keys.RECORDING_STORE]
    try:
        row = await rec_store.get(recording_id)
    except NotFound:
        raise NotFound("recording not found") from None
    # Absent for another workshop; for a member who is not its organiser, refused (the room announced the
    # recording to everyone in it, so its id is no secret within the workshop).
    require_manager(who, row["workshop_id"], "export consent evidence")
    workshop = await app[keys.STORE].get_workshop(row["workshop_id"])
    records = app[keys.RECORDS]
    now = app[keys.CLOCK].now()
    end = row["stopped_at"] or now
    during = await records.visits_during(row["room_id"], row["started_at"], end)
    ledger_rows = await records.consent_ledger(recording_id)
    track_rows = await rec_store.tracks(recording_id)
    download_rows = await rec_store.downloads(recording_id)
    principals = {uuid.UUID(d["principal"]) for d in download_rows if d["principal"] != "admin"}
    ids = (
        {v["participant_id"] for v in during}
        | {e["participant_id"] for e in ledger_rows}
        | {t["participant_id"] for t in track_rows}
    )
    people = await records.people_by_id(sorted(ids | principals))

    def name(pid: uuid.UUID) -> str:
        person = people.get(pid)
        return person.display_name if person is not None else str(pid)

    asked: dict[uuid.UUID, datetime] = {}
    for v in during:
        at = max(v["started_at"], row["started_at"])
        asked[v["participant_id"]] = min(asked.get(v["participant_id"], at), at)
    answers: dict[uuid.UUID, list[bool]] = {}
    states = []
    for e in ledger_rows:
        answers.setdefault(e["participant_id"], []).append(e["granted"])
        by_status: dict[str, list[uuid.UUID]] = {"consented": [], "declined": [], "withdrawn": []}
        for pid, given in sorted(answers.items()):
            by_status[_status(given)].append(pid)
        states.append(LedgerState(at=e["at"], **by_status))
    kinds: dict[uuid.UUID, list[str]] = {}
    for t in track_rows:
        kinds.setdefault(t["participant_id"], []).append(t["kind"])
    track_of = {t["id"]: t for t in track_rows}
    evidence_people = []
    for pid in sorted(ids, key=lambda p: (name(p).casefold(), str(p))):
        person = people.get(pid)
        given = answers.get(pid, [])
        evidence_people.append(
            EvidencePerson(
                participant_id=pid,
                display_name=name(pid),
                organisation=person.organisation if person else "",
                country=person.country if person else "",
                asked_at=asked.get(pid),
                answers=len(given),
                status=_status(given),
                consent_held=consent_holds(row["consent_mode"], given[-1] if given else None),
                tracks=sorted(set(kinds.get(pid, []))),
            )
        )
    downloads = []
    for d in download_rows:
        track = track_of.get(d["track_id"])
        by = d["principal"]
        downloads.append(
            EvidenceDownload(
                at=d["at"],
                by=by,
                by_name="admin" if by == "admin" else name(uuid.UUID(by)),
                track_id=d["track_id"],
                track_owner=name(track["participant_id"]) if track else "",
                track_kind=track["kind"] if track else "composed",  # the only other file: the composed video
                via=d["via"],
                range_header=d["range_header"],
                status=d["status"],
            )
        )
    evidence = ConsentEvidence(
        workshop_title=workshop["title"],
        generated_at=now,
        recording=EvidenceRecording.model_validate(
            {k: v for k, v in dict(row).items() if k in EvidenceRecording.model_fields}
        ),
        people=evidence_people,
        ledger=[
            LedgerEntry(
                at=e["at"],
                participant_id=e["participant_id"],
                display_name=name(e["participant_id"]),
                granted=e["granted"],
                connection_id=e["connection_id"],
            )
            for e in ledger_rows
        ],
        states=states,
        tracks=[EvidenceTrack.model_validate(dict(t)) for t in track_rows],
        never_recorded=[p.participant_id for p in evidence_people if p.asked_at is not None and not p.tracks],
        downloads=downloads,
    )
    return workshop, evidence


@API.route(
    "GET",
    f"{PREFIX}/recordings/{{recording_id}}/consent-evidence",
    summary="A recording's consent evidence: who was asked, every answer with its connection, the ledger at every "
    "moment, who is in which track, who was never recorded, and every download (organiser).",
    response=ConsentEvidence,
    tags=("records", "recordings"),
)
async def get_consent_evidence(request: web.Request, who: Principal) -> web.Response:
    _workshop, evidence = await consent_evidence(request, who)
    return json_model(evidence)


@API.route(
    "GET",
    f"{PREFIX}/recordings/{{recording_id}}/consent-evidence.pdf",
    summary="The consent evidence as a PDF for a data-protection officer (organiser).",
    binary_response="application/pdf",
    tags=("records", "recordings"),
)
async def get_consent_evidence_pdf(request: web.Request, who: Principal) -> web.Response:
    workshop, evidence = await consent_evidence(request, who)
    body = consent_pdf(evidence.model_dump(mode="json"), timezone=workshop["timezone"])
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="consent-{evidence.recording.id}.pdf"'},
    )


# Certificates ----------------------------------------------------------------------------------


class IssueCertificates(Body):
    min_share: float = Field(
        gt=0, le=1, description="Everyone present for at least this share of the scheduled time gets one."
    )


class Certificate(BaseModel):
    code: str = Field(description="The verification code (20 characters of base32; shown in groups of four).")
    participant_id: uuid.UUID
    display_name: str
    organisation: str
    country: str
    workshop_title: str
    timezone: str
    starts_at: datetime
    ends_at: datetime
    dates: str = Field(description="The workshop's dates in its time zone, as printed.")
    minutes_attended: int
    min_share: float
    issued_at: datetime
    verify_url: str
    pdf_url: str


class CertificatePage(BaseModel):
    items: list[Certificate]


class IssuedCertificates(BaseModel):
    issued: list[Certificate] = Field(description="Issued by this call.")
    already_issued: list[uuid.UUID] = Field(description="Qualifying people who had one already (kept as it was).")


class Verification(BaseModel):
    valid: Literal[True]
    code: str
    display_name: str
    organisation: str
    country: str
    workshop_title: str
    dates: str
    minutes_attended: int
    issued_at: datetime


def _certificate(request: web.Request, row: Any) -> Certificate:
    base = request.app[keys.SETTINGS].base_url
    return Certificate(
        code=row["code"],
        participant_id=row["participant_id"],
        display_name=row["display_name"],
        organisation=row["organisation"],
        country=row["country"],
        workshop_title=row["workshop_title"],
        timezone=row["timezone"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        dates=workshop_dates(row["starts_at"], row["ends_at"], row["timezone"]),
        minutes_attended=row["seconds_present"] // 60,
        min_share=row["min_share"],
        issued_at=row["issued_at"],
        verify_url=f"{base}/verify/{row['code']}",
        pdf_url=f"{base}{PREFIX}/workshops/{row['workshop_id']}/certificates/{row['participant_id']}/pdf",
    )


@API.route(
    "POST",
    f"{PREFIX}/workshops/{{workshop_id}}/certificates",
    summary="Issue certificates of attendance to everyone present for at least `min_share` of the scheduled time "
    "(organiser). Who has one keeps it.",
    body=IssueCertificates,
    response=IssuedCertificates,
    status=201,
    tags=("records",),
)
async def issue_certificates(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    require_manager(who, workshop_id, "issue certificates")
    body = await read_body(request, IssueCertificates)
    app = request.app
    workshop = await app[keys.STORE].get_workshop(workshop_id)
    records = app[keys.RECORDS]
    now = app[keys.CLOCK].now()
    people = [p for p in await records.people(workshop_id) if p.on_roster]
    report = build_report(
        people,
        await records.visits(workshop_id),
        scheduled=(workshop["starts_at"], workshop["ends_at"]),
        min_share=body.min_share,
        step_s=86400,
        now=now,
    )
    qualifying = [p for p in report.people if p.visits > 0 and p.share >= body.min_share]
    drafts = [
        CertificateDraft(
            participant_id=p.person.id,
            display_name=p.person.display_name,
            organisation=p.person.organisation,
            country=p.person.country,
            seconds_present=round(p.seconds_in_schedule),
        )
        for p in qualifying
    ]
    issued = await records.issue_certificates(
        workshop,
        drafts,
        min_share=body.min_share,
        issued_at=now,
        issued_by="admin" if who.is_admin else str(who.participant_id),
        actor=await actor_for(request, who),
    )
    new = {r["participant_id"] for r in issued}
    result = IssuedCertificates(
        issued=[_certificate(request, r) for r in issued],
        already_issued=[d.participant_id for d in drafts if d.participant_id not in new],
    )
    return json_model(result, status=201)


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/certificates",
    summary="Every certificate of attendance issued for the workshop (organiser).",
    response=CertificatePage,
    tags=("records",),
)
async def list_certificates(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    require_manager(who, workshop_id, "list certificates")
    rows = await request.app[keys.RECORDS].certificates(workshop_id)
    return json_model(CertificatePage(items=[_certificate(request, r) for r in rows]))


@API.route(
    "GET",
    f"{PREFIX}/workshops/{{workshop_id}}/certificates/{{participant_id}}/pdf",
    summary="A participant's certificate as PDF (the organiser, or the participant themself).",
    binary_response="application/pdf",
    tags=("records",),
)
async def certificate_file(request: web.Request, who: Principal) -> web.Response:
    workshop_id = path_uuid(request, "workshop_id")
    participant_id = path_uuid(request, "participant_id")
    require_member(who, workshop_id)
    if not who.manages(workshop_id) and who.participant_id != participant_id:
        raise PermissionDenied("only the organiser and the participant themself may download a certificate")
    row = await request.app[keys.RECORDS].certificate_of(workshop_id, participant_id)
    cert = _certificate(request, row)
    body = certificate_pdf(
        display_name=cert.display_name,
        organisation=cert.organisation,
        country=cert.country,
        workshop_title=cert.workshop_title,
        dates=cert.dates,
        seconds_present=row["seconds_present"],
        code=cert.code,
        verify_url=cert.verify_url,
    )
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="certificate-{group_code(cert.code)}.pdf"'},
    )


VERIFY_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title><link rel="stylesheet" href="/static/app.css"></head>
<body><main class="verify"><h1>{title}</h1>{body}</main></body></html>
"""


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


@API.route(
    "GET",
    "/verify/{code}",
    summary="Confirm a certificate of attendance by its code (no login): what it states, as JSON, or as a page "
    "for a browser (Accept: text/html). 404 for a code that was never issued.",
    response=Verification,
    authenticated=False,
    errors=(404,),
    tags=("records",),
)
async def verify_certificate(request: web.Request) -> web.Response:
    code = normalise_code(request.match_info["code"])
    row = await request.app[keys.RECORDS].certificate(code) if code is not None else None
    if row is None:
        if _wants_html(request):
            text = VERIFY_PAGE.format(
                title="Certificate not found",
                body="<p>No certificate of attendance was issued with this code.</p>",
            )
            return web.Response(text=text, status=404, content_type="text/html")
        raise NotFound("no certificate has this code")
    cert = _certificate(request, row)
    verification = Verification(
        valid=True,
        code=group_code(cert.code),
        display_name=cert.display_name,
        organisation=cert.organisation,
        country=cert.country,
        workshop_title=cert.workshop_title,
        dates=cert.dates,
        minutes_attended=cert.minutes_attended,
        issued_at=cert.issued_at,
    )
    if not _wants_html(request):
        return json_model(verification)
    fields = [
        ("Name", verification.display_name),
        ("Organisation", verification.organisation),
        ("Country", verification.country),
        ("Workshop", verification.workshop_title),
        ("Dates", verification.dates),
        ("Minutes attended", str(verification.minutes_attended)),
        ("Issued", verification.issued_at.isoformat(timespec="seconds")),
        ("Code", verification.code),
    ]
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in fields)
    text = VERIFY_PAGE.format(
        title="Certificate of attendance: valid",
        body=f"<p>This certificate was issued by Roundtable and states:</p><dl>{rows}</dl>",
    )
    return web.Response(text=text, content_type="text/html")
