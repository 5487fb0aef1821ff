"""The load balancer of docker-compose.nodes.yml, exactly as shipped (its HAProxy configuration, with the servers and
port of this test), in front of two real nodes on one PostgreSQL and a real NATS server: WebSockets through it reach
both nodes and meet in one room; a node that stops answering /readyz is taken out, and its clients come back through
the load balancer to the other node with their places (`resumed: true`)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import shutil
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.nodes.test_any_node import WAIT_S, Member, Node, join, new_workshop
from tests.server.test_process import ROOT, free_port
from tests.signaling.client import SignalClient

pytestmark = pytest.mark.slow
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def shipped_config(port: int, servers: dict[str, int]) -> str:
    """The `haproxy` config of docker-compose.nodes.yml with this test's port and servers (no Docker DNS here)."""
    compose = (ROOT / "docker-compose.nodes.yml").read_text()
    block = compose.split("  haproxy:\n    content: |\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("      "):
            break  # the end of the block scalar
        lines.append(line[6:])
    config = "\n".join(lines)
    assert "timeout tunnel" in config and "option httpchk GET /readyz" in config, config
    config = config.replace("bind :8080", f"bind 127.0.0.1:{port}")
    config = re.sub(r" resolvers docker init-addr [^\n]*", "", config)
    config = re.sub(r"\n\s*resolvers docker\n\s*nameserver[^\n]*", "\n", config)
    config = re.sub(r"\n\s*server [ab] roundtable-[ab]:8080", "", config)
    config = config.replace("log stdout format raw local0", "log stderr format raw local0 notice")
    config += "".join(f"  server {name} 127.0.0.1:{p}\n" for name, p in servers.items())
    return config


@contextlib.asynccontextmanager
async def haproxy(config: str, workdir: Path) -> AsyncIterator[str]:
    path = workdir / "haproxy.cfg"
    path.write_text(config)
    check = await asyncio.create_subprocess_exec(
        HAPROXY, "-c", "-f", str(path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await check.communicate()
    assert check.returncode == 0, out.decode()
    port = int(re.search(r"bind 127\.0\.0\.1:(\d+)", config).group(1))  # type: ignore[union-attr]
    proc = await asyncio.create_subprocess_exec(
        HAPROXY, "-db", "-f", str(path), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(WAIT_S):
            await proc.wait()


async def ready_through(http: aiohttp.ClientSession, url: str, *, count: int) -> set[str]:
    """Ask /readyz through the load balancer until `count` different nodes answered: the ids seen."""
    seen: set[str] = set()
    async with asyncio.timeout(WAIT_S):
        while len(seen) < count:
            try:
                async with http.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        seen.add((await resp.json())["node"]["id"])
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)  # pacing of the polls, not synchronisation: the checks run on HAProxy's clock
    return seen


async def grants_hold(database_url: str, tokens: dict[str, str]) -> None:
    want = {uuid.UUID(pid): hashlib.sha256(token.encode()).digest() for pid, token in tokens.items()}
    conn = await asyncpg.connect(database_url)
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                rows = await conn.fetch(
                    "SELECT participant_id, token_sha256 FROM resume_grants WHERE participant_id = ANY($1::uuid[])",
                    list(want),
                )
                if sum(bytes(r["token_sha256"]) == want[r["participant_id"]] for r in rows) == len(want):
                    return
                await asyncio.sleep(0.05)  # polling the database: the grant writer tells nobody outside its process
    finally:
        await conn.close()


async def test_the_shipped_load_balancer_spreads_sockets_over_the_nodes_and_takes_a_dead_one_out(
    database_url: str, bus_url: str, tmp_path: Path
) -> None:
    # The default grace period: a dead node is noticed by the load balancer's checks and its lease lapses within it.
    nodes = await asyncio.gather(
        *(Node.start(n, database_url, bus_url, tmp_path / n, ROUNDTABLE_RESUME_GRACE_S="30") for n in ("a", "b"))
    )
    a, b = nodes
    try:
        config = shipped_config(free_port(), {"a": a.server.port, "b": b.server.port})
        async with aiohttp.ClientSession() as http, haproxy(config, tmp_path) as lb:
            ids = set()
            for node in nodes:
                async with http.get(f"{node.url}/readyz") as resp:
                    ids.add((await resp.json())["node"]["id"])
            assert await ready_through(http, lb, count=2) == ids  # both nodes in service behind it, by leastconn
            names = [f"p{i}" for i in range(6)]
            _wid, tokens = await new_workshop(http, a, *names)

            class Through:  # the load balancer, where the helpers expect a node
                url = lb

            members = [await join(http, Through(), tokens[n], n) for n in names]  # type: ignore[arg-type]
            everyone = {m.id for m in members}
            await asyncio.gather(*(m.roster_becomes(everyone - {m.id}) for m in members))
            leases = [await n.leases(http) for n in nodes]
            assert sorted(leases) == [0, 1], leases
            owner = a if leases[0] else b
            survivor = b if owner is a else a
            # Every place is kept in PostgreSQL (a resume grant per member, written in the background after the
            # member's attendance): what a node that dies now leaves for the others.
            await grants_hold(database_url, {m.id: m.signal.welcome["resume"] for m in members})

            # The owner dies: its clients and those it served through the other node come back through the load
            # balancer, which has stopped sending anyone to the dead node, and resume in place.
            await owner.kill()
            codes = await asyncio.gather(*(m.signal.wait_closed(WAIT_S) for m in members))
            assert set(codes) <= {1006, 1012}, codes
            assert await ready_through(http, lb, count=1) == {
                (await (await http.get(f"{survivor.url}/readyz")).json())["node"]["id"]
            }

            async def resume(member: Member) -> dict[str, object]:
                async with asyncio.timeout(WAIT_S * 2):
                    while True:  # until the load balancer has marked the dead node down and the lease lapsed
                        try:
                            signal_client = SignalClient(await http.ws_connect(f"{lb}/ws"))
                        except aiohttp.ClientError:  # 502/503 while the dead node is still in service
                            await asyncio.sleep(0.1)  # pacing of the attempts, as a client's backoff
                            continue
                        hello = {
                            "type": "hello",
                            "protocol": [1],
                            "token": tokens[member.name],
                            "resume": member.signal.welcome["resume"],
                        }
                        await signal_client.send(hello)
                        with contextlib.suppress(ConnectionError, TimeoutError):
                            welcome: dict[str, object] = await signal_client.wait_for("welcome", WAIT_S)
                            return welcome
                        await signal_client.ws.close()

            welcomes = await asyncio.gather(*(resume(m) for m in members))
            assert [w["resumed"] for w in welcomes] == [True] * len(members), survivor.log()[-6000:]
            assert await survivor.leases(http) == 1
    finally:
        for node in nodes:
            await node.kill()
    for node in nodes:
        assert "Traceback" not in node.log(), node.log()[-4000:]
