"""The reference workshop, for attendance: 60 people from 20 countries in a real server process, breakouts opened
and closed, drops that resume and drops that expire, people leaving and coming back, and a SIGKILL of the server
in the middle. The server's clock is a file the test writes (ROUNDTABLE_CLOCK_FILE), so every event happens at a
second the test chose, and the report must match the test's own account of the day to the second: per person, per
room, per country, and over time. Nobody waits for time to pass but the resume grace period of one expiry.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.server.test_process import ROOT, Server, _env, free_port
from tests.signaling.client import SignalClient

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
COUNTRIES = ["AR", "BR", "CA", "CN", "DE", "EG", "ES", "FR", "GH", "ID",
             "IN", "IT", "JP", "KE", "MX", "NG", "PH", "PL", "US", "ZA"]  # fmt: skip
T0 = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
SCHEDULED_S = 3 * 3600
GRACE_S = 3.0
MIN_SHARE = 0.25
STEP_S = 300
WAIT_S = 30


def t(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


class FileClock:
    """The server's clock: the test writes the time, atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.now = 0

    def set(self, seconds: int) -> None:
        assert seconds >= self.now, "the clock only moves forward"
        self.now = seconds
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(t(seconds).isoformat(), encoding="utf-8")
        os.replace(tmp, self.path)


@dataclass
class Stay:
    room: str
    start: int
    end: int | None = None


@dataclass
class Account:
    """What the test did to one person, as visits."""

    stays: list[Stay] = field(default_factory=list)
    drops: int = 0

    def enter(self, room: str, at: int) -> None:
        assert not self.stays or self.stays[-1].end is not None
        self.stays.append(Stay(room, at))

    def end(self, at: int) -> None:
        assert self.stays[-1].end is None
        self.stays[-1].end = at

    def move(self, room: str, at: int) -> None:
        self.end(at)
        self.enter(room, at)


class Proc:
    """`python -m server` against the test's database, its log drained so it never blocks on a full pipe."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, database_url: str, data_dir: Path, clock: Path) -> Proc:
        port = free_port()
        env = _env(
            data_dir,
            port,
            ROUNDTABLE_DATABASE_URL=database_url,
            ROUNDTABLE_ADMIN_TOKEN=ADMIN_TOKEN,
            ROUNDTABLE_SECRET_KEY=SECRET_KEY,
            ROUNDTABLE_SFU="off",
            ROUNDTABLE_CLOCK_FILE=str(clock),
            ROUNDTABLE_SERVER_HEARTBEAT_S="0.1",
            ROUNDTABLE_RESUME_GRACE_S=str(GRACE_S),
            ROUNDTABLE_LEASE_TTL_S="1.5",  # a dead node is known dead soon: the places it left are swept then
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        server = Server(proc, port)
        await server.read_until("Running on")
        self = cls(server)
        self._drain = asyncio.create_task(self._read_rest())
        return self

    async def _read_rest(self) -> None:
        stderr = self.server.proc.stderr
        assert stderr is not None
        while line := await stderr.readline():
            self.server.output.append(line.decode())

    @property
    def url(self) -> str:
        return self.server.url

    async def kill(self) -> None:
        self.server.proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(WAIT_S):
            await self.server.proc.wait()
        await self._finish()

    async def stop(self) -> int:
        self.server.proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(WAIT_S):
            code = await self.server.proc.wait()
        await self._finish()
        return code

    async def _finish(self) -> None:
        if self._drain is not None:
            async with asyncio.timeout(WAIT_S):
                await self._drain

    def log(self) -> str:
        return "".join(self.server.output)


@pytest.fixture
async def procs() -> AsyncIterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        if p.server.proc.returncode is None:
            await p.kill()


async def connect(http: aiohttp.ClientSession, url: str, token: str, resume: str | None = None) -> SignalClient:
    sc = SignalClient(await http.ws_connect(f"{url}/ws"))
    hello: dict[str, Any] = {"type": "hello", "protocol": [1], "token": token}
    if resume is not None:
        hello["resume"] = resume
    await sc.send(hello)
    sc.welcome = await sc.recv()
    assert sc.welcome["type"] == "welcome", sc.welcome
    return sc


# Test-only: the server's heartbeat writes, as events (see tests/server/test_crash_recovery.py).
NOTIFY_HEARTBEAT = """
CREATE FUNCTION rt_test_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('rt_test', TG_TABLE_NAME); RETURN NEW; END $$;
CREATE TRIGGER rt_test_heartbeat AFTER INSERT OR UPDATE ON server_heartbeat FOR EACH ROW
    EXECUTE FUNCTION rt_test_notify();
