"""Helpers for the admission tests: knocking, reading a close frame's code and reason."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN
from tests.signaling.client import RECEIVE_TIMEOUT_S, SignalClient, connect

Client = TestClient[Any, Any]


async def hello(
    client: Client, token: str, *, device: str | None = None, resume: str | None = None, request_id: str | None = None
) -> tuple[SignalClient, dict[str, Any]]:
    """Connect and say hello; the socket and the first answer (welcome, lobby or error)."""
    sc = SignalClient(await connect(client))
    message: dict[str, Any] = {"type": "hello", "protocol": [1], "token": token}
    if device is not None:
        message["device"] = device
    if resume is not None:
        message["resume"] = resume
    if request_id is not None:
        message["request_id"] = request_id
    await sc.send(message)
    first = await sc.recv()
    if first["type"] == "welcome":
        sc.welcome = first
    return sc, first


async def knock(client: Client, token: str, **kwargs: Any) -> tuple[SignalClient, dict[str, Any]]:
    """Say hello and expect to wait in the lobby."""
    sc, first = await hello(client, token, **kwargs)
    assert first["type"] == "lobby", first
    return sc, first


async def enter(client: Client, token: str, **kwargs: Any) -> SignalClient:
    sc, first = await hello(client, token, **kwargs)
    assert first["type"] == "welcome", first
    return sc


async def closed(sc: SignalClient, timeout: float = RECEIVE_TIMEOUT_S) -> tuple[int | None, str]:
    """Read until the server closes: its close code and reason."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await sc.ws.receive()
            if msg.type == aiohttp.WSMsgType.CLOSE:
                return msg.data, msg.extra or ""
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return sc.ws.close_code, ""
            if msg.type == aiohttp.WSMsgType.TEXT:
                sc.seen.append(json.loads(msg.data))


async def settle(sc: SignalClient, tag: str) -> list[dict[str, Any]]:
    """Everything queued for `sc` before now (a no-op `update` is acked after it)."""
    start = len(sc.seen)
    await sc.send({"type": "update", "request_id": tag})
    await sc.wait_for("ack", request_id=tag)
    return sc.seen[start:-1]


async def set_lobby(client: Client, workshop_id: str, lobby: str) -> None:
    resp = await client.patch(f"/api/v1/workshops/{workshop_id}", json={"lobby": lobby}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["lobby"] == lobby
