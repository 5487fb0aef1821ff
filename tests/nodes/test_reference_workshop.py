"""Issue 12's "done when": three nodes behind a load balancer run the reference workshop (sixty members, breakouts, a
recording) with its members spread over them, and survive losing any one node with everybody back in place.

Three real `python -m server` processes on one PostgreSQL and one NATS server (tests/nodes/test_any_node.py), the
HAProxy configuration of docker-compose.nodes.yml in front of them as shipped (tests/nodes/test_load_balancer.py),
plus one response header that names the server it chose, so that the test knows where each socket landed. Sixty
members connect through it: fifty-eight signalling clients and two aiortc peers that send media to the recorder of
their breakout room. First an edge node (one that owns nothing) is SIGKILLed, then restarted on its port, then the
owner is SIGKILLed: each time everybody on a dead node comes back through the load balancer into its place."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.helpers import bearer
from tests.nodes.test_any_node import WAIT_S, Node, new_workshop, plan_closings, three_nodes
from tests.nodes.test_failover_breakout import presence
from tests.nodes.test_load_balancer import haproxy, ready_through, shipped_config
from tests.recordings.peer import ColourTrack, ToneTrack
from tests.server.test_process import free_port
from tests.signaling.rtc_peer import loopback_ice

pytestmark = pytest.mark.slow

MEMBERS = 60
ROOMS = 6
# The breakouts' duration: past the recording's start, the edge's death, its restart and the owner's death, each
# followed by everybody's return, on a loaded 2-core machine.
DEADLINE_S = 40
SERVED_BY = "X-Served-By"

# Every write to what the test reads from the record is announced, so it re-reads only when something changed.
WATCH = """
CREATE FUNCTION rt_test_reference_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('rt_test_reference', TG_TABLE_NAME); RETURN NULL; END $$;
""" + "".join(
    f"CREATE TRIGGER rt_test_reference_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
    "FOR EACH STATEMENT EXECUTE FUNCTION rt_test_reference_notify();\n"
    for table in ("visits", "recordings", "recording_tracks", "resume_grants")
)


class Record:
    """The database as the test reads it: a query re-run at each write until it gives what is expected."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.written: asyncio.Queue[str] = asyncio.Queue()

    @classmethod
    async def open(cls, database_url: str) -> Record:
        record = cls(await asyncpg.connect(database_url))
        await record.conn.execute(WATCH)
        await record.conn.add_listener("rt_test_reference", lambda *_: record.written.put_nowait(""))
        return record

    async def until(self, read: Callable[[asyncpg.Connection], Any], expected: Any) -> None:
        got = None
        try:
            async with asyncio.timeout(WAIT_S):
                while (got := await read(self.conn)) != expected:
                    await self.written.get()
        except TimeoutError:
            raise AssertionError(f"the record still says {got!r}, not {expected!r}") from None

    async def grants_hold(self, tokens: dict[str, str]) -> None:
        """Every place is kept in PostgreSQL with its latest resume token: what a node that dies leaves the others."""
        want = {uuid.UUID(pid): hashlib.sha256(token.encode()).digest() for pid, token in tokens.items()}

        async def held(conn: asyncpg.Connection) -> int:
            rows = await conn.fetch(
                "SELECT participant_id, token_sha256 FROM resume_grants WHERE participant_id = ANY($1::uuid[])",
                list(want),
            )
            return sum(bytes(r["token_sha256"]) == want[r["participant_id"]] for r in rows)

        await self.until(held, len(want))


