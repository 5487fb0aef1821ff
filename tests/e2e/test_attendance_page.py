"""The attendance card of the organiser page in real Chromium: the chart of presence per country, the tables, and
certificates issued from it. The day's visits are written into the database as the attendance writer would have
(the visits themselves are tested in tests/server/test_attendance.py and test_reference_workshop.py)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from playwright.async_api import expect

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import BrowserSession, LiveServer
from tests.e2e.pages import save_screenshot
from tests.helpers import ADMIN

pytestmark = pytest.mark.browser

COUNTRIES = ["AR", "BR", "CA", "CN", "DE", "EG", "ES", "FR", "GH", "ID",
             "IN", "IT", "JP", "KE", "MX", "NG", "PH", "PL", "US", "ZA"]  # fmt: skip
START = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
INSERT_VISIT = """
INSERT INTO visits (id, workshop_id, participant_id, room_id, room_name, started_at, ended_at, ended_how, drops)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


def m(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


async def seed_day(database_url: str, workshop: dict[str, Any], people: list[dict[str, Any]]) -> None:
    """A morning: joins over the first quarter hour, two breakout rounds, some early leavers; four never came."""
    rng = random.Random(14)
    wid, plenary = uuid.UUID(workshop["id"]), uuid.UUID(workshop["plenary_room_id"])
    breakouts = [(uuid.uuid4(), f"Room {i + 1}") for i in range(4)]
    rows = []
    for n, p in enumerate(people[:-4]):
        pid = uuid.UUID(p["id"])
        start = rng.uniform(-5, 15)
        leave = 180 if n % 5 else rng.uniform(60, 170)
        spans = [(plenary, "Plenary", start, 45), (*breakouts[n % 4], 45, 90), (plenary, "Plenary", 90, leave)]
        for room, name, begin, end in spans:
            a, b = max(begin, start), min(end, leave)
            if b > a:
                how = "moved" if b in (45, 90) else "left"
                rows.append((uuid.uuid4(), wid, pid, room, name, m(a), m(b), how, int(n % 7 == 0)))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(INSERT_VISIT, rows)
    finally:
        await conn.close()


async def test_organiser_sees_attendance_per_country_over_time_and_issues_certificates(
    live_server: LiveServer, browser: BrowserSession, database_url: str
) -> None:
    client = live_server.client
    body = {
        "title": "Rivers without borders",
        "timezone": "UTC",
        "starts_at": START.isoformat(),
        "ends_at": m(180).isoformat(),
    }
    resp = await client.post("/api/v1/workshops", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    workshop = await resp.json()
    rows = ["display_name,country,organisation,email,role"]
    for c in COUNTRIES:
        rows += [f"Officer {c}{i},{c},{'Customs' if i == 2 else 'Police'} {c},,participant" for i in range(3)]
    resp = await client.post(
        f"/api/v1/workshops/{workshop['id']}/participants/import",
        data="\n".join(rows) + "\n",
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert resp.status == 201, await resp.text()
    people = (await resp.json())["items"]
    await seed_day(database_url, workshop, people)

    page = await browser.new_page("organiser", viewport={"width": 1100, "height": 900})
    await page.goto(f"{live_server.base_url}/admin")
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await page.goto(f"{live_server.base_url}/admin#workshop/{workshop['id']}")
    card = page.locator("#attendance")
    await expect(card.get_by_role("heading", name="Attendance", exact=True)).to_be_visible()
    await expect(card.locator(".attendance-summary")).to_contain_text("56 of 60 invited people took part")
    await expect(card.locator("#att-countries tbody tr")).to_have_count(20)
    await expect(card.locator("#att-organisations tbody tr")).to_have_count(40)
    bars = card.locator(".attendance-chart rect")
    assert await bars.count() > 20
    # Argentina: three invited, all three came (the four who never came are South Africa's and the US's last).
    argentina = card.locator("#att-countries tbody tr").first
    await expect(argentina.locator("td").nth(1)).to_have_text("3")
    await expect(argentina.locator("td").nth(2)).to_have_text("3")

    await card.locator(".attendance-figure").scroll_into_view_if_needed()
    shot = browser.output_dir / "attendance.png"
    await card.screenshot(path=str(shot))
    save_screenshot(shot, "screenshot-attendance.png")

    await card.get_by_label("Counted as present for at least").select_option("0.9")
    await expect(card.locator("#att-issue")).to_have_text("Issue certificates (≥ 90 %)")
    await card.locator("#att-issue").click()
    status = card.locator("#att-certificates-status")
    await expect(status).to_contain_text("certificate(s) issued; 0 already had one")
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}/certificates", headers=ADMIN)
    issued = (await resp.json())["items"]
    report = await (
        await client.get(f"/api/v1/workshops/{workshop['id']}/attendance?min_share=0.9", headers=ADMIN)
    ).json()
    assert len(issued) == sum(c["present_min_share"] for c in report["countries"]) > 0
    await expect(status).to_contain_text(f"{len(issued)} certificate(s) issued")
    assert browser.page_errors == []
