"""People in an sfu room, in real Chromium, with a real embedded Janus: each page sends its media once (one
send-only connection to the SFU) and sees and hears the others through its one subscriber connection; the
floor in a moderated room; a dropped socket; the room switching to mesh and back."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server.app import JANUS
from tests.e2e.conftest import BrowserSession, LiveServer, serve_with_sfu
from tests.e2e.pages import CAST, join, save_screenshot, wait_until, wait_video_visible
from tests.helpers import ADMIN, add_participant, create_workshop

pytestmark = pytest.mark.browser

# Every RTCPeerConnection the page makes, whoever makes it: the count does not rely on the app's own hook.
_TRACK_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  const made = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      made.push(this);
    }
  };
  window.__peerConnections = made;
})();
"""

# The page's open connections: the role the app gives each (window.roundtable.connections()), its state,
# the kinds it sends (senders with a track), and the bytes sent and received by kind.
_CONNECTIONS = """
async () => {
  const roles = new Map(window.roundtable.connections().map((c) => [c.pc, c.role]));
  const out = [];
  for (const pc of window.__peerConnections) {
    if (pc.signalingState === "closed") continue;
    const sent = { audio: 0, video: 0 };
    for (const stat of (await pc.getStats()).values()) {
      if (stat.type === "outbound-rtp") sent[stat.kind] += stat.bytesSent || 0;
    }
    out.push({
      role: roles.get(pc) || null,
      state: pc.connectionState,
      sending: pc.getSenders().filter((s) => s.track).map((s) => s.track.kind).sort(),
      sent,
    });
  }
  return out;
}
"""

# `n` connections send, each connected and with bytes gone out of every kind it sends.
_SENDERS_FLOWING = f"""
async (n) => {{
  const senders = (await ({_CONNECTIONS.strip()})()).filter((c) => c.sending.length);
  const flowing = (c) => c.state === "connected" && c.sending.every((kind) => c.sent[kind] > 0);
  return senders.length === n && senders.every(flowing);
}}
"""

# Audio and video of every listed peer arrive (window.roundtable.stats(): per remote feed in sfu rooms, per peer
# connection in mesh rooms), and keep arriving: received bytes of both kinds grow over half a second.
_MEDIA_FROM = """
async (ids) => {
  const read = async () => {
    const stats = await window.roundtable.stats();
    return ids.map((id) => stats.find((s) => s.peerId === id && (s.source || "camera") === "camera"));
  };
  const seen = (list) => list.map((s, i) => [
    ids[i], s ? [s.connectionState, s.iceConnectionState, s.signalingState, s.inbound] : null,
  ]);
  const before = await read();
  if (!before.every((s) => s && s.connectionState === "connected")) return { not: { before: seen(before) } };
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = await read();
  const grew = (s, b) => s && s.inbound.audio > b.inbound.audio && s.inbound.video > b.inbound.video;
  return after.every((s, i) => grew(s, before[i])) || { not: { before: seen(before), after: seen(after) } };
}
"""

# The remote tile of a peer plays sound: an unmuted, playing <video> whose stream has a live audio track.
_AUDIO_PLAYS = """
async (id) => {
  const video = document.querySelector(`.tile[data-peer-id="${id}"] video`);
  const stream = video && video.srcObject;
  if (!stream || video.muted || video.paused) return false;
  return stream.getAudioTracks().some((t) => t.readyState === "live");
}
"""

# A screen feed of the peer arrives: its own tile shows decoded frames, and its video bytes grow.
_SCREEN_FROM = """
async (id) => {
  const video = document.querySelector(`.tile-screen[data-screen-of="${id}"] video`);
  if (!video || video.readyState < 2 || video.videoWidth === 0) return false;
  const bytes = async () => {
    const stats = await window.roundtable.stats();
    const s = stats.find((x) => x.peerId === id && x.source === "screen");
    return s && s.connectionState === "connected" ? s.inbound.video : -1;
  };
  const before = await bytes();
  await new Promise((resolve) => setTimeout(resolve, 500));
  return before >= 0 && (await bytes()) > before;
}
"""


