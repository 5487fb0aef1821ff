"""Recording in real Chromium: the indicator, the consent prompt, and media to the recorder only after a yes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server import keys
from tests.e2e.conftest import BrowserSession, LiveServer
from tests.e2e.pages import MEDIA_TIMEOUT_MS, moderated_room, save_screenshot, wait_media_flowing
from tests.helpers import ADMIN

pytestmark = pytest.mark.browser

# Connected to the recorder, with audio and video bytes going out and growing.
_SENDING_TO = """
async ([id, before]) => {
  const s = (await window.roundtable.stats()).find((x) => x.peerId === id);
  return !!s && s.connectionState === "connected" && s.outbound.audio > before.audio && s.outbound.video > before.video;
}
"""


async def _outbound(page: Page, peer_id: str) -> dict[str, int]:
    stats: list[dict[str, Any]] = await page.evaluate("() => window.roundtable.stats()")
    for item in stats:
        if item["peerId"] == peer_id:
            out: dict[str, int] = item["outbound"]
            return out
    return {"audio": 0, "video": 0}


async def _peer_ids(page: Page) -> list[str]:
    stats: list[dict[str, Any]] = await page.evaluate("() => window.roundtable.stats()")
    return [s["peerId"] for s in stats]


async def test_recording_indicator_consent_and_media_after_consent(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    # recording_consent: explicit (the default)
    _workshop, (mia, ana, ben), (page_m, page_a, page_b) = await moderated_room(client, browser)
    await wait_media_flowing(page_a, {mia["id"], ben["id"]})

    # The moderator starts recording the plenary from the console.
    await page_m.get_by_role("tab", name="Moderate").click()
    console = page_m.locator("#panel-moderate")
    await console.get_by_role("button", name="Start recording this room").click()
    await expect(console).to_contain_text("This room is being recorded.")

    # Everyone sees the indicator and is asked; nothing goes to the recorder before an answer.
    for page in (page_a, page_b):
        await expect(page.locator("#recording-indicator")).to_be_visible()
        await expect(page.locator("#consent-banner")).to_contain_text("recorded only if you agree")
    shot = browser.output_dir / "recording-consent.png"
    await page_b.screenshot(path=str(shot))
    save_screenshot(shot)
    recording = (await page_a.evaluate("() => window.roundtable.state()"))["recording"]
    recorder = recording["recorder_peer_id"]
    assert recorder not in await _peer_ids(page_a)
    assert recorder not in await _peer_ids(page_b)

    # Ana agrees: her media flows to the recorder. Ben declines: his never does.
    await page_a.get_by_role("button", name="Record me", exact=True).click()
    await page_b.get_by_role("button", name="Don't record me").click()
    await expect(page_a.locator("#consent-banner")).to_be_hidden()
    await page_a.wait_for_function(
        _SENDING_TO, arg=[recorder, {"audio": 0, "video": 0}], timeout=MEDIA_TIMEOUT_MS, polling=250
    )
    before = await _outbound(page_a, recorder)
    await page_a.wait_for_function(_SENDING_TO, arg=[recorder, before], timeout=MEDIA_TIMEOUT_MS, polling=250)
    assert recorder not in await _peer_ids(page_b)
    await expect(page_b.locator("#recording-indicator")).to_have_attribute("title", "Recording: you are not recorded")

    # Before stopping, let the recorder write frames of both of Ana's tracks: on a loaded machine the aiortc
    # recorder can trail the browser by seconds, and its video file starts only at a keyframe.
    live = live_server.client.app[keys.RECORDINGS].live[uuid.UUID(recording["recording_id"])]

    def recorder_has_frames() -> bool:
        written = {t.kind for t in live.recorder.tracks.values() if t.participant_id == ana["id"] and t.writer.packets}
        return written == {"audio", "video"}

    await page_a.expose_function("recorderHasFrames", recorder_has_frames)
    await page_a.wait_for_function("() => window.recorderHasFrames()", timeout=MEDIA_TIMEOUT_MS, polling=250)
    # The call itself goes on meanwhile.
    await wait_media_flowing(page_b, {mia["id"], ana["id"]})

    # Stopped from the console: the indicator goes away and the connection to the recorder is closed.
    await console.get_by_role("button", name="Stop recording Plenary").click()
    # The console says so once the server has finished the files (the room hears recording_stopped before).
    await expect(page_m.locator(".toast", has_text="the files are ready")).to_be_visible(timeout=MEDIA_TIMEOUT_MS)
    for page in (page_a, page_b, page_m):
        await expect(page.locator("#recording-indicator")).to_be_hidden()
    await page_a.wait_for_function(
        "async (id) => !(await window.roundtable.stats()).some((s) => s.peerId === id)", arg=recorder
    )

    # The recording holds Ana's audio and video and nothing of Ben's; the ledger has both answers.
    resp = await client.get(f"/api/v1/recordings/{recording['recording_id']}", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["state"] == "ready", body
    assert {(t["participant_id"], t["kind"]) for t in body["tracks"]} == {(ana["id"], "audio"), (ana["id"], "video")}
    assert all(t["bytes"] and t["bytes"] > 0 for t in body["tracks"]), body["tracks"]
    assert body["consent"]["granted"] == [ana["id"]]
    assert body["consent"]["declined"] == [ben["id"]]

    assert browser.page_errors == []
