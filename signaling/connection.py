"""One WebSocket's outbound side: a bounded queue drained by a single writer task.

Broadcasts `put_nowait` already-encoded text, so a room never waits on its slowest member; a
connection whose queue overflows is closed (1013) instead of being allowed to buffer without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 1013  # the send queue overflowed: a receiver too slow to keep up
_CLOSE = object()


class _SendQueue:
    """`asyncio.Queue`'s `put_nowait` and `get` for a single consumer, without its task bookkeeping.

    Every delivery passes through here (bench W3/W4): this halves the queue's share of a send."""

    __slots__ = ("_items", "_maxsize", "_waiter")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[object] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: object) -> None:
        if len(self._items) >= self._maxsize:
            raise asyncio.QueueFull
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> object:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class Connection:
    """Implements `signaling.rooms.Outbox` for an aiohttp WebSocketResponse."""

    def __init__(
        self, ws: web.WebSocketResponse, *, queue_size: int, on_evicted: Callable[[], None] | None = None
    ) -> None:
        self.ws = ws
        self._on_evicted = on_evicted
        self._queue = _SendQueue(queue_size)
        self._closing: tuple[int, str] | None = None
        self._writer = asyncio.create_task(self._write(), name="ws-writer")

    @property
    def close_code(self) -> int | None:
        return self._closing[0] if self._closing else None

    @property
    def close_reason(self) -> str | None:
        return self._closing[1] if self._closing else None

    def send(self, text: str) -> bool:
        if self._closing is not None:
            return False
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("closing a connection whose send queue overflowed")
            if self._on_evicted is not None:
                self._on_evicted()
            self._abort(CLOSE_TOO_SLOW, "too slow to receive")
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        """Close after what is already queued (an error, a `bye`) has been written."""
        if self._closing is not None:
            return
        self._closing = (code, reason)
        try:
            self._queue.put_nowait(_CLOSE)
        except asyncio.QueueFull:
            self._abort(code, reason)

    def _abort(self, code: int, reason: str) -> None:
        """Close without writing what is queued: the peer is not reading."""
        self._closing = (code, reason)
        self._writer.cancel()
        self._writer = asyncio.create_task(self._close_now(code, reason), name="ws-abort")

    async def _close_now(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.ws.close(code=code, message=reason.encode()[:120], drain=False)

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is _CLOSE:
                    code, reason = self._closing or (1000, "")
                    await self._close_now(code, reason)
                    return
                assert isinstance(item, str)
                await self.ws.send_str(item)
        except (ConnectionError, RuntimeError) as exc:
            # The socket went away under us; the reader notices and ends the session.
            log.debug("writer stopped: %s", exc)

    async def wait_closed(self) -> None:
        """Wait for the writer (or the abort) to finish; used when the session ends."""
        writer = self._writer
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        if writer is not self._writer:  # an abort replaced the writer while we waited
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def finish(self) -> None:
        """The reader is done: stop writing and release the task."""
        if self._closing is None:
            self._closing = (1000, "")
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_CLOSE)
        try:
            async with asyncio.timeout(3):
                await self.wait_closed()
        except TimeoutError:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
