"""The breakouts' live actions, as the HTTP API calls them: the port that `BreakoutCoordinator` implements on the
workshop's owner and `server.bus_commands.BusBreakoutActions` implements on any node (it sends the action to the
owner). Planning (create, edit, copy, delete) changes only PostgreSQL and stays on the coordinator of any node."""

from __future__ import annotations

import uuid
from typing import Protocol

from signaling.audit import Actor
from signaling.breakout_store import PlanView


class BreakoutActions(Protocol):
    async def open(self, workshop_id: uuid.UUID, plan_id: uuid.UUID, duration_s: int | None, actor: Actor) -> PlanView:
        """Open a plan: everyone connected is moved to their room; the deadline is armed on the owner."""
        ...

    async def extend(self, workshop_id: uuid.UUID, plan_id: uuid.UUID, seconds: int, actor: Actor) -> PlanView: ...

    async def close(
        self, workshop_id: uuid.UUID, plan_id: uuid.UUID, countdown_s: int | None, actor: Actor
    ) -> PlanView: ...

    async def broadcast(self, workshop_id: uuid.UUID, plan_id: uuid.UUID, text: str, actor: Actor) -> PlanView: ...

    async def move(
        self, workshop_id: uuid.UUID, plan_id: uuid.UUID, participant_id: uuid.UUID, room_id: uuid.UUID, actor: Actor
    ) -> PlanView: ...
