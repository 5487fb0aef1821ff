"""Two people in one room, in real Chromium: media both ways, state, chat, a narrow screen, a dropped
connection that resumes, and leaving."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import PHONE, BrowserSession, LiveServer
from tests.e2e.pages import join, save_screenshot, wait_media_flowing, wait_video_visible
from tests.helpers import add_participant, create_workshop

pytestmark = pytest.mark.browser


async def _two_people(live_server: LiveServer) -> tuple[dict[str, str], dict[str, str]]:
    workshop = await create_workshop(live_server.client)
    ana = await add_participant(live_server.client, workshop["id"], display_name="Ana Pereira", country="PT")
    ben = await add_participant(
        live_server.client, workshop["id"], display_name="Ben Okafor", country="NG", organisation="Lagos Water Board"
    )
    for person in (ana, ben):
        assert person["join_url"].startswith(f"{live_server.base_url}/join#"), person["join_url"]
    return ana, ben


async def test_two_participants_see_and_hear_each_other(live_server: LiveServer, browser: BrowserSession) -> None:
    ana, ben = await _two_people(live_server)
    page_a = await browser.new_page("ana")
    page_b = await browser.new_page("ben")

    await join(page_a, ana["join_url"], "Ana Pereira")
    await join(page_b, ben["join_url"], "Ben Okafor", keyboard=True)  # the newcomer offers to Ana

    # Each side: RTCPeerConnection connected, audio and video bytes from the other growing, frames on screen.
    await wait_media_flowing(page_a, {ben["id"]})
    await wait_media_flowing(page_b, {ana["id"]})
    await wait_video_visible(page_a, ben["id"])
    await wait_video_visible(page_b, ana["id"])

    # The participant list: names, countries, roles.
    people_b = page_b.locator("#people-list")
    await expect(people_b.locator(f'[data-peer-id="{ana["id"]}"]')).to_contain_text("Ana Pereira")
    await expect(people_b.locator(f'[data-peer-id="{ana["id"]}"]')).to_contain_text("Portugal")
    await expect(people_b.locator(f'[data-peer-id="{ana["id"]}"]')).to_contain_text("Participant")

    # Mute and raise a hand: the other side sees both on Ana's tile.
    await page_a.get_by_role("button", name="Mute your microphone").click()
    await page_a.get_by_role("button", name="Raise hand").click()
    tile_of_ana = page_b.locator(f'.tile[data-peer-id="{ana["id"]}"]')
    await expect(tile_of_ana).to_contain_text("Muted")
    await expect(tile_of_ana).to_contain_text("Hand raised")

    # Chat reaches the other side.
    await page_b.get_by_role("tab", name="Chat").click()
    await page_a.get_by_role("tab", name="Chat").click()
    await page_a.get_by_role("textbox", name="Chat message").fill("Hello from Lisbon")
    await page_a.get_by_role("button", name="Send", exact=True).click()
    await expect(page_b.locator("#chat-log")).to_contain_text("Hello from Lisbon")
    await page_b.get_by_role("tab", name="People").click()

    # Ben switches microphone in the devices dialog: Ana keeps receiving his audio (replaceTrack, no renegotiation).
    await page_b.get_by_role("button", name="Devices").click()
    dialog = page_b.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    microphones = dialog.get_by_label("Microphone", exact=True)
    await expect(microphones.locator("option")).not_to_have_count(0)
    options = await microphones.locator("option").all()
    assert len(options) >= 2, "the fake device offers several microphones"
    other = await options[1].get_attribute("value")
    assert other
    await microphones.select_option(other)
    await dialog.get_by_role("button", name="Dismiss").click()
    await page_b.wait_for_function(
        "(id) => window.roundtable.state().self && document.querySelector('#mic-select').value === id", arg=other
    )
    await wait_media_flowing(page_a, {ben["id"]})

    shot = browser.output_dir / "participant-grid.png"
    await page_b.screenshot(path=str(shot))
    save_screenshot(shot, "screenshot-participant.png")

    # A phone: the room still fits, controls on screen and operable.
    await page_b.set_viewport_size(PHONE)
    leave = page_b.get_by_role("button", name="Leave")
    await expect(leave).to_be_in_viewport()
    await expect(page_b.get_by_role("button", name="Mute your microphone")).to_be_in_viewport()
    await expect(page_b.locator(f'.tile[data-peer-id="{ana["id"]}"]')).to_be_in_viewport()
    phone_shot = browser.output_dir / "participant-phone.png"
    await page_b.screenshot(path=str(phone_shot))
    save_screenshot(phone_shot)

    assert browser.page_errors == []


async def test_dropped_connection_resumes_and_leave_ends(live_server: LiveServer, browser: BrowserSession) -> None:
    ana, ben = await _two_people(live_server)
    page_a = await browser.new_page("ana")
    page_b = await browser.new_page("ben")
    await join(page_a, ana["join_url"], "Ana Pereira")
    await join(page_b, ben["join_url"], "Ben Okafor")
    await wait_media_flowing(page_a, {ben["id"]})
    await wait_media_flowing(page_b, {ana["id"]})

    # Ana's socket drops: she sees the banner, resumes, and both sides build new connections.
    await page_a.evaluate("() => window.roundtable.dropConnection()")
    banner = page_a.locator("#reconnect-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Reconnecting")
    await expect(banner).to_be_hidden(timeout=30_000)
    assert (await page_a.evaluate("() => window.roundtable.state().self.id")) == ana["id"]
    await wait_media_flowing(page_a, {ben["id"]})
    await wait_media_flowing(page_b, {ana["id"]})
    await wait_video_visible(page_b, ana["id"])

    # Leaving: Ana gets the end screen, Ben's grid loses her tile.
    await page_a.get_by_role("button", name="Leave").click()
    await expect(page_a.locator("#end")).to_be_visible()
    await expect(page_a.locator("#end-message")).to_contain_text("You left the room")
    await expect(page_b.locator(f'.tile[data-peer-id="{ana["id"]}"]')).to_have_count(0)

    assert browser.page_errors == []
