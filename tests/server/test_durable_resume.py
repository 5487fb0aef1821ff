"""Resume survives the process: a real `python -m server` is drained (SIGTERM) or killed (SIGKILL) with people in a
plenary and a breakout, started again on the same database, and everyone who comes back with their resume token
within the grace period is back in their room with their hand and microphone as they were, on the same attendance
visit. WebSocket clients are aiohttp; the tests wait on messages and on PostgreSQL notifications, never on time,
except for the one grace period that must run out."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.server.test_process import ROOT, Server, _env, free_port
from tests.signaling.client import SignalClient

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GRACE_S = 12.0
WAIT_S = 30.0
NAMES = ["Ana", "Eve", "Ben", "Cleo", "Dan"]  # the organiser, a moderator, three participants
# Test-only: the server's writes as events (as in tests/server/test_crash_recovery.py).
NOTIFY = """
CREATE FUNCTION rt_test_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('rt_test', TG_TABLE_NAME); RETURN NULL; END $$;
CREATE TRIGGER rt_test_grants AFTER INSERT OR UPDATE ON resume_grants FOR EACH ROW EXECUTE FUNCTION rt_test_notify();
CREATE TRIGGER rt_test_nodes AFTER UPDATE ON nodes FOR EACH ROW EXECUTE FUNCTION rt_test_notify();
CREATE TRIGGER rt_test_visits AFTER UPDATE ON visits FOR EACH ROW EXECUTE FUNCTION rt_test_notify();
"""


class Proc:
    """`python -m server` against the test's database; its log read all along so that it never blocks."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, database_url: str, data_dir: Path, port: int, **extra: str) -> Proc:
        env = _env(
            data_dir,
            port,
            ROUNDTABLE_DATABASE_URL=database_url,
            ROUNDTABLE_ADMIN_TOKEN=ADMIN_TOKEN,
            ROUNDTABLE_SECRET_KEY=SECRET_KEY,
            ROUNDTABLE_SFU="off",
            ROUNDTABLE_RESUME_GRACE_S=str(GRACE_S),
            # The node is seen (and its heartbeat written) often: a connected member's grant lasts GRACE_S from then.
            ROUNDTABLE_LEASE_TTL_S="1.5",
            ROUNDTABLE_SERVER_HEARTBEAT_S="0.2",
            **extra,
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

    async def signal(self, sig: signal.Signals) -> int:
        self.server.proc.send_signal(sig)
        async with asyncio.timeout(WAIT_S):
            code = await self.server.proc.wait()
            if self._drain is not None:
                await self._drain
        return code

    def log(self) -> str:
        return "".join(self.server.output)


@pytest.fixture
async def procs() -> AsyncIterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        if p.server.proc.returncode is None:
            await p.signal(signal.SIGKILL)


class Notes:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def __call__(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.queue.put_nowait(payload)

    async def until(self, db: asyncpg.Connection, table: str, query: str, *args: Any) -> Any:
        """Until `query` answers something true, re-asked after each write to `table`."""
        async with asyncio.timeout(WAIT_S):
            while not (value := await db.fetchval(query, *args)):
                while await self.queue.get() != table:
                    pass
            return value


async def connect(http: aiohttp.ClientSession, url: str, token: str, resume: str | None = None) -> SignalClient:
    sc = SignalClient(await http.ws_connect(f"{url}/ws"))
    hello: dict[str, Any] = {"type": "hello", "protocol": [1], "token": token}
    if resume is not None:
        hello["resume"] = resume
    await sc.send(hello)
    sc.welcome = await sc.recv()
    assert sc.welcome["type"] == "welcome", sc.welcome
    return sc


async def workshop_with_people(http: aiohttp.ClientSession, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body = {
        "title": "Restart",
        "timezone": "UTC",
        "starts_at": "2026-12-10T09:00:00+00:00",
        "ends_at": "2026-12-10T12:00:00+00:00",
    }
    async with http.post(f"{url}/api/v1/workshops", json=body, headers=ADMIN) as resp:
        assert resp.status == 201, await resp.text()
        workshop = await resp.json()
    roles = ["organiser", "moderator", "participant", "participant", "participant"]
    rows = ["display_name,country,organisation,email,role"] + [
        f"{name},PT,Water Board,,{role}" for name, role in zip(NAMES, roles, strict=True)
    ]
    async with http.post(
        f"{url}/api/v1/workshops/{workshop['id']}/participants/import",
        data="\n".join(rows) + "\n",
        headers={**ADMIN, "Content-Type": "text/csv"},
    ) as resp:
        assert resp.status == 201, await resp.text()
        people = {p["display_name"]: p for p in (await resp.json())["items"]}
    return workshop, people


async def open_breakout(http: aiohttp.ClientSession, url: str, workshop_id: str) -> str:
    """One breakout room: the three participants go there, the organiser and the moderator stay."""
    async with http.post(
        f"{url}/api/v1/workshops/{workshop_id}/breakouts",
        json={"name": "Case study", "rooms": 1, "strategy": "random", "countdown_s": 0},
        headers=ADMIN,
    ) as resp:
        assert resp.status == 201, await resp.text()
        plan = await resp.json()
    async with http.post(
        f"{url}/api/v1/workshops/{workshop_id}/breakouts/{plan['id']}/open", json={}, headers=ADMIN
    ) as resp:
        assert resp.status == 200, await resp.text()
    room_id: str = plan["rooms"][0]["id"]
    return room_id


async def everyone_in(
    http: aiohttp.ClientSession, url: str, people: dict[str, Any], breakout_of: str
) -> tuple[dict[str, SignalClient], str]:
    """All five in the plenary, then Ben, Cleo and Dan in a breakout; Ben's hand up, Cleo muted, Eve's camera off."""
    clients = {name: await connect(http, url, people[name]["join_token"]) for name in NAMES}
    breakout = await open_breakout(http, url, breakout_of)
    for name in ("Ben", "Cleo", "Dan"):
        assert (await clients[name].wait_for("moved", WAIT_S))["room"]["id"] == breakout
    for name, change in (("Ben", {"hand": True}), ("Cleo", {"audio": False}), ("Eve", {"video": False})):
        await clients[name].send({"type": "update", **change, "request_id": "state"})
        await clients[name].wait_for("ack", WAIT_S, request_id="state")
    return clients, breakout


async def back_with_tokens(
    http: aiohttp.ClientSession, url: str, people: dict[str, Any], tokens: dict[str, str], names: list[str]
) -> dict[str, SignalClient]:
    back: dict[str, SignalClient] = {}
    for name in names:
        back[name] = await connect(http, url, people[name]["join_token"], resume=tokens[name])
    return back


async def check_places(back: dict[str, SignalClient], people: dict[str, Any], plenary: str, breakout: str) -> None:
    """Everyone resumed in their room with their state; those who came back earlier saw the later ones resume."""
    room_of = {"Ana": plenary, "Eve": plenary, "Ben": breakout, "Cleo": breakout, "Dan": breakout}
    for name, sc in back.items():
        assert sc.welcome["resumed"] is True, (name, sc.welcome)
        assert sc.welcome["room"]["id"] == room_of[name], name
    state = {name: sc.welcome["self"]["state"] for name, sc in back.items()}
    if "Ben" in state:
        assert state["Ben"]["hand"] is True and state["Ben"]["hand_raised_at"] is not None
    if "Cleo" in state:
        assert state["Cleo"]["audio"] is False and state["Cleo"]["video"] is True
    if "Eve" in state:
        assert state["Eve"]["video"] is False and state["Eve"]["audio"] is True
    order = list(back)
    for i, name in enumerate(order):
        roommates = [n for n in order[i + 1 :] if room_of[n] == room_of[name]]
        for later in roommates:  # unknown to this process until then: who it is, then that it is back
            joined = await back[name].wait_for("peer_joined", WAIT_S)
            assert joined["peer"]["id"] == people[later]["id"], (name, later)
            resumed = await back[name].wait_for("peer_resumed", WAIT_S)
            assert resumed["peer_id"] == people[later]["id"], (name, later)


async def presence(http: aiohttp.ClientSession, url: str, workshop_id: str) -> list[dict[str, Any]]:
    async with http.get(f"{url}/api/v1/workshops/{workshop_id}/presence", headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        rooms = (await resp.json())["rooms"]
        return [{**m, "room_id": r["room_id"]} for r in rooms for m in r["members"]]


async def visits(db: asyncpg.Connection, pid: str) -> list[tuple[str, str | None]]:
    rows = await db.fetch(
        "SELECT room_name, ended_how FROM visits WHERE participant_id = $1 ORDER BY started_at, ended_at NULLS LAST",
        uuid.UUID(pid),
    )
    return [(r["room_name"], r["ended_how"]) for r in rows]


async def events(db: asyncpg.Connection, pid: str) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT event, reason FROM attendance_events WHERE participant_id = $1 ORDER BY at, id", uuid.UUID(pid)
    )
    return [(r["event"], r["reason"]) for r in rows]


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_after_a_sigterm_everyone_resumes_in_their_room_with_their_state_on_one_continued_visit(
    database_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    port = free_port()
    server = await Proc.start(database_url, tmp_path / "var", port)
    procs.append(server)
    db = await asyncpg.connect(database_url)
    try:
        async with aiohttp.ClientSession() as http:
            workshop, people = await workshop_with_people(http, server.url)
            clients, breakout = await everyone_in(http, server.url, people, workshop["id"])
            tokens = {name: sc.welcome["resume"] for name, sc in clients.items()}

            closing = asyncio.gather(*(sc.wait_closed(WAIT_S) for sc in clients.values()))
            assert await server.signal(signal.SIGTERM) == 0, server.log()
            assert await closing == [1012] * len(NAMES), "come back now"
            for sc in clients.values():
                assert sc.seen[-1] == {"type": "bye", "reason": "server restarting", "reconnect": True}
                assert not [m for m in sc.seen if m["type"] == "peer_left" and m["reason"] != "moved"], "nobody left"
                await sc.close()
            assert await db.fetchval("SELECT count(*) FROM resume_grants WHERE detached_at IS NOT NULL") == 5

            server = await Proc.start(database_url, tmp_path / "var", port)
            procs.append(server)
            back = await back_with_tokens(http, server.url, people, tokens, ["Dan", "Ana", "Ben", "Eve", "Cleo"])
            await check_places(back, people, workshop["plenary_room_id"], breakout)
            live = await presence(http, server.url, workshop["id"])
            assert sorted(m["id"] for m in live) == sorted(p["id"] for p in people.values()), "nobody twice"
            assert all(m["connected"] for m in live)

            for sc in back.values():
                await sc.send({"type": "leave"})
                assert await sc.wait_closed(WAIT_S) == 1000
            assert await server.signal(signal.SIGINT) == 0, server.log()

        # The record: a drop at the restart and a resume on the same visit, never a leave and a new join.
        for name in ("Ana", "Eve"):
            assert await visits(db, people[name]["id"]) == [("Plenary", "left")], name
            assert await events(db, people[name]["id"]) == [
                ("join", "joined"), ("drop", "server_restart"), ("resume", "resumed"), ("leave", "left"),
            ]  # fmt: skip
        for name in ("Ben", "Cleo", "Dan"):
            assert await visits(db, people[name]["id"]) == [("Plenary", "moved"), ("Room 1", "left")], name
            assert await events(db, people[name]["id"]) == [
                ("join", "joined"), ("leave", "moved"), ("join", "breakouts_opened"),
                ("drop", "server_restart"), ("resume", "resumed"), ("leave", "left"),
            ]  # fmt: skip
    finally:
        await db.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_after_a_sigkill_those_back_in_time_resume_and_the_others_visits_end_when_the_dead_server_was_last_alive(
    database_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    port = free_port()
    server = await Proc.start(database_url, tmp_path / "var", port)
    procs.append(server)
    db = await asyncpg.connect(database_url)
    await db.execute(NOTIFY)
    notes = Notes()
    await db.add_listener("rt_test", notes)
    try:
        async with aiohttp.ClientSession() as http:
            workshop, people = await workshop_with_people(http, server.url)
            clients, breakout = await everyone_in(http, server.url, people, workshop["id"])
            tokens = {name: sc.welcome["resume"] for name, sc in clients.items()}
            ids = [uuid.UUID(p["id"]) for p in people.values()]
            # No drain this time: the places must already be in the database, state included.
            await notes.until(
                db,
                "resume_grants",
                """SELECT count(*) = 5 AND bool_or((state->>'hand')::boolean)
                       AND bool_or(NOT (state->>'audio')::boolean)
                   FROM resume_grants WHERE participant_id = ANY($1::uuid[]) AND detached_at IS NULL""",
                ids,
            )
            old_node: str = await db.fetchval("SELECT DISTINCT node_id FROM resume_grants")
            # And the server was alive after the last of it was recorded (its heartbeat never claims more).
            await notes.until(
                db, "nodes", "SELECT alive_at > (SELECT max(started_at) FROM visits) FROM nodes WHERE id = $1", old_node
            )
            assert await server.signal(signal.SIGKILL) == -signal.SIGKILL
            last_alive: datetime = await db.fetchval("SELECT alive_at FROM nodes WHERE id = $1", old_node)
            for sc in clients.values():
                await sc.close()

            server = await Proc.start(database_url, tmp_path / "var", port)
            procs.append(server)
            assert await db.fetchval("SELECT count(*) FROM visits WHERE ended_at IS NOT NULL") == 3, (
                "the restart closed none of the granted visits (only the three moved out of the plenary are over)"
            )
            # Cleo never comes back; everyone else does, within the grace period.
            comers = ["Ben", "Ana", "Dan", "Eve"]
            back = await back_with_tokens(http, server.url, people, tokens, comers)
            await check_places(back, people, workshop["plenary_room_id"], breakout)
            cleo = people["Cleo"]["id"]
            assert cleo not in {m["id"] for m in await presence(http, server.url, workshop["id"])}

            # Cleo's place runs out: her visit ends when the killed server was last alive.
            ended = await notes.until(
                db, "visits", "SELECT ended_at FROM visits WHERE participant_id = $1 AND ended_how = 'crash'",
                uuid.UUID(cleo),
            )  # fmt: skip
            assert ended == last_alive
            assert await events(db, cleo) == [
                ("join", "joined"), ("leave", "moved"), ("join", "breakouts_opened"), ("leave", "server_crash"),
            ]  # fmt: skip
            # Too late: her old token resumes nothing, she starts a new visit.
            late = await connect(http, server.url, people["Cleo"]["join_token"], resume=tokens["Cleo"])
            assert late.welcome["resumed"] is False

            for sc in [*back.values(), late]:
                await sc.send({"type": "leave"})
                assert await sc.wait_closed(WAIT_S) == 1000
            assert await server.signal(signal.SIGINT) == 0, server.log()

        for name in comers:
            pid = people[name]["id"]
            drop = await db.fetchval(
                "SELECT at FROM attendance_events WHERE participant_id = $1 AND event = 'drop'", uuid.UUID(pid)
            )
            assert drop == last_alive, name
            room = "Plenary" if name in ("Ana", "Eve") else "Room 1"
            assert (await visits(db, pid))[-1] == (room, "left"), name
            assert (await events(db, pid))[-3:] == [("drop", "server_crash"), ("resume", "resumed"), ("leave", "left")]
        assert await db.fetchval("SELECT count(*) FROM visits WHERE ended_at IS NULL") == 0
        assert await db.fetchval("SELECT count(*) FROM resume_grants") == 0
    finally:
        await db.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_after_a_restart_racing_hellos_resume_a_place_once_and_a_join_without_the_token_ends_the_kept_visit(
    database_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    port = free_port()
    server = await Proc.start(database_url, tmp_path / "var", port)
    procs.append(server)
    db = await asyncpg.connect(database_url)
    try:
        async with aiohttp.ClientSession() as http:
            _, people = await workshop_with_people(http, server.url)
            ana = await connect(http, server.url, people["Ana"]["join_token"])
            ben = await connect(http, server.url, people["Ben"]["join_token"])
            token = ana.welcome["resume"]
            assert await server.signal(signal.SIGTERM) == 0
            await ana.close()
            await ben.close()
            server = await Proc.start(database_url, tmp_path / "var", port)
            procs.append(server)

            # The grant's row is locked, so that both hellos are in flight at once: the first to take it waits at
            # the lock, the other is refused at once; then the lock goes and the first resumes.
            lock = db.transaction()
            await lock.start()
            await db.execute("SELECT 1 FROM resume_grants WHERE participant_id = $1 FOR UPDATE", uuid.UUID(ana.id))
            racers = [SignalClient(await http.ws_connect(f"{server.url}/ws")) for _ in range(2)]
            hello = {"type": "hello", "protocol": [1], "token": people["Ana"]["join_token"], "resume": token}
            for sc in racers:
                await sc.send(hello)
            first = await asyncio.wait(
                [asyncio.ensure_future(sc.wait_for("error", WAIT_S)) for sc in racers],
                return_when=asyncio.FIRST_COMPLETED,
            )
            (done,) = first[0]
            for pending in first[1]:
                pending.cancel()
            error = done.result()
            assert error["code"] == "conflict" and "being resumed by another connection" in error["message"]
            refused = next(sc for sc in racers if error in sc.seen)
            winner = next(sc for sc in racers if sc is not refused)
            assert await refused.wait_closed(WAIT_S) == 4409
            await lock.rollback()
            welcome = await winner.wait_for("welcome", WAIT_S)
            assert welcome["resumed"] is True

            # Ben comes back without his token (a new tab): a new visit, and the one his place kept ends at the drain.
            fresh = await connect(http, server.url, people["Ben"]["join_token"])
            assert fresh.welcome["resumed"] is False
            await fresh.send({"type": "leave"})
            assert await fresh.wait_closed(WAIT_S) == 1000
            for sc in racers:
                await sc.close()
        assert await server.signal(signal.SIGINT) == 0
        assert await visits(db, people["Ben"]["id"]) == [("Plenary", "replaced"), ("Plenary", "left")]
        assert (await events(db, people["Ben"]["id"]))[-3:] == [
            ("leave", "replaced"), ("join", "joined"), ("leave", "left"),
        ]  # fmt: skip
    finally:
        await db.close()
