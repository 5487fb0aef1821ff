"""HTTP request and response bodies. These models are the API's contract and its OpenAPI schema."""

from __future__ import annotations

import re
import uuid
import zoneinfo
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Generic, Literal, TypeVar

import pycountry
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from server.auth import Role
from signaling.text import find_bad_text

WorkshopStatus = Literal["scheduled", "live", "ended", "cancelled"]
ConsentMode = Literal["explicit", "assumed"]
RoomKind = Literal["plenary", "breakout"]
MediaMode = Literal["mesh", "sfu"]
PublishingMode = Literal["open", "moderated"]
LobbyMode = Literal["off", "everyone", "unverified"]
Language = Literal["en", "ru"]
LANGUAGE_DESCRIPTION = "The language of this participant's invitation and reminder e-mails; null: English."
LOBBY_DESCRIPTION = (
    "off: everyone enters; everyone: every participant and observer waits for a moderator; unverified: those whose "
    "join link was never used before or is used from another device wait (docs/moderation.md)."
)

WorkshopLanguage = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]
LANGUAGES_DESCRIPTION = (
    "The workshop's languages, ISO 639-1 lower-case codes (e.g. en, ru, zh), the floor's usual one first; "
    "interpreters interpret between two of them (docs/interpretation.md)."
)
INTERPRETER_DESCRIPTION = "Set for an interpreter: the pair of workshop languages they interpret between; null: none."
MAX_LANGUAGES = 12


def _distinct(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("languages must not repeat")
    return value


WorkshopLanguages = Annotated[list[WorkshopLanguage], Field(max_length=MAX_LANGUAGES), AfterValidator(_distinct)]
InterpreterPair = Annotated[list[WorkshopLanguage], Field(min_length=2, max_length=2), AfterValidator(_distinct)]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@cache
def _country_codes() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _country(value: str) -> str:
    code = value.strip().upper()
    if code not in _country_codes():
        raise ValueError(f"unknown ISO 3166-1 alpha-2 country code: {value!r}")
    return code


def _time_zone(value: str) -> str:
    if value not in _time_zones():
        raise ValueError(f"unknown IANA time zone: {value!r}")
    return value


def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _email(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not _EMAIL.match(value) or len(value) > 254:
        raise ValueError("not an e-mail address")
    return value


# Far enough either way for any workshop, near enough that adding a day or a token's lifetime, or converting to UTC,
# can never overflow (year 1 and 9999 are accepted by Python and break arithmetic and storage later).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _sane_time(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return value


# Timezone-aware and within [EARLIEST, LATEST): every time a client sends.
Time = Annotated[AwareDatetime, AfterValidator(_sane_time)]

Country = Annotated[str, StringConstraints(min_length=2, max_length=2), AfterValidator(_country)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_single_line)
]
Description = Annotated[str, StringConstraints(max_length=5000)]
DisplayName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(_single_line)
]
Organisation = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_single_line)]
Email = Annotated[str | None, AfterValidator(_email)]


class Body(BaseModel):
    """Every request body: unknown fields are errors, types are not coerced from strings."""

    model_config = ConfigDict(extra="forbid", strict=False)

    # JSON bodies were checked with field paths as they were read (server.api.routing.read_json); this catches text
    # that arrives otherwise (CSV rows) before it can reach PostgreSQL, which cannot store NUL.
    @field_validator("*", mode="after")
    @classmethod
    def _acceptable_text(cls, value: Any) -> Any:
        if isinstance(value, str | list | dict) and (bad := find_bad_text(value)) is not None:
            raise ValueError(bad[1])
        return value


