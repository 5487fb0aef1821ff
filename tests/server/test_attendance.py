"""Attendance: visits from joins, moves, drops, resumes and expiries (a clock the test sets), and the report."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

import signaling.store
from server import keys
from server.app import SIGNALING_STORE, create_app
from server.attendance import Person, Visit, build_report, merge
from server.heartbeat import Heartbeat
from server.migrate import load_migrations
from signaling.clock import ManualClock
from signaling.service import Attendance
from signaling.store import PgSignalingStore
from tests.conftest import PgCluster, make_settings
from tests.helpers import ADMIN, add_participant, bearer, create_workshop
from tests.signaling.client import SignalClient, connect, join

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=2)
WORKSHOP = {"starts_at": START.isoformat(), "ends_at": END.isoformat(), "timezone": "Europe/Lisbon"}


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


# The report alone --------------------------------------------------------------------------------

PLENARY, ROOM = uuid.uuid4(), uuid.uuid4()


def person(name: str, country: str, org: str = "Police") -> Person:
    return Person(id=uuid.uuid4(), display_name=name, country=country, organisation=org, role="participant")


def visit(who: Person, room: uuid.UUID, start: float, end: float | None, drops: int = 0) -> Visit:
    return Visit(
        participant_id=who.id,
        room_id=room,
        room_name="Plenary" if room == PLENARY else "Room 1",
        started_at=at(start),
        ended_at=at(end) if end is not None else None,
        ended_how="left" if end is not None else None,
        drops=drops,
    )


def test_union_of_visits_counts_overlaps_once_and_drops_empty_ones() -> None:
    assert merge([(at(0), at(10)), (at(5), at(20)), (at(30), at(30)), (at(20), at(25))]) == [(at(0), at(25))]


def test_report_counts_presence_within_the_schedule_and_groups_by_country_and_organisation() -> None:
    ana, ben, cleo, dan = person("Ana", "PT"), person("Ben", "DE", "Customs"), person("Cleo", "PT"), person("Dan", "DE")
    visits = [
        visit(ana, PLENARY, -10, 30),  # ten minutes before the start: present, not in the schedule
        visit(ana, ROOM, 30, 90, drops=2),
        visit(ana, PLENARY, 90, 120),
        visit(ben, PLENARY, 60, None),  # still in at "now" (100 minutes)
        visit(cleo, PLENARY, 0, 15),
    ]
    report = build_report(
        [ana, ben, cleo, dan], visits, scheduled=(START, END), min_share=0.5, step_s=1800, now=at(100)
    )
    rows = {r.person.display_name: r for r in report.people}
    assert rows["Ana"].seconds_present == 130 * 60
    assert rows["Ana"].seconds_in_schedule == 120 * 60 and rows["Ana"].share == 1.0
    assert (rows["Ana"].first_join, rows["Ana"].last_leave, rows["Ana"].drops) == (at(-10), at(120), 2)
    assert {r.room_name: r.seconds for r in rows["Ana"].rooms} == {"Plenary": 70 * 60, "Room 1": 60 * 60}
    assert rows["Ben"].present_now and rows["Ben"].last_leave is None and rows["Ben"].seconds_present == 40 * 60
    assert rows["Dan"].visits == 0 and rows["Dan"].first_join is None
    countries = {g.key: g for g in report.countries}
    assert (countries["PT"].invited, countries["PT"].present, countries["PT"].present_min_share) == (2, 2, 1)
    assert countries["PT"].average_minutes == (130 + 15) / 2
    assert (countries["DE"].invited, countries["DE"].present, countries["DE"].present_min_share) == (2, 1, 0)
    orgs = {g.key: g for g in report.organisations}
    assert (orgs["Police"].invited, orgs["Customs"].invited) == (3, 1)
    # Every half hour from the scheduled start, from before the first join (ten minutes early) to the end; an open
    # visit counts up to now.
    assert [(p.at, p.by_country) for p in report.timeline] == [
        (at(-30), {"DE": 0, "PT": 0}),
        (at(0), {"DE": 0, "PT": 2}),
        (at(30), {"DE": 0, "PT": 1}),
        (at(60), {"DE": 1, "PT": 1}),
        (at(90), {"DE": 1, "PT": 1}),
        (at(120), {"DE": 0, "PT": 0}),
    ]


# Through the server ------------------------------------------------------------------------------


async def visits_of(database_url: str, workshop_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(
            await conn.fetch(
                "SELECT participant_id::text AS pid, room_name, started_at, ended_at, ended_how, drops FROM visits"
                " WHERE workshop_id = $1 ORDER BY started_at, participant_id",
                uuid.UUID(workshop_id),
            )
        )
    finally:
        await conn.close()


async def test_visits_follow_joins_moves_drops_resumes_and_expiry_and_the_report_adds_them_up(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    clock = ManualClock(at(0))
    app = create_app(make_settings(database_url, tmp_path / "var", resume_grace_s=0.3))
    app[keys.CLOCK] = clock
    client: TestClient[Any, Any] = await aiohttp_client(app)
    workshop = await create_workshop(client, **WORKSHOP)
    wid = workshop["id"]
    organiser = await add_participant(client, wid, display_name="Olga Organiser", country="LT", role="organiser")
    ana = await add_participant(client, wid, display_name="Ana Żółć", country="PT", organisation="PJ")
    ben = await add_participant(client, wid, display_name="Ben", country="DE", organisation="BKA")
    await add_participant(client, wid, display_name="Never", country="DE", organisation="BKA")

    o = await join(client, organiser["join_token"])
    a = await join(client, ana["join_token"])
    clock.set(at(10))
    b = await join(client, ben["join_token"])
    await o.wait_for("peer_joined")

    # Ana drops at 20 and resumes at 21: one visit, one drop.
    clock.set(at(20))
    a.abort()
    await o.wait_for("peer_reconnecting", peer_id=ana["id"])
    clock.set(at(21))
    a = await join(client, ana["join_token"], resume=a.welcome["resume"])
    assert a.welcome["resumed"]

    # Ana is moved to a breakout at 30 and back at 60.
    resp = await client.post(
        f"/api/v1/workshops/{wid}/breakouts",
        json={"name": "Cases", "rooms": ["Breakout A"], "assignments": {ana["id"]: 0}, "countdown_s": 0},
        headers=ADMIN,
    )
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    room = plan["rooms"][0]
    clock.set(at(30))
    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", json={}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert (await a.wait_for("moved"))["room"]["id"] == room["id"]
    clock.set(at(60))
    resp = await client.post(f"/api/v1/workshops/{wid}/breakouts/{plan['id']}/close", json={}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert (await a.wait_for("moved"))["room"]["id"] == workshop["plenary_room_id"]

    # Ben drops at 70 and does not come back: his visit ends at the drop.
    clock.set(at(70))
    b.abort()
    await o.wait_for("peer_reconnecting", peer_id=ben["id"])
    clock.set(at(75))
    await o.wait_for("peer_left", peer_id=ben["id"], reason="timeout")
    # Ana leaves at 90; the organiser is still in at 100, when the report is read.
    clock.set(at(90))
    await a.send({"type": "leave"})
    await a.wait_closed()
    clock.set(at(100))
    await asyncio.wait_for(client.server.app[SIGNALING_STORE].flushed(), 10)

    rows = await visits_of(database_url, wid)
    got = {(r["pid"], r["room_name"], r["started_at"], r["ended_at"], r["ended_how"], r["drops"]) for r in rows}
    assert got == {
        (organiser["id"], "Plenary", at(0), None, None, 0),
        (ana["id"], "Plenary", at(0), at(30), "moved", 1),
        (ben["id"], "Plenary", at(10), at(70), "expired", 1),
        (ana["id"], "Breakout A", at(30), at(60), "moved", 0),
        (ana["id"], "Plenary", at(60), at(90), "left", 0),
    }

    resp = await client.get(f"/api/v1/workshops/{wid}/attendance?min_share=0.5&step_s=1800", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    people = {p["display_name"]: p for p in report["people"]}
    assert people["Ana Żółć"] | {"rooms": None} == people["Ana Żółć"] | {
        "first_join": at(0).isoformat().replace("+00:00", "Z"),
        "last_leave": at(90).isoformat().replace("+00:00", "Z"),
        "present_now": False,
        "seconds_present": 90 * 60,
        "minutes_present": 90.0,
        "share_of_schedule": 0.75,
        "drops": 1,
        "visits": 3,
        "rooms": None,
    }
    assert {r["room_name"]: r["seconds"] for r in people["Ana Żółć"]["rooms"]} == {
        "Plenary": 60 * 60,
        "Breakout A": 30 * 60,
    }
    assert (people["Ben"]["seconds_present"], people["Ben"]["drops"]) == (60 * 60, 1)
    assert people["Olga Organiser"]["present_now"] and people["Olga Organiser"]["seconds_present"] == 100 * 60
    assert people["Never"]["visits"] == 0
    countries = {c["name"]: c for c in report["countries"]}
    # Ben: 60 of 120 minutes, just at the threshold.
    assert countries["DE"] == {"name": "DE", "invited": 2, "present": 1, "present_min_share": 1, "average_minutes": 60}
    assert countries["PT"]["present_min_share"] == 1
    assert [(p["at"][11:16], p["by_country"]) for p in report["timeline"]] == [
        ("09:00", {"DE": 0, "LT": 1, "PT": 1}),
        ("09:30", {"DE": 1, "LT": 1, "PT": 1}),
        ("10:00", {"DE": 1, "LT": 1, "PT": 1}),
        ("10:30", {"DE": 0, "LT": 1, "PT": 0}),  # Ana left at 10:30 sharp
        ("11:00", {"DE": 0, "LT": 0, "PT": 0}),  # after now (10:40): nobody yet
    ]

    resp = await client.get(f"/api/v1/workshops/{wid}/attendance.csv?table=countries&min_share=0.5", headers=ADMIN)
    assert resp.status == 200 and resp.content_type == "text/csv"
    table = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(r["country"], r["invited"], r["present"], r["present_min_share"]) for r in table] == [
        ("DE", "2", "1", "1"),
        ("LT", "1", "1", "1"),
        ("PT", "1", "1", "1"),
    ]
    resp = await client.get(f"/api/v1/workshops/{wid}/attendance.csv?table=rooms", headers=ADMIN)
    rooms = list(csv.DictReader(io.StringIO(await resp.text())))
    assert sorted((r["display_name"], r["room_name"], r["seconds"]) for r in rooms) == [
        ("Ana Żółć", "Breakout A", "1800"),
        ("Ana Żółć", "Plenary", "3600"),
        ("Ben", "Plenary", "3600"),
        ("Olga Organiser", "Plenary", "6000"),
    ]
    resp = await client.get(f"/api/v1/workshops/{wid}/attendance.csv", headers=bearer(organiser["join_token"]))
    people_csv = list(csv.DictReader(io.StringIO(await resp.text())))
    assert {r["display_name"]: r["seconds_present"] for r in people_csv}["Ana Żółć"] == "5400"
    await o.close()


async def test_attendance_parameters_are_validated(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client, **WORKSHOP)
    base = f"/api/v1/workshops/{workshop['id']}/attendance"
    for query in ("min_share=2", "min_share=abc", "step_s=0", "step_s=1.5", "step_s=1"):
        resp = await client.get(f"{base}?{query}", headers=ADMIN)
        assert resp.status == 400, (query, await resp.text())
        assert (await resp.json())["error"]["code"] == "invalid_argument"
    resp = await client.get(f"{base}.csv?table=secrets", headers=ADMIN)
    assert resp.status == 400


async def test_a_long_backlog_refuses_new_joins_but_still_records_the_leaves_of_those_in(
    client: TestClient[Any, Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Back-pressure instead of dropping: nothing of what happens to the people in is lost."""
    workshop = await create_workshop(client, **WORKSHOP)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    ben = await add_participant(client, workshop["id"], display_name="Ben", country="DE")
    a = await join(client, ana["join_token"])
    monkeypatch.setattr(signaling.store, "MAX_PENDING", 0)  # as if the writer were 100,000 events behind
    sc = SignalClient(await connect(client))
    await sc.send({"type": "hello", "protocol": [1], "token": ben["join_token"], "request_id": "h"})
    refused = await sc.recv()
    assert (refused["type"], refused["code"], refused["request_id"]) == ("error", "unavailable", "h")
    assert await sc.wait_closed() == 1001
    await a.send({"type": "leave"})
    assert await a.wait_closed() == 1000
    monkeypatch.setattr(signaling.store, "MAX_PENDING", 100_000)
    b = await join(client, ben["join_token"])
    await b.send({"type": "leave"})
    assert await b.wait_closed() == 1000
    await asyncio.wait_for(client.server.app[SIGNALING_STORE].flushed(), 10)
    rows = await visits_of(database_url, workshop["id"])
    assert [(r["pid"], r["ended_how"]) for r in rows] == [(ana["id"], "left"), (ben["id"], "left")]


