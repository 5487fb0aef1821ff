"""The bus on a NATS server (core NATS, no JetStream): `ROUNDTABLE_BUS_URL=nats://host:4222`.

Why NATS and what a reconnect costs: docs/scaling.md. In short: request/reply is native (one inbox per client, "no
responders" answered by the server), the client resubscribes by itself after a reconnect, and PING/PONG on the one
connection that carries the subscriptions is the health check (a subscription cannot silently die while pings are
answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from signaling.bus import (
    DEFAULT_QUEUE_SIZE,
    BusTimeout,
    BusUnavailable,
    Handler,
    Message,
    NoResponders,
    QueuedSubscription,
    StateCallback,
    check_subject,
)

log = logging.getLogger(__name__)


class NatsBus:
    """One connection to NATS for the node's subscriptions, publishes and requests. Build it with `connect`."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        ping_interval_s: float,
        max_outstanding_pings: int,
        reconnect_wait_s: float,
        connect_timeout_s: float,
    ) -> None:
        self.url = url
        self.shown_url = _without_credentials(url)
        self.name = name
        self._options: dict[str, Any] = {
            "servers": [url],
            "name": name,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,  # forever: the node stays up and says "not ready" meanwhile
            "reconnect_time_wait": reconnect_wait_s,
            "ping_interval": ping_interval_s,
            "max_outstanding_pings": max_outstanding_pings,
            "connect_timeout": connect_timeout_s,
        }
        self._nc: Client = Client()
        self._subs: dict[QueuedSubscription, NatsSubscription] = {}
        self._on_disconnect: list[StateCallback] = []
        self._on_reconnect: list[StateCallback] = []
        self._closing = False
        self._confirm_timeout_s = connect_timeout_s
        self._quiet = False  # an outage's further errors (one a reconnect attempt) are logged at debug level

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str = "roundtable",
        ping_interval_s: float = 5.0,
        max_outstanding_pings: int = 2,
        reconnect_wait_s: float = 0.5,
        connect_timeout_s: float = 5.0,
    ) -> NatsBus:
        """Connect (raising BusUnavailable when the server does not answer within `connect_timeout_s`); after
        that, reconnect forever.

        A dead connection is noticed within about `ping_interval_s * (max_outstanding_pings + 1)` when the server
        vanishes without closing it; a closed one at once."""
        bus = cls(
            url,
            name=name,
            ping_interval_s=ping_interval_s,
            max_outstanding_pings=max_outstanding_pings,
            reconnect_wait_s=reconnect_wait_s,
            connect_timeout_s=connect_timeout_s,
        )
        try:
            # With reconnects allowed forever the client would also try forever to connect the first time.
            async with asyncio.timeout(connect_timeout_s):
                await bus._nc.connect(
                    **bus._options,
                    error_cb=bus._error,
                    disconnected_cb=bus._disconnected,
                    reconnected_cb=bus._reconnected,
                )
        except (OSError, nats.errors.Error, TimeoutError) as exc:
            bus._closing = True
            with contextlib.suppress(Exception):
                await bus._nc.close()
            raise BusUnavailable(f"the bus at {bus.shown_url} did not answer within {connect_timeout_s} s") from exc
        log.info("bus: connected to %s", bus.shown_url)
        return bus

    @property
    def connected(self) -> bool:
        return self._nc.is_connected

    async def _error(self, exc: Exception) -> None:
        # Briefly, without a traceback; during an outage the client reports every failed attempt: the first is enough.
        log.log(logging.DEBUG if self._quiet else logging.WARNING, "bus: %s", exc or type(exc).__name__)
        if not self._nc.is_connected:
            self._quiet = True

    async def _disconnected(self) -> None:
        if self._closing:
            return
        log.warning("bus: disconnected from %s; reconnecting", self.shown_url)
        for callback in self._on_disconnect:
            callback()

    async def _reconnected(self) -> None:
        self._quiet = False
        log.info("bus: reconnected to %s (%d subscriptions restored)", self.shown_url, len(self._subs))
        for callback in self._on_reconnect:
            callback()

    def on_disconnect(self, callback: StateCallback) -> None:
        self._on_disconnect.append(callback)

    def on_reconnect(self, callback: StateCallback) -> None:
        self._on_reconnect.append(callback)

    def _require_connected(self) -> None:
        if not self._nc.is_connected:
            raise BusUnavailable("the bus is not connected")

    async def publish(self, subject: str, data: bytes) -> None:
        check_subject(subject, wildcards=False)
        self._require_connected()
        try:
            await self._nc.publish(subject, data)
        except nats.errors.Error as exc:
            raise BusUnavailable(f"publish to {subject} failed: {exc or type(exc).__name__}") from exc

    async def subscribe(
        self, subject: str, handler: Handler | None = None, *, queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> QueuedSubscription:
        check_subject(subject, wildcards=True)
        if self._nc.is_closed:
            raise BusUnavailable("the bus is closed")
        local = QueuedSubscription(subject, handler, queue_size, self._unsubscribe)

        async def on_message(msg: Msg) -> None:
            local.deliver(Message(msg.subject, msg.data, reply=msg.reply or None))

        try:
            # Subscribing while reconnecting is fine: the client sends it with the others once connected.
            self._subs[local] = await self._nc.subscribe(subject, cb=on_message)
        except nats.errors.Error as exc:
            local.end()
            raise BusUnavailable(f"subscribe to {subject} failed: {exc or type(exc).__name__}") from exc
        if self._nc.is_connected:
            try:
                await self._confirm()
            except (nats.errors.Error, TimeoutError) as exc:
                log.info("bus: subscription to %s not confirmed (%s); it is sent again on reconnect", subject, exc)
        return local

    async def _confirm(self) -> None:
        """Return once the server has processed everything this connection sent so far (the promise of
        `Bus.subscribe`: what any node publishes afterwards reaches the new subscription).

        A message to ourselves, sent after the SUB, comes back only after the server processed the SUB: one
        connection's commands are applied in order. (The client's `flush()` would not do: it writes its PING
        straight to the socket, ahead of commands still waiting in its buffer.)"""
        inbox = self._nc.new_inbox()
        back = asyncio.Event()

        async def on_echo(msg: Msg) -> None:
            back.set()

        echo = await self._nc.subscribe(inbox, cb=on_echo, max_msgs=1)
        try:
            await self._nc.publish(inbox, b"")
            async with asyncio.timeout(self._confirm_timeout_s):
                await back.wait()
        finally:
            with contextlib.suppress(nats.errors.Error):
                await echo.unsubscribe()

    async def _unsubscribe(self, local: QueuedSubscription) -> None:
        sub = self._subs.pop(local, None)
        if sub is not None and not self._nc.is_closed:
            try:
                await sub.unsubscribe()
            except nats.errors.Error as exc:
                log.debug("bus: unsubscribe from %s: %s", local.subject, exc)

    async def request(self, subject: str, data: bytes, *, timeout_s: float) -> bytes:
        check_subject(subject, wildcards=False)
        self._require_connected()
        try:
            msg = await self._nc.request(subject, data, timeout=timeout_s)
        except nats.errors.NoRespondersError:
            raise NoResponders(f"nobody serves {subject}") from None
        except nats.errors.TimeoutError:
            raise BusTimeout(f"no reply from {subject} within {timeout_s} s") from None
        except nats.errors.Error as exc:
            raise BusUnavailable(f"request to {subject} failed: {exc or type(exc).__name__}") from exc
        return msg.data

    async def reply(self, message: Message, data: bytes) -> None:
        if message.reply is None:
            return
        self._require_connected()
        try:
            await self._nc.publish(message.reply, data)
        except nats.errors.Error as exc:
            raise BusUnavailable(f"reply failed: {exc or type(exc).__name__}") from exc

    async def close(self) -> None:
        self._closing = True
        subs = list(self._subs)
        self._subs.clear()
        for local in subs:
            local.end()
        if not self._nc.is_closed:
            try:
                await asyncio.wait_for(self._nc.close(), timeout=5)
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("bus: close: %s", exc or type(exc).__name__)
        for local in subs:
            await local.wait_ended()


def _without_credentials(url: str) -> str:
    """The URL as logs may show it: without a user, password or token."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
