"""Times across zones in real Chromium (Playwright's `timezone_id`): a workshop in Asia/Kolkata seen from Seoul and
from Istanbul shows every time in the viewer's zone and the workshop's, each labelled, and a form entry in the
workshop's zone is stored as the right UTC instant; an agenda across a daylight-saving change keeps its local times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import DESKTOP, BrowserSession, LiveServer
from tests.e2e.pages import join, open_join_page
from tests.helpers import ADMIN, add_participant

pytestmark = pytest.mark.browser


async def page_in(browser: BrowserSession, zone: str) -> Any:
    context = await browser.browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id=zone)
    browser.contexts.append(context)
    page = await context.new_page()
    page.on("pageerror", lambda exc: browser.page_errors.append(f"{zone}: {exc}"))
    assert await page.evaluate("() => Intl.DateTimeFormat().resolvedOptions().timeZone") == zone
    return page


async def sign_in(page: Any, base_url: str, hash_: str = "") -> None:
    await page.goto(f"{base_url}/admin{hash_}")
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in").click()


async def add_session(page: Any, title: str, begins: str, finishes: str) -> None:
    form = page.locator("#agenda-form")
    await form.get_by_label("Session title").fill(title)
    await form.get_by_label("Session begins").fill(begins)
    await form.get_by_label("Session finishes").fill(finishes)
    await form.get_by_role("button", name="Add to the agenda").click()
    await expect(page.locator("#agenda tbody tr", has_text=title)).to_be_visible()


async def agenda_of(live_server: LiveServer, wid: str) -> dict[str, dict[str, Any]]:
    resp = await live_server.client.get(f"/api/v1/workshops/{wid}/agenda", headers=ADMIN)
    assert resp.status == 200
    return {s["title"]: s for s in (await resp.json())["items"]}


# Ranges are written with an en dash (\u2013), as the pages do.
# Kolkata is GMT+5:30 all year; Seoul GMT+9; Istanbul GMT+3 (none has daylight saving).
VIEWS = {
    "Asia/Seoul": {"workshop": "13:00\u201321:00 Seoul (GMT+9)", "session": "14:30\u201315:45 Seoul (GMT+9)"},
    "Europe/Istanbul": {
        "workshop": "07:00\u201315:00 Istanbul (GMT+3)",
        "session": "08:30\u201309:45 Istanbul (GMT+3)",
    },
}
KOLKATA_WORKSHOP = "09:30\u201317:30 Kolkata (GMT+5:30)"
KOLKATA_SESSION = "11:00\u201312:15 Kolkata (GMT+5:30)"


async def test_a_kolkata_workshop_seen_from_seoul_and_istanbul_labels_every_time_with_its_zone(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    # From Seoul, the organiser creates the workshop with times typed in Kolkata's zone.
    seoul = await page_in(browser, "Asia/Seoul")
    await sign_in(seoul, live_server.base_url)
    await seoul.get_by_label("Title").fill("Water utilities across borders")
    await seoul.get_by_label("Time zone").fill("Asia/Kolkata")
    await expect(seoul.locator('label[for="ws-starts"]')).to_contain_text("Kolkata (GMT+5:30), the workshop's time")
    await seoul.get_by_label("Starts").fill("2026-12-10T09:30")
    await seoul.get_by_label("Ends").fill("2026-12-10T17:30")
    await seoul.get_by_role("button", name="Create workshop").click()
    await expect(seoul.locator("#workshop-card")).to_be_visible()
    resp = await live_server.client.get("/api/v1/workshops", headers=ADMIN)
    (workshop,) = (await resp.json())["items"]
    wid = workshop["id"]
    assert (workshop["starts_at"], workshop["ends_at"]) == ("2026-12-10T04:00:00Z", "2026-12-10T12:00:00Z")

    # The agenda form takes Kolkata's wall time too, labelled so, whatever the browser's zone.
    await expect(seoul.locator('label[for="ag-starts"]')).to_contain_text("Kolkata (GMT+5:30)")
    await add_session(seoul, "Opening plenary", "2026-12-10T11:00", "2026-12-10T12:15")
    opening = (await agenda_of(live_server, wid))["Opening plenary"]
    assert (opening["starts_at"], opening["ends_at"]) == ("2026-12-10T05:30:00Z", "2026-12-10T06:45:00Z")
    ana = await add_participant(live_server.client, wid, display_name="Ana Pereira", country="PT")

    for zone, expected in VIEWS.items():
        page = seoul if zone == "Asia/Seoul" else await page_in(browser, zone)
        if page is not seoul:
            await sign_in(page, live_server.base_url, f"#workshop/{wid}")
        else:
            await page.reload()
        when = page.locator("#workshop-card .workshop-when")
        await expect(when).to_contain_text(f"{expected['workshop']} · ")
        await expect(when).to_contain_text(KOLKATA_WORKSHOP)
        row = page.locator("#agenda tbody tr", has_text="Opening plenary")
        await expect(row).to_contain_text(expected["session"])
        await expect(row).to_contain_text(KOLKATA_SESSION)

        # The join page: the workshop's times and its agenda, in the viewer's zone and Kolkata's.
        join = await page_in(browser, zone)
        await open_join_page(join, ana["join_url"], "Ana Pereira")
        await expect(join.locator("#pre-when")).to_contain_text(expected["workshop"])
        await expect(join.locator("#pre-when")).to_contain_text(KOLKATA_WORKSHOP)
        await expect(join.locator("#pre-agenda-list")).to_contain_text(expected["session"])
        await expect(join.locator("#pre-agenda-list")).to_contain_text(KOLKATA_SESSION)
        await expect(join.locator("#pre-zone")).to_have_value(zone)

    # Ana chooses her own zone on the join page: the agenda follows and the roster keeps it.
    await join.locator("#pre-zone").fill("Asia/Tokyo")
    await join.locator("#pre-zone").press("Enter")
    await join.locator("#pre-zone").blur()
    await expect(join.locator("#pre-agenda-list")).to_contain_text("14:30\u201315:45 Tokyo (GMT+9)")
    await expect(join.locator("#pre-agenda-list")).to_contain_text(KOLKATA_SESSION)
    resp = await live_server.client.get(f"/api/v1/workshops/{wid}/participants/{ana['id']}", headers=ADMIN)
    assert (await resp.json())["timezone"] == "Asia/Tokyo"
    assert browser.page_errors == []


async def test_sessions_across_a_daylight_saving_change_keep_their_local_times(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    # London moves from GMT to BST at 01:00 UTC on 28 March 2027; the viewer in Seoul has no daylight saving.
    resp = await live_server.client.post(
        "/api/v1/workshops",
        json={
            "title": "Spring school",
            "timezone": "Europe/London",
            "starts_at": "2027-03-27T08:00:00Z",
            "ends_at": "2027-03-29T17:00:00Z",
        },
        headers=ADMIN,
    )
    assert resp.status == 201
    wid = (await resp.json())["id"]
    page = await page_in(browser, "Asia/Seoul")
    await sign_in(page, live_server.base_url, f"#workshop/{wid}")
    await add_session(page, "Saturday keynote", "2027-03-27T09:00", "2027-03-27T10:00")
    await add_session(page, "Monday keynote", "2027-03-29T09:00", "2027-03-29T10:00")
    sessions = await agenda_of(live_server, wid)
    assert sessions["Saturday keynote"]["starts_at"] == "2027-03-27T09:00:00Z"  # 09:00 GMT
    assert sessions["Monday keynote"]["starts_at"] == "2027-03-29T08:00:00Z"  # 09:00 BST
    saturday = page.locator("#agenda tbody tr", has_text="Saturday keynote")
    monday = page.locator("#agenda tbody tr", has_text="Monday keynote")
    await expect(saturday).to_contain_text("18:00\u201319:00 Seoul (GMT+9)")
    await expect(saturday).to_contain_text("09:00\u201310:00 London (GMT)")
    await expect(monday).to_contain_text("17:00\u201318:00 Seoul (GMT+9)")
    await expect(monday).to_contain_text("09:00\u201310:00 London (GMT+1)")
    # Editing a session shows its own local time back, on its side of the change.
    await monday.get_by_role("button", name="Change").click()
    await expect(page.locator("#agenda-form").get_by_label("Session begins")).to_have_value("2027-03-29T09:00")
    await expect(page.locator('label[for="ag-starts"]')).to_contain_text("London (GMT+1)")
    assert browser.page_errors == []


async def test_a_moderator_sees_the_agendas_next_action_in_both_zones_and_holds_it(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    resp = await client.post(
        "/api/v1/workshops",
        json={
            "title": "Water utilities",
            "timezone": "Asia/Kolkata",
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(hours=8)).isoformat(),
        },
        headers=ADMIN,
    )
    wid = (await resp.json())["id"]
    mia = await add_participant(client, wid, display_name="Mia Moderator", country="TR", role="moderator")
    await add_participant(client, wid, display_name="Ana Pereira", country="PT")
    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts",
        json={"name": "Groups", "rooms": ["North", "South"], "strategy": "balanced"},
        headers=ADMIN,
    )
    plan = await resp.json()
    starts = now + timedelta(hours=2)
    resp = await client.post(
        f"/api/v1/workshops/{wid}/agenda",
        json={
            "title": "Working groups",
            "kind": "breakouts",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=1)).isoformat(),
            "breakout_plan_id": plan["id"],
        },
        headers=ADMIN,
    )
    session = await resp.json()
    page = await page_in(browser, "Europe/Istanbul")
    await join(page, mia["join_url"], "Mia Moderator")
    # The room says what is next, in both zones.
    istanbul = starts.astimezone(ZoneInfo("Europe/Istanbul")).strftime("%H:%M")
    kolkata = starts.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%H:%M")
    line = page.locator("#room-agenda")
    await expect(line).to_contain_text("Next: Working groups")
    await expect(line).to_contain_text(f"{istanbul}\u2013")
    await expect(line).to_contain_text("Istanbul (GMT+3) \u00b7 ")
    await expect(line).to_contain_text(f"{kolkata}\u2013")
    await page.get_by_role("tab", name="Moderate").click()
    upcoming = page.locator("#mod-agenda")
    await expect(upcoming).to_contain_text("Open breakouts")
    await expect(upcoming).to_contain_text(f"{istanbul} Istanbul (GMT+3)")
    await expect(upcoming).to_contain_text(f"{kolkata} Kolkata (GMT+5:30)")
    await upcoming.get_by_role("button", name="Hold").click()
    await expect(upcoming.get_by_role("button", name="Release")).to_be_visible()
    await expect(upcoming).to_contain_text("Held")
    resp = await client.get(f"/api/v1/workshops/{wid}/agenda/{session['id']}", headers=ADMIN)
    assert (await resp.json())["held"] is True
    assert browser.page_errors == []
