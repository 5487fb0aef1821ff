"""Room controls in the moderator console (issue 13, item 3), in real Chromium against the real server: the lock
(a participant's join waits in the lobby, a moderator still enters), mute everyone but the presenters, the hand queue
with "give the floor" and "ask to unmute" (a prompt; only the participant's click switches the microphone on)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import BrowserSession, LiveServer
from tests.e2e.pages import join, open_join_page, save_screenshot
from tests.helpers import ADMIN, add_participant, create_workshop
from tests.signaling.client import SignalClient
from tests.signaling.client import join as ws_join

pytestmark = pytest.mark.browser


class Peer:
    """A participant as a plain WebSocket; every message is read all along (its pings are answered)."""

    def __init__(self, sc: SignalClient) -> None:
        self.sc = sc
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._drain())

    @property
    def id(self) -> str:
        return self.sc.id

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

    def got(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.sc.seen if m.get("type") == type_]

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.sc.close()


async def peer_state(page: Page, peer_id: str, key: str, value: Any) -> None:
    """Wait until the page's roster shows that peer's state[key] == value (what the room sees)."""
    await page.wait_for_function(
        """([id, key, value]) => {
            const p = window.roundtable.state().peers.find((x) => x.id === id);
            return p && p.state[key] === value;
        }""",
        arg=[peer_id, key, value],
        timeout=30_000,
    )


async def self_state(page: Page, key: str) -> Any:
    return await page.evaluate("(key) => window.roundtable.state().self.state[key]", key)


async def people(client: Any, cast: dict[str, tuple[str, str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    workshop = await create_workshop(client, title="Room controls")
    added = {
        key: await add_participant(client, workshop["id"], display_name=name, country=country, role=role)
        for key, (name, country, role) in cast.items()
    }
    return workshop, added


async def test_locked_room_sends_a_joiner_to_the_lobby_and_ask_to_unmute_waits_for_their_click(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop, cast = await people(
        client,
        {
            "mia": ("Mia Moderator", "IE", "moderator"),
            "max": ("Max Second", "DE", "moderator"),
            "ana": ("Ana Pereira", "PT", "participant"),
        },
    )
    wid, plenary = workshop["id"], workshop["plenary_room_id"]
    mia = await browser.new_page("mia")
    await join(mia, cast["mia"]["join_url"], "Mia Moderator")
    await mia.get_by_role("tab", name="Moderate").click()
    console = mia.locator("#panel-moderate")
    await expect(console.locator("#mod-lock-state")).to_have_text("Open")
    await expect(mia.locator("#room-locked")).to_be_hidden()

    # Locking from the console: the room's state says it, for the console and the room's badge.
    await console.get_by_role("button", name="Lock room").click()
    await expect(console.locator("#mod-lock-state")).to_have_text("🔒 Locked")
    await expect(mia.locator("#room-locked")).to_be_visible()
    await expect(mia.locator(".toast", has_text="is locked")).to_be_visible()
    resp = await client.get(f"/api/v1/workshops/{wid}/rooms/{plenary}", headers=ADMIN)
    assert (await resp.json())["locked"] is True

    # A participant's join waits on the lobby page; a second moderator still enters.
    ana = await browser.new_page("ana")
    await open_join_page(ana, cast["ana"]["join_url"], "Ana Pereira")
    await ana.get_by_role("button", name="Join", exact=True).click()
    await expect(ana.locator("#lobby")).to_be_visible()
    await expect(ana.locator("#lobby-message")).to_contain_text("The room is locked")
    assert not await ana.evaluate("() => window.roundtable.state().joined")
    max_ = Peer(await ws_join(client, cast["max"]["join_token"]))
    try:
        assert max_.sc.welcome["room"]["id"] == plenary
        assert max_.sc.welcome["room"]["locked"] is True
        knock = console.locator(".mod-queue .knock", has_text="Ana Pereira")
        await expect(knock).to_contain_text("Room locked")
        await knock.get_by_role("button", name="Admit Ana Pereira").click()
        await ana.wait_for_function("() => window.roundtable.state().joined", timeout=30_000)
        await expect(ana.locator("#room-locked")).to_be_visible()  # everyone in a locked room sees it
        await expect(ana.locator("#room-locked")).to_have_attribute(
            "title", "This room is locked: nobody new enters without a moderator."
        )

        # Ana mutes herself and raises her hand; the moderator asks her to unmute.
        await ana.get_by_role("button", name="Mute your microphone").click()
        await ana.get_by_role("button", name="Raise hand").click()
        await peer_state(mia, cast["ana"]["id"], "hand", True)
        await peer_state(mia, cast["ana"]["id"], "audio", False)
        hands = console.locator(".mod-hands .hand-item")
        await expect(hands).to_have_count(1)
        await hands.get_by_role("button", name="Ask Ana Pereira to unmute").click()
        await expect(mia.locator(".toast", has_text="Ana Pereira has been asked to unmute.")).to_be_visible()

        # The prompt is shown; the microphone stays off until Ana herself clicks.
        prompt = ana.locator(".toast", has_text="Mia Moderator asks you to unmute your microphone.")
        await expect(prompt).to_be_visible()
        await expect(ana.get_by_role("button", name="Unmute your microphone")).to_be_visible()
        assert await self_state(ana, "audio") is False
        assert await ana.evaluate("() => window.roundtable.state().peers.length") == 2
        still_muted = await mia.evaluate(
            "(id) => window.roundtable.state().peers.find((p) => p.id === id).state.audio", cast["ana"]["id"]
        )
        assert still_muted is False
        await prompt.get_by_role("button", name="Unmute", exact=True).click()
        await expect(ana.get_by_role("button", name="Mute your microphone")).to_be_visible()
        await peer_state(mia, cast["ana"]["id"], "audio", True)
        await expect(prompt).to_have_count(0)
        await expect(hands.get_by_role("button", name="Ask Ana Pereira to unmute")).to_have_count(0)  # she is on

        # Asked again after muting, she may just as well use her own microphone button: the prompt goes with it.
        await ana.get_by_role("button", name="Mute your microphone").click()
        await hands.get_by_role("button", name="Ask Ana Pereira to unmute").click()
        await expect(prompt).to_have_count(1)
        await ana.get_by_role("button", name="Unmute your microphone").click()
        await expect(prompt).to_have_count(0)
        await peer_state(mia, cast["ana"]["id"], "audio", True)

        # Unlocking: the badge goes for everyone in the room.
        await console.get_by_role("button", name="Unlock room").click()
        await expect(ana.locator("#room-locked")).to_be_hidden()
        await expect(console.locator("#mod-lock-state")).to_have_text("Open")
        updated = await max_.until("room_updated")
        assert updated["room"]["id"] == plenary

        # Another room (a breakout room, empty) is locked from its line in the roster, over HTTP.
        resp = await client.post(
            f"/api/v1/workshops/{wid}/breakouts", json={"name": "B", "rooms": 1, "strategy": "manual"}, headers=ADMIN
        )
        assert resp.status in (200, 201), await resp.text()
        plan = await resp.json()
        resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", json={}, headers=ADMIN)
        assert resp.status == 200, await resp.text()
        room_1 = plan["rooms"][0]["id"]
        line = console.locator(f'.mod-room[data-room-id="{room_1}"]')
        await line.get_by_role("button", name="Lock Room 1").click()
        await expect(line.locator(".lock-state")).to_have_text("🔒 Locked")
        resp = await client.get(f"/api/v1/workshops/{wid}/rooms/{room_1}", headers=ADMIN)
        assert (await resp.json())["locked"] is True
        await expect(console.locator("#mod-lock-state")).to_have_text("Open")  # ours is not
        await line.get_by_role("button", name="Unlock Room 1").click()
        await expect(line.locator(".lock-state")).to_have_count(0)
        assert browser.page_errors == []
    finally:
        await max_.close()


async def test_mute_all_spares_presenters_and_the_hand_queue_gives_the_floor_in_raising_order(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    _workshop, cast = await people(
        client,
        {
            "mia": ("Mia Moderator", "IE", "moderator"),
            "max": ("Max Second", "DE", "moderator"),
            "eva": ("Eva Floor", "FR", "participant"),
            "ana": ("Ana Pereira", "PT", "participant"),
            "ben": ("Ben Okafor", "NG", "participant"),
            "rui": ("Rui Costa", "PT", "participant"),
        },
    )
    mia = await browser.new_page("mia")
    await join(mia, cast["mia"]["join_url"], "Mia Moderator")
    ws = {key: Peer(await ws_join(client, cast[key]["join_token"])) for key in ("max", "eva", "ben", "rui")}
    try:
        ana = await browser.new_page("ana")
        await join(ana, cast["ana"]["join_url"], "Ana Pereira")
        await mia.get_by_role("tab", name="Moderate").click()
        console = mia.locator("#panel-moderate")
        hands = console.locator(".mod-hands .hand-item")

        # Hands go up in this order: Rui, Ana, Ben (each seen by the console before the next).
        await ws["rui"].sc.send({"type": "update", "hand": True})
        await expect(hands).to_have_count(1)
        await ana.get_by_role("button", name="Raise hand").click()
        await expect(hands).to_have_count(2)
        await ws["ben"].sc.send({"type": "update", "hand": True})
        await expect(hands).to_have_count(3)
        await expect(hands.locator(".person-name")).to_have_text(["Rui Costa", "Ana Pereira", "Ben Okafor"])
        await expect(hands.locator(".hand-number")).to_have_text(["1", "2", "3"])
        await expect(console.locator("#mod-lower-all")).to_have_text("Lower all hands (3)")

        # The participant's people list: the raised hands first, numbered in the queue's order.
        await ana.get_by_role("tab", name="People").click()
        queued = ana.locator("#people-list .person:has([data-queue])")
        await expect(queued.locator(".person-name")).to_have_text(["Rui Costa", "Ana Pereira (you)", "Ben Okafor"])
        await expect(queued.locator("[data-queue]")).to_have_text(["Hand 1", "Hand 2", "Hand 3"])

        # Eva holds the floor (a presenter); Max is a moderator. Mute all: the others, three of them.
        await ws["max"].sc.send({"type": "grant_floor", "peer_id": cast["eva"]["id"], "request_id": "f"})
        await ws["max"].until("ack", request_id="f")
        await console.locator(".mod-scroll").evaluate("(el) => { el.scrollTop = 0; }")
        await expect(mia.locator(".toast")).to_have_count(0, timeout=20_000)
        shot = browser.output_dir / "room-controls.png"
        await mia.screenshot(path=str(shot))
        save_screenshot(shot, "screenshot-room-controls.png")

        await console.get_by_role("button", name="Mute everyone but presenters").click()
        await expect(mia.locator(".toast", has_text="3 muted.")).to_be_visible()
        for key in ("ben", "rui"):
            muted = await ws[key].until("mute_requested")
            assert muted["kind"] == "audio"
            await peer_state(mia, cast[key]["id"], "audio", False)
        await peer_state(mia, cast["ana"]["id"], "audio", False)
        await expect(ana.get_by_role("button", name="Unmute your microphone")).to_be_visible()
        for key in ("max", "eva"):
            await peer_state(mia, cast[key]["id"], "audio", True)
            assert ws[key].got("mute_requested") == []
        assert await self_state(mia, "audio") is True

        # Give the floor to the first in the queue: Rui's hand goes down and he is asked to unmute (a mesh room).
        await hands.first.get_by_role("button", name="Give the floor to Rui Costa").click()
        asked = await ws["rui"].until("unmute_requested")
        assert asked["kind"] == "audio"
        assert asked["by"]["display_name"] == "Mia Moderator"
        await expect(hands.locator(".person-name")).to_have_text(["Ana Pereira", "Ben Okafor"])
        await expect(hands.locator(".hand-number")).to_have_text(["1", "2"])
        await expect(queued.locator("[data-queue]")).to_have_text(["Hand 1", "Hand 2"])
        await peer_state(mia, cast["rui"]["id"], "hand", False)
        await peer_state(mia, cast["rui"]["id"], "audio", False)  # asked, never switched on

        # Lower all hands: the queue empties itself.
        await console.get_by_role("button", name="Lower all hands (2)").click()
        await expect(mia.locator(".toast", has_text="2 hand(s) lowered.")).to_be_visible()
        await expect(console.locator(".mod-hands")).to_have_count(0)
        await expect(queued).to_have_count(0)
        await expect(console.locator("#mod-lower-all")).to_be_disabled()
        assert browser.page_errors == []
    finally:
        for peer in ws.values():
            await peer.close()
