"""The SFU placement port on PostgreSQL (signaling/sfu/placement.py): the known Janus and their load.

Known Janus, in the order ties are broken: this node's own (the home one), the external ones of
ROUNDTABLE_SFU_URLS, then, with several nodes (a bus), the Janus other live nodes registered in `nodes`
(`janus_url`, seen within the lease TTL, not draining), by URL. The load of each is, over the rows in
`sfu_placements` on it whose node is alive, one per room plus its members; the Janus a room already lives on is
marked (a new owner takes the room over there). Asked when the bridge places a room, bounded by a timeout: without
the database, placement falls back to what is configured, with no load known, and never fails a room for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from signaling.sfu.placement import Candidate, JanusEndpoint

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0
NODES_JANUS = """
SELECT DISTINCT janus_url FROM nodes
WHERE janus_url IS NOT NULL AND NOT draining AND seen_at > now() - make_interval(secs => $1)
ORDER BY janus_url
"""
LOADS = """
SELECT p.janus_url, sum(1 + p.members)::int AS load FROM sfu_placements p JOIN nodes n ON n.id = p.node_id
WHERE n.seen_at > now() - make_interval(secs => $1)
GROUP BY p.janus_url
"""
PLACE = """
INSERT INTO sfu_placements (room_id, janus_url, node_id) VALUES ($1, $2, $3)
ON CONFLICT (room_id) DO UPDATE SET janus_url = EXCLUDED.janus_url, node_id = EXCLUDED.node_id, placed_at = now(),
    members = 0
"""
WHERE_ROOM = "SELECT janus_url FROM sfu_placements WHERE room_id = $1"
OCCUPANCY = """
UPDATE sfu_placements p SET members = c.members
FROM unnest($1::text[], $2::int[]) AS c (room_id, members)
WHERE p.room_id = c.room_id AND p.node_id = $3 AND p.members <> c.members
"""
RELEASE = "DELETE FROM sfu_placements WHERE room_id = $1 AND node_id = $2"
RELEASE_ALL = "DELETE FROM sfu_placements WHERE node_id = $1"
DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PgSfuPlacement:
    def __init__(
        self,
        pool: asyncpg.Pool,
        node_id: str,
        *,
        home: JanusEndpoint,
        external: list[JanusEndpoint],
        nodes_janus: Callable[[str], JanusEndpoint] | None,
        live_within_s: float,
    ) -> None:
        self.pool = pool
        self.node_id = node_id
        self.home = home
        self.external = external
        # With several nodes: the endpoint (secrets) of another node's Janus; None: `nodes` is not read.
        self.nodes_janus = nodes_janus
        self.live_within_s = live_within_s

    def _configured(self) -> list[JanusEndpoint]:
        known = {self.home.url: self.home}
        for endpoint in self.external:
            known.setdefault(endpoint.url, endpoint)
        return list(known.values())

    async def candidates(self, room_id: str | None = None) -> list[Candidate]:
        endpoints = self._configured()
        previous: str | None = None
        try:
            async with asyncio.timeout(TIMEOUT_S), self.pool.acquire() as conn:
                if self.nodes_janus is not None:
                    known = {e.url for e in endpoints}
                    for row in await conn.fetch(NODES_JANUS, self.live_within_s):
                        url = row["janus_url"]
                        if url not in known:
                            known.add(url)
                            endpoints.append(self.nodes_janus(url))
                loads = {r["janus_url"]: r["load"] for r in await conn.fetch(LOADS, self.live_within_s)}
                if room_id is not None:
                    previous = await conn.fetchval(WHERE_ROOM, room_id)
        except DB_ERRORS as exc:
            log.warning("SFU placement without the database (%s): the configured Janus, load unknown", exc)
            return [Candidate(e, 0) for e in endpoints]
        return [Candidate(e, loads.get(e.url, 0), previous=e.url == previous) for e in endpoints]

    async def occupancy(self, counts: dict[str, int]) -> None:
        if counts:
            rooms = list(counts)
            await self._write(OCCUPANCY, rooms, [counts[r] for r in rooms], self.node_id)

    async def placed(self, room_id: str, url: str) -> None:
        if await self._write(PLACE, room_id, url, self.node_id):
            log.info("SFU room %s placed on %s", room_id, url)

    async def released(self, room_id: str) -> None:
        if await self._write(RELEASE, room_id, self.node_id):
            log.info("SFU room %s no longer placed", room_id)

    async def release_all(self) -> None:
        await self._write(RELEASE_ALL, self.node_id)

    async def _write(self, sql: str, *args: object) -> bool:
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await self.pool.execute(sql, *args)
        except DB_ERRORS as exc:
            # A missed write only skews the load the next placement sees (a dead node's rows stop counting).
            log.warning("SFU placement not written (%s)", exc)
            return False
        return True
