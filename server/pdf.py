"""PDF documents of the record (fpdf2): certificates of attendance and consent evidence.

Names come in every script (Cyrillic, Greek, accents), so the text is set in a Unicode TrueType font embedded in
the file: DejaVu Sans, found at run time under the system's font directories (Debian's fonts-dejavu-core).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from signaling.errors import Unavailable

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/usr/share/fonts/truetype")
REGULAR, BOLD = "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"
FAMILY = "Body"


@functools.cache
def fonts() -> tuple[Path, Path]:
    """The regular and bold font files; bold falls back to regular when there is none."""
    for root in FONT_DIRS:
        base = Path(root)
        if not base.is_dir():
            continue
        regular = next(iter(sorted(base.rglob(REGULAR))), None)
        if regular is not None:
            bold = regular.with_name(BOLD)
            return regular, bold if bold.is_file() else regular
    raise Unavailable("no Unicode font for PDFs: install fonts-dejavu-core")


def _document(title: str) -> FPDF:
    regular, bold = fonts()
    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_creator("Roundtable")
    pdf.add_font(FAMILY, "", str(regular))
    pdf.add_font(FAMILY, "B", str(bold))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    return pdf


def _line(pdf: FPDF, text: str, *, size: float = 10, bold: bool = False, height: float = 6) -> None:
    pdf.set_font(FAMILY, "B" if bold else "", size)
    pdf.multi_cell(0, height, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def local_time(at: datetime, timezone: str) -> str:
    return at.astimezone(ZoneInfo(timezone)).strftime("%d %B %Y, %H:%M")


def workshop_dates(starts_at: datetime, ends_at: datetime, timezone: str) -> str:
    """The workshop's dates in its own time zone: one day, or a range of days."""
    zone = ZoneInfo(timezone)
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    if start.date() == end.date():
        return f"{start:%d %B %Y}, {start:%H:%M}\N{EN DASH}{end:%H:%M} ({timezone})"
    return f"{start:%d %B %Y}, {start:%H:%M} \N{EN DASH} {end:%d %B %Y}, {end:%H:%M} ({timezone})"


def format_minutes(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def group_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def certificate_pdf(
    *,
    display_name: str,
    organisation: str,
    country: str,
    workshop_title: str,
    dates: str,
    seconds_present: int,
    code: str,
    verify_url: str,
) -> bytes:
    pdf = _document(f"Certificate of attendance: {display_name}")
    pdf.ln(20)
    _line(pdf, "Certificate of attendance", size=24, bold=True, height=12)
    pdf.ln(8)
    _line(pdf, "This certifies that", size=12)
    pdf.ln(2)
    _line(pdf, display_name, size=20, bold=True, height=10)
    _line(pdf, ", ".join(part for part in (organisation, country) if part), size=12)
    pdf.ln(6)
    _line(pdf, "took part in the workshop", size=12)
    pdf.ln(2)
    _line(pdf, workshop_title, size=16, bold=True, height=9)
    _line(pdf, dates, size=12)
    pdf.ln(6)
    _line(pdf, f"Time attended: {format_minutes(seconds_present)} ({seconds_present // 60} minutes)", size=12)
    pdf.ln(16)
    _line(pdf, f"Verification code: {group_code(code)}", size=11, bold=True)
    _line(pdf, f"Verify at {verify_url}", size=10)
    return bytes(pdf.output())


def table(pdf: FPDF, headings: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int]) -> None:
    pdf.set_font(FAMILY, "", 8)
    if not rows:
        _line(pdf, "(none)", size=9)
        return
    with pdf.table(col_widths=tuple(widths), text_align="LEFT", line_height=5, first_row_as_headings=True) as t:
        for cells in (headings, *rows):
            row = t.row()
            for cell in cells:
                row.cell(cell)


def consent_pdf(evidence: dict[str, object], *, timezone: str) -> bytes:
    """The consent evidence of one recording (the JSON export's content), for a data-protection officer."""
    rec = evidence["recording"]
    assert isinstance(rec, dict)

    def when(value: object) -> str:
        return local_time(datetime.fromisoformat(str(value)), timezone) if value else "\N{EM DASH}"

    pdf = _document(f"Consent evidence: recording {rec['id']}")
    _line(pdf, "Consent evidence of a recording", size=16, bold=True, height=9)
    _line(pdf, f"Workshop: {evidence['workshop_title']}", size=10)
    _line(pdf, f"Room: {rec['room_name']}    Recording: {rec['id']}", size=9)
    _line(
        pdf,
        f"Recorded {when(rec['started_at'])} \N{EN DASH} {when(rec['stopped_at'])} ({timezone}); consent mode: "
        f"{rec['consent_mode']}; state: {rec['state']}",
        size=9,
    )
    _line(pdf, f"Exported {when(evidence['generated_at'])}", size=9)
    people = evidence["people"]
    assert isinstance(people, list)
    pdf.ln(3)
    _line(pdf, "People and their answers", size=12, bold=True)
    table(
        pdf,
        ("Name", "Organisation", "Country", "Answer", "Asked", "Recorded tracks"),
        [
            (
                p["display_name"],
                p["organisation"],
                p["country"],
                p["status"],
                when(p["asked_at"]),
                ", ".join(p["tracks"]) or "never recorded",
            )
            for p in people
        ],
        (40, 36, 14, 22, 34, 44),
    )
    ledger = evidence["ledger"]
    assert isinstance(ledger, list)
    pdf.ln(3)
    _line(pdf, "Consent ledger (every answer, in order)", size=12, bold=True)
    table(
        pdf,
        ("At", "Name", "Answer", "Connection"),
        [
            (when(e["at"]), e["display_name"], "yes" if e["granted"] else "no", e["connection_id"] or "—")
            for e in ledger
        ],
        (40, 60, 20, 70),
    )
    downloads = evidence["downloads"]
    assert isinstance(downloads, list)
    pdf.ln(3)
    _line(pdf, "Downloads", size=12, bold=True)
    table(
        pdf,
        ("At", "By", "Track", "Via", "Status"),
        [
            (when(d["at"]), d["by_name"], f"{d['track_owner']} {d['track_kind']}", d["via"], str(d["status"]))
            for d in downloads
        ],
        (40, 50, 50, 30, 20),
    )
    return bytes(pdf.output())