class Seat:
    """One member's place, reached through the load balancer; each connection is read all the time (a client that
    stops reading misses its node's heartbeat), and every message of every connection is kept in order."""

    def __init__(self, name: str, token: str) -> None:
        self.name = name
        self.token = token
        self.node = ""  # the load balancer's name of the server this connection landed on
        self.welcome: dict[str, Any] = {}
        self.welcomes: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []  # every connection's messages after its welcome, in order
        self.since = 0  # where this connection's messages start in `seen`
        self.closed: int | None = None  # this connection's close code, once it closed
        self.failed: list[str] = []  # attempts that got no welcome (a node down, an owner not there yet)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    @property
    def id(self) -> str:
        peer_id: str = self.welcomes[0]["self"]["id"]
        return peer_id

    @property
    def room(self) -> str:
        """The room this connection is in: its welcome's, or the last `moved`'s."""
        room: str = self.welcome["room"]["id"]
        for message in self.seen[self.since :]:
            if message["type"] == "moved":
                room = message["room"]["id"]
        return room

    @property
    def roster(self) -> set[str]:
        """The room's members as this connection was told: its welcome, then joins, leaves and moves."""
        roster = {p["id"] for p in self.welcome["peers"]}
        for message in self.seen[self.since :]:
            if message["type"] == "peer_joined":
                roster.add(message["peer"]["id"])
            elif message["type"] == "peer_left":
                roster.discard(message["peer_id"])
            elif message["type"] == "moved":
                roster = {p["id"] for p in message["peers"]}
        return roster

    @property
    def away(self) -> set[str]:
        """The members of the room this connection was last told are reconnecting (not back yet)."""
        away = {p["id"] for p in self.welcome["peers"] if p.get("reconnecting")}
        for message in self.seen[self.since :]:
            if message["type"] == "peer_joined" and message["peer"].get("reconnecting"):
                away.add(message["peer"]["id"])
            elif message["type"] == "peer_reconnecting":
                away.add(message["peer_id"])
            elif message["type"] in ("peer_resumed", "peer_left"):
                away.discard(message["peer_id"])
            elif message["type"] == "moved":
                away = {p["id"] for p in message["peers"] if p.get("reconnecting")}
        return away

    def count(self, type_: str, **match: Any) -> int:
        """Messages of `type_` (with these fields) over all of this seat's connections."""
        return sum(m["type"] == type_ and all(m.get(k) == v for k, v in match.items()) for m in self.seen)

    async def connect(self, http: aiohttp.ClientSession, lb: str, *, resume: bool = False) -> None:
        """Through the load balancer until a node welcomes this seat (with its latest resume token if `resume`)."""
        async with asyncio.timeout(WAIT_S * 2):
            while True:
                try:
                    ws = await http.ws_connect(f"{lb}/ws")
                except aiohttp.ClientError as exc:  # 502/503 while a dead node is still in service
                    self.failed.append(repr(exc))
                    await asyncio.sleep(0.1)  # pacing of the attempts, as a client's backoff
                    continue
                hello = {"type": "hello", "protocol": [1], "token": self.token}
                if resume:
                    hello["resume"] = self.welcome["resume"]
                await ws.send_json(hello)
                first = await ws.receive()
                if first.type == aiohttp.WSMsgType.TEXT:
                    welcome = json.loads(first.data)
                    if welcome["type"] == "welcome":
                        break
                    # Refused for now: the owner it was sent to is gone and no node took the workshop over yet.
                    assert welcome == {**welcome, "type": "error", "code": "unavailable"}, (self.name, welcome)
                else:  # told to come back (1012), or dropped by a node that just died
                    assert first.type != aiohttp.WSMsgType.CLOSE or first.data in (1006, 1012), (self.name, first)
                self.failed.append(f"{first.type.name} {first.data}")
                await ws.close()
        self._ws = ws
        self.node = ws._response.headers[SERVED_BY]  # the upgrade's response (aiohttp keeps it there)
        self.welcome = welcome
        self.welcomes.append(welcome)
        self.since = len(self.seen)
        self.closed = None
        self._reader = asyncio.create_task(self._read(ws), name=f"seat {self.name}")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            message = await ws.receive()
            async with self._changed:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.seen.append(json.loads(message.data))
                else:
                    # The code the server sent (aiohttp may report 1006 in close_code although the frame arrived).
                    self.closed = message.data if message.type == aiohttp.WSMsgType.CLOSE else ws.close_code
                    self.closed = self.closed or 1006
                self._changed.notify_all()
            if self.closed is not None:
                return

    async def until(self, check: Callable[[], bool], what: str, *, timeout_s: float = WAIT_S) -> None:
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(check)
        except TimeoutError:
            raise AssertionError(f"{self.name} on {self.node}: no {what}; seen {self.seen[self.since :]}") from None

    async def next(self, type_: str, *, timeout_s: float = WAIT_S, **match: Any) -> dict[str, Any]:
        """The first message of `type_` (with these fields) on this connection."""

        def found() -> dict[str, Any] | None:
            return next(
                (
                    m
                    for m in self.seen[self.since :]
                    if m["type"] == type_ and all(m.get(k) == v for k, v in match.items())
                ),
                None,
            )

        await self.until(lambda: found() is not None, type_, timeout_s=timeout_s)
        message = found()
        assert message is not None
        return message

    async def comes_back(self, http: aiohttp.ClientSession, lb: str) -> int:
        """Once this connection closed, reconnect with the resume token; the close code."""
        await self.until(lambda: self.closed is not None, "close")
        code = self.closed
        assert code is not None
        await self.connect(http, lb, resume=True)
        return code

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_json(message)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(WAIT_S):
                    await self._reader


