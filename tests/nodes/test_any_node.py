"""Any node takes any connection, one owner per workshop (issue 12, docs/scaling.md): three real `python -m server`
processes on one PostgreSQL and one NATS server. The first session of a workshop makes its node the owner; sockets
on the other nodes are piped to it over the bus; HTTP commands on any node reach it; a SIGKILLed owner's clients on
the other nodes are told to come back (1012) and are served by a new owner once its lease lapsed."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.helpers import ADMIN, WORKSHOP
from tests.nodes.nats_server import NatsServer
from tests.recordings.peer import RecordedPeer
from tests.server.test_process import ROOT, Server, _env, free_port
from tests.signaling.client import SignalClient
from tests.signaling.rtc_peer import RtcPeer, loopback_ice

LEASE_TTL_S = 3.0
KEEPALIVE_S = 0.75
WAIT_S = 30.0  # the bound of every wait (three servers on a loaded 2-core machine)


class Node:
    """One `python -m server` of the deployment, its log drained so it never blocks on a full pipe."""

    def __init__(self, server: Server, name: str) -> None:
        self.server = server
        self.name = name
        self._drain: asyncio.Task[None] | None = None
        self._logged = asyncio.Condition()

    @classmethod
    async def start(
        cls, name: str, database_url: str, bus_url: str, data_dir: Path, *, port: int | None = None, **extra: str
    ) -> Node:
        """A node on `port` (a free one unless given: a node restarted where the load balancer expects it)."""
        port = port or free_port()
        env = _env(
            data_dir,
            port,
            ROUNDTABLE_DATABASE_URL=database_url,
            ROUNDTABLE_BUS_URL=bus_url,
            ROUNDTABLE_LEASE_TTL_S=str(LEASE_TTL_S),
            ROUNDTABLE_FORWARD_KEEPALIVE_S=str(KEEPALIVE_S),
            ROUNDTABLE_ADMIN_TOKEN=ADMIN_TOKEN,
            ROUNDTABLE_SECRET_KEY=SECRET_KEY,
            # A test reads a socket only when it waits on it: a heartbeat longer than any wait keeps the server
            # from closing a socket that a busy test left unread for a while (a node starting on two loaded cores).
            **{"ROUNDTABLE_SFU": "off", "ROUNDTABLE_RESUME_GRACE_S": "5", "ROUNDTABLE_WS_HEARTBEAT_S": "60", **extra},
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        server = Server(proc, port)
        await server.read_until("Running on")
        node = cls(server, name)
        node._drain = asyncio.create_task(node._read_rest())
        return node

    async def _read_rest(self) -> None:
        stderr = self.server.proc.stderr
        assert stderr is not None
        while line := await stderr.readline():
            async with self._logged:
                self.server.output.append(line.decode())
                self._logged.notify_all()

    async def logs(self, needle: str, *, after: int = 0) -> None:
        """Wait until a log line from the `after`th on contains `needle`."""
        async with asyncio.timeout(WAIT_S), self._logged:
            await self._logged.wait_for(lambda: any(needle in line for line in self.server.output[after:]))

    @property
    def url(self) -> str:
        return self.server.url

    async def kill(self) -> None:
        if self.server.proc.returncode is None:
            self.server.proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(WAIT_S):
            await self.server.proc.wait()
        if self._drain is not None:
            async with asyncio.timeout(WAIT_S):
                await self._drain

    async def terminate(self) -> int:
        """SIGTERM, as an orchestrator stops a node: the node drains, then exits; its exit status."""
        self.server.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_S):
            code = await self.server.proc.wait()
        if self._drain is not None:
            async with asyncio.timeout(WAIT_S):
                await self._drain
        return code

    def log(self) -> str:
        return "".join(self.server.output)

    async def leases(self, http: aiohttp.ClientSession) -> int:
        async with http.get(f"{self.url}/readyz") as resp:
            body = await resp.json()
        count: int = body["node"]["leases"]
        return count


@pytest.fixture
async def nodes(database_url: str, bus_url: str, tmp_path: Path) -> AsyncIterator[list[Node]]:
    async with three_nodes(database_url, bus_url, tmp_path) as started:
        yield started


@contextlib.asynccontextmanager
async def three_nodes(database_url: str, bus_url: str, tmp_path: Path, **extra: str) -> AsyncIterator[list[Node]]:
    async with nodes_named(("a", "b", "c"), database_url, bus_url, tmp_path, **extra) as running:
        yield running


@contextlib.asynccontextmanager
async def nodes_named(
    names: tuple[str, ...], database_url: str, bus_url: str, tmp_path: Path, **extra: str
) -> AsyncIterator[list[Node]]:
    """Nodes started at once, killed at the end; none may have logged a traceback."""
    started = await asyncio.gather(
        *(Node.start(name, database_url, bus_url, tmp_path / name, **extra) for name in names),
        return_exceptions=True,
    )
    running = [n for n in started if isinstance(n, Node)]
    try:
        for result in started:
            if isinstance(result, BaseException):
                raise result
        yield running
    finally:
        for node in running:
            await node.kill()
    for node in running:  # nothing a test did may have crashed a handler
        assert "Traceback" not in node.log(), f"node {node.name}:\n{node.log()[-4000:]}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def new_workshop(
    http: aiohttp.ClientSession, node: Node, *names: str, roles: dict[str, str] | None = None, **fields: Any
) -> tuple[str, dict[str, str]]:
    """A workshop (WORKSHOP with `fields`) and its participants' join tokens, by display name (participants unless
    `roles` says otherwise)."""
    async with http.post(f"{node.url}/api/v1/workshops", json={**WORKSHOP, **fields}, headers=ADMIN) as resp:
        assert resp.status == 201, await resp.text()
        workshop = await resp.json()
    tokens = {}
    for name in names:
        body = {"display_name": name, "country": "PT", "role": (roles or {}).get(name, "participant")}
        async with http.post(
            f"{node.url}/api/v1/workshops/{workshop['id']}/participants", json=body, headers=ADMIN
        ) as resp:
            assert resp.status == 201, await resp.text()
            tokens[name] = (await resp.json())["join_token"]
    return workshop["id"], tokens


class Member:
    """A signalling client that keeps its view of the room's roster (welcome, then peer_joined / peer_left)."""

    def __init__(self, signal: SignalClient, name: str) -> None:
        self.signal = signal
        self.name = name
        self.roster = {p["id"] for p in signal.welcome["peers"]}

    @property
    def id(self) -> str:
        return self.signal.id

    async def roster_becomes(self, expected: set[str]) -> None:
        async with asyncio.timeout(WAIT_S):
            while self.roster != expected:
                message = await self.signal.recv(WAIT_S)
                if message["type"] == "peer_joined":
                    self.roster.add(message["peer"]["id"])
                elif message["type"] == "peer_left":
                    self.roster.discard(message["peer_id"])


