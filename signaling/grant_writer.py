"""Keeps every member's resume grant in the `ResumeStore`, in the background (docs/scaling.md, "Durable resume").

The service calls `put` and `discard` from its synchronous steps (a welcome, a move, a state change, a drop, a leave);
nothing there waits for the store. One owned task writes what changed, coalesced per participant (the latest wins: a
hand raised and lowered between two writes is one write), retries while the store is away, and sweeps the grants
that other nodes left behind and nobody took in time. Relaying never touches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from signaling.resume_store import ResumeGrant, ResumeStore

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_S = 4.0


class GrantWriter:
    """The one writer of a service's resume grants. Started by `start` (or the first change); `close` flushes."""

    def __init__(self, store: ResumeStore, *, grace_s: float, sweep_every_s: float | None = None) -> None:
        self.store = store
        self.grace_s = grace_s
        # Other nodes' grants expire after the grace period: looking a few times per period is soon enough.
        self.sweep_every_s = sweep_every_s if sweep_every_s is not None else min(5.0, max(0.25, grace_s / 4))
        self._dirty: dict[str, ResumeGrant | None] = {}  # None: discard
        self._writing: dict[str, ResumeGrant | None] = {}  # the batch being written
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.grace_s > 0 and not self._closed

    def put(self, grant: ResumeGrant) -> None:
        if self.enabled:
            self._change(grant.participant_id, grant)

    def discard(self, participant_id: str) -> None:
        if self.enabled:
            self._change(participant_id, None)

    def _change(self, participant_id: str, grant: ResumeGrant | None) -> None:
        self._dirty[participant_id] = grant
        self._idle.clear()
        self._wake.set()
        self.start()

    def pending(self) -> int:
        return len(self._dirty)

    def discarding(self, participant_id: str) -> bool:
        """The participant's place was given up here (left, timed out) and the store may not know it yet: its
        grant must not be taken meanwhile."""
        for changes in (self._dirty, self._writing):
            if participant_id in changes:
                return changes[participant_id] is None
        return False

    def start(self) -> None:
        if self._task is None and self.grace_s > 0 and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="resume-grants")

    async def flushed(self) -> None:
        """Wait until every change so far is written (tests, shutdown)."""
        await self._idle.wait()

    async def _run(self) -> None:
        delay = 0.5
        await self._sweep()
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.sweep_every_s
        while True:
            if not self._dirty:
                self._idle.set()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_sweep - loop.time())):
                        await self._wake.wait()
            if loop.time() >= next_sweep:
                await self._sweep()
                next_sweep = loop.time() + self.sweep_every_s
            if not self._dirty:
                continue
            batch, self._dirty = self._dirty, {}
            self._writing = batch
            try:
                await self._write(batch)
                delay = 0.5
            except Exception as exc:  # the store is away (or refused): keep the batch under newer changes, retry
                log.warning("resume grants not written (%s); retrying in %.1fs", exc, delay)
                self._dirty = {**batch, **self._dirty}
                await asyncio.sleep(delay)  # back-off while the database is away
                delay = min(delay * 2, MAX_RETRY_DELAY_S)
            finally:
                self._writing = {}

    async def _write(self, batch: dict[str, ResumeGrant | None]) -> None:
        grants = [g for g in batch.values() if g is not None]
        await self.store.put(grants, grace_s=self.grace_s)
        for participant_id, grant in batch.items():
            if grant is None:
                await self.store.discard(participant_id)

    async def _sweep(self) -> None:
        try:
            await self.store.purge_expired()
        except Exception as exc:
            log.warning("expired resume grants not swept (%s)", exc)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write what is pending (within `timeout_s`), then stop: a drain's grants are written before the pool
        closes. Changes after this are ignored."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self.flushed()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._closed = True
