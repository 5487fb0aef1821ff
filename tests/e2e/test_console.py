"""The moderator console at 60 and the organiser's live page, in real Chromium.

The roster has 60 participants (made over the HTTP API); three of them are connected as plain WebSocket clients of
the real server, the rest are invited and absent. The moderator is a Chromium page at 1280x720."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from typing import Any

import pytest
from playwright.async_api import Locator, Page, expect

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import DESKTOP, BrowserSession, LiveServer
from tests.e2e.pages import join, save_screenshot, wait_in_room
from tests.helpers import ADMIN, add_participant, create_workshop
from tests.signaling.client import SignalClient
from tests.signaling.client import join as ws_join

pytestmark = pytest.mark.browser


COUNTRIES = ["PT", "NG", "DE", "FR", "PL", "GR"]
CONNECTED = ("Person 2", "Person 10", "Person 11")


class Peer:
    """A connected participant: a real WebSocket whose messages are read all along (so its pings are answered)."""

    def __init__(self, sc: SignalClient) -> None:
        self.sc = sc
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            while True:
                await self.sc.recv(3600)
                self.changed.set()

    async def until(self, type_: str, timeout: float = 30, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                self.changed.clear()
                for msg in self.sc.seen:
                    if msg.get("type") == type_ and all(msg.get(k) == v for k, v in match.items()):
                        return msg
                await self.changed.wait()

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.sc.close()


async def import_sixty(client: Any, workshop_id: str) -> list[dict[str, Any]]:
    rows = ["display_name,country,organisation,email,role"]
    rows += [f"Person {i},{COUNTRIES[i % len(COUNTRIES)]},Agency {i % 7},," for i in range(1, 61)]
    rows.append("Mia Moderator,IE,Bureau,,moderator")
    resp = await client.post(
        f"/api/v1/workshops/{workshop_id}/participants/import",
        data="\n".join(rows) + "\n",
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert resp.status == 201, await resp.text()
    people: list[dict[str, Any]] = (await resp.json())["items"]
    assert len(people) == 61
    return people


async def in_viewport(page: Page, locator: Locator) -> None:
    """Visible on screen as the page is: inside the 1280x720 viewport, with the page itself not scrolled."""
    await expect(locator).to_be_visible()
    box = await locator.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= DESKTOP["width"] and box["y"] + box["height"] <= DESKTOP["height"], box
    assert await page.evaluate("() => [window.scrollX, window.scrollY]") == [0, 0]
    # Nothing covers it (the sticky tools, a toast): the topmost element at its centre is the control itself.
    centre = await locator.evaluate(
        """(el) => { const r = el.getBoundingClientRect();
            const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
            return top === el || el.contains(top); }"""
    )
    assert centre, "the control is covered"


async def scroll_roster_to_bottom(console: Locator) -> None:
    scrolled = await console.locator(".mod-scroll").evaluate(
        "(el) => { el.scrollTop = el.scrollHeight; return [el.scrollTop, el.scrollHeight, el.clientHeight]; }"
    )
    top, height, client = scrolled
    assert height > client * 2, f"the roster should be long enough to scroll: {scrolled}"
    assert top > 0


async def names(locator: Locator) -> list[str]:
    texts: list[str] = await locator.locator(".person-name").all_inner_texts()
    return [t.strip() for t in texts]


async def test_console_runs_sixty_with_the_breakout_controls_always_on_screen(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    wid = workshop["id"]
    people = await import_sixty(client, wid)
    by_name = {p["display_name"]: p for p in people}
    mia = by_name["Mia Moderator"]
    peers = {name: Peer(await ws_join(client, by_name[name]["join_token"])) for name in CONNECTED}
    try:
        page = await browser.new_page("mia")
        await join(page, mia["join_url"], "Mia Moderator")
        await page.get_by_role("tab", name="Moderate").click()
        console = page.locator("#panel-moderate")
        plenary = console.locator(f'.mod-room[data-room-id="{workshop["plenary_room_id"]}"]')

        # Present people first, by room, in natural order; the 57 absent ones folded below.
        await expect(plenary.locator(".mod-person")).to_have_count(4)
        assert await names(plenary) == ["Mia Moderator (you)", "Person 2", "Person 10", "Person 11"]
        absent = console.locator(".mod-absent")
        await expect(absent.locator("summary")).to_have_text("Not here (57)")
        assert await absent.get_attribute("open") is None
        await expect(absent.locator(".mod-person").first).to_be_hidden()
        await absent.locator("summary").click()
        await expect(absent.locator(".mod-person").first).to_be_visible()
        absent_names = await names(absent)
        assert absent_names[:4] == ["Person 1", "Person 3", "Person 4", "Person 5"]
        assert absent_names[-1] == "Person 60"
        assert len(absent_names) == 57

        # Counts by country: present / invited.
        invited = Counter(p["country"] for p in people)
        present = Counter(by_name[n]["country"] for n in (*CONNECTED, "Mia Moderator"))
        for country, n in invited.items():
            chip = console.locator(f'.mod-countries [data-country="{country}"] .chip-count')
            await expect(chip).to_have_text(f"{present[country]} / {n}")

        # Search: by name (accents and case do not matter), then a country filter on top.
        await console.get_by_label("Search people").fill("person 1")
        expected = ["Person 1", *[f"Person {i}" for i in range(10, 20)]]
        await expect(console.locator(".mod-roster .mod-person")).to_have_count(len(expected))
        assert sorted(await names(console.locator(".mod-roster")), key=lambda s: int(s.split()[1])) == expected
        await console.get_by_label("Search people").fill("")
        await console.get_by_label("Country", exact=True).select_option("NG")
        nigerians = sorted((p["display_name"] for p in people if p["country"] == "NG"), key=lambda s: int(s.split()[1]))
        await expect(console.locator(".mod-roster .mod-person")).to_have_count(len(nigerians))
        codes = await console.locator(".mod-roster .mod-person .country-code").all_inner_texts()
        assert set(codes) == {"NG"}
        # The country chip is the same filter: pressing the active one lifts it.
        await console.locator('.mod-countries [data-country="NG"]').click()
        await expect(console.locator(".mod-roster .mod-person")).to_have_count(61)

        # A plan with three rooms; the controls stay on screen whatever the scroll of the roster.
        await console.get_by_label("Number of rooms").fill("3")
        await console.get_by_role("button", name="Create breakout rooms").click()
        await expect(console.locator(".plan-state")).to_contain_text("prepared")
        await in_viewport(page, console.locator("#mod-open"))
        await scroll_roster_to_bottom(console)
        await in_viewport(page, console.locator("#mod-open"))
        await in_viewport(page, console.locator("#mod-save-assignments"))

        # Bulk: Person 2 and Person 10 into Room 2 in one go (the draft's assignments are saved at once).
        await console.locator(".mod-scroll").evaluate("(el) => { el.scrollTop = 0; }")
        for name in ("Person 2", "Person 10"):
            await console.get_by_label(f"Select {name}", exact=True).check()
        await expect(console.locator("#mod-selected-count")).to_have_text("2 selected")
        await console.get_by_label("Room for the selection").select_option(label="Room 2")
        await console.get_by_role("button", name="Assign", exact=True).click()
        await expect(page.locator(".toast", has_text="Assignments saved")).to_be_visible()
        await expect(console.locator("#mod-selected-count")).to_have_count(0)  # the selection is done with
        resp = await client.get(f"/api/v1/workshops/{wid}/breakouts", headers=ADMIN)
        plan = (await resp.json())["items"][0]
        room_2 = next(r["id"] for r in plan["rooms"] if r["name"] == "Room 2")
        room_1 = next(r["id"] for r in plan["rooms"] if r["name"] == "Room 1")
        assert {pid for pid, rid in plan["assignments"].items() if rid == room_2} == {
            by_name["Person 2"]["id"],
            by_name["Person 10"]["id"],
        }

        await console.get_by_label("Duration (minutes)").fill("20")
        await console.get_by_role("button", name="Open breakout rooms").click()
        for name in ("Person 2", "Person 10"):
            moved = await peers[name].until("moved")
            assert moved["room"]["id"] == room_2
        await expect(console.locator(f'.mod-room[data-room-id="{room_2}"] .mod-person')).to_have_count(2)
        await scroll_roster_to_bottom(console)
        for control in ("#mod-extend-button", "#mod-close", "#mod-broadcast", "#mod-broadcast-button"):
            await in_viewport(page, console.locator(control))

        # A bulk move while the breakouts run: Person 11 (still in the plenary) to Room 1.
        await console.locator(".mod-scroll").evaluate("(el) => { el.scrollTop = 0; }")
        await console.get_by_label("Select Person 11", exact=True).check()
        await console.get_by_label("Room for the selection").select_option(label="Room 1")
        await console.locator("#mod-bulk-move").click()
        moved = await peers["Person 11"].until("moved")
        assert moved["room"]["id"] == room_1
        await expect(console.locator(f'.mod-room[data-room-id="{room_1}"] .mod-person')).to_have_count(1)

        # Person 2 asks for help: one queue entry and a badge, until a moderator goes there.
        await peers["Person 2"].sc.send({"type": "ask_help", "text": "We cannot hear each other", "request_id": "h"})
        item = console.locator(".mod-queue .help-item")
        await expect(item).to_contain_text("Person 2 in Room 2: We cannot hear each other")
        await expect(page.locator("#help-count")).to_have_text("1")
        await expect(item.locator("[data-since]")).to_have_text(re.compile(r"^0:0\d$"))

        await expect(page.locator(".toast")).to_have_count(0, timeout=20_000)
        await console.locator(".mod-scroll").evaluate("(el) => { el.scrollTop = 0; }")
        shot = browser.output_dir / "console-60.png"
        await page.screenshot(path=str(shot))
        save_screenshot(shot, "screenshot-console.png")

        await item.get_by_role("button", name="Go to Room 2").click()
        await wait_in_room(page, "Room 2", {by_name["Person 2"]["id"], by_name["Person 10"]["id"]})
        await expect(console.locator(".mod-queue")).to_have_count(0)
        await expect(page.locator("#help-count")).to_be_hidden()
        handled = await peers["Person 2"].until("ack", request_id="h")
        assert handled
        assert not any(m["type"] == "help_handled" for m in peers["Person 2"].sc.seen), "only moderators hear it"

        assert browser.page_errors == []
    finally:
        for peer in peers.values():
            await peer.close()


async def test_organiser_page_shows_who_is_where_and_edits_and_deletes_the_workshop(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client, title="Cross-border investigations")
    wid = workshop["id"]
    ana = await add_participant(
        client, wid, display_name="Ana Pereira", country="PT", organisation="Polícia Judiciária"
    )
    ben = await add_participant(client, wid, display_name="Ben Okafor", country="NG")
    await add_participant(client, wid, display_name="Chen Wei", country="SG")
    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts",
        json={"name": "Case studies", "rooms": ["Room 1", "Room 2"], "assignments": {ben["id"]: 1}},
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", json={}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    peer_a = Peer(await ws_join(client, ana["join_token"]))
    peer_b = Peer(await ws_join(client, ben["join_token"]))
    try:
        page = await browser.new_page("organiser")
        await page.goto(f"{live_server.base_url}/admin#workshop/{wid}")
        await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Cross-border investigations")).to_be_visible()

        # Who is where, without joining a room.
        live = page.locator("#live")
        await expect(live.locator("#live-count")).to_have_text("2 of 3 connected")
        plenary = live.locator(f'.mod-room[data-room-id="{workshop["plenary_room_id"]}"]')
        await expect(plenary).to_contain_text("Ana Pereira")
        await expect(plenary).to_contain_text("Polícia Judiciária")
        room_2 = live.locator(".mod-room", has_text="Room 2")
        await expect(room_2).to_contain_text("Ben Okafor")
        await expect(live.locator(".plan-state")).to_contain_text("Case studies: open")
        await expect(live.locator("#live-absent summary")).to_have_text("Not here (1)")
        await expect(live.locator('[data-country="PT"] .chip-count')).to_have_text("1 / 1")
        await expect(live.locator('[data-country="SG"] .chip-count')).to_have_text("0 / 1")
        await expect(page.locator("#lobby")).to_contain_text("Nobody is waiting.")
        await expect(page.locator("#bans")).to_contain_text("Nobody is banned.")

        await expect(live.locator(".mod-room", has_text="Room 1")).to_contain_text("Nobody here")

        # Live: Ben asks for help, then Ana leaves; the page follows by itself.
        await peer_b.sc.send({"type": "ask_help", "request_id": "h"})
        await expect(live.locator(".live-help")).to_contain_text("Ben Okafor in Room 2", timeout=15_000)
        shot = browser.output_dir / "organiser-live.png"
        await page.screenshot(path=str(shot), full_page=True)
        save_screenshot(shot, "screenshot-organiser.png")
        await peer_a.sc.send({"type": "leave"})
        await expect(live.locator("#live-count")).to_have_text("1 of 3 connected", timeout=15_000)
        await expect(live.locator("#live-absent summary")).to_have_text("Not here (2)")
        await expect(plenary).to_contain_text("Nobody here")

        # Edit: title, description, status and consent mode.
        await page.get_by_role("button", name="Edit", exact=True).click()
        form = page.locator("#ws-edit-form")
        await form.get_by_label("Title").fill("Cross-border investigations, day 2")
        await form.get_by_label("Description").fill("Financial flows and evidence.")
        await form.get_by_label("Status").select_option("live")
        await form.get_by_label("Recording consent").select_option("assumed")
        await form.get_by_role("button", name="Save changes").click()
        await expect(page.locator(".toast", has_text="Changes saved")).to_be_visible()
        await expect(page.get_by_role("heading", name="Cross-border investigations, day 2")).to_be_visible()
        resp = await client.get(f"/api/v1/workshops/{wid}", headers=ADMIN)
        saved = await resp.json()
        assert (saved["title"], saved["description"], saved["status"], saved["recording_consent"]) == (
            "Cross-border investigations, day 2",
            "Financial flows and evidence.",
            "live",
            "assumed",
        )
        assert saved["starts_at"] == workshop["starts_at"], "unchanged times are not sent"

        # Delete, after a confirmation.
        await page.get_by_role("button", name="Delete workshop").click()
        await expect(page.get_by_role("alertdialog")).to_contain_text("cannot be undone")
        await page.get_by_role("button", name="Delete for good").click()
        await expect(page.get_by_text("No workshops yet.")).to_be_visible()
        resp = await client.get(f"/api/v1/workshops/{wid}", headers=ADMIN)
        assert resp.status == 404
        assert browser.page_errors == []
    finally:
        await peer_a.close()
        await peer_b.close()
