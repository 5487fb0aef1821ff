"""Recordings in real Chromium: the organiser page lists every recording of a workshop (a breakout room's among
them, opened from that page with every room recorded), grants and takes access away; the player page refuses a
participant without a grant and shows nothing of the recording; the join page lists what a participant may watch."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server import keys
from signaling.audit import ADMIN as ADMIN_ACTOR
from signaling.audit import Change
from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import BrowserSession, LiveServer
from tests.e2e.pages import JOIN_TIMEOUT_MS, join, open_join_page, save_screenshot
from tests.helpers import ADMIN, add_participant, create_workshop

pytestmark = pytest.mark.browser


async def sign_in_organiser(page: Page, base_url: str, workshop_id: str) -> None:
    """The organiser page, signed in with the admin token, on one workshop."""
    await page.goto(f"{base_url}/admin#workshop/{workshop_id}")
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#workshop-card")).to_be_visible(timeout=JOIN_TIMEOUT_MS)


async def stored_recording(client: Any, workshop: dict[str, Any], participant_id: str) -> uuid.UUID:
    """A finished recording of the plenary with one audio track, made through the store (no recorder peer)."""
    store = client.app[keys.RECORDING_STORE]
    storage = client.app[keys.STORAGE]
    wid = uuid.UUID(workshop["id"])
    row = await store.create(
        workshop_id=wid,
        room_id=uuid.UUID(workshop["plenary_room_id"]),
        room_name="Plenary",
        consent_mode="explicit",
        started_by=None,
        started_by_role="admin",
        change=Change(wid, ADMIN_ACTOR, "recording.start"),
    )
    track_id = uuid.uuid4()
    key = storage.key_for(row["id"], track_id)
    path = storage.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x1a\x45\xdf\xa3 not really webm")
    await store.add_track(
        row["id"], uuid.UUID(participant_id), track_id=track_id, kind="audio", codec="opus", file_key=key, offset_s=0
    )
    await store.finish_track(track_id, state="complete", size=path.stat().st_size, duration_s=1.0, sha256="ab" * 32)
    change = Change(wid, ADMIN_ACTOR, "recording.consent")
    await store.record_consent(row["id"], uuid.UUID(participant_id), True, change=change)
    for expected, target in (("starting", "recording"), ("recording", "stopping"), ("stopping", "ready")):
        await store.transition(row["id"], expected, target)
    recording_id: uuid.UUID = row["id"]
    return recording_id


async def test_organiser_page_lists_recordings_of_the_plenary_and_of_breakout_rooms(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    wid = workshop["id"]
    ana = await add_participant(client, wid, display_name="Ana Pereira")
    ben = await add_participant(client, wid, display_name="Ben Okafor", country="NG")
    plenary = await stored_recording(client, workshop, ana["id"])
    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts", json={"name": "Rivers", "rooms": 2}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    plan = await resp.json()

    page = await browser.new_page("organiser")
    await sign_in_organiser(page, live_server.base_url, wid)
    card = page.locator("#recordings")
    plenary_item = card.locator(f'[data-recording-id="{plenary}"]')
    await expect(plenary_item).to_contain_text("Plenary")
    await expect(plenary_item).to_contain_text("ready")
    await expect(plenary_item).to_contain_text("In it: Ana Pereira")

    # Breakouts opened from the organiser page with every room recorded: each room gets its recording, grouped
    # under its plan.
    opener = card.locator(f'[data-plan-id="{plan["id"]}"]')
    await expect(opener.get_by_label("Record every room")).to_be_checked()
    await opener.get_by_role("button", name="Open the breakouts of Rivers").click()
    await expect(page.locator(".toast", has_text="Breakouts “Rivers” are open.")).to_be_visible()
    group = card.locator(f'[data-group="{plan["id"]}"]')
    await expect(group.get_by_role("heading", name="Breakouts: Rivers")).to_be_visible()
    await expect(group.locator(".rec-item")).to_have_count(2)
    for room in plan["rooms"]:
        await expect(group.locator(".rec-item", has_text=room["name"])).to_contain_text("recording")
    await expect(card.locator('[data-group="rooms"] .rec-item')).to_have_count(1)
    listed = await (await client.get(f"/api/v1/workshops/{wid}/recordings", headers=ADMIN)).json()
    assert {r["room_id"] for r in listed["items"] if r["state"] == "recording"} == {r["id"] for r in plan["rooms"]}

    # Access: given to Ben, then taken away.
    await plenary_item.get_by_label("Participant to give access to the recording of Plenary").select_option(
        label="Ben Okafor"
    )
    await plenary_item.get_by_role("button", name="Give access").click()
    await expect(page.locator(".toast", has_text="Ben Okafor can watch it now.")).to_be_visible()
    await expect(plenary_item.locator(f'.rec-grants [data-participant-id="{ben["id"]}"]')).to_be_visible()
    grants = await (await client.get(f"/api/v1/recordings/{plenary}/grants", headers=ADMIN)).json()
    assert [g["participant_id"] for g in grants["items"]] == [ben["id"]]
    await page.evaluate("() => document.getElementById('toasts')?.replaceChildren()")  # not in the picture
    shot = browser.output_dir / "organiser-recordings.png"
    await card.screenshot(path=str(shot))
    save_screenshot(shot, "screenshot-recordings.png")
    await plenary_item.get_by_role("button", name="Take access away from Ben Okafor").click()
    await expect(plenary_item.locator(".rec-grants")).to_contain_text("moderators and the organiser only")

    # Open in the player (same tab: the admin token of this tab's session goes along).
    await plenary_item.get_by_role("link", name="Open in the player").click()
    await expect(page.locator("#player-title")).to_have_text("Recording: Plenary")
    await expect(page.locator("#file-table")).to_contain_text("Ana Pereira · audio")
    await expect(page.locator("#consent-table")).to_contain_text("agreed")
    await expect(page.locator("#player-downloads")).to_be_visible()

    async def stop_all() -> None:
        listed = await (await client.get(f"/api/v1/workshops/{wid}/recordings?state=recording", headers=ADMIN)).json()
        for rec in listed["items"]:
            resp = await client.post(f"/api/v1/recordings/{rec['id']}/stop", headers=ADMIN)
            assert resp.status == 200, await resp.text()

    # A second run of the plan, recorded too: the plan's group holds both runs, each under its opening.
    await stop_all()
    base = f"/api/v1/workshops/{wid}/breakouts/{plan['id']}"
    resp = await client.post(f"{base}/close", json={"countdown_s": 0}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"{base}/open", json={"record": True}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    await page.go_back()
    await expect(group.locator(".rec-run")).to_have_count(2)
    await expect(group.locator(".rec-run h4")).to_have_count(2)
    for run in range(2):
        await expect(group.locator(".rec-run").nth(run).locator(".rec-item")).to_have_count(2)
    await expect(group.locator(".rec-run").nth(1).locator(".rec-state", has_text="recording")).to_have_count(2)
    await stop_all()
    assert browser.page_errors == []


async def test_player_refuses_a_participant_without_a_grant_and_lists_a_granted_ones_recordings(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana Pereira")
    ben = await add_participant(client, workshop["id"], display_name="Ben Okafor", country="NG")
    recording = await stored_recording(client, workshop, ana["id"])

    # Ben has no grant: a clear message, and nothing of the recording on the page.
    page = await browser.new_page("ben")
    await page.goto(f"{live_server.base_url}/recordings/{recording}#{ben['join_token']}")
    await expect(page.locator("#player-refused-message")).to_contain_text("you may not watch it")
    assert await page.locator("#player-main").is_hidden()
    assert await page.locator("#player-video").get_attribute("src") is None
    assert await page.locator("#file-table").count() == 0
    assert "Ana Pereira" not in await page.content()
    # His join page lists nothing to watch.
    await open_join_page(page, ben["join_url"], "Ben Okafor")
    assert await page.locator(".my-recordings").count() == 0

    # Ana is given access: her join page lists the recording, and its link opens the player for her.
    resp = await client.post(
        f"/api/v1/recordings/{recording}/grants", json={"participant_id": ana["id"]}, headers=ADMIN
    )
    assert resp.status == 204, await resp.text()
    page_a = await browser.new_page("ana")
    await open_join_page(page_a, ana["join_url"], "Ana Pereira")
    mine = page_a.locator(".my-recordings")
    await expect(mine).to_contain_text("Recordings you can watch")
    await mine.get_by_role("link", name="Plenary").click()
    await expect(page_a.locator("#player-title")).to_have_text("Recording: Plenary")
    await expect(page_a.locator("#file-table")).to_contain_text("Ana Pereira · audio")
    # The consent record and the download log are for moderators and the organiser only.
    assert await page_a.locator("#player-consent").is_hidden()
    assert await page_a.locator("#player-downloads").is_hidden()
    # No composer runs here: the video waits, with its progress; the page polls and shows a failure with its reason,
    # the separate files still offered.
    box = page_a.locator("#player-composition")
    await expect(box).to_contain_text("The video is waiting to be made.")
    await expect(box.get_by_role("progressbar")).to_be_visible()
    await client.app[keys.POOL].execute(
        "UPDATE recording_compositions SET state = 'failed', error = 'the camera track does not decode' "
        "WHERE recording_id = $1",
        recording,
    )
    await expect(box).to_contain_text("could not be made (the camera track does not decode)", timeout=15_000)
    await expect(page_a.locator("#file-table .track-file a.download")).to_have_count(1)

    # After a call, the end screen lists it too.
    await join(page_a, ana["join_url"], "Ana Pereira")
    await page_a.locator("#btn-leave").click()
    end = page_a.locator("#end")
    await expect(end).to_be_visible()
    await expect(end.locator(".my-recordings")).to_contain_text("Recordings you can watch")
    href = await end.get_by_role("link", name="Plenary").get_attribute("href")
    assert href == f"/recordings/{recording}#{ana['join_token']}"
    assert browser.page_errors == []


async def test_moderator_console_opens_breakouts_with_every_room_recorded(
    live_server: LiveServer, browser: BrowserSession
) -> None:
    client = live_server.client
    workshop = await create_workshop(client)
    mia = await add_participant(client, workshop["id"], display_name="Mia Moderator", country="IE", role="moderator")
    page = await browser.new_page("mia")
    await join(page, mia["join_url"], "Mia Moderator")
    await page.get_by_role("tab", name="Moderate").click()
    console = page.locator("#panel-moderate")
    await console.get_by_label("Number of rooms").fill("2")
    await console.get_by_role("button", name="Create breakout rooms").click()
    await expect(console.locator(".plan-state")).to_contain_text("prepared")
    await console.get_by_label("Record every room").check()
    async with page.expect_response(lambda r: r.url.endswith("/open")) as opened:
        await console.get_by_role("button", name="Open breakout rooms").click()
    response = await opened.value
    assert response.status == 200 and response.request.post_data_json == {"duration_s": 900, "record": True}
    await expect(console.locator(".plan-state")).to_contain_text("open")

    plans = await (await client.get(f"/api/v1/workshops/{workshop['id']}/breakouts", headers=ADMIN)).json()
    (plan,) = plans["items"]
    listed = await (await client.get(f"/api/v1/workshops/{workshop['id']}/recordings", headers=ADMIN)).json()
    assert sorted(r["room_id"] for r in listed["items"]) == sorted(r["id"] for r in plan["rooms"])
    assert {r["state"] for r in listed["items"]} == {"recording"}
    for rec in listed["items"]:
        resp = await client.post(f"/api/v1/recordings/{rec['id']}/stop", headers=ADMIN)
        assert resp.status == 200, await resp.text()
    assert browser.page_errors == []


async def test_player_page_in_russian_has_no_english_left(live_server: LiveServer, browser: BrowserSession) -> None:
    from tests.e2e.test_i18n import _english_left, _russian_page

    client = live_server.client
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ана Перейра")
    mia = await add_participant(client, workshop["id"], display_name="Мия", country="IE", role="moderator")
    recording = await stored_recording(client, workshop, ana["id"])
    page = await _russian_page(browser, "mia-ru")
    await page.goto(f"{live_server.base_url}/recordings/{recording}#{mia['join_token']}")
    await expect(page.locator("#player-title")).to_have_text("Запись: Пленарное заседание")
    await expect(page.locator("#consent-table")).to_contain_text("согласие")
    await expect(page.locator("#player-composition")).to_contain_text("Видео ждёт сборки")
    assert await _english_left(page) == []
    assert browser.page_errors == []
