"""PostgreSQL can go away: joins and resumes that need it are refused with `unavailable` and 4503 (retry), the HTTP
API answers 503 with Retry-After, and attendance recorded meanwhile is written once, in order, when the database is
back.

Each test runs its own embedded PostgreSQL, so that stopping it takes nobody else's database away."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from server.app import SIGNALING_STORE, create_app
from server.db import EmbeddedPostgres
from server.migrate import migrate
from tests.conftest import make_settings
from tests.helpers import ADMIN, add_participant, create_workshop
from tests.signaling.client import SignalClient, connect, join

pytestmark = pytest.mark.slow

CLOSE_UNAVAILABLE = 4503


@pytest.fixture
async def own_postgres() -> AsyncIterator[EmbeddedPostgres]:
    # Outside pytest's temp root and world-readable: as root, pgserver runs PostgreSQL as its own user.
    root = Path(tempfile.mkdtemp(prefix="roundtable-outage-pg-"))
    os.chmod(root, 0o755)
    pg = EmbeddedPostgres(root)
    dsn = await asyncio.to_thread(pg.start)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    try:
        yield pg
    finally:
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def client(own_postgres: EmbeddedPostgres, tmp_path: Path, aiohttp_client: Any) -> TestClient[Any, Any]:
    settings = make_settings(own_postgres.dsn("roundtable"), tmp_path / "var", resume_grace_s=60.0)
    result: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return result


async def _hello(client: TestClient[Any, Any], token: str, resume: str | None = None) -> SignalClient:
    sc = SignalClient(await connect(client))
    hello: dict[str, Any] = {"type": "hello", "protocol": [1], "token": token, "request_id": "h"}
    if resume:
        hello["resume"] = resume
    await sc.send(hello)
    return sc


async def _refused_as_unavailable(sc: SignalClient) -> None:
    error = await sc.recv()
    assert (error["type"], error["code"], error["request_id"]) == ("error", "unavailable", "h"), error
    assert await sc.wait_closed() == CLOSE_UNAVAILABLE


async def test_while_postgres_is_down_joins_get_unavailable_and_rest_503_then_everything_resumes(
    client: TestClient[Any, Any], own_postgres: EmbeddedPostgres
) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    ana = await add_participant(client, wid, display_name="Ana", country="PT")
    ben = await add_participant(client, wid, display_name="Ben", country="DE")
    cleo = await add_participant(client, wid, display_name="Cleo", country="FR")
    a = await join(client, ana["join_token"])
    c = await join(client, cleo["join_token"])
    resume = a.welcome["resume"]

    await asyncio.to_thread(own_postgres.stop)
    try:
        # Cleo leaves during the outage: her leave is queued, not lost. Ana's socket drops: her place is kept.
        await c.send({"type": "leave"})
        assert await c.wait_closed() == 1000
        await a.ws.close()
        # A join that needs the database is refused with a code that says: try again.
        await _refused_as_unavailable(await _hello(client, ben["join_token"]))
        # Ana's resume needs nothing from it: this process read her (server.join_cache) and her room is live.
        a = await _hello(client, ana["join_token"], resume=resume)
        welcome = await a.recv()
        assert (welcome["type"], welcome["resumed"]) == ("welcome", True), welcome
        resume = welcome["resume"]
        await a.ws.close()
        # REST: 503 with Retry-After, the usual error body.
        resp = await client.get(f"/api/v1/workshops/{wid}/participants", headers=ADMIN)
        assert resp.status == 503, await resp.text()
        assert resp.headers["Retry-After"].isdigit()
        assert (await resp.json())["error"]["code"] == "unavailable"
        resp = await client.get("/readyz")
        assert resp.status == 503
    finally:
        await asyncio.to_thread(own_postgres.start)

    # Back: ana resumes her kept place, ben joins, and the room is whole again.
    a2 = await join(client, ana["join_token"], resume=resume)
    assert a2.welcome["resumed"] is True
    b = await join(client, ben["join_token"])
    assert [p["id"] for p in b.welcome["peers"]] == [ana["id"]]
    await a2.send({"type": "leave"})
    assert await a2.wait_closed() == 1000
    await b.send({"type": "leave"})
    assert await b.wait_closed() == 1000

    store = client.app[SIGNALING_STORE]
    async with asyncio.timeout(30):
        await store.flushed()
    conn = await asyncpg.connect(own_postgres.dsn("roundtable"))
    try:
        rows = await conn.fetch(
            "SELECT participant_id, event FROM attendance_events WHERE workshop_id = $1 ORDER BY id",
            uuid.UUID(wid),
        )
    finally:
        await conn.close()
    got = [(str(r["participant_id"]), r["event"]) for r in rows]
    # Written once each, in the order they happened: cleo's leave during the outage among them.
    assert got == [
        (ana["id"], "join"),
        (cleo["id"], "join"),
        (cleo["id"], "leave"),
        (ana["id"], "drop"),
        (ana["id"], "resume"),
        (ana["id"], "drop"),
        (ana["id"], "resume"),
        (ben["id"], "join"),
        (ana["id"], "leave"),
        (ben["id"], "leave"),
    ], rows
    conn = await asyncpg.connect(own_postgres.dsn("roundtable"))
    try:
        visits = await conn.fetch(
            "SELECT participant_id, ended_how, drops FROM visits WHERE workshop_id = $1 ORDER BY started_at",
            uuid.UUID(wid),
        )
    finally:
        await conn.close()
    # Ana's two drops, both resumed, are one visit.
    assert [(str(v["participant_id"]), v["ended_how"], v["drops"]) for v in visits] == [
        (ana["id"], "left", 2),
        (cleo["id"], "left", 0),
        (ben["id"], "left", 0),
    ]


async def test_a_moderators_live_action_while_postgres_is_down_is_refused_unrecorded_and_works_once_it_returns(
    client: TestClient[Any, Any], own_postgres: EmbeddedPostgres
) -> None:
    """No action goes unrecorded: a spotlight (which changes nothing in PostgreSQL) is refused while its audit entry
    cannot be written, and nobody sees it; once the database is back it works and is in the log once."""
    workshop = await create_workshop(client)
    wid = workshop["id"]
    mod = await add_participant(client, wid, display_name="Mod", country="PT", role="moderator")
    ana = await add_participant(client, wid, display_name="Ana", country="DE")
    m = await join(client, mod["join_token"])
    a = await join(client, ana["join_token"])
    await m.wait_for("peer_joined")

    await asyncio.to_thread(own_postgres.stop)
    try:
        await m.send({"type": "spotlight", "peer_id": ana["id"], "request_id": "s1"})
        error = await m.wait_for("error")
        assert (error["code"], error["request_id"]) == ("unavailable", "s1"), error
    finally:
        await asyncio.to_thread(own_postgres.start)
    await m.send({"type": "spotlight", "peer_id": ana["id"], "request_id": "s2"})
    spotlight = await a.wait_for("spotlight")
    assert spotlight["peer_id"] == ana["id"]
    assert [x for x in a.seen if x["type"] == "spotlight"] == [spotlight]  # nothing from the refused one
    resp = await client.get(f"/api/v1/workshops/{wid}/audit", params={"action": "stage"}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    items = (await resp.json())["items"]
    assert [(i["action"], i["target"]) for i in items] == [("stage.spotlight", {"participant_id": ana["id"]})]
