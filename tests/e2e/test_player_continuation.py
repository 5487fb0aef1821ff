"""The player page links a recording ended by a failover and its continuation both ways (docs/recordings.md
"Continuation after a failover"), in real Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from server import keys
from tests.e2e.conftest import BrowserSession, LiveServer
from tests.e2e.test_recordings_pages import stored_recording
from tests.helpers import add_participant, create_workshop

pytestmark = pytest.mark.browser


async def test_the_player_says_where_a_recording_is_continued_and_what_its_continuation_continues(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana Pereira")
    mia = await add_participant(client, workshop["id"], display_name="Mia", country="IE", role="moderator")
    first = await stored_recording(client, workshop, ana["id"])
    second = await stored_recording(client, workshop, ana["id"])
    await client.app[keys.POOL].execute("UPDATE recordings SET continues = $1 WHERE id = $2", first, second)

    page = await browser.new_page("mia")
    await page.goto(f"{live_server.base_url}/recordings/{first}#{mia['join_token']}")
    parts = page.locator("#player-parts")
    await expect(parts).to_have_text(f"Continued in {str(second)[:8]}")
    await parts.get_by_role("link").click()
    await expect(page).to_have_url(re.compile(f"/recordings/{second}#"))
    await expect(parts).to_have_text(f"This recording continues {str(first)[:8]}")
    assert browser.page_errors == []
