"""A WebSocket session piped between two nodes over the bus (docs/scaling.md, "Any node takes any connection").

The node that accepted the client's socket (the *edge*) reads the hello, finds the workshop's owner and asks it to
open the session (`rt.node.<owner>.open`, request/reply). From then on each direction has one subject and one
subscription, so each keeps its order:

- `rt.conn.<edge>.<conn>.up`: the client's frames, edge to owner; the owner subscribes to it before it answers
  the open request, so nothing the edge publishes after the answer is lost;
- `rt.conn.<edge>.<conn>.down`: the owner's frames, owner to edge; the edge subscribes to it before it asks.

On the owner, `BusSocket` stands in for the client's `WebSocketResponse`: the ordinary `Session` and `Connection`
run over it, so the service sees an ordinary member (a participant connected twice, on any two nodes, meets the
hub's own 4409 rule there). Its sends publish to `down`; its receives come from `up`.

Frames are bytes with a one-letter tag: `T` + UTF-8 text, `B` (a binary frame, which the protocol refuses),
`C` + JSON {"code", "reason"} (a close, either way), `P` (the edge's ping) and `Q` (the owner's pong).

Keepalive: the edge pings every `keepalive_s`; an edge that hears nothing from its owner for `MISSES` intervals
closes the client with 1012 (come back now: the owner is gone, the client reconnects and lands on the new owner once
the lease lapses); an owner that hears nothing from an edge for as long ends the session as a dropped socket (the
member keeps its place for the resume grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, cast

from aiohttp import WebSocketError, WSMessage, WSMsgType, web

from signaling.bus import Bus, BusUnavailable, Message, Subscription
from signaling.connection import Connection
from signaling.protocol import Error
from signaling.service import encode

log = logging.getLogger(__name__)

CLOSE_COME_BACK = 1012  # "service restart": reconnect at once, the workshop is served elsewhere (docs/scaling.md)
CLOSE_ABNORMAL = 1006  # the client's socket ended without a close frame
MISSES = 3  # keepalive intervals without a word before the other side is taken for gone
INBOX_SIZE = 1024  # frames from an edge not yet read by the session (the session's own rate limit drops the excess)

TEXT, BINARY, CLOSE, PING, PONG = b"T", b"B", b"C", b"P", b"Q"


def up_subject(edge_node: str, conn: str) -> str:
    return f"rt.conn.{edge_node}.{conn}.up"


def down_subject(edge_node: str, conn: str) -> str:
    return f"rt.conn.{edge_node}.{conn}.down"


def open_subject(node_id: str) -> str:
    return f"rt.node.{node_id}.open"


def text_frame(text: str) -> bytes:
    return TEXT + text.encode()


def close_frame(code: int, reason: str) -> bytes:
    return CLOSE + json.dumps({"code": code, "reason": reason[:120]}).encode()


def read_close(frame: bytes) -> tuple[int, str]:
    try:
        data = json.loads(frame[1:])
        code, reason = int(data["code"]), str(data.get("reason", ""))
    except (ValueError, KeyError, TypeError):
        return CLOSE_ABNORMAL, ""
    return (code if 1000 <= code <= 4999 else CLOSE_ABNORMAL), reason


_CLOSED = WSMessage(WSMsgType.CLOSED, None, None)


class BusSocket:
    """The owner's end of a forwarded session: the part of aiohttp's `WebSocketResponse` that `Session` and
    `Connection` use (`receive`, iteration, `send_str`, `close`, `close_code`), carried by the bus."""

    def __init__(self, bus: Bus, down: str, first: str, *, keepalive_s: float) -> None:
        self._bus = bus
        self._down = down
        self._inbox: asyncio.Queue[WSMessage] = asyncio.Queue(maxsize=INBOX_SIZE)
        self._inbox.put_nowait(WSMessage(WSMsgType.TEXT, first, None))
        self._keepalive_s = keepalive_s
        self._heard = asyncio.get_running_loop().time()
        self._close_code: int | None = None
        self._closed = False  # no more frames either way
        self._ended = False  # the reader has been told the socket ended
        self._watchdog = asyncio.create_task(self._watch(), name="bus-socket-watchdog")

    def as_websocket(self) -> web.WebSocketResponse:
        """This socket where `Session` and `Connection` expect aiohttp's (they use only what it implements)."""
        return cast(web.WebSocketResponse, self)

    @property
    def close_code(self) -> int | None:
        return self._close_code

    def _end(self, message: WSMessage) -> None:
        """Tell the reader the socket ended (once); later receives see CLOSED."""
        if self._ended:
            return
        self._ended = True
        with contextlib.suppress(asyncio.QueueFull):
            self._inbox.put_nowait(message)
        if self._inbox.full():  # the end marker must get through: drop the oldest unread frame for it
            self._inbox.get_nowait()
            self._inbox.put_nowait(message)

    async def feed(self, message: Message) -> None:
        """One frame from the edge (the `up` subscription's handler)."""
        self._heard = asyncio.get_running_loop().time()
        frame = message.data
        tag = frame[:1]
        if self._ended:
            return
        if tag == TEXT:
            try:
                text = frame[1:].decode()
            except UnicodeDecodeError:
                return  # the edge forwards what aiohttp decoded: this never came from it
            try:
                self._inbox.put_nowait(WSMessage(WSMsgType.TEXT, text, None))
            except asyncio.QueueFull:
                # Far behind: the client floods faster than the session reads. A local socket would push back;
                # here the session ends as a broken one (no grace), as for a frame the protocol forbids.
                self._close_code = 1008
                self._end(WSMessage(WSMsgType.ERROR, WebSocketError(1008, "flooding"), None))
        elif tag == BINARY:
            with contextlib.suppress(asyncio.QueueFull):
                self._inbox.put_nowait(WSMessage(WSMsgType.BINARY, b"", None))
        elif tag == CLOSE:
            self._close_code, _ = read_close(frame)
            self._closed = True
            self._end(WSMessage(WSMsgType.CLOSE, self._close_code, None))
        elif tag == PING:
            with contextlib.suppress(BusUnavailable):
                await self._bus.publish(self._down, PONG)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._ended:
            await asyncio.sleep(self._keepalive_s)  # pacing, not synchronisation
            if loop.time() - self._heard > MISSES * self._keepalive_s:
                log.info("forwarded session: the edge stopped answering; treated as a dropped socket")
                self._closed = True
                self._end(WSMessage(WSMsgType.ERROR, ConnectionResetError("edge gone"), None))

    async def receive(self, timeout: float | None = None) -> WSMessage:
        if self._ended and self._inbox.empty():
            return _CLOSED
        async with asyncio.timeout(timeout):
            return await self._inbox.get()

    def __aiter__(self) -> BusSocket:
        return self

    async def __anext__(self) -> WSMessage:
        message = await self.receive()
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            raise StopAsyncIteration
        return message

    async def send_str(self, data: str, compress: int | None = None) -> None:
        if self._closed:
            raise ConnectionResetError("forwarded session closed")
        try:
            await self._bus.publish(self._down, text_frame(data))
        except BusUnavailable as exc:
            self._closed = True
            self._end(WSMessage(WSMsgType.ERROR, ConnectionResetError("bus unavailable"), None))
            raise ConnectionResetError(str(exc)) from exc

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if self._closed:
            self._end(_CLOSED)
            return False
        self._closed = True
        self._close_code = code
        with contextlib.suppress(BusUnavailable):
            await self._bus.publish(self._down, close_frame(code, message.decode(errors="replace")))
        self._end(_CLOSED)
        return True

    async def stop(self) -> None:
        """The session is over: stop watching the edge."""
        self._ended = True
        self._watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watchdog


