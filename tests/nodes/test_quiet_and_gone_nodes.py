"""Real `python -m server` nodes on one PostgreSQL and one NATS server (docs/scaling.md): a quiet workshop's lease
is given back and the next session anywhere takes it; the join cache of a node that served a participant before
follows what another node's HTTP API changed meanwhile; what a SIGKILLed node left in a workshop nobody comes back
to (a live recording, its members' visits) is swept by the other nodes once, and a live node's is never touched."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.helpers import ADMIN
from tests.nodes.test_any_node import WAIT_S, Node, join, new_workshop, nodes_named
from tests.signaling.client import SignalClient
from tests.signaling.rtc_peer import loopback_ice

IDLE_S = 1.0
QUIET = {"ROUNDTABLE_LEASE_IDLE_S": str(IDLE_S), "ROUNDTABLE_NODE_SWEEP_S": "0.5"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@contextlib.asynccontextmanager
async def started(
    database_url: str, bus_url: str, tmp_path: Path, names: tuple[str, ...], **extra: str
) -> AsyncIterator[list[Node]]:
    async with nodes_named(names, database_url, bus_url, tmp_path, **QUIET, **extra) as running:
        yield running


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` (a read of /readyz or of PostgreSQL) until it holds, within WAIT_S."""
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.1)  # pacing of the polls, not synchronisation: the nodes tell nobody outside
    except TimeoutError:
        raise AssertionError(f"not within {WAIT_S} s: {what}") from None


async def leave(member: Any) -> None:
    await member.signal.send({"type": "leave"})
    assert await member.signal.wait_closed(WAIT_S) == 1000


async def refused(http: aiohttp.ClientSession, node: Node, token: str) -> dict[str, Any]:
    client = SignalClient(await http.ws_connect(f"{node.url}/ws"))
    await client.send({"type": "hello", "protocol": [1], "token": token})
    error = await client.wait_for("error", WAIT_S)
    assert await client.wait_closed(WAIT_S) == 4401
    return error


async def lease_holder(pool: asyncpg.Pool, workshop_id: str) -> str | None:
    holder: str | None = await pool.fetchval(
        "SELECT node_id FROM workshop_leases WHERE workshop_id = $1::uuid AND expires_at > now()", workshop_id
    )
    return holder


