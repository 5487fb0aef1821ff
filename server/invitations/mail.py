# ruff: noqa: RUF001 (Russian text has letters that look Latin)
"""The invitation and reminder e-mails: plain text and HTML, in the participant's language (English, Russian)."""

from __future__ import annotations

import html
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "invitation_subject": "Invitation: {title}",
        "reminder_subject": "Reminder: {title} starts at {start}",
        "greeting": "Dear {name},",
        "invited": "you are invited to {title}.",
        "reminded": "{title} starts soon.",
        "when": "When",
        "join": "Join",
        "join_button": "Join the workshop",
        "secret": "This link is personal: it lets you in under your name. Do not forward it.",
        "calendar": "The attached calendar file (invitation.ics) adds the workshop to your calendar.",
        "workshop_time": "workshop time",
        "your_time": "your time",
    },
    "ru": {
        "invitation_subject": "Приглашение: {title}",
        "reminder_subject": "Напоминание: {title} начинается в {start}",
        "greeting": "Здравствуйте, {name}!",
        "invited": "Приглашаем вас на мероприятие «{title}».",
        "reminded": "Мероприятие «{title}» скоро начнётся.",
        "when": "Когда",
        "join": "Ссылка для входа",
        "join_button": "Войти",
        "secret": "Это личная ссылка: по ней вы входите под своим именем. Не пересылайте её.",
        "calendar": "Приложенный файл календаря (invitation.ics) добавит мероприятие в ваш календарь.",
        "workshop_time": "время мероприятия",
        "your_time": "ваше время",
    },
}


@dataclass(frozen=True)
class Letter:
    kind: str  # invitation | reminder
    language: str
    to_name: str
    to_email: str
    from_address: str
    title: str
    timezone: str
    starts_at: datetime
    ends_at: datetime
    join_url: str
    calendar: bytes | None
    viewer_timezone: str | None = None  # the participant's own zone, when known


def _span(zone_name: str, starts_at: datetime, ends_at: datetime) -> str:
    zone = UTC if zone_name == "UTC" else zoneinfo.ZoneInfo(zone_name)
    return f"{starts_at.astimezone(zone):%Y-%m-%d %H:%M} - {ends_at.astimezone(zone):%Y-%m-%d %H:%M} {zone_name}"


def when_lines(
    timezone: str,
    starts_at: datetime,
    ends_at: datetime,
    label: str,
    *,
    viewer_timezone: str | None = None,
    viewer_label: str = "",
) -> list[str]:
    """The times in the participant's own zone (when known), the workshop's zone and UTC, each labelled."""
    lines = []
    if viewer_timezone and viewer_timezone not in (timezone, "UTC"):
        lines.append(f"{_span(viewer_timezone, starts_at, ends_at)} ({viewer_label})")
    lines.append(f"{_span(timezone, starts_at, ends_at)} ({label})")
    lines.append(_span("UTC", starts_at, ends_at))
    return lines


def compose(letter: Letter) -> EmailMessage:
    texts = TEXTS.get(letter.language, TEXTS["en"])
    zone = zoneinfo.ZoneInfo(letter.timezone)
    start_label = f"{letter.starts_at.astimezone(zone):%H:%M} {letter.timezone}"
    subject_key = "invitation_subject" if letter.kind == "invitation" else "reminder_subject"
    when = when_lines(
        letter.timezone,
        letter.starts_at,
        letter.ends_at,
        texts["workshop_time"],
        viewer_timezone=letter.viewer_timezone,
        viewer_label=texts["your_time"],
    )
    lead = texts["invited" if letter.kind == "invitation" else "reminded"].format(title=letter.title)
    text = [
        texts["greeting"].format(name=letter.to_name),
        "",
        lead,
        "",
        f"{texts['when']}:",
        *(f"  {line}" for line in when),
        "",
        f"{texts['join']}: {letter.join_url}",
        "",
        texts["secret"],
    ]
    if letter.calendar is not None:
        text += ["", texts["calendar"]]
    esc = html.escape
    body_html = (
        f'<!doctype html><html lang="{letter.language}"><body style="font-family:sans-serif">'
        f"<p>{esc(texts['greeting'].format(name=letter.to_name))}</p><p>{esc(lead)}</p>"
        f"<p><strong>{esc(texts['when'])}:</strong><br>{'<br>'.join(esc(line) for line in when)}</p>"
        f'<p><a href="{esc(letter.join_url, quote=True)}">{esc(texts["join_button"])}</a></p>'
        f"<p>{esc(texts['join'])}: {esc(letter.join_url)}</p>"
        f"<p><small>{esc(texts['secret'])}</small></p>"
        + (f"<p><small>{esc(texts['calendar'])}</small></p>" if letter.calendar is not None else "")
        + "</body></html>"
    )
    msg = EmailMessage()
    msg["Subject"] = texts[subject_key].format(title=letter.title, start=start_label)
    msg["From"] = letter.from_address
    msg["To"] = formataddr((letter.to_name, letter.to_email))
    msg["Message-ID"] = make_msgid(domain=letter.from_address.rpartition("@")[2].strip(">") or None)
    msg["Content-Language"] = letter.language
    msg.set_content("\n".join(text) + "\n")
    msg.add_alternative(body_html, subtype="html")
    if letter.calendar is not None:
        msg.add_attachment(
            letter.calendar,
            maintype="text",
            subtype="calendar",
            filename="invitation.ics",
            params={"method": "PUBLISH"},
        )
    return msg