async def pipe_to_owner(
    ws: web.WebSocketResponse,
    client: Connection,
    bus: Bus,
    *,
    up: str,
    downstream: Subscription,
    keepalive_s: float,
    max_frame_bytes: int,
) -> None:
    """The edge's end, once the owner opened the session: the client's frames go up, the owner's come down, until
    either side closes (the other is closed with the same code) or the owner falls silent (the client gets 1012).
    `client` is the client socket's writer; the caller finishes it. A text frame over `max_frame_bytes` (the largest
    message the owner's session would read) is refused here, as the session would refuse it, rather than sent: the
    bus has a payload limit of its own."""
    loop = asyncio.get_running_loop()
    heard = loop.time()
    done = asyncio.Event()

    async def owner_to_client() -> None:
        nonlocal heard
        async for message in downstream:
            heard = loop.time()
            tag = message.data[:1]
            if tag == TEXT:
                if not client.send(message.data[1:].decode(errors="replace")):
                    break  # too slow (closed with 1013) or closed
            elif tag == CLOSE:
                client.close(*read_close(message.data))
                break
        done.set()

    async def keepalive() -> None:
        while True:
            try:
                await bus.publish(up, PING)
            except BusUnavailable:
                client.close(CLOSE_COME_BACK, "lost the way to the workshop; reconnect now")
                break
            await asyncio.sleep(keepalive_s)  # pacing, not synchronisation
            if loop.time() - heard > MISSES * keepalive_s:
                log.info("forwarded session: the owner stopped answering; the client is asked to come back")
                client.close(CLOSE_COME_BACK, "the workshop's node stopped answering; reconnect now")
                break
        done.set()

    async def client_to_owner() -> None:
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    text: str = msg.data
                    if len(text) * 4 > max_frame_bytes and len(text.encode()) > max_frame_bytes:
                        too_large = Error(code="payload_too_large", message=f"message over {max_frame_bytes} bytes")
                        client.send(encode(too_large))
                        continue
                    await bus.publish(up, text_frame(text))
                elif msg.type == WSMsgType.BINARY:
                    # Not part of the protocol: the owner's session says so, as it would to a local client.
                    await bus.publish(up, BINARY)
                elif msg.type == WSMsgType.ERROR:
                    break
            code = ws.close_code or CLOSE_ABNORMAL
            await bus.publish(up, close_frame(code, "client closed"))
        except BusUnavailable:
            client.close(CLOSE_COME_BACK, "lost the way to the workshop; reconnect now")
        done.set()

    tasks = [
        asyncio.create_task(owner_to_client(), name="forward-down"),
        asyncio.create_task(keepalive(), name="forward-keepalive"),
    ]
    reader = asyncio.create_task(client_to_owner(), name="forward-up")
    try:
        await done.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not reader.done():
            # The owner closed (or went silent): the client's socket is being closed; its reader ends with it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    await client.wait_closed()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            # The owner may be alive (a slow client closed with 1013): tell it, so the member is detached there.
            with contextlib.suppress(BusUnavailable):
                await bus.publish(up, close_frame(client.close_code or CLOSE_ABNORMAL, "edge closed"))


def open_request(*, workshop_id: str, edge: str, conn: str, hello: str, connection_id: str) -> bytes:
    return json.dumps(
        {"workshop_id": workshop_id, "edge": edge, "conn": conn, "hello": hello, "connection_id": connection_id}
    ).encode()


def read_open_request(data: bytes) -> dict[str, Any] | None:
    try:
        request = json.loads(data)
    except ValueError:
        return None
    fields = ("workshop_id", "edge", "conn", "hello", "connection_id")
    if not isinstance(request, dict) or not all(isinstance(request.get(f), str) for f in fields):
        return None
    return request
