"""A server restart in an sfu room, in real Chromium with a real embedded Janus: the new process (and its new Janus)
has none of the old handles, so the resumed `welcome` says `media_kept: false` and each page publishes and
subscribes again; both see and hear each other as before, on the same attendance visit."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import expect

from server import keys
from server.app import create_app
from tests import netns
from tests.conftest import make_settings
from tests.e2e.conftest import BrowserSession, LiveServer, serve_with_sfu
from tests.e2e.test_sfu_call import _join_all, wait_media
from tests.helpers import add_participant, create_workshop

pytestmark = pytest.mark.browser

RTP_PORTS = "21200-21299"


@pytest.fixture
async def live_server(database_url: str, tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any) -> LiveServer:
    return await serve_with_sfu(database_url, tmp_path, aiohttp_server, aiohttp_client, rtp_ports=RTP_PORTS)


async def test_after_a_restart_an_sfu_room_publishes_and_subscribes_again_and_everyone_is_back(
    database_url: str, tmp_path: Path, aiohttp_server: Any, live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    people = [
        await add_participant(client, workshop["id"], display_name=name, country=country)
        for name, country in (("Ana Pereira", "PT"), ("Ben Okafor", "NG"))
    ]
    pages = await _join_all(browser, [("ana", people[0]), ("ben", people[1])])
    for page, other in zip(pages, reversed(people), strict=True):
        assert (await page.evaluate("() => window.roundtable.state()"))["room"]["media"] == "sfu"
        await wait_media(page, {other["id"]})

    port = client.port
    await client.server.close()
    for page in pages:
        await expect(page.locator("#reconnect-banner")).to_be_visible()
    settings = make_settings(
        database_url,
        tmp_path / "var",
        public_url=live_server.base_url,
        sfu="auto",
        sfu_ice_address=netns.MEDIA_ADDRESS,
        sfu_rtp_ports=RTP_PORTS,
        mesh_max=0,
    )
    again = await aiohttp_server(create_app(settings), host="127.0.0.1", port=port, shutdown_timeout=2.0)
    assert keys.SFU in again.app, "the embedded Janus did not start again"
    for page in pages:
        await expect(page.locator("#reconnect-banner")).to_be_hidden(timeout=30_000)
    for page, other in zip(pages, reversed(people), strict=True):
        await wait_media(page, {other["id"]})

    db = await asyncpg.connect(database_url)
    try:
        for person in people:
            events = await db.fetch(
                "SELECT event FROM attendance_events WHERE participant_id = $1 ORDER BY id", uuid.UUID(person["id"])
            )
            assert [r["event"] for r in events] == ["join", "drop", "resume"]
    finally:
        await db.close()
    assert browser.page_errors == []