async def test_a_heartbeat_never_claims_more_than_is_written(database_url: str) -> None:
    """After a crash the record is complete up to the last beat: a beat is at most the oldest queued event."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = PgSignalingStore(pool)  # its writer not started: whatever is recorded stays queued
        clock = ManualClock(at(10))
        heartbeat = Heartbeat(pool, 1.0, clock=clock, written_until=store.oldest_pending)
        await heartbeat.beat()
        assert await heartbeat.last_alive() == at(10)
        ids = [str(uuid.uuid4()) for _ in range(3)]
        store.record_attendance(Attendance(ids[0], ids[1], ids[2], "join", at(11), "joined", ids[0], "Plenary"))
        clock.set(at(15))
        await heartbeat.beat()
        assert await heartbeat.last_alive() == at(11)
        store.start()
        await asyncio.wait_for(store.flushed(), 10)
        await heartbeat.beat()
        assert await heartbeat.last_alive() == at(15)
        await store.close()
    finally:
        await pool.close()


async def test_attendance_recorded_before_visits_existed_becomes_visits(pg_cluster: PgCluster) -> None:
    """The migration turns each old join, up to the participant's next event, into a visit."""
    name = f"rt_backfill_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_cluster.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(pg_cluster.dsn(name))
        try:
            migrations = load_migrations()
            (records,) = [m for m in migrations if m.name == "records"]
            for m in migrations:
                if m.version < records.version:
                    await conn.execute(m.sql)
            wid = await conn.fetchval(
                "INSERT INTO workshops (title, timezone, starts_at, ends_at) VALUES ('Old', 'UTC', $1, $2)"
                " RETURNING id",
                START,
                END,
            )
            room = await conn.fetchval(
                "INSERT INTO rooms (workshop_id, name, kind, capacity) VALUES ($1, 'Plenary', 'plenary', 10)"
                " RETURNING id",
                wid,
            )
            ana, ben = [
                await conn.fetchval(
                    "INSERT INTO participants (workshop_id, display_name, country, role) VALUES ($1, $2, 'PT', "
                    "'participant') RETURNING id",
                    wid,
                    who,
                )
                for who in ("Ana", "Ben")
            ]
            events = [
                (ana, "join", at(0), "joined"),
                (ben, "join", at(5), "joined"),
                (ana, "leave", at(30), "timeout"),
                (ana, "join", at(40), "joined"),
                (ana, "leave", at(50), "left"),
            ]
            for pid, event, when, reason in events:
                await conn.execute(
                    "INSERT INTO attendance_events (workshop_id, room_id, participant_id, event, at, reason)"
                    " VALUES ($1, $2, $3, $4, $5, $6)",
                    wid,
                    room,
                    pid,
                    event,
                    when,
                    reason,
                )
            await conn.execute(records.sql)
            rows = await conn.fetch(
                "SELECT participant_id, room_name, started_at, ended_at, ended_how FROM visits ORDER BY started_at"
            )
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    assert [tuple(r) for r in rows] == [
        (ana, "Plenary", at(0), at(30), "expired"),
        (ben, "Plenary", at(5), None, None),  # still open: the next start closes it as after a crash
        (ana, "Plenary", at(40), at(50), "left"),
    ]
