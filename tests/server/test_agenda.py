"""The agenda through the real API, PostgreSQL and scheduler: sessions, the participant's zone, and a session that
opens its breakout plan at its start and closes it at its end, once, across server restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from server import keys
from server.app import create_app
from signaling.clock import ManualClock
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, bearer, create_workshop, error_of
from tests.signaling.client import join
from tests.signaling.rtc_peer import loopback_ice

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


async def started(aiohttp_client: Any, settings: Any, clock: ManualClock) -> TestClient[Any, Any]:
    app = create_app(settings)
    app[keys.CLOCK] = clock
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def actions(database_url: str, workshop_id: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT action FROM audit_entries WHERE workshop_id = $1 AND (action LIKE 'agenda.%' "
            "OR action LIKE 'breakouts.%') ORDER BY seq",
            workshop_id,
        )
    finally:
        await conn.close()
    return [r["action"] for r in rows]


async def plan_state(client: TestClient[Any, Any], wid: str, plan_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/workshops/{wid}/breakouts/{plan_id}", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_breakouts_session_opens_its_plan_at_its_start_and_closes_it_at_its_end_once_across_restarts(
    database_url: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    # A minute-long tick: the scheduler fires at startup and when poked; the test ticks it by hand in between.
    settings = make_settings(database_url, tmp_path / "var", agenda_tick_s=60)
    clock = ManualClock(T0)
    first = await started(aiohttp_client, settings, clock)
    workshop = await create_workshop(
        first, timezone="Asia/Kolkata", starts_at=T0.isoformat(), ends_at=(T0 + timedelta(hours=8)).isoformat()
    )
    wid = workshop["id"]
    people = [await add_participant(first, wid, display_name=f"Officer {i}", country="IN") for i in range(4)]
    moderator = await add_participant(first, wid, display_name="Mira", country="IN", role="moderator")
    resp = await first.post(
        f"/api/v1/workshops/{wid}/breakouts",
        json={"name": "Groups", "rooms": ["North", "South"], "strategy": "balanced"},
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    starts, ends = T0 + timedelta(minutes=30), T0 + timedelta(minutes=75)
    resp = await first.post(
        f"/api/v1/workshops/{wid}/agenda",
        json={
            "title": "Working groups",
            "kind": "breakouts",
            "starts_at": starts.isoformat(),
            "ends_at": ends.isoformat(),
            "breakout_plan_id": plan["id"],
        },
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    session = await resp.json()

    # The moderator sees what is about to happen.
    mira = await join(first, moderator["join_token"])
    upcoming = mira.welcome["agenda_next"]
    assert upcoming is not None and upcoming["session_id"] == session["id"]
    assert upcoming["edge"] == "start" and upcoming["actions"] == ["open_breakouts"]
    assert datetime.fromisoformat(upcoming["at"]) == starts

    scheduler = first.server.app[keys.AGENDA_SCHEDULER]
    clock.set(starts - timedelta(seconds=1))
    await scheduler.tick()
    assert (await plan_state(first, wid, plan["id"]))["state"] == "draft"
    clock.set(starts + timedelta(seconds=5))
    await scheduler.tick()
    opened = await plan_state(first, wid, plan["id"])
    assert opened["state"] == "open"
    assert sorted(opened["assignments"]) == sorted(p["id"] for p in people)
    msg = await mira.wait_for("agenda_next", 10)
    assert msg["next"]["edge"] == "end" and msg["next"]["actions"] == ["close_breakouts"]
    assert datetime.fromisoformat(msg["next"]["at"]) == ends
    await mira.close()
    await first.close()

    # A restart during the session: nothing fires twice.
    clock.set(starts + timedelta(minutes=20))
    second = await started(aiohttp_client, settings, clock)
    await second.server.app[keys.AGENDA_SCHEDULER].tick()
    # The edge's claim and the plan's opening are one transaction: their entries are adjacent.
    assert await actions(database_url, wid) == ["breakouts.create", "agenda.create", "agenda.start", "breakouts.open"]
    assert (await plan_state(second, wid, plan["id"]))["state"] == "open"
    await second.close()

    # The end passes while no server runs: the next one does not miss it.
    clock.set(ends + timedelta(minutes=2))
    third = await started(aiohttp_client, settings, clock)
    await third.server.app[keys.AGENDA_SCHEDULER].tick()
    assert (await plan_state(third, wid, plan["id"]))["state"] == "closed"
    await third.server.app[keys.AGENDA_SCHEDULER].tick()
    resp = await third.get(f"/api/v1/workshops/{wid}/agenda/{session['id']}", headers=ADMIN)
    fired = await resp.json()
    assert fired["started_fired_at"] is not None and fired["ended_fired_at"] is not None
    await third.close()
    fourth = await started(aiohttp_client, settings, clock)
    await fourth.server.app[keys.AGENDA_SCHEDULER].tick()
    history = await actions(database_url, wid)
    assert history.count("agenda.start") == 1 and history.count("breakouts.open") == 1
    assert history.count("agenda.end") == 1 and history.count("breakouts.close") == 1
    assert history.index("breakouts.close") > history.index("breakouts.open")


async def test_a_held_session_fires_nothing_until_released(
    database_url: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path / "var", agenda_tick_s=60)
    clock = ManualClock(T0)
    client = await started(aiohttp_client, settings, clock)
    wid = (await create_workshop(client))["id"]
    moderator = await add_participant(client, wid, display_name="Mira", country="BE", role="moderator")
    await add_participant(client, wid, display_name="Ana", country="PT")
    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts", json={"name": "G", "rooms": ["A"], "strategy": "random"}, headers=ADMIN
    )
    plan = await resp.json()
    resp = await client.post(
        f"/api/v1/workshops/{wid}/agenda",
        json={
            "title": "Groups",
            "kind": "breakouts",
            "starts_at": (T0 + timedelta(minutes=10)).isoformat(),
            "ends_at": (T0 + timedelta(minutes=40)).isoformat(),
            "breakout_plan_id": plan["id"],
        },
        headers=ADMIN,
    )
    session = await resp.json()
    url = f"/api/v1/workshops/{wid}/agenda/{session['id']}/hold"
    resp = await client.post(url, json={"held": True}, headers=bearer(moderator["join_token"]))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["held"] is True
    scheduler = client.server.app[keys.AGENDA_SCHEDULER]
    clock.set(T0 + timedelta(minutes=15))
    await scheduler.tick()
    assert (await plan_state(client, wid, plan["id"]))["state"] == "draft"
    resp = await client.post(url, json={"held": False}, headers=bearer(moderator["join_token"]))
    assert resp.status == 200
    await scheduler.tick()
    assert (await plan_state(client, wid, plan["id"]))["state"] == "open"


async def test_agenda_sessions_are_listed_by_start_paged_and_validated(client: TestClient[Any, Any]) -> None:
    wid = (await create_workshop(client))["id"]
    ana = await add_participant(client, wid)
    base = datetime(2026, 12, 1, 9, 0, tzinfo=ZoneInfo("Europe/Brussels"))
    for i in (2, 0, 1):
        resp = await client.post(
            f"/api/v1/workshops/{wid}/agenda",
            json={
                "title": f"Session {i}",
                "kind": "plenary",
                "starts_at": (base + timedelta(hours=i)).isoformat(),
                "ends_at": (base + timedelta(hours=i, minutes=50)).isoformat(),
            },
            headers=ADMIN,
        )
        assert resp.status == 201, await resp.text()
    url = f"/api/v1/workshops/{wid}/agenda"
    first = await (await client.get(f"{url}?limit=2", headers=bearer(ana["join_token"]))).json()
    assert [s["title"] for s in first["items"]] == ["Session 0", "Session 1"]
    assert first["items"][0]["starts_at"] == "2026-12-01T08:00:00Z"  # UTC, whatever offset came in
    second = await (
        await client.get(f"/api/v1/workshops/{wid}/agenda?limit=2&cursor={first['next_cursor']}", headers=ADMIN)
    ).json()
    assert [s["title"] for s in second["items"]] == ["Session 2"] and second["next_cursor"] is None
    bad = {"title": "x", "kind": "plenary", "starts_at": base.isoformat(), "ends_at": base.isoformat()}
    await error_of(await client.post(url, json=bad, headers=ADMIN), 400, "invalid_argument")
    await error_of(
        await client.post(
            f"/api/v1/workshops/{wid}/agenda",
            json={**bad, "ends_at": (base + timedelta(hours=1)).isoformat(), "kind": "lunch"},
            headers=ADMIN,
        ),
        400,
        "invalid_argument",
    )
    # A participant reads the agenda but does not write it.
    await error_of(
        await client.post(
            f"/api/v1/workshops/{wid}/agenda",
            json={**bad, "ends_at": (base + timedelta(hours=1)).isoformat()},
            headers=bearer(ana["join_token"]),
        ),
        403,
        "permission_denied",
    )


async def test_a_participant_sets_their_own_time_zone_and_the_organiser_sees_it_on_the_roster(
    client: TestClient[Any, Any],
) -> None:
    wid = (await create_workshop(client))["id"]
    ana = await add_participant(client, wid)
    resp = await client.patch("/api/v1/me", json={"timezone": "Asia/Seoul"}, headers=bearer(ana["join_token"]))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["timezone"] == "Asia/Seoul"
    roster = await (await client.get(f"/api/v1/workshops/{wid}/participants", headers=ADMIN)).json()
    assert roster["items"][0]["timezone"] == "Asia/Seoul"
    await error_of(
        await client.patch("/api/v1/me", json={"timezone": "Mars/Olympus"}, headers=bearer(ana["join_token"])),
        400,
        "invalid_argument",
    )
    await error_of(await client.patch("/api/v1/me", json={"timezone": "UTC"}, headers=ADMIN), 403, "permission_denied")
    resp = await client.patch(
        f"/api/v1/workshops/{wid}/participants/{ana['id']}", json={"timezone": "Europe/Istanbul"}, headers=ADMIN
    )
    assert resp.status == 200 and (await resp.json())["timezone"] == "Europe/Istanbul"


async def test_a_roster_import_carries_each_participants_time_zone_and_refuses_an_unknown_one(
    client: TestClient[Any, Any],
) -> None:
    wid = (await create_workshop(client))["id"]
    url = f"/api/v1/workshops/{wid}/participants/import"
    csv_headers = {**ADMIN, "Content-Type": "text/csv"}
    bad = "display_name,country,timezone\nAna,PT,Europe/Lisbon\nMin-jun,KR,Asia/Sejong\n"
    error = await error_of(await client.post(url, data=bad, headers=csv_headers), 400, "invalid_argument")
    assert [(d["line"], d["field"]) for d in error["details"]] == [(3, "timezone")]
    good = "display_name,country,timezone\nAna,PT,Europe/Lisbon\nMin-jun,KR,Asia/Seoul\nZed,DE,\n"
    resp = await client.post(url, data=good, headers=csv_headers)
    assert resp.status == 201, await resp.text()
    zones = {p["display_name"]: p["timezone"] for p in (await resp.json())["items"]}
    assert zones == {"Ana": "Europe/Lisbon", "Min-jun": "Asia/Seoul", "Zed": None}


async def test_a_recorded_session_starts_recording_the_plenary_at_its_start_and_stops_at_its_end(
    database_url: str, aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)  # the server's recorder peer is real aiortc, on 127.0.0.1
    settings = make_settings(database_url, tmp_path / "var", agenda_tick_s=60)
    clock = ManualClock(T0)
    client = await started(aiohttp_client, settings, clock)
    workshop = await create_workshop(client)
    wid = workshop["id"]
    resp = await client.post(
        f"/api/v1/workshops/{wid}/agenda",
        json={
            "title": "Keynote",
            "kind": "plenary",
            "starts_at": (T0 + timedelta(minutes=5)).isoformat(),
            "ends_at": (T0 + timedelta(minutes=50)).isoformat(),
            "record": True,
        },
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    scheduler = client.server.app[keys.AGENDA_SCHEDULER]
    clock.set(T0 + timedelta(minutes=5))
    await scheduler.tick()
    listed = await (await client.get(f"/api/v1/workshops/{wid}/recordings", headers=ADMIN)).json()
    (recording,) = listed["items"]
    assert recording["room_id"] == workshop["plenary_room_id"]
    assert recording["state"] in ("starting", "recording")
    clock.set(T0 + timedelta(minutes=50))
    await scheduler.tick()
    listed = await (await client.get(f"/api/v1/workshops/{wid}/recordings", headers=ADMIN)).json()
    (after,) = listed["items"]
    assert after["id"] == recording["id"] and after["state"] not in ("starting", "recording")
    assert (await actions(database_url, wid)).count("agenda.end") == 1


async def test_moving_a_running_sessions_end_later_moves_its_breakouts_deadline(
    database_url: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path / "var", agenda_tick_s=60)
    # On today's time: the breakouts' own deadline runs on the system clock.
    now = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(now)
    client = await started(aiohttp_client, settings, clock)
    wid = (await create_workshop(client))["id"]
    await add_participant(client, wid)
    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts", json={"name": "G", "rooms": ["A"], "strategy": "random"}, headers=ADMIN
    )
    plan = await resp.json()
    resp = await client.post(
        f"/api/v1/workshops/{wid}/agenda",
        json={
            "title": "Groups",
            "kind": "breakouts",
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(minutes=30)).isoformat(),
            "breakout_plan_id": plan["id"],
        },
        headers=ADMIN,
    )
    session = await resp.json()
    await client.server.app[keys.AGENDA_SCHEDULER].tick()
    opened = await plan_state(client, wid, plan["id"])
    assert opened["state"] == "open"
    new_end = now + timedelta(minutes=45)
    resp = await client.patch(
        f"/api/v1/workshops/{wid}/agenda/{session['id']}", json={"ends_at": new_end.isoformat()}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    extended = await plan_state(client, wid, plan["id"])
    assert extended["state"] == "open"
    moved = datetime.fromisoformat(extended["ends_at"]) - datetime.fromisoformat(opened["ends_at"])
    assert timedelta(minutes=14) < moved <= timedelta(minutes=16)


async def test_two_servers_ticking_at_once_fire_a_session_start_once(
    database_url: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path / "var", agenda_tick_s=60)
    clock = ManualClock(T0)
    one = await started(aiohttp_client, settings, clock)
    two = await started(aiohttp_client, settings, clock)
    wid = (await create_workshop(one))["id"]
    await add_participant(one, wid)
    resp = await one.post(
        f"/api/v1/workshops/{wid}/breakouts", json={"name": "G", "rooms": ["A"], "strategy": "random"}, headers=ADMIN
    )
    plan = await resp.json()
    resp = await one.post(
        f"/api/v1/workshops/{wid}/agenda",
        json={
            "title": "Groups",
            "kind": "breakouts",
            "starts_at": (T0 + timedelta(minutes=1)).isoformat(),
            "ends_at": (T0 + timedelta(minutes=30)).isoformat(),
            "breakout_plan_id": plan["id"],
        },
        headers=ADMIN,
    )
    assert resp.status == 201
    clock.set(T0 + timedelta(minutes=2))
    fired = await asyncio.gather(
        one.server.app[keys.AGENDA_SCHEDULER].tick(), two.server.app[keys.AGENDA_SCHEDULER].tick()
    )
    # The background loop (poked by the POST) may have won the claim first: either way, one firing in all.
    assert sum(len(f) for f in fired) <= 1
    history = await actions(database_url, wid)
    assert history.count("agenda.start") == 1 and history.count("breakouts.open") == 1
    assert (await plan_state(two, wid, plan["id"]))["state"] == "open"
