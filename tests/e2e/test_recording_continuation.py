"""A recording's continuation in real Chromium (docs/recordings.md "Continuation after a failover"): the browser
that answered the first part is not asked again; a yes sends its media to the continuation's recorder at once, a no
keeps it out."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Page, expect

from recordings.service import Starter
from server import keys
from tests.e2e.conftest import BrowserSession, LiveServer
from tests.e2e.pages import MEDIA_TIMEOUT_MS, moderated_room, wait_media_flowing
from tests.e2e.test_recording import _SENDING_TO, _peer_ids

pytestmark = pytest.mark.browser


async def test_a_continuation_asks_nobody_again_and_takes_the_media_of_those_who_agreed(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop, (mia, _ana, ben), (_page_m, page_a, page_b) = await moderated_room(client, browser)
    await wait_media_flowing(page_a, {mia["id"], ben["id"]})
    coordinator, service = client.app[keys.RECORDINGS], client.app[keys.SIGNALING]
    room = service.rooms[workshop["plenary_room_id"]].info
    first = await coordinator.start(room, "explicit", Starter(id=None, role="admin", display_name="Admin"))
    await expect(page_a.locator("#consent-banner")).to_be_visible()
    await page_a.get_by_role("button", name="Record me", exact=True).click()
    await page_b.get_by_role("button", name="Don't record me").click()
    await expect(page_a.locator("#consent-banner")).to_be_hidden()
    await expect(page_b.locator("#consent-banner")).to_be_hidden()

    # The node running it dies (simulated here: the recording is dropped from memory and its recorder stops); the
    # next owner finalises it and continues it, the room having members.
    live = coordinator.live.pop(first["id"])
    coordinator._by_peer.pop(live.member.id, None)
    service.remove_hidden(live.member)
    await live.recorder.stop()
    service.set_recording(room.id, None)
    assert first["id"] in await coordinator.recover()
    await coordinator._load_pending(None)

    async def continuation_status(page: Page) -> dict[str, str]:
        handle = await page.wait_for_function(
            "(old) => { const r = window.roundtable.state().recording; return r && r.continues === old && r; }",
            arg=str(first["id"]),
            timeout=MEDIA_TIMEOUT_MS,
        )
        status: dict[str, str] = await handle.json_value()
        return status

    status_a, status_b = await continuation_status(page_a), await continuation_status(page_b)
    assert status_a["recording_id"] == status_b["recording_id"] != str(first["id"])
    for page in (page_a, page_b):  # nobody is asked again
        await expect(page.locator("#recording-indicator")).to_be_visible()
        await expect(page.locator("#consent-banner")).to_be_hidden()
    await expect(page_a.locator("#recording-indicator")).to_have_attribute("title", "Recording: you are recorded")
    await expect(page_b.locator("#recording-indicator")).to_have_attribute("title", "Recording: you are not recorded")
    recorder = status_a["recorder_peer_id"]
    await page_a.wait_for_function(
        _SENDING_TO, arg=[recorder, {"audio": 0, "video": 0}], timeout=MEDIA_TIMEOUT_MS, polling=250
    )
    assert recorder not in await _peer_ids(page_b)
    assert coordinator.live[uuid.UUID(status_a["recording_id"])].continues == first["id"]
    assert browser.page_errors == []
