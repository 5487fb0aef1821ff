"""Workshop leases: one owner node per workshop at a time, with a fencing number (docs/scaling.md).

The keeper registers its node (`nodes`), acquires leases, renews them while the node is healthy, takes over
lapsed ones it wants, and releases them when the node drains. Whether a lease has lapsed is decided by PostgreSQL's
clock alone (`now()` in the statement that takes it), never by a node's: a paused node's clock is exactly what
cannot be trusted. Locally, a lease is treated as gone once `ttl_s` has passed on the event loop's monotonic clock
since the start of the last renewal that succeeded, so the node stops acting before the database would let another
node in. The record's wall clock (`signaling.clock`) is not used: a lease writes no moment of the record.

Writes that matter carry the `Fence` and check it in their transaction (`signaling.fence`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from signaling.fence import Fence

log = logging.getLogger(__name__)

REGISTER = """
INSERT INTO nodes (id, address, janus_url, max_workshops) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET seen_at = now(), address = EXCLUDED.address, janus_url = EXCLUDED.janus_url,
    max_workshops = EXCLUDED.max_workshops, draining = false
"""
# Nodes not seen for a day are gone for good; their (long lapsed) leases go with them.
FORGET_NODES = "DELETE FROM nodes WHERE seen_at < now() - interval '1 day' AND id <> $1"
# The beat publishes the node's load too (server/node_selector.py): the sessions it serves now.
BEAT = "UPDATE nodes SET seen_at = now(), janus_rooms = $2, sessions = $3 WHERE id = $1"
SET_DRAINING = "UPDATE nodes SET draining = true, seen_at = now() WHERE id = $1"
# A lease of this node's own that it stopped counting on (its local deadline passed first) is taken again with a new
# fence, which retires the old one like any takeover.
ACQUIRE = """
INSERT INTO workshop_leases AS l (workshop_id, node_id, fence, expires_at)
VALUES ($1, $2, nextval('workshop_lease_fence'), now() + make_interval(secs => $3))
ON CONFLICT (workshop_id) DO UPDATE
    SET node_id = EXCLUDED.node_id, fence = EXCLUDED.fence, acquired_at = now(), expires_at = EXCLUDED.expires_at
    WHERE l.expires_at <= now() OR l.node_id = EXCLUDED.node_id
RETURNING fence
"""
# A lease is renewed only with the fence it was given: after a takeover (a new fence) the old owner's renewal finds
# nothing. One that lapsed but was not taken over renews: nobody else has owned the workshop in between.
RENEW = """
UPDATE workshop_leases AS l SET expires_at = now() + make_interval(secs => $2)
FROM unnest($3::uuid[], $4::bigint[]) AS held (workshop_id, fence)
WHERE l.node_id = $1 AND l.workshop_id = held.workshop_id AND l.fence = held.fence
RETURNING l.workshop_id
"""
RELEASE = "DELETE FROM workshop_leases WHERE workshop_id = $1 AND node_id = $2 AND fence = $3"
RELEASE_ALL = "DELETE FROM workshop_leases WHERE node_id = $1"
OWNER = """
SELECT workshop_id, node_id, fence, expires_at, expires_at > now() AS live FROM workshop_leases WHERE workshop_id = $1
"""
LAPSED = "SELECT workshop_id, node_id, fence, expires_at FROM workshop_leases WHERE expires_at <= now()"
# Giving a quiet workshop back (`LeaseKeeper.release_idle`): the lease row is locked first (FOR UPDATE waits for a
# fenced write in flight, which holds it FOR SHARE, and holds back any that starts later), then what PostgreSQL
# knows of the workshop is read in a new snapshot: a place kept for the grace period (any resume grant, connected
# or dropped), a pending knock, a running breakout plan, a live recording. Any of them keeps the lease.
LOCK_OWN_LEASE = "SELECT 1 FROM workshop_leases WHERE workshop_id = $1 AND node_id = $2 AND fence = $3 FOR UPDATE"
WORKSHOP_BUSY = """
SELECT EXISTS (SELECT 1 FROM resume_grants WHERE workshop_id = $1)
    OR EXISTS (SELECT 1 FROM lobby_knocks WHERE workshop_id = $1 AND state = 'pending')
    OR EXISTS (SELECT 1 FROM breakout_plans WHERE workshop_id = $1 AND state IN ('open', 'closing'))
    OR EXISTS (SELECT 1 FROM recordings WHERE workshop_id = $1 AND state IN ('starting', 'recording', 'stopping'))