"""


class Heartbeats:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def __call__(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.queue.put_nowait(payload)

    async def reach(self, db: asyncpg.Connection, at: datetime) -> None:
        """Until the server's heartbeat says it was alive at `at` (it never claims more than is written)."""
        async with asyncio.timeout(WAIT_S):
            while await db.fetchval("SELECT alive_at FROM server_heartbeat") != at:
                await self.queue.get()


def expected_report(
    people: list[dict[str, Any]], accounts: dict[str, Account], room_names: dict[str, str]
) -> dict[str, Any]:
    """The report, computed from the test's own account."""
    per_person = {}
    for p in people:
        account = accounts.get(p["id"], Account())
        seconds = sum(s.end - s.start for s in account.stays if s.end is not None)
        rooms: dict[str, int] = defaultdict(int)
        for s in account.stays:
            assert s.end is not None
            rooms[room_names[s.room]] += s.end - s.start
        per_person[p["id"]] = {
            "first_join": t(account.stays[0].start) if account.stays else None,
            "last_leave": t(max(s.end for s in account.stays if s.end is not None)) if account.stays else None,
            "seconds_present": seconds,
            "drops": account.drops,
            "visits": len(account.stays),
            "rooms": dict(rooms),
        }
    countries = {}
    for c in COUNTRIES:
        members = [p for p in people if p["country"] == c]
        present = [per_person[p["id"]] for p in members if per_person[p["id"]]["visits"]]
        countries[c] = {
            "invited": len(members),
            "present": len(present),
            "present_min_share": sum(1 for r in present if r["seconds_present"] >= MIN_SHARE * SCHEDULED_S),
            "average_minutes": round(sum(r["seconds_present"] for r in present) / len(present) / 60, 2)
            if present
            else 0.0,
        }
    timeline = []
    country_of = {p["id"]: p["country"] for p in people}
    for k in range(SCHEDULED_S // STEP_S + 1):
        at = k * STEP_S
        counts = dict.fromkeys(COUNTRIES, 0)
        for pid, account in accounts.items():
            if any(s.start <= at < (s.end or 0) for s in account.stays):
                counts[country_of[pid]] += 1
        timeline.append((t(at), counts))
    return {"people": per_person, "countries": countries, "timeline": timeline}


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_reference_workshop_attendance_matches_what_happened_to_the_second_through_a_sigkill(
    database_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    clock = FileClock(tmp_path / "clock")
    clock.set(0)
    server = await Proc.start(database_url, tmp_path / "var", clock.path)
    procs.append(server)
    db = await asyncpg.connect(database_url)
    await db.execute(NOTIFY_HEARTBEAT)
    beats = Heartbeats()
    await db.add_listener("rt_test", beats)
    accounts: dict[str, Account] = defaultdict(Account)
    clients: dict[str, SignalClient] = {}
    http = aiohttp.ClientSession()
    try:
        body = {
            "title": "Rivers without borders",
            "timezone": "Europe/Lisbon",
            "starts_at": t(0).isoformat(),
            "ends_at": t(SCHEDULED_S).isoformat(),
        }
        async with http.post(f"{server.url}/api/v1/workshops", json=body, headers=ADMIN) as resp:
            assert resp.status == 201, await resp.text()
            workshop = await resp.json()
        wid, plenary = workshop["id"], workshop["plenary_room_id"]
        rows = ["display_name,country,organisation,email,role"]
        for c in COUNTRIES:
            for i in range(3):
                role = "organiser" if not rows[1:] else ("moderator" if len(rows) <= 3 else "participant")
                rows.append(f"Officer {c}{i},{c},{'Customs' if i == 2 else 'Police'} {c},,{role}")
        async with http.post(
            f"{server.url}/api/v1/workshops/{wid}/participants/import",
            data="\n".join(rows) + "\n",
            headers={**ADMIN, "Content-Type": "text/csv"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            people: list[dict[str, Any]] = (await resp.json())["items"]
        assert len(people) == 60 and len({p["country"] for p in people}) == 20
        by_id = {p["id"]: p for p in people}
        organiser = people[0]
        absent = {p["id"] for p in people[-4:]}  # invited, never came
        joiners = [p for p in people if p["id"] not in absent]

        # 09:00:00 + k s: everyone who comes joins the plenary, one a second.
        for k, p in enumerate(joiners):
            clock.set(k)
            clients[p["id"]] = await connect(http, server.url, p["join_token"])
            accounts[p["id"]].enter(plenary, k)

        # 09:10: four breakouts, the participants drawn at random; the organiser and moderators stay.
        async with http.post(
            f"{server.url}/api/v1/workshops/{wid}/breakouts",
            json={"name": "Case studies", "rooms": 4, "strategy": "random", "countdown_s": 0},
            headers=ADMIN,
        ) as resp:
            assert resp.status == 201, await resp.text()
            plan = await resp.json()
        room_of = {pid: r["id"] for r in plan["rooms"] for pid in r["participant_ids"]}
        room_names = {plenary: "Plenary", **{r["id"]: r["name"] for r in plan["rooms"]}}
        clock.set(600)
        async with http.post(
            f"{server.url}/api/v1/workshops/{wid}/breakouts/{plan['id']}/open", json={}, headers=ADMIN
        ) as resp:
            assert resp.status == 200, await resp.text()
        for pid, sc in clients.items():
            if pid in room_of:
                moved = await sc.wait_for("moved", WAIT_S)
                assert moved["room"]["id"] == room_of[pid]
                accounts[pid].move(room_of[pid], 600)
        in_room: dict[str, list[str]] = defaultdict(list)
        for pid in clients:
            if pid in room_of:
                in_room[room_of[pid]].append(pid)
        rooms = sorted(in_room, key=lambda r: room_names[r])
        assert all(len(in_room[r]) >= 3 for r in rooms)

        # 09:15: A drops in a breakout and resumes at 09:16; the visit goes on, with one drop.
        a, a_watch = in_room[rooms[0]][0], in_room[rooms[0]][1]
        clock.set(900)
        clients[a].abort()
        await clients[a_watch].wait_for("peer_reconnecting", WAIT_S, peer_id=a)
        accounts[a].drops += 1
        clock.set(960)
        clients[a] = await connect(http, server.url, by_id[a]["join_token"], resume=clients[a].welcome["resume"])
        assert clients[a].welcome["resumed"] is True

        # 09:16:40: B drops in another breakout and does not come back in time: gone at the drop.
        b, b_watch = in_room[rooms[1]][0], in_room[rooms[1]][1]
        clock.set(1000)
        clients[b].abort()
        await clients[b_watch].wait_for("peer_reconnecting", WAIT_S, peer_id=b)
        clock.set(1010)
        await clients[b_watch].wait_for("peer_left", WAIT_S + GRACE_S, peer_id=b, reason="timeout")
        accounts[b].drops += 1
        accounts[b].end(1000)
        del clients[b]

        # 09:20: the breakouts close at once; everyone in them is back in the plenary.
        clock.set(1200)
        async with http.post(
            f"{server.url}/api/v1/workshops/{wid}/breakouts/{plan['id']}/close", json={}, headers=ADMIN
        ) as resp:
            assert resp.status == 200, await resp.text()
        for pid, sc in clients.items():
            if pid in room_of:
                moved = await sc.wait_for("moved", WAIT_S)
                assert moved["room"]["id"] == plenary
                accounts[pid].move(plenary, 1200)

        # 09:25: C leaves; 09:30: B joins again (a new visit); 09:33:20: D drops, and is still away at the crash.
        c = in_room[rooms[2]][0]
        clock.set(1500)
        await clients[c].send({"type": "leave"})
        assert await clients.pop(c).wait_closed(WAIT_S) == 1000
        accounts[c].end(1500)
        clock.set(1800)
        clients[b] = await connect(http, server.url, by_id[b]["join_token"])
        accounts[b].enter(plenary, 1800)
        d = in_room[rooms[3]][0]
        clock.set(2000)
        clients[d].abort()
        await clients[organiser["id"]].wait_for("peer_reconnecting", WAIT_S, peer_id=d)
        accounts[d].drops += 1

        # 09:35: the server is killed. Everyone still in was last seen alive at 09:35; D at the drop.
        clock.set(2100)
        await beats.reach(db, t(2100))
        await server.kill()
        open_at_kill = [pid for pid, account in accounts.items() if account.stays[-1].end is None]
        for pid in open_at_kill:
            accounts[pid].end(2000 if pid == d else 2100)
        for sc in clients.values():
            await sc.close()
        clients.clear()

        # 09:40: a new process. The killed one left everyone's place as a resume grant; nobody comes back with a
        # token, so once the grace period is over (a few seconds of real time) no visit is open.
        clock.set(2400)
        server = await Proc.start(database_url, tmp_path / "var", clock.path)
        procs.append(server)
        async with asyncio.timeout(WAIT_S):
            while await db.fetchval("SELECT count(*) FROM visits WHERE ended_at IS NULL"):
                await beats.queue.get()  # re-asked at each heartbeat of the new process
        crashed = await db.fetch(
            "SELECT participant_id::text AS pid, ended_at FROM visits WHERE ended_how = 'crash' ORDER BY 1"
        )
        # D's visit ends at the drop either way: closed by the crash, or expired just before it on a slow machine.
        closed = {r["pid"]: r["ended_at"] for r in crashed}
        closed.setdefault(d, t(2000))
        assert closed == {pid: t(2000 if pid == d else 2100) for pid in open_at_kill}

        # 09:40 + k s: forty come back; 10:00 + k s: they leave, one a second.
        back = joiners[:40]
        for k, p in enumerate(back):
            clock.set(2400 + k)
            clients[p["id"]] = await connect(http, server.url, p["join_token"])
            accounts[p["id"]].enter(plenary, 2400 + k)
        for k, p in enumerate(back):
            clock.set(3600 + k)
            sc = clients.pop(p["id"])
            await sc.send({"type": "leave"})
            assert await sc.wait_closed(WAIT_S) == 1000
            accounts[p["id"]].end(3600 + k)

        clock.set(SCHEDULED_S + 600)
        await beats.reach(db, t(SCHEDULED_S + 600))  # everything before is written
        query = f"min_share={MIN_SHARE}&step_s={STEP_S}"
        async with http.get(f"{server.url}/api/v1/workshops/{wid}/attendance?{query}", headers=ADMIN) as resp:
            assert resp.status == 200, await resp.text()
            report = await resp.json()
        assert await db.fetchval("SELECT count(*) FROM visits WHERE ended_at IS NULL") == 0
    finally:
        for sc in clients.values():
            await sc.close()
        await http.close()
        await db.close()
    assert await server.stop() == 0, server.log()
    assert "attendance visit(s) of resume grants nobody took in time" in server.log()

    expected = expected_report(people, accounts, room_names)
    got_people = {
        p["participant_id"]: {
            "first_join": parse_time(p["first_join"]),
            "last_leave": parse_time(p["last_leave"]),
            "seconds_present": p["seconds_present"],
            "drops": p["drops"],
            "visits": p["visits"],
            "rooms": {r["room_name"]: r["seconds"] for r in p["rooms"]},
        }
        for p in report["people"]
    }
    assert got_people == expected["people"]
    got_countries = {
        c["name"]: {k: c[k] for k in ("invited", "present", "present_min_share", "average_minutes")}
        for c in report["countries"]
    }
    assert got_countries == expected["countries"]
    assert 0 < sum(c["present_min_share"] for c in got_countries.values()) < 56
    got_timeline = [(parse_time(p["at"]), p["by_country"]) for p in report["timeline"]]
    assert got_timeline[: len(expected["timeline"])] == expected["timeline"]
    assert all(sum(counts.values()) == 0 for _at, counts in got_timeline[len(expected["timeline"]) :])
