"""PostgreSQL for breakout plans, their rooms and assignments.

Every write takes the connection of the change (`async with store.transaction() as conn`) so that the coordinator
writes the change's audit entry in the same transaction; without one it opens its own. The state transitions (open,
extend, closing, close) and the live moves (`set_assignment`, `replace_assignments` of a running plan) also take the
workshop owner's `Fence` when several nodes run (docs/scaling.md): a node that lost the workshop's lease then changes
nothing. Without a fence (one node) they behave as before."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from signaling.errors import Conflict, NotFound
from signaling.fence import Fence

log = logging.getLogger(__name__)

PLAN_COLUMNS = """id, workshop_id, name, strategy, roles, self_select_cap, duration_s, countdown_s, state, seed,
    opened_at, ends_at, closes_at, closed_at, copied_from, created_at, updated_at"""
ROOM_COLUMNS = "r.id, r.workshop_id, r.name, r.kind, r.capacity, r.media, r.publishing, r.locked, r.created_at"

INSERT_PLAN = f"""
INSERT INTO breakout_plans (workshop_id, name, strategy, roles, self_select_cap, duration_s, countdown_s, seed,
    copied_from)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {PLAN_COLUMNS}
"""
INSERT_ROOM = """
INSERT INTO rooms (workshop_id, name, kind, capacity, media) VALUES ($1, $2, 'breakout', $3, 'mesh') RETURNING id
"""
INSERT_PLAN_ROOM = "INSERT INTO breakout_rooms (plan_id, position, room_id) VALUES ($1, $2, $3)"
SELECT_PLAN = f"SELECT {PLAN_COLUMNS} FROM breakout_plans WHERE id = $1 AND workshop_id = $2"
SELECT_PLAN_FOR_UPDATE = SELECT_PLAN + " FOR UPDATE"
LIST_PLANS = f"""
SELECT {PLAN_COLUMNS} FROM breakout_plans
WHERE workshop_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id LIMIT $4
"""
RUNNING_PLANS = f"SELECT {PLAN_COLUMNS} FROM breakout_plans WHERE state IN ('open', 'closing')"
RUNNING_PLAN_OF = f"SELECT {PLAN_COLUMNS} FROM breakout_plans WHERE workshop_id = $1 AND state IN ('open', 'closing')"
PLAN_ROOMS = f"""
SELECT b.position, {ROOM_COLUMNS} FROM breakout_rooms b JOIN rooms r ON r.id = b.room_id
WHERE b.plan_id = $1 ORDER BY b.position
"""
PLAN_ASSIGNMENTS = """
SELECT a.participant_id, a.room_id FROM breakout_assignments a
JOIN participants p ON p.id = a.participant_id AND p.deleted_at IS NULL
WHERE a.plan_id = $1
"""
DELETE_ASSIGNMENTS = "DELETE FROM breakout_assignments WHERE plan_id = $1"
UPSERT_ASSIGNMENT = """
INSERT INTO breakout_assignments (plan_id, participant_id, room_id) VALUES ($1, $2, $3)
ON CONFLICT (plan_id, participant_id) DO UPDATE SET room_id = EXCLUDED.room_id
"""
DELETE_ASSIGNMENT = "DELETE FROM breakout_assignments WHERE plan_id = $1 AND participant_id = $2"
PLAN_WORKSHOP = "SELECT workshop_id FROM breakout_plans WHERE id = $1"
UPDATE_PLAN = f"""
UPDATE breakout_plans SET name = COALESCE($3, name), strategy = COALESCE($4, strategy), roles = COALESCE($5, roles),
    self_select_cap = CASE WHEN $6 THEN $7 ELSE self_select_cap END,
    duration_s = CASE WHEN $8 THEN $9 ELSE duration_s END,
    countdown_s = COALESCE($10, countdown_s), updated_at = now()
