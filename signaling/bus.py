"""The bus between nodes: subjects, publish/subscribe, request/reply. At most once, like the engines behind it.

`Bus` is the port; `InProcessBus` is the one-node engine (`make run`, no ROUNDTABLE_BUS_URL) and `server.bus_nats`
the real one (NATS). Both behave the same way where it matters to callers:

- Subjects are dot-separated tokens; a subscription may use `*` (one token) and `>` (the rest) as NATS does.
- Delivery is at most once. A message published while a subscriber is not connected is gone; a subscriber that
  falls `queue_size` messages behind loses the newest ones (counted in `Subscription.dropped`). After a reconnect,
  callers rebuild what they know from state they can read again (PostgreSQL), never from the bus.
- One subscription delivers in order, one message at a time: a handler is awaited before the next message is
  handed to it, and an iterator yields them in the order they arrived.
- `request` waits for the first reply or raises `BusTimeout`; with nobody subscribed it raises `NoResponders` at once.
- Publishing while disconnected raises `BusUnavailable` (rather than buffering it for an unknown time).

`connected` says whether messages can flow now; `on_disconnect` / `on_reconnect` callbacks run after the state
changed (subscriptions are already back when `on_reconnect` runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from signaling.errors import Unavailable

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1024
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")


class BusUnavailable(Unavailable):
    """The bus cannot carry this now (disconnected, closed)."""


class BusTimeout(BusUnavailable):
    """Nobody answered a request in time."""


class NoResponders(BusUnavailable):
    """A request found nobody subscribed to its subject."""


@dataclass(frozen=True)
class Message:
    subject: str
    data: bytes
    # Where the sender of a request waits for the answer (`Bus.reply`); None for a plain publish.
    reply: str | None = None


Handler = Callable[[Message], Awaitable[None]]
StateCallback = Callable[[], None]


class Subscription(Protocol):
    subject: str

    @property
    def dropped(self) -> int:
        """Messages lost because this subscriber fell `queue_size` behind."""
        ...

    def __aiter__(self) -> AsyncIterator[Message]: ...

    async def unsubscribe(self) -> None: ...


class Bus(Protocol):
    @property
    def connected(self) -> bool: ...

    async def publish(self, subject: str, data: bytes) -> None:
        """Send `data` to everyone subscribed to `subject` now. Raises BusUnavailable when disconnected."""
        ...

    async def subscribe(
        self, subject: str, handler: Handler | None = None, *, queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> Subscription:
        """Receive the messages of `subject` (wildcards allowed): through `handler` (awaited one at a time) or, with
        no handler, by iterating the returned subscription. Returns once the subscription is in place (while
        connected): whatever any node publishes after that reaches it. Subscriptions survive reconnects."""
        ...

    async def request(self, subject: str, data: bytes, *, timeout_s: float) -> bytes:
        """Send `data` to `subject` and return the first reply. Raises BusTimeout, NoResponders, BusUnavailable."""
        ...

    async def reply(self, message: Message, data: bytes) -> None:
        """Answer a request; a message that asked for no reply is ignored."""
        ...

    def on_disconnect(self, callback: StateCallback) -> None: ...

    def on_reconnect(self, callback: StateCallback) -> None: ...

    async def close(self) -> None:
        """Unsubscribe everything and disconnect; handlers running are cancelled."""
        ...


def check_subject(subject: str, *, wildcards: bool) -> None:
    """Raise ValueError unless `subject` is dot-separated tokens (and, with `wildcards`, `*` or a final `>`)."""
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if wildcards and (token == "*" or (token == ">" and index == len(tokens) - 1)):
            continue
        if not _TOKEN.match(token):
            raise ValueError(f"bad bus subject: {subject!r}")


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether `subject` is one of the subjects the (possibly wildcard) `pattern` names, as NATS matches them."""
    want, have = pattern.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or (token != "*" and token != have[index]):
            return False
    return len(want) == len(have)