def _check_times(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise ValueError("ends_at must be after starts_at")


class Interpreter(Body):
    """An interpreter's pair: they interpret from either language into the other (docs/interpretation.md)."""

    languages: InterpreterPair


class InterpreterOut(BaseModel):
    languages: list[str]


class WorkshopCreate(Body):
    title: Title
    description: Description = ""
    timezone: TimeZone
    starts_at: Time
    ends_at: Time
    status: WorkshopStatus = "scheduled"
    recording_consent: ConsentMode = Field(
        "explicit",
        description="explicit: a participant is recorded only after saying yes; assumed: unless no.",
    )
    records_retention_days: int | None = Field(
        None,
        ge=1,
        le=36500,
        description="Days after ends_at that attendance, chat and the audit log's personal content are kept; "
        "null: the server's default (ROUNDTABLE_RECORDS_RETENTION_DAYS).",
    )
    plenary_capacity: int | None = Field(None, ge=1, le=10_000)
    lobby: LobbyMode = Field("off", description=LOBBY_DESCRIPTION)
    languages: WorkshopLanguages = Field(default_factory=list, description=LANGUAGES_DESCRIPTION)

    # A field validator (not a model validator) so that the error names `ends_at`, as PATCH does.
    @field_validator("ends_at")
    @classmethod
    def _times(cls, ends_at: datetime, info: ValidationInfo) -> datetime:
        _check_times(info.data.get("starts_at"), ends_at)
        return ends_at


class WorkshopPatch(Body):
    title: Title | None = None
    description: Description | None = None
    timezone: TimeZone | None = None
    starts_at: Time | None = None
    ends_at: Time | None = None
    status: WorkshopStatus | None = None
    recording_consent: ConsentMode | None = None
    records_retention_days: int | None = Field(
        None,
        ge=1,
        le=36500,
        description="Days after ends_at that attendance, chat and the audit log's personal content are kept; "
        "null: the server's default (ROUNDTABLE_RECORDS_RETENTION_DAYS).",
    )
    lobby: LobbyMode | None = Field(None, description=LOBBY_DESCRIPTION)
    languages: WorkshopLanguages | None = Field(None, description=LANGUAGES_DESCRIPTION)

    @field_validator("ends_at")
    @classmethod
    def _times(cls, ends_at: datetime | None, info: ValidationInfo) -> datetime | None:
        _check_times(info.data.get("starts_at"), ends_at)
        return ends_at


class Workshop(BaseModel):
    id: uuid.UUID
    title: str
    description: str
    timezone: str
    starts_at: datetime
    ends_at: datetime
    status: WorkshopStatus
    recording_consent: ConsentMode
    records_retention_days: int | None = None
    lobby: LobbyMode = Field(description=LOBBY_DESCRIPTION)
    languages: list[str] = Field(default_factory=list, description=LANGUAGES_DESCRIPTION)
    plenary_room_id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class Room(BaseModel):
    id: uuid.UUID
    workshop_id: uuid.UUID
    name: str
    kind: RoomKind
    capacity: int
    media: MediaMode
    publishing: PublishingMode
    locked: bool = Field(description="Nobody new enters (moderators and the organiser excepted): they knock.")
    created_at: datetime


RoomName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_single_line)
]


class RoomCreate(Body):
    name: RoomName
    capacity: int | None = Field(None, ge=1, le=10_000, description="Defaults to the breakout capacity setting.")
    media: MediaMode = "mesh"
    publishing: PublishingMode = Field(
        "open",
        description="open: everyone but observers may publish; moderated: "
        "moderators and participants given the floor (sfu rooms).",
    )


class RoomPatch(Body):
    name: RoomName | None = None
    capacity: int | None = Field(None, ge=1, le=10_000)
    media: MediaMode | None = Field(None, description="Switch the live room between mesh and sfu; clients follow.")
    publishing: PublishingMode | None = None
    locked: bool | None = Field(None, description="Lock the room: nobody new enters, joiners knock (moderators).")


class ParticipantCreate(Body):
    display_name: DisplayName
    country: Country
    organisation: Organisation = ""
    email: Email = None
    role: Role = "participant"
    room_id: uuid.UUID | None = Field(None, description="Assigned room; null means the plenary.")
    language: Language | None = Field(None, description=LANGUAGE_DESCRIPTION)
    timezone: TimeZone | None = Field(None, description="The participant's own IANA time zone; null: not known.")
    interpreter: Interpreter | None = Field(None, description=INTERPRETER_DESCRIPTION)


class ParticipantPatch(Body):
    display_name: DisplayName | None = None
    country: Country | None = None
    organisation: Organisation | None = None
    email: Email = None
    role: Role | None = None
    room_id: uuid.UUID | None = Field(None, description="Assigned room; null means the plenary.")
    language: Language | None = Field(None, description=LANGUAGE_DESCRIPTION)
    timezone: TimeZone | None = Field(None, description="The participant's own IANA time zone; null: not known.")
    interpreter: Interpreter | None = Field(None, description=INTERPRETER_DESCRIPTION)


class MePatch(Body):
    timezone: TimeZone | None = Field(
        None, description="Your own IANA time zone (e.g. Asia/Seoul); null forgets it (your browser's zone is used)."
    )


