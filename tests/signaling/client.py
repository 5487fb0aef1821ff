"""A small signalling client for tests: a real WebSocket to the real server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

RECEIVE_TIMEOUT_S = 10.0


class SignalClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}
        self.seen: list[dict[str, Any]] = []

    @property
    def id(self) -> str:
        peer_id: str = self.welcome["self"]["id"]
        return peer_id

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send_str(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, timeout: float = RECEIVE_TIMEOUT_S) -> dict[str, Any]:
        """The next message; raises TimeoutError, or ConnectionError when the socket closed."""
        async with asyncio.timeout(timeout):
            msg = await self.ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket closed: {msg.type.name} {self.ws.close_code}")
        data: dict[str, Any] = json.loads(msg.data)
        self.seen.append(data)
        return data

    async def wait_for(self, type_: str, timeout: float = RECEIVE_TIMEOUT_S, **match: Any) -> dict[str, Any]:
        """Skip messages until one of `type_` (and matching fields) arrives."""
        async with asyncio.timeout(timeout):
            while True:
                data = await self.recv(timeout)
                if data.get("type") == type_ and all(data.get(k) == v for k, v in match.items()):
                    return data

    async def wait_closed(self, timeout: float = RECEIVE_TIMEOUT_S) -> int | None:
        """Read until the server closes; return the close code."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type == aiohttp.WSMsgType.CLOSE:
                    # The code the server sent: aiohttp reports 1006 in close_code when the server drops the
                    # connection before our close reply is written, although the close frame did arrive.
                    code: int = msg.data
                    return code
                if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return self.ws.close_code
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.seen.append(json.loads(msg.data))

    async def close(self) -> None:
        await self.ws.close()

    def abort(self) -> None:
        """Lose the socket abruptly: no close frame, no leave (a network that goes away)."""
        transport = self.ws._conn.transport if self.ws._conn is not None else None
        assert transport is not None, "no transport to abort"
        transport.abort()


async def connect(client: TestClient[Any, Any], **ws_kwargs: Any) -> aiohttp.ClientWebSocketResponse:
    ws: aiohttp.ClientWebSocketResponse = await client.ws_connect("/ws", **ws_kwargs)
    return ws


async def join(client: TestClient[Any, Any], token: str, *, resume: str | None = None) -> SignalClient:
    """Connect, say hello and wait for welcome."""
    sc = SignalClient(await connect(client))
    hello: dict[str, Any] = {"type": "hello", "protocol": [1], "token": token}
    if resume is not None:
        hello["resume"] = resume
    await sc.send(hello)
    first = await sc.recv()
    assert first["type"] == "welcome", first
    sc.welcome = first
    return sc
