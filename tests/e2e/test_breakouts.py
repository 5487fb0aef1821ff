"""A moderator runs breakouts from the console of the participant page, in real Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import BrowserSession, LiveServer
from tests.e2e.pages import (
    join,
    moderated_room,
    room,
    save_screenshot,
    wait_in_room,
    wait_media_flowing,
    wait_video_visible,
)
from tests.helpers import ADMIN, add_participant, create_workshop

pytestmark = pytest.mark.browser


async def test_moderator_opens_and_closes_breakouts_from_the_console(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    _workshop, (mia, ana, ben), (page_m, page_a, page_b) = await moderated_room(client, browser)

    # Everyone in the plenary, everyone connected to everyone.
    await wait_media_flowing(page_m, {ana["id"], ben["id"]})
    await wait_media_flowing(page_a, {mia["id"], ben["id"]})
    await wait_media_flowing(page_b, {mia["id"], ana["id"]})
    # Participants get no console.
    await expect(page_a.get_by_role("tab", name="Moderate")).to_be_hidden()

    # The moderator prepares two rooms, puts Ana and Ben both in "Room 2" by hand, and opens them.
    await page_m.get_by_role("tab", name="Moderate").click()
    console = page_m.locator("#panel-moderate")
    await console.get_by_label("Number of rooms").fill("2")
    await console.get_by_label("Assignment").select_option("manual")
    await console.get_by_role("button", name="Create breakout rooms").click()
    await expect(console.locator(".plan-state")).to_contain_text("prepared")
    for name in ("Ana Pereira", "Ben Okafor"):
        picker = console.get_by_label(f"Room for {name}")
        await picker.select_option(label="Room 2")
        # The pick survives the console's re-renders (the roster and the plan refresh under the moderator).
        await expect(picker.locator("option:checked")).to_have_text("Room 2")
    await console.get_by_role("button", name="Save assignments").click()
    await expect(page_m.locator(".toast", has_text="Assignments saved")).to_be_visible()
    await expect(console.get_by_label("Room for Ana Pereira")).to_have_value(re.compile(r"[0-9a-f-]{36}"))
    await console.get_by_label("Duration (minutes)").fill("10")
    await console.get_by_role("button", name="Open breakout rooms").click()

    # Both participants move to Room 2 and connect to each other there; the moderator stays alone.
    await wait_in_room(page_a, "Room 2", {ben["id"]})
    await wait_in_room(page_b, "Room 2", {ana["id"]})
    await wait_in_room(page_m, "Plenary", set())
    await wait_media_flowing(page_a, {ben["id"]})
    await wait_media_flowing(page_b, {ana["id"]})
    await wait_video_visible(page_a, ben["id"])
    await expect(page_a.locator("#room-name")).to_contain_text("Room 2")
    # The timer is visible: about ten minutes left.
    await expect(page_a.locator("#breakout-timer")).to_have_text(re.compile(r"^Breakouts: (10:00|9:[0-5]\d) left$"))
    await expect(console.locator(".plan-state")).to_contain_text("open")
    room_2 = console.locator('.mod-room:has(> .mod-room-head strong:text-is("Room 2"))')
    await expect(room_2).to_contain_text("Ana Pereira")
    await expect(room_2).to_contain_text("Ben Okafor")

    # A broadcast reaches every room; Ana asks for help and the moderator sees it in the queue.
    await console.get_by_label("Message to every room").fill("Five more minutes, then we meet again.")
    await console.get_by_role("button", name="Broadcast").click()
    await expect(page_b.locator("#broadcast-banner")).to_contain_text("Five more minutes")
    await page_a.get_by_role("button", name="Ask for help").click()
    await expect(console.locator(".help-item")).to_contain_text("Ana Pereira in Room 2")
    # Extend by a minute: the participants' timer jumps past ten minutes.
    await console.get_by_label("Extend by (minutes)").fill("1")
    await console.get_by_role("button", name="Extend").click()
    await expect(page_a.locator("#breakout-timer")).to_have_text(re.compile(r"^Breakouts: (10:[0-5]\d|11:00) left$"))

    # Moving Ben to Room 1 from the console: he is alone there, and so is Ana in Room 2.
    moves = console.locator(".mod-roster")
    await moves.get_by_label("Room for Ben Okafor").select_option(label="Room 1")
    await expect(moves.get_by_label("Room for Ben Okafor").locator("option:checked")).to_have_text("Room 1")
    await moves.get_by_role("button", name="Move Ben Okafor", exact=True).click()
    await wait_in_room(page_b, "Room 1", set())
    await wait_in_room(page_a, "Room 2", set())
    await expect(console.locator('.mod-room:has(> .mod-room-head strong:text-is("Room 1"))')).to_contain_text(
        "Ben Okafor"
    )

    # A clean picture for the docs: the broadcast dismissed, the notices faded.
    await page_m.locator("#broadcast-dismiss").click()
    await expect(page_m.locator(".toast")).to_have_count(0, timeout=20_000)
    await console.locator(".mod-scroll").evaluate("(el) => { el.scrollTop = 0; }")  # the bar never scrolls
    shot = browser.output_dir / "moderator-console.png"
    await page_m.screenshot(path=str(shot))
    save_screenshot(shot, "screenshot-moderator.png")

    # Close with a short countdown: it shows, then everyone is back in the plenary and reconnects.
    await console.get_by_label("Countdown (seconds)").fill("6")
    await console.get_by_role("button", name="Close breakout rooms").click()
    await expect(page_b.locator("#breakout-banner")).to_contain_text("close in", timeout=6_000)
    await wait_in_room(page_a, "Plenary", {mia["id"], ben["id"]})
    await wait_in_room(page_b, "Plenary", {mia["id"], ana["id"]})
    await wait_in_room(page_m, "Plenary", {ana["id"], ben["id"]})
    await wait_media_flowing(page_m, {ana["id"], ben["id"]})
    await wait_media_flowing(page_a, {mia["id"], ben["id"]})
    await wait_media_flowing(page_b, {mia["id"], ana["id"]})
    await wait_video_visible(page_m, ana["id"])
    await expect(page_a.locator("#breakout-banner")).to_be_hidden()
    assert (await room(page_a))["breakout"] is None

    # Removing someone from the console ends their session with a clear message.
    person = console.locator(f'.mod-person[data-participant-id="{ben["id"]}"]')
    await person.get_by_role("button", name="Remove Ben Okafor from the workshop").click()
    await person.get_by_role("button", name="Confirm removal").click()
    await expect(page_b.locator("#end-message")).to_contain_text("A moderator removed you")
    await wait_in_room(page_m, "Plenary", {ana["id"]})

    assert browser.page_errors == []


async def test_participants_choose_their_room_and_follow_moderator_requests(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    wid = workshop["id"]
    ana = await add_participant(client, wid, display_name="Ana Pereira", country="PT")
    ben = await add_participant(client, wid, display_name="Ben Okafor", country="NG")
    page_a = await browser.new_page("ana")
    page_b = await browser.new_page("ben")
    await join(page_a, ana["join_url"], "Ana Pereira")
    await join(page_b, ben["join_url"], "Ben Okafor")
    await wait_media_flowing(page_a, {ben["id"]})

    # Self-select breakouts, run over the API: the participants pick "Forensics" in the chooser.
    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts",
        json={"name": "Pick a topic", "rooms": ["Forensics", "Finance"], "strategy": "self_select"},
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", json={}, headers=ADMIN)
    assert resp.status == 200, await resp.text()

    for page in (page_a, page_b):
        chooser = page.locator("#room-chooser")
        await expect(chooser).to_contain_text("Choose a breakout room")
        await chooser.get_by_role("button", name="Go to Forensics").click()
    await wait_in_room(page_a, "Forensics", {ben["id"]})
    await wait_in_room(page_b, "Forensics", {ana["id"]})
    await wait_media_flowing(page_a, {ben["id"]})
    await wait_media_flowing(page_b, {ana["id"]})
    await expect(page_a.locator("#room-chooser")).to_contain_text("You are here")
    # No deadline was set: the header says the breakouts are open.
    await expect(page_a.locator("#breakout-timer")).to_have_text("Pick a topic: open")

    # A moderator mutes Ana over the API: her page turns the microphone off and Ben sees it.
    resp = await client.post(
        f"/api/v1/workshops/{wid}/participants/{ana['id']}/mute", json={"kind": "audio"}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    await expect(page_a.get_by_role("button", name="Unmute your microphone")).to_be_visible()
    await expect(page_b.locator(f'.tile[data-peer-id="{ana["id"]}"]')).to_contain_text("Muted")
    # Ben goes back to the plenary on his own.
    await page_b.locator("#room-chooser").get_by_role("button", name="Back to the plenary").click()
    await wait_in_room(page_b, "Plenary", set())
    await wait_in_room(page_a, "Forensics", set())

    assert browser.page_errors == []
