"""Which node serves a WebSocket: the one that owns its workshop (docs/scaling.md, "Any node takes any connection").

Only with a bus server (ROUNDTABLE_BUS_URL); a node alone serves every socket itself as before
(`signaling.session.serve_websocket`). The router reads the hello, takes the workshop from the token's claims (its
signature checked; the full check is the owner's), and then:

- this node holds the workshop's lease, or takes it because nobody does: the session runs here; a workshop nobody
  holds is first offered to the least loaded node (`server.node_selector`), and its session forwarded there when
  that node adopts it;
- another node holds it: the socket is piped to that node over the bus (`signaling.forwarding`);
- the holder does not answer (dead, or paused) while its lease is still live: the client waits while this node
  wants the lease, and is served here (or by whoever took it) once it lapsed, or is told to come back (1012).

A lease this node loses (taken over after a pause, or dropped while PostgreSQL or the bus was away) closes the
workshop's sessions here with 1012, so that their clients reconnect and find the new owner.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import cast

from aiohttp import WSMessage, WSMsgType, web

from server.auth import Authenticator
from server.logs import SESSION_ID
from server.node_selector import Placement
from server.nodes import Node
from signaling.bus import BusUnavailable, Message, Subscription
from signaling.connection import Connection
from signaling.forwarding import (
    CLOSE_COME_BACK,
    BusSocket,
    down_subject,
    open_request,
    open_subject,
    pipe_to_owner,
    read_open_request,
    up_subject,
)
from signaling.outage import as_unavailable
from signaling.protocol import Error
from signaling.service import CLOSE_UNAVAILABLE, SignalingService, encode
from signaling.session import Session, SessionLimits, origin_allowed
from signaling.tasks import OwnedTasks

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 5.0
LEASE_LOST_REASON = "this workshop moved to another node; reconnect now"
STOPPING_REASON = "this node is stopping; reconnect now"


class ReplaySocket:
    """The client's socket with the hello the router already read put back in front, for a session served here."""

    def __init__(self, ws: web.WebSocketResponse, first: WSMessage | TimeoutError) -> None:
        self._ws = ws
        self._first: WSMessage | TimeoutError | None = first

    def as_websocket(self) -> web.WebSocketResponse:
        return cast(web.WebSocketResponse, self)

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    async def receive(self, timeout: float | None = None) -> WSMessage:
        first, self._first = self._first, None
        if isinstance(first, TimeoutError):
            raise first
        if first is not None:
            return first
        return await self._ws.receive(timeout)

    def __aiter__(self) -> ReplaySocket:
        return self

    async def __anext__(self) -> WSMessage:
        message = await self.receive()
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            raise StopAsyncIteration
        return message

    async def send_str(self, data: str, compress: int | None = None) -> None:
        await self._ws.send_str(data)

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        return await self._ws.close(code=code, message=message, drain=drain)


