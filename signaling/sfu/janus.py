"""A small client of Janus's WebSocket API (subprotocol `janus-protocol`): one session, many handles.

Every request carries a transaction and the api_secret; synchronous plugin requests are answered by
`success`, asynchronous ones by `ack` and later an `event` with the same transaction. Events without a
pending transaction (another publisher appeared, the PeerConnection hung up, someone is talking) go to
the handle's `on_event`. Plugin errors come inside success/event as `error_code`: they raise JanusError.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
REQUEST_TIMEOUT_S = 10.0
KEEPALIVE_S = 20.0  # the session times out after 60 s without a request


class JanusError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"Janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class JanusGone(Exception):
    """The connection to Janus is lost (or was never there)."""


Event = dict[str, Any]


class Handle:
    """One plugin handle; `on_event(event)` gets what Janus sends it unprompted."""

    def __init__(self, client: JanusClient, handle_id: int) -> None:
        self.client = client
        self.id = handle_id
        self.on_event: Callable[[Event], None] | None = None
        self.detached = False

    async def request(self, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
        """A plugin message; returns (plugin data, jsep or None) of the success or the final event."""
        message: dict[str, Any] = {"janus": "message", "handle_id": self.id, "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        reply = await self.client.call(message, wait_event=True)
        data = reply.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusError(int(data["error_code"]), str(data.get("error", "")))
        return data, reply.get("jsep")

    async def trickle(self, candidate: dict[str, Any] | None) -> None:
        body = {"janus": "trickle", "handle_id": self.id, "candidate": candidate or {"completed": True}}
        await self.client.call(body, wait_event=False)

    async def detach(self) -> None:
        if self.detached:
            return
        self.detached = True
        self.client.handles.pop(self.id, None)
        with contextlib.suppress(JanusError, JanusGone):
            await self.client.call({"janus": "detach", "handle_id": self.id}, wait_event=False)


class JanusClient:
    def __init__(self, url: str, api_secret: str, *, on_lost: Callable[[str], None] | None = None) -> None:
        self.url = url
        self.api_secret = api_secret
        self.on_lost = on_lost
        self.session_id: int | None = None
        self.handles: dict[int, Handle] = {}
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, tuple[asyncio.Future[Event], bool]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._lost = False

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed and not self._lost

    async def connect(self) -> None:
        self._http = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                self._ws = await self._http.ws_connect(self.url, protocols=("janus-protocol",), heartbeat=None)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            await self._http.close()
            raise JanusGone(f"cannot reach Janus at {self.url}: {exc}") from exc
        except BaseException:
            # Cancelled while connecting (an app whose start failed): the session must not outlive us.
            await self._http.close()
            raise
        self._tasks.append(asyncio.create_task(self._read(), name="janus-reader"))
        try:
            reply = await self.call({"janus": "create"}, wait_event=False)
        except BaseException:
            await self.close()
            raise
        self.session_id = int(reply["data"]["id"])
        self._tasks.append(asyncio.create_task(self._keepalive(), name="janus-keepalive"))

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None and not self._ws.closed and self.session_id is not None and not self._lost:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._send({"janus": "destroy"})
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._http is not None:
            await self._http.close()
        self._fail_pending("the Janus client closed")

    async def attach(self) -> Handle:
        reply = await self.call({"janus": "attach", "plugin": VIDEOROOM}, wait_event=False)
        handle = Handle(self, int(reply["data"]["id"]))
        self.handles[handle.id] = handle
        return handle

    async def call(self, message: dict[str, Any], *, wait_event: bool) -> Event:
        if not self.connected:
            raise JanusGone("Janus is not connected")
        transaction = secrets.token_hex(8)
        message = {**message, "transaction": transaction, "apisecret": self.api_secret}
        if self.session_id is not None and message["janus"] != "create":
            message["session_id"] = self.session_id
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = (future, wait_event)
        try:
            await self._send(message)
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                reply = await future
        except TimeoutError as exc:
            self._declare_lost(f"Janus did not answer {message.get('body', {}).get('request') or message['janus']}")
            raise JanusGone("Janus did not answer in time") from exc
        finally:
            self._pending.pop(transaction, None)
        if reply.get("janus") == "error":
            error = reply.get("error", {})
            raise JanusError(int(error.get("code", 0)), str(error.get("reason", "")))
        return reply

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        try:
            await self._ws.send_str(json.dumps(message))
        except (ConnectionError, RuntimeError) as exc:
            self._declare_lost(f"sending to Janus failed: {exc}")
            raise JanusGone(str(exc)) from exc

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            try:
                await self.call({"janus": "keepalive"}, wait_event=False)
            except (JanusGone, JanusError) as exc:
                self._declare_lost(f"keepalive failed: {exc}")
                return

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    event = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self._dispatch(event)
        except (ConnectionError, aiohttp.ClientError) as exc:
            log.debug("Janus reader stopped: %s", exc)
        self._declare_lost("the connection to Janus closed")

    def _dispatch(self, event: Event) -> None:
        kind = event.get("janus")
        transaction = event.get("transaction")
        pending = self._pending.get(transaction) if isinstance(transaction, str) else None
        if pending is not None:
            future, wait_event = pending
            if kind == "ack" and (wait_event or event.get("hint")):
                return  # the answer comes later as an event
            if kind in ("success", "error", "ack") or (kind == "event" and wait_event):
                if not future.done():
                    future.set_result(event)
                return
        handle = self.handles.get(event.get("sender", 0))
        if handle is not None and handle.on_event is not None and kind != "ack":
            try:
                handle.on_event(event)
            except Exception:
                log.exception("handling a Janus %s event failed", kind)

    def _declare_lost(self, why: str) -> None:
        if self._lost or self._closed:
            return
        self._lost = True
        self._fail_pending(why)
        log.warning("lost Janus: %s", why)
        if self.on_lost is not None:
            self.on_lost(why)

    def _fail_pending(self, why: str) -> None:
        for future, _ in list(self._pending.values()):
            if not future.done():
                future.set_exception(JanusGone(why))
