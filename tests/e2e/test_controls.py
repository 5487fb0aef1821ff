"""Controls in real Chromium: icons with names, the microphone level meter and the muted hint, reactions over the
sender's tile (throttled), broadcast banners that can be dismissed and expire, and the recording indicator's
wording."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import PHONE, BrowserSession, LiveServer
from tests.e2e.pages import join, moderated_room, open_join_page, wait_media_flowing, wait_until
from tests.helpers import ADMIN, add_participant, create_workshop

pytestmark = pytest.mark.browser

# The level meter takes several different values over time, some of them loud: Chromium's fake microphone beeps.
_METER_MOVES = """
(selector) => {
  const el = document.querySelector(selector);
  const seen = (window.__levels = window.__levels || {});
  const values = (seen[selector] = seen[selector] || new Set());
  const level = el.getAttribute("role") === "meter"
    ? Number(el.getAttribute("aria-valuenow"))
    : Math.round(100 * new DOMMatrix(getComputedStyle(el.querySelector(".level-bar")).transform).a);
  values.add(level);
  return values.size >= 3 && Math.max(...values) >= 20 && Math.min(...values) < Math.max(...values);
}
"""

# Every button of the controls bar has an icon and a name for assistive technology.
_CONTROLS_WITHOUT_ICON_OR_NAME = """
() => [...document.querySelectorAll("#controls > button")].filter((b) => {
  const name = (b.getAttribute("aria-label") || b.querySelector(".control-label")?.textContent || "").trim();
  return !b.querySelector("svg.icon use") || !name;
}).map((b) => b.id)
"""


async def test_icons_level_meter_and_muted_hint(live_server: LiveServer, browser: BrowserSession) -> None:
    workshop = await create_workshop(live_server.client)
    ana = await add_participant(live_server.client, workshop["id"], display_name="Ana Pereira", country="PT")
    page = await browser.new_page("ana")

    # Pre-join: the meter moves with the fake microphone.
    await open_join_page(page, ana["join_url"], "Ana Pereira")
    await expect(page.get_by_role("meter", name="Microphone level")).to_be_visible()
    await wait_until(page, _METER_MOVES, "#pre-level", what="the pre-join level meter moving", timeout_ms=20_000)

    await page.get_by_role("button", name="Join", exact=True).click()
    await page.wait_for_function("() => window.roundtable.state().joined")
    assert await page.evaluate(_CONTROLS_WITHOUT_ICON_OR_NAME) == []
    await expect(page.locator("#btn-leave .control-label")).to_have_text("Leave")
    await wait_until(page, _METER_MOVES, "#room-level", what="the level meter in the mic button", timeout_ms=20_000)

    # Muted and "speaking" (the beeps): the hint says so; unmuted, it goes.
    hint = page.locator("#muted-hint")
    await expect(hint).to_be_hidden()
    await page.get_by_role("button", name="Mute your microphone").click()
    await expect(page.locator("#btn-mic use")).to_have_attribute("href", "#i-mic-off")
    await expect(hint).to_be_visible(timeout=20_000)
    await expect(hint).to_contain_text("You are muted")
    await page.get_by_role("button", name="React").click()
    await page.screenshot(path=str(browser.output_dir / "controls-muted-hint.png"))
    await page.get_by_role("button", name="React").click()
    await page.get_by_role("button", name="Unmute your microphone").click()
    await expect(hint).to_be_hidden()

    # A phone: icon-only buttons in one row, still named, none cut off.
    await page.set_viewport_size(PHONE)
    for name in ("Unmute your microphone", "Mute your microphone"):
        if await page.get_by_role("button", name=name).count():
            await expect(page.get_by_role("button", name=name)).to_be_in_viewport()
    await expect(page.get_by_role("button", name="Leave")).to_be_in_viewport()
    await expect(page.get_by_role("button", name="React")).to_be_in_viewport()
    await page.screenshot(path=str(browser.output_dir / "controls-phone.png"))

    assert browser.page_errors == []


async def _react_frames(page: Page) -> list[str]:
    """Collect what the page sends over its WebSocket that is a `react`."""
    sent: list[str] = []

    def on_socket(ws: Any) -> None:
        ws.on("framesent", lambda payload: sent.append(payload) if '"react"' in str(payload) else None)

    page.on("websocket", on_socket)
    return sent


async def test_reactions_float_over_the_sender_and_are_throttled(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    workshop = await create_workshop(live_server.client)
    ana = await add_participant(live_server.client, workshop["id"], display_name="Ana Pereira", country="PT")
    ben = await add_participant(live_server.client, workshop["id"], display_name="Ben Okafor", country="NG")
    page_a = await browser.new_page("ana")
    page_b = await browser.new_page("ben")
    sent = await _react_frames(page_a)
    await join(page_a, ana["join_url"], "Ana Pereira")
    await join(page_b, ben["join_url"], "Ben Okafor")
    await wait_media_flowing(page_b, {ana["id"]})

    # A burst of five clicks: one reaction goes out, the bar shows it is cooling down.
    await page_a.get_by_role("button", name="React").click()
    bar = page_a.get_by_role("toolbar", name="Reactions")
    await expect(bar).to_be_visible()
    await expect(bar.get_by_role("button")).to_have_count(7)
    await bar.get_by_role("button", name="Thumbs up").evaluate("(b) => { for (let i = 0; i < 5; i++) b.click(); }")
    float_on_ana = page_b.locator(f'.tile[data-peer-id="{ana["id"]}"] .reaction-float[data-emoji="👍"]')
    await expect(float_on_ana).to_have_count(1)
    await page_b.screenshot(path=str(browser.output_dir / "reaction.png"))
    await expect(page_a.locator(f'.tile[data-peer-id="{ana["id"]}"] .reaction-float')).to_have_count(1)
    await expect(page_b.locator('.tile[data-self="true"] .reaction-float')).to_have_count(0)
    await wait_until(
        page_a, "() => window.roundtable.reactions().length === 1", what="Ana's own reaction echoed", timeout_ms=10_000
    )
    assert [json.loads(frame)["emoji"] for frame in sent] == ["👍"]
    assert await page_b.evaluate("() => window.roundtable.reactions()") == [{"peer_id": ana["id"], "emoji": "👍"}]

    # Once the second is over, the next one goes through; the float goes away by itself.
    await expect(bar).not_to_have_class("reactions cooling", timeout=5_000)
    await bar.get_by_role("button", name="Celebration").click()
    await expect(page_b.locator(f'.tile[data-peer-id="{ana["id"]}"] .reaction-float[data-emoji="🎉"]')).to_have_count(1)
    await expect(float_on_ana).to_have_count(0, timeout=10_000)
    assert len(sent) == 2
    await page_a.keyboard.press("Escape")
    await expect(bar).to_be_hidden()

    assert browser.page_errors == []


async def test_broadcast_banner_dismissed_and_expires_clear_of_the_controls(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    wid = workshop["id"]
    ana = await add_participant(client, wid, display_name="Ana Pereira", country="PT")
    page = await browser.new_page("ana", viewport=PHONE)
    await join(page, ana["join_url"], "Ana Pereira")

    # Broadcasts go with running breakouts: self-select ones leave Ana in the plenary.
    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts",
        json={"name": "Topics", "rooms": ["Forensics"], "strategy": "self_select"},
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", json={}, headers=ADMIN)
    assert resp.status == 200, await resp.text()

    async def broadcast(text: str) -> None:
        resp = await client.post(
            f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/broadcast", json={"text": text}, headers=ADMIN
        )
        assert resp.status == 200, await resp.text()

    banner = page.locator("#broadcast-banner")
    await broadcast("Five more minutes, then we meet in the plenary. " * 4)
    await expect(banner).to_contain_text("Five more minutes")
    # On a phone it stays compact and clear of the controls.
    box = await banner.bounding_box()
    controls = await page.locator("#controls").bounding_box()
    assert box and controls
    assert box["y"] + box["height"] <= controls["y"], (box, controls)
    assert box["height"] <= 110, box
    await page.screenshot(path=str(browser.output_dir / "broadcast-phone.png"))
    await banner.get_by_role("button", name="Dismiss").click()
    await expect(banner).to_be_hidden()

    # The next one expires by itself (its lifetime shortened for the test); a pointer resting on a banner would
    # keep it, so the pointer moves off it first.
    await page.mouse.move(5, PHONE["height"] // 2)
    await page.evaluate("() => window.roundtable.setBroadcastLifetime(1500)")
    await broadcast("Back in the plenary at 11:00.")
    await expect(banner).to_contain_text("Back in the plenary")
    await expect(banner).to_be_hidden(timeout=10_000)
    # Both are kept in the chat.
    await expect(page.locator("#chat-log")).to_contain_text("Back in the plenary at 11:00.")

    assert browser.page_errors == []


async def test_recording_indicator_says_whether_you_are_included(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    _workshop, (_mia, _ana, _ben), (page_m, page_a, page_b) = await moderated_room(client, browser)
    await page_m.get_by_role("tab", name="Moderate").click()
    await page_m.locator("#panel-moderate").get_by_role("button", name="Start recording this room").click()

    indicator_a = page_a.locator("#recording-indicator")
    indicator_b = page_b.locator("#recording-indicator")
    await expect(indicator_a).to_have_text("Recording: you are not included")  # explicit consent: not yet
    await page_a.get_by_role("button", name="Record me", exact=True).click()
    await page_b.get_by_role("button", name="Don't record me").click()
    await expect(indicator_a).to_have_text("Recording: you are included")
    await expect(indicator_b).to_have_text("Recording: you are not included")
    await expect(indicator_a).to_have_accessible_name(
        "Recording: you are included. This room is being recorded. Change whether you are recorded"
    )

    # The indicator reopens the choice; changing one's mind changes the wording.
    await indicator_a.click()
    await expect(page_a.locator("#consent-banner")).to_be_visible()
    await page_a.get_by_role("button", name="Don't record me").click()
    await expect(indicator_a).to_have_text("Recording: you are not included")
    await expect(page_a.locator("#consent-banner")).to_be_hidden()

    assert browser.page_errors == []