"""


@dataclass(frozen=True)
class NodeInfo:
    """What other nodes read about this one in `nodes`."""

    id: str
    address: str = ""
    janus_url: str | None = None
    max_workshops: int | None = None  # its soft limit (ROUNDTABLE_NODE_MAX_WORKSHOPS): it adopts no more than this


@dataclass(frozen=True)
class LeaseOwner:
    workshop_id: uuid.UUID
    node_id: str
    fence: int
    expires_at: datetime
    live: bool


@dataclass
class _Held:
    fence: Fence
    valid_until: float  # the monotonic time after which this node may no longer count on it


class LeaseKeeper:
    """The leases of one node. `start` runs the renewal loop; `drain` hands everything back."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        node: NodeInfo,
        *,
        ttl_s: float = 10.0,
        renew_every_s: float | None = None,
        healthy: Callable[[], bool] = lambda: True,
        janus_rooms: Callable[[], int | None] = lambda: None,
        sessions: Callable[[], int] = lambda: 0,
        on_acquired: Callable[[Fence], None] | None = None,
        on_lost: Callable[[uuid.UUID], None] | None = None,
        idle_s: float | None = None,
        quiet: Callable[[uuid.UUID], bool] | None = None,
        on_released: Callable[[uuid.UUID], None] | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.pool = pool
        self.node = node
        self.ttl_s = ttl_s
        self.renew_every_s = renew_every_s if renew_every_s is not None else ttl_s / 3
        # Unhealthy (the bus is down): leases are not renewed, so that a node nobody can reach lets them lapse.
        self.healthy = healthy
        self.janus_rooms = janus_rooms
        self.sessions = sessions  # published at every beat: the node's load (server/node_selector.py)
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        # Leases given back when quiet: `quiet(workshop_id)` says, from this process's memory, that nothing of the
        # workshop runs here (no session, no member or place, no knock, no timer, no recording); once it has said so
        # for `idle_s` without a break, the lease is released if PostgreSQL agrees (WORKSHOP_BUSY). None: kept.
        self.idle_s = idle_s
        self.quiet = quiet
        self.on_released = on_released
        self._quiet_since: dict[uuid.UUID, float] = {}
        self._held: dict[uuid.UUID, _Held] = {}
        self._wanted: set[uuid.UUID] = set()
        # One ACQUIRE at a time per workshop on this node: ACQUIRE lets a node take its own lease again (one that
        # lapsed locally), so concurrent acquires (the hellos of many members after a takeover) would each take it
        # with a new fence, each run `on_acquired`, and leave the held fence possibly not the database's.
        self._acquiring: dict[uuid.UUID, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self._draining = False

    @property
    def draining(self) -> bool:
        """The node drains: it takes no workshop any more."""
        return self._draining

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    async def register(self) -> None:
        """Write this node into `nodes` (and forget nodes gone for a day). Call once before anything else."""
        async with self.pool.acquire() as conn:
            await conn.execute(REGISTER, self.node.id, self.node.address, self.node.janus_url, self.node.max_workshops)
            await conn.execute(FORGET_NODES, self.node.id)

    # Holding --------------------------------------------------------------------------------------

    def fence(self, workshop_id: uuid.UUID) -> Fence | None:
        """The fence of a lease this node holds and may still count on, else None (the database has the last
        word: a write checks the fence there)."""
        held = self._held.get(workshop_id)
        if held is None:
            return None
        if self._now() >= held.valid_until:
            self._lose(workshop_id)
            return None
        return held.fence

    def held(self) -> list[uuid.UUID]:
        """The workshops this node owns now."""
        return [w for w in list(self._held) if self.fence(w) is not None]

    async def acquire(self, workshop_id: uuid.UUID) -> Fence | None:
        """Take the workshop's lease when it is free or lapsed (a takeover: a new, larger fence); the lease this
        node holds already is returned as it is. None while another node holds it."""
        if self._draining:
            return None
        held = self.fence(workshop_id)
        if held is not None:
            return held
        async with self._acquiring.setdefault(workshop_id, asyncio.Lock()):
            if self._draining:
                return None
            held = self.fence(workshop_id)  # a concurrent acquire of ours took it meanwhile
            if held is not None:
                return held
            return await self._acquire(workshop_id)

    async def _acquire(self, workshop_id: uuid.UUID) -> Fence | None:
        began = self._now()
        value = await self.pool.fetchval(ACQUIRE, workshop_id, self.node.id, self.ttl_s)
        if value is None:
            return None  # another node holds it
        fence = Fence(workshop_id, self.node.id, int(value))
        self._held[workshop_id] = _Held(fence, began + self.ttl_s)
        self._wanted.discard(workshop_id)
        log.info(
            "lease of workshop %s acquired (fence %d)",
            workshop_id,
            fence.value,
            extra={"workshop_id": str(workshop_id)},
        )
        if self.on_acquired is not None:
            self.on_acquired(fence)
        return fence

    def want(self, workshop_id: uuid.UUID) -> None:
        """Take this workshop over as soon as its lease is free or lapses (tried at every renewal)."""
        if workshop_id not in self._held:
            self._wanted.add(workshop_id)

    async def owner(self, workshop_id: uuid.UUID) -> LeaseOwner | None:
        """Who holds the workshop's lease, as the database says now."""
        row = await self.pool.fetchrow(OWNER, workshop_id)
        if row is None:
            return None
        return LeaseOwner(row["workshop_id"], row["node_id"], row["fence"], row["expires_at"], row["live"])

    async def lapsed(self) -> list[LeaseOwner]:
        """Leases whose owner stopped renewing them (a dead or cut-off node): the workshops to take over."""
        rows = await self.pool.fetch(LAPSED)
        return [LeaseOwner(r["workshop_id"], r["node_id"], r["fence"], r["expires_at"], False) for r in rows]

    # Renewing -------------------------------------------------------------------------------------

    async def renew(self) -> None:
        """One round: beat the node's row, renew what is held (while healthy), try the wanted workshops."""
        began = self._now()
        await self.pool.execute(BEAT, self.node.id, self.janus_rooms(), max(0, self.sessions()))
        if self._held and self.healthy() and not self._draining:
            ids = list(self._held)
            fences = [self._held[w].fence.value for w in ids]
            rows = await self.pool.fetch(RENEW, self.node.id, self.ttl_s, ids, fences)
            renewed = {r["workshop_id"] for r in rows}
            for workshop_id in ids:
                held = self._held.get(workshop_id)
                if held is None:
                    continue
                if workshop_id in renewed:
                    held.valid_until = began + self.ttl_s
                else:
                    self._lose(workshop_id)  # taken over, or released under our feet
        for workshop_id in self._expired_locally():
            self._lose(workshop_id)
        if self.healthy() and not self._draining:
            for workshop_id in list(self._wanted):
                await self.acquire(workshop_id)
        await self.release_idle()

    def _expired_locally(self) -> Iterable[uuid.UUID]:
        now = self._now()
        return [w for w, held in self._held.items() if now >= held.valid_until]

    def _lose(self, workshop_id: uuid.UUID) -> None:
        held = self._held.pop(workshop_id, None)
        if held is None:
            return
        log.warning(
            "lease of workshop %s lost (fence %d)",
            workshop_id,
            held.fence.value,
            extra={"workshop_id": str(workshop_id)},
        )
        if self.on_lost is not None:
            self.on_lost(workshop_id)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lease-keeper")

    async def _run(self) -> None:
        while True:
            try:
                await self.renew()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The database is away: nothing is renewed, and leases past their local deadline are dropped.
                log.warning("lease renewal failed: %s", exc)
                for workshop_id in self._expired_locally():
                    self._lose(workshop_id)
            await asyncio.sleep(self.renew_every_s)  # pacing, not synchronisation

    # Letting go -----------------------------------------------------------------------------------

    async def release_idle(self) -> list[uuid.UUID]:
        """Give back the leases of workshops quiet for `idle_s` (checked at every renewal); the ones released."""
        if self.idle_s is None or self.quiet is None or self._draining or not self.healthy():
            return []
        now = self._now()
        released = []
        for workshop_id in list(self._held):
            if workshop_id in self._wanted or not self.quiet(workshop_id):
                self._quiet_since.pop(workshop_id, None)
                continue
            since = self._quiet_since.setdefault(workshop_id, now)
            if now - since >= self.idle_s and await self._release_if_quiet(workshop_id, now - since):
                released.append(workshop_id)
        for workshop_id in [w for w in self._quiet_since if w not in self._held]:
            del self._quiet_since[workshop_id]
        return released

    async def _release_if_quiet(self, workshop_id: uuid.UUID, quiet_for_s: float) -> bool:
        """Release one quiet workshop's lease, unless anything of it is still there (here or in PostgreSQL).

        Nothing is lost: the check of this process's memory and the moment this node stops counting on the lease
        are one step (no await between them), so a session or a fenced write that comes after it takes the lease
        again (`acquire`, which waits for this release: one lock per workshop) instead of using the old one; what
        PostgreSQL holds is checked under the lease row's lock. What a later owner needs (grants, knocks, plans,
        recordings) is in PostgreSQL, where it rebuilds from when it takes the lease."""
        async with self._acquiring.setdefault(workshop_id, asyncio.Lock()):
            held = self._held.get(workshop_id)
            if held is None or self.quiet is None or not self.quiet(workshop_id) or self._draining:
                return False
            del self._held[workshop_id]  # from here on, `fence` says None: newcomers wait for us in `acquire`
            released = False
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    mine = await conn.fetchval(LOCK_OWN_LEASE, workshop_id, self.node.id, held.fence.value)
                    if mine is not None and not await conn.fetchval(WORKSHOP_BUSY, workshop_id):
                        await conn.execute(RELEASE, workshop_id, self.node.id, held.fence.value)
                        released = True
            finally:
                if not released:
                    self._held[workshop_id] = held  # kept (the renewal finds out if it was taken meanwhile)
                    self._quiet_since.pop(workshop_id, None)
        if not released:
            log.info(
                "lease of workshop %s kept although quiet here: PostgreSQL holds its places, knocks, breakouts or "
                "recordings",
                workshop_id,
                extra={"workshop_id": str(workshop_id)},
            )
            return False
        self._quiet_since.pop(workshop_id, None)
        log.info(
            "lease of workshop %s released: quiet for %.0f s (fence %d)",
            workshop_id,
            quiet_for_s,
            held.fence.value,
            extra={"workshop_id": str(workshop_id)},
        )
        if self.on_released is not None:
            self.on_released(workshop_id)
        return True

    async def release(self, workshop_id: uuid.UUID) -> None:
        """Hand one workshop back at once (another node may take it without waiting for it to lapse)."""
        held = self._held.pop(workshop_id, None)
        self._wanted.discard(workshop_id)
        if held is not None:
            await self.pool.execute(RELEASE, workshop_id, self.node.id, held.fence.value)

    async def drain(self) -> None:
        """Mark the node draining and release every lease: the node takes no new workshop from now on."""
        self._draining = True
        self._wanted.clear()
        self._held.clear()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(SET_DRAINING, self.node.id)
            await conn.execute(RELEASE_ALL, self.node.id)

    async def close(self) -> None:
        """Stop renewing (the leases lapse on their own unless `drain` released them first)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
