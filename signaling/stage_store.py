"""The stage of a workshop's live rooms, kept where the next owner can read it (docs/scaling.md, "The stage
survives its owner"): who has the floor and who is in the spotlight in each room, and the help requests waiting.

The signalling service hands `StageWriter.put` the workshop's whole stage whenever it changed (a moderator's action,
a help request, a member gone for good); one owned task writes the latest of each workshop, coalesced, so that
nothing on the relay path or in a moderator's step waits for PostgreSQL. When several nodes run, each write checks
the owner's fence in its own transaction: a node that lost the workshop's lease changes nothing (`LeaseLost`, the
write is dropped). A new owner, or the same node restarted, reads the stage back (`load`) when the workshop's first
member comes in: only the entries of people whose resume grant still holds, with the time it has left, so that an
entry of someone who never comes back ends with their grant.

`PgStageStore` is the durable engine (tables `live_stage`, `live_help`); `InMemoryStageStore` the one-process one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

from signaling.fence import Fence, LeaseLost
from signaling.protocol import HelpRequested
from signaling.resume_store import EXPIRES

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_S = 4.0


@dataclass(frozen=True)
class RoomStage:
    room_id: str
    floor: frozenset[str] = frozenset()
    spotlight: str | None = None


@dataclass(frozen=True)
class Stage:
    """A workshop's stage: its rooms that have one, and the help requests waiting (oldest first)."""

    workshop_id: str
    rooms: tuple[RoomStage, ...] = ()
    help: tuple[HelpRequested, ...] = ()
    # Read back only: how many seconds each participant's resume grant has left (None: as long as the store).
    left_s: dict[str, float | None] = field(default_factory=dict)


class StageStore(Protocol):
    async def save(self, stage: Stage) -> None:
        """Replace the workshop's stage; `LeaseLost` when this node no longer owns the workshop."""
        ...

    async def load(self, workshop_id: str) -> Stage:
        """The workshop's stage as last saved, without the entries of people whose resume grant is gone."""
        ...


class InMemoryStageStore:
    """One process: a dict. A participant counts as coming back while `has_grant` says so (every one by default)."""

    def __init__(self, has_grant: Callable[[str], bool] = lambda _pid: True) -> None:
        self.has_grant = has_grant
        self.stages: dict[str, Stage] = {}

    async def save(self, stage: Stage) -> None:
        self.stages[stage.workshop_id] = stage

    async def load(self, workshop_id: str) -> Stage:
        saved = self.stages.get(workshop_id, Stage(workshop_id))
        keep = self.has_grant
        rooms = tuple(
            RoomStage(
                r.room_id,
                frozenset(p for p in r.floor if keep(p)),
                r.spotlight if r.spotlight and keep(r.spotlight) else None,
            )
            for r in saved.rooms
        )
        help_ = tuple(h for h in saved.help if keep(h.participant_id))
        people = {p for r in rooms for p in (*r.floor, *([r.spotlight] if r.spotlight else []))}
        people |= {h.participant_id for h in help_}
        return Stage(workshop_id, rooms, help_, {p: None for p in people})


DELETE_STAGE = "DELETE FROM live_stage WHERE workshop_id = $1"
DELETE_HELP = "DELETE FROM live_help WHERE workshop_id = $1"
# Conditional: a participant or room deleted meanwhile is skipped, not retried forever.
INSERT_STAGE = """
INSERT INTO live_stage (workshop_id, room_id, participant_id, floor, spotlight)
SELECT $1::uuid, $2::uuid, $3::uuid, $4::boolean, $5::boolean
WHERE EXISTS (SELECT 1 FROM participants WHERE id = $3::uuid AND workshop_id = $1::uuid AND deleted_at IS NULL)
    AND EXISTS (SELECT 1 FROM rooms WHERE id = $2::uuid AND workshop_id = $1::uuid)
"""
INSERT_HELP = """
INSERT INTO live_help (workshop_id, participant_id, room_id, room_name, display_name, text, asked_at)
SELECT $1::uuid, $2::uuid, $3::uuid, $4::text, $5::text, $6::text, $7::timestamptz
WHERE EXISTS (SELECT 1 FROM participants WHERE id = $2::uuid AND workshop_id = $1::uuid AND deleted_at IS NULL)
    AND EXISTS (SELECT 1 FROM rooms WHERE id = $3::uuid AND workshop_id = $1::uuid)
"""
# Only the entries of people who may still come back: their resume grant holds (docs/scaling.md, "Durable resume").
LOAD_STAGE = f"""
SELECT s.room_id, s.participant_id, s.floor, s.spotlight, EXTRACT(EPOCH FROM {EXPIRES} - now())::float8 AS left_s
FROM live_stage s JOIN resume_grants g ON g.participant_id = s.participant_id AND g.workshop_id = s.workshop_id
WHERE s.workshop_id = $1 AND {EXPIRES} > now()
"""
LOAD_HELP = f"""
SELECT h.participant_id, h.room_id, h.room_name, h.display_name, h.text, h.asked_at,
    EXTRACT(EPOCH FROM {EXPIRES} - now())::float8 AS left_s
FROM live_help h JOIN resume_grants g ON g.participant_id = h.participant_id AND g.workshop_id = h.workshop_id
WHERE h.workshop_id = $1 AND {EXPIRES} > now()
ORDER BY h.asked_at
"""