class Participant(BaseModel):
    id: uuid.UUID = Field(description="Also this participant's peer id on the WebSocket.")
    workshop_id: uuid.UUID
    display_name: str
    country: str
    organisation: str
    email: str | None
    role: Role
    room_id: uuid.UUID | None = Field(description="Assigned room; null means the plenary.")
    created_at: datetime
    updated_at: datetime
    banned_at: datetime | None = Field(None, description="Set while the participant is banned: every token is refused.")
    banned_by: uuid.UUID | None = Field(None, description="Who banned them (null: the admin token).")
    ban_reason: str | None = None
    language: Language | None = Field(None, description=LANGUAGE_DESCRIPTION)
    timezone: str | None = Field(None, description="The participant's own IANA time zone, if known.")
    interpreter: InterpreterOut | None = Field(None, description=INTERPRETER_DESCRIPTION)
    join_token: str | None = Field(None, description="Shown to the admin and the organiser only.")
    join_url: str | None = None
    token_expires_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        """A roster row stores the pair as `interpreter_languages`."""
        if isinstance(data, dict) and "interpreter_languages" in data:
            data = dict(data)
            pair = data.pop("interpreter_languages")
            data.setdefault("interpreter", {"languages": list(pair)} if pair is not None else None)
        return data


class JoinToken(BaseModel):
    join_token: str
    join_url: str
    expires_at: datetime


class ImportResult(BaseModel):
    imported: int
    items: list[Participant]


SessionKind = Literal["plenary", "breakouts", "break"]
Presenters = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), AfterValidator(_single_line)]
# A session longer than this is a typo (a day for a month): refused.
MAX_SESSION_S = 24 * 3600


def _check_session(starts_at: datetime | None, ends_at: datetime | None) -> None:
    _check_times(starts_at, ends_at)
    if starts_at is not None and ends_at is not None and (ends_at - starts_at).total_seconds() > MAX_SESSION_S:
        raise ValueError("a session lasts at most 24 hours")


class AgendaSessionCreate(Body):
    title: Title
    description: Description = ""
    kind: SessionKind
    starts_at: Time = Field(description="UTC or with an offset; stored and returned in UTC.")
    ends_at: Time
    presenters: Presenters = ""
    breakout_plan_id: uuid.UUID | None = Field(
        None, description="A breakout plan of this workshop to open at the start and close at the end."
    )
    record: bool = Field(False, description="Record the plenary from the start to the end of the session.")

    @field_validator("ends_at")
    @classmethod
    def _times(cls, ends_at: datetime, info: ValidationInfo) -> datetime:
        _check_session(info.data.get("starts_at"), ends_at)
        return ends_at


class AgendaSessionPatch(Body):
    title: Title | None = None
    description: Description | None = None
    kind: SessionKind | None = None
    starts_at: Time | None = None
    ends_at: Time | None = None
    presenters: Presenters | None = None
    breakout_plan_id: uuid.UUID | None = None
    record: bool | None = None

    @field_validator("ends_at")
    @classmethod
    def _times(cls, ends_at: datetime | None, info: ValidationInfo) -> datetime | None:
        _check_session(info.data.get("starts_at"), ends_at)
        return ends_at


class AgendaHold(Body):
    held: bool = Field(description="true: the session's automatic actions do not fire; false: they fire when due.")


class AgendaSession(BaseModel):
    id: uuid.UUID
    workshop_id: uuid.UUID
    title: str
    description: str
    kind: SessionKind
    starts_at: datetime
    ends_at: datetime
    presenters: str
    breakout_plan_id: uuid.UUID | None
    record: bool
    held: bool = Field(description="A moderator holds its automatic actions.")
    started_fired_at: datetime | None = Field(description="When the scheduler fired its start (null: not yet).")
    ended_fired_at: datetime | None = Field(description="When the scheduler fired its end (null: not yet).")
    created_at: datetime
    updated_at: datetime


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "unavailable"]


class NodeHealth(BaseModel):
    id: str = Field(description="This process as a node (new at every start).")
    bus: Literal["in_process", "nats"] = Field(description="in_process: one node alone; nats: ROUNDTABLE_BUS_URL.")
    bus_connected: bool
    leases: int = Field(ge=0, description="Workshops this node owns now (docs/scaling.md).")


class Readiness(Health):
    node: NodeHealth | None = Field(None, description="Absent while the node is still starting.")
