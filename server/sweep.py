"""The sweep at every node: what a dead node left behind when nobody takes its workshops over (docs/scaling.md).

A workshop's new owner finalises what a previous owner left in it when it takes the lease (recordings `partial`,
breakout timers re-armed, knocks taken up). A workshop nobody comes back to has no new owner; its leftovers are
this sweep's. Every node runs it every `every_s`; one node at a time does the work (a PostgreSQL advisory lock: the
others skip that round), and every write it makes is guarded in SQL as well, so a leftover is finalised once even
when a new owner or another sweep races with it.

For the nodes not seen for `dead_after_s` (`nodes.seen_at`, the lease TTL):

- their live recordings of workshops that no node holds a live lease of are finalised as at a start (`partial`,
  `recordings.service.RecordingCoordinator.recover_unowned`);
- their open attendance visits that no resume grant keeps are closed (`crash`) at their drop, or when their node
  was last alive (`nodes.alive_at`) (`signaling.store.PgSignalingStore.close_open_visits`). A visit a grant keeps
  is the grant sweep's once its grace period is over (`signaling.resume_store`, PURGE): the member may come back.

A live node's visits and recordings are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg

from recordings.service import RecordingCoordinator
from signaling.store import PgSignalingStore

log = logging.getLogger(__name__)

# One sweeper at a time across every node (a session-level advisory lock, released at the end of the round).
TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext('roundtable.node_sweep'))"
UNLOCK = "SELECT pg_advisory_unlock(hashtext('roundtable.node_sweep'))"


@dataclass
class SweepResult:
    swept: bool  # False: another node held the lock this round
    recordings: int = 0
    visits: int = 0


class NodeSweeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        signaling: PgSignalingStore,
        recordings: RecordingCoordinator,
        *,
        dead_after_s: float,
        every_s: float,
    ) -> None:
        self.pool = pool
        self.signaling = signaling
        self.recordings = recordings
        self.dead_after_s = dead_after_s
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> SweepResult:
        """One round, if no other node is sweeping now."""
        async with self.pool.acquire() as conn:
            if not await conn.fetchval(TRY_LOCK):
                return SweepResult(swept=False)
            try:
                recovered = await self.recordings.recover_unowned()
                closed = await self.signaling.close_open_visits(None, dead_after_s=self.dead_after_s)
            finally:
                await conn.fetchval(UNLOCK)
        if recovered or closed:
            log.warning(
                "swept what gone nodes left: %d recording(s) finalised, %d visit(s) closed", len(recovered), closed
            )
        return SweepResult(swept=True, recordings=len(recovered), visits=closed)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="node-sweep")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)  # pacing, not synchronisation
            try:
                await self.sweep()
            except Exception as exc:  # the database is away, or a file could not be read: the next round retries
                log.warning("the sweep of gone nodes failed: %s", exc)

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