class QueuedSubscription:
    """A subscription's own queue, and the task that feeds its handler. Shared by the engines: an engine calls
    `deliver` (never blocking) and the subscriber reads at its own pace."""

    def __init__(
        self,
        subject: str,
        handler: Handler | None,
        queue_size: int,
        on_unsubscribe: Callable[[QueuedSubscription], Awaitable[None]],
    ) -> None:
        self.subject = subject
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=queue_size)
        self._dropped = 0
        self._closed = False
        self._on_unsubscribe = on_unsubscribe
        self._task: asyncio.Task[None] | None = None
        if handler is not None:
            self._task = asyncio.create_task(self._feed(handler), name=f"bus-subscription {subject}")

    @property
    def dropped(self) -> int:
        return self._dropped

    def deliver(self, message: Message) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning("bus subscriber of %s is too slow: %d message(s) dropped", self.subject, self._dropped)

    async def _feed(self, handler: Handler) -> None:
        async for message in self:
            try:
                await handler(message)
            except Exception:
                # One bad message must not end the subscription (the others still need it).
                log.exception("bus handler of %s failed on %s", self.subject, message.subject)

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            if self._closed and self._queue.empty():
                return  # ended while full: the end marker did not fit, and everything queued has been read
            message = await self._queue.get()
            if message is None:
                return
            yield message

    def end(self) -> None:
        """Stop delivering; an iterator ends after what is queued, a handler's task is cancelled."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        if self._task is not None:
            self._task.cancel()

    async def wait_ended(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def unsubscribe(self) -> None:
        if self._closed:
            return
        self.end()
        await self._on_unsubscribe(self)
        await self.wait_ended()


class InProcessBus:
    """The bus of one node: the same semantics as the real engine, without a network. Always connected until
    closed. Handlers of one subscription run in order; a publish never waits for a subscriber."""

    def __init__(self) -> None:
        self._subs: list[QueuedSubscription] = []
        self._closed = False
        self._inbox = 0

    @property
    def connected(self) -> bool:
        return not self._closed

    def _require_open(self) -> None:
        if self._closed:
            raise BusUnavailable("the bus is closed")

    async def publish(self, subject: str, data: bytes) -> None:
        check_subject(subject, wildcards=False)
        self._require_open()
        self._deliver(Message(subject, data))

    def _deliver(self, message: Message) -> int:
        delivered = 0
        for sub in list(self._subs):
            if subject_matches(sub.subject, message.subject):
                sub.deliver(message)
                delivered += 1
        return delivered

    async def subscribe(
        self, subject: str, handler: Handler | None = None, *, queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> QueuedSubscription:
        check_subject(subject, wildcards=True)
        self._require_open()
        sub = QueuedSubscription(subject, handler, queue_size, self._forget)
        self._subs.append(sub)
        return sub

    async def _forget(self, sub: QueuedSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    async def request(self, subject: str, data: bytes, *, timeout_s: float) -> bytes:
        check_subject(subject, wildcards=False)
        self._require_open()
        self._inbox += 1
        inbox = f"_INBOX.local.{self._inbox}"
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_reply(message: Message) -> None:
            if not answer.done():
                answer.set_result(message.data)

        sub = await self.subscribe(inbox, on_reply, queue_size=1)
        try:
            if self._deliver(Message(subject, data, reply=inbox)) == 0:
                raise NoResponders(f"nobody serves {subject}")
            try:
                async with asyncio.timeout(timeout_s):
                    return await answer
            except TimeoutError:
                raise BusTimeout(f"no reply from {subject} within {timeout_s} s") from None
        finally:
            await sub.unsubscribe()

    async def reply(self, message: Message, data: bytes) -> None:
        if message.reply is not None:
            await self.publish(message.reply, data)

    def on_disconnect(self, callback: StateCallback) -> None:
        """Never called: the in-process bus does not disconnect."""

    def on_reconnect(self, callback: StateCallback) -> None:
        """Never called: the in-process bus does not disconnect."""

    async def close(self) -> None:
        self._closed = True
        subs, self._subs = self._subs, []
        for sub in subs:
            sub.end()
        for sub in subs:
            await sub.wait_ended()