FenceOf = Callable[[uuid.UUID], Fence | None]


class PgStageStore:
    """The durable engine. `fence_of` (several nodes): the fence this node holds for a workshop, None when it holds
    none; every save then checks it in its transaction."""

    def __init__(self, pool: asyncpg.Pool, *, fence_of: FenceOf | None = None) -> None:
        self.pool = pool
        self.fence_of = fence_of

    async def save(self, stage: Stage) -> None:
        wid = uuid.UUID(stage.workshop_id)
        fence: Fence | None = None
        if self.fence_of is not None:
            fence = self.fence_of(wid)
            if fence is None:
                raise LeaseLost("this node does not own the workshop")
        rows = []
        for room in stage.rooms:
            for pid in sorted(room.floor | ({room.spotlight} if room.spotlight else set())):
                rows.append((wid, uuid.UUID(room.room_id), uuid.UUID(pid), pid in room.floor, pid == room.spotlight))
        helps = [
            (wid, uuid.UUID(h.participant_id), uuid.UUID(h.room_id), h.room_name, h.display_name, h.text, h.at)
            for h in stage.help
        ]
        async with self.pool.acquire() as conn, conn.transaction():
            if fence is not None:
                await fence.check(conn)
            await conn.execute(DELETE_STAGE, wid)
            if rows:
                await conn.executemany(INSERT_STAGE, rows)
            await conn.execute(DELETE_HELP, wid)
            if helps:
                await conn.executemany(INSERT_HELP, helps)

    async def load(self, workshop_id: str) -> Stage:
        try:
            wid = uuid.UUID(workshop_id)
        except ValueError:
            return Stage(workshop_id)
        async with self.pool.acquire() as conn:
            stage_rows = await conn.fetch(LOAD_STAGE, wid)
            help_rows = await conn.fetch(LOAD_HELP, wid)
        floors: dict[str, set[str]] = {}
        spotlights: dict[str, str] = {}
        left: dict[str, float | None] = {}
        for r in stage_rows:
            room_id, pid = str(r["room_id"]), str(r["participant_id"])
            floors.setdefault(room_id, set())
            if r["floor"]:
                floors[room_id].add(pid)
            if r["spotlight"]:
                spotlights[room_id] = pid
            left[pid] = r["left_s"]
        helps = []
        for r in help_rows:
            pid = str(r["participant_id"])
            helps.append(
                HelpRequested(
                    room_id=str(r["room_id"]),
                    room_name=r["room_name"],
                    participant_id=pid,
                    display_name=r["display_name"],
                    text=r["text"],
                    at=r["asked_at"],
                )
            )
            left[pid] = r["left_s"]
        rooms = tuple(RoomStage(rid, frozenset(f), spotlights.get(rid)) for rid, f in floors.items())
        return Stage(workshop_id, rooms, tuple(helps), left)


class StageWriter:
    """The one writer of a service's stages. `put` never blocks; `close` flushes (a drain's last changes)."""

    def __init__(self, store: StageStore) -> None:
        self.store = store
        self._dirty: dict[str, Stage] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def put(self, stage: Stage) -> None:
        if self._closed:
            return
        self._dirty[stage.workshop_id] = stage
        self._idle.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="live-stage")

    def pending(self) -> int:
        return len(self._dirty)

    async def flushed(self) -> None:
        """Wait until every stage put so far is written or dropped (tests, shutdown)."""
        await self._idle.wait()

    async def _run(self) -> None:
        delay = 0.5
        while True:
            if not self._dirty:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            workshop_id, stage = next(iter(self._dirty.items()))
            del self._dirty[workshop_id]
            try:
                await self.store.save(stage)
                delay = 0.5
            except LeaseLost:
                # Another node owns the workshop now: its stage is that node's to write.
                log.info("stage of workshop %s not written: the lease was lost", workshop_id)
            except Exception as exc:  # the database is away: keep it unless a newer one came, retry
                log.warning("stage of workshop %s not written (%s); retrying in %.1fs", workshop_id, exc, delay)
                self._dirty.setdefault(workshop_id, stage)
                await asyncio.sleep(delay)  # back-off while the database is away
                delay = min(delay * 2, MAX_RETRY_DELAY_S)

    def freeze(self) -> None:
        """Take no more changes (a drain: what is pending is still written, what the drain empties is not)."""
        self._closed = True

    async def close(self, timeout_s: float = 5.0) -> None:
        self._closed = True
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.flushed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
