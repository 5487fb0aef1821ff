"""The stage and the grid in real Chromium, in sfu rooms with a real embedded Janus (issue 11): each page receives
video only for the tiles it shows (and every publisher's sound), a shared screen goes on everyone's stage, the
active speaker is followed, and a moderator's spotlight moves someone onto everyone's stage.

The crowd is made of aiortc publishers in the test process (tests/sfu/peer.py), kept cheap: 64x48 pictures at a
few frames a second, their tones silent unless a test lets one speak."""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path
from typing import Any

import pytest
from aiortc.mediastreams import MediaStreamError
from playwright.async_api import Page, expect

import tests.sfu.peer as sfu_peer
from tests import netns
from tests.e2e.conftest import PHONE, BrowserSession, LiveServer, serve_with_sfu
from tests.e2e.pages import MEDIA_TIMEOUT_MS, join, layout, save_screenshot, wait_tiles_show_pictures, wait_until
from tests.helpers import ADMIN, add_participant, create_workshop
from tests.sfu.peer import SfuPeer

pytestmark = pytest.mark.browser

CROWD = 20
PAGE_SIZE = 6  # small grid pages for the test (the product's laptop default is 16)
FULL_HD = {"width": 1920, "height": 1080}


class TinyColour(sfu_peer.ColourTrack):
    """A solid colour at 64x48, five frames a second: twenty of them cost the test process little."""

    async def next_timestamp(self) -> tuple[int, fractions.Fraction]:
        if self.readyState != "live":
            raise MediaStreamError
        rate = 5
        if not hasattr(self, "_t0"):
            self._t0 = time.monotonic()
            self._n = 0
        else:
            self._n += 1
            await asyncio.sleep(max(0.0, self._t0 + self._n / rate - time.monotonic()))  # the frame pace, not a wait
        return int(self._n * 90000 / rate), fractions.Fraction(1, 90000)


class QuietTone(sfu_peer.ToneTrack):
    """A tone that starts silent: `silent = False` makes its publisher speak."""

    def __init__(self, hz: float) -> None:
        super().__init__(hz)
        self.silent = True


@pytest.fixture
def tiny_crowd(monkeypatch: pytest.MonkeyPatch) -> None:
    import aioice.ice

    monkeypatch.setattr(sfu_peer, "SIZE", (64, 48))
    monkeypatch.setattr(sfu_peer, "ColourTrack", TinyColour)
    monkeypatch.setattr(sfu_peer, "ToneTrack", QuietTone)
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [netns.MEDIA_ADDRESS])


@pytest.fixture
async def live_server(database_url: str, tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any) -> LiveServer:
    return await serve_with_sfu(database_url, tmp_path, aiohttp_server, aiohttp_client, rtp_ports="21200-21399")


@pytest.fixture
async def crowd(live_server: LiveServer, tiny_crowd: None) -> Any:
    """Publishers to be started by the test; all closed at the end."""
    peers: list[SfuPeer] = []
    yield peers
    for peer in peers:
        await peer.close()


async def _publishers(client: Any, workshop: dict[str, Any], n: int, peers: list[SfuPeer]) -> list[SfuPeer]:
    out = []
    for i in range(n):
        person = await add_participant(client, workshop["id"], display_name=f"Publisher {i + 1:02d}", country="PT")
        peer = SfuPeer(client, person["join_token"], f"pub{i + 1:02d}", decode=False, auto_subscribe=False)
        peers.append(peer)
        await peer.start()
        colour = (40 + (i * 53) % 200, 40 + (i * 97) % 200, 40 + (i * 31) % 200)
        reply = await peer.publish(colour=colour, hz=300.0 + 20 * i)
        assert reply["type"] == "published", reply
        out.append(peer)
    return out


