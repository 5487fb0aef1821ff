"""The server's heartbeat row: when this server was last known alive.

A process that dies (SIGKILL, power loss) records no leaves: its members' attendance visits stay open.
The next start closes each of them at the last heartbeat of the dead process (see
`PgSignalingStore.close_open_visits`) before it admits anyone. The node's own row (`nodes.alive_at`) is beaten
with the same time: among several nodes each visit names its node, and a visit of a gone node ends at that node's
beat (at a start, in the sweep of `server.sweep`, or, for one a resume grant kept and nobody resumed, in the grant
sweep of signaling/resume_store.py), so that one node's start never closes another live node's visits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

import asyncpg

from signaling.clock import Clock, SystemClock

log = logging.getLogger(__name__)

LAST_ALIVE = "SELECT alive_at FROM server_heartbeat WHERE id"
BEAT = """
INSERT INTO server_heartbeat (id, alive_at) VALUES (true, $1)
ON CONFLICT (id) DO UPDATE SET alive_at = EXCLUDED.alive_at
"""
BEAT_NODE = "UPDATE nodes SET alive_at = $2 WHERE id = $1"


class Heartbeat:
    """Beats every `interval_s` until closed. A failed beat is logged and counted, never fatal."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        interval_s: float,
        *,
        clock: Clock | None = None,
        written_until: Callable[[], datetime | None] = lambda: None,
        on_error: Callable[[str], None] | None = None,
        node_id: str | None = None,
    ) -> None:
        self.pool = pool
        self.node_id = node_id
        self.interval_s = interval_s
        self.clock: Clock = clock or SystemClock()
        # The oldest record not yet in the database: a beat never claims more than what is written, so that
        # after a crash the record is complete up to the last beat (and only the last interval is uncertain).
        self.written_until = written_until
        self.on_error = on_error
        self._task: asyncio.Task[None] | None = None

    async def last_alive(self) -> datetime | None:
        """The last beat written (by a previous process, when called before `start`)."""
        at: datetime | None = await self.pool.fetchval(LAST_ALIVE)
        return at

    async def beat(self) -> None:
        at = self.clock.now()
        pending = self.written_until()
        alive_at = min(at, pending) if pending is not None else at
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(BEAT, alive_at)
            if self.node_id is not None:
                await conn.execute(BEAT_NODE, self.node_id, alive_at)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="server-heartbeat")

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("heartbeat write failed: %s", exc)
                if self.on_error is not None:
                    self.on_error("heartbeat")
            await asyncio.sleep(self.interval_s)  # pacing, not synchronisation

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
