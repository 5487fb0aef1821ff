"""Invitations end to end: the calendar file of a participant, and the one background sender of the outbox.

The sender is owned by the app (a cleanup_ctx), wakes when something is queued (`kick`) or every
`invitation_poll_s`, queues due reminders, claims due e-mails with a lease and sends them one by one through SMTP.
Request handlers only write rows and kick: they never wait on SMTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import zoneinfo
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

import aiosmtplib

from server.auth import JoinTokenIssuer
from server.invitations.calendar import CalendarFile, Session, build
from server.invitations.mail import Letter, compose
from server.invitations.store import InvitationStore
from server.logs import scrub
from server.settings import Settings
from signaling.clock import Clock
from signaling.errors import NotFound

log = logging.getLogger(__name__)

BATCH = 20
MAX_REASON = 500


class Undeliverable(Exception):
    """Nothing to send to (the address was removed, the participant banned): no retry helps."""


def _permanent(exc: Exception) -> bool:
    """A 5xx answer (no such mailbox, refused sender) will not get better by retrying; anything else may."""
    if isinstance(exc, Undeliverable | NotFound):
        return True
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(500 <= r.code < 600 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 500 <= exc.code < 600
    return False


def _known_zone(name: str | None) -> str | None:
    """The participant's zone, if the tz database knows it (the column is free text up to 64 characters)."""
    if not name:
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return name


def _reason(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return scrub(text)[:MAX_REASON]


class InvitationService:
    def __init__(self, store: InvitationStore, issuer: JoinTokenIssuer, settings: Settings, clock: Clock) -> None:
        self.store = store
        self.issuer = issuer
        self.settings = settings
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Set after each pass of the sender: tests wait on it instead of sleeping.
        self.passes = 0
        self.in_pass = False
        self._pass_done = asyncio.Condition()

    @property
    def sending(self) -> bool:
        return self.settings.smtp_host is not None

    # The calendar file ---------------------------------------------------------------------------
    async def calendar(self, workshop_id: uuid.UUID, participant_id: uuid.UUID) -> tuple[bytes, str, Any, Any]:
        """(the .ics bytes, the join URL in it, the workshop row, the participant row). Mints a join token."""
        workshop = await self.store.workshop(workshop_id)
        person = await self.store.participant(workshop_id, participant_id)
        sessions, _ = await self.store.sessions(workshop)
        join_url = self.issuer.issue(person, workshop_ends_at=workshop["ends_at"]).url
        name, address = parseaddr(self.settings.smtp_from)
        spec = CalendarFile(
            workshop_id=workshop["id"],
            participant_id=person["id"],
            workshop_title=workshop["title"],
            timezone=workshop["timezone"],
            join_url=join_url,
            organiser_email=address or None,
            organiser_name=name or workshop["title"],
            sequence=await self.store.sequence(workshop_id),
            stamp=self.clock.now(),
            sessions=[Session(**s) for s in sessions],
        )
        return build(spec), join_url, workshop, person

    # The sender ----------------------------------------------------------------------------------
    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self.sending and self._task is None:
            self._task = asyncio.create_task(self._run(), name="invitation-sender")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_passes(self, count: int, timeout_s: float) -> None:
        """Tests: until the sender has finished `count` passes in all."""
        async with asyncio.timeout(timeout_s), self._pass_done:
            await self._pass_done.wait_for(lambda: self.passes >= count)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            self.in_pass = True
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("the invitation sender failed a pass; it tries again")
                busy = False
            async with self._pass_done:
                self.in_pass = False
                self.passes += 1
                self._pass_done.notify_all()
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.invitation_poll_s):
                    await self._wake.wait()

    async def run_once(self) -> bool:
        """Queue due reminders, then send what is due; True when a full batch was claimed (more may wait)."""
        now = self.clock.now()
        for workshop_id in await self.store.queue_due_reminders(now):
            log.info("reminders queued for workshop %s", workshop_id)
        lease = now + timedelta(seconds=self.settings.smtp_timeout_s * 2 + 30)
        rows = await self.store.claim(now, lease, BATCH)
        for row in rows:
            await self._deliver(row)
        return len(rows) == BATCH

    async def _deliver(self, row: Any) -> None:
        lease = row["claimed_until"]
        try:
            message, to = await self._message(row)
            await aiosmtplib.send(
                message,
                hostname=self.settings.smtp_host,
                port=self.settings.smtp_port,
                username=self.settings.smtp_username,
                password=self.settings.smtp_password,
                start_tls=self.settings.smtp_starttls,
                timeout=self.settings.smtp_timeout_s,
                recipients=[to],
            )
        except Exception as exc:
            reason = _reason(exc)
            if _permanent(exc) or row["attempts"] >= self.settings.invitation_max_attempts:
                await self.store.failed(row["id"], reason, lease)
                log.warning("%s %s to participant %s failed: %s", row["kind"], row["id"], row["participant_id"], reason)
            else:
                delay = self.settings.invitation_retry_s * 2 ** (row["attempts"] - 1)
                await self.store.retry(row["id"], self.clock.now() + timedelta(seconds=delay), reason, lease)
                log.info("%s %s will be retried in %.0f s: %s", row["kind"], row["id"], delay, reason)
            return
        await self.store.sent(row["id"], self.clock.now(), lease)
        log.info("%s %s to participant %s sent", row["kind"], row["id"], row["participant_id"])

    async def _message(self, row: Any) -> tuple[Any, str]:
        ics, join_url, workshop, person = await self.calendar(row["workshop_id"], row["participant_id"])
        if person["email"] is None or person["banned_at"] is not None:
            raise Undeliverable("the participant has no e-mail address any more, or is banned")
        sessions, _ = await self.store.sessions(workshop)
        first = min(s["starts_at"] for s in sessions)
        last = max(s["ends_at"] for s in sessions)
        letter = Letter(
            kind=row["kind"],
            language=person["language"] or "en",
            to_name=person["display_name"],
            to_email=person["email"],
            from_address=self.settings.smtp_from,
            title=workshop["title"],
            timezone=workshop["timezone"],
            starts_at=first,
            ends_at=last,
            join_url=join_url,
            calendar=ics if row["kind"] == "invitation" else None,
            viewer_timezone=_known_zone(person["timezone"]),
        )
        return compose(letter), person["email"]