# The page's subscription carries video for exactly `expected` (feed ids; audio for `audio` feeds), the SFU's
# offer receives exactly those videos, and their frames keep arriving while the others' video does not.
_RECEIVES_ONLY = """
async ([expected, audio]) => {
  const sub = window.roundtable.subscription();
  if (!sub || sub.pending || !sub.wanted) return { not: sub ? { pending: !!sub.pending } : "no subscription" };
  const same = (a, b) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
  const minus = (a, b) => a.filter((x) => !b.includes(x));
  const asked = sub.wanted.filter((f) => f.video).map((f) => f.feed_id);
  const carried = sub.streams.filter((s) => s.kind === "video" && s.active).map((s) => s.feed_id);
  const heard = sub.wanted.filter((f) => f.audio).length;
  if (!same(asked, expected) || !same(carried, expected) || heard !== audio) {
    return { not: {
      asked_missing: minus(expected, asked), asked_extra: minus(asked, expected),
      carried_missing: minus(expected, carried), carried_extra: minus(carried, expected), heard,
    } };
  }
  const frames = async () => {
    const out = {};
    for (const s of await window.roundtable.stats()) {
      out[s.feedId] = { frames: s.framesDecoded, video: s.inbound.video };
    }
    return out;
  };
  const before = await frames();
  await new Promise((resolve) => setTimeout(resolve, 700));
  const after = await frames();
  const grew = (id) => after[id] && before[id] && after[id].frames > before[id].frames;
  const others = Object.keys(after).filter((id) => !expected.includes(id) && id.endsWith(":camera"));
  const stalled = expected.filter((id) => !grew(id)).map((id) => [id, before[id] || null, after[id] || null]);
  const leaking = others.filter((id) => after[id].video !== before[id].video);
  return (stalled.length || leaking.length) ? { not: { stalled, leaking } } : true;
}
"""

# The shared screen is on the stage, showing frames, drawn at least `min` px wide (object-fit: contain).
_SCREEN_ON_STAGE = """
([id, min]) => {
  const tile = document.querySelector(`.stage-main .tile-screen[data-screen-of="${id}"]`);
  const video = tile && tile.querySelector("video");
  if (!video || video.readyState < 2 || !video.videoWidth) return false;
  const box = video.getBoundingClientRect();
  const drawn = Math.min(box.width, box.height * video.videoWidth / video.videoHeight);
  return drawn >= min && box.right <= window.innerWidth + 1;
}
"""

# The stage takes all the room the strip leaves (the width of the video area, or its height on a phone), and its
# picture fills the stage in one dimension (object-fit: contain, never cropped).
_STAGE_FILLS = """
() => {
  const area = document.querySelector("#grid").getBoundingClientRect();
  const main = document.querySelector("#grid .stage-main").getBoundingClientRect();
  const strip = document.querySelector("#grid .strip").getBoundingClientRect();
  const video = document.querySelector("#grid .stage-main video");
  if (!video || !video.videoWidth) return false;
  const box = video.getBoundingClientRect();
  const ratio = video.videoWidth / video.videoHeight;
  const drawn = { width: Math.min(box.width, box.height * ratio), height: Math.min(box.height, box.width / ratio) };
  const beside = strip.left >= main.right - 1; // laptop: the strip on the right; phone: below
  const width = beside ? main.width >= area.width - strip.width - 16 : main.width >= area.width - 2;
  const height = beside ? main.height >= area.height - 2 : main.height >= area.height - strip.height - 16;
  const fills = box.width >= main.width - 24 && box.height >= main.height - 24
    && (drawn.width >= box.width - 2 || drawn.height >= box.height - 2);
  return width && height && fills && main.right <= innerWidth + 1 && main.bottom <= innerHeight + 1;
}
"""

# Nothing is drawn over the controls: the element at the middle of every control is (inside) that control.
_CONTROLS_CLEAR = """
() => [...document.querySelectorAll("#controls .control")].filter((b) => !b.hidden && b.offsetParent).every((b) => {
  const r = b.getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return hit && b.contains(hit);
})
"""

