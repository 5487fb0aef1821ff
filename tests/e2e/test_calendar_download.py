"""The join page offers the participant's own calendar file: the sessions with their personal join link, the same
file the invitation e-mail carries (its content is tested in tests/server/test_invitations.py)."""

from __future__ import annotations

import base64
import json

import icalendar
import pytest

from tests.e2e.conftest import BrowserSession, LiveServer
from tests.e2e.pages import open_join_page
from tests.helpers import add_participant, create_workshop

pytestmark = pytest.mark.browser


async def test_a_participant_downloads_their_calendar_file_from_the_join_page(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client, title="Rivers without borders")
    ana = await add_participant(client, workshop["id"], display_name="Ana Pereira")
    page = await browser.new_page("ana")
    await open_join_page(page, ana["join_url"], "Ana Pereira")
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Add to my calendar (.ics)").click()
    download = await info.value
    assert download.suggested_filename == "roundtable.ics"
    path = await download.path()
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    (event,) = list(cal.walk("VEVENT"))
    assert "Rivers without borders" in str(event["SUMMARY"])
    token = str(event["URL"]).split("#")[1]  # a join link of its own (minted for the file), for this participant
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert (claims["sub"], claims["wid"]) == (ana["id"], workshop["id"])
    assert browser.page_errors == []
