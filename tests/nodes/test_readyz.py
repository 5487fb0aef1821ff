"""/readyz of a node on a real NATS bus: the bus's state and the leases held, and 503 while the bus is away."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError

from server import keys
from server.app import create_app
from server.settings import Settings
from tests.conftest import make_settings
from tests.nodes.nats_server import NatsServer

WAIT_S = 5.0


async def test_readyz_shows_the_bus_connected_and_the_leases_this_node_holds_and_503_while_the_bus_is_away(
    database_url: str, nats_server: NatsServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(make_settings(database_url, tmp_path / "var", bus_url=nats_server.url)))
    node = client.app[keys.NODE]
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {
        "status": "ok",
        "node": {"id": node.info.id, "bus": "nats", "bus_connected": True, "leases": 0},
    }
    registered = await client.app[keys.POOL].fetchrow("SELECT address, draining FROM nodes WHERE id = $1", node.info.id)
    assert registered is not None and registered["draining"] is False

    workshop: uuid.UUID = await client.app[keys.POOL].fetchval(
        """INSERT INTO workshops (title, timezone, starts_at, ends_at)
           VALUES ('Ready', 'UTC', now(), now() + interval '1 hour') RETURNING id"""
    )
    assert await node.leases.acquire(workshop) is not None
    assert (await (await client.get("/readyz")).json())["node"]["leases"] == 1

    down, up = asyncio.Event(), asyncio.Event()
    node.bus.on_disconnect(down.set)
    node.bus.on_reconnect(up.set)
    nats_server.kill()
    await asyncio.wait_for(down.wait(), WAIT_S)
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert (body["status"], body["node"]["bus_connected"]) == ("unavailable", False)

    nats_server.start()
    await asyncio.wait_for(up.wait(), WAIT_S)
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["node"]["bus_connected"] is True


async def test_a_stopping_node_marks_itself_draining_and_releases_its_leases(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(make_settings(database_url, tmp_path / "var")))
    pool = client.app[keys.POOL]
    node = client.app[keys.NODE]
    workshop: uuid.UUID = await pool.fetchval(
        """INSERT INTO workshops (title, timezone, starts_at, ends_at)
           VALUES ('Drain', 'UTC', now(), now() + interval '1 hour') RETURNING id"""
    )
    assert await node.leases.acquire(workshop) is not None
    watcher = await asyncpg.connect(database_url)
    try:
        await client.close()  # the app's cleanup: the node drains
        row = await watcher.fetchrow("SELECT draining FROM nodes WHERE id = $1", node.info.id)
        assert row is not None and row["draining"] is True
        assert await watcher.fetchval("SELECT count(*) FROM workshop_leases") == 0
    finally:
        await watcher.close()


def test_the_bus_url_must_name_a_nats_server(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="nats://"):
        make_settings("postgresql://localhost/x", tmp_path, bus_url="redis://127.0.0.1:6379")
    assert make_settings("postgresql://localhost/x", tmp_path).bus_url is None
    assert isinstance(make_settings("postgresql://localhost/x", tmp_path, bus_url="nats://127.0.0.1:4222"), Settings)