# getDisplayMedia gives a 16:9 canvas: a slide with a title, text and a bar that moves a few times a second (a fake
# screen, cheap to encode; the text shows in the screenshots whether slides are readable).
_CANVAS_SCREEN = """
(() => {
  navigator.mediaDevices.getDisplayMedia = async () => {
    const canvas = document.createElement("canvas");
    canvas.width = 1280;
    canvas.height = 720;
    const ctx = canvas.getContext("2d");
    let n = 0;
    const draw = () => {
      ctx.fillStyle = "#fbfbf8";
      ctx.fillRect(0, 0, 1280, 720);
      ctx.fillStyle = "#1c3f78";
      ctx.fillRect(0, 0, 1280, 110);
      ctx.fillStyle = "#ffffff";
      ctx.font = "bold 54px sans-serif";
      ctx.fillText("Rivers without borders: 2027 work plan", 60, 75);
      ctx.fillStyle = "#222222";
      ctx.font = "34px sans-serif";
      const lines = [
        "1. Shared flood warnings across the basin (12 countries)",
        "2. One data format for gauges, from March",
        "3. Joint field visits: two per quarter",
        "4. Budget: 1.4 M EUR, 38 % from members",
      ];
      lines.forEach((line, i) => ctx.fillText(line, 80, 210 + i * 80));
      ctx.fillStyle = "#1c64d8";
      ctx.fillRect(80 + ((n++ * 23) % 1080), 600, 120, 24);
      ctx.fillStyle = "#666666";
      ctx.font = "24px sans-serif";
      ctx.fillText("Delegation of Portugal", 80, 690);
    };
    draw();
    setInterval(draw, 200);
    return canvas.captureStream(5);
  };
})();
"""


def _feeds_of(tile_ids: list[str]) -> list[str]:
    return sorted(f"{tile}:camera" for tile in tile_ids if tile != "self" and not tile.startswith("screen:"))


