"""What the browser tests do to and read from the pages: joining, media checks through the page's debug hook
(`window.roundtable`), and screenshots. Every wait has a bound; none sleeps."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.e2e.conftest import REPO

JOIN_TIMEOUT_MS = 30_000
MEDIA_TIMEOUT_MS = 45_000

# Every listed peer is connected, with audio and video bytes received from it.
_MEDIA_FROM = """
async (ids) => {
  const stats = await window.roundtable.stats();
  return ids.every((id) => {
    const s = stats.find((x) => x.peerId === id);
    return s && s.connectionState === "connected" && s.inbound.audio > 0 && s.inbound.video > 0;
  });
}
"""

# Received bytes of every listed peer grew past a baseline, for audio and for video.
_MEDIA_GREW = """
async ([ids, before]) => {
  const stats = await window.roundtable.stats();
  return ids.every((id) => {
    const s = stats.find((x) => x.peerId === id);
    const b = before[id];
    return s && b && s.connectionState === "connected" && s.inbound.audio > b.audio && s.inbound.video > b.video;
  });
}
"""

# The remote <video> of a peer shows a picture: some real size and enough non-dark pixels.
_VIDEO_NOT_BLACK = """
(id) => {
  const video = document.querySelector(`.tile[data-peer-id="${id}"] video`);
  if (!video || video.readyState < 2 || video.videoWidth === 0) return false;
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 36;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 90) lit++;
  return lit > (canvas.width * canvas.height) / 10;
}
"""


async def open_join_page(page: Page, join_url: str, display_name: str) -> None:
    """Open an invite link and wait for the pre-join screen: preview, device pickers, the name."""
    await page.goto(join_url)
    await expect(page.locator("#pre-name")).to_have_text(display_name, timeout=JOIN_TIMEOUT_MS)
    # The camera preview plays and the device pickers are filled from enumerateDevices.
    await page.wait_for_function(
        "() => { const v = document.querySelector('#preview'); return v && v.videoWidth > 0; }",
        timeout=JOIN_TIMEOUT_MS,
    )
    await expect(page.locator("#camera-select option")).not_to_have_count(0)
    await expect(page.locator("#mic-select option")).not_to_have_count(0)


async def join(page: Page, join_url: str, display_name: str, *, keyboard: bool = False) -> None:
    """Open an invite link and press the "Join" button (with a click, or Enter where the focus already is);
    returns once the welcome arrived."""
    await open_join_page(page, join_url, display_name)
    button = page.get_by_role("button", name="Join", exact=True)
    if keyboard:
        await expect(button).to_be_focused()
        await page.keyboard.press("Enter")
    else:
        await button.click()
    await page.wait_for_function("() => window.roundtable.state().joined", timeout=JOIN_TIMEOUT_MS)
    await expect(page.locator("#room")).to_be_visible()


async def room(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate("() => window.roundtable.state()")
    return state


async def wait_in_room(page: Page, room_name: str, peer_ids: set[str], timeout_ms: int = JOIN_TIMEOUT_MS) -> None:
    """Wait until the page is in the room of that name with exactly those peers."""
    await page.wait_for_function(
        """([name, ids]) => {
            const s = window.roundtable.state();
            const have = s.peers.map((p) => p.id).sort();
            return s.room && s.room.name === name && have.length === ids.length && have.every((id, i) => id === ids[i]);
        }""",
        arg=[room_name, sorted(peer_ids)],
        timeout=timeout_ms,
    )


async def wait_until(
    page: Page, predicate: str, arg: Any = None, *, what: str, timeout_ms: int = MEDIA_TIMEOUT_MS
) -> None:
    """Poll an async predicate in the page until it holds, within `timeout_ms`.

    Playwright's wait_for_function does not await a Promise (an async predicate counts as true at once), so
    the polling runs inside the page; the deadline bounds it. A predicate may say why it does not hold yet by
    returning `{not: <anything JSON>}`: the last such reason is in the failure's message."""
    result = await page.evaluate(
        f"""async (arg) => {{
            const check = {predicate.strip()};
            const deadline = performance.now() + {timeout_ms};
            let why = null;
            for (;;) {{
                const r = await check(arg);
                if (r && !(typeof r === "object" && "not" in r)) return {{ held: true }};
                why = r && r.not !== undefined ? r.not : why;
                if (performance.now() > deadline) return {{ held: false, why }};
                await new Promise((resolve) => setTimeout(resolve, 250));
            }}
        }}""",
        arg,
    )
    assert result["held"], f"not within {timeout_ms} ms: {what}" + (
        f"; last seen: {result['why']}" if result.get("why") is not None else ""
    )


