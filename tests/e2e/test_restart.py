"""A server restart seen from two real browsers in a call: the drain closes their sockets with 1012, the client
comes back at once with its resume token, and a new server on the same database gives both their places back."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import expect

from server.app import create_app
from tests.conftest import make_settings
from tests.e2e.conftest import BrowserSession, LiveServer
from tests.e2e.pages import join, wait_media_flowing
from tests.e2e.test_call import _two_people

pytestmark = pytest.mark.browser


async def test_after_a_restart_both_browsers_are_back_in_the_call_on_the_same_visit(
    database_url: str, tmp_path: Path, aiohttp_server: Any, live_server: LiveServer, browser: BrowserSession
) -> None:
    ana, ben = await _two_people(live_server)
    page_a = await browser.new_page("ana")
    page_b = await browser.new_page("ben")
    await join(page_a, ana["join_url"], "Ana Pereira")
    await join(page_b, ben["join_url"], "Ben Okafor")
    await wait_media_flowing(page_a, {ben["id"]})
    await wait_media_flowing(page_b, {ana["id"]})

    # The server drains (as on SIGTERM); both pages show that they are reconnecting.
    port = live_server.client.port
    await live_server.client.server.close()
    for page in (page_a, page_b):
        await expect(page.locator("#reconnect-banner")).to_be_visible()

    # A new server on the same address and database: both come back by themselves, and see and hear each other.
    settings = make_settings(database_url, tmp_path / "var", public_url=live_server.base_url)
    await aiohttp_server(create_app(settings), host="127.0.0.1", port=port, shutdown_timeout=2.0)
    for page in (page_a, page_b):
        await expect(page.locator("#reconnect-banner")).to_be_hidden(timeout=30_000)
    await wait_media_flowing(page_a, {ben["id"]})
    await wait_media_flowing(page_b, {ana["id"]})

    db = await asyncpg.connect(database_url)
    try:
        for person in (ana, ben):
            rows = await db.fetch(
                "SELECT event, reason FROM attendance_events WHERE participant_id = $1 ORDER BY id",
                uuid.UUID(person["id"]),
            )
            events = [(r["event"], r["reason"]) for r in rows]
            assert events == [("join", "joined"), ("drop", "server_restart"), ("resume", "resumed")], events
    finally:
        await db.close()
    assert browser.page_errors == []