async def join(http: aiohttp.ClientSession, node: Node, token: str, name: str) -> Member:
    signal_client = SignalClient(await http.ws_connect(f"{node.url}/ws"))
    await signal_client.send({"type": "hello", "protocol": [1], "token": token})
    signal_client.welcome = await signal_client.wait_for("welcome", WAIT_S)
    return Member(signal_client, name)


async def test_members_of_one_room_on_three_nodes_keep_exact_rosters_through_concurrent_joins_and_leaves(
    nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes
    names = [f"p{i}" for i in range(6)]
    _wid, tokens = await new_workshop(http, c, *names)
    first = await join(http, a, tokens["p0"], "p0")  # a owns the workshop from here on
    rest = await asyncio.gather(*(join(http, nodes[i % 3], tokens[n], n) for i, n in enumerate(names[1:], start=1)))
    members = [first, *rest]
    everyone = {m.id for m in members}
    await asyncio.gather(*(m.roster_becomes(everyone - {m.id}) for m in members))
    assert [await n.leases(http) for n in nodes] == [1, 0, 0]

    leaving, staying = members[3:], members[:3]  # one of each node leaves
    for m in leaving:
        await m.signal.send({"type": "leave"})
    codes = await asyncio.gather(*(m.signal.wait_closed(WAIT_S) for m in leaving))
    assert codes == [1000, 1000, 1000]
    left = {m.id for m in staying}
    await asyncio.gather(*(m.roster_becomes(left - {m.id}) for m in staying))

    late = await join(http, b, tokens["p3"], "p3")  # back, through another node than before
    assert {p["id"] for p in late.signal.welcome["peers"]} == left
    await asyncio.gather(*(m.roster_becomes((left | {late.id}) - {m.id}) for m in staying))


async def test_http_mute_and_remove_on_one_node_reach_members_connected_to_the_others(
    nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes
    wid, tokens = await new_workshop(http, a, "ana", "ben")
    ana = await join(http, a, tokens["ana"], "ana")  # the owner's own socket
    ben = await join(http, b, tokens["ben"], "ben")  # forwarded to a
    await ana.roster_becomes({ben.id})

    url = f"{c.url}/api/v1/workshops/{wid}/participants"
    async with http.post(f"{url}/{ben.id}/mute", json={"kind": "audio"}, headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["live"] is True
    assert (await ben.signal.wait_for("mute_requested", WAIT_S))["kind"] == "audio"

    async with http.post(f"{url}/{ana.id}/remove", json={}, headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["live"] is True
    assert await ana.signal.wait_closed(WAIT_S) == 4403
    await ben.roster_becomes(set())

    # Presence, read through a node that owns nothing, is the owner's.
    async with http.get(f"{c.url}/api/v1/workshops/{wid}/presence", headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        presence = await resp.json()
    assert [m["id"] for room in presence["rooms"] for m in room["members"]] == [ben.id]


async def test_a_participant_connected_on_two_nodes_keeps_only_the_newer_connection(
    nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes
    _wid, tokens = await new_workshop(http, a, "ana", "ben")
    ben = await join(http, c, tokens["ben"], "ben")  # c owns the workshop
    ana_on_a = await join(http, a, tokens["ana"], "ana")
    await ben.roster_becomes({ana_on_a.id})
    ana_on_b = await join(http, b, tokens["ana"], "ana")
    assert await ana_on_a.signal.wait_closed(WAIT_S) == 4409
    assert {p["id"] for p in ana_on_b.signal.welcome["peers"]} == {ben.id}
    await ana_on_b.signal.send({"type": "update", "hand": True})
    updated = await ben.signal.wait_for("peer_updated", WAIT_S)
    assert updated["peer"]["id"] == ana_on_b.id
    assert ben.roster == {ana_on_b.id}
    # A frame over every message limit is refused at the edge, as the owner's session would refuse it: the session
    # goes on.
    await ana_on_b.signal.send({"type": "chat", "text": "x" * 300_000})
    assert (await ana_on_b.signal.wait_for("error", WAIT_S))["code"] == "payload_too_large"
    await ana_on_b.signal.send({"type": "update", "hand": False})
    assert (await ben.signal.wait_for("peer_updated", WAIT_S))["peer"]["state"]["hand"] is False


class NodeClient:
    """What RtcPeer asks of a test client (`ws_connect`), against one node of the deployment."""

    def __init__(self, http: aiohttp.ClientSession, node: Node) -> None:
        self.http = http
        self.node = node

    async def ws_connect(self, path: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(f"{self.node.url}{path}", **kwargs)


@pytest.mark.slow
async def test_aiortc_peers_on_different_nodes_negotiate_through_the_bus_and_receive_each_others_media(
    nodes: list[Node], http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)
    a, b, c = nodes
    _wid, tokens = await new_workshop(http, a, "ana", "ben", "eva")
    owner = await join(http, a, tokens["eva"], "eva")  # a owns it; ana and ben are both forwarded to it
    ana = RtcPeer(NodeClient(http, b), tokens["ana"], name="ana")  # type: ignore[arg-type]
    ben = RtcPeer(NodeClient(http, c), tokens["ben"], name="ben")  # type: ignore[arg-type]
    try:
        await ana.start()
        await ben.start()
        await ana.wait_media([ben.id])
        await ben.wait_media([ana.id])
        assert ana.errors == [] and ben.errors == []
        await owner.roster_becomes({ana.id, ben.id})
    finally:
        await asyncio.gather(ana.close(), ben.close(), return_exceptions=True)


async def test_sigkill_of_the_owner_sends_its_workshops_clients_back_and_a_new_owner_serves_them(
    nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes
    _wid, tokens = await new_workshop(http, b, "ana", "ben", "eva")
    eva = await join(http, a, tokens["eva"], "eva")  # a owns the workshop
    ana = await join(http, b, tokens["ana"], "ana")
    ben = await join(http, c, tokens["ben"], "ben")
    await eva.roster_becomes({ana.id, ben.id})

    await a.kill()
    # Told to come back at once by their own nodes: the owner stopped answering the keepalive.
    assert await asyncio.gather(ana.signal.wait_closed(WAIT_S), ben.signal.wait_closed(WAIT_S)) == [1012, 1012]

    # Both come back through their nodes: they wait there until a's lease lapsed, and one of b and c takes it.
    ana2, ben2 = await asyncio.gather(join(http, b, tokens["ana"], "ana"), join(http, c, tokens["ben"], "ben"))
    await asyncio.gather(ana2.roster_becomes({ben2.id}), ben2.roster_becomes({ana2.id}))
    assert sorted([await b.leases(http), await c.leases(http)]) == [0, 1]
    await ana2.signal.send({"type": "update", "hand": True})
    assert (await ben2.signal.wait_for("peer_updated", WAIT_S))["peer"]["id"] == ana2.id


async def test_a_killed_edge_is_a_dropped_socket_for_the_owner_and_its_client_resumes_through_another_node(
    nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes
    _wid, tokens = await new_workshop(http, a, "ana", "eva")
    eva = await join(http, a, tokens["eva"], "eva")  # a owns the workshop
    ana = await join(http, b, tokens["ana"], "ana")  # through b
    await eva.roster_becomes({ana.id})

    await b.kill()
    # b's pings stop: the owner keeps ana's place for the grace period, as for any dropped socket.
    assert (await eva.signal.wait_for("peer_reconnecting", WAIT_S))["peer_id"] == ana.id
    signal_client = SignalClient(await http.ws_connect(f"{c.url}/ws"))
    resume = ana.signal.welcome["resume"]
    await signal_client.send({"type": "hello", "protocol": [1], "token": tokens["ana"], "resume": resume})
    welcome = await signal_client.wait_for("welcome", WAIT_S)
    assert welcome["resumed"] is True and welcome["self"]["id"] == ana.id
    assert (await eva.signal.wait_for("peer_resumed", WAIT_S))["peer_id"] == ana.id
    assert eva.roster == {ana.id}


async def test_a_drained_owner_sends_every_client_to_another_node_where_each_resumes_in_place(
    nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes
    _wid, tokens = await new_workshop(http, b, "ana", "eva", "ivo")
    ana = await join(http, a, tokens["ana"], "ana")  # a owns the workshop
    eva = await join(http, a, tokens["eva"], "eva")
    ivo = await join(http, b, tokens["ivo"], "ivo")  # forwarded to a through b
    await ana.roster_becomes({eva.id, ivo.id})
    await eva.signal.send({"type": "update", "hand": True})
    await ana.signal.wait_for("peer_updated", WAIT_S)

    assert await a.terminate() == 0
    # Drained: its own sockets and the one it served through b are told to come back now.
    codes = await asyncio.gather(*(m.signal.wait_closed(WAIT_S) for m in (ana, eva, ivo)))
    assert codes == [1012, 1012, 1012], codes
    assert "Traceback" not in a.log()

    async def resume(member: Member, node: Node) -> dict[str, Any]:
        signal_client = SignalClient(await http.ws_connect(f"{node.url}/ws"))
        hello = {
            "type": "hello",
            "protocol": [1],
            "token": tokens[member.name],
            "resume": member.signal.welcome["resume"],
        }
        await signal_client.send(hello)
        welcome: dict[str, Any] = await signal_client.wait_for("welcome", WAIT_S)
        return welcome

    # Each comes back through a node of its own: one of them takes the workshop over, and every place is kept.
    welcomes = await asyncio.gather(resume(ana, b), resume(eva, c), resume(ivo, b))
    for member, welcome in zip((ana, eva, ivo), welcomes, strict=True):
        assert welcome["resumed"] is True and welcome["self"]["id"] == member.id, welcome
        assert welcome["room"]["id"] == ana.signal.welcome["room"]["id"]
    assert welcomes[1]["self"]["state"]["hand"] is True  # her raised hand came with her
    assert sorted([await b.leases(http), await c.leases(http)]) == [0, 1]


async def test_breakouts_opened_through_a_node_that_owns_nothing_move_members_of_two_nodes_and_end_once(
    nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes
    names = ["ana", "ben", "eva", "ivo"]
    wid, tokens = await new_workshop(http, c, *names)
    members = [await join(http, a, tokens[n], n) for n in names[:2]]  # a owns the workshop
    members += [await join(http, b, tokens[n], n) for n in names[2:]]
    plenary = members[0].signal.welcome["room"]["id"]
    everyone = {m.id for m in members}
    await asyncio.gather(*(m.roster_becomes(everyone - {m.id}) for m in members))

    base = f"{c.url}/api/v1/workshops/{wid}/breakouts"
    spec = {"name": "Pairs", "rooms": 2, "strategy": "random", "countdown_s": 0}
    async with http.post(base, json=spec, headers=ADMIN) as resp:
        assert resp.status == 201, await resp.text()
        plan = await resp.json()
    async with http.post(f"{base}/{plan['id']}/open", json={"duration_s": 2}, headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["state"] == "open"  # read back after the owner opened it

    async def goes_and_comes_back(member: Member) -> list[str]:
        out = await member.signal.wait_for("moved", WAIT_S)
        assert out["room"]["id"] == plan["assignments"][member.id]
        back = await member.signal.wait_for("moved", WAIT_S)  # the deadline, armed on the owner alone
        assert back["room"]["id"] == plenary
        return [m["type"] for m in member.signal.seen]

    seen = await asyncio.gather(*(goes_and_comes_back(m) for m in members))
    # One more round trip through the owner: anything a second timer had sent would have arrived before it.
    await members[0].signal.send({"type": "update", "hand": True})
    for m in members[1:]:
        await m.signal.wait_for("peer_updated", WAIT_S)
    for m, types in zip(members, seen, strict=True):
        assert types.count("breakouts_opened") == 1 and types.count("breakouts_closed") == 1, m.name
        assert [t["type"] for t in m.signal.seen].count("moved") == 2, m.name


async def test_an_owner_paused_past_its_lease_closes_its_sessions_with_1012_when_it_wakes_and_they_find_the_new_owner(
    nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    a, b, _c = nodes
    _wid, tokens = await new_workshop(http, a, "ana", "eva")
    eva = await join(http, a, tokens["eva"], "eva")  # a owns the workshop; eva's socket is a's own
    ana = await join(http, b, tokens["ana"], "ana")
    await eva.roster_becomes({ana.id})

    a.server.proc.send_signal(signal.SIGSTOP)
    try:
        assert await ana.signal.wait_closed(WAIT_S) == 1012  # b heard no pong from a
        # b holds ana's hello until a's lease lapses, then takes the workshop over.
        ana2 = await join(http, b, tokens["ana"], "ana")
        assert ana2.roster == set()
        assert await b.leases(http) == 1
    finally:
        a.server.proc.send_signal(signal.SIGCONT)
    # Awake, a finds its lease gone: its own sessions of the workshop are told to come back now.
    assert await eva.signal.wait_closed(WAIT_S) == 1012
    assert await a.leases(http) == 0
    eva2 = await join(http, a, tokens["eva"], "eva")  # through a, which forwards to b now
    assert {p["id"] for p in eva2.signal.welcome["peers"]} == {ana2.id}
    await ana2.roster_becomes({eva2.id})


async def test_a_knock_through_one_node_is_seen_and_admitted_through_another(
    nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes
    wid, people = await new_workshop(http, a, "mia", "ana", roles={"mia": "moderator"}, lobby="everyone")
    mia = await join(http, a, people["mia"], "mia")  # a moderator walks in; a owns the workshop
    knocker = SignalClient(await http.ws_connect(f"{b.url}/ws"))
    await knocker.send({"type": "hello", "protocol": [1], "token": people["ana"]})
    assert (await knocker.wait_for("lobby", WAIT_S))["type"] == "lobby"
    knock = await mia.signal.wait_for("knock", WAIT_S)

    lobby = f"{c.url}/api/v1/workshops/{wid}/lobby"
    async with http.get(lobby, headers=ADMIN) as resp:  # c holds no knock: the owner's are read
        assert resp.status == 200, await resp.text()
        assert [k["id"] for k in (await resp.json())["knocks"]] == [knock["knock"]["id"]]
    async with http.post(f"{lobby}/admit", json={"all": True}, headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["admitted"] == 1
    welcome = await knocker.wait_for("welcome", WAIT_S)
    assert {p["id"] for p in welcome["peers"]} == {mia.id}


async def test_a_bus_outage_sends_every_forwarded_and_owned_session_back_and_the_nodes_serve_again_after_it(
    database_url: str, nats_server: NatsServer, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with three_nodes(database_url, nats_server.url, tmp_path) as (a, b, c):
        _wid, tokens = await new_workshop(http, a, "ana", "eva", "ivo")
        eva = await join(http, a, tokens["eva"], "eva")  # a owns the workshop
        ana = await join(http, b, tokens["ana"], "ana")
        await eva.roster_becomes({ana.id})
        marks = [len(n.server.output) for n in (a, b, c)]

        nats_server.kill()
        assert await ana.signal.wait_closed(WAIT_S) == 1012  # b cannot reach the owner
        # Nobody serves the workshop where it cannot be shared: c, cut off too, refuses a newcomer.
        ivo = SignalClient(await http.ws_connect(f"{c.url}/ws"))
        await ivo.send({"type": "hello", "protocol": [1], "token": tokens["ivo"]})
        assert (await ivo.wait_for("error", WAIT_S))["code"] == "unavailable"
        assert await ivo.wait_closed(WAIT_S) == 1012
        # a stops renewing while its bus is down: the lease lapses, and a's own session of it is sent back too.
        assert await eva.signal.wait_closed(WAIT_S) == 1012

        nats_server.start()
        for node, mark in zip((a, b, c), marks, strict=True):
            await node.logs("bus: reconnected", after=mark)
        ana2 = await join(http, b, tokens["ana"], "ana")
        eva2 = await join(http, a, tokens["eva"], "eva")
        ivo2 = await join(http, c, tokens["ivo"], "ivo")
        everyone = {ana2.id, eva2.id, ivo2.id}
        await asyncio.gather(*(m.roster_becomes(everyone - {m.id}) for m in (ana2, eva2, ivo2)))
        assert sum([await n.leases(http) for n in (a, b, c)]) == 1


async def open_breakouts(http: aiohttp.ClientSession, node: Node, wid: str, duration_s: int) -> dict[str, Any]:
    """A plan of two rooms (everyone placed at random, no countdown), opened through `node`."""
    base = f"{node.url}/api/v1/workshops/{wid}/breakouts"
    spec = {"name": "Pairs", "rooms": 2, "strategy": "random", "countdown_s": 0}
    async with http.post(base, json=spec, headers=ADMIN) as resp:
        assert resp.status == 201, await resp.text()
        plan: dict[str, Any] = await resp.json()
    async with http.post(f"{base}/{plan['id']}/open", json={"duration_s": duration_s}, headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
    return plan


async def plan_closings(database_url: str, wid: str) -> int:
    """How many times the workshop's breakouts were closed, as the record says."""
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM audit_entries WHERE workshop_id = $1 AND action = 'breakouts.close'", uuid.UUID(wid)
        )
    finally:
        await conn.close()
    return count


async def test_a_plan_running_while_another_node_starts_is_ended_once_by_the_owner_alone(
    nodes: list[Node], http: aiohttp.ClientSession, database_url: str, bus_url: str, tmp_path: Path
) -> None:
    a, b, c = nodes
    wid, tokens = await new_workshop(http, a, "ana", "ben")
    ana = await join(http, a, tokens["ana"], "ana")  # a owns the workshop
    ben = await join(http, b, tokens["ben"], "ben")
    plenary = ana.signal.welcome["room"]["id"]
    await ana.roster_becomes({ben.id})
    await c.kill()  # c is replaced by a new node while the plan runs
    plan = await open_breakouts(http, b, wid, duration_s=8)
    for m in (ana, ben):
        assert (await m.signal.wait_for("moved", WAIT_S))["room"]["id"] == plan["assignments"][m.id]
    c2 = await Node.start("c2", database_url, bus_url, tmp_path / "c2")
    nodes[2] = c2  # the fixture kills it and reads its log
    for m in (ana, ben):
        assert (await m.signal.wait_for("moved", WAIT_S))["room"]["id"] == plenary  # the owner's deadline
    await ana.signal.send({"type": "update", "hand": True})  # one round trip through the owner, then count
    await ben.signal.wait_for("peer_updated", WAIT_S)
    for m in (ana, ben):
        assert [t["type"] for t in m.signal.seen].count("breakouts_closed") == 1, m.name
    assert await plan_closings(database_url, wid) == 1
    assert "resumed breakouts" not in c2.log()  # the new node armed nothing of a workshop it does not own


async def test_after_the_owner_is_killed_mid_breakout_the_new_owner_ends_it_once_at_its_deadline(
    nodes: list[Node], http: aiohttp.ClientSession, database_url: str
) -> None:
    a, b, c = nodes
    wid, tokens = await new_workshop(http, b, "eva", "ana", "ben")
    eva = await join(http, a, tokens["eva"], "eva")  # a owns the workshop
    ana = await join(http, b, tokens["ana"], "ana")
    ben = await join(http, c, tokens["ben"], "ben")
    plenary = eva.signal.welcome["room"]["id"]
    await eva.roster_becomes({ana.id, ben.id})
    plan = await open_breakouts(http, b, wid, duration_s=15)
    for m in (ana, ben):
        assert (await m.signal.wait_for("moved", WAIT_S))["room"]["id"] == plan["assignments"][m.id]

    await a.kill()
    assert await asyncio.gather(ana.signal.wait_closed(WAIT_S), ben.signal.wait_closed(WAIT_S)) == [1012, 1012]
    back = await asyncio.gather(resume(http, b, tokens["ana"], ana), resume(http, c, tokens["ben"], ben))
    for m, was in zip(back, (ana, ben), strict=True):
        assert m.signal.welcome["resumed"] is True, was.name
        assert m.signal.welcome["room"]["id"] == plan["assignments"][was.id]  # still in its breakout room
    for m in back:  # the new owner armed the stored deadline when it took the workshop over
        assert (await m.signal.wait_for("moved", WAIT_S))["room"]["id"] == plenary
    await back[0].signal.send({"type": "update", "hand": True})
    await back[1].signal.wait_for("peer_updated", WAIT_S)
    for m in back:
        assert [t["type"] for t in m.signal.seen].count("breakouts_closed") == 1, m.name
    assert await plan_closings(database_url, wid) == 1
    assert "took over breakouts" in b.log() + c.log()


async def resume(http: aiohttp.ClientSession, node: Node, token: str, was: Member) -> Member:
    """`was` comes back through `node` with its resume token."""
    signal_client = SignalClient(await http.ws_connect(f"{node.url}/ws"))
    resume_token = was.signal.welcome["resume"]
    await signal_client.send({"type": "hello", "protocol": [1], "token": token, "resume": resume_token})
    signal_client.welcome = await signal_client.wait_for("welcome", WAIT_S)
    return Member(signal_client, was.name)


async def test_a_recording_started_through_a_node_that_owns_nothing_runs_on_the_owner_and_stops_through_a_third(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)
    shared = {"ROUNDTABLE_RECORDINGS_DIR": str(tmp_path / "recordings"), "ROUNDTABLE_ICE_HOST_ADDRESSES": "127.0.0.1"}
    async with three_nodes(database_url, bus_url, tmp_path, **shared) as (a, b, c):
        _wid, tokens = await new_workshop(http, a, "eva", "ana")
        eva = await join(http, a, tokens["eva"], "eva")  # a owns the workshop
        ana = RecordedPeer(NodeClient(http, c), tokens["ana"], "red", 440)  # type: ignore[arg-type]
        try:
            await ana.join()  # through c, forwarded to a
            plenary = eva.signal.welcome["room"]["id"]
            async with http.post(f"{b.url}/api/v1/rooms/{plenary}/recordings", headers=ADMIN) as resp:
                assert resp.status == 201, await resp.text()
                rec = await resp.json()
            assert rec["state"] == "recording" and rec["recorder_peer_id"] is not None  # read from the owner
            # The recorder joined the owner's room: its members hear of it, wherever their sockets are.
            started = await ana.next("recording_started")
            assert (started["recording_id"], started["recorder_peer_id"]) == (rec["id"], rec["recorder_peer_id"])
            assert (await eva.signal.wait_for("recording_started", WAIT_S))["recording_id"] == rec["id"]
            await ana.consent(rec["id"], True)
            await ana.send_media(started["recorder_peer_id"])
            await ana.wait_sending()

            async with http.post(f"{c.url}/api/v1/recordings/{rec['id']}/stop", headers=ADMIN) as resp:
                assert resp.status == 200, await resp.text()
                done = await resp.json()
            assert done["state"] == "ready" and done["partial"] is False
            assert sorted((t["participant_id"], t["kind"]) for t in done["tracks"]) == [
                (ana.id, "audio"),
                (ana.id, "video"),
            ]
            assert (await ana.next("recording_stopped"))["recording_id"] == rec["id"]
            for track in done["tracks"]:  # served by c from the storage every node shares
                async with http.get(track["download_url"]) as resp:
                    assert resp.status == 200
                    assert hashlib.sha256(await resp.read()).hexdigest() == track["sha256"]
        finally:
            await ana.close()


async def test_a_knock_left_on_a_killed_owner_is_taken_up_by_the_new_owner_and_admitted_there(
    nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes
    wid, people = await new_workshop(http, a, "mia", "ana", roles={"mia": "moderator"}, lobby="everyone")
    mia = await join(http, a, people["mia"], "mia")  # a owns the workshop
    knocker = SignalClient(await http.ws_connect(f"{b.url}/ws"))
    await knocker.send({"type": "hello", "protocol": [1], "token": people["ana"]})
    knock_id = (await knocker.wait_for("lobby", WAIT_S))["knock_id"]
    await mia.signal.wait_for("knock", WAIT_S)

    await a.kill()
    assert await knocker.wait_closed(WAIT_S) == 1012  # b heard the owner go silent
    # The moderator comes back through c; the new owner took the knock up from PostgreSQL when it took the lease,
    # before its knocker returned: she sees it in her welcome, or is told just after.
    mia2 = await resume(http, c, people["mia"], mia)
    assert mia2.signal.welcome["resumed"] is True
    knocks = [k["id"] for k in mia2.signal.welcome["knocks"]]
    if knock_id not in knocks:
        assert (await mia2.signal.wait_for("knock", WAIT_S))["knock"]["id"] == knock_id
    async with http.post(f"{b.url}/api/v1/workshops/{wid}/lobby/admit", json={"all": True}, headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["admitted"] == 1
    ana = await join(http, b, people["ana"], "ana")  # admitted meanwhile: straight in
    assert {p["id"] for p in ana.signal.welcome["peers"]} == {mia2.id}


def set_clock(path: Path, at: datetime) -> None:
    """Move every node's clock of the record (ROUNDTABLE_CLOCK_FILE), in one rename so no node reads half a time."""
    partial = path.with_suffix(".new")
    partial.write_text(at.isoformat(), encoding="utf-8")
    os.replace(partial, path)


async def test_the_agendas_edges_fire_on_the_workshops_owner_alone_and_once(
    database_url: str, bus_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    t0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    clock = tmp_path / "clock"
    set_clock(clock, t0)
    env = {"ROUNDTABLE_CLOCK_FILE": str(clock), "ROUNDTABLE_AGENDA_TICK_S": "0.2"}
    async with three_nodes(database_url, bus_url, tmp_path, **env) as (a, b, c):
        wid, tokens = await new_workshop(http, a, "eva", "ana")
        eva = await join(http, a, tokens["eva"], "eva")  # a owns the workshop
        ana = await join(http, b, tokens["ana"], "ana")
        await eva.roster_becomes({ana.id})
        session = {
            "title": "Keynote",
            "kind": "plenary",
            "starts_at": (t0 + timedelta(minutes=5)).isoformat(),
            "ends_at": (t0 + timedelta(minutes=50)).isoformat(),
            "record": True,
        }
        async with http.post(f"{c.url}/api/v1/workshops/{wid}/agenda", json=session, headers=ADMIN) as resp:
            assert resp.status == 201, await resp.text()

        # Every node's scheduler sees the start due; only the owner's fires it, so the recorder joins the room
        # where its members are.
        set_clock(clock, t0 + timedelta(minutes=5))
        started = [await m.signal.wait_for("recording_started", WAIT_S) for m in (eva, ana)]
        assert started[0]["recording_id"] == started[1]["recording_id"]
        set_clock(clock, t0 + timedelta(minutes=50))
        for m in (eva, ana):
            assert (await m.signal.wait_for("recording_stopped", WAIT_S))["recording_id"] == started[0]["recording_id"]

        async with http.get(f"{a.url}/readyz") as resp:
            owner = (await resp.json())["node"]["id"]
        conn = await asyncpg.connect(database_url)
        try:
            nodes_of = await conn.fetch("SELECT node_id FROM recordings WHERE workshop_id = $1", uuid.UUID(wid))
            edges = await conn.fetch(
                "SELECT action FROM audit_entries WHERE workshop_id = $1 AND action IN ('agenda.start', 'agenda.end')",
                uuid.UUID(wid),
            )
        finally:
            await conn.close()
        assert [r["node_id"] for r in nodes_of] == [owner]
        assert sorted(r["action"] for r in edges) == ["agenda.end", "agenda.start"]


async def test_an_owner_paused_past_its_lease_sends_its_knockers_back_when_it_wakes_and_the_new_owner_admits_them(
    nodes: list[Node], http: aiohttp.ClientSession
) -> None:
    a, b, c = nodes
    wid, people = await new_workshop(http, a, "mia", "ana", roles={"mia": "moderator"}, lobby="everyone")
    mia = await join(http, a, people["mia"], "mia")  # a owns the workshop
    knocker = SignalClient(await http.ws_connect(f"{a.url}/ws"))  # waits on a itself
    await knocker.send({"type": "hello", "protocol": [1], "token": people["ana"]})
    knock_id = (await knocker.wait_for("lobby", WAIT_S))["knock_id"]

    a.server.proc.send_signal(signal.SIGSTOP)
    try:
        # The moderator comes back through b, which waits for a's lease to lapse and takes the workshop over.
        mia2 = await join(http, b, people["mia"], "mia")
        assert [k["id"] for k in mia2.signal.welcome["knocks"]] in ([], [knock_id])
        assert await b.leases(http) == 1
    finally:
        a.server.proc.send_signal(signal.SIGCONT)
    # Awake, a finds its lease gone: the knocker waiting there is told to come back now, like its members.
    assert await knocker.wait_closed(WAIT_S) == 1012
    assert await mia.signal.wait_closed(WAIT_S) == 1012
    knocker2 = SignalClient(await http.ws_connect(f"{c.url}/ws"))
    await knocker2.send({"type": "hello", "protocol": [1], "token": people["ana"]})
    assert (await knocker2.wait_for("lobby", WAIT_S))["knock_id"] == knock_id  # the same knock, on the new owner
    async with http.post(f"{a.url}/api/v1/workshops/{wid}/lobby/admit", json={"all": True}, headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["admitted"] == 1
    welcome = await knocker2.wait_for("welcome", WAIT_S)
    assert {p["id"] for p in welcome["peers"]} == {mia2.id}