async def wait_sending(page: Page, n: int) -> None:
    """Exactly `n` of the page's connections send, each connected with bytes of what it sends gone out."""
    await wait_until(page, _SENDERS_FLOWING, n, what=f"{n} sending connection(s)")


async def wait_media(page: Page, peer_ids: set[str]) -> None:
    await wait_until(page, _MEDIA_FROM, sorted(peer_ids), what=f"audio and video flowing from {sorted(peer_ids)}")


async def _roles(page: Page) -> list[tuple[str | None, list[str]]]:
    """The page's open connections as (role, kinds it sends), sorted."""
    connections: list[dict[str, Any]] = await page.evaluate(_CONNECTIONS)
    return sorted((c["role"], c["sending"]) for c in connections)


async def _patch_plenary(client: Any, workshop: dict[str, Any], **changes: Any) -> None:
    resp = await client.patch(
        f"/api/v1/workshops/{workshop['id']}/rooms/{workshop['plenary_room_id']}", json=changes, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()


async def _join_all(browser: BrowserSession, people: list[tuple[str, dict[str, Any]]]) -> list[Page]:
    pages = []
    for key, person in people:
        page = await browser.new_page(key)
        await page.add_init_script(_TRACK_PEER_CONNECTIONS)
        await join(page, person["join_url"], person["display_name"])
        pages.append(page)
    return pages


@pytest.fixture
async def live_server(database_url: str, tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any) -> LiveServer:
    return await serve_with_sfu(database_url, tmp_path, aiohttp_server, aiohttp_client, rtp_ports="21000-21099")


async def test_three_people_in_an_sfu_room_send_once_and_see_each_other(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    cast = [("ana", "Ana Pereira", "PT"), ("ben", "Ben Okafor", "NG"), ("chen", "Chen Wei", "CN")]
    people = [
        await add_participant(client, workshop["id"], display_name=name, country=country) for _, name, country in cast
    ]
    pages = await _join_all(browser, [(key, person) for (key, *_), person in zip(cast, people, strict=True)])

    for page, person in zip(pages, people, strict=True):
        state = await page.evaluate("() => window.roundtable.state()")
        assert state["room"]["media"] == "sfu", state["room"]
        assert state["room"]["publishing"] == "open"
        assert state["self"]["may_publish"] is True
        assert state["sfuAvailable"] is True
        others = {p["id"] for p in people if p["id"] != person["id"]}
        # Audio and video of both others arrive, and keep arriving, on the subscriber connection ...
        await wait_media(page, others)
        # ... their pictures are on screen (drawn to a canvas: not black) and their sound plays.
        for other in others:
            await wait_video_visible(page, other)
            await wait_until(page, _AUDIO_PLAYS, other, what=f"the sound of {other} playing")
        # One connection sends (camera + microphone in one), one receives; nothing peer-to-peer.
        await wait_sending(page, 1)
        assert await _roles(page) == [("publish:camera", ["audio", "video"]), ("subscribe", [])]

    # Each page receives exactly the others' camera feeds (never its own).
    for page, person in zip(pages, people, strict=True):
        stats = await page.evaluate("() => window.roundtable.stats()")
        assert sorted(s["peerId"] for s in stats) == sorted(p["id"] for p in people if p["id"] != person["id"])
        assert all(s["source"] == "camera" for s in stats), stats

    # Ana shares her screen: a second sending connection and feed of its own, a tile of its own for the others.
    ana_page, *other_pages = pages
    await ana_page.get_by_role("button", name="Share screen").click()
    await wait_sending(ana_page, 2)
    assert await _roles(ana_page) == [
        ("publish:camera", ["audio", "video"]),
        ("publish:screen", ["video"]),
        ("subscribe", []),
    ]
    for page in other_pages:
        await wait_until(page, _SCREEN_FROM, people[0]["id"], what="Ana's screen")
        await wait_media(page, {people[0]["id"]})  # her camera and microphone go on
    shot = browser.output_dir / "sfu-grid.png"
    await other_pages[0].screenshot(path=str(shot))
    # She stops: the screen connection and tile go, the camera stays.
    await ana_page.get_by_role("button", name="Stop sharing").click()
    await wait_sending(ana_page, 1)
    for page in other_pages:
        await expect(page.locator(".tile-screen")).to_have_count(0)
        await wait_media(page, {people[0]["id"]})
    save_screenshot(shot)
    assert browser.page_errors == []


async def test_in_a_moderated_sfu_room_only_who_has_the_floor_sends(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    await _patch_plenary(client, workshop, publishing="moderated")
    mia, ana, ben = [
        await add_participant(client, workshop["id"], display_name=name, country=country, role=role)
        for _, name, country, role in CAST
    ]
    page_m, page_a, page_b = await _join_all(browser, [("mia", mia), ("ana", ana), ("ben", ben)])

    # The moderator sends; the participants listen (no sending connection) and see and hear her.
    await wait_sending(page_m, 1)
    for page in (page_a, page_b):
        await wait_media(page, {mia["id"]})
        await wait_video_visible(page, mia["id"])
        await wait_sending(page, 0)
        assert await _roles(page) == [("subscribe", [])]
    await expect(page_m.locator(f'.tile[data-peer-id="{ana["id"]}"] .tile-status')).to_have_text("Listening")
    await expect(page_a.locator('.tile[data-self="true"] .tile-status')).to_contain_text("You are listening")

    # The moderator gives Ana the floor from the console: she publishes, everyone sees her.
    await page_m.get_by_role("tab", name="Moderate").click()
    console = page_m.locator("#panel-moderate")
    await console.get_by_role("button", name="Give the floor to Ana Pereira").click()
    await expect(page_a.locator(".toast", has_text="gave you the floor")).to_be_visible()
    await wait_sending(page_a, 1)
    await wait_media(page_b, {mia["id"], ana["id"]})
    await wait_video_visible(page_m, ana["id"])
    await wait_video_visible(page_b, ana["id"])

    # And takes it back: Ana's sending connection closes; the others show her as listening.
    await console.get_by_role("button", name="Take the floor back from Ana Pereira").click()
    await expect(page_a.locator(".toast", has_text="took the floor back")).to_be_visible()
    await wait_sending(page_a, 0)
    await expect(page_b.locator(f'.tile[data-peer-id="{ana["id"]}"] .tile-status')).to_have_text("Listening")
    await expect(console.get_by_role("button", name="Give the floor to Ana Pereira")).to_be_visible()
    assert browser.page_errors == []


async def test_an_sfu_call_survives_a_dropped_socket_and_follows_the_room_to_mesh_and_back(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana Pereira", country="PT")
    ben = await add_participant(client, workshop["id"], display_name="Ben Okafor", country="NG")
    page_a, page_b = await _join_all(browser, [("ana", ana), ("ben", ben)])
    await wait_media(page_a, {ben["id"]})
    await wait_media(page_b, {ana["id"]})
    await wait_sending(page_a, 1)

    # Ana's socket drops and resumes: media never went through it, so her connections stay and keep flowing.
    await page_a.evaluate("() => { window.__before = window.roundtable.connections().map((c) => c.pc); }")
    await page_a.evaluate("() => window.roundtable.dropConnection()")
    banner = page_a.locator("#reconnect-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_be_hidden(timeout=30_000)
    await wait_media(page_a, {ben["id"]})
    await wait_media(page_b, {ana["id"]})
    kept = "() => window.__before.length === 2 && window.__peerConnections.length === 2"
    assert await page_a.evaluate(kept), await _roles(page_a)
    assert await _roles(page_a) == [("publish:camera", ["audio", "video"]), ("subscribe", [])]

    # The room switches to mesh: the SFU connections close, one peer connection each, media flows.
    await _patch_plenary(client, workshop, media="mesh")
    for page, other in ((page_a, ben), (page_b, ana)):
        await page.wait_for_function("() => window.roundtable.state().room.media === 'mesh'")
        await wait_media(page, {other["id"]})
        await wait_video_visible(page, other["id"])
        assert await _roles(page) == [("mesh", ["audio", "video"])]

    # And back to sfu: one sending connection each again, and the other's picture.
    await _patch_plenary(client, workshop, media="sfu")
    for page, other in ((page_a, ben), (page_b, ana)):
        await page.wait_for_function("() => window.roundtable.state().room.media === 'sfu'")
        await wait_sending(page, 1)
        await wait_media(page, {other["id"]})
        await wait_video_visible(page, other["id"])
        assert await _roles(page) == [("publish:camera", ["audio", "video"]), ("subscribe", [])]
    assert browser.page_errors == []


async def test_pages_publish_and_subscribe_again_after_the_sfu_died(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana Pereira", country="PT")
    ben = await add_participant(client, workshop["id"], display_name="Ben Okafor", country="NG")
    page_a, page_b = await _join_all(browser, [("ana", ana), ("ben", ben)])
    await wait_media(page_a, {ben["id"]})
    await wait_media(page_b, {ana["id"]})

    # Janus is killed; the server restarts it and says sfu_unavailable, then sfu_restored.
    janus = client.app[JANUS]
    assert janus.pid is not None
    os.kill(janus.pid, signal.SIGKILL)
    for page in (page_a, page_b):
        await expect(page.locator(".toast", has_text="The media server is back")).to_be_visible(timeout=30_000)
        await expect(page.locator("#sfu-banner")).to_be_hidden()
    # New connections (the old ones died with Janus), one sending each, and media again.
    for page, other in ((page_a, ben), (page_b, ana)):
        await wait_sending(page, 1)
        await wait_media(page, {other["id"]})
        await wait_video_visible(page, other["id"])
        assert await _roles(page) == [("publish:camera", ["audio", "video"]), ("subscribe", [])]
        assert await page.evaluate("() => window.__peerConnections.length") == 4
    assert browser.page_errors == []


async def test_breakouts_take_people_from_the_sfu_plenary_into_a_mesh_room_and_back(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    wid = workshop["id"]
    ana, ben, chen = [
        await add_participant(client, wid, display_name=name, country=country)
        for name, country in (("Ana Pereira", "PT"), ("Ben Okafor", "NG"), ("Chen Wei", "CN"))
    ]
    page_a, page_b, page_c = await _join_all(browser, [("ana", ana), ("ben", ben), ("chen", chen)])
    await wait_media(page_a, {ben["id"], chen["id"]})

    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts",
        json={
            "name": "Pairs",
            "rooms": ["Pair 1"],
            "strategy": "manual",
            "assignments": {ana["id"]: "Pair 1", ben["id"]: "Pair 1"},
            "countdown_s": 0,
        },
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", headers=ADMIN)
    assert resp.status == 200, await resp.text()

    # Ana and Ben meet in the breakout (a mesh room): one peer connection each, no SFU connection.
    for page, other in ((page_a, ben), (page_b, ana)):
        await page.wait_for_function("() => window.roundtable.state().room.name === 'Pair 1'")
        assert (await page.evaluate("() => window.roundtable.state().room.media")) == "mesh"
        await wait_media(page, {other["id"]})
        await wait_video_visible(page, other["id"])
        assert await _roles(page) == [("mesh", ["audio", "video"])]
    # Chen, alone in the plenary, still sends to the SFU and receives nothing.
    await page_c.wait_for_function("() => window.roundtable.state().peers.length === 0")
    await wait_sending(page_c, 1)

    # Back in the plenary: the SFU again, everyone sees everyone.
    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/close", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    people = {"ana": ana, "ben": ben, "chen": chen}
    for key, page in (("ana", page_a), ("ben", page_b), ("chen", page_c)):
        others = {p["id"] for k, p in people.items() if k != key}
        await page.wait_for_function("() => window.roundtable.state().room.kind === 'plenary'")
        await wait_media(page, others)
        for other in others:
            await wait_video_visible(page, other)
        await wait_sending(page, 1)
        assert await _roles(page) == [("publish:camera", ["audio", "video"]), ("subscribe", [])]
    assert browser.page_errors == []
