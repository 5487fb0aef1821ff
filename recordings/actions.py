"""Recording start and stop, as the HTTP API calls them. A recording runs on the workshop's owner (its recorder is a
hidden member of the owner's room, and Janus is driven from there), so with several nodes
`server.bus_commands.BusRecordingActions` sends these to the owner; `LocalRecordingActions` runs them in this
process. Results are ids: the caller reads the rows from PostgreSQL, as the owner left them."""

from __future__ import annotations

import uuid
from typing import Protocol

from recordings.service import RecordingCoordinator, Starter
from signaling.audit import SYSTEM, Actor
from signaling.breakouts import Ownership
from signaling.fence import LeaseLost
from signaling.protocol import RoomInfo


class RecordingActions(Protocol):
    async def start(self, workshop_id: uuid.UUID, room: RoomInfo, consent_mode: str, starter: Starter) -> uuid.UUID:
        """Start recording a room of the workshop; the new recording's id."""
        ...

    async def stop(self, workshop_id: uuid.UUID, recording_id: uuid.UUID, reason: str | None, actor: Actor) -> None:
        """Stop a recording of the workshop (one left by a previous owner is finalised)."""
        ...

    async def recorder_peer(self, workshop_id: uuid.UUID, recording_id: uuid.UUID) -> str | None:
        """The peer id of the recording's recorder while it runs, else None."""
        ...

    async def stop_workshop(self, workshop_id: uuid.UUID, actor: Actor) -> list[uuid.UUID]:
        """Stop the workshop's live recordings (it is being deleted); every recording id of the workshop."""
        ...


class LocalRecordingActions:
    """The recordings of this process. Among several nodes (`ownership`), a recording starts only on the
    workshop's owner: a workshop nobody owns is leased here first, so that its sessions land with the recorder."""

    def __init__(self, recordings: RecordingCoordinator, *, ownership: Ownership | None = None) -> None:
        self._recordings = recordings
        self._ownership = ownership

    async def start(self, workshop_id: uuid.UUID, room: RoomInfo, consent_mode: str, starter: Starter) -> uuid.UUID:
        fence = None
        if self._ownership is not None:
            fence = self._ownership.fence(workshop_id) or await self._ownership.acquire(workshop_id)
            if fence is None:
                raise LeaseLost("another node owns this workshop")
        row = await self._recordings.start(room, consent_mode, starter, fence=fence)
        recording_id: uuid.UUID = row["id"]
        return recording_id

    async def stop(
        self, workshop_id: uuid.UUID, recording_id: uuid.UUID, reason: str | None, actor: Actor = SYSTEM
    ) -> None:
        # The owner's fence when this node holds the lease; none when nobody does (then nobody runs it live).
        fence = self._ownership.fence(workshop_id) if self._ownership is not None else None
        await self._recordings.stop(recording_id, reason=reason, actor=actor, fence=fence)

    async def recorder_peer(self, workshop_id: uuid.UUID, recording_id: uuid.UUID) -> str | None:
        live = self._recordings.live.get(recording_id)
        return live.member.id if live is not None else None

    async def stop_workshop(self, workshop_id: uuid.UUID, actor: Actor = SYSTEM) -> list[uuid.UUID]:
        return await self._recordings.stop_workshop(workshop_id, actor=actor)
