"""Invitations: the calendar file parses back (icalendar and vobject) to the right instants with the join link; the
e-mail arrives at a real SMTP server (aiosmtpd on 127.0.0.1) with the link and the file; a failing server leaves
`failed` with its reason and nothing lost; a resend works; reminders go once, a chosen time before the first session."""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import vobject
from aiohttp.test_utils import TestClient

from server import keys
from server.app import create_app
from server.invitations.service import InvitationService
from server.invitations.store import InvitationStore
from signaling.clock import ManualClock
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, bearer, create_workshop
from tests.smtp import Mailbox, smtp_server

Client = TestClient[Any, Any]
KOLKATA = {
    "timezone": "Asia/Kolkata",
    "starts_at": "2026-12-10T09:00:00+05:30",
    "ends_at": "2026-12-10T17:30:00+05:30",
}
START = datetime(2026, 12, 10, 3, 30, tzinfo=UTC)
END = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    async with smtp_server() as box:
        yield box


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
async def mail_client(
    database_url: str, tmp_path: Path, aiohttp_client: Any, mailbox: Mailbox, clock: ManualClock
) -> Client:
    settings = make_settings(
        database_url,
        tmp_path / "var",
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_starttls=False,
        smtp_from="Workshop Office <office@example.org>",
        smtp_timeout_s=10,
        invitation_retry_s=60,
        invitation_max_attempts=3,
        invitation_poll_s=3600,  # the tests kick the sender; it never wakes on its own here
    )
    app = create_app(settings)
    app[keys.CLOCK] = clock
    client: Client = await aiohttp_client(app)
    return client


def service(client: Client) -> InvitationService:
    return client.app[keys.INVITATIONS]


async def one_pass(client: Client) -> None:
    """Wake the sender and wait for a whole pass that began after this moment (one under way may have missed it)."""
    invitations = service(client)
    target = invitations.passes + (2 if invitations.in_pass else 1)
    invitations.kick()
    await invitations.wait_passes(target, 15)


