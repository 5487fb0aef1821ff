"""The player page in real Chromium on a recording made and composed for real: an aiortc peer recorded by the
server's recorder, its video composed by the composer subprocess, then played in a <video> element through the
signed URL: time advances, the picture is not black, a seek takes (by Range), a chapter seeks."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server import keys
from tests.e2e.conftest import BrowserSession, LiveServer, serve
from tests.e2e.pages import MEDIA_TIMEOUT_MS, save_screenshot
from tests.helpers import ADMIN, add_participant, bearer, create_workshop
from tests.recordings.peer import RecordedPeer
from tests.signaling.rtc_peer import loopback_ice

pytestmark = pytest.mark.browser

COMPOSE_TIMEOUT_S = 180


@pytest.fixture
async def live_server(
    database_url: str, tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> LiveServer:
    """The real app with one composer worker (the suite's default is none)."""
    loopback_ice(monkeypatch)
    return await serve(database_url, tmp_path, aiohttp_server, aiohttp_client, composition_workers=1)


@pytest.fixture
async def peers() -> AsyncIterator[list[RecordedPeer]]:
    made: list[RecordedPeer] = []
    yield made
    for peer in made:
        await peer.close()


async def recorded_and_composed(client: Any, peers: list[RecordedPeer]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A plenary recording of one consenting red peer with a tone, stopped and composed: (recording, participant)."""
    ended: asyncio.Queue[tuple[uuid.UUID, str, dict[str, Any]]] = asyncio.Queue()
    client.app[keys.COMPOSER].listeners.append(lambda rid, event, detail: ended.put_nowait((rid, event, detail)))
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana Pereira")
    peer = await RecordedPeer(client, ana["join_token"], "red", 440).join()
    peers.append(peer)
    resp = await client.post(f"/api/v1/rooms/{workshop['plenary_room_id']}/recordings", headers=ADMIN)
    assert resp.status == 201, await resp.text()
    rec = await resp.json()
    started = await peer.next("recording_started")
    await peer.consent(rec["id"], True)
    await peer.send_media(started["recorder_peer_id"])
    for _ in range(3):  # about four and a half seconds of media
        await peer.wait_sending()
    resp = await client.post(f"/api/v1/recordings/{rec['id']}/stop", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    async with asyncio.timeout(COMPOSE_TIMEOUT_S):
        while True:
            rid, event, detail = await ended.get()
            if str(rid) == rec["id"] and event == "ended":
                assert detail["state"] == "ready", detail
                break
    resp = await client.post(
        f"/api/v1/recordings/{rec['id']}/grants", json={"participant_id": ana["id"]}, headers=ADMIN
    )
    assert resp.status == 204, await resp.text()
    return rec, ana


# The player's <video> shows the red peer's picture: a real size and a good share of red pixels (not black).
_SHOWS_RED = """
() => {
  const video = document.querySelector("#player-video");
  if (!video || video.readyState < 2 || video.videoWidth === 0) return false;
  const canvas = document.createElement("canvas");
  canvas.width = 96;
  canvas.height = 54;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let red = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] > 150 && data[i + 1] < 100 && data[i + 2] < 100) red++;
  return red > (canvas.width * canvas.height) / 20;
}
"""


async def _current_time(page: Page) -> float:
    at: float = await page.evaluate("() => document.querySelector('#player-video').currentTime")
    return at


async def test_player_plays_the_composed_video_and_seeks_by_range(
    live_server: LiveServer, browser: BrowserSession, peers: list[RecordedPeer]
) -> None:
    client = live_server.client
    rec, ana = await recorded_and_composed(client, peers)
    detail = await (await client.get(f"/api/v1/recordings/{rec['id']}", headers=ADMIN)).json()
    (composed,) = detail["composition"]["files"]

    page = await browser.new_page("ana")
    await page.goto(f"{live_server.base_url}/recordings/{rec['id']}#{ana['join_token']}")
    video = page.locator("#player-video")
    await expect(video).to_be_visible()
    src = await video.get_attribute("src")
    assert src is not None and f"/recordings/{rec['id']}/composed.webm?" in src and "sig=" in src
    await expect(page.locator("#file-table .composed-file")).to_contain_text("Composed video WEBM")
    await expect(page.locator("#file-table .track-file")).to_have_count(2)
    await expect(page.locator("#chapters li").first).to_contain_text("Recording starts")

    # It plays: time advances and the picture is the peer's red, not black.
    await page.evaluate("() => document.querySelector('#player-video').play()")
    await page.wait_for_function(
        "() => document.querySelector('#player-video').currentTime > 0.5", timeout=MEDIA_TIMEOUT_MS, polling=100
    )
    await page.wait_for_function(_SHOWS_RED, timeout=MEDIA_TIMEOUT_MS, polling=250)

    # A seek takes: the element lands where it was sent, and plays on from there.
    target = round(min(3.0, composed["duration_s"] - 1.0), 1)
    assert target > 1.0, composed
    landed = await page.evaluate(
        """(target) => new Promise((resolve) => {
            const video = document.querySelector("#player-video");
            video.pause();
            video.addEventListener("seeked", () => resolve(video.currentTime), { once: true });
            video.currentTime = target;
        })""",
        target,
    )
    assert abs(landed - target) < 0.25, landed
    await page.wait_for_function(_SHOWS_RED, timeout=MEDIA_TIMEOUT_MS, polling=250)
    shot = browser.output_dir / "player.png"
    await page.screenshot(path=str(shot), full_page=True)
    save_screenshot(shot, "screenshot-player.png")
    # A chapter seeks too: back to the start.
    await page.locator("#chapters").get_by_role("button", name="Recording starts").click()
    await page.wait_for_function(
        "() => { const v = document.querySelector('#player-video'); return v.currentTime < 1.0 && !v.paused; }",
        timeout=MEDIA_TIMEOUT_MS,
        polling=100,
    )

    # The browser fetched the file by Range through the signed URL, and every request is in the download log.
    log = await (await client.get(f"/api/v1/recordings/{rec['id']}/downloads", headers=ADMIN)).json()
    ranged = [d for d in log["items"] if d["via"] == "signed_url" and (d["range_header"] or "").startswith("bytes=")]
    assert ranged and all(d["status"] == 206 and d["principal"] == ana["id"] for d in ranged), log["items"]

    # Taken away, the same page is refused and shows nothing.
    resp = await client.delete(f"/api/v1/recordings/{rec['id']}/grants/{ana['id']}", headers=ADMIN)
    assert resp.status == 204, await resp.text()
    await page.reload()
    await expect(page.locator("#player-refused-message")).to_contain_text("you may not watch it")
    assert await page.locator("#player-video").get_attribute("src") is None
    resp = await client.get("/api/v1/me/recordings", headers=bearer(ana["join_token"]))
    assert (await resp.json())["items"] == []
    assert browser.page_errors == []


async def test_player_plays_an_interpretation_channels_version_from_the_same_moment_and_remembers_it(
    live_server: LiveServer, browser: BrowserSession, peers: list[RecordedPeer]
) -> None:
    """The composer's per-language version is tested for real in tests/sfu/test_interpretation.py; here a copy of
    the composed file stands in for it, registered as the `ru` version, so that the page's choice can be seen."""
    client = live_server.client
    rec, ana = await recorded_and_composed(client, peers)
    storage = client.app[keys.STORAGE]
    pool = client.app[keys.POOL]
    row = await pool.fetchrow("SELECT * FROM recording_composed_files WHERE recording_id = $1", uuid.UUID(rec["id"]))
    key = f"{rec['id']}/composed.ru.webm"
    storage.path(key).write_bytes(storage.path(row["file_key"]).read_bytes())
    await pool.execute(
        "INSERT INTO recording_composed_files (recording_id, format, codec, file_key, bytes, sha256, duration_s, "
        "width, height, language) VALUES ($1, 'webm', $2, $3, $4, $5, $6, $7, $8, 'ru')",
        row["recording_id"], row["codec"], key, row["bytes"], row["sha256"], row["duration_s"], row["width"],
        row["height"],
    )  # fmt: skip

    page = await browser.new_page("ana")
    await page.goto(f"{live_server.base_url}/recordings/{rec['id']}#{ana['join_token']}")
    video = page.locator("#player-video")
    await expect(video).to_be_visible()
    assert f"/recordings/{rec['id']}/composed.webm?" in (await video.get_attribute("src") or "")
    await expect(page.locator("#file-table .composed-file")).to_have_count(2)
    await expect(page.locator("#file-table")).to_contain_text("Composed video WEBM (Russian)")
    picker = page.get_by_label("Language you hear")
    await expect(picker).to_have_value("")
    await page.evaluate("() => document.querySelector('#player-video').play()")
    await page.wait_for_function(
        "() => document.querySelector('#player-video').currentTime > 1.0", timeout=MEDIA_TIMEOUT_MS, polling=100
    )
    before = await _current_time(page)
    await picker.select_option("ru")
    await expect(video).to_have_attribute(
        "src", re.compile(rf"/recordings/{rec['id']}/languages/ru/composed\.webm\?.*sig=")
    )
    await page.wait_for_function(
        "(at) => { const v = document.querySelector('#player-video'); return v.currentTime >= at && !v.paused; }",
        arg=before,
        timeout=MEDIA_TIMEOUT_MS,
        polling=100,
    )
    await page.wait_for_function(_SHOWS_RED, timeout=MEDIA_TIMEOUT_MS, polling=250)
    # Remembered, as the room remembers the channel: the next visit starts in Russian.
    await page.reload()
    await expect(page.get_by_label("Language you hear")).to_have_value("ru")
    assert "/languages/ru/composed.webm?" in (await page.locator("#player-video").get_attribute("src") or "")
    log = await (await client.get(f"/api/v1/recordings/{rec['id']}/downloads", headers=ADMIN)).json()
    assert any(d["via"] == "signed_url" and d["status"] in (200, 206) for d in log["items"]), log["items"]
    assert browser.page_errors == []
