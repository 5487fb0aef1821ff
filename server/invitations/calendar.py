"""A participant's calendar file (RFC 5545): the workshop, or its agenda sessions, with the join link.

Times carry the workshop's zone as TZID with a VTIMEZONE built from the same tz database the server uses, which
Outlook needs (it ignores a TZID it has no VTIMEZONE for), Google and Apple read (the TZID is an IANA name they
know). The UTC instants are also in each event as X-ROUNDTABLE-DTSTART-UTC / -DTEND-UTC and in its description,
for tools and readers that show neither (docs/invitations.md)."""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import icalendar

PRODID = "-//Roundtable//Invitations//EN"
REMINDER_BEFORE = timedelta(minutes=15)  # what Outlook and Google propose for a meeting


@dataclass(frozen=True)
class Session:
    """One event of the file: an agenda session, or the whole workshop when it has no agenda."""

    id: uuid.UUID
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class CalendarFile:
    workshop_id: uuid.UUID
    participant_id: uuid.UUID
    workshop_title: str
    timezone: str
    join_url: str
    organiser_email: str | None
    organiser_name: str
    sequence: int
    stamp: datetime
    sessions: Sequence[Session]


def event_uid(workshop_id: uuid.UUID, participant_id: uuid.UUID, session_id: uuid.UUID, host: str) -> str:
    """Stable per participant, workshop and session: a new file updates the events the last one created."""
    if session_id == workshop_id:
        return f"{workshop_id}.{participant_id}@{host}"
    return f"{workshop_id}.{participant_id}.{session_id}@{host}"


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def build(spec: CalendarFile) -> bytes:
    """The .ics bytes (CRLF lines, folded at 75 octets, as RFC 5545 says)."""
    zone = zoneinfo.ZoneInfo(spec.timezone)
    host = urlsplit(spec.join_url).hostname or "roundtable"
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    # PUBLISH, not REQUEST: a file to add to a calendar, not a meeting request whose replies nobody reads.
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", spec.workshop_title)
    cal.add("x-wr-timezone", spec.timezone)
    for session in spec.sessions:
        event = icalendar.Event()
        event.add("uid", event_uid(spec.workshop_id, spec.participant_id, session.id, host))
        event.add("dtstamp", spec.stamp.astimezone(UTC))
        event.add("sequence", spec.sequence)
        whole = session.id == spec.workshop_id
        event.add("summary", session.title if whole else f"{spec.workshop_title}: {session.title}")
        event.add("dtstart", session.starts_at.astimezone(zone))
        event.add("dtend", session.ends_at.astimezone(zone))
        event.add("x-roundtable-dtstart-utc", icalendar.vDatetime(session.starts_at.astimezone(UTC)))
        event.add("x-roundtable-dtend-utc", icalendar.vDatetime(session.ends_at.astimezone(UTC)))
        event.add("url", spec.join_url)
        event.add("location", spec.join_url)
        lines = [
            f"{session.starts_at.astimezone(zone):%Y-%m-%d %H:%M} - {session.ends_at.astimezone(zone):%H:%M} "
            f"{spec.timezone} ({_utc(session.starts_at)} - {_utc(session.ends_at)})",
            "",
            f"Join: {spec.join_url}",
            "This link is personal: do not forward it.",
        ]
        if session.description:
            lines[0:0] = [session.description, ""]
        event.add("description", "\n".join(lines))
        if spec.organiser_email:
            organizer = icalendar.vCalAddress(f"mailto:{spec.organiser_email}")
            organizer.params["cn"] = icalendar.vText(spec.organiser_name)
            event.add("organizer", organizer)
        event.add("status", "CONFIRMED")
        event.add("transp", "OPAQUE")
        # A display alarm: the calendar reminds the participant even when the e-mail reminder went to spam.
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", session.title if whole else f"{spec.workshop_title}: {session.title}")
        alarm.add("trigger", -REMINDER_BEFORE)
        event.add_component(alarm)
        cal.add_component(event)
    if spec.sessions:
        # The zone's rules over the years the events span (and a margin): enough, and far smaller than 1970-2038.
        first = min(s.starts_at for s in spec.sessions).astimezone(zone).date()
        last = max(s.ends_at for s in spec.sessions).astimezone(zone).date()
        cal.add_missing_timezones(date(first.year - 1, 1, 1), date(last.year + 2, 1, 1))
    return bytes(cal.to_ical())