class Media:
    """A member's aiortc peer that sends a colour and a tone to its room's recorder, as a browser does after it
    consented (tests/recordings/peer.py's tracks)."""

    def __init__(self, seat: Seat, colour: str, hz: int) -> None:
        self.seat = seat
        self.video = ColourTrack(colour)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(ToneTrack(hz))
        self.pc.addTrack(self.video)
        self.connected = asyncio.Event()

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            if self.pc.connectionState == "connected":
                self.connected.set()

    async def send_to(self, recording_id: str) -> None:
        started = await self.seat.next("recording_started", recording_id=recording_id)
        await self.seat.send({"type": "consent", "recording_id": recording_id, "granted": True, "request_id": "rec"})
        await self.seat.next("ack", request_id="rec")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        await self.seat.send({"type": "offer", "to": started["recorder_peer_id"], "sdp": sdp})
        answer = await self.seat.next("answer")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        async with asyncio.timeout(WAIT_S):
            await self.connected.wait()
            await self.video.enough.wait()  # a good second and a half of video on its way


async def node_id(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/readyz") as resp:
        assert resp.status == 200, await resp.text()
        ident: str = (await resp.json())["node"]["id"]
    return ident


async def in_service(http: aiohttp.ClientSession, lb: str, ident: str) -> None:
    """Ask /readyz through the load balancer until the node `ident` answers (leastconn sends the next request to the
    node with the fewest connections: a node that just came back)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{lb}/readyz") as resp:
                    if resp.status == 200 and (await resp.json())["node"]["id"] == ident:
                        return
            await asyncio.sleep(0.1)  # pacing of the polls, not synchronisation: the checks run on HAProxy's clock


async def in_place(
    http: aiohttp.ClientSession, live: list[Node], wid: str, seats: list[Seat], rooms: dict[str, str]
) -> None:
    """Every seat's connection is in its room with exactly its room's members, and the owner, asked through each
    live node, holds each member once, connected, in that room."""
    mates = {s.id: {o.id for o in seats if o is not s and rooms[o.id] == rooms[s.id]} for s in seats}
    for seat in seats:
        assert seat.room == rooms[seat.id], seat.name
        await seat.until(
            lambda seat=seat: seat.roster == mates[seat.id] and not seat.away,  # type: ignore[misc]
            f"roster of {len(mates[seat.id])}, all there",
        )
    for node in live:
        present = await presence(http, node, wid)
        assert Counter(pid for pid, _room, _connected in present) == Counter(list(rooms)), node.name
        assert {pid: (room, connected) for pid, room, connected in present} == {
            pid: (room, True) for pid, room in rooms.items()
        }, node.name


async def test_three_nodes_behind_the_load_balancer_run_the_reference_workshop_and_survive_losing_any_one(
    database_url: str, bus_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)
    env = {
        "ROUNDTABLE_RECORDINGS_DIR": str(tmp_path / "recordings"),  # the volume every node mounts
        "ROUNDTABLE_ICE_HOST_ADDRESSES": "127.0.0.1",
        "ROUNDTABLE_RESUME_GRACE_S": "30",  # the default: a dead node's lease lapses and the balancer notices it within
    }
    connector = aiohttp.TCPConnector(limit=0)  # sixty sockets and the test's requests at once
    async with (
        three_nodes(database_url, bus_url, tmp_path, **env) as nodes,
        aiohttp.ClientSession(connector=connector) as http,
    ):
        ids = {n.name: await node_id(http, n.url) for n in nodes}
        config = shipped_config(free_port(), {n.name: n.server.port for n in nodes})
        config += f"  http-response set-header {SERVED_BY} %[srv_name]\n"  # where each socket landed, for the test
        record = await Record.open(database_url)
        media: list[Media] = []
        seats: list[Seat] = []
        try:
            async with haproxy(config, tmp_path) as lb:
                assert await ready_through(http, lb, count=3) == set(ids.values())
                names = [f"p{i:02}" for i in range(MEMBERS)]
                wid, tokens = await new_workshop(http, nodes[0], "mia", *names, roles={"mia": "moderator"})
                moderator = bearer(tokens["mia"])
                seats = [Seat(n, tokens[n]) for n in names]

                # Everyone walks in through the load balancer; the first makes its node the workshop's owner.
                await seats[0].connect(http, lb)
                await asyncio.gather(*(s.connect(http, lb) for s in seats[1:]))
                plenary = seats[0].welcome["room"]["id"]
                everyone = {s.id for s in seats}
                assert len(everyone) == MEMBERS
                await in_place(http, nodes, wid, seats, dict.fromkeys(everyone, plenary))
                by_name = {n.name: n for n in nodes}
                spread = Counter(s.node for s in seats)
                assert set(spread) == set(by_name), spread  # every node serves some of them
                leases = {n.name: await n.leases(http) for n in nodes}
                assert sorted(leases.values()) == [0, 0, 1], leases
                owner = by_name[seats[0].node]
                assert leases[owner.name] == 1
                edge, third = (n for n in nodes if n is not owner)

                # The moderator opens six breakout rooms through a node that owns nothing: everyone placed at
                # random, except the two who will send media, who are placed together in the room to be recorded.
                senders = seats[-2:]
                base = f"{third.url}/api/v1/workshops/{wid}/breakouts"
                spec = {
                    "name": "Sixes",
                    "rooms": ROOMS,
                    "strategy": "random",
                    "countdown_s": 0,
                    "assignments": {s.id: 0 for s in senders},
                }
                async with http.post(base, json=spec, headers=moderator) as resp:
                    assert resp.status == 201, await resp.text()
                    plan: dict[str, Any] = await resp.json()
                async with http.post(
                    f"{base}/{plan['id']}/open", json={"duration_s": DEADLINE_S}, headers=moderator
                ) as resp:
                    assert resp.status == 200, await resp.text()
                rooms: dict[str, str] = plan["assignments"]
                assert set(rooms) == everyone and len(set(rooms.values())) == ROOMS
                recorded = rooms[senders[0].id]
                assert rooms[senders[1].id] == recorded
                await asyncio.gather(*(s.next("moved", reason="breakouts_opened") for s in seats))
                await in_place(http, nodes, wid, seats, rooms)

                # A recording of the senders' room, started through the third node: it runs on the owner, whose
                # recorder receives the two peers' media (their sockets wherever the balancer put them).
                async with http.post(f"{third.url}/api/v1/rooms/{recorded}/recordings", headers=moderator) as resp:
                    assert resp.status == 201, await resp.text()
                    recording: dict[str, Any] = await resp.json()
                assert recording["state"] == "recording"
                media = [Media(senders[0], "red", 440), Media(senders[1], "blue", 660)]
                await asyncio.gather(*(m.send_to(recording["id"]) for m in media))

                async def tracks(conn: asyncpg.Connection) -> list[tuple[str, str]]:
                    rows = await conn.fetch(
                        "SELECT participant_id, kind FROM recording_tracks WHERE recording_id = $1",
                        uuid.UUID(recording["id"]),
                    )
                    return sorted((str(r["participant_id"]), r["kind"]) for r in rows)

                both = sorted((s.id, kind) for s in senders for kind in ("audio", "video"))
                await record.until(tracks, both)

                # (a) An edge dies: its members come back through the balancer to the owner and the third node,
                # each into its breakout room; nobody else noticed anything but a mate reconnecting.
                on_edge = [s for s in seats if s.node == edge.name]
                await edge.kill()
                await asyncio.gather(*(s.comes_back(http, lb) for s in on_edge))
                for seat in on_edge:
                    assert seat.welcome["resumed"] is True and seat.welcome["self"]["id"] == seat.id, seat.name
                    assert seat.node in (owner.name, third.name), seat.name
                assert [s.name for s in seats if s.closed is not None] == []
                await in_place(http, [owner, third], wid, seats, rooms)
                assert await owner.leases(http) == 1

                # The edge is restarted where the balancer expects it (its port), as an orchestrator restarts it.
                restarted = await Node.start(
                    edge.name, database_url, bus_url, tmp_path / f"{edge.name}2", port=edge.server.port, **env
                )
                nodes[nodes.index(edge)] = restarted  # three_nodes kills it and reads its log
                assert "Traceback" not in edge.log(), edge.log()[-4000:]
                await in_service(http, lb, await node_id(http, restarted.url))
                # The owner noticed the edge's silence meanwhile (three keepalives, 2.25 s; a node's start and two
                # health checks take longer): that took nobody's place again, although most came back before it.
                await in_place(http, [owner, third], wid, seats, rooms)
                await record.grants_hold({s.id: s.welcome["resume"] for s in seats})

                # (b) The owner dies: everybody (its own sockets and those it served through the other two) comes
                # back through the balancer, to the restarted node and the third, into its breakout room.
                marks = [len(n.server.output) for n in (restarted, third)]
                served_by_owner = {s.name for s in seats if s.node == owner.name}
                killed_at = datetime.now(UTC)
                await owner.kill()
                codes = await asyncio.gather(*(s.comes_back(http, lb) for s in seats))
                for seat, code in zip(seats, codes, strict=True):
                    if seat.name not in served_by_owner:  # told by its edge that the owner went silent
                        assert code == 1012, (seat.name, code)
                    assert seat.welcome["resumed"] is True and seat.welcome["self"]["id"] == seat.id, seat.name
                assert set(Counter(s.node for s in seats)) == {restarted.name, third.name}
                await in_place(http, [restarted, third], wid, seats, rooms)
                assert sorted([await restarted.leases(http), await third.leases(http)]) == [0, 1]

                # The dead owner's recording is finalised by the new owner: ready, partial, with both peers' tracks.
                async def finished(conn: asyncpg.Connection) -> tuple[str, bool] | None:
                    row = await conn.fetchrow(
                        "SELECT state, partial FROM recordings WHERE id = $1", uuid.UUID(recording["id"])
                    )
                    return None if row is None else (row["state"], row["partial"])

                await record.until(finished, ("ready", True))
                async with http.get(f"{third.url}/api/v1/recordings/{recording['id']}", headers=moderator) as resp:
                    assert resp.status == 200, await resp.text()
                    done = await resp.json()
                assert (done["state"], done["partial"]) == ("ready", True)
                assert sorted((t["participant_id"], t["kind"]) for t in done["tracks"]) == both
                assert {t["state"] for t in done["tracks"]} == {"partial"}
                for track in done["tracks"]:  # what the owner wrote before it died, served by the third node
                    assert track["bytes"] > 0, track
                    async with http.get(track["download_url"]) as resp:
                        assert resp.status == 200, track
                        assert hashlib.sha256(await resp.read()).hexdigest() == track["sha256"]

                # The stored deadline, armed by the new owner: everyone back in the plenary once.
                returns = (s.next("moved", reason="breakouts_closed", timeout_s=DEADLINE_S + WAIT_S) for s in seats)
                await asyncio.gather(*returns)
                await in_place(http, [restarted, third], wid, seats, dict.fromkeys(everyone, plenary))
                await seats[0].send({"type": "update", "hand": True})  # a round trip through the owner, then count
                await asyncio.gather(*(s.next("peer_updated") for s in seats[1:]))
                for seat in seats:
                    assert seat.count("moved", reason="breakouts_opened") == 1, seat.name
                    assert seat.count("moved", reason="breakouts_closed") == 1, seat.name
                    assert seat.count("moved") == 2 and seat.count("breakouts_closed") == 1, seat.name
                    assert seat.closed is None, seat.name  # nobody connected twice (no 4409)
                assert await plan_closings(database_url, wid) == 1

                # The attendance record: one open visit per person, in the plenary, none from before the kill.
                query = """SELECT count(*) FILTER (WHERE started_at < $2) AS stale, count(*) AS open,
                                  count(DISTINCT participant_id) AS people, bool_and(room_id = $3) AS plenary
                           FROM visits WHERE workshop_id = $1 AND ended_at IS NULL"""

                async def visits(conn: asyncpg.Connection) -> dict[str, Any]:
                    return dict(await conn.fetchrow(query, uuid.UUID(wid), killed_at, uuid.UUID(plenary)))

                await record.until(visits, {"stale": 0, "open": MEMBERS, "people": MEMBERS, "plenary": True})
                # One takeover, by one node, although sixty hellos reached it at once.
                logs = "".join(
                    "".join(n.server.output[mark:]) for n, mark in zip((restarted, third), marks, strict=True)
                )
                assert logs.count(f"lease of workshop {wid} acquired") == 1, logs[-4000:]
                assert logs.count("took over breakouts") == 1, logs[-4000:]
        finally:
            await asyncio.gather(*(m.pc.close() for m in media), return_exceptions=True)
            await asyncio.gather(*(s.close() for s in seats), return_exceptions=True)
            await record.conn.close()
