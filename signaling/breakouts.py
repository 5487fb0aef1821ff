"""Breakout sessions: plans, open/extend/close with a persisted timer, live moves, broadcast, help.

Every change is persisted first (plan state transitions are guarded in SQL), then published through
the signalling service. A per-workshop lock serialises a workshop's breakout operations; the
deadline lives in PostgreSQL, so a restarted server picks the timers up where they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg

from signaling.assignment import Person, Strategy, assign, can_choose, eligible
from signaling.audit import SYSTEM, Actor
from signaling.audit_store import AuditLog
from signaling.breakout_store import BreakoutStore, PlanView
from signaling.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from signaling.fence import Fence, LeaseLost
from signaling.protocol import (
    BreakoutRoomInfo,
    BreakoutsClosed,
    BreakoutsClosing,
    BreakoutsOpened,
    BreakoutStatus,
    BreakoutsUpdated,
    Broadcast,
    RoomInfo,
    Sender,
)
from signaling.rooms import Member, room_info
from signaling.service import MODERATOR_ROLES, SignalingService

log = logging.getLogger(__name__)

AUTO_STRATEGIES = frozenset({"random", "balanced", "country_mixed"})


class HomeRooms(Protocol):
    async def home_room(self, workshop_id: str, participant_id: str) -> RoomInfo:
        """Where a participant goes when breakouts close (its home room, else the plenary)."""
        ...


class Ownership(Protocol):
    """Which workshops this node owns (`server.leases.LeaseKeeper`), for a node among several."""

    def fence(self, workshop_id: uuid.UUID) -> Fence | None: ...

    async def acquire(self, workshop_id: uuid.UUID) -> Fence | None: ...


@dataclass(frozen=True)
class PlanSpec:
    name: str
    room_names: list[str]
    strategy: Strategy
    assignments: dict[uuid.UUID, int | str]
    roles: list[str]
    self_select_cap: int | None
    duration_s: int | None
    countdown_s: int
    capacity: int


def status_of(view: PlanView, now: datetime) -> BreakoutStatus:
    row = view.row
    ends_at = row["ends_at"]
    return BreakoutStatus(
        plan_id=str(view.id),
        name=row["name"],
        strategy=row["strategy"],
        state=row["state"],
        ends_at=ends_at,
        remaining_s=max(0.0, (ends_at - now).total_seconds()) if ends_at else None,
        closes_at=row["closes_at"],
        rooms=[BreakoutRoomInfo(id=str(r["id"]), name=r["name"]) for r in view.rooms],
        self_select_cap=row["self_select_cap"],
    )


class BreakoutCoordinator:
    """Runs every workshop's breakouts in this process. Owned by the app's cleanup context."""

    def __init__(
        self,
        store: BreakoutStore,
        service: SignalingService,
        homes: HomeRooms,
        *,
        audit: AuditLog | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        self.store = store
        # Several nodes: only the workshop's owner arms its timers, and its fence guards every transition (a node
        # that lost the lease cannot move a plan on). None for a node alone: every plan is this process's.
        self.ownership = ownership
        self.audit = audit if audit is not None else AuditLog()
        self.service = service
        self.homes = homes
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._timers: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _lock(self, workshop_id: uuid.UUID) -> asyncio.Lock:
        return self._locks.setdefault(workshop_id, asyncio.Lock())

    # Lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Pick up plans that were running when the server stopped; their deadlines still hold. Among several
        nodes, only those of workshops this node owns: the others are their owners' (`adopt` when a lease comes)."""
        for view in await self.store.running_plans():
            if not self._owns(view.workshop_id):
                continue
            self.service.set_breakout(str(view.workshop_id), status_of(view, _now()))
            self._schedule(view)
            log.info("resumed breakouts %s of workshop %s (%s)", view.id, view.workshop_id, view.state)

    def _owns(self, workshop_id: uuid.UUID) -> bool:
        return self.ownership is None or self.ownership.fence(workshop_id) is not None

    def adopt(self, workshop_id: uuid.UUID) -> asyncio.Task[None]:
        """This node acquired the workshop's lease: arm its running plan's timer from PostgreSQL (the deadline is
        stored; one already past fires at once)."""
        return self._spawn(self._guarded(self._adopt(workshop_id)))

    def armed(self) -> set[uuid.UUID]:
        """The workshops whose breakout timer runs in this process."""
        return set(self._timers)

    async def _adopt(self, workshop_id: uuid.UUID) -> None:
        async with self._lock(workshop_id):
            if not self._owns(workshop_id):
                return  # lost again meanwhile
            view = await self.store.running_plan(workshop_id)
            if view is None:
                if self.service.breakout_status(str(workshop_id)) is not None:  # closed by another owner meanwhile
                    self.service.set_breakout(str(workshop_id), None)
                return
            self.service.set_breakout(str(workshop_id), status_of(view, _now()))
            self._schedule(view)
            log.info("took over breakouts %s of workshop %s (%s)", view.id, workshop_id, view.state)

    def disown(self, workshop_id: uuid.UUID) -> None:
        """This node lost the workshop's lease: its timer is the new owner's now."""
        handle = self._timers.pop(workshop_id, None)
        if handle is not None:
            handle.cancel()
            log.info("breakout timer of workshop %s disarmed: the lease was lost", workshop_id)

    async def _fence(self, workshop_id: uuid.UUID) -> Fence | None:
        """The fence a transition carries: None for a node alone; else this node's lease, taken when nobody holds
        it (a plan opened with nobody connected makes this node its owner, so its deadline has a timer);
        `LeaseLost` when another node holds it."""
        if self.ownership is None:
            return None
        fence = self.ownership.fence(workshop_id) or await self.ownership.acquire(workshop_id)
        if fence is None:
            raise LeaseLost("another node owns this workshop")
        return fence

    async def shutdown(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _schedule(self, view: PlanView) -> None:
        """Arm the plan's next timer: the deadline while open, the end of the countdown while closing."""
        old = self._timers.pop(view.workshop_id, None)
        if old is not None:
            old.cancel()
        if not self._owns(view.workshop_id):
            return  # the owner's to arm
        row = view.row
        if view.state == "open" and row["ends_at"] is not None:
            when, step = row["ends_at"], self._on_deadline
        elif view.state == "closing":
            when, step = row["closes_at"], self._on_countdown_end
        else:
            return
        delay = max(0.0, (when - _now()).total_seconds())
        loop = asyncio.get_running_loop()
        wid, pid = view.workshop_id, view.id
        self._timers[wid] = loop.call_later(delay, lambda: self._spawn(self._guarded(step(wid, pid))))

    async def _guarded(self, step: Awaitable[None]) -> None:
        try:
            await step
        except (Conflict, NotFound) as exc:
            log.info("breakout timer: %s", exc.message)
        except Exception:
            log.exception("breakout timer failed")

    async def _on_deadline(self, workshop_id: uuid.UUID, plan_id: uuid.UUID) -> None:
        async with self._lock(workshop_id):
            view = await self.store.get_plan(workshop_id, plan_id)
            if view.state != "open":
                return
            await self._begin_closing(view, view.row["countdown_s"], SYSTEM)

    async def _on_countdown_end(self, workshop_id: uuid.UUID, plan_id: uuid.UUID) -> None:
        async with self._lock(workshop_id):
            await self._finish(workshop_id, plan_id, SYSTEM, "breakouts.finish")

    # Plans ----------------------------------------------------------------------------------------

    async def _people(self, workshop_id: uuid.UUID) -> list[Person]:
        return [
            Person(id=str(r["id"]), country=r["country"], role=r["role"]) for r in await self.store.people(workshop_id)
        ]

    @staticmethod
    def _resolve_room(key: int | str | uuid.UUID, rooms: Sequence[Mapping[str, Any]]) -> int:
        """A room named by index, by name, or by id."""
        if isinstance(key, bool):
            raise InvalidArgument("room must be an index, a name or a room id")
        if isinstance(key, int):
            if 0 <= key < len(rooms):
                return key
            raise InvalidArgument(f"room index {key} is out of range (0..{len(rooms) - 1})")
        for index, room in enumerate(rooms):
            if key == room["name"] or ("id" in room and key == str(room["id"])):
                return index
        raise InvalidArgument(f"no room {key!r} in this plan")

    def _fixed(
        self, wanted: Mapping[uuid.UUID, int | str], rooms: Sequence[Mapping[str, Any]], people: list[Person]
    ) -> dict[str, int]:
        known = {p.id for p in people}
        fixed: dict[str, int] = {}
        for pid, key in wanted.items():
            if str(pid) not in known:
                raise InvalidArgument(f"participant {pid} is not in this workshop")
            fixed[str(pid)] = self._resolve_room(key, rooms)
        return fixed

    async def create(self, workshop_id: uuid.UUID, spec: PlanSpec, actor: Actor) -> PlanView:
        people = await self._people(workshop_id)  # read before the transaction: it holds a connection
        async with self.store.transaction() as conn:
            view = await self._create(conn, workshop_id, spec, people)
            await self._audit(conn, view, actor, "breakouts.create", _plan_facts(view))
        return view

    async def _create(
        self,
        conn: asyncpg.Connection,
        workshop_id: uuid.UUID,
        spec: PlanSpec,
        people: list[Person],
        *,
        copied_from: uuid.UUID | None = None,
    ) -> PlanView:
        names = [{"name": n} for n in spec.room_names]
        fixed = self._fixed(spec.assignments, names, people)
        seed = random.SystemRandom().randrange(2**31)
        placed = assign(spec.strategy, eligible(people, spec.roles), len(spec.room_names), fixed=fixed, seed=seed)
        return await self.store.create_plan(
            workshop_id,
            name=spec.name,
            strategy=spec.strategy,
            roles=spec.roles,
            self_select_cap=spec.self_select_cap,
            duration_s=spec.duration_s,
            countdown_s=spec.countdown_s,
            seed=seed,
            room_names=spec.room_names,
            capacity=spec.capacity,
            assignments={uuid.UUID(pid): index for pid, index in placed.items()},
            copied_from=copied_from,
            conn=conn,
        )

    async def copy(self, workshop_id: uuid.UUID, plan_id: uuid.UUID, name: str | None, actor: Actor) -> PlanView:
        """Reuse a plan (day two): same rooms and assignments, a new draft."""
        source = await self.store.get_plan(workshop_id, plan_id)
        row = source.row
        position = {r["id"]: i for i, r in enumerate(source.rooms)}
        spec = PlanSpec(
            name=name or f"{row['name']} (copy)",
            room_names=[r["name"] for r in source.rooms],
            strategy="manual",
            assignments={pid: position[rid] for pid, rid in source.assignments.items() if rid in position},
            roles=list(row["roles"]),
            self_select_cap=row["self_select_cap"],
            duration_s=row["duration_s"],
            countdown_s=row["countdown_s"],
            capacity=source.rooms[0]["capacity"] if source.rooms else 50,
        )
        people = await self._people(workshop_id)
        async with self.store.transaction() as conn:
            view = await self._create(conn, workshop_id, spec, people, copied_from=plan_id)
            # Keep the source's strategy for what happens at open (late arrivals are placed by it).
            view = await self.store.update_plan(workshop_id, view.id, {"strategy": row["strategy"]}, conn=conn)
            await self._audit(conn, view, actor, "breakouts.copy", {**_plan_facts(view), "copied_from": plan_id})
        return view

    async def update(
        self, workshop_id: uuid.UUID, plan_id: uuid.UUID, changes: dict[str, Any], actor: Actor
    ) -> PlanView:
        async with self._lock(workshop_id):
            view = await self.store.get_plan(workshop_id, plan_id)
            if view.state in ("open", "closing") and set(changes) - {"name", "countdown_s"}:
                raise Conflict("only the name and the countdown of a running plan can change; use extend")
            people = await self._people(workshop_id)
            async with self.store.transaction() as conn:
                view = await self.store.update_plan(workshop_id, plan_id, changes, conn=conn)
                if "strategy" in changes and changes["strategy"] in AUTO_STRATEGIES:
                    view = await self._reassign(view, conn, people)
                await self._audit(conn, view, actor, "breakouts.update", {"changes": changes})
            return view

    async def _reassign(self, view: PlanView, conn: asyncpg.Connection, people: list[Person]) -> PlanView:
        """Run the plan's strategy again over everyone eligible (a new draw)."""
        seed = random.SystemRandom().randrange(2**31)
        placed = assign(view.row["strategy"], eligible(people, view.row["roles"]), len(view.rooms), seed=seed)
        rooms = view.room_ids()
        return await self.store.replace_assignments(
            view.workshop_id, view.id, {uuid.UUID(pid): rooms[i] for pid, i in placed.items()}, conn=conn
        )

    async def put_assignments(
        self, workshop_id: uuid.UUID, plan_id: uuid.UUID, wanted: Mapping[uuid.UUID, int | str], actor: Actor
    ) -> PlanView:
        async with self._lock(workshop_id):
            view = await self.store.get_plan(workshop_id, plan_id)
            people = await self._people(workshop_id)
            fixed = self._fixed(wanted, view.rooms, people)
            rooms = view.room_ids()
            placed = {uuid.UUID(pid): rooms[i] for pid, i in fixed.items()}
            # A running plan's assignments move people now: the owner's alone (a draft's are anyone's to edit).
            fence = await self._fence(workshop_id) if view.state in ("open", "closing") else None
            async with self.store.transaction() as conn:
                view = await self.store.replace_assignments(workshop_id, plan_id, placed, conn=conn, fence=fence)
                await self._audit(conn, view, actor, "breakouts.assign", {"count": len(placed), "assignments": placed})
            if view.state in ("open", "closing"):
                await self._apply(view, reason="reassigned")
            return view

    async def delete(self, workshop_id: uuid.UUID, plan_id: uuid.UUID, actor: Actor) -> None:
        async with self._lock(workshop_id):
            view = await self.store.get_plan(workshop_id, plan_id)
            async with self.store.transaction() as conn:
                await self.store.delete_plan(workshop_id, plan_id, conn=conn)
                await self._audit(conn, view, actor, "breakouts.delete", {"name": view.row["name"]})

    # Running --------------------------------------------------------------------------------------

    async def open(
        self,
        workshop_id: uuid.UUID,
        plan_id: uuid.UUID,
        duration_s: int | None,
        actor: Actor,
        *,
        also: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    ) -> PlanView:
        """Open a plan. `also` runs in the opening's transaction (the agenda claims its edge there: if it raises,
        nothing opens)."""
        async with self._lock(workshop_id):
            view = await self.store.get_plan(workshop_id, plan_id)
            if view.state not in ("draft", "closed"):
                raise Conflict(f"the plan is {view.state}")
            if not view.rooms:
                raise Conflict("the plan has no rooms")
            row = view.row
            new: dict[uuid.UUID, uuid.UUID] = {}
            if row["strategy"] in AUTO_STRATEGIES:
                # People added to the roster since the plan was made are placed now, around the others.
                people = await self._people(workshop_id)
                rooms = view.room_ids()
                position = {rid: i for i, rid in enumerate(rooms)}
                fixed = {str(p): position[r] for p, r in view.assignments.items() if r in position}
                placed = assign(
                    row["strategy"], eligible(people, row["roles"]), len(rooms), fixed=fixed, seed=row["seed"]
                )
                new = {uuid.UUID(p): rooms[i] for p, i in placed.items() if p not in fixed}
            duration = duration_s or row["duration_s"]
            ends_at = _now() + timedelta(seconds=duration) if duration else None
            fence = await self._fence(workshop_id)
            async with self.store.transaction() as conn:
                if also is not None:
                    await also(conn)
                if new:
                    await self.store.add_assignments(plan_id, new, conn=conn)
                view = await self.store.open_plan(workshop_id, plan_id, ends_at, conn=conn, fence=fence)
                await self._audit(
                    conn,
                    view,
                    actor,
                    "breakouts.open",
                    {"ends_at": ends_at, "duration_s": duration, "placed_at_open": new},
                )
            status = status_of(view, _now())
            self.service.set_breakout(str(workshop_id), status)
            self.service.send_to_workshop(
                str(workshop_id),
                BreakoutsOpened(
                    plan_id=str(plan_id), ends_at=status.ends_at, remaining_s=status.remaining_s, breakout=status
                ),
            )
            await self._apply(view, reason="breakouts_opened")
            self._schedule(view)
            return view

    async def _apply(self, view: PlanView, *, reason: str) -> None:
        """Move every connected member whose assigned breakout differs from where they are."""
        rooms = {str(r["id"]): r for r in view.rooms}
        for member in self.service.members_of(str(view.workshop_id)):
            target = view.assignments.get(uuid.UUID(member.id))
            if target is not None and str(target) != member.room_id:
                self.service.move(member, room_info(rooms[str(target)]), reason=reason)

    async def extend(self, workshop_id: uuid.UUID, plan_id: uuid.UUID, seconds: int, actor: Actor) -> PlanView:
        async with self._lock(workshop_id):
            view = await self.store.get_plan(workshop_id, plan_id)
            if view.state != "open":
                raise Conflict(f"the plan is {view.state}; only open breakouts can be extended")
            base = view.row["ends_at"] or _now()
            ends_at = max(base, _now()) + timedelta(seconds=seconds)
            fence = await self._fence(workshop_id)
            async with self.store.transaction() as conn:
                view = await self.store.extend_plan(workshop_id, plan_id, ends_at, conn=conn, fence=fence)
                await self._audit(conn, view, actor, "breakouts.extend", {"seconds": seconds, "ends_at": ends_at})
            status = status_of(view, _now())
            self.service.set_breakout(str(workshop_id), status)
            self.service.send_to_workshop(
                str(workshop_id),
                BreakoutsUpdated(
                    plan_id=str(plan_id), ends_at=status.ends_at, remaining_s=status.remaining_s, breakout=status
                ),
            )
            self._schedule(view)
            return view

    async def close(
        self, workshop_id: uuid.UUID, plan_id: uuid.UUID, countdown_s: int | None, actor: Actor
    ) -> PlanView:
        async with self._lock(workshop_id):
            view = await self.store.get_plan(workshop_id, plan_id)
            if view.state not in ("open", "closing"):
                raise Conflict(f"the plan is {view.state}")
            seconds = view.row["countdown_s"] if countdown_s is None else countdown_s
            if view.state == "open":
                return await self._begin_closing(view, seconds, actor)
            return view  # already counting down: nothing changes

    async def _begin_closing(self, view: PlanView, seconds: int, actor: Actor) -> PlanView:
        if seconds <= 0:
            return await self._finish(view.workshop_id, view.id, actor, "breakouts.close")
        closes_at = _now() + timedelta(seconds=seconds)
        fence = await self._fence(view.workshop_id)
        async with self.store.transaction() as conn:
            view = await self.store.start_closing(view.workshop_id, view.id, closes_at, conn=conn, fence=fence)
            await self._audit(conn, view, actor, "breakouts.close", {"countdown_s": seconds, "closes_at": closes_at})
        self.service.set_breakout(str(view.workshop_id), status_of(view, _now()))
        self.service.send_to_workshop(
            str(view.workshop_id), BreakoutsClosing(plan_id=str(view.id), seconds=float(seconds), closes_at=closes_at)
        )
        self._schedule(view)
        return view

    async def finish_now(
        self,
        workshop_id: uuid.UUID,
        plan_id: uuid.UUID,
        actor: Actor,
        *,
        also: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    ) -> PlanView:
        """Close an open or closing plan at once, no countdown (the end of its agenda session); `also` runs in the
        closing's transaction."""
        async with self._lock(workshop_id):
            view = await self.store.get_plan(workshop_id, plan_id)
            if view.state not in ("open", "closing"):
                raise Conflict(f"the plan is {view.state}")
            return await self._finish(workshop_id, plan_id, actor, "breakouts.close", also=also)

    async def _finish(
        self,
        workshop_id: uuid.UUID,
        plan_id: uuid.UUID,
        actor: Actor,
        action: str,
        *,
        also: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    ) -> PlanView:
        """Close the plan and bring everyone in its rooms back to their home room (the plenary)."""
        fence = await self._fence(workshop_id)
        async with self.store.transaction() as conn:
            if also is not None:
                await also(conn)
            view = await self.store.close_plan(workshop_id, plan_id, conn=conn, fence=fence)
            await self._audit(conn, view, actor, action, {"countdown_s": 0} if action == "breakouts.close" else {})
        handle = self._timers.pop(workshop_id, None)
        if handle is not None:
            handle.cancel()
        self.service.set_breakout(str(workshop_id), None)
        self.service.send_to_workshop(str(workshop_id), BreakoutsClosed(plan_id=str(plan_id)))
        plan_rooms = {str(r) for r in view.room_ids()}
        for member in self.service.members_of(str(workshop_id)):
            if member.room_id in plan_rooms:
                home = await self.homes.home_room(member.workshop_id, member.id)
                if self.service.members.get(member.id) is member:
                    self.service.move(member, home, reason="breakouts_closed")
        return view

    async def broadcast(self, workshop_id: uuid.UUID, plan_id: uuid.UUID, text: str, actor: Actor) -> PlanView:
        view = await self.store.get_plan(workshop_id, plan_id)
        # Nothing in PostgreSQL changes: the entry is written alone, before the message goes out.
        async with self.store.transaction() as conn:
            await self._audit(conn, view, actor, "breakouts.broadcast", {"text": text})
        self.service.send_to_workshop(
            str(workshop_id),
            Broadcast(
                text=text,
                from_=Sender(id=str(actor.id) if actor.id else None, display_name=actor.display_name),
                sent_at=_now(),
            ),
        )
        return view

    async def move(
        self, workshop_id: uuid.UUID, plan_id: uuid.UUID, participant_id: uuid.UUID, room_id: uuid.UUID, actor: Actor
    ) -> PlanView:
        """Put a participant into a room of the plan (or back to the plenary) and, if it runs, move them now."""
        async with self._lock(workshop_id):
            view = await self.store.get_plan(workshop_id, plan_id)
            people = {p.id for p in await self._people(workshop_id)}
            if str(participant_id) not in people:
                raise NotFound("participant not found")
            plan_rooms = {r["id"]: r for r in view.rooms}
            if room_id in plan_rooms:
                target = room_info(plan_rooms[room_id])
                assigned: uuid.UUID | None = room_id
            else:
                home = await self.homes.home_room(str(workshop_id), str(participant_id))
                if uuid.UUID(home.id) != room_id:
                    raise InvalidArgument(
                        "room_id must be a room of this plan or the participant's home room (plenary)"
                    )
                target, assigned = home, None
            fence = await self._fence(workshop_id)
            async with self.store.transaction() as conn:
                await self.store.set_assignment(plan_id, participant_id, assigned, conn=conn, fence=fence)
                await self._audit(
                    conn,
                    view,
                    actor,
                    "breakouts.move",
                    {"room_id": room_id},
                    participant_id=participant_id,
                )
            view = await self.store.get_plan(workshop_id, plan_id)
            member = self.service.members.get(str(participant_id))
            if view.state in ("open", "closing") and member is not None and member.room_id != target.id:
                self.service.move(member, target, reason="moved_by_moderator")
            return view

    async def choose_room(self, member: Member, room_id: str) -> None:
        """A participant picks a room (self-select), or a moderator visits one."""
        workshop_id = uuid.UUID(member.workshop_id)
        async with self._lock(workshop_id):
            view = await self.store.running_plan(workshop_id)
            is_moderator = member.profile.role in MODERATOR_ROLES
            if view is None:
                raise NotFound("no breakouts are running")
            rooms = {str(r["id"]): r for r in view.rooms}
            home = await self.homes.home_room(member.workshop_id, member.id)
            if room_id == home.id:
                target, assigned = home, None
            elif room_id in rooms:
                if view.row["strategy"] != "self_select" and not is_moderator:
                    raise PermissionDenied("rooms are assigned by the moderators in this plan")
                index = list(rooms).index(room_id)
                counts = [0] * len(rooms)
                for pid, rid in view.assignments.items():
                    if str(pid) != member.id and str(rid) in rooms:
                        counts[list(rooms).index(str(rid))] += 1
                if not is_moderator and not can_choose(counts, index, view.row["self_select_cap"]):
                    raise Conflict("that room is full")
                target, assigned = room_info(rooms[room_id]), uuid.UUID(room_id)
            else:
                raise NotFound("no such room in the running breakouts")
            actor = Actor(id=uuid.UUID(member.id), role=member.profile.role, display_name=member.profile.display_name)
            fence = await self._fence(workshop_id)
            async with self.store.transaction() as conn:
                await self.store.set_assignment(view.id, uuid.UUID(member.id), assigned, conn=conn, fence=fence)
                await self._audit(
                    conn,
                    view,
                    actor,
                    "breakouts.choose_room",
                    {"room_id": uuid.UUID(target.id)},
                    participant_id=member.id,
                )
            if self.service.members.get(member.id) is member and member.room_id != target.id:
                self.service.move(member, target, reason="chose_room")

    async def _audit(
        self,
        conn: asyncpg.Connection,
        view: PlanView,
        actor: Actor,
        action: str,
        details: Mapping[str, Any],
        *,
        participant_id: uuid.UUID | str | None = None,
    ) -> None:
        target: dict[str, Any] = {"plan_id": view.id}
        if participant_id is not None:
            target["participant_id"] = participant_id
        await self.audit.append(
            conn, workshop_id=view.workshop_id, actor=actor, action=action, target=target, details=details
        )


def _plan_facts(view: PlanView) -> dict[str, Any]:
    row = view.row
    return {
        "name": row["name"],
        "strategy": row["strategy"],
        "rooms": [{"room_id": r["id"], "name": r["name"]} for r in view.rooms],
        "assignments": dict(view.assignments),
        "duration_s": row["duration_s"],
        "countdown_s": row["countdown_s"],
    }


def _now() -> datetime:
    return datetime.now(UTC)
