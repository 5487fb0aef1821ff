"""The join cache across nodes (docs/scaling.md): every forget a node's stores make travels on the bus.

Each node keeps its own `JoinCache`. A write on one node (a revoked token, a deleted participant, a new room
assignment, a breakout plan) forgets the entries concerned there, and `SharedForgets` publishes the same forget on
`rt.cache.forget` (JSON: `{"from": node, "participant": id}`, `{"room": id}` or `{"all": ""}`); every other node
applies it to its own cache without announcing it again, so nothing loops, and a node ignores its own.

The bus is at most once. What a gap loses is made good by forgetting everything:

- while this node's bus is down it cannot hear the others: its cache is switched off and emptied (every join reads
  PostgreSQL), and emptied again when the bus is back;
- a forget this node could not publish (its bus was down, or the publish failed) is followed, once the bus is back,
  by one `{"all": ""}`, so that the other nodes drop whatever it may have changed meanwhile.

A forget is published in order, by one task, right after the store's write; `flushed` lets a store wait for it to
be on its way before it answers (the client's next request, to another node, then finds the entry gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque

from server.join_cache import JoinCache
from signaling.bus import Bus, BusUnavailable, Message, Subscription

log = logging.getLogger(__name__)

SUBJECT = "rt.cache.forget"
MAX_QUEUED = 10_000  # past this, the queue is replaced by one forget of everything
FLUSH_TIMEOUT_S = 1.0


class SharedForgets:
    """Wires one node's `JoinCache` to the bus. `start` subscribes and plugs the cache's `announce`."""

    def __init__(self, cache: JoinCache, bus: Bus, node_id: str) -> None:
        self.cache = cache
        self.bus = bus
        self.node_id = node_id
        self._queue: deque[dict[str, str]] = deque()
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._lost = False  # a forget of ours did not go out: the others forget everything once we are back
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self.applied = 0  # forgets of other nodes applied here
        self._applied_changed = asyncio.Condition()

    async def start(self) -> None:
        self._sub = await self.bus.subscribe(SUBJECT, self._on_message)
        self.bus.on_disconnect(self._disconnected)
        self.bus.on_reconnect(self._reconnected)
        self.cache.announce = self._announce
        self.cache.flushed = self.flushed
        self._task = asyncio.create_task(self._publish_loop(), name="join-cache-forgets")

    def _announce(self, forget: dict[str, str]) -> None:
        if len(self._queue) >= MAX_QUEUED:
            self._queue.clear()
            self._queue.append({"all": ""})
        else:
            self._queue.append(forget)
        self._empty.clear()
        self._wake.set()

    async def flushed(self) -> None:
        """Until every forget announced so far was handed to the bus (or given up), at most FLUSH_TIMEOUT_S."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH_TIMEOUT_S):
                await self._empty.wait()

    async def _publish_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                forget = self._queue.popleft()
                if self._lost and self.bus.connected:
                    forget = {"all": ""}  # what we could not send: the others forget everything instead
                    self._queue.clear()
                try:
                    await self.bus.publish(SUBJECT, json.dumps({"from": self.node_id, **forget}).encode())
                    if forget.get("all") is not None:
                        self._lost = False
                except BusUnavailable:
                    self._lost = True
                    self._queue.clear()  # the reconnect sends one forget of everything instead
                except Exception:
                    log.exception("a join cache forget was not published")
                    self._lost = True
                    self._queue.clear()
            if not self._queue:
                self._empty.set()

    async def _on_message(self, message: Message) -> None:
        try:
            forget = json.loads(message.data)
        except (ValueError, RecursionError):
            return
        if not isinstance(forget, dict) or forget.get("from") == self.node_id:
            return
        if self.cache.apply(forget):
            async with self._applied_changed:
                self.applied += 1
                self._applied_changed.notify_all()

    async def heard(self, count: int) -> None:
        """Until `count` forgets of other nodes were applied here (unbounded: the caller bounds it)."""
        async with self._applied_changed:
            await self._applied_changed.wait_for(lambda: self.applied >= count)

    def _disconnected(self) -> None:
        # Deaf to the other nodes' forgets from now on: serve nothing from memory until the bus is back.
        self.cache.enabled = False
        self.cache.forget_all(announce=False)

    def _reconnected(self) -> None:
        self.cache.forget_all(announce=False)  # what the others forgot meanwhile never reached us
        self.cache.enabled = True
        if self._lost:
            self._announce({"all": ""})

    async def close(self) -> None:
        self.cache.announce = None
        self.cache.flushed = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sub is not None:
            with contextlib.suppress(BusUnavailable):
                await self._sub.unsubscribe()
            self._sub = None