class Router:
    """The WebSocket entry point of a node among several, and the owner's side of forwarded sessions."""

    def __init__(
        self,
        node: Node,
        service: SignalingService,
        limits: SessionLimits,
        auth: Authenticator,
        *,
        keepalive_s: float,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        placement: Placement | None = None,
    ) -> None:
        self.node = node
        self.placement = placement  # None: a workshop nobody holds is taken here (its first session's node)
        self.service = service
        self.limits = limits
        self.auth = auth
        self.keepalive_s = keepalive_s
        self.open_timeout_s = open_timeout_s
        self._forwarded = OwnedTasks("router")  # sessions other nodes forward to this one
        self._edges: set[Connection] = set()  # clients of this node whose sessions run on another
        self._opens: Subscription | None = None
        # The forwarded sessions running here, by (edge, conn): an edge that timed out on an `open` asks again with
        # the same conn, and must get the session that already runs, never a second hello (which would find the
        # place resumed by the first and join as new).
        self._opened: dict[tuple[str, str], asyncio.Event] = {}  # set once the session's upstream is subscribed
        # Sessions served here, by workshop, from the moment this node decided to serve them (before their hello
        # ran) until they end: a workshop with one is not quiet, and keeps its lease (LeaseKeeper.release_idle).
        self._serving: collections.Counter[uuid.UUID] = collections.Counter()

    @property
    def _me(self) -> str:
        return self.node.info.id

    async def start(self) -> None:
        self._opens = await self.node.bus.subscribe(open_subject(self._me), self._on_open)
        if self.placement is not None:
            await self.placement.start()

    def serving(self, workshop_id: uuid.UUID) -> int:
        """How many sessions of the workshop run (or are starting) here, the owner's and forwarded ones."""
        return self._serving[workshop_id]

    def sessions(self) -> int:
        """How many sessions run (or are starting) here, of every workshop: this node's load (node_selector)."""
        return sum(self._serving.values())

    def _served(self, workshop_id: uuid.UUID) -> None:
        self._serving[workshop_id] -= 1
        if self._serving[workshop_id] <= 0:
            del self._serving[workshop_id]

    def lease_lost(self, workshop_id: uuid.UUID) -> None:
        """The workshop is not ours any more: its sessions here end with 1012, and their clients find the owner."""
        for member in self.service.members_of(str(workshop_id)):
            self.service.remove_participant(member.id, close_code=CLOSE_COME_BACK, reason=LEASE_LOST_REASON)

    def shutdown(self) -> None:
        """This node stops: the clients it forwards elsewhere reconnect at once (their owner is alive)."""
        for client in list(self._edges):
            client.close(CLOSE_COME_BACK, STOPPING_REASON)

    async def close(self) -> None:
        if self.placement is not None:
            await self.placement.close()
        if self._opens is not None:
            with contextlib.suppress(BusUnavailable):
                await self._opens.unsubscribe()
        await self._forwarded.cancel_all()

    # The edge ----------------------------------------------------------------------------------------

    async def serve(self, request: web.Request, *, connection_id: str) -> web.StreamResponse:
        limits = self.limits
        if not origin_allowed(request, limits.allowed_origins):
            raise web.HTTPForbidden(reason="origin not allowed")
        ws = web.WebSocketResponse(
            heartbeat=limits.heartbeat_s, max_msg_size=limits.hard_cap_bytes, compress=False, timeout=2.0
        )
        await ws.prepare(request)
        first: WSMessage | TimeoutError
        try:
            first = await ws.receive(timeout=limits.hello_timeout_s)
        except TimeoutError as exc:
            first = exc
        workshop_id = self._workshop_of(first)
        if workshop_id is None or not isinstance(first, WSMessage):
            await self._run_session(ReplaySocket(ws, first).as_websocket(), connection_id)
            return ws
        try:
            if await self._forward(ws, workshop_id, first.data, connection_id):
                return ws
        except Exception as exc:
            # The database or the bus is away: nobody can say who owns the workshop, so nobody serves it here
            # (that could split it). The client comes back later, as for any outage.
            outage = as_unavailable(exc)
            log.warning("routing a session of workshop %s failed: %r", workshop_id, exc)
            await self._refuse(ws, CLOSE_UNAVAILABLE if outage is not None else CLOSE_COME_BACK)
            return ws
        try:  # counted in `_forward`, when it decided to serve it here
            await self._run_session(ReplaySocket(ws, first).as_websocket(), connection_id)
        finally:
            self._served(workshop_id)
        return ws

    @staticmethod
    async def _refuse(ws: web.WebSocketResponse, code: int) -> None:
        """The `error` and close of a hello nobody can serve now (see the close codes in docs/protocol.md)."""
        message = "the workshop cannot be reached now; reconnect"
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await ws.send_str(encode(Error(code="unavailable", message=message)))
                await ws.close(code=code, message=message.encode())

    def _workshop_of(self, first: WSMessage | TimeoutError) -> uuid.UUID | None:
        """The workshop a hello's token names, when it is a hello with a valid join token; else None (the session
        served here refuses it with the usual error)."""
        if not isinstance(first, WSMessage) or first.type != WSMsgType.TEXT:
            return None
        text: str = first.data
        if len(text) > self.limits.max_message_bytes:
            return None
        try:
            hello = json.loads(text)
        except (ValueError, RecursionError):
            return None
        token = hello.get("token") if isinstance(hello, dict) and hello.get("type") == "hello" else None
        if not isinstance(token, str) or not token or self.auth.admin.matches(token):
            return None
        try:
            return self.auth.signer.verify(token).workshop_id
        except Exception:
            return None

    async def _forward(self, ws: web.WebSocketResponse, workshop_id: uuid.UUID, hello: str, cid: str) -> bool:
        """Pipe the socket to the workshop's owner; False when this node is (or became) the owner. A dead owner's
        clients wait here until its lease lapses (or are told to come back with 1012 after that long)."""
        if not self.node.bus.connected:
            # Cut off from the other nodes: it cannot forward, and it must not take a workshop it could not share.
            raise BusUnavailable("the bus is down")
        keeper = self.node.leases
        loop = asyncio.get_running_loop()
        deadline = loop.time() + keeper.ttl_s + keeper.renew_every_s + self.open_timeout_s
        attempt = 0
        link: _Link | None = None
        if self.placement is not None and keeper.fence(workshop_id) is None:
            # Nobody holds it: the least loaded node may adopt it (bounded), and the loop below then finds it there.
            await self.placement.place(workshop_id)
        try:
            while True:
                if keeper.fence(workshop_id) is not None or await keeper.acquire(workshop_id) is not None:
                    self._serving[workshop_id] += 1  # with no await since the lease was seen: see `serving`
                    return False
                owner = await keeper.owner(workshop_id)
                outcome = "free"  # released or lapsed between the two reads: try again at once
                if owner is not None and owner.live and owner.node_id != self._me:
                    if link is None or link.owner != owner.node_id:
                        # One link per owner: asked again (no answer in time), the same owner gets the same conn.
                        if link is not None:
                            await link.close()
                        link = await self._link(owner.node_id)
                    outcome = await self._pipe(ws, link, workshop_id, hello, cid)
                    if outcome == "done":
                        return True
                if loop.time() >= deadline:
                    await self._refuse(ws, CLOSE_COME_BACK)
                    return True
                if outcome == "unreachable":
                    keeper.want(workshop_id)  # the renewal loop takes it the moment it lapses
                # Pacing, not synchronisation: the lease lapses (or a refusing owner's lease is taken) on the
                # database's clock; a quick first retry covers a lease that moved between two reads.
                attempt += 1
                await asyncio.sleep(min(0.05 * attempt, keeper.renew_every_s / 2))
        finally:
            if link is not None:
                await link.close()

    async def _link(self, owner: str) -> _Link:
        conn = secrets.token_hex(8)
        downstream = await self.node.bus.subscribe(down_subject(self._me, conn))
        return _Link(owner, conn, downstream)

    async def _pipe(self, ws: web.WebSocketResponse, link: _Link, workshop_id: uuid.UUID, hello: str, cid: str) -> str:
        """One attempt: "done" once the session ran on the owner, "not_owner" when it refused (its lease is gone),
        "unreachable" when it did not answer."""
        bus = self.node.bus
        owner, conn, downstream = link.owner, link.conn, link.downstream
        # The link (its conn and downstream subscription) outlives this attempt: see _forward.
        request = open_request(workshop_id=str(workshop_id), edge=self._me, conn=conn, hello=hello, connection_id=cid)
        try:
            answer = await bus.request(open_subject(owner), request, timeout_s=self.open_timeout_s)
        except BusUnavailable as exc:
            log.info("node %s did not open a session of workshop %s: %s", owner, workshop_id, exc)
            return "unreachable"
        if not json.loads(answer).get("ok"):
            return "not_owner"
        client = Connection(ws, queue_size=self.limits.queue_size, on_evicted=self.service.telemetry.evicted)
        self._edges.add(client)
        try:
            await pipe_to_owner(
                ws,
                client,
                bus,
                up=up_subject(self._me, conn),
                downstream=downstream,
                keepalive_s=self.keepalive_s,
                max_frame_bytes=max(self.limits.max_message_bytes, self.limits.max_sdp_message_bytes),
            )
        finally:
            self._edges.discard(client)
            await client.finish()
        return "done"

    async def _run_session(self, ws: web.WebSocketResponse, cid: str) -> None:
        connection = Connection(ws, queue_size=self.limits.queue_size, on_evicted=self.service.telemetry.evicted)
        try:
            await Session(self.service, connection, self.limits, connection_id=cid).run()
        finally:
            await connection.finish()

    # The owner -----------------------------------------------------------------------------------------

    async def _on_open(self, message: Message) -> None:
        # Each open on its own task: the bus hands a subscription's messages over one at a time, and a node taking
        # over a workshop of hundreds must not make the last edge wait for every subscription before its own.
        self._forwarded.spawn(self._open(message), name="forwarded open")

    async def _open(self, message: Message) -> None:
        bus = self.node.bus
        request = read_open_request(message.data)
        if request is None:
            return
        key = (request["edge"], request["conn"])
        if (ready := self._opened.get(key)) is not None:  # asked again: the session runs (or is starting) already
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.open_timeout_s):
                    await ready.wait()  # what the edge sends after our answer must find the upstream subscribed
            if ready.is_set():
                with contextlib.suppress(BusUnavailable):
                    await bus.reply(message, b'{"ok": true}')
            return
        try:
            workshop_id = uuid.UUID(request["workshop_id"])
        except ValueError:
            return
        if self.node.leases.fence(workshop_id) is None:
            await bus.reply(message, b'{"ok": false}')
            return
        self._opened[key] = subscribed = asyncio.Event()  # before the first await: a repeated open finds it
        self._serving[workshop_id] += 1  # likewise: the lease was seen with no await since
        down = down_subject(request["edge"], request["conn"])
        sock = BusSocket(bus, down, request["hello"], keepalive_s=self.keepalive_s)
        try:
            upstream = await bus.subscribe(up_subject(request["edge"], request["conn"]), sock.feed)
        except (ValueError, BusUnavailable) as exc:  # ValueError: names that make no subject (never from a node)
            log.warning("could not open a forwarded session: %s", exc)
            self._opened.pop(key, None)
            self._served(workshop_id)
            await sock.stop()
            return
        subscribed.set()
        with contextlib.suppress(BusUnavailable):  # the edge asks again if this answer is lost
            await bus.reply(message, b'{"ok": true}')
        self._forwarded.spawn(
            self._run_forwarded(sock, upstream, request["connection_id"], key, workshop_id),
            name=f"forwarded {request['conn']}",
        )

    async def _run_forwarded(
        self, sock: BusSocket, upstream: Subscription, cid: str, key: tuple[str, str], workshop_id: uuid.UUID
    ) -> None:
        SESSION_ID.set(cid or None)  # this task's log lines carry the edge's session id
        try:
            await self._run_session(sock.as_websocket(), cid)
        finally:
            self._opened.pop(key, None)
            self._served(workshop_id)
            await sock.stop()
            with contextlib.suppress(BusUnavailable):
                await upstream.unsubscribe()


@dataclass
class _Link:
    """An edge's way to one owner for one client: the conn its subjects are named by and the downstream
    subscription, kept across repeated opens so that a repeated open reaches the same session."""

    owner: str
    conn: str
    downstream: Subscription

    async def close(self) -> None:
        with contextlib.suppress(BusUnavailable):
            await self.downstream.unsubscribe()
