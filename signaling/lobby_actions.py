"""The lobby's moderator actions, as the HTTP API calls them: who is waiting, admit, deny. The knocks wait on the
workshop's owner (their sockets are there), so with several nodes `server.bus_commands.BusLobbyActions` sends these
to the owner; `LocalLobbyActions` is the lobby of this process."""

from __future__ import annotations

from typing import Protocol

from signaling.lobby import AdmissionLobby, AdmitSelector
from signaling.lobby_store import ActorRef
from signaling.protocol import Knock


class LobbyActions(Protocol):
    async def knocks(self, workshop_id: str) -> list[Knock]:
        """The workshop's pending knocks, oldest first."""
        ...

    async def admit(self, workshop_id: str, selector: AdmitSelector, actor: ActorRef) -> int:
        """Admit knocks of the workshop; how many were admitted."""
        ...

    async def deny(self, workshop_id: str, knock_id: str, actor: ActorRef, message: str | None) -> None: ...


class LocalLobbyActions:
    def __init__(self, lobby: AdmissionLobby) -> None:
        self._lobby = lobby

    async def knocks(self, workshop_id: str) -> list[Knock]:
        return self._lobby.knocks_of(workshop_id)

    async def admit(self, workshop_id: str, selector: AdmitSelector, actor: ActorRef) -> int:
        return await self._lobby.admit(workshop_id, selector, actor)

    async def deny(self, workshop_id: str, knock_id: str, actor: ActorRef, message: str | None) -> None:
        await self._lobby.deny(workshop_id, knock_id, actor, message)