WHERE id = $1 AND workshop_id = $2 RETURNING {PLAN_COLUMNS}
"""
# State transitions are guarded in SQL: two writers cannot both win.
OPEN_PLAN = f"""
UPDATE breakout_plans SET state = 'open', opened_at = now(), ends_at = $3, closes_at = NULL, closed_at = NULL,
    updated_at = now()
WHERE id = $1 AND workshop_id = $2 AND state IN ('draft', 'closed') RETURNING {PLAN_COLUMNS}
"""
EXTEND_PLAN = f"""
UPDATE breakout_plans SET ends_at = $3, updated_at = now()
WHERE id = $1 AND workshop_id = $2 AND state = 'open' RETURNING {PLAN_COLUMNS}
"""
CLOSING_PLAN = f"""
UPDATE breakout_plans SET state = 'closing', closes_at = $3, updated_at = now()
WHERE id = $1 AND workshop_id = $2 AND state = 'open' RETURNING {PLAN_COLUMNS}
"""
CLOSE_PLAN = f"""
UPDATE breakout_plans SET state = 'closed', closed_at = now(), updated_at = now()
WHERE id = $1 AND workshop_id = $2 AND state IN ('open', 'closing') RETURNING {PLAN_COLUMNS}
"""
DELETE_PLAN_ROOMS = """
DELETE FROM rooms WHERE id IN (SELECT room_id FROM breakout_rooms WHERE plan_id = $1)
"""
DELETE_PLAN = "DELETE FROM breakout_plans WHERE id = $1 AND workshop_id = $2 AND state IN ('draft', 'closed')"
ELIGIBLE_PEOPLE = """
SELECT id, country, role FROM participants WHERE workshop_id = $1 AND deleted_at IS NULL ORDER BY created_at, id
"""


@dataclass
class PlanView:
    """A plan with its rooms (in order) and assignments, as read in one go."""

    row: Mapping[str, Any]
    rooms: list[dict[str, Any]]
    assignments: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)

    @property
    def id(self) -> uuid.UUID:
        plan_id: uuid.UUID = self.row["id"]
        return plan_id

    @property
    def workshop_id(self) -> uuid.UUID:
        workshop_id: uuid.UUID = self.row["workshop_id"]
        return workshop_id

    @property
    def state(self) -> str:
        state: str = self.row["state"]
        return state

    def room_ids(self) -> list[uuid.UUID]:
        return [r["id"] for r in self.rooms]


class BreakoutStore:
    def __init__(self, pool: asyncpg.Pool, *, on_change: Callable[[], None] | None = None) -> None:
        self.pool = pool
        # Called before and after every write of plans, their rooms or assignments: where people belong may have
        # changed (the server forgets the rooms it keeps for joins: server.join_cache).
        self._on_change = on_change

    @asynccontextmanager
    async def _changing(self) -> AsyncIterator[None]:
        if self._on_change is not None:
            self._on_change()
        try:
            yield
        finally:
            if self._on_change is not None:
                self._on_change()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One transaction for a change and its audit entry."""
        async with self._changing(), self.pool.acquire() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def _tx(self, conn: asyncpg.Connection | None) -> AsyncIterator[asyncpg.Connection]:
        if conn is not None:
            async with self._changing():
                yield conn
        else:
            async with self.transaction() as own:
                yield own

    async def _view(self, conn: asyncpg.Connection, row: Mapping[str, Any]) -> PlanView:
        rooms = [dict(r) for r in await conn.fetch(PLAN_ROOMS, row["id"])]
        assignments = {r["participant_id"]: r["room_id"] for r in await conn.fetch(PLAN_ASSIGNMENTS, row["id"])}
        return PlanView(row=dict(row), rooms=rooms, assignments=assignments)

    async def create_plan(
        self,
        workshop_id: uuid.UUID,
        *,
        name: str,
        strategy: str,
        roles: Sequence[str],
        self_select_cap: int | None,
        duration_s: int | None,
        countdown_s: int,
        seed: int,
        room_names: Sequence[str],
        capacity: int,
        assignments: Mapping[uuid.UUID, int],
        copied_from: uuid.UUID | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> PlanView:
        async with self._tx(conn) as tx:
            row = await tx.fetchrow(
                INSERT_PLAN,
                workshop_id,
                name,
                strategy,
                list(roles),
                self_select_cap,
                duration_s,
                countdown_s,
                seed,
                copied_from,
            )
            room_ids = []
            for position, room_name in enumerate(room_names):
                room_id = await tx.fetchval(INSERT_ROOM, workshop_id, room_name, capacity)
                await tx.execute(INSERT_PLAN_ROOM, row["id"], position, room_id)
                room_ids.append(room_id)
            await tx.executemany(
                UPSERT_ASSIGNMENT, [(row["id"], pid, room_ids[index]) for pid, index in assignments.items()]
            )
            return await self._view(tx, row)

    async def get_plan(self, workshop_id: uuid.UUID, plan_id: uuid.UUID) -> PlanView:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(SELECT_PLAN, plan_id, workshop_id)
            if row is None:
                raise NotFound("breakout plan not found")
            return await self._view(conn, row)

    async def list_plans(
        self, workshop_id: uuid.UUID, *, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[PlanView]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(LIST_PLANS, workshop_id, *(after or (None, None)), limit)
            return [await self._view(conn, row) for row in rows]

    async def running_plans(self) -> list[PlanView]:
        async with self.pool.acquire() as conn:
            return [await self._view(conn, row) for row in await conn.fetch(RUNNING_PLANS)]

    async def running_plan(self, workshop_id: uuid.UUID) -> PlanView | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(RUNNING_PLAN_OF, workshop_id)
            return await self._view(conn, row) if row else None

    async def update_plan(
        self,
        workshop_id: uuid.UUID,
        plan_id: uuid.UUID,
        changes: Mapping[str, Any],
        *,
        conn: asyncpg.Connection | None = None,
    ) -> PlanView:
        async with self._tx(conn) as tx:
            row = await tx.fetchrow(
                UPDATE_PLAN,
                plan_id,
                workshop_id,
                changes.get("name"),
                changes.get("strategy"),
                changes.get("roles"),
                "self_select_cap" in changes,
                changes.get("self_select_cap"),
                "duration_s" in changes,
                changes.get("duration_s"),
                changes.get("countdown_s"),
            )
            if row is None:
                raise NotFound("breakout plan not found")
            return await self._view(tx, row)

    async def replace_assignments(
        self,
        workshop_id: uuid.UUID,
        plan_id: uuid.UUID,
        assignments: Mapping[uuid.UUID, uuid.UUID],
        *,
        conn: asyncpg.Connection | None = None,
        fence: Fence | None = None,
    ) -> PlanView:
        async with self._tx(conn) as tx:
            if fence is not None:
                if fence.workshop_id != workshop_id:
                    raise ValueError("the fence of another workshop")
                await fence.check(tx)
            row = await tx.fetchrow(SELECT_PLAN_FOR_UPDATE, plan_id, workshop_id)
            if row is None:
                raise NotFound("breakout plan not found")
            await tx.execute(DELETE_ASSIGNMENTS, plan_id)
            await tx.executemany(UPSERT_ASSIGNMENT, [(plan_id, p, r) for p, r in assignments.items()])
            return await self._view(tx, row)

    async def add_assignments(
        self,
        plan_id: uuid.UUID,
        assignments: Mapping[uuid.UUID, uuid.UUID],
        *,
        conn: asyncpg.Connection | None = None,
    ) -> None:
        async with self._tx(conn) as tx:
            await tx.executemany(UPSERT_ASSIGNMENT, [(plan_id, p, r) for p, r in assignments.items()])

    async def set_assignment(
        self,
        plan_id: uuid.UUID,
        participant_id: uuid.UUID,
        room_id: uuid.UUID | None,
        *,
        conn: asyncpg.Connection | None = None,
        fence: Fence | None = None,
    ) -> None:
        """Put one participant into a room of the plan (None: back home). A live move: with several nodes it carries
        the owner's fence, checked in the same transaction."""
        async with self._tx(conn) as tx:
            if fence is not None:
                await self._check(tx, fence, plan_id)
            if room_id is None:
                await tx.execute(DELETE_ASSIGNMENT, plan_id, participant_id)
            else:
                await tx.execute(UPSERT_ASSIGNMENT, plan_id, participant_id, room_id)

    @staticmethod
    async def _check(tx: asyncpg.Connection, fence: Fence, plan_id: uuid.UUID) -> None:
        """The fence must be the one of the plan's workshop, and still held (signaling.fence)."""
        if await tx.fetchval(PLAN_WORKSHOP, plan_id) != fence.workshop_id:
            raise ValueError("the fence of another workshop")
        await fence.check(tx)

    async def _transition(
        self,
        sql: str,
        workshop_id: uuid.UUID,
        plan_id: uuid.UUID,
        *args: Any,
        conn: asyncpg.Connection | None,
        fence: Fence | None,
    ) -> PlanView:
        async with self._tx(conn) as tx:
            if fence is not None:
                # Several nodes: only the workshop's owner may move its breakouts on (signaling.fence).
                if fence.workshop_id != workshop_id:
                    raise ValueError("the fence of another workshop")
                await fence.check(tx)
            try:
                row = await tx.fetchrow(sql, plan_id, workshop_id, *args)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict("another breakout plan is already running in this workshop") from exc
            if row is None:
                current = await tx.fetchrow(SELECT_PLAN, plan_id, workshop_id)
                if current is None:
                    raise NotFound("breakout plan not found")
                raise Conflict(f"the plan is {current['state']}")
            return await self._view(tx, row)

    async def open_plan(
        self,
        workshop_id: uuid.UUID,
        plan_id: uuid.UUID,
        ends_at: datetime | None,
        *,
        conn: asyncpg.Connection | None = None,
        fence: Fence | None = None,
    ) -> PlanView:
        return await self._transition(OPEN_PLAN, workshop_id, plan_id, ends_at, conn=conn, fence=fence)

    async def extend_plan(
        self,
        workshop_id: uuid.UUID,
        plan_id: uuid.UUID,
        ends_at: datetime,
        *,
        conn: asyncpg.Connection | None = None,
        fence: Fence | None = None,
    ) -> PlanView:
        return await self._transition(EXTEND_PLAN, workshop_id, plan_id, ends_at, conn=conn, fence=fence)

    async def start_closing(
        self,
        workshop_id: uuid.UUID,
        plan_id: uuid.UUID,
        closes_at: datetime,
        *,
        conn: asyncpg.Connection | None = None,
        fence: Fence | None = None,
    ) -> PlanView:
        return await self._transition(CLOSING_PLAN, workshop_id, plan_id, closes_at, conn=conn, fence=fence)

    async def close_plan(
        self,
        workshop_id: uuid.UUID,
        plan_id: uuid.UUID,
        *,
        conn: asyncpg.Connection | None = None,
        fence: Fence | None = None,
    ) -> PlanView:
        return await self._transition(CLOSE_PLAN, workshop_id, plan_id, conn=conn, fence=fence)

    async def delete_plan(
        self, workshop_id: uuid.UUID, plan_id: uuid.UUID, *, conn: asyncpg.Connection | None = None
    ) -> None:
        async with self._tx(conn) as tx:
            row = await tx.fetchrow(SELECT_PLAN_FOR_UPDATE, plan_id, workshop_id)
            if row is None:
                raise NotFound("breakout plan not found")
            if row["state"] in ("open", "closing"):
                raise Conflict("close the breakouts before deleting the plan")
            await tx.execute(DELETE_PLAN_ROOMS, plan_id)
            await tx.execute(DELETE_PLAN, plan_id, workshop_id)

    async def people(self, workshop_id: uuid.UUID) -> list[Mapping[str, Any]]:
        return list(await self.pool.fetch(ELIGIBLE_PEOPLE, workshop_id))
