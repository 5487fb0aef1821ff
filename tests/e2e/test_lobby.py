"""The waiting page in real Chromium: a participant waits with the workshop's title and their own camera preview, a
moderator (a test WebSocket client) admits them and they enter; denied, the page shows the moderator's message and
knocks again with one click."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import BrowserSession, LiveServer
from tests.e2e.pages import JOIN_TIMEOUT_MS, open_join_page, save_screenshot
from tests.helpers import ADMIN, add_participant, create_workshop
from tests.signaling.admission import enter

pytestmark = pytest.mark.browser

PREVIEW_PLAYS = "() => { const v = document.querySelector('#lobby-preview'); return v && v.videoWidth > 0; }"


async def knock_from(page: Page, join_url: str, display_name: str) -> None:
    await open_join_page(page, join_url, display_name)
    await page.get_by_role("button", name="Join", exact=True).click()
    await expect(page.locator("#lobby")).to_be_visible(timeout=JOIN_TIMEOUT_MS)


async def test_a_participant_waits_with_title_and_preview_and_enters_when_admitted(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client, title="Cross-border investigations: closed session", lobby="everyone")
    mod = await add_participant(client, workshop["id"], display_name="Mia Moderator", country="IE", role="moderator")
    ana = await add_participant(client, workshop["id"], display_name="Ana Pereira", country="PT")
    m = await enter(client, mod["join_token"])
    page = await browser.new_page("ana")
    await knock_from(page, ana["join_url"], "Ana Pereira")

    await expect(page.locator("#lobby-title")).to_have_text("Cross-border investigations: closed session")
    await expect(page.locator("#lobby-message")).to_contain_text("A moderator will let you in")
    await expect(page.locator("#lobby-waited")).to_contain_text("Waiting for")
    await page.wait_for_function(PREVIEW_PLAYS, timeout=JOIN_TIMEOUT_MS)
    assert not await page.evaluate("() => window.roundtable.state().joined")
    knock = (await m.wait_for("knock"))["knock"]
    assert (knock["display_name"], knock["reason"], knock["connected"]) == ("Ana Pereira", "lobby", True)
    device = await page.evaluate("() => localStorage.getItem('roundtable.device')")
    assert device and len(device) <= 64
    shot = browser.output_dir / "lobby-waiting.png"
    await page.screenshot(path=str(shot))
    save_screenshot(shot, "screenshot-lobby.png")

    await m.send({"type": "admit", "knock_ids": [knock["id"]], "request_id": "in"})
    assert (await m.wait_for("ack", request_id="in"))["admitted"] == 1
    await page.wait_for_function("() => window.roundtable.state().joined", timeout=JOIN_TIMEOUT_MS)
    await expect(page.locator("#room")).to_be_visible()
    await expect(page.locator("#lobby")).to_be_hidden()
    assert (await m.wait_for("peer_joined"))["peer"]["id"] == ana["id"]
    assert browser.page_errors == []
    await m.close()


async def test_a_denied_participant_sees_the_message_and_can_knock_again(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client, lobby="everyone")
    mod = await add_participant(client, workshop["id"], display_name="Mia Moderator", country="IE", role="moderator")
    ben = await add_participant(client, workshop["id"], display_name="Ben Okafor", country="NG")
    m = await enter(client, mod["join_token"])
    page = await browser.new_page("ben")
    await knock_from(page, ben["join_url"], "Ben Okafor")
    first = (await m.wait_for("knock"))["knock"]
    await m.send({"type": "deny", "knock_id": first["id"], "message": "Registered delegates only.", "request_id": 1})
    await m.wait_for("ack", request_id=1)

    await expect(page.locator("#lobby-denied")).to_be_visible(timeout=JOIN_TIMEOUT_MS)
    await expect(page.locator("#lobby-denied-message")).to_have_text("Registered delegates only.")
    await expect(page.locator("#lobby-message")).to_have_text("A moderator did not let you in.")
    await page.wait_for_function(PREVIEW_PLAYS, timeout=JOIN_TIMEOUT_MS)  # the preview stays
    shot = browser.output_dir / "lobby-denied.png"
    await page.screenshot(path=str(shot))
    save_screenshot(shot, "screenshot-lobby-denied.png")

    await page.get_by_role("button", name="Knock again").click()
    second = (await m.wait_for("knock"))["knock"]
    assert second["id"] != first["id"]
    await expect(page.locator("#lobby-denied")).to_be_hidden()
    await m.send({"type": "admit", "all": True})
    await page.wait_for_function("() => window.roundtable.state().joined", timeout=JOIN_TIMEOUT_MS)
    await expect(page.locator("#room")).to_be_visible()
    assert browser.page_errors == []
    await m.close()


async def test_a_banned_participant_opening_the_link_is_told_so(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana Pereira", country="PT")
    resp = await client.post(
        f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}/remove", json={"ban": True}, headers=ADMIN
    )
    assert resp.status == 200
    page = await browser.new_page("ana")
    await page.goto(ana["join_url"])
    await expect(page.locator("#end-message")).to_have_text(
        "You are not allowed into this workshop any more. If you think this is a mistake, contact the organiser.",
        timeout=JOIN_TIMEOUT_MS,
    )
