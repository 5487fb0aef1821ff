"""What signalling asks of the server: who a token is, which room they belong in, ICE servers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from server.auth import Authenticator
from server.join_cache import entry_of
from server.settings import Settings
from server.store import Store
from signaling.audit import SYSTEM
from signaling.errors import Unauthenticated
from signaling.lobby_store import ActorRef
from signaling.protocol import IceServer, RoomInfo
from signaling.rooms import Profile, room_info
from signaling.service import Identity
from signaling.turn import turn_credentials


def profile_of(row: Mapping[str, Any]) -> Profile:
    return Profile(
        display_name=row["display_name"],
        country=row["country"],
        organisation=row["organisation"],
        role=row["role"],
        interpreter=interpreter_pair(row),
    )


def interpreter_pair(row: Mapping[str, Any]) -> tuple[str, ...] | None:
    pair = row.get("interpreter_languages")
    return tuple(pair) if pair else None


class ServerDirectory:
    """Implements `signaling.service.Directory` over the roster in PostgreSQL."""

    def __init__(self, auth: Authenticator, store: Store) -> None:
        self.auth = auth
        self.store = store

    async def authenticate(self, token: str) -> Identity:
        """The participant behind a join token, with its room: from memory when this process has read it before
        and nothing changed since (server.join_cache), else in one query. The token's signature, expiry and
        generation are checked every time."""
        if self.auth.admin.matches(token):
            raise Unauthenticated("the admin token cannot join a room; use a participant's join token")
        claims = self.auth.signer.verify(token)
        cache = self.store.joins
        read_at = cache.version
        entry = cache.get(claims.participant_id)
        if entry is None:
            row = await self.store.participant_and_room(claims.participant_id)
            if row is None:
                raise Unauthenticated("token refers to no participant")
            entry = entry_of(row)
            cache.put(entry, read_at=read_at)
        entry.admit(claims.workshop_id, claims.generation)
        return Identity(
            participant_id=str(entry.participant_id),
            workshop_id=str(entry.workshop_id),
            profile=entry.profile,
            room=entry.room,
            read_at=read_at,
            lobby=entry.lobby,
        )

    def still_valid(self, identity: Identity) -> bool:
        room_id = identity.room.id if identity.room is not None else None
        return self.store.joins.still_valid(uuid.UUID(identity.participant_id), room_id, identity.read_at)

    async def assigned_room(self, identity: Identity) -> RoomInfo:
        row = await self.store.assigned_room(uuid.UUID(identity.workshop_id), uuid.UUID(identity.participant_id))
        return room_info(row)

    async def home_room(self, workshop_id: str, participant_id: str) -> RoomInfo:
        return room_info(await self.store.home_room(uuid.UUID(workshop_id), uuid.UUID(participant_id)))


def ice_servers_for(settings: Settings, participant_id: str) -> list[IceServer]:
    servers = []
    if settings.stun_urls:
        servers.append(IceServer(urls=list(settings.stun_urls)))
    if settings.turn_urls and settings.turn_secret:
        username, password = turn_credentials(
            settings.turn_secret, participant_id, now_s=int(time.time()), ttl_s=settings.turn_ttl_s
        )
        servers.append(IceServer(urls=list(settings.turn_urls), username=username, credential=password))
    return servers


class StoreInterpretation:
    """Implements `signaling.service.InterpretationPort`: a workshop's languages and interpreters."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def interpretation(self, workshop_id: str) -> tuple[list[str], list[str]]:
        return await self.store.interpretation(uuid.UUID(workshop_id))


class StoreRooms:
    """Implements `signaling.service.RoomsPort`: a switch of media the hub makes by itself, a moderator's lock."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def set_media(self, room: RoomInfo, media: str) -> RoomInfo:
        # The hub grows a full mesh room into the SFU by itself: the server is the actor.
        row = await self.store.update_room(
            uuid.UUID(room.workshop_id), uuid.UUID(room.id), {"media": media}, actor=SYSTEM
        )
        return room_info(row)

    async def set_locked(
        self, room: RoomInfo, locked: bool, actor: ActorRef, present: Sequence[tuple[str, str | None]] = ()
    ) -> RoomInfo:
        row = await self.store.update_room(
            uuid.UUID(room.workshop_id), uuid.UUID(room.id), {"locked": locked}, actor=actor.as_actor(), present=present
        )
        return room_info(row)