async def states(client: Client, workshop_id: str) -> dict[str, dict[str, Any]]:
    resp = await client.get(f"/api/v1/workshops/{workshop_id}/invitations", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    return {item["participant_id"]: item for item in (await resp.json())["items"]}


async def until_state(
    client: Client, workshop_id: str, pid: str, ok: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    for _ in range(20):
        now = (await states(client, workshop_id))[pid]
        if ok(now):
            return now
        await one_pass(client)
    raise AssertionError(f"state never reached: {now}")


def events_icalendar(ics: bytes) -> list[icalendar.Event]:
    return list(icalendar.Calendar.from_ical(ics).walk("VEVENT"))


async def ics_of(client: Client, workshop_id: str, pid: str, headers: dict[str, str] = ADMIN) -> bytes:
    resp = await client.get(f"/api/v1/workshops/{workshop_id}/participants/{pid}/invitation.ics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/calendar"
    return await resp.read()


async def token_works(client: Client, workshop_id: str, pid: str, join_url: str) -> bool:
    token = join_url.split("#", 1)[1]
    resp = await client.get(f"/api/v1/workshops/{workshop_id}/participants/{pid}", headers=bearer(token))
    return resp.status == 200


# The calendar file ---------------------------------------------------------------------------


async def test_calendar_file_parses_back_with_two_parsers_to_the_right_instants_and_the_join_link(
    client: Client,
) -> None:
    workshop = await create_workshop(client, **KOLKATA)
    wid = workshop["id"]
    ana = await add_participant(client, wid, email="ana@example.org")
    ics = await ics_of(client, wid, ana["id"])

    cal = icalendar.Calendar.from_ical(ics)
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Asia/Kolkata"]
    (event,) = events_icalendar(ics)
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert (start, end) == (START, END)
    assert event["DTSTART"].params["TZID"] == "Asia/Kolkata"
    assert start.astimezone(ZoneInfo("Asia/Kolkata")).hour == 9
    assert icalendar.vDatetime.from_ical(str(event["X-ROUNDTABLE-DTSTART-UTC"])) == START
    join_url = str(event["URL"])
    assert join_url.startswith("http://127.0.0.1:8080/join#")
    assert join_url in str(event["DESCRIPTION"]) and str(event["LOCATION"]) == join_url
    assert await token_works(client, wid, ana["id"], join_url)
    (alarm,) = event.walk("VALARM")
    assert str(alarm["ACTION"]) == "DISPLAY" and alarm.decoded("TRIGGER") == -timedelta(minutes=15)

    # A second, independent parser reads the same instants, zone and link.
    parsed = vobject.readOne(ics.decode())
    (vevent,) = parsed.vevent_list
    assert vevent.dtstart.value == START and vevent.dtend.value == END
    assert vevent.dtstart.value.utcoffset() == timedelta(hours=5, minutes=30)
    assert vevent.url.value == join_url
    assert vevent.uid.value == str(event["UID"])
    assert vevent.valarm.trigger.value == -timedelta(minutes=15)


async def test_calendar_uid_is_stable_and_sequence_grows_when_the_workshop_changes(client: Client) -> None:
    workshop = await create_workshop(client, **KOLKATA)
    wid = workshop["id"]
    ana = await add_participant(client, wid)
    ben = await add_participant(client, wid, display_name="Ben")
    (first,) = events_icalendar(await ics_of(client, wid, ana["id"]))
    (again,) = events_icalendar(await ics_of(client, wid, ana["id"]))
    (other,) = events_icalendar(await ics_of(client, wid, ben["id"]))
    assert first["UID"] == again["UID"] != other["UID"]
    resp = await client.patch(
        f"/api/v1/workshops/{wid}", json={"starts_at": "2026-12-10T10:00:00+05:30"}, headers=ADMIN
    )
    assert resp.status == 200
    (moved,) = events_icalendar(await ics_of(client, wid, ana["id"]))
    assert moved["UID"] == first["UID"]
    assert int(moved["SEQUENCE"]) > int(first["SEQUENCE"])
    assert moved.decoded("DTSTART") == START + timedelta(hours=1)


async def test_participant_fetches_their_own_calendar_file_and_nobody_elses(client: Client) -> None:
    workshop = await create_workshop(client, **KOLKATA)
    wid = workshop["id"]
    ana = await add_participant(client, wid)
    ben = await add_participant(client, wid, display_name="Ben")
    (event,) = events_icalendar(await ics_of(client, wid, ana["id"], headers=bearer(ana["join_token"])))
    assert await token_works(client, wid, ana["id"], str(event["URL"]))
    resp = await client.get(
        f"/api/v1/workshops/{wid}/participants/{ben['id']}/invitation.ics", headers=bearer(ana["join_token"])
    )
    assert resp.status == 403


async def test_calendar_has_one_event_per_agenda_session_at_local_times_across_a_daylight_saving_change(
    client: Client,
) -> None:
    """Berlin leaves summer time on 25 October 2026: 09:00 local is 07:00 UTC before, 08:00 UTC after."""
    workshop = await create_workshop(
        client, timezone="Europe/Berlin", starts_at="2026-10-24T09:00:00+02:00", ends_at="2026-10-26T17:00:00+01:00"
    )
    wid = uuid.UUID(workshop["id"])
    ana = await add_participant(client, workshop["id"])
    berlin = ZoneInfo("Europe/Berlin")
    sessions = [
        (
            "Opening",
            "plenary",
            datetime(2026, 10, 24, 9, 0, tzinfo=berlin),
            datetime(2026, 10, 24, 10, 0, tzinfo=berlin),
        ),
        (
            "Coffee",
            "break",
            datetime(2026, 10, 24, 10, 0, tzinfo=berlin),
            datetime(2026, 10, 24, 10, 30, tzinfo=berlin),
        ),
        (
            "Day two",
            "breakouts",
            datetime(2026, 10, 26, 9, 0, tzinfo=berlin),
            datetime(2026, 10, 26, 12, 0, tzinfo=berlin),
        ),
    ]
    pool = client.app[keys.POOL]
    for title, kind, starts, ends in sessions:
        await pool.execute(
            "INSERT INTO agenda_sessions (workshop_id, title, kind, starts_at, ends_at, presenters) "
            "VALUES ($1, $2, $3, $4, $5, 'Dr. Ruiz')",
            wid,
            title,
            kind,
            starts,
            ends,
        )
    ics = await ics_of(client, workshop["id"], ana["id"])
    events = sorted(events_icalendar(ics), key=lambda e: e.decoded("DTSTART"))
    assert [str(e["SUMMARY"]) for e in events] == [
        "Cross-border investigations: Opening",
        "Cross-border investigations: Day two",
    ]
    assert [e.decoded("DTSTART").astimezone(UTC) for e in events] == [
        datetime(2026, 10, 24, 7, 0, tzinfo=UTC),
        datetime(2026, 10, 26, 8, 0, tzinfo=UTC),
    ]
    assert len({str(e["UID"]) for e in events}) == 2
    assert all("Dr. Ruiz" in str(e["DESCRIPTION"]) for e in events)
    parsed = vobject.readOne(ics.decode())
    assert sorted(v.dtstart.value.astimezone(berlin).strftime("%d %H:%M") for v in parsed.vevent_list) == [
        "24 09:00",
        "26 09:00",
    ]
    # The VTIMEZONE carries both rules, so that a client without the tz database gets the change right.
    (zone,) = icalendar.Calendar.from_ical(ics).walk("VTIMEZONE")
    assert {c.name for c in zone.subcomponents} == {"STANDARD", "DAYLIGHT"}


# E-mail ----------------------------------------------------------------------------------------


def parts(message: EmailMessage) -> tuple[str, str, bytes]:
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_filename() == "invitation.ics"
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return plain.get_content(), html.get_content(), payload


async def test_invitation_email_arrives_with_the_join_link_and_calendar_file_in_the_participants_language(
    mail_client: Client, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = mail_client
    workshop = await create_workshop(client, **KOLKATA)
    wid = workshop["id"]
    ana = await add_participant(client, wid, display_name="Ana Pereira", email="ana@example.org")
    olga = await add_participant(
        client, wid, display_name="Ольга", country="LT", email="olga@example.org", language="ru"
    )
    nobody = await add_participant(client, wid, display_name="No Mail")
    organiser = await add_participant(client, wid, role="organiser", display_name="Org")

    # Ana's own zone is known (set from the join page): her e-mail shows it first, labelled.
    await client.app[keys.POOL].execute(
        "UPDATE participants SET timezone = 'Asia/Seoul' WHERE id = $1", uuid.UUID(ana["id"])
    )
    resp = await client.post(
        f"/api/v1/workshops/{wid}/invitations", json={"all": True}, headers=bearer(organiser["join_token"])
    )
    assert resp.status == 202, await resp.text()
    answer = await resp.json()
    assert sorted(answer["queued"]) == sorted([ana["id"], olga["id"]]) and answer["sending"] is True

    received = {m["To"].addresses[0].addr_spec: m for m in [await mailbox.next(), await mailbox.next()]}
    english = received["ana@example.org"]
    assert str(english["To"]) == "Ana Pereira <ana@example.org>"
    assert english["Subject"] == "Invitation: Cross-border investigations"
    assert english["From"] == "Workshop Office <office@example.org>"
    text, html, ics = parts(english)
    (event,) = events_icalendar(ics)
    join_url = str(event["URL"])
    assert join_url in text and join_url in html
    assert await token_works(client, wid, ana["id"], join_url)
    assert "2026-12-10 12:30 - 2026-12-10 21:00 Asia/Seoul (your time)" in text
    assert "2026-12-10 09:00 - 2026-12-10 17:30 Asia/Kolkata (workshop time)" in text
    assert "2026-12-10 03:30 - 2026-12-10 12:00 UTC" in text
    assert event.decoded("DTSTART") == START
    assert "mailto:office@example.org" in str(event["ORGANIZER"])

    russian = received["olga@example.org"]
    assert russian["Subject"] == "Приглашение: Cross-border investigations"
    rtext, _, rics = parts(russian)
    assert "Здравствуйте, Ольга!" in rtext and str(events_icalendar(rics)[0]["URL"]) in rtext

    now = await until_state(client, wid, ana["id"], lambda s: s["state"] == "sent")
    assert now["attempts"] == 1 and now["sent_at"] is not None
    listed = await states(client, wid)
    assert listed[nobody["id"]]["state"] is None and listed[nobody["id"]]["has_email"] is False
    assert mailbox.messages.empty()
    # Tokens are secrets: none reached our log (aiosmtpd's `mail.log` is the test server's, which dumps DATA).
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]
    assert any("sent" in line for line in ours)
    assert not [line for line in ours if "eyJ" in line]


async def test_a_failing_smtp_server_leaves_failed_with_its_reason_nothing_lost_and_a_resend_delivers(
    mail_client: Client, mailbox: Mailbox
) -> None:
    client = mail_client
    workshop = await create_workshop(client, **KOLKATA)
    wid = workshop["id"]
    ana = await add_participant(client, wid, email="ana@example.org")
    mailbox.answer = "554 5.7.1 Message rejected by policy"
    resp = await client.post(
        f"/api/v1/workshops/{wid}/invitations", json={"participant_ids": [ana["id"]]}, headers=ADMIN
    )
    assert resp.status == 202
    failed = await until_state(client, wid, ana["id"], lambda s: s["state"] == "failed")
    assert "554" in failed["last_error"] and "rejected by policy" in failed["last_error"]
    assert failed["attempts"] == 1  # a 5xx answer is final: no retry
    # Sending to everyone does not touch a failed row's record until asked; the row is kept with its reason.
    assert (await states(client, wid))[ana["id"]]["state"] == "failed"

    mailbox.answer = "250 OK"
    resp = await client.post(f"/api/v1/workshops/{wid}/invitations/{ana['id']}/resend", headers=ADMIN)
    assert resp.status == 202, await resp.text()
    message = await mailbox.next()
    assert "ana@example.org" in str(message["To"])
    sent = await until_state(client, wid, ana["id"], lambda s: s["state"] == "sent")
    assert sent["last_error"] is None and sent["attempts"] == 1


async def test_a_temporary_smtp_failure_is_retried_after_a_backoff_until_it_goes_through(
    mail_client: Client, mailbox: Mailbox, clock: ManualClock
) -> None:
    client = mail_client
    workshop = await create_workshop(client, **KOLKATA)
    wid = workshop["id"]
    ana = await add_participant(client, wid, email="ana@example.org")
    mailbox.answer = "451 4.3.0 Try again later"
    resp = await client.post(f"/api/v1/workshops/{wid}/invitations", json={"all": True}, headers=ADMIN)
    assert resp.status == 202
    waiting = await until_state(client, wid, ana["id"], lambda s: s["attempts"] == 1 and s["last_error"] is not None)
    assert waiting["state"] == "queued" and "451" in waiting["last_error"]
    assert datetime.fromisoformat(waiting["next_attempt_at"]) == clock.now() + timedelta(seconds=60)
    await one_pass(client)  # not due yet: nothing is tried
    assert (await states(client, wid))[ana["id"]]["attempts"] == 1
    mailbox.answer = "250 OK"
    clock.set(clock.now() + timedelta(seconds=61))
    await mailbox_after_pass(client, mailbox)
    sent = await until_state(client, wid, ana["id"], lambda s: s["state"] == "sent")
    assert sent["attempts"] == 2


async def mailbox_after_pass(client: Client, mailbox: Mailbox) -> EmailMessage:
    await one_pass(client)
    return await mailbox.next()


async def test_without_smtp_invitations_wait_in_the_queue(client: Client) -> None:
    workshop = await create_workshop(client, **KOLKATA)
    ana = await add_participant(client, workshop["id"], email="ana@example.org")
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/invitations", json={"all": True}, headers=ADMIN)
    assert (await resp.json())["sending"] is False
    assert (await states(client, workshop["id"]))[ana["id"]]["state"] == "queued"


async def test_send_refuses_an_unknown_participant_and_a_body_with_both_or_neither(client: Client) -> None:
    workshop = await create_workshop(client, **KOLKATA)
    path = f"/api/v1/workshops/{workshop['id']}/invitations"
    for body in ({}, {"all": True, "participant_ids": []}):
        resp = await client.post(path, json=body, headers=ADMIN)
        assert resp.status == 400
    resp = await client.post(path, json={"participant_ids": [str(uuid.uuid4())]}, headers=ADMIN)
    assert resp.status == 404


# Reminders -------------------------------------------------------------------------------------


async def test_reminder_goes_once_the_chosen_time_before_the_first_session_even_across_a_restart(
    mail_client: Client, mailbox: Mailbox, clock: ManualClock
) -> None:
    client = mail_client
    workshop = await create_workshop(client, **KOLKATA)
    wid = workshop["id"]
    ana = await add_participant(client, wid, email="ana@example.org", language="ru")
    resp = await client.put(
        f"/api/v1/workshops/{wid}/invitations/settings", json={"reminder_minutes_before": 60}, headers=ADMIN
    )
    assert resp.status == 200 and (await resp.json())["reminder_minutes_before"] == 60

    clock.set(START - timedelta(minutes=61))
    await one_pass(client)
    assert mailbox.messages.empty()
    assert (await states(client, wid))[ana["id"]]["reminder_state"] is None

    clock.set(START - timedelta(minutes=59))
    reminder = await mailbox_after_pass(client, mailbox)
    assert reminder["Subject"] == "Напоминание: Cross-border investigations начинается в 09:00 Asia/Kolkata"
    plain = reminder.get_body(("plain",))
    assert plain is not None and "/join#" in plain.get_content()
    await until_state(client, wid, ana["id"], lambda s: s["reminder_state"] == "sent")

    # Another pass, and a second sender on the same database (a restarted process): no second reminder.
    await one_pass(client)
    other = InvitationService(
        InvitationStore(client.app[keys.POOL], client.app[keys.AUDIT]),
        client.app[keys.ISSUER],
        client.app[keys.SETTINGS],
        clock,
    )
    assert await other.store.queue_due_reminders(clock.now()) == []
    await other.run_once()
    assert mailbox.messages.empty()


# The roster export -----------------------------------------------------------------------------


async def test_roster_csv_has_everyones_join_link_and_defuses_formulas(client: Client) -> None:
    workshop = await create_workshop(client, **KOLKATA)
    wid = workshop["id"]
    ana = await add_participant(client, wid, email="ana@example.org", organisation="=HYPERLINK(1)")
    ben = await add_participant(client, wid, display_name="Ben", country="DE")
    resp = await client.get(f"/api/v1/workshops/{wid}/roster.csv", headers=ADMIN)
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["display_name"] for r in rows] == ["Ana Pereira", "Ben"]
    assert rows[0]["organisation"] == "'=HYPERLINK(1)"
    for row, person in zip(rows, (ana, ben), strict=True):
        assert await token_works(client, wid, person["id"], row["join_url"])


async def test_language_comes_from_the_roster_import_and_can_be_changed(client: Client) -> None:
    workshop = await create_workshop(client, **KOLKATA)
    wid = workshop["id"]
    roster = "display_name,country,organisation,email,role,language\nOlga,LT,,olga@example.org,,ru\nAna,PT,,,,\n"
    resp = await client.post(
        f"/api/v1/workshops/{wid}/participants/import",
        data=roster.encode(),
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert resp.status == 201, await resp.text()
    olga, ana = (await resp.json())["items"]
    assert (olga["language"], ana["language"]) == ("ru", None)
    resp = await client.patch(
        f"/api/v1/workshops/{wid}/participants/{ana['id']}", json={"language": "ru"}, headers=ADMIN
    )
    assert (await resp.json())["language"] == "ru"
    resp = await client.patch(
        f"/api/v1/workshops/{wid}/participants/{ana['id']}", json={"language": "de"}, headers=ADMIN
    )
    assert resp.status == 400


async def test_reminder_time_follows_the_agenda_first_session_not_a_break_and_not_after_it_began(
    client: Client,
) -> None:
    workshop = await create_workshop(client, **KOLKATA)
    wid = uuid.UUID(workshop["id"])
    await add_participant(client, workshop["id"], email="ana@example.org")
    pool = client.app[keys.POOL]
    first = START + timedelta(hours=2)
    for title, kind, starts in (("Coffee", "break", START), ("Opening", "plenary", first)):
        await pool.execute(
            "INSERT INTO agenda_sessions (workshop_id, title, kind, starts_at, ends_at) VALUES ($1, $2, $3, $4, $5)",
            wid,
            title,
            kind,
            starts,
            starts + timedelta(hours=1),
        )
    resp = await client.put(
        f"/api/v1/workshops/{wid}/invitations/settings", json={"reminder_minutes_before": 30}, headers=ADMIN
    )
    assert resp.status == 200
    store = client.app[keys.INVITATIONS].store
    assert await store.queue_due_reminders(START) == []  # the break is not the first session
    assert await store.queue_due_reminders(first - timedelta(minutes=31)) == []
    assert await store.queue_due_reminders(first - timedelta(minutes=29)) == [wid]
    assert await store.queue_due_reminders(first - timedelta(minutes=28)) == []  # once
    reminders = await pool.fetchval("SELECT count(*) FROM invitations WHERE kind = 'reminder'")
    assert reminders == 1

    # A reminder set only once the session has begun is not sent late.
    await client.put(
        f"/api/v1/workshops/{wid}/invitations/settings", json={"reminder_minutes_before": 45}, headers=ADMIN
    )
    assert await store.queue_due_reminders(first + timedelta(minutes=1)) == []
