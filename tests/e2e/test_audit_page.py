"""The audit card of the organiser page in real Chromium: the workshop's entries, filtered, and the chain verified,
before and after a superuser rewrites an entry behind the server's back (the log itself is tested in
tests/server/test_audit_log.py)."""

from __future__ import annotations

import asyncpg
import pytest
from playwright.async_api import expect

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import BrowserSession, LiveServer
from tests.helpers import ADMIN, add_participant, create_workshop

pytestmark = pytest.mark.browser


async def test_organiser_reads_the_audit_log_filters_it_and_sees_a_rewritten_entry_break_the_chain(
    live_server: LiveServer, browser: BrowserSession, database_url: str
) -> None:
    client = live_server.client
    workshop = await create_workshop(client, title="Audited workshop")
    wid = workshop["id"]
    for name in ("Ana", "Ben", "Chen"):
        await add_participant(client, wid, display_name=name)
    resp = await client.patch(f"/api/v1/workshops/{wid}", json={"title": "Audited workshop, renamed"}, headers=ADMIN)
    assert resp.status == 200, await resp.text()

    page = await browser.new_page("organiser", viewport={"width": 1100, "height": 900})
    await page.goto(f"{live_server.base_url}/admin")
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await page.goto(f"{live_server.base_url}/admin#workshop/{wid}")
    card = page.locator("#audit")
    await card.locator("summary").click()
    rows = card.locator("#audit-entries tbody tr")
    await expect(rows).to_have_count(5)  # workshop.create, three participant.create, workshop.update
    await expect(rows.first.locator("td").nth(3)).to_have_text("workshop.create")
    await expect(rows.first.locator("td").nth(2)).to_contain_text("Administrator")
    await expect(rows.nth(4).locator("td").nth(3)).to_have_text("workshop.update")

    await card.get_by_label("Action").select_option("participant")
    await expect(rows).to_have_count(3)
    for i in range(3):
        await expect(rows.nth(i).locator("td").nth(3)).to_have_text("participant.create")
    await card.get_by_label("Action").select_option("")
    await expect(rows).to_have_count(5)

    await card.get_by_role("button", name="Verify the chain").click()
    await expect(card.locator("#audit-verdict")).to_contain_text("The chain is intact: 5 entries verified")

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_rewrite")
        await conn.execute(
            "UPDATE audit_entries SET details = jsonb_set(details, '{forged}', 'true') WHERE chain = $1 AND seq = 3",
            wid,
        )
        await conn.execute("ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_no_rewrite")
    finally:
        await conn.close()
    await card.get_by_role("button", name="Verify the chain").click()
    await expect(card.locator("#audit-verdict")).to_contain_text("The chain is broken at entry 3")
    assert browser.page_errors == []
