"""The organiser page's invitations card in real Chromium: send to everyone with one click, the e-mail arrives at a
real SMTP server, each person's state follows (sent; failed with the reason), and a resend delivers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import BrowserSession, LiveServer, serve
from tests.helpers import add_participant, create_workshop
from tests.signaling.rtc_peer import loopback_ice
from tests.smtp import Mailbox, smtp_server

pytestmark = pytest.mark.browser


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    async with smtp_server() as box:
        yield box


@pytest.fixture
async def mail_server(
    database_url: str,
    tmp_path: Path,
    aiohttp_server: Any,
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    mailbox: Mailbox,
) -> LiveServer:
    loopback_ice(monkeypatch)
    return await serve(
        database_url,
        tmp_path,
        aiohttp_server,
        aiohttp_client,
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_starttls=False,
        smtp_from="Workshop Office <office@example.org>",
    )


async def test_organiser_sends_every_invitation_with_one_click_and_resends_a_failed_one(
    mail_server: LiveServer, browser: BrowserSession, mailbox: Mailbox
) -> None:
    client = mail_server.client
    workshop = await create_workshop(client, timezone="Asia/Kolkata")
    await add_participant(client, workshop["id"], display_name="Ana Pereira", email="ana@example.org")
    await add_participant(client, workshop["id"], display_name="Ben Okafor", country="NG")

    page = await browser.new_page("organiser")
    await page.goto(f"{mail_server.base_url}/admin")
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await page.goto(f"{mail_server.base_url}/admin#workshop/{workshop['id']}")
    card = page.locator("#invitations")
    await expect(card).to_contain_text("E-mail is sent through the server's SMTP settings.")
    ana = card.locator("tbody tr", has_text="Ana Pereira")
    ben = card.locator("tbody tr", has_text="Ben Okafor")
    await expect(ana).to_contain_text("not sent")
    await expect(ben).to_contain_text("no e-mail address")

    await card.get_by_role("button", name="Send invitations to everyone not yet invited").click()
    message = await mailbox.next()
    assert message["To"].addresses[0].addr_spec == "ana@example.org"
    await expect(ana.locator("[data-state]")).to_have_attribute("data-state", "sent", timeout=15_000)
    await expect(card.locator("#inv-counts")).to_contain_text("1 sent, 0 queued, 0 failed, of 2")

    # The server refuses the next one: the card shows the reason; a resend, once it accepts again, delivers.
    mailbox.answer = "554 5.7.1 Rejected by policy"
    await ana.get_by_role("button", name="Resend").click()
    await expect(ana.locator("[data-state]")).to_have_attribute("data-state", "failed", timeout=15_000)
    await expect(ana).to_contain_text("Rejected by policy")
    mailbox.answer = "250 OK"
    await ana.get_by_role("button", name="Resend").click()
    await mailbox.next()
    await expect(ana.locator("[data-state]")).to_have_attribute("data-state", "sent", timeout=15_000)
    assert browser.page_errors == []