async def test_a_quiet_workshop_gives_its_lease_back_and_a_node_that_cached_its_people_sees_another_nodes_changes(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with started(database_url, bus_url, tmp_path, ("a", "b")) as (a, b):
        wid, tokens = await new_workshop(http, a, "ana", "ben", "eva")
        ana = await join(http, b, tokens["ana"], "ana")  # b owns the workshop, and keeps ana and ben in its cache
        ben = await join(http, b, tokens["ben"], "ben")
        assert [await a.leases(http), await b.leases(http)] == [0, 1]
        await leave(ana)
        await leave(ben)

        async def b_released() -> bool:
            return await b.leases(http) == 0

        await until(b_released, "b gives the quiet workshop back")
        await b.logs(f"lease of workshop {wid} released: quiet")

        # Nobody owns the workshop: a's API changes it with no owner to tell, and b still has both in its cache.
        url = f"{a.url}/api/v1/workshops/{wid}"
        async with http.post(f"{url}/participants/{ana.id}/revoke", headers=ADMIN) as resp:
            assert resp.status == 200, await resp.text()
        async with http.post(f"{url}/rooms", json={"name": "Corner", "capacity": 5}, headers=ADMIN) as resp:
            assert resp.status == 201, await resp.text()
            corner = (await resp.json())["id"]
        async with http.patch(f"{url}/participants/{ben.id}", json={"room_id": corner}, headers=ADMIN) as resp:
            assert resp.status == 200, await resp.text()

        assert (await refused(http, b, tokens["ana"]))["message"] == "token revoked"
        ben2 = await join(http, b, tokens["ben"], "ben")  # b owns it again
        assert ben2.signal.welcome["room"]["id"] == corner
        await leave(ben2)
        await until(b_released, "b gives it back again")

        # The next session, through the other node, makes that node the owner.
        eva = await join(http, a, tokens["eva"], "eva")
        assert [await a.leases(http), await b.leases(http)] == [1, 0]
        await leave(eva)


async def test_a_workshop_with_a_running_breakout_keeps_its_lease_when_its_last_member_left(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with started(database_url, bus_url, tmp_path, ("a",)) as (a,):
        busy, busy_tokens = await new_workshop(http, a, "ana", "ben")
        quiet, quiet_tokens = await new_workshop(http, a, "eva")
        members = [await join(http, a, busy_tokens[n], n) for n in ("ana", "ben")]
        base = f"{a.url}/api/v1/workshops/{busy}/breakouts"
        spec = {"name": "Pairs", "rooms": 2, "strategy": "random", "countdown_s": 0}
        async with http.post(base, json=spec, headers=ADMIN) as resp:
            assert resp.status == 201, await resp.text()
            plan = await resp.json()
        async with http.post(f"{base}/{plan['id']}/open", json={"duration_s": 600}, headers=ADMIN) as resp:
            assert resp.status == 200, await resp.text()
        for m in members:
            await m.signal.wait_for("moved", WAIT_S)
            await leave(m)
        eva = await join(http, a, quiet_tokens["eva"], "eva")
        await leave(eva)

        # The quiet one goes, though its last member left after the other's: the running plan's timer (and the plan
        # in PostgreSQL: tests/nodes/test_sweep.py) keeps the lease of the other, however long it waits.
        await a.logs(f"lease of workshop {quiet} released: quiet")
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            assert await lease_holder(pool, busy) is not None
            assert await lease_holder(pool, quiet) is None
        finally:
            await pool.close()
        assert await a.leases(http) == 1


async def test_what_a_killed_node_left_where_nobody_comes_back_is_swept_once_and_a_live_nodes_is_untouched(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)
    shared = {"ROUNDTABLE_RECORDINGS_DIR": str(tmp_path / "recordings"), "ROUNDTABLE_ICE_HOST_ADDRESSES": "127.0.0.1"}
    async with started(database_url, bus_url, tmp_path, ("a", "b", "c"), **shared) as (a, b, c):
        left_wid, left_tokens = await new_workshop(http, b, "ana")
        _live, live_tokens = await new_workshop(http, b, "ben")
        ana = await join(http, a, left_tokens["ana"], "ana")  # a owns the workshop it will leave behind
        ben = await join(http, b, live_tokens["ben"], "ben")  # b owns one that goes on

        async def record(member: Any, node: Node) -> str:
            room = member.signal.welcome["room"]["id"]
            async with http.post(f"{node.url}/api/v1/rooms/{room}/recordings", headers=ADMIN) as resp:
                assert resp.status == 201, await resp.text()
                recording_id: str = (await resp.json())["id"]
            await member.signal.wait_for("recording_started", WAIT_S)
            return recording_id

        left_rec = await record(ana, c)
        live_rec = await record(ben, c)
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:

            async def visit_of(participant_id: str) -> asyncpg.Record:
                row = await pool.fetchrow(
                    "SELECT id, started_at, ended_at, ended_how, node_id FROM visits WHERE participant_id = $1::uuid",
                    participant_id,
                )
                assert row is not None
                return row

            async def recording(recording_id: str) -> asyncpg.Record:
                row = await pool.fetchrow("SELECT state, partial FROM recordings WHERE id = $1::uuid", recording_id)
                assert row is not None
                return row

            async def visit_written() -> bool:
                count: int = await pool.fetchval("SELECT count(*) FROM visits")
                return count == 2

            await until(visit_written, "both visits are in PostgreSQL")
            dead = (await visit_of(ana.id))["node_id"]
            assert dead is not None and dead != (await visit_of(ben.id))["node_id"]

            await a.kill()  # and nobody comes back to ana's workshop: nobody takes it over

            async def swept() -> bool:
                return (await recording(left_rec))["state"] == "ready" and (await visit_of(ana.id))[
                    "ended_at"
                ] is not None

            await until(swept, "the killed node's recording finalised and its visit closed")
            assert dict(await recording(left_rec)) == {"state": "ready", "partial": True}
            visit = await visit_of(ana.id)
            alive_at = await pool.fetchval("SELECT alive_at FROM nodes WHERE id = $1", dead)
            assert visit["ended_how"] == "crash"
            assert visit["ended_at"] == max(alive_at, visit["started_at"])  # when the dead node was last alive
            leaves = await pool.fetchval(
                "SELECT count(*) FROM attendance_events WHERE visit_id = $1 AND event = 'leave'", visit["id"]
            )
            assert leaves == 1
            assert await lease_holder(pool, left_wid) is None  # swept, not taken over
            finalised = [n.log().count(f"finalised recording {left_rec}") for n in (b, c)]
            assert sorted(finalised) == [0, 1]  # by one node

            # A live node's member and recording go on.
            assert dict(await recording(live_rec)) == {"state": "recording", "partial": False}
            assert (await visit_of(ben.id))["ended_at"] is None
            await leave(ben)  # still served by its node
        finally:
            await pool.close()
