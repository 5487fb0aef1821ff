"""The organiser page in real Chromium: sign in with the admin token, create a workshop, import a roster,
copy an invite link, and that link opens the participant's pre-join screen."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import BrowserSession, LiveServer
from tests.e2e.pages import open_join_page, save_screenshot

pytestmark = pytest.mark.browser

ROSTER = """display_name,country,organisation,email,role
Ana Pereira,PT,Polícia Judiciária,ana@example.org,participant
Ben Okafor,NG,Lagos Water Board,,participant
Mia Moderator,IE,Bureau,,moderator
"""


async def test_organiser_creates_a_workshop_and_imports_a_roster(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    page = await browser.new_page("organiser")
    await page.goto(f"{live_server.base_url}/admin")

    # A wrong token is refused; the right one is kept for the tab's session only.
    await page.get_by_label("Admin token").fill("not-the-admin-token-at-all")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not accepted")
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text("No workshops yet.")).to_be_visible()
    assert await page.evaluate("() => sessionStorage.getItem('roundtable.admin_token')") == ADMIN_TOKEN
    assert await page.evaluate("() => localStorage.length") == 0

    await page.get_by_label("Title").fill("Cross-border investigations")
    await page.get_by_label("Time zone").fill("Europe/Brussels")
    await page.get_by_role("button", name="Create workshop").click()
    await expect(page.get_by_role("heading", name="Cross-border investigations")).to_be_visible()
    await expect(page.locator("#rooms")).to_contain_text("Plenary")

    await page.get_by_label("Or paste the CSV here").fill(ROSTER)
    await page.get_by_role("button", name="Import", exact=True).click()
    await expect(page.locator(".toast", has_text="3 participants imported")).to_be_visible()
    rows = page.locator("#participants tbody tr")
    await expect(rows).to_have_count(3)
    ana_row = rows.filter(has_text="Ana Pereira")
    await expect(ana_row).to_contain_text("Polícia Judiciária")
    invite = ana_row.locator("input.invite-url")
    join_url = await invite.input_value()
    assert join_url.startswith(f"{live_server.base_url}/join#"), join_url

    # A roster with a bad row imports nothing and names the line.
    await page.get_by_label("Or paste the CSV here").fill("display_name,country\nZed,XX\n")
    await page.get_by_role("button", name="Import", exact=True).click()
    await expect(page.locator(".problems")).to_contain_text("line 2")
    await expect(rows).to_have_count(3)

    await ana_row.get_by_role("button", name="Copy the invite link of Ana Pereira").click()
    await expect(page.locator(".toast", has_text="Ana Pereira")).to_be_visible()

    shot = browser.output_dir / "organiser.png"
    await page.screenshot(path=str(shot), full_page=True)
    save_screenshot(shot)

    # The copied link is the participant's way in.
    participant = await browser.new_page("ana")
    await open_join_page(participant, join_url, "Ana Pereira")
    await expect(participant.get_by_role("button", name="Join", exact=True)).to_be_enabled()

    assert browser.page_errors == []