# Twenty publishers, three pages and many views to check: about two minutes on a slow 2-core machine, longer than the
# suite's 120 s per test (which covers setup and teardown too).
@pytest.mark.timeout(300)
async def test_each_page_receives_video_only_for_the_tiles_it_shows(
    live_server: LiveServer, browser: BrowserSession, crowd: list[SfuPeer]
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    cast = [("ana", "Ana Pereira", "PT"), ("ben", "Ben Okafor", "NG"), ("chen", "Chen Wei", "CN")]
    people = [await add_participant(client, workshop["id"], display_name=n, country=c) for _, n, c in cast]
    pages = []
    for (key, *_), person in zip(cast, people, strict=True):
        page = await browser.new_page(key)
        await join(page, person["join_url"], person["display_name"])
        await page.evaluate(f"() => window.roundtable.setPageSize({PAGE_SIZE})")
        pages.append(page)
    await _publishers(client, workshop, CROWD, crowd)
    audio_feeds = CROWD + len(pages) - 1  # every other publisher's sound, whatever is shown

    for page in pages:
        await page.wait_for_function(f"() => window.roundtable.feeds().length === {CROWD + len(pages)}")
        shown = await layout(page)
        assert shown["layout"] == "grid" and shown["page"] == 0, shown
        # One's own tile on every page and five others: 22 others make five pages.
        assert len(shown["grid"]) == PAGE_SIZE and shown["grid"][0] == "self" and shown["pages"] == 5, shown
        expected = _feeds_of(shown["grid"])
        await wait_until(page, _RECEIVES_ONLY, [expected, audio_feeds], what=f"video only of {expected}")

    # Turning the page changes what is received: the next six tiles' video, the first page's stops.
    ana = pages[0]
    first = _feeds_of((await layout(ana))["grid"])
    await ana.get_by_role("button", name="Next page").click()
    await expect(ana.locator("#page-label")).to_have_text("Page 2 of 5")
    second = _feeds_of((await layout(ana))["grid"])
    assert len(second) == PAGE_SIZE - 1 and not set(second) & set(first), (first, second)
    assert (await layout(ana))["grid"][0] == "self"
    await wait_until(ana, _RECEIVES_ONLY, [second, audio_feeds], what=f"video only of page 2: {second}")
    await ana.get_by_role("button", name="Previous page").click()
    await wait_until(ana, _RECEIVES_ONLY, [first, audio_feeds], what="video of page 1 again")
    shot = browser.output_dir / "stage-grid-page.png"
    await ana.screenshot(path=str(shot))
    save_screenshot(shot)
    # The tiles of other pages still play their sound.
    assert await ana.evaluate(_OFFSTAGE_PLAYS), "an off-screen tile does not play its sound"

    # Each tile asks for the simulcast layer that fits it: the stage the full one, the strip a small one.
    await ana.get_by_role("button", name="Stage view").click()
    await ana.wait_for_function(
        """() => {
            const l = window.roundtable.layout();
            return l.layout === "stage" && l.visible.includes(l.main) && l.strip.some((id) => l.visible.includes(id))
                && !l.grid.length;
        }""",
        timeout=10_000,
    )
    shown = await layout(ana)
    assert shown["layout"] == "stage" and shown["main"] not in (None, "self"), shown
    main_feed = f"{shown['main']}:camera"
    await wait_until(ana, _QUALITY_OF, [main_feed, ["high"]], what=f"the full layer of {main_feed} on the stage")
    strip_feeds = [f for f in _feeds_of(shown["strip"]) if f in _feeds_of(shown["visible"])]
    assert strip_feeds, shown
    await wait_until(ana, _QUALITY_OF, [strip_feeds[0], ["low", "medium"]], what="a small layer in the strip")
    # Scrolling the strip changes what is received: the thumbnails scrolled into view, no longer those above.
    seen = _feeds_of(shown["visible"])
    await wait_until(ana, _RECEIVES_ONLY, [seen, audio_feeds], what=f"video of the stage and the strip in view: {seen}")
    await ana.evaluate("() => { const s = document.querySelector('#grid .strip'); s.scrollTop = s.scrollHeight; }")
    await ana.wait_for_function(
        "(before) => !window.roundtable.layout().visible.includes(before)", arg=shown["strip"][0], timeout=10_000
    )
    scrolled = _feeds_of((await layout(ana))["visible"])
    assert scrolled != seen and main_feed in scrolled, (seen, scrolled)
    await wait_until(ana, _RECEIVES_ONLY, [scrolled, audio_feeds], what=f"video of the strip scrolled: {scrolled}")
    # Cameras publish simulcast: three encodings of one track.
    rids = await ben_page_rids(pages[1])
    assert rids == ["h", "m", "l"], rids
    await wait_until(pages[1], _LAYERS_SENT, 2, what="at least two simulcast layers sent to the SFU")

    # The product's own page size: sixteen tiles on a laptop screen (oneself and fifteen others, the server's cap
    # of video per viewer), all of them whole on screen and showing their pictures; six on a phone.
    await ana.get_by_role("button", name="Grid view").click()
    await ana.evaluate("() => window.roundtable.setPageSize(null)")
    for viewport, size, pages_n, docs_name in (
        (FULL_HD, 16, 2, "screenshot-grid-1920.png"),
        ({"width": 1280, "height": 720}, 16, 2, "screenshot-grid.png"),
        (PHONE, 6, 5, "screenshot-grid-phone.png"),
    ):
        await ana.set_viewport_size(viewport)
        await ana.wait_for_function(_PAGE_IN_VIEW, arg=[size, pages_n], timeout=10_000, polling=250)
        grid = (await layout(ana))["grid"]
        await wait_until(ana, _RECEIVES_ONLY, [_feeds_of(grid), audio_feeds], what=f"video of the page at {viewport}")
        await wait_tiles_show_pictures(ana, grid)
        shot = browser.output_dir / f"stage-grid-{viewport['width']}.png"
        await ana.screenshot(path=str(shot))
        save_screenshot(shot, docs_name)
    await ana.set_viewport_size({"width": 1280, "height": 720})

    # A tab in the background receives sound only.
    chen = pages[2]
    await chen.evaluate(_GO_BACKGROUND)
    await wait_until(chen, _RECEIVES_ONLY, [[], audio_feeds], what="no video in a background tab")
    assert browser.page_errors == []


async def ben_page_rids(page: Page) -> list[str]:
    rids: list[str] = await page.evaluate(
        """() => {
            const pub = window.roundtable.connections().find((c) => c.role === "publish:camera");
            const sender = pub.pc.getSenders().find((s) => s.track && s.track.kind === "video");
            return sender.getParameters().encodings.map((e) => e.rid);
        }"""
    )
    return rids


# The camera connection sends at least `n` layers (outbound video streams with a rid and bytes).
_LAYERS_SENT = """
async (n) => {
  const pub = window.roundtable.connections().find((c) => c.role === "publish:camera");
  if (!pub) return false;
  const rids = new Set();
  for (const stat of (await pub.pc.getStats()).values()) {
    if (stat.type === "outbound-rtp" && stat.kind === "video" && stat.rid && stat.bytesSent > 0) rids.add(stat.rid);
  }
  return rids.size >= n;
}
"""

# A grid page of `size` tiles (of `pages` pages), every one of them whole inside the window and seen.
_PAGE_IN_VIEW = """
([size, pages]) => {
  const l = window.roundtable.layout();
  if (l.layout !== "grid" || l.grid.length !== size || l.pages !== pages) return false;
  return l.grid.every((id) => {
    const tile = document.querySelector(`#grid .grid-page .tile[data-tile-id="${id}"]`);
    const r = tile && tile.getBoundingClientRect();
    return r && r.width > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth + 1 && r.bottom <= innerHeight + 1
      && l.visible.includes(id);
  });
}
"""

_OFFSTAGE_PLAYS = """
() => {
  const videos = [...document.querySelectorAll("#grid .offstage video")];
  return videos.length > 0 && videos.every((v) => !v.paused && v.srcObject
    && v.srcObject.getAudioTracks().some((t) => t.readyState === "live"));
}
"""

# The last subscribe asked for this feed's video in one of these layers.
_QUALITY_OF = """
async ([feed, qualities]) => {
  const sub = window.roundtable.subscription();
  const item = sub && !sub.pending && sub.wanted && sub.wanted.find((f) => f.feed_id === feed);
  return Boolean(item && item.video && qualities.includes(item.quality));
}
"""

_GO_BACKGROUND = """
() => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  document.dispatchEvent(new Event("visibilitychange"));
}
"""


async def test_a_shared_screen_goes_on_the_stage_and_a_spotlight_moves_everyone(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    cast = [
        ("mia", "Mia Moderator", "IE", "moderator"),
        ("ana", "Ana Pereira", "PT", "participant"),
        ("ben", "Ben Okafor", "NG", "participant"),
    ]
    people = [await add_participant(client, workshop["id"], display_name=n, country=c, role=r) for _, n, c, r in cast]
    mia, ana, ben = people
    pages = []
    for (key, *_), person in zip(cast, people, strict=True):
        page = await browser.new_page(key)
        await page.add_init_script(_CANVAS_SCREEN)
        await join(page, person["join_url"], person["display_name"])
        pages.append(page)
    page_m, page_a, page_b = pages
    for page in pages:
        assert (await layout(page))["layout"] == "grid"

    # Ana shares her screen: on the others' pages it takes the stage, whole and at least 1000 px wide at 1280x720,
    # her camera beside it.
    await page_a.get_by_role("button", name="Share screen").click()
    screen_tile = f"screen:{ana['id']}:screen"
    for page in (page_m, page_b):
        await page.wait_for_function("(id) => window.roundtable.layout().main === id", arg=screen_tile, timeout=30_000)
        shown = await layout(page)
        assert shown["layout"] == "stage" and shown["beside"] == ana["id"], shown
        await page.wait_for_function(_SCREEN_ON_STAGE, arg=[ana["id"], 1000], timeout=30_000, polling=250)
        await page.wait_for_function(_STAGE_FILLS, timeout=10_000, polling=250)
    # Below 1600 px the side panel steps aside for the screen; its button stays in view to bring it back.
    for page in (page_m, page_b):
        await expect(page.locator("#sidepanel")).to_be_hidden()
        await expect(page.get_by_role("button", name="Show panel")).to_be_in_viewport()
    await wait_tiles_show_pictures(page_b, [screen_tile, ana["id"], "self", mia["id"]])
    # The screen's caption stays off the slide until the pointer is over it.
    await page_b.mouse.move(5, 5)
    caption = page_b.locator(".stage-main .tile-screen .tile-caption")
    await expect(caption).to_have_css("opacity", "0")
    shot = browser.output_dir / "stage-screen-1280.png"
    await page_b.screenshot(path=str(shot))
    save_screenshot(shot, "screenshot-stage.png")
    # Mia wants her panel even so: one click, and the choice is remembered (for the next screen, and the next visit).
    await page_m.get_by_role("button", name="Show panel").click()
    await expect(page_m.locator("#sidepanel")).to_be_visible()
    assert await page_m.evaluate("() => localStorage.getItem('roundtable.panel')") == "shown"
    await page_m.wait_for_function(_SCREEN_ON_STAGE, arg=[ana["id"], 600], timeout=10_000, polling=250)
    # Full HD and a phone: the screen is still whole on the stage, and the stage takes all the room there is.
    await page_m.set_viewport_size(FULL_HD)
    await page_m.wait_for_function(_SCREEN_ON_STAGE, arg=[ana["id"], 1300], timeout=10_000, polling=250)
    await page_m.wait_for_function(_STAGE_FILLS, timeout=10_000, polling=250)
    await wait_tiles_show_pictures(page_m, [screen_tile, ana["id"]])
    shot = browser.output_dir / "stage-screen-1920.png"
    await page_m.screenshot(path=str(shot))
    save_screenshot(shot, "screenshot-stage-1920.png")
    await page_b.set_viewport_size(PHONE)
    await page_b.wait_for_function(_SCREEN_ON_STAGE, arg=[ana["id"], 300], timeout=10_000, polling=250)
    await page_b.wait_for_function(_STAGE_FILLS, timeout=10_000, polling=250)
    assert await page_b.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    await expect(page_b.get_by_role("button", name="Leave")).to_be_in_viewport()
    await expect(page_b.get_by_role("button", name="Show panel")).to_be_in_viewport()
    assert await page_b.evaluate(_CONTROLS_CLEAR), "something covers the controls"
    await wait_tiles_show_pictures(page_b, [screen_tile, ana["id"]])
    await page_b.mouse.move(5, 5)
    shot = browser.output_dir / "stage-screen-phone.png"
    await page_b.screenshot(path=str(shot))
    save_screenshot(shot, "screenshot-stage-phone.png")
    await page_b.set_viewport_size({"width": 1280, "height": 720})
    await page_m.set_viewport_size({"width": 1280, "height": 720})
    await page_a.get_by_role("button", name="Stop sharing").click()
    for page in (page_m, page_b):
        await page.wait_for_function("() => window.roundtable.layout().layout === 'grid'", timeout=30_000)
        await expect(page.locator("#sidepanel")).to_be_visible()
    # The next screen: Ben's panel steps aside again, Mia's stays as she chose.
    await page_a.get_by_role("button", name="Share screen").click()
    for page in (page_m, page_b):
        await page.wait_for_function("(id) => window.roundtable.layout().main === id", arg=screen_tile, timeout=30_000)
    await expect(page_b.locator("#sidepanel")).to_be_hidden()
    await expect(page_m.locator("#sidepanel")).to_be_visible()
    await page_a.get_by_role("button", name="Stop sharing").click()
    for page in (page_m, page_b):
        await page.wait_for_function("() => window.roundtable.layout().layout === 'grid'", timeout=30_000)
    await expect(page_b.locator("#sidepanel")).to_be_visible()

    # Everyone's own choice: Ana pins Mia, Ben keeps the grid, Mia takes the stage view.
    await page_a.get_by_role("button", name="Pin Mia Moderator to your stage").click()
    await page_m.get_by_role("button", name="Stage view").click()
    assert (await layout(page_a))["main"] == mia["id"]

    # Mia puts Ben in the spotlight: he is on everyone's stage (his own included), live.
    await page_m.get_by_role("button", name="Put Ben Okafor on everyone's stage").click()
    for page, tile in ((page_m, ben["id"]), (page_a, ben["id"]), (page_b, "self")):
        await page.wait_for_function(
            "(id) => { const l = window.roundtable.layout(); return l.layout === 'stage' && l.main === id; }",
            arg=tile,
            timeout=15_000,
        )
        assert (await layout(page))["reason"] == "spotlight"
    # Ending it (from the moderator's console this time) gives each viewer back their own choice.
    await page_m.get_by_role("tab", name="Moderate").click()
    await page_m.locator("#panel-moderate").get_by_role("button", name="End the spotlight on Ben Okafor").click()
    await page_a.wait_for_function(
        "(id) => window.roundtable.layout().main === id && window.roundtable.layout().reason === 'pinned'",
        arg=mia["id"],
        timeout=15_000,
    )
    await page_b.wait_for_function("() => window.roundtable.layout().layout === 'grid'", timeout=15_000)
    await page_m.wait_for_function(
        "() => window.roundtable.layout().layout === 'stage' && window.roundtable.layout().spotlight === null",
        timeout=15_000,
    )
    assert browser.page_errors == []


_SPEAKER_EVERYWHERE = """
(id) => {
  const s = window.roundtable.state();
  const tile = document.querySelector(`.tile[data-peer-id="${id}"]`);
  const person = document.querySelector(`#people-list .person[data-peer-id="${id}"]`);
  const badge = person && person.querySelector(".badge-speaking");
  return s.activeSpeaker === id && s.speaking.includes(id) && tile && tile.classList.contains("speaking")
    && badge && !badge.hidden;
}
"""


async def test_a_publisher_playing_a_tone_becomes_the_active_speaker_on_every_page(
    live_server: LiveServer, browser: BrowserSession, crowd: list[SfuPeer]
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    cast = [("ana", "Ana Pereira", "PT"), ("ben", "Ben Okafor", "NG"), ("chen", "Chen Wei", "CN")]
    people = [await add_participant(client, workshop["id"], display_name=n, country=c) for _, n, c in cast]
    pages = []
    for (key, *_), person in zip(cast, people, strict=True):
        page = await browser.new_page(key)
        await join(page, person["join_url"], person["display_name"])
        # The fake microphone beeps: muted, it sends silence like the rest.
        await page.get_by_role("button", name="Mute your microphone").click()
        pages.append(page)
    quiet = await _publishers(client, workshop, 5, crowd)
    for page in pages:
        await page.wait_for_function(f"() => window.roundtable.feeds().length === {5 + len(pages)}")
    await pages[0].get_by_role("button", name="Stage view").click()

    # One publisher plays its tone: it speaks on every page (outlined tile, "Speaking" in the people list) and
    # takes the stage of the page in stage view.
    talker = quiet[2]
    assert talker.tone is not None
    talker.tone.silent = False
    for page in pages:
        await page.wait_for_function(_SPEAKER_EVERYWHERE, arg=talker.id, timeout=30_000, polling=250)
    await pages[0].wait_for_function(
        "(id) => { const l = window.roundtable.layout(); return l.main === id && l.reason === 'speaker'; }",
        arg=talker.id,
        timeout=10_000,
    )
    # It falls silent and another speaks: the stage follows (after its short hold).
    talker.tone.silent = True
    other = quiet[4]
    assert other.tone is not None
    other.tone.silent = False
    for page in pages:
        await page.wait_for_function(_SPEAKER_EVERYWHERE, arg=other.id, timeout=30_000, polling=250)
    await pages[0].wait_for_function("(id) => window.roundtable.layout().main === id", arg=other.id, timeout=10_000)
    shot = browser.output_dir / "stage-speaker.png"
    await pages[0].screenshot(path=str(shot))
    save_screenshot(shot)
    assert browser.page_errors == []


async def test_in_a_mesh_room_the_browser_finds_the_speaker_from_audio_levels(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    resp = await client.patch(
        f"/api/v1/workshops/{workshop['id']}/rooms/{workshop['plenary_room_id']}", json={"media": "mesh"}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    ana = await add_participant(client, workshop["id"], display_name="Ana Pereira", country="PT")
    ben = await add_participant(client, workshop["id"], display_name="Ben Okafor", country="NG")
    page_a = await browser.new_page("ana")
    await join(page_a, ana["join_url"], ana["display_name"])
    page_b = await browser.new_page("ben")
    await join(page_b, ben["join_url"], ben["display_name"])
    # Ben mutes; Ana's fake microphone beeps: Ben's page sees her speak (outlined, in the people list, followed by
    # the stage), and Ana's page sees herself speak.
    # The fake microphone beeps briefly twice a second: the pages must hear it between their looks at the levels
    # (web/join.js reads the energy since the last look), and a loaded machine may take long to connect.
    await page_b.get_by_role("button", name="Mute your microphone").click()
    await page_b.get_by_role("button", name="Stage view").click()
    await page_b.wait_for_function(_SPEAKER_EVERYWHERE, arg=ana["id"], timeout=MEDIA_TIMEOUT_MS, polling=100)
    await page_b.wait_for_function(
        "(id) => window.roundtable.layout().main === id", arg=ana["id"], timeout=MEDIA_TIMEOUT_MS, polling=100
    )
    assert (await layout(page_b))["reason"] == "speaker"
    await page_a.wait_for_function(
        "(id) => window.roundtable.state().speaking.includes(id)", arg=ana["id"], timeout=MEDIA_TIMEOUT_MS, polling=100
    )
    # Ben's muted microphone never makes him speak on Ana's page.
    await page_a.wait_for_function(
        "(id) => !window.roundtable.state().speaking.includes(id)", arg=ben["id"], timeout=MEDIA_TIMEOUT_MS
    )
    assert browser.page_errors == []
