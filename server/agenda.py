"""The agenda's scheduler: at a session's start it may open the session's breakout plan (until the session's end)
and start recording the plenary; at its end it brings everyone back and stops that recording.

Each edge fires exactly once across restarts and across processes: the edge is claimed by a conditional UPDATE
(`started_fired_at IS NULL`, `ended_fired_at IS NULL`) in the same transaction as its effect on the breakout plan
and its audit entry, so an edge either happened with its effect or not at all. A recording is started after its
edge's transaction (it runs outside PostgreSQL) and its id is kept with the session for the end edge. The scheduler
reads time from the one injected clock (signaling/clock.py); ROUNDTABLE_CLOCK_FILE lets a test drive a server
process. A session whose start and end both passed while no server ran is marked as missed, never opened late; a
held session fires nothing until it is released (then an edge still due fires)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from server.agenda_store import AgendaStore
from server.store import Store
from signaling.audit import SYSTEM
from signaling.breakouts import BreakoutCoordinator, Ownership
from signaling.clock import Clock
from signaling.errors import ServiceError
from signaling.fence import LeaseLost
from signaling.protocol import AgendaAction, AgendaNext
from signaling.rooms import room_info

log = logging.getLogger(__name__)


class _AlreadyFired(Exception):
    """Another process (or an earlier run) claimed the edge: its transaction is rolled back."""


class Recorder(Protocol):
    async def start(self, room: Any, consent_mode: str, starter: Any) -> Any: ...
    async def stop(self, recording_id: uuid.UUID, *, reason: str | None = None) -> Any: ...


class NextListener(Protocol):
    def set_agenda_next(self, workshop_id: str, upcoming: AgendaNext | None) -> None: ...


def _effects(row: Mapping[str, Any]) -> dict[str, Any]:
    raw = row["fired_effects"]
    value: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    return value


def start_actions(row: Mapping[str, Any]) -> list[AgendaAction]:
    actions: list[AgendaAction] = []
    if row["breakout_plan_id"] is not None:
        actions.append("open_breakouts")
    if row["record"]:
        actions.append("start_recording")
    return actions


def end_actions(row: Mapping[str, Any]) -> list[AgendaAction]:
    actions: list[AgendaAction] = []
    if row["breakout_plan_id"] is not None:
        actions.append("close_breakouts")
    if row["record"]:
        actions.append("stop_recording")
    return actions


def next_action(rows: list[Mapping[str, Any]], now: datetime) -> AgendaNext | None:
    """The soonest edge still to fire that does something, among one workshop's pending sessions."""
    best: AgendaNext | None = None
    for row in rows:
        if row["ended_fired_at"] is not None:
            continue
        # A start not yet fired (coming, or held past its time) comes first; else the end.
        if row["started_fired_at"] is None and row["ends_at"] > now:
            edge, at, actions = "start", row["starts_at"], start_actions(row)
        else:
            edge, at, actions = "end", row["ends_at"], end_actions(row)
        if not actions:
            continue
        candidate = AgendaNext(
            session_id=str(row["id"]), title=row["title"], edge=edge, at=at, actions=actions, held=row["held"]
        )
        if best is None or candidate.at < best.at:
            best = candidate
    return best