async def layout(page: Page) -> dict[str, Any]:
    """The page's video area (web/stage.js): layout, stage, strip, grid page, visible tiles, active speaker."""
    shown: dict[str, Any] = await page.evaluate("() => window.roundtable.layout()")
    return shown


async def inbound(page: Page) -> dict[str, dict[str, int]]:
    stats = await page.evaluate("() => window.roundtable.stats()")
    return {s["peerId"]: s["inbound"] for s in stats}


async def wait_media_flowing(page: Page, peer_ids: set[str], timeout_ms: int = MEDIA_TIMEOUT_MS) -> None:
    """Connected to each peer, and audio and video bytes from each keep arriving."""
    ids = sorted(peer_ids)
    await wait_until(page, _MEDIA_FROM, ids, what=f"media from {ids}", timeout_ms=timeout_ms)
    before = await inbound(page)
    await wait_until(page, _MEDIA_GREW, [ids, before], what=f"media from {ids} still arriving", timeout_ms=timeout_ms)


async def wait_video_visible(page: Page, peer_id: str, timeout_ms: int = MEDIA_TIMEOUT_MS) -> None:
    """The peer's tile really shows decoded frames (drawn to a canvas: not black)."""
    await page.wait_for_function(_VIDEO_NOT_BLACK, arg=peer_id, timeout=timeout_ms, polling=250)


# Every listed tile (by tile id: "self", a peer id, "screen:<feed id>") shows a picture, not black.
_TILES_SHOW_PICTURES = """
(ids) => ids.every((id) => {
  const video = document.querySelector(`.tile[data-tile-id="${id}"] video`);
  if (!video || video.readyState < 2 || video.videoWidth === 0) return false;
  const canvas = document.createElement("canvas");
  canvas.width = 32;
  canvas.height = 18;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 90) lit++;
  return lit > (canvas.width * canvas.height) / 10;
})
"""


async def wait_tiles_show_pictures(page: Page, tile_ids: list[str], timeout_ms: int = MEDIA_TIMEOUT_MS) -> None:
    """Every listed tile shows decoded frames (before a screenshot: no black tiles in the docs)."""
    await page.wait_for_function(_TILES_SHOW_PICTURES, arg=tile_ids, timeout=timeout_ms, polling=250)


def save_screenshot(path: Path, docs_name: str | None = None) -> None:
    """Screenshots stay in the run's output folder; with ROUNDTABLE_UPDATE_SCREENSHOTS=1 the named ones are also
    copied into docs/ (the README shows them), so that an ordinary test run leaves the tree clean."""
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    if docs_name and os.environ.get("ROUNDTABLE_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, REPO / "docs" / docs_name)


# The cast of the moderated tests: a moderator and two participants, in this order.
CAST = (
    ("mia", "Mia Moderator", "IE", "moderator"),
    ("ana", "Ana Pereira", "PT", "participant"),
    ("ben", "Ben Okafor", "NG", "participant"),
)


async def moderated_room(client: Any, browser: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[Page]]:
    """A new workshop with CAST on its roster, each joined in a page of its own: (workshop, people, pages)."""
    from tests.helpers import add_participant, create_workshop

    workshop = await create_workshop(client)
    people = [
        await add_participant(client, workshop["id"], display_name=name, country=country, role=role)
        for _, name, country, role in CAST
    ]
    pages = [await browser.new_page(key) for key, *_ in CAST]
    for page, person in zip(pages, people, strict=True):
        await join(page, person["join_url"], person["display_name"])
    return workshop, people, pages
