"""Simultaneous interpretation in real Chromium with a real embedded Janus (issue 17; web/interpretation.js): a
listener chooses a language channel before joining and in the room, hears it with the floor underneath at the level
they set, the original brings the floor back to full, and a channel without a live interpreter says so; the
interpreters' booth shows who is live, hands over and turns the pair around; the organiser sets the workshop's
languages and a participant's pair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import BrowserSession, LiveServer, serve_with_sfu
from tests.e2e.pages import JOIN_TIMEOUT_MS, MEDIA_TIMEOUT_MS, join, open_join_page, save_screenshot, wait_until
from tests.helpers import ADMIN, add_participant, create_workshop

pytestmark = pytest.mark.browser

# Every message the page sends on its signalling socket, parsed, in order (window.__sent).
_RECORD_SENT = """
(() => {
  const sent = [];
  const native = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {
      sent.push(JSON.parse(data));
    } catch {
      // not JSON: not ours
    }
    return native.call(this, data);
  };
  window.__sent = sent;
})();
"""

# A microphone that plays a steady tone instead of the fake device's short beeps, loud enough for the SFU's
# speaker detection (Janus needs about a second of sound above its level).
_TONE_MICROPHONE = """
(() => {
  const native = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await native(constraints);
    if (!constraints || !constraints.audio) return stream;
    const ctx = new AudioContext();
    const tone = ctx.createOscillator();
    tone.frequency.value = 440;
    const out = ctx.createMediaStreamDestination();
    tone.connect(out);
    tone.start();
    for (const track of stream.getAudioTracks()) {
      stream.removeTrack(track);
      track.stop();
    }
    stream.addTrack(out.stream.getAudioTracks()[0]);
    return stream;
  };
})();
"""

# Audio of the peer's interpretation feed arrives on the channel's own element, and keeps arriving.
_CHANNEL_PLAYS = """
async (id) => {
  const audio = document.querySelector("#channel-audio");
  const stream = audio && audio.srcObject;
  if (!stream || audio.muted || audio.paused || audio.volume !== 1) return false;
  if (!stream.getAudioTracks().some((t) => t.readyState === "live")) return false;
  const bytes = async () => {
    const stats = await window.roundtable.stats();
    const s = stats.find((x) => x.peerId === id && x.source === "interpretation");
    return s && s.connectionState === "connected" ? s.inbound.audio : -1;
  };
  const before = await bytes();
  await new Promise((resolve) => setTimeout(resolve, 500));
  return before >= 0 && (await bytes()) > before;
}
"""

# The floor's gain as the page reports it, and the volume of the floor speaker's tile, are both `gain`.
_FLOOR_AT = """
([id, gain]) => {
  const video = document.querySelector(`.tile[data-peer-id="${id}"] video`);
  const at = (x) => Math.abs(x - gain) < 1e-6;
  return Boolean(video) && at(window.roundtable.interpretation.floorGain()) && at(video.volume);
}
"""

# The floor speaker's tile shows a picture and plays sound at full volume.
_FLOOR_PICTURE = """
async (id) => {
  const video = document.querySelector(`.tile[data-peer-id="${id}"] video`);
  return Boolean(video) && video.readyState >= 2 && video.videoWidth > 0 && !video.paused && video.volume === 1;
}
"""

# Whether the page's subscription asks for audio of any interpretation feed.
_ASKS_FOR_INTERPRETATION = """
() => {
  const info = window.roundtable.subscription();
  const wanted = (info && info.wanted) || [];
  const sources = new Map(window.roundtable.feeds().map((f) => [f.feed_id, f.source]));
  return wanted.some((w) => sources.get(w.feed_id) === "interpretation" && w.audio);
}
"""


@pytest.fixture
async def live_server(database_url: str, tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any) -> LiveServer:
    return await serve_with_sfu(database_url, tmp_path, aiohttp_server, aiohttp_client, rtp_ports="21400-21499")


async def _page(browser: BrowserSession, name: str) -> Page:
    page = await browser.new_page(name)
    await page.add_init_script(_RECORD_SENT)
    return page


async def _interpret(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate("() => window.roundtable.interpretation.state()")
    return state


async def _sent(page: Page, kind: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = await page.evaluate("(kind) => window.__sent.filter((m) => m.type === kind)", kind)
    return sent


async def test_a_listener_hears_the_channel_over_the_floor_at_the_level_they_set(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client, languages=["en", "ru"])
    wid = workshop["id"]
    fay = await add_participant(client, wid, display_name="Fay Fitzgerald", country="IE")
    irina = await add_participant(
        client, wid, display_name="Irina Volkova", country="RU", interpreter={"languages": ["en", "ru"]}
    )
    lena = await add_participant(client, wid, display_name="Lena Smirnova", country="KZ")

    page_f = await _page(browser, "fay")
    await join(page_f, fay["join_url"], fay["display_name"])
    # Lena chooses Russian before joining: the pre-join screen offers the workshop's languages, and remembers.
    page_l = await _page(browser, "lena")
    await open_join_page(page_l, lena["join_url"], lena["display_name"])
    choice = page_l.get_by_label("Language you hear")
    await expect(choice.locator("option")).to_have_text(["Original", "English", "Russian"])
    await choice.select_option("ru")
    assert await page_l.evaluate(f"() => localStorage.getItem('roundtable.listen.{wid}')") == "ru"
    page_i = await _page(browser, "irina")
    await page_i.add_init_script(_TONE_MICROPHONE)
    await join(page_i, irina["join_url"], irina["display_name"])
    await page_l.get_by_role("button", name="Join", exact=True).click()
    await page_l.wait_for_function("() => window.roundtable.state().joined", timeout=JOIN_TIMEOUT_MS)
    # ... and the room is told right after the welcome.
    await page_l.wait_for_function("() => window.__sent.some((m) => m.type === 'listen' && m.language === 'ru')")

    # Nobody interprets yet: Lena hears the original at full volume and is told why.
    notice = page_l.locator("#interp-notice")
    await expect(notice).to_have_text("No live interpreter into Russian at the moment: you hear the original.")
    await page_l.wait_for_function(_FLOOR_AT, arg=[fay["id"], 1.0], timeout=MEDIA_TIMEOUT_MS)
    assert await page_l.evaluate("() => window.roundtable.interpretation.channel()") is None

    # Irina goes live into Russian from her booth (muted, so that her voice does not lower the floor meanwhile).
    booth = page_i.locator("#booth")
    await expect(booth).to_be_visible()
    await expect(booth.get_by_role("button", name="From English into Russian")).to_have_attribute(
        "aria-pressed", "true"
    )
    await page_i.get_by_role("button", name="Mute your microphone").click()
    await booth.get_by_role("button", name="Go live").click()
    await expect(booth.locator(".booth-onair")).to_have_text("You are live")
    await expect(booth.locator(".booth-warn")).to_have_text("Your microphone is muted: the listeners hear nothing.")

    # Lena hears the channel at full volume on its own element, and the floor under it at 20 %.
    await page_l.wait_for_function(
        "() => window.roundtable.interpretation.channel() === 'ru'", timeout=MEDIA_TIMEOUT_MS
    )
    await expect(notice).to_be_hidden()
    await wait_until(page_l, _CHANNEL_PLAYS, irina["id"], what="Irina's interpretation playing for Lena")
    await page_l.wait_for_function(_FLOOR_AT, arg=[fay["id"], 0.2])
    # The interpreter has no tile; she is in the list of interpreters, live.
    await expect(page_l.locator(f'.tile[data-peer-id="{irina["id"]}"]')).to_have_count(0)
    await expect(page_l.locator(f'#interpreter-list [data-peer-id="{irina["id"]}"]')).to_contain_text(
        "live into Russian"
    )
    # Irina sends her microphone as interpretation, and no camera.
    roles = await page_i.evaluate("() => window.roundtable.connections().map((c) => c.role).sort()")
    assert roles == ["publish:interpretation", "subscribe"], roles

    # Lena sets the floor to 50 %: the floor's gain follows, and the level is remembered.
    await page_l.locator("#floor-level").fill("50")
    await page_l.wait_for_function(_FLOOR_AT, arg=[fay["id"], 0.5])
    await expect(page_l.locator("#floor-level-value")).to_have_text("50 %")
    assert await page_l.evaluate("() => localStorage.getItem('roundtable.floor_level')") == "0.5"
    shot = browser.output_dir / "interpretation.png"
    await page_l.screenshot(path=str(shot))
    save_screenshot(shot, "screenshot-interpretation.png")

    # While the interpreter speaks, the floor goes down to half of the listener's level (the rule, in this page).
    ducked = await page_l.evaluate(
        """async () => {
            const { Interpretation } = await import("/static/interpretation.js");
            const i = new Interpretation();
            const ru = { language: "ru", live_peer_id: "p", feed_id: "f", interpreters: ["p"] };
            i.setInfo({ languages: ["en", "ru"], channels: [ru] });
            i.choose("ru");
            i.level = 0.5;
            return [i.floorGain(new Set()), i.floorGain(new Set(["p"])), i.floorGain(new Set(["someone else"]))];
        }"""
    )
    assert ducked == [0.5, 0.25, 0.5]

    # Back to the original: the floor at full volume, no interpretation feed asked for nor played.
    await page_l.locator("#listen-select").select_option("original")
    await page_l.wait_for_function(_FLOOR_AT, arg=[fay["id"], 1.0])
    assert await page_l.evaluate("() => window.roundtable.interpretation.channel()") is None
    await page_l.wait_for_function(f"() => !({_ASKS_FOR_INTERPRETATION.strip()})()")
    await page_l.wait_for_function("() => document.querySelector('#channel-audio').srcObject === null")
    await expect(page_l.locator("#floor-level-field")).to_be_hidden()
    assert (await _sent(page_l, "listen"))[-1]["language"] is None

    # English has no live interpreter: the notice, and the original at full volume.
    await page_l.locator("#listen-select").select_option("en")
    await expect(notice).to_have_text("No live interpreter into English at the moment: you hear the original.")
    await page_l.wait_for_function(_FLOOR_AT, arg=[fay["id"], 1.0])
    assert (await _interpret(page_l))["fallingBack"] is True

    # Russian again: the channel comes back at the level set before ...
    await page_l.locator("#listen-select").select_option("ru")
    await page_l.wait_for_function("() => window.roundtable.interpretation.channel() === 'ru'")
    await wait_until(page_l, _CHANNEL_PLAYS, irina["id"], what="Irina's interpretation playing again")
    await page_l.wait_for_function(_FLOOR_AT, arg=[fay["id"], 0.5])
    # ... and while Irina speaks (her microphone on, playing a tone), the floor is at half of it.
    await page_i.get_by_role("button", name="Unmute your microphone").click()
    await expect(booth.locator(".booth-warn")).to_have_count(0)
    await page_l.wait_for_function(
        f"""([id, gain]) => window.roundtable.state().speaking.includes(id)
            && window.roundtable.interpretation.state().ducked
            && ({_FLOOR_AT.strip()})([{json.dumps(fay["id"])}, gain])""",
        arg=[irina["id"], 0.25],
        timeout=MEDIA_TIMEOUT_MS,
        polling=100,
    )

    # The choice is remembered for the workshop: the pre-join screen offers it again.
    await page_l.reload()
    await expect(page_l.get_by_label("Language you hear")).to_have_value("ru", timeout=JOIN_TIMEOUT_MS)
    assert browser.page_errors == []


async def test_interpreters_hand_over_and_turn_their_pair_around_in_the_booth(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client, languages=["en", "ru"])
    wid = workshop["id"]
    pair = {"languages": ["en", "ru"]}
    fay = await add_participant(client, wid, display_name="Fay Fitzgerald", country="IE")
    irina = await add_participant(client, wid, display_name="Irina Volkova", country="RU", interpreter=pair)
    oleg = await add_participant(client, wid, display_name="Oleg Petrov", country="RU", interpreter=pair)
    # Both open their links first: an interpreter's camera is switched off in the booth, and Chromium's one fake
    # camera, shared by the pages of the browser, then gives a page that opens it afterwards no picture.
    page_f = await _page(browser, "fay")
    await join(page_f, fay["join_url"], fay["display_name"])
    page_i, page_o = await _page(browser, "irina"), await _page(browser, "oleg")
    for page, person in ((page_i, irina), (page_o, oleg)):
        await open_join_page(page, person["join_url"], person["display_name"])
    for page in (page_i, page_o):
        await page.get_by_role("button", name="Join", exact=True).click()
        await page.wait_for_function("() => window.roundtable.state().joined", timeout=JOIN_TIMEOUT_MS)
    booth_i, booth_o = page_i.locator("#booth"), page_o.locator("#booth")

    # Neither is live; both interpret into Russian; they see the floor (Fay), never each other nor themselves, and
    # have no camera to switch on.
    for page, booth in ((page_i, booth_i), (page_o, booth_o)):
        await expect(booth).to_have_attribute("data-state", "none")
        await expect(booth.locator(".booth-status")).to_have_text(
            "Nobody is live into Russian: its listeners hear the original."
        )
        await expect(booth.get_by_role("button", name="From English into Russian")).to_have_attribute(
            "aria-pressed", "true"
        )
        await expect(page.locator(".tile")).to_have_count(1)
        await expect(page.locator(f'.tile[data-peer-id="{fay["id"]}"]')).to_have_count(1)
        await expect(page.locator("#btn-cam")).to_be_hidden()
        await expect(page.locator("#interpreter-list .person")).to_have_count(2)

    # Irina goes live: "You are live" for her, "Take over" for Oleg.
    await booth_i.get_by_role("button", name="Go live").click()
    await expect(booth_i).to_have_attribute("data-state", "live")
    await expect(booth_i.locator(".booth-onair")).to_have_text("You are live")
    await expect(booth_o).to_have_attribute("data-state", "other")
    await expect(booth_o.locator(".booth-status")).to_have_text("Irina Volkova is live into Russian.")
    await expect(booth_o.get_by_role("button", name="Take over")).to_be_visible()
    await wait_until(page_o, _FLOOR_PICTURE, fay["id"], what="Fay's picture in Oleg's booth")
    shot = browser.output_dir / "booth.png"
    await page_o.screenshot(path=str(shot))
    save_screenshot(shot, "screenshot-booth.png")

    # Oleg takes over: exactly one of them is live, on both screens.
    await booth_o.get_by_role("button", name="Take over").click()
    await expect(booth_o).to_have_attribute("data-state", "live")
    await expect(booth_i).to_have_attribute("data-state", "other")
    await expect(booth_i.locator(".booth-status")).to_have_text("Oleg Petrov is live into Russian.")
    await expect(booth_i.get_by_role("button", name="Take over")).to_be_visible()

    # One click turns Oleg's pair around: `interpret` into English, still live; Russian has nobody live now.
    await booth_o.get_by_role("button", name="From Russian into English").click()
    await page_o.wait_for_function("() => window.__sent.some((m) => m.type === 'interpret' && m.into === 'en')")
    assert {k: v for k, v in (await _sent(page_o, "interpret"))[-1].items() if k != "request_id"} == {
        "type": "interpret",
        "into": "en",
        "live": True,
    }
    await expect(booth_o.get_by_role("button", name="From Russian into English")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(booth_o).to_have_attribute("data-state", "live")
    await expect(booth_o.locator(".booth-status")).to_have_text("You are live: the listeners of English hear you.")
    await expect(booth_i).to_have_attribute("data-state", "none")
    await expect(booth_i.get_by_role("button", name="Go live")).to_be_visible()
    state = await _interpret(page_i)
    live = {c["language"]: c["live_peer_id"] for c in state["channels"]}
    assert live == {"en": oleg["id"], "ru": None}, state

    # Relay: Irina (into Russian) may listen to Oleg's English channel instead of the floor (her own is not
    # offered); she hears him at full volume, the floor under him.
    picker = page_i.locator("#listen-select")
    await expect(picker.locator("option")).to_have_text(["Original", "English"])
    await picker.select_option("en")
    await page_i.wait_for_function("() => window.roundtable.interpretation.channel() === 'en'")
    await wait_until(page_i, _CHANNEL_PLAYS, oleg["id"], what="Oleg's English channel playing in Irina's booth")
    await page_i.wait_for_function(_FLOOR_AT, arg=[fay["id"], 0.2])
    await expect(booth_i.locator(".booth-hearing")).to_contain_text("You hear: English.")

    # Oleg goes off air: nobody is live anywhere, and Irina hears the floor again.
    await booth_o.get_by_role("button", name="Go off air").click()
    await expect(booth_o).to_have_attribute("data-state", "none")
    await page_i.wait_for_function(_FLOOR_AT, arg=[fay["id"], 1.0])
    await expect(page_i.locator("#interp-notice")).to_contain_text("No live interpreter into English")
    assert browser.page_errors == []


async def test_the_organiser_sets_the_languages_and_a_participants_interpreter_pair_live(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana Pereira", country="PT")
    # Ana is in the plenary meanwhile, on camera, with no interpretation to choose.
    page_a = await _page(browser, "ana")
    await join(page_a, ana["join_url"], ana["display_name"])
    await expect(page_a.locator('.tile[data-self="true"]')).to_have_count(1)
    await expect(page_a.locator("#listen-control")).to_be_hidden()
    page = await browser.new_page("organiser")
    await page.goto(f"{live_server.base_url}/admin#workshop/{workshop['id']}")
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    card = page.locator("#workshop-card")
    await expect(card.locator(".workshop-languages")).to_have_text("no interpretation")
    row = page.locator(f'#participants tr[data-participant-id="{ana["id"]}"]')
    await expect(row.locator(".interpreter-cell")).to_contain_text("Give the workshop two languages")

    # The workshop's languages, in the edit form.
    await card.get_by_role("button", name="Edit").click()
    await card.get_by_label("Languages").fill("en, RU")
    await card.get_by_role("button", name="Save").click()
    await expect(card.locator(".workshop-languages")).to_have_text("English (en), Russian (ru)")
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}", headers=ADMIN)
    assert (await resp.json())["languages"] == ["en", "ru"]

    # Ana interprets English and Russian, then no longer.
    await row.get_by_label("First language of the pair of Ana Pereira").select_option("en")
    await row.get_by_label("Second language of the pair of Ana Pereira").select_option("ru")
    await row.get_by_role("button", name="Make Ana Pereira an interpreter of this pair").click()
    await expect(page.locator(".toast", has_text="Ana Pereira now interprets English ⇄ Russian.")).to_be_visible()
    await expect(row.locator(".pair-current")).to_have_text("English ⇄ Russian")
    url = f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}"
    resp = await client.get(url, headers=ADMIN)
    assert (await resp.json())["interpreter"] == {"languages": ["en", "ru"]}
    # At once, in the room: Ana's booth instead of her tile, her camera off, her microphone into the channel.
    await expect(page_a.locator("#booth")).to_be_visible()
    await expect(page_a.locator(".tile")).to_have_count(0)
    await expect(page_a.locator("#btn-cam")).to_be_hidden()
    await expect(page_a.locator("#listen-control")).to_be_visible()
    await page_a.wait_for_function(
        "() => window.roundtable.connections().some((c) => c.role === 'publish:interpretation')"
        " && !window.roundtable.connections().some((c) => c.role === 'publish:camera')",
        timeout=MEDIA_TIMEOUT_MS,
    )

    await row.get_by_role("button", name="Ana Pereira no longer interprets").click()
    await expect(row.locator(".pair-current")).to_have_text("—")
    resp = await client.get(url, headers=ADMIN)
    assert (await resp.json())["interpreter"] is None
    # Ana is a participant again: her own tile, no booth, the camera button back (her camera stays off until she
    # switches it on).
    await expect(page_a.locator("#booth")).to_be_hidden()
    await expect(page_a.locator('.tile[data-self="true"]')).to_have_count(1)
    await expect(page_a.locator("#btn-cam")).to_be_visible()
    await page_a.wait_for_function(
        "() => !window.roundtable.connections().some((c) => c.role === 'publish:interpretation')",
        timeout=MEDIA_TIMEOUT_MS,
    )
    assert browser.page_errors == []


async def test_a_breakout_room_with_an_interpreter_has_the_channel_too(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client, languages=["en", "ru"])
    wid = workshop["id"]
    fay = await add_participant(client, wid, display_name="Fay Fitzgerald", country="IE")
    irina = await add_participant(
        client, wid, display_name="Irina Volkova", country="RU", interpreter={"languages": ["en", "ru"]}
    )
    lena = await add_participant(client, wid, display_name="Lena Smirnova", country="KZ")
    page_f = await _page(browser, "fay")
    await join(page_f, fay["join_url"], fay["display_name"])
    page_l = await _page(browser, "lena")
    await open_join_page(page_l, lena["join_url"], lena["display_name"])
    await page_l.get_by_label("Language you hear").select_option("ru")
    page_i = await _page(browser, "irina")
    await join(page_i, irina["join_url"], irina["display_name"])
    await page_l.get_by_role("button", name="Join", exact=True).click()
    await page_l.wait_for_function("() => window.roundtable.state().joined", timeout=JOIN_TIMEOUT_MS)

    # All three go to one breakout room: the interpreter takes interpretation along.
    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts",
        json={
            "name": "Groups",
            "rooms": ["Group 1"],
            "strategy": "manual",
            "assignments": {p["id"]: "Group 1" for p in (fay, irina, lena)},
            "countdown_s": 0,
        },
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    for page in (page_f, page_i, page_l):
        await page.wait_for_function("() => window.roundtable.state().room.name === 'Group 1'", timeout=JOIN_TIMEOUT_MS)
    assert (await page_l.evaluate("() => window.roundtable.state().room.media")) == "sfu"
    await expect(page_l.locator("#listen-control")).to_be_visible()
    await expect(page_l.locator("#interp-notice")).to_contain_text("No live interpreter into Russian")

    # Irina goes live in the breakout room: Lena hears her over the floor at 20 %.
    booth = page_i.locator("#booth")
    await page_i.get_by_role("button", name="Mute your microphone").click()
    await booth.get_by_role("button", name="Go live").click()
    await expect(booth).to_have_attribute("data-state", "live")
    await page_l.wait_for_function(
        "() => window.roundtable.interpretation.channel() === 'ru'", timeout=MEDIA_TIMEOUT_MS
    )
    await wait_until(page_l, _CHANNEL_PLAYS, irina["id"], what="Irina's interpretation in the breakout room")
    await page_l.wait_for_function(_FLOOR_AT, arg=[fay["id"], 0.2], timeout=MEDIA_TIMEOUT_MS)
    await expect(page_l.locator(f'.tile[data-peer-id="{irina["id"]}"]')).to_have_count(0)
    assert browser.page_errors == []