class AgendaScheduler:
    """Fires every workshop's agenda edges; owned by the app's cleanup context (start/close)."""

    def __init__(
        self,
        agenda: AgendaStore,
        store: Store,
        breakouts: BreakoutCoordinator,
        clock: Clock,
        *,
        recordings: Recorder | None = None,
        listener: NextListener | None = None,
        tick_s: float = 1.0,
        ownership: Ownership | None = None,
    ) -> None:
        self.agenda = agenda
        # Several nodes: a workshop's edges fire on its owner alone (its members, breakout timers and recorders are
        # there); a workshop nobody owns is leased first. None for a node alone: every edge fires here.
        self.ownership = ownership
        self.store = store
        self.breakouts = breakouts
        self.clock = clock
        self.recordings = recordings
        self.listener = listener
        self.tick_s = tick_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._announced: set[str] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="agenda-scheduler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def poke(self) -> None:
        """The agenda changed: look again now rather than at the next tick."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ServiceError) as exc:
                # The database away (an outage): the next tick tries again; nothing was claimed meanwhile.
                log.warning("agenda tick failed: %s", exc)
            except Exception:
                log.exception("agenda tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_s)
            self._wake.clear()

    async def tick(self) -> list[tuple[uuid.UUID, str]]:
        """Fire every edge that is due now; return the (session, edge) fired by this call."""
        async with self._lock:
            fired: list[tuple[uuid.UUID, str]] = []
            now = self.clock.now()
            rows = await self.agenda.pending_sessions()
            for row in rows:
                if row["held"]:
                    continue
                due_end = row["ends_at"] <= now
                due_start = row["starts_at"] <= now and row["started_fired_at"] is None
                if (due_end or due_start) and not await self._mine(row["workshop_id"]):
                    continue  # another node owns the workshop: its scheduler fires the edge
                try:
                    if due_end:
                        if await self._fire_end(row, now):
                            fired.append((row["id"], "end"))
                    elif due_start and await self._fire_start(row, now):
                        fired.append((row["id"], "start"))
                except ServiceError as exc:
                    log.warning("agenda session %s: %s", row["id"], exc.message)
            if fired:
                rows = await self.agenda.pending_sessions()
            self._announce(rows, self.clock.now())
            return fired

    async def _mine(self, workshop_id: uuid.UUID) -> bool:
        """This node owns the workshop (or just took its lease because nobody did)."""
        if self.ownership is None:
            return True
        fence = self.ownership.fence(workshop_id) or await self.ownership.acquire(workshop_id)
        return fence is not None

    def _announce(self, rows: list[asyncpg.Record], now: datetime) -> None:
        if self.listener is None:
            return
        by_workshop: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            by_workshop.setdefault(str(row["workshop_id"]), []).append(row)
        for wid in self._announced - set(by_workshop):
            self.listener.set_agenda_next(wid, None)
        for wid, items in by_workshop.items():
            self.listener.set_agenda_next(wid, next_action(items, now))
        self._announced = set(by_workshop)

    async def _claim_alone(self, row: Mapping[str, Any], claim: Any) -> bool:
        try:
            async with self.agenda.pool.acquire() as conn, conn.transaction():
                await claim(conn)
        except _AlreadyFired:
            return False
        return True

    async def _fire_start(self, row: Mapping[str, Any], now: datetime) -> bool:
        sid, wid, plan_id = row["id"], row["workshop_id"], row["breakout_plan_id"]
        effects: dict[str, Any] = {}

        async def claim(conn: asyncpg.Connection) -> None:
            if not await AgendaStore.claim_start(conn, sid, now):
                raise _AlreadyFired
            await self.agenda.audit.append(
                conn,
                workshop_id=wid,
                actor=SYSTEM,
                action="agenda.start",
                target={"session_id": sid},
                details={"title": row["title"], "at": now, "breakout_plan_id": plan_id, "record": row["record"]},
            )
            if effects:
                await AgendaStore.set_effects(conn, sid, effects)

        claimed = False
        if plan_id is not None:
            remaining = max(1, int((row["ends_at"] - now).total_seconds()))
            try:
                effects["plan_opened"] = True
                await self.breakouts.open(wid, plan_id, remaining, SYSTEM, also=claim)
                claimed = True
            except (_AlreadyFired, LeaseLost):
                return False  # LeaseLost: another node owns the workshop, and its scheduler fires the edge
            except ServiceError as exc:  # already open by hand, no rooms, deleted: the edge fires without it
                effects.clear()
                effects["plan_error"] = exc.message
                log.info("agenda session %s: the plan did not open: %s", sid, exc.message)
        if not claimed and not await self._claim_alone(row, claim):
            return False
        if row["record"] and self.recordings is not None:
            await self._start_recording(row)
        return True

    async def _start_recording(self, row: Mapping[str, Any]) -> None:
        from recordings.service import Starter

        wid = row["workshop_id"]
        try:
            workshop = await self.store.get_workshop(wid)
            plenary = await self.store.get_plenary(wid)
            assert self.recordings is not None
            rec = await self.recordings.start(
                room_info(plenary),
                workshop["recording_consent"],
                Starter(id=None, role=SYSTEM.role, display_name=SYSTEM.display_name),
            )
            outcome: dict[str, Any] = {"recording_id": str(rec["id"])}
        except ServiceError as exc:
            outcome = {"recording_error": exc.message}
            log.warning("agenda session %s: the recording did not start: %s", row["id"], exc.message)
        async with self.agenda.pool.acquire() as conn:
            await AgendaStore.set_effects(conn, row["id"], outcome)

    async def _fire_end(self, row: Mapping[str, Any], now: datetime) -> bool:
        sid, wid, plan_id = row["id"], row["workshop_id"], row["breakout_plan_id"]
        missed = row["started_fired_at"] is None
        effects = _effects(row)

        async def claim(conn: asyncpg.Connection) -> None:
            if not await AgendaStore.claim_end(conn, sid, now):
                raise _AlreadyFired
            await self.agenda.audit.append(
                conn,
                workshop_id=wid,
                actor=SYSTEM,
                action="agenda.end",
                target={"session_id": sid},
                details={"title": row["title"], "at": now, "missed": missed},
            )

        running = await self.breakouts.store.running_plan(wid) if plan_id is not None else None
        if not missed and effects.get("plan_opened") and running is not None and running.id == plan_id:
            try:
                await self.breakouts.finish_now(wid, plan_id, SYSTEM, also=claim)
            except (_AlreadyFired, LeaseLost):
                return False  # LeaseLost: the owner's scheduler fires the edge
            except ServiceError as exc:  # closed meanwhile by hand: the edge fires without it
                log.info("agenda session %s: the plan did not close: %s", sid, exc.message)
                if not await self._claim_alone(row, claim):
                    return False
        elif not await self._claim_alone(row, claim):
            return False
        recording_id = effects.get("recording_id")
        if recording_id is not None and self.recordings is not None:
            try:
                await self.recordings.stop(uuid.UUID(recording_id), reason="agenda session ended")
            except ServiceError as exc:  # stopped by hand, or lost in a restart
                log.info("agenda session %s: the recording did not stop: %s", sid, exc.message)
        return True
